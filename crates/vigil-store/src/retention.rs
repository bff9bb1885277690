//! Retention of scan result history.
//!
//! Old results are deleted a small batch at a time, oldest first: on SQLite
//! one long write transaction would block every writer (result ingestion
//! included) until it ends, and on PostgreSQL a huge delete holds its row
//! locks and bloats the table at once. The caller loops with a pause.
//!
//! The newest result of each agent target is never deleted, however old:
//! it is the "last result" the console and the API show for the target,
//! and an agent that went quiet must not lose it.

use crate::validate;
use crate::{with_pool, Result, Store, UnixTime};

impl Store {
    /// Deletes up to `batch` (1 to 1000) scan results received before
    /// `before` (unix seconds, the server's clock), oldest first, except
    /// the newest result of each agent target (newest as the history lists
    /// them: by finish time, then receive time, then id). Returns how many
    /// were deleted; fewer than `batch` means nothing more is due.
    pub async fn prune_results(&self, before: UnixTime, batch: u32) -> Result<u64> {
        let batch = validate::limit(batch)?;
        let deleted = with_pool!(self, pool => sqlx::query(
            "DELETE FROM scan_results WHERE id IN ( \
                 SELECT r.id FROM scan_results r \
                 WHERE r.received_at < $1 AND EXISTS ( \
                     SELECT 1 FROM scan_results n \
                     WHERE n.agent_id = r.agent_id AND n.target = r.target \
                       AND (n.finished_at > r.finished_at \
                         OR (n.finished_at = r.finished_at \
                           AND (n.received_at > r.received_at \
                             OR (n.received_at = r.received_at AND n.id < r.id))))) \
                 ORDER BY r.received_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(deleted)
    }
}
