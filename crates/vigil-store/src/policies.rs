//! Security-scan policies, their schedule, and the alert-evaluation state per target.

use crate::agents::{agent_cols, AgentRow};
use crate::error::found;
use crate::ids::{AccountId, AgentId};
use crate::model::{from_json, now_unix, to_json, UnixTime};
use crate::validate;
use crate::{with_pool, Agent, Result, Store, StoreError};
use vigil_core::{SecurityPolicy, TargetState};

#[derive(sqlx::FromRow)]
struct VersionedStateRow {
    state: Option<String>,
    version: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct PolicyLookupRow {
    policy: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    #[sqlx(flatten)]
    agent: AgentRow,
    policy: String,
}

impl Store {
    /// Stores the agent's security policy, replacing any previous one, after
    /// checking it with [`SecurityPolicy::validate`] for the account's kind
    /// (a rejected policy is [`StoreError::Invalid`]). A new or changed
    /// policy is due at once (`next_run_at` is cleared), as a new run.
    pub async fn put_policy(
        &self,
        account: AccountId,
        agent: AgentId,
        policy: &SecurityPolicy,
    ) -> Result<()> {
        let kind = self.account(account).await?.kind;
        policy
            .validate(kind)
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        let json = to_json("policy", policy)?;
        // The composite foreign key refuses another account's agent; the
        // WHERE keeps an upsert from touching another account's row.
        let n = with_pool!(self, pool => sqlx::query(
            "INSERT INTO policies (agent_id, account_id, policy, updated_at, next_run_at) \
             VALUES ($1, $2, $3, $4, NULL) \
             ON CONFLICT (agent_id) DO UPDATE SET policy = excluded.policy, \
                 updated_at = excluded.updated_at, next_run_at = NULL, run_id = NULL \
             WHERE policies.account_id = excluded.account_id",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(&json)
        .bind(now_unix())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }

    /// The agent's policy; `None` if it has none yet.
    pub async fn policy(
        &self,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Option<SecurityPolicy>> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, PolicyLookupRow>(
            "SELECT p.policy FROM agents a \
             LEFT JOIN policies p ON p.agent_id = a.id AND p.account_id = a.account_id \
             WHERE a.id = $1 AND a.account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?
            .policy
            .map(|text| from_json("policy", &text))
            .transpose()
    }

    /// Switches the agent's stored policy on or off, keeping everything else
    /// (including its schedule, `next_run_at`). [`StoreError::NotFound`] if
    /// the agent has no policy or is not the account's.
    pub async fn set_policy_enabled(
        &self,
        account: AccountId,
        agent: AgentId,
        enabled: bool,
    ) -> Result<()> {
        // Read, change, write back only if the stored text is still what was
        // read: a policy replaced in between is read again, not overwritten.
        for _ in 0..3 {
            let text = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
                "SELECT policy FROM policies WHERE agent_id = $1 AND account_id = $2",
            )
            .bind(agent.db())
            .bind(account.db())
            .fetch_optional(pool)
            .await)?
            .ok_or(StoreError::NotFound)?;
            let mut policy: SecurityPolicy = from_json("policy", &text)?;
            if policy.enabled == enabled {
                return Ok(());
            }
            policy.enabled = enabled;
            let json = to_json("policy", &policy)?;
            let n = with_pool!(self, pool => sqlx::query(
                "UPDATE policies SET policy = $3, updated_at = $4 \
                 WHERE agent_id = $1 AND account_id = $2 AND policy = $5",
            )
            .bind(agent.db())
            .bind(account.db())
            .bind(&json)
            .bind(now_unix())
            .bind(&text)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
            if n > 0 {
                return Ok(());
            }
        }
        Err(StoreError::Conflict)
    }

    /// Policies whose next run is due at `now` (`next_run_at` unset or not
    /// after `now`), with their agents, for agents that are not removed. The
    /// caller decides with [`vigil_core::scan_status`] whether each one
    /// actually runs, and reschedules it with [`Store::set_next_run`].
    pub async fn due_policies(&self, now: UnixTime) -> Result<Vec<(Agent, SecurityPolicy)>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, DueRow>(concat!(
            "SELECT ", agent_cols!("a"), ", p.policy FROM policies p \
             JOIN agents a ON a.id = p.agent_id AND a.account_id = p.account_id \
             WHERE a.removed_at IS NULL AND (p.next_run_at IS NULL OR p.next_run_at <= $1) \
             ORDER BY COALESCE(p.next_run_at, 0), a.id"
        ))
        .bind(now)
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|r| Ok((Agent::try_from(r.agent)?, from_json("policy", &r.policy)?)))
            .collect()
    }

