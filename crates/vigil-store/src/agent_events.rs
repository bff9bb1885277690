//! An agent's history ("enrolled", "policy changed by owner@…", "health
//! changed: communicating → not communicating", …) and what its
//! reachability timeline is drawn from (the alerts of a time window).
//!
//! Where a change is made in the store without a user (enrollment, the
//! liveness sweeper's health updates), it is recorded here in the same
//! transaction. Changes users make are recorded by the `*_by` methods,
//! which take the actor from the caller. Moves between servers are read
//! from the move instruction itself (`agent_moves`), which the agent
//! completes without any user.

use crate::agents::{agent_cols, AgentRow};
use crate::ids::{AccountId, AgentId};
use crate::model::{health_str, now_unix, parse_condition, parse_health, UnixTime};
use crate::validate;
use crate::{with_pool, Agent, Pool, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use vigil_core::history::{self, AgentEventKind};
use vigil_core::{AgentHealth, Condition, Plan, SecurityPolicy};

/// The actor of changes no user made.
pub const SYSTEM_ACTOR: &str = "system";

/// Longest stored detail, in characters.
pub(crate) const MAX_DETAIL_CHARS: usize = 1000;
/// Longest stored actor, in characters (an email address is at most 254 bytes).
pub(crate) const MAX_ACTOR_CHARS: usize = 254;
/// At most this many alerts feed one timeline (the newest).
const MAX_TIMELINE_ALERTS: i64 = 10_000;

/// One entry of an agent's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub agent_id: AgentId,
    pub at: UnixTime,
    pub kind: AgentEventKind,
    /// The user's email, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// What changed, for people (may be empty).
    pub detail: String,
}

/// An entry to add to an agent's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewAgentEvent<'a> {
    pub at: UnixTime,
    pub kind: AgentEventKind,
    /// The user's email, or [`SYSTEM_ACTOR`].
    pub actor: &'a str,
    pub detail: &'a str,
}

/// An alert of an agent as its timeline sees it: which condition of which
/// target, from when until when (`None`: still open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSpan {
    /// The policy target key, or `agent` for the agent itself.
    pub target: String,
    pub condition: Condition,
    pub raised_at: UnixTime,
    pub resolved_at: Option<UnixTime>,
}

