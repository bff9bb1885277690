//! The server's own questions about the database, over all accounts:
//! is it there (readiness), and cheap counts for the metrics endpoint.

use crate::agents::contact_filter;
use crate::{with_pool, ContactRange, Result, Store, UnixTime};

impl Store {
    /// Succeeds when the database answers a trivial query. No timeout of
    /// its own beyond the pool's: callers bound the wait.
    pub async fn ping(&self) -> Result<()> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(pool)
            .await)?;
        Ok(())
    }

    /// [`Store::agent_contact_counts`] over every account: how many agents
    /// (not removed) last called in (or, never seen, enrolled) within each
    /// range, e.g. one range per health from [`vigil_core::contact_range`].
    pub async fn agent_contact_counts_all(&self, ranges: &[ContactRange]) -> Result<Vec<u64>> {
        let mut counts = Vec::with_capacity(ranges.len());
        for range in ranges {
            let (sql, bounds) = contact_filter(Some(std::slice::from_ref(range)), 1)?;
            let sql = format!("SELECT COUNT(*) FROM agents WHERE removed_at IS NULL AND {sql}");
            let n = with_pool!(self, pool => {
                let mut q = sqlx::query_scalar::<_, i64>(&sql);
                for b in &bounds {
                    q = q.bind(*b);
                }
                q.fetch_one(pool).await
            })?;
            counts.push(u64::try_from(n).unwrap_or(0));
        }
        Ok(counts)
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
