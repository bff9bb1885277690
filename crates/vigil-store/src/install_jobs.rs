//! Push-install jobs: the agent installs over SSH that compliance starts on
//! machines without an agent, one row per job and one per host, so a job
//! outlives the server process that ran it (its page, `GET
//! /compliance/install/{id}`, answers from any replica and after a restart).
//!
//! A running job holds a lease its server renews
//! ([`Store::renew_install_job`]). A job whose lease ran out lost its
//! server — stopped, killed, or cut off from the database — and cannot go
//! on anywhere else: the SSH key it was given is never stored. Such a job
//! is ended as [`InstallJobState::Interrupted`] by whichever replica sees it
//! first ([`Store::interrupt_stalled_install_jobs`]), and each host it had
//! not finished fails with the reason. Finished jobs stay until retention
//! deletes them ([`Store::prune_install_jobs`]); an account keeps at most
//! [`InstallJobLimits::kept_per_account`] finished ones besides.

use crate::ids::{AccountId, InstallJobId};
use crate::model::{parse_stored, InstallHostState, InstallJobState, UnixTime};
use crate::validate;
use crate::{with_pool, Pool, Result, Store, StoreError};

/// Runs `$body` in a write transaction named `$tx` and commits (SQLite:
/// `BEGIN IMMEDIATE`, the write lock up front).
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:block) => {
        match &$store.inner.pool {
            Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Fails, with `$reason`, the hosts of `$job` that are pending or
/// running, in the transaction `$tx`.
macro_rules! fail_unfinished_hosts {
    ($tx:ident, $job:expr, $now:expr, $reason:expr) => {
        sqlx::query(
            "UPDATE install_job_hosts SET state = 'failed', error = $3, finished_at = $2 \
             WHERE job_id = $1 AND state IN ('pending', 'running')",
        )
        .bind($job.db())
        .bind($now)
        .bind($reason)
        .execute(&mut *$tx)
        .await?
    };
}

/// A push-install job with its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallJob {
    pub id: InstallJobId,
    pub account_id: AccountId,
    pub state: InstallJobState,
    pub created_at: UnixTime,
    pub finished_at: Option<UnixTime>,
    /// In the order the request gave the addresses.
    pub hosts: Vec<InstallHost>,
}

/// One address of a job and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallHost {
    pub address: String,
    pub state: InstallHostState,
    /// What happened, for people (how the agent was started, a host key
    /// accepted on first use, …).
    pub message: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The agent it enrolled.
    pub agent_id: Option<String>,
    pub finished_at: Option<UnixTime>,
}

/// How many jobs an account may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallJobLimits {
    /// Running at once (all replicas together).
    pub running_per_account: u32,
    /// Finished jobs kept (the newest); older ones are deleted when a job
    /// starts, whatever their age.
    pub kept_per_account: u32,
}

/// Longest stored host message or error, in characters.
const MAX_TEXT_CHARS: usize = 4000;
/// Most hosts in one job (the API allows 256 per request).
const MAX_HOSTS: usize = 1024;

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    account_id: String,
    state: String,
    created_at: i64,
    finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct HostRow {
    address: String,
    state: String,
    message: Option<String>,
    error: Option<String>,
    agent_id: Option<String>,
    finished_at: Option<i64>,
}

impl TryFrom<HostRow> for InstallHost {
    type Error = StoreError;

    fn try_from(r: HostRow) -> Result<InstallHost> {
        Ok(InstallHost {
            address: r.address,
            state: parse_stored("install host state", &r.state)?,
            message: r.message,
            error: r.error,
            agent_id: r.agent_id,
            finished_at: r.finished_at,
        })
    }
}

/// Free text as stored: bounded, control characters (but newlines) as spaces.
fn stored(text: Option<&str>) -> Option<String> {
    text.map(|t| validate::error_message(&t.chars().take(MAX_TEXT_CHARS).collect::<String>()))
}

