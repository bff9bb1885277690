//! Facts about this Vigil installation as a whole, shared by every server
//! process (replica) on the same database.

use crate::{with_pool, Result, Store, StoreError};
use uuid::Uuid;

/// The `server_meta` key of the installation id.
const SERVER_ID: &str = "server_id";

impl Store {
    /// The id of this Vigil installation: a random (version 4) UUID made by
    /// the first call on a new database and returned by every later call,
    /// from any process. Concurrent first calls agree: the primary key lets
    /// one insert win, and everyone reads the winner.
    pub async fn server_id(&self) -> Result<Uuid> {
        if let Some(id) = self.stored_server_id().await? {
            return Ok(id);
        }
        let fresh = Uuid::new_v4().hyphenated().to_string();
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(SERVER_ID)
        .bind(&fresh)
        .execute(pool)
        .await
        .map(|_| ()))?;
        self.stored_server_id()
            .await?
            .ok_or_else(|| StoreError::corrupt("server id", "(missing after insert)"))
    }

    async fn stored_server_id(&self) -> Result<Option<Uuid>> {
        let value = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT value FROM server_meta WHERE key = $1",
        )
        .bind(SERVER_ID)
        .fetch_optional(pool)
        .await)?;
        value
            .map(|v| Uuid::parse_str(&v).map_err(|_| StoreError::corrupt("server id", &v)))
            .transpose()
    }
}
