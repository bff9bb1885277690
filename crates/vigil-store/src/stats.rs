//! The server's own questions about the database, over all accounts:
//! is it there (readiness), and cheap counts for the metrics endpoint.

use crate::{with_pool, Result, Store, UnixTime};

impl Store {
    /// Succeeds when the database answers a trivial query. No timeout of
    /// its own beyond the pool's: callers bound the wait.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(pool)
            .await)?;
        Ok(())
    }

    /// Scan tasks not answered yet and not expired at `now`, over every
    /// account (handed out or about to be).
    pub async fn open_task_count(&self, now: UnixTime) -> Result<u64> {
        let n = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM scan_tasks WHERE completed_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_one(pool)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
