//! Work claimed with row leases, so that several server replicas on one
//! database each do a piece of it once: due security-scan policies and the
//! scans the server runs itself. (The notification outbox claims its rows
//! the same way, in `notify.rs`.)
//!
//! A claim moves the row out of reach for the lease: its `claimed_until`
//! becomes `now + lease`. The claimer finishes the work and writes the real
//! next state; if it dies first, the row is due again when the lease runs
//! out and another replica picks it up. A claimed policy keeps its run id
//! until it is rescheduled, and a run gets one scan task per target (see
//! [`Store::create_task`]), so a replica that dies between creating the
//! tasks and rescheduling does not cause a second scan. On PostgreSQL the
//! rows are picked with `FOR UPDATE SKIP LOCKED`, so concurrent claims
//! neither wait for nor return the same rows; SQLite has one writer at a
//! time, which gives the same.

use crate::ids::{AccountId, AgentId, TaskId};
use crate::model::{from_json, UnixTime};
use crate::validate;
use crate::{Agent, Pool, Result, ScanTask, Store, StoreError};
use std::time::Duration;
use vigil_core::SecurityPolicy;

#[derive(sqlx::FromRow)]
struct ClaimedPolicyRow {
    agent_id: String,
    account_id: String,
    policy: String,
    run_id: String,
    outside_runs: i64,
}

/// A due security-scan policy this replica claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct DuePolicy {
    pub agent: Agent,
    pub policy: SecurityPolicy,
    /// The run its scans are for: the same for whichever replica claims it,
    /// until it is rescheduled ([`Store::set_next_run`]).
    pub run: String,
    /// How many earlier runs created a scan of the observed address
    /// (counted by [`Store::end_run`]): which slice of the range this run's
    /// probes ([`vigil_core::outside`]).
    pub outside_runs: u64,
}

#[derive(sqlx::FromRow)]
struct ClaimedTaskRow {
    id: String,
    account_id: String,
    agent_id: String,
}

/// A scan task this replica claimed, until `claimed_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskClaim {
    pub agent: Agent,
    pub task: ScanTask,
    pub claimed_until: UnixTime,
}

const DUE_POLICIES: &str = "SELECT p.agent_id FROM policies p \
     JOIN agents a ON a.id = p.agent_id AND a.account_id = p.account_id \
     WHERE a.removed_at IS NULL AND (p.next_run_at IS NULL OR p.next_run_at <= $1) \
       AND (p.claimed_until IS NULL OR p.claimed_until <= $1) \
     ORDER BY COALESCE(p.next_run_at, 0), p.agent_id LIMIT $3";

/// A policy without a run id yet (new or changed) gets `$4`.
///
/// The rows are picked in a `MATERIALIZED` CTE, run once: PostgreSQL may
/// run `IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` more than once, and
/// each run skips the rows the previous one locked, so more than `n` rows
/// would be claimed. The update re-checks the claimable condition.
fn claim_policies_sql(lock: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED ({DUE_POLICIES}{lock}) \
         UPDATE policies SET run_id = COALESCE(run_id, $4), claimed_until = $2 \
         WHERE (next_run_at IS NULL OR next_run_at <= $1) \
           AND (claimed_until IS NULL OR claimed_until <= $1) \
           AND agent_id IN (SELECT agent_id FROM picked) \
         RETURNING agent_id, account_id, policy, run_id, outside_runs"
    )
}

/// Picked like [`claim_policies_sql`].
fn claim_tasks_sql(lock: &str) -> String {
    format!(
        "WITH picked AS MATERIALIZED (\
             SELECT id FROM scan_tasks \
             WHERE target_key = $4 AND completed_at IS NULL AND expires_at > $1 \
               AND (claimed_until IS NULL OR claimed_until <= $1) \
             ORDER BY created_at, id LIMIT $3{lock}) \
         UPDATE scan_tasks SET claimed_until = $2 \
         WHERE completed_at IS NULL AND expires_at > $1 \
           AND (claimed_until IS NULL OR claimed_until <= $1) \
           AND id IN (SELECT id FROM picked) \
         RETURNING id, account_id, agent_id"
    )
}

