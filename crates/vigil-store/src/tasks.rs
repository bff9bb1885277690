//! Scan tasks: scans the server hands to an agent. A task is open until the
//! agent completes it or it expires; the agent's result names it.

use crate::ids::{AccountId, AgentId, TaskId};
use crate::model::UnixTime;
use crate::validate::{self, limits};
use crate::{with_pool, Result, ScanTask, Store, StoreError};

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    account_id: String,
    agent_id: String,
    target_key: String,
    target: String,
    ports: String,
    created_at: i64,
    expires_at: i64,
    completed_at: Option<i64>,
}

impl TryFrom<TaskRow> for ScanTask {
    type Error = StoreError;

    fn try_from(r: TaskRow) -> Result<ScanTask> {
        Ok(ScanTask {
            id: TaskId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            agent_id: AgentId::from_db(&r.agent_id)?,
            target_key: r.target_key,
            target: r.target,
            ports: r.ports,
            created_at: r.created_at,
            expires_at: r.expires_at,
            completed_at: r.completed_at,
        })
    }
}

macro_rules! task_cols {
    () => {
        "id, account_id, agent_id, target_key, target, ports, created_at, expires_at, \
         completed_at"
    };
}

fn check_target_key(value: &str) -> Result<()> {
    validate::text("target key", value, limits::MAX_TARGET_KEY_LEN)
}

impl Store {
    /// Hands the agent a scan of `target` (the policy target `target_key`,
    /// see [`vigil_core::PolicyTarget::key`]) on `ports`, created at `now`
    /// and open until `expires_at` (which must be later than `now`). A
    /// scheduled task names its policy `run` ([`crate::DuePolicy::run`]): a
    /// second task for the same agent, target key and run is refused with
    /// [`StoreError::Conflict`], so a run scans once however many replicas
    /// schedule it. [`StoreError::NotFound`] if the agent is not
    /// the account's or is removed.
    #[allow(clippy::too_many_arguments)] // flat like the other methods; no struct for one call
    pub async fn create_task(
        &self,
        account: AccountId,
        agent: AgentId,
        target_key: &str,
        target: &str,
        ports: &str,
        now: UnixTime,
        expires_at: UnixTime,
        run: Option<&str>,
    ) -> Result<ScanTask> {
        check_target_key(target_key)?;
        validate::target(target)?;
        validate::task_ports(ports)?;
        if expires_at <= now {
            return Err(StoreError::invalid(
                "a scan task must expire after it is created (expires_at > now)",
            ));
        }
        // Selecting from `agents` refuses a removed agent in the same statement.
        let row = with_pool!(self, pool => sqlx::query_as::<_, TaskRow>(concat!(
            "INSERT INTO scan_tasks (id, account_id, agent_id, target_key, target, ports, \
                 created_at, expires_at, run_id) \
             SELECT $1, account_id, id, $4, $5, $6, $7, $8, $9 FROM agents \
             WHERE id = $3 AND account_id = $2 AND removed_at IS NULL \
             RETURNING ", task_cols!()
        ))
        .bind(TaskId::random().db())
        .bind(account.db())
        .bind(agent.db())
        .bind(target_key)
        .bind(target)
        .bind(ports)
        .bind(now)
        .bind(expires_at)
        .bind(run)
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The agent's open tasks at `now` (not completed, `expires_at > now`),
    /// oldest first. Another account's agent has none.
    pub async fn open_tasks(
        &self,
        account: AccountId,
        agent: AgentId,
        now: UnixTime,
    ) -> Result<Vec<ScanTask>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, TaskRow>(concat!(
            "SELECT ", task_cols!(), " FROM scan_tasks \
             WHERE agent_id = $1 AND account_id = $2 AND completed_at IS NULL \
                 AND expires_at > $3 \
             ORDER BY created_at, id"
        ))
        .bind(agent.db())
        .bind(account.db())
        .bind(now)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(ScanTask::try_from).collect()
    }

    /// One task of the agent, open or not.
    pub async fn task(&self, account: AccountId, agent: AgentId, task: TaskId) -> Result<ScanTask> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, TaskRow>(concat!(
            "SELECT ", task_cols!(), " FROM scan_tasks \
             WHERE id = $1 AND agent_id = $2 AND account_id = $3"
        ))
        .bind(task.db())
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Marks the task completed at `now`, expired or not. Returns whether
    /// this call completed it: `false` if it was already completed or is not
    /// a task of this agent (not an error, so a retried result is harmless).
    pub async fn complete_task(
        &self,
        account: AccountId,
        agent: AgentId,
        task: TaskId,
        now: UnixTime,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE scan_tasks SET completed_at = $4 \
             WHERE id = $1 AND agent_id = $2 AND account_id = $3 AND completed_at IS NULL",
        )
        .bind(task.db())
        .bind(agent.db())
        .bind(account.db())
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Whether the agent has an open task at `now` for the policy target `target_key`.
    pub async fn has_open_task(
        &self,
        account: AccountId,
        agent: AgentId,
        target_key: &str,
        now: UnixTime,
    ) -> Result<bool> {
        check_target_key(target_key)?;
        let found = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM scan_tasks \
             WHERE agent_id = $1 AND account_id = $2 AND target_key = $3 \
                 AND completed_at IS NULL AND expires_at > $4 \
             LIMIT 1",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(target_key)
        .bind(now)
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }
}
