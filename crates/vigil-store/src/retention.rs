//! Retention: what the store deletes so that nothing grows forever.
//!
//! Every method here deletes a small batch (1 to 1000 rows), oldest first,
//! and returns how many rows it deleted; fewer than the batch means nothing
//! more is due. The caller (the server's retention job) loops with a pause:
//! on SQLite one long write transaction would block every writer (result
//! ingestion included) until it ends, and on PostgreSQL a huge delete holds
//! its row locks and bloats the table at once. Each batch is one statement
//! (or one short transaction), so replicas pruning side by side never
//! conflict: a row one deletes is simply not there for the other.
//!
//! The ages come from the caller; what each method keeps whatever its age
//! is its own rule, the one the console and the server's other jobs rely
//! on. Table by table (the server's `retention.rs` gives the ages):
//!
//! | table | deleted | kept whatever the age |
//! |---|---|---|
//! | `scan_results` | received before the cutoff | the newest result of each agent target (the console's "last result") |
//! | `scan_tasks` | completed, or expired, and created before the cutoff | open tasks |
//! | `network_uploads` | received before the cutoff (the upload ids a re-sent sweep is recognized by) | — |
//! | `outbox` | sent or given up, queued before the cutoff | waiting notifications; those of an alert still open or whose notice is held (reminders, escalation and the first-notice time are looked up by their keys); each contact's newest [`OUTBOX_KEPT_PER_CONTACT`] (its page lists them) |
//! | `alerts` (with `alert_events`, `held_notices`) | resolved before the cutoff | open alerts |
//! | `agent_events` | recorded before the cutoff | each agent's newest event (the history goes on from its number) |
//! | `audit_log` | recorded before the cutoff | — |
//! | `devices` (with `device_events` and their `target_states`) | gone (not present) and last seen before the cutoff | devices someone reviewed or decided for (approved, monitored, a kind or own authorized ports), and devices with an open alert |
//! | `enrollment_tokens` | expired before the cutoff, used or not | — |
//! | `install_jobs` (with their hosts) | see [`Store::prune_install_jobs`] | running jobs |
//!
//! Bounded elsewhere, not here: console sessions and login tokens
//! ([`Store::prune_expired_tokens`]), compliance assessments (the newest 30
//! finished per account, [`Store::prune_assessments`]), device histories
//! (the newest [`crate::DEVICE_EVENTS_KEPT`] per device), held notices
//! (released when their window ends).

use crate::{validate, with_pool, Pool, Result, Store, UnixTime};

/// How many of a contact's notifications are kept whatever their age: the
/// contact's page lists its newest deliveries.
pub const OUTBOX_KEPT_PER_CONTACT: u32 = 20;

/// Runs `$sql` (binds `$1` = cutoff, `$2` = batch) and returns the rows it
/// deleted.
macro_rules! delete_batch {
    ($store:expr, $sql:expr, $cutoff:expr, $batch:expr) => {{
        let batch = validate::limit($batch)?;
        let n = with_pool!($store, pool => sqlx::query($sql)
            .bind($cutoff)
            .bind(batch)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n)
    }};
}