impl Store {
    /// Starts a job of `account` installing on `addresses` at `now`, held
    /// by its server until `lease_until`; every host pending. `None` when
    /// the account already has `limits.running_per_account` jobs running.
    /// The account's finished jobs beyond the newest
    /// `limits.kept_per_account - 1` are deleted (room for this one).
    pub async fn start_install_job(
        &self,
        account: AccountId,
        addresses: &[String],
        now: UnixTime,
        lease_until: UnixTime,
        limits: InstallJobLimits,
    ) -> Result<Option<InstallJob>> {
        if addresses.is_empty() || addresses.len() > MAX_HOSTS {
            return Err(StoreError::invalid(format!(
                "an install job has 1 to {MAX_HOSTS} addresses"
            )));
        }
        for a in addresses {
            validate::text("install address", a, 64)?;
        }
        let id = InstallJobId::random();
        let started = crate::in_account_tx!(self, account, |tx| {
            let running: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM install_jobs WHERE account_id = $1 AND state = 'running'",
            )
            .bind(account.db())
            .fetch_one(&mut *tx)
            .await?;
            if running >= i64::from(limits.running_per_account) {
                false
            } else {
                // The newest kept - 1 finished jobs stay (room for this one).
                sqlx::query(
                    "DELETE FROM install_jobs \
                     WHERE account_id = $1 AND state <> 'running' AND id NOT IN ( \
                         SELECT id FROM install_jobs \
                         WHERE account_id = $1 AND state <> 'running' \
                         ORDER BY created_at DESC, id DESC LIMIT $2)",
                )
                .bind(account.db())
                .bind(i64::from(limits.kept_per_account.saturating_sub(1)))
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO install_jobs (id, account_id, state, created_at, lease_until) \
                     SELECT $1, id, 'running', $3, $4 FROM accounts WHERE id = $2",
                )
                .bind(id.db())
                .bind(account.db())
                .bind(now)
                .bind(lease_until)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err(StoreError::NotFound);
                }
                for (seq, address) in addresses.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO install_job_hosts (job_id, account_id, seq, address, state) \
                         VALUES ($1, $2, $3, $4, 'pending')",
                    )
                    .bind(id.db())
                    .bind(account.db())
                    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .bind(address)
                    .execute(&mut *tx)
                    .await?;
                }
                true
            }
        });
        if !started {
            return Ok(None);
        }
        self.install_job(account, id).await.map(Some)
    }

    /// A job of `account`; another account's is [`StoreError::NotFound`].
    pub async fn install_job(&self, account: AccountId, job: InstallJobId) -> Result<InstallJob> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, JobRow>(
            "SELECT id, account_id, state, created_at, finished_at FROM install_jobs \
             WHERE id = $1 AND account_id = $2",
        )
        .bind(job.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?
        .ok_or(StoreError::NotFound)?;
        let hosts = with_pool!(self, pool => sqlx::query_as::<_, HostRow>(
            "SELECT address, state, message, error, agent_id, finished_at \
             FROM install_job_hosts WHERE job_id = $1 AND account_id = $2 ORDER BY seq",
        )
        .bind(job.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        Ok(InstallJob {
            id: InstallJobId::from_db(&row.id)?,
            account_id: AccountId::from_db(&row.account_id)?,
            state: parse_stored("install job state", &row.state)?,
            created_at: row.created_at,
            finished_at: row.finished_at,
            hosts: hosts
                .into_iter()
                .map(InstallHost::try_from)
                .collect::<Result<_>>()?,
        })
    }

    /// Records where host `seq` (its index in the request) of the job
    /// stands. Written whatever the job's state: an install that finished
    /// after its job was ended as interrupted still says what it did.
    pub async fn set_install_host(
        &self,
        account: AccountId,
        job: InstallJobId,
        seq: usize,
        host: &InstallHost,
    ) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE install_job_hosts SET state = $4, message = $5, error = $6, agent_id = $7, \
                 finished_at = $8 \
             WHERE job_id = $1 AND account_id = $2 AND seq = $3",
        )
        .bind(job.db())
        .bind(account.db())
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(host.state.as_str())
        .bind(stored(host.message.as_deref()))
        .bind(stored(host.error.as_deref()))
        .bind(host.agent_id.as_deref())
        .bind(host.finished_at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        crate::error::found(n)
    }

    /// Keeps the running job with its server until `until`. `false` when
    /// it no longer runs (finished, or ended as interrupted meanwhile).
    pub async fn renew_install_job(
        &self,
        account: AccountId,
        job: InstallJobId,
        until: UnixTime,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE install_jobs SET lease_until = $3 \
             WHERE id = $1 AND account_id = $2 AND state = 'running'",
        )
        .bind(job.db())
        .bind(account.db())
        .bind(until)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Ends the running job as done at `now` (every host was tried).
    /// `false` when it was no longer running.
    pub async fn finish_install_job(
        &self,
        account: AccountId,
        job: InstallJobId,
        now: UnixTime,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE install_jobs SET state = 'done', finished_at = $3, lease_until = NULL \
             WHERE id = $1 AND account_id = $2 AND state = 'running'",
        )
        .bind(job.db())
        .bind(account.db())
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Ends the running job as interrupted at `now`: each host not
    /// finished fails with `reason`. `false` when it was not running.
    pub async fn interrupt_install_job(
        &self,
        account: AccountId,
        job: InstallJobId,
        now: UnixTime,
        reason: &str,
    ) -> Result<bool> {
        let reason = validate::error_message(reason);
        let ended = in_tx!(self, |tx| {
            let n = sqlx::query(
                "UPDATE install_jobs SET state = 'interrupted', finished_at = $3, \
                     lease_until = NULL \
                 WHERE id = $1 AND account_id = $2 AND state = 'running'",
            )
            .bind(job.db())
            .bind(account.db())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                fail_unfinished_hosts!(tx, job, now, &reason);
            }
            n == 1
        });
        Ok(ended)
    }

    /// Ends as interrupted, at `now`, every running job whose lease ran
    /// out (its server stopped renewing it: stopped, killed, or cut off
    /// from the database); each host it had not finished fails with
    /// `reason`. Each job is returned to one caller only.
    pub async fn interrupt_stalled_install_jobs(
        &self,
        now: UnixTime,
        reason: &str,
    ) -> Result<Vec<(AccountId, InstallJobId)>> {
        let reason = validate::error_message(reason);
        let ended = in_tx!(self, |tx| {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "UPDATE install_jobs SET state = 'interrupted', finished_at = $1, \
                     lease_until = NULL \
                 WHERE state = 'running' AND COALESCE(lease_until, created_at) <= $1 \
                 RETURNING id, account_id",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let mut ended = Vec::with_capacity(rows.len());
            for (id, account) in rows {
                let job = InstallJobId::from_db(&id)?;
                fail_unfinished_hosts!(tx, job, now, &reason);
                ended.push((AccountId::from_db(&account)?, job));
            }
            ended
        });
        Ok(ended)
    }

    /// Deletes up to `batch` (1 to 1000) jobs that finished (done or
    /// interrupted) before `before`, oldest first, with their hosts.
    /// Returns how many; fewer than `batch` means nothing more is due.
    pub async fn prune_install_jobs(&self, before: UnixTime, batch: u32) -> Result<u64> {
        let batch = validate::limit(batch)?;
        let n = with_pool!(self, pool => sqlx::query(
            "DELETE FROM install_jobs WHERE id IN ( \
                 SELECT id FROM install_jobs \
                 WHERE state <> 'running' AND finished_at < $1 \
                 ORDER BY finished_at LIMIT $2)",
        )
        .bind(before)
        .bind(batch)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }
}