    /// When the agent's next scan is due; `None` without a policy or when
    /// it is due at once.
    pub async fn next_run(&self, account: AccountId, agent: AgentId) -> Result<Option<UnixTime>> {
        let at = with_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT next_run_at FROM policies WHERE agent_id = $1 AND account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(at.flatten())
    }

    /// Schedules the agent's next scan, a new run (and ends this replica's
    /// claim of the policy, see [`Store::claim_due_policies`]).
    pub async fn set_next_run(
        &self,
        account: AccountId,
        agent: AgentId,
        at: UnixTime,
    ) -> Result<()> {
        self.end_run(account, agent, at, false).await
    }

    /// [`Store::set_next_run`], after a run that created a scan of the
    /// observed address when `outside_scanned` (the next one probes the next
    /// slice, see [`crate::DuePolicy::outside_runs`]).
    pub async fn end_run(
        &self,
        account: AccountId,
        agent: AgentId,
        at: UnixTime,
        outside_scanned: bool,
    ) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE policies SET next_run_at = $3, claimed_until = NULL, run_id = $4, \
                 outside_runs = outside_runs + $5 \
             WHERE agent_id = $1 AND account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(at)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(i64::from(outside_scanned))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }

    /// The evaluation state of one target of an agent; the default (empty)
    /// state if none was stored yet.
    pub async fn target_state(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
    ) -> Result<TargetState> {
        let (state, _) = self.target_state_versioned(account, agent, target).await?;
        Ok(state)
    }

    /// [`Store::target_state`] with its version (0: never stored), for
    /// [`Store::put_target_state_if`].
    pub async fn target_state_versioned(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
    ) -> Result<(TargetState, i64)> {
        validate::target(target)?;
        let row = with_pool!(self, pool => sqlx::query_as::<_, VersionedStateRow>(
            "SELECT s.state, s.version FROM agents a \
             LEFT JOIN target_states s \
                 ON s.agent_id = a.id AND s.account_id = a.account_id AND s.target = $3 \
             WHERE a.id = $1 AND a.account_id = $2",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(target)
        .fetch_optional(pool)
        .await)?;
        let row = row.ok_or(StoreError::NotFound)?;
        match (row.state, row.version) {
            (Some(text), Some(version)) => Ok((from_json("target state", &text)?, version)),
            _ => Ok((TargetState::default(), 0)),
        }
    }

    /// Stores the evaluation state of one target only if its version is
    /// still `version` (as read with [`Store::target_state_versioned`]):
    /// `false` when another writer (another server replica) stored one in
    /// between; read and evaluate again then.
    pub async fn put_target_state_if(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        state: &TargetState,
        version: i64,
    ) -> Result<bool> {
        validate::target(target)?;
        let json = to_json("target state", state)?;
        let n = if version == 0 {
            // Another writer's first state wins the primary key.
            with_pool!(self, pool => sqlx::query(
                "INSERT INTO target_states (agent_id, account_id, target, state, updated_at, version) \
                 SELECT id, account_id, $3, $4, $5, 1 FROM agents WHERE id = $1 AND account_id = $2 \
                 ON CONFLICT (agent_id, target) DO NOTHING",
            )
            .bind(agent.db())
            .bind(account.db())
            .bind(target)
            .bind(&json)
            .bind(now_unix())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?
        } else {
            with_pool!(self, pool => sqlx::query(
                "UPDATE target_states SET state = $4, updated_at = $5, version = version + 1 \
                 WHERE agent_id = $1 AND account_id = $2 AND target = $3 AND version = $6",
            )
            .bind(agent.db())
            .bind(account.db())
            .bind(target)
            .bind(&json)
            .bind(now_unix())
            .bind(version)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?
        };
        Ok(n == 1)
    }

    /// Stores the evaluation state of one target of an agent.
    pub async fn put_target_state(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        state: &TargetState,
    ) -> Result<()> {
        validate::target(target)?;
        let json = to_json("target state", state)?;
        let n = with_pool!(self, pool => sqlx::query(
            "INSERT INTO target_states (agent_id, account_id, target, state, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (agent_id, target) DO UPDATE SET state = excluded.state, \
                 updated_at = excluded.updated_at, version = target_states.version + 1 \
             WHERE target_states.account_id = excluded.account_id",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(target)
        .bind(&json)
        .bind(now_unix())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }
}