impl Store {
    /// Deletes up to `batch` (1 to 1000) scan results received before
    /// `before` (unix seconds, the server's clock), oldest first, except
    /// the newest result of each agent target (newest as the history lists
    /// them: by finish time, then receive time, then id): it is the "last
    /// result" the console and the API show for the target, and an agent
    /// that went quiet must not lose it.
    pub async fn prune_results(&self, before: UnixTime, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
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
            before,
            batch
        )
    }

    /// Deletes up to `batch` scan tasks created before `before` that are
    /// over: completed, or expired before `before`. An open task is never
    /// deleted. A result names its task only as text, and an agent that
    /// sends a stored result again is still told "duplicate" (the upload
    /// id is looked up when its task is gone).
    pub async fn prune_tasks(&self, before: UnixTime, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
            "DELETE FROM scan_tasks WHERE id IN ( \
                 SELECT id FROM scan_tasks \
                 WHERE created_at < $1 AND (completed_at IS NOT NULL OR expires_at < $1) \
                 ORDER BY created_at LIMIT $2)",
            before,
            batch
        )
    }

    /// Deletes up to `batch` network-sweep upload ids received before
    /// `before` (they only tell a re-sent sweep from a new one; the sweep
    /// itself, the agent's latest, is kept in `network_sweeps`).
    pub async fn prune_network_uploads(&self, before: UnixTime, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
            "DELETE FROM network_uploads WHERE (agent_id, upload_id) IN ( \
                 SELECT agent_id, upload_id FROM network_uploads \
                 WHERE received_at < $1 ORDER BY received_at LIMIT $2)",
            before,
            batch
        )
    }

    /// Deletes up to `batch` notifications queued before `before` that are
    /// over (sent, or given up on: failed for good or dropped), except:
    /// those of an alert that is still open or whose notice is held (the
    /// reminders, escalation steps and first notice of an open alert are
    /// looked up by their keys, `alert:<id>:…`: deleting them would send
    /// them again), and each contact's newest
    /// [`OUTBOX_KEPT_PER_CONTACT`]. A notification still waiting is never
    /// deleted.
    pub async fn prune_outbox(&self, before: UnixTime, batch: u32) -> Result<u64> {
        let sql = format!(
            "DELETE FROM outbox WHERE id IN ( \
                 SELECT o.id FROM outbox o \
                 WHERE o.created_at < $1 \
                   AND (o.sent_at IS NOT NULL OR o.next_attempt_at IS NULL) \
                   AND (o.alert_id IS NULL OR NOT EXISTS ( \
                       SELECT 1 FROM alerts a WHERE a.id = o.alert_id \
                         AND (a.status = 'open' \
                           OR EXISTS (SELECT 1 FROM held_notices h WHERE h.alert_id = a.id)))) \
                   AND EXISTS ( \
                       SELECT 1 FROM outbox n \
                       WHERE n.contact_id = o.contact_id AND n.created_at > o.created_at \
                       LIMIT 1 OFFSET {}) \
                 ORDER BY o.created_at LIMIT $2)",
            OUTBOX_KEPT_PER_CONTACT - 1
        );
        delete_batch!(self, &sql, before, batch)
    }

    /// Deletes up to `batch` alerts resolved before `before`, with their
    /// history (and any held notice); notifications about them keep their
    /// row without the link. An open alert is never deleted.
    pub async fn prune_alerts(&self, before: UnixTime, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
            "DELETE FROM alerts WHERE id IN ( \
                 SELECT id FROM alerts \
                 WHERE status = 'resolved' AND resolved_at < $1 \
                 ORDER BY resolved_at LIMIT $2)",
            before,
            batch
        )
    }

    /// Deletes up to `batch` entries of agents' histories recorded before
    /// `before`, except each agent's newest (so its history keeps what the
    /// agent last became, and numbering goes on from it).
    pub async fn prune_agent_events(&self, before: UnixTime, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
            "DELETE FROM agent_events WHERE id IN ( \
                 SELECT e.id FROM agent_events e \
                 WHERE e.at < $1 AND EXISTS ( \
                     SELECT 1 FROM agent_events n \
                     WHERE n.agent_id = e.agent_id AND n.seq > e.seq) \
                 ORDER BY e.at LIMIT $2)",
            before,
            batch
        )
    }

    /// Deletes up to `batch` audit entries older than `before_ms` (unix
    /// milliseconds), oldest first.
    pub async fn prune_audit(&self, before_ms: i64, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
            "DELETE FROM audit_log WHERE id IN ( \
                 SELECT id FROM audit_log WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
            before_ms,
            batch
        )
    }

    /// Deletes up to `batch` devices gone from their location (not present)
    /// and last seen before `before`, with their history and evaluation
    /// state — the ones nobody decided anything for: a device someone
    /// approved, monitors, or gave a kind or its own authorized ports is
    /// kept, and so is one with an open alert. A forgotten device that
    /// comes back is new again (as in a first sighting).
    pub async fn prune_devices(&self, before: UnixTime, batch: u32) -> Result<u64> {
        let batch = validate::limit(batch)?;
        // The device's alert target: `device:<mac>`, or `device:<address>`
        // without a MAC (see `vigil_core::lan::device_target`).
        const PICK: &str = "SELECT d.id, d.agent_id, 'device:' || COALESCE(d.mac, d.ip) \
             FROM devices d \
             WHERE d.present = FALSE AND d.last_seen < $1 \
               AND d.approved = FALSE AND d.monitored = FALSE \
               AND d.kind IS NULL AND d.authorized IS NULL \
               AND NOT EXISTS ( \
                   SELECT 1 FROM alerts a \
                   WHERE a.agent_id = d.agent_id AND a.status = 'open' \
                     AND a.target = 'device:' || COALESCE(d.mac, d.ip)) \
             ORDER BY d.last_seen LIMIT $2";
        macro_rules! prune {
            ($tx:expr) => {{
                let mut tx = $tx;
                let picked: Vec<(String, String, String)> = sqlx::query_as(PICK)
                    .bind(before)
                    .bind(batch)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut deleted = 0;
                for (id, agent, target) in &picked {
                    sqlx::query("DELETE FROM target_states WHERE agent_id = $1 AND target = $2")
                        .bind(agent)
                        .bind(target)
                        .execute(&mut *tx)
                        .await?;
                    // Another replica may have taken it meanwhile.
                    deleted += sqlx::query("DELETE FROM devices WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                deleted
            }};
        }
        Ok(match &self.inner.pool {
            Pool::Sqlite(pool) => prune!(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => prune!(pool.begin().await?),
        })
    }

    /// Deletes up to `batch` enrollment tokens that expired before
    /// `before`, used or not (a token tried after that is unknown rather
    /// than "expired"; the agents it enrolled keep their own record).
    pub async fn prune_enrollment_tokens(&self, before: UnixTime, batch: u32) -> Result<u64> {
        delete_batch!(
            self,
            "DELETE FROM enrollment_tokens WHERE id IN ( \
                 SELECT id FROM enrollment_tokens WHERE expires_at < $1 \
                 ORDER BY expires_at LIMIT $2)",
            before,
            batch
        )
    }
}