/// Runs the claim statement `sql(lock)` with the binds given: without a
/// lock clause on SQLite (one writer at a time), with `lock` on PostgreSQL.
macro_rules! claim {
    ($store:expr, $sql:ident, $lock:expr, $($bind:expr),+) => {
        match &$store.inner.pool {
            Pool::Sqlite(pool) => sqlx::query_as(&$sql("")) $(.bind($bind))+ .fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_as(&$sql($lock)) $(.bind($bind))+ .fetch_all(pool).await?,
        }
    };
}

/// `now + lease` in whole seconds (at least one).
fn lease_end(now: UnixTime, lease: Duration) -> UnixTime {
    let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX).max(1);
    now.saturating_add(lease)
}

impl Store {
    /// Claims up to `limit` (1 to 1000) security-scan policies due at `now`
    /// (of agents not removed) for `lease`: until `now + lease` no other
    /// claim returns them. The caller creates the scans of the returned
    /// run and sets the real next run with [`Store::set_next_run`], which
    /// ends the claim; if it dies before that, the policy is due again, for
    /// the same run, when the lease ends.
    pub async fn claim_due_policies(
        &self,
        now: UnixTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<DuePolicy>> {
        let limit = validate::limit(limit)?;
        let until = lease_end(now, lease);
        let rows: Vec<ClaimedPolicyRow> = claim!(
            self,
            claim_policies_sql,
            " FOR UPDATE OF p SKIP LOCKED",
            now,
            until,
            limit,
            uuid::Uuid::new_v4().to_string()
        );
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let account = AccountId::from_db(&r.account_id)?;
            let agent = match self.agent(account, AgentId::from_db(&r.agent_id)?).await {
                Ok(a) => a,
                Err(StoreError::NotFound) => continue, // removed meanwhile
                Err(e) => return Err(e),
            };
            out.push(DuePolicy {
                agent,
                policy: from_json("policy", &r.policy)?,
                run: r.run_id,
                outside_runs: u64::try_from(r.outside_runs).unwrap_or(0),
            });
        }
        out.sort_by_key(|d| d.agent.id);
        Ok(out)
    }

    /// Claims up to `limit` (1 to 1000) open scan tasks of the policy target
    /// `target_key` (the ones the server runs itself) for `lease`, oldest
    /// first, with their agents. Finishing the task (ingesting its result)
    /// completes it; [`Store::extend_task_claim`] keeps a long scan's claim;
    /// if the claimer dies, the task is claimable again when the lease ends.
    pub async fn claim_server_tasks(
        &self,
        target_key: &str,
        now: UnixTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<TaskClaim>> {
        let limit = validate::limit(limit)?;
        let until = lease_end(now, lease);
        let rows: Vec<ClaimedTaskRow> = claim!(
            self,
            claim_tasks_sql,
            " FOR UPDATE SKIP LOCKED",
            now,
            until,
            limit,
            target_key
        );
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let account = AccountId::from_db(&r.account_id)?;
            let agent_id = AgentId::from_db(&r.agent_id)?;
            let agent = match self.agent(account, agent_id).await {
                Ok(a) if !a.is_removed() => a,
                Ok(_) | Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            let task = self
                .task(account, agent_id, TaskId::from_db(&r.id)?)
                .await?;
            out.push(TaskClaim {
                agent,
                task,
                claimed_until: until,
            });
        }
        out.sort_by_key(|c| (c.task.created_at, c.task.id));
        Ok(out)
    }

    /// Extends this replica's claim of an open task to `now + lease`
    /// (updating `claim`). Returns `false` if the task is completed or no
    /// longer this claim's (its lease ran out and another replica may have
    /// it).
    pub async fn extend_task_claim(
        &self,
        claim: &mut TaskClaim,
        now: UnixTime,
        lease: Duration,
    ) -> Result<bool> {
        let until = lease_end(now, lease);
        let n = crate::with_pool!(self, pool => sqlx::query(
            "UPDATE scan_tasks SET claimed_until = $3 \
             WHERE id = $1 AND claimed_until = $2 AND claimed_until > $4 \
               AND completed_at IS NULL",
        )
        .bind(claim.task.id.db())
        .bind(claim.claimed_until)
        .bind(until)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        if n == 1 {
            claim.claimed_until = until;
        }
        Ok(n == 1)
    }
}
