//! Facts about this Vigil installation as a whole, shared by every server
//! process (replica) on the same database.

use crate::secret::{hex, random_bytes};
use crate::{with_pool, Result, Store, StoreError};
use uuid::Uuid;

/// The `server_meta` key of the installation id.
const SERVER_ID: &str = "server_id";
/// The `server_meta` key of the web console's form-signing key.
const CONSOLE_KEY: &str = "console_key";

impl Store {
    /// The id of this Vigil installation: a random (version 4) UUID made by
    /// the first call on a new database and returned by every later call,
    /// from any process.
    pub async fn server_id(&self) -> Result<Uuid> {
        let fresh = Uuid::new_v4().hyphenated().to_string();
        let value = self.meta_or_init(SERVER_ID, &fresh).await?;
        Uuid::parse_str(&value).map_err(|_| StoreError::corrupt("server id", &value))
    }

    /// The key the web console signs its forms with (CSRF tokens): 32
    /// random bytes made by the first call on a new database, so that every
    /// replica, and the same server after a restart, accepts the forms it
    /// rendered.
    pub async fn console_key(&self) -> Result<[u8; 32]> {
        let fresh = hex(&random_bytes::<32>()?);
        let value = self.meta_or_init(CONSOLE_KEY, &fresh).await?;
        let corrupt = || StoreError::corrupt("console key", "(not 64 hex digits)");
        if value.len() != 64 || !value.is_ascii() {
            return Err(corrupt());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&value[2 * i..2 * i + 2], 16).map_err(|_| corrupt())?;
        }
        Ok(key)
    }

    /// The value stored under `key`, storing `fresh` first if there is none.
    /// Concurrent first calls agree: the primary key lets one insert win,
    /// and everyone reads the winner.
    async fn meta_or_init(&self, key: &str, fresh: &str) -> Result<String> {
        if let Some(value) = self.meta(key).await? {
            return Ok(value);
        }
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(fresh)
        .execute(pool)
        .await
        .map(|_| ()))?;
        self.meta(key)
            .await?
            .ok_or_else(|| StoreError::corrupt(key, "(missing after insert)"))
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT value FROM server_meta WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(pool)
        .await)
        .map_err(Into::into)
    }
}