/// Free text as stored: at most `max` characters, control characters as spaces.
pub(crate) fn stored_text(value: &str, max: usize) -> String {
    value
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Adds an event; `seq` is one more than the agent's highest so far.
pub(crate) const INSERT_EVENT: &str = "INSERT INTO agent_events \
         (id, account_id, agent_id, seq, at, kind, actor, detail) \
     SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, $7 \
     FROM agent_events WHERE agent_id = $3";

/// The query that records `$event` (a [`NewAgentEvent`]) for the agent
/// `$agent` (db text) of `$account` (db text) on `$conn`, e.g. inside the
/// caller's transaction; `.await` it.
macro_rules! insert_event {
    ($conn:expr, $account:expr, $agent:expr, $event:expr) => {{
        let e: &$crate::agent_events::NewAgentEvent<'_> = $event;
        sqlx::query($crate::agent_events::INSERT_EVENT)
            .bind(uuid::Uuid::new_v4().hyphenated().to_string())
            .bind($account)
            .bind($agent)
            .bind(e.at)
            .bind(e.kind.as_str())
            .bind($crate::agent_events::stored_text(
                e.actor,
                $crate::agent_events::MAX_ACTOR_CHARS,
            ))
            .bind($crate::agent_events::stored_text(
                e.detail,
                $crate::agent_events::MAX_DETAIL_CHARS,
            ))
            .execute($conn)
    }};
}
pub(crate) use insert_event;

/// The detail of an enrollment.
pub(crate) fn enrolled_detail(name: &str, plan: &str) -> String {
    format!("as {name:?} on the {plan} plan")
}

#[derive(sqlx::FromRow)]
struct EventRow {
    at: i64,
    kind: String,
    actor: String,
    detail: String,
}

#[derive(sqlx::FromRow)]
struct SpanRow {
    target: String,
    kind: String,
    port: Option<i64>,
    raised_at: i64,
    resolved_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct FirstRow {
    target: String,
    first: i64,
}

/// The history of one agent: its own events, and the move instruction's
/// (ordered, and completed) as events of the same shape. `$1` agent,
/// `$2` account. Sorted newest first by `at DESC, seq DESC, rank DESC, id
/// DESC`: a move's entries take the `seq` of the last event recorded by
/// their time and come after it (`rank`), the completion after the order.
const HISTORY: &str = "SELECT id, at, seq, CAST(0 AS BIGINT) AS rank, kind, actor, detail \
         FROM agent_events WHERE agent_id = $1 AND account_id = $2 \
     UNION ALL \
     SELECT 'move-ordered:' || m.agent_id, m.requested_at, \
         (SELECT COALESCE(MAX(e.seq), 0) FROM agent_events e \
             WHERE e.agent_id = m.agent_id AND e.at <= m.requested_at), \
         CAST(1 AS BIGINT), 'move_ordered', 'system', 'told to re-enroll with ' || m.server_url \
         FROM agent_moves m WHERE m.agent_id = $1 AND m.account_id = $2 \
     UNION ALL \
     SELECT 'moved:' || m.agent_id, m.moved_at, \
         (SELECT COALESCE(MAX(e.seq), 0) FROM agent_events e \
             WHERE e.agent_id = m.agent_id AND e.at <= m.moved_at), \
         CAST(2 AS BIGINT), 'moved', 'system', \
         're-enrolled with server ' || COALESCE(m.moved_to, '(unknown)') || '; removed here' \
         FROM agent_moves m \
         WHERE m.agent_id = $1 AND m.account_id = $2 AND m.moved_at IS NOT NULL";

impl Store {
    /// Adds an entry to the agent's history (any agent of the account,
    /// removed ones included).
    pub async fn record_agent_event(
        &self,
        account: AccountId,
        agent: AgentId,
        event: &NewAgentEvent<'_>,
    ) -> Result<()> {
        // The composite foreign key refuses another account's agent.
        with_pool!(self, pool => insert_event!(pool, account.db(), agent.db(), event)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// One page of the agent's history, newest first, and how many entries
    /// it has in all: `offset`, `limit` (1 to 1000).
    pub async fn agent_events(
        &self,
        account: AccountId,
        agent: AgentId,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<AgentEvent>, u64)> {
        let limit = validate::limit(limit)?;
        let offset =
            i64::try_from(offset).map_err(|_| StoreError::invalid("offset is too large"))?;
        self.ensure_agent(account, agent).await?;
        let count_sql = format!("SELECT COUNT(*) FROM ({HISTORY}) h");
        let total = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(&count_sql)
            .bind(agent.db())
            .bind(account.db())
            .fetch_one(pool)
            .await)?;
        let page_sql = format!(
            "SELECT at, kind, actor, detail FROM ({HISTORY}) h \
             ORDER BY at DESC, seq DESC, rank DESC, id DESC LIMIT $3 OFFSET $4"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, EventRow>(&page_sql)
            .bind(agent.db())
            .bind(account.db())
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?;
        let events = rows
            .into_iter()
            .map(|r| {
                Ok(AgentEvent {
                    agent_id: agent,
                    at: r.at,
                    kind: AgentEventKind::parse(&r.kind)
                        .ok_or_else(|| StoreError::corrupt("agent event kind", &r.kind))?,
                    actor: r.actor,
                    detail: r.detail,
                })
            })
            .collect::<Result<_>>()?;
        Ok((events, u64::try_from(total).unwrap_or(0)))
    }

    /// [`Store::put_policy`] by `actor`, recording "policy changed" with
    /// what changed ([`vigil_core::history::policy_change`]); nothing is
    /// recorded when the policy stays the same. Returns the summary.
    pub async fn put_policy_by(
        &self,
        account: AccountId,
        agent: AgentId,
        policy: &SecurityPolicy,
        actor: &str,
    ) -> Result<Option<String>> {
        let old = self.policy(account, agent).await?;
        self.put_policy(account, agent, policy).await?;
        let summary = history::policy_change(old.as_ref(), policy);
        if let Some(detail) = &summary {
            let event = NewAgentEvent {
                at: now_unix(),
                kind: AgentEventKind::PolicyChanged,
                actor,
                detail,
            };
            self.record_agent_event(account, agent, &event).await?;
        }
        Ok(summary)
    }

    /// [`Store::set_plan`] by `actor`, recording "plan changed" when it did.
    pub async fn set_plan_by(
        &self,
        account: AccountId,
        agent: AgentId,
        plan: Plan,
        actor: &str,
    ) -> Result<Agent> {
        let before = self.agent(account, agent).await?;
        let after = self.set_plan(account, agent, plan).await?;
        if let Some(detail) = history::plan_change(before.plan, after.plan) {
            let event = NewAgentEvent {
                at: now_unix(),
                kind: AgentEventKind::PlanChanged,
                actor,
                detail: &detail,
            };
            self.record_agent_event(account, agent, &event).await?;
        }
        Ok(after)
    }

    /// [`Store::remove_agent`] by `actor`, recording "removed" the first time.
    pub async fn remove_agent_by(
        &self,
        account: AccountId,
        agent: AgentId,
        now: UnixTime,
        actor: &str,
    ) -> Result<Agent> {
        let before = self.agent(account, agent).await?;
        let after = self.remove_agent(account, agent, now).await?;
        if !before.is_removed() {
            let event = NewAgentEvent {
                at: now,
                kind: AgentEventKind::Removed,
                actor,
                detail: "it no longer authenticates; its history stays",
            };
            self.record_agent_event(account, agent, &event).await?;
        }
        Ok(after)
    }

    /// Stores the health the liveness sweeper computed for an agent that
    /// is not removed and, when it differs from the stored one, records
    /// "health changed" (by [`SYSTEM_ACTOR`], at the system clock's time)
    /// in the same transaction.
    ///
    /// With `expected`, only if the stored health is that one: `None` when
    /// it is not (another server replica made this change first).
    pub(crate) async fn set_health_recorded(
        &self,
        account: AccountId,
        agent: AgentId,
        expected: Option<AgentHealth>,
        health: AgentHealth,
    ) -> Result<Option<Agent>> {
        const READ: &str = "SELECT last_health FROM agents \
             WHERE id = $1 AND account_id = $2 AND removed_at IS NULL";
        const READ_LOCKED: &str = "SELECT last_health FROM agents \
             WHERE id = $1 AND account_id = $2 AND removed_at IS NULL FOR UPDATE";
        const UPDATE: &str = concat!(
            "UPDATE agents SET last_health = $3 WHERE id = $1 AND account_id = $2 RETURNING ",
            agent_cols!()
        );
        let now = now_unix();
        // Concurrent updates of one agent queue (SQLite: the write lock taken
        // up front; PostgreSQL: the row lock), so each change is told once.
        macro_rules! update {
            ($begin:expr, $read:expr) => {
                async {
                    let mut tx = $begin.await?;
                    let previous = sqlx::query_scalar::<_, String>($read)
                        .bind(agent.db())
                        .bind(account.db())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(previous) = previous else {
                        tx.rollback().await?;
                        return Err(StoreError::NotFound);
                    };
                    let previous = parse_health(&previous)?;
                    if expected.is_some_and(|e| e != previous) {
                        tx.rollback().await?;
                        return Ok(None);
                    }
                    let row = sqlx::query_as::<_, AgentRow>(UPDATE)
                        .bind(agent.db())
                        .bind(account.db())
                        .bind(health_str(health))
                        .fetch_one(&mut *tx)
                        .await?;
                    if let Some(detail) = history::health_change(previous, health) {
                        let event = NewAgentEvent {
                            at: now,
                            kind: AgentEventKind::HealthChanged,
                            actor: SYSTEM_ACTOR,
                            detail: &detail,
                        };
                        insert_event!(&mut *tx, account.db(), agent.db(), &event).await?;
                    }
                    tx.commit().await?;
                    Ok::<Option<AgentRow>, StoreError>(Some(row))
                }
                .await
            };
        }
        let row = match &self.inner.pool {
            Pool::Sqlite(pool) => update!(pool.begin_with("BEGIN IMMEDIATE"), READ)?,
            Pool::Postgres(pool) => update!(pool.begin(), READ_LOCKED)?,
        };
        row.map(Agent::try_from).transpose()
    }

    /// The agent's alerts that a reachability timeline of `[from, to)`
    /// shows — *agent not communicating*, *target unreachable* and
    /// *service down* ones open at some time in the window — oldest first
    /// (at most the newest 10 000).
    pub async fn timeline_alerts(
        &self,
        account: AccountId,
        agent: AgentId,
        from: UnixTime,
        to: UnixTime,
    ) -> Result<Vec<AlertSpan>> {
        self.ensure_agent(account, agent).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, SpanRow>(
            "SELECT target, kind, port, raised_at, resolved_at FROM alerts \
             WHERE agent_id = $1 AND account_id = $2 \
                 AND kind IN ('agent_not_communicating', 'target_unreachable', 'service_down') \
                 AND raised_at < $4 AND (resolved_at IS NULL OR resolved_at > $3) \
             ORDER BY raised_at DESC LIMIT $5",
        )
        .bind(agent.db())
        .bind(account.db())
        .bind(from)
        .bind(to)
        .bind(MAX_TIMELINE_ALERTS)
        .fetch_all(pool)
        .await)?;
        let mut spans = rows
            .into_iter()
            .map(|r| {
                Ok(AlertSpan {
                    condition: parse_condition(&r.kind, r.port)?,
                    target: r.target,
                    raised_at: r.raised_at,
                    resolved_at: r.resolved_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        spans.reverse();
        Ok(spans)
    }

    /// When each target of the agent was first scanned (its oldest stored
    /// result), by target key.
    pub async fn first_scans(
        &self,
        account: AccountId,
        agent: AgentId,
    ) -> Result<Vec<(String, UnixTime)>> {
        self.ensure_agent(account, agent).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, FirstRow>(
            "SELECT target, MIN(started_at) AS first FROM scan_results \
             WHERE agent_id = $1 AND account_id = $2 GROUP BY target ORDER BY target",
        )
        .bind(agent.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(|r| (r.target, r.first)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_clipped_and_printable() {
        assert_eq!(stored_text("a\u{7}b\nc", 10), "a b c");
        assert_eq!(stored_text("héllo", 2), "hé");
        assert_eq!(stored_text("", 5), "");
    }

    #[test]
    fn enrollment_detail() {
        assert_eq!(
            enrolled_detail("Office \"NAS\"", "extended"),
            "as \"Office \\\"NAS\\\"\" on the extended plan"
        );
    }
}
