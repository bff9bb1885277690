//! Alerts: one record per occurrence of a condition on an agent's target.

use crate::ids::{AccountId, AgentId, AlertId};
use crate::model::{condition_kind_str, parse_condition, parse_stored, UnixTime};
use crate::validate;
use crate::{with_pool, Alert, AlertFilter, AlertStatus, Result, Store, StoreError};
use vigil_core::Condition;

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    account_id: String,
    agent_id: String,
    target: String,
    kind: String,
    port: Option<i64>,
    status: String,
    flapping: bool,
    raised_at: i64,
    resolved_at: Option<i64>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(r: AlertRow) -> Result<Alert> {
        Ok(Alert {
            id: AlertId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            agent_id: AgentId::from_db(&r.agent_id)?,
            target: r.target,
            condition: parse_condition(&r.kind, r.port)?,
            status: parse_stored("alert status", &r.status)?,
            flapping: r.flapping,
            raised_at: r.raised_at,
            resolved_at: r.resolved_at,
        })
    }
}

macro_rules! alert_cols {
    () => {
        "id, account_id, agent_id, target, kind, port, status, flapping, raised_at, resolved_at"
    };
}

/// The port as stored, and as compared by the one-open-alert index (`-1` for none).
fn port_key(c: &Condition) -> i64 {
    c.port.map_or(-1, i64::from)
}

impl Store {
    /// Opens an alert for `condition` on the agent's `target`, raised at
    /// `now`. There is at most one open alert per (agent, target, condition):
    /// if one is already open it is returned unchanged.
    pub async fn open_alert(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        condition: Condition,
        flapping: bool,
        now: UnixTime,
    ) -> Result<Alert> {
        validate::target(target)?;
        // A concurrent resolve can remove the conflicting open alert between
        // our insert and lookup; then simply try again.
        for _ in 0..3 {
            let id = AlertId::random();
            let row = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
                "INSERT INTO alerts (id, account_id, agent_id, target, kind, port, status, \
                     flapping, raised_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) \
                 ON CONFLICT DO NOTHING RETURNING ", alert_cols!()
            ))
            .bind(id.db())
            .bind(account.db())
            .bind(agent.db())
            .bind(target)
            .bind(condition_kind_str(condition.kind))
            .bind(condition.port.map(i64::from))
            .bind(flapping)
            .bind(now)
            .fetch_optional(pool)
            .await)?;
            if let Some(row) = row {
                return row.try_into();
            }
            if let Some(open) = self
                .open_alert_for(account, agent, target, condition)
                .await?
            {
                return Ok(open);
            }
        }
        Err(StoreError::Conflict)
    }

    /// The open alert for this condition of the agent's target, if any.
    pub async fn open_alert_for(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        condition: Condition,
    ) -> Result<Option<Alert>> {
        validate::target(target)?;
        let row = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts \
             WHERE account_id = $1 AND agent_id = $2 AND target = $3 AND kind = $4 \
                 AND COALESCE(port, -1) = $5 AND status = 'open'"
        ))
        .bind(account.db())
        .bind(agent.db())
        .bind(target)
        .bind(condition_kind_str(condition.kind))
        .bind(port_key(&condition))
        .fetch_optional(pool)
        .await)?;
        row.map(Alert::try_from).transpose()
    }

    /// One alert of the account.
    pub async fn alert(&self, account: AccountId, alert: AlertId) -> Result<Alert> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts WHERE id = $1 AND account_id = $2"
        ))
        .bind(alert.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Resolves an open alert at `now`. Resolving a resolved alert changes nothing.
    pub async fn resolve_alert(
        &self,
        account: AccountId,
        alert: AlertId,
        now: UnixTime,
    ) -> Result<Alert> {
        with_pool!(self, pool => sqlx::query(
            "UPDATE alerts SET status = 'resolved', resolved_at = $3 \
             WHERE id = $1 AND account_id = $2 AND status = 'open'",
        )
        .bind(alert.db())
        .bind(account.db())
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
        self.alert(account, alert).await
    }

    /// Marks an alert as flapping or not.
    pub async fn set_alert_flapping(
        &self,
        account: AccountId,
        alert: AlertId,
        flapping: bool,
    ) -> Result<Alert> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "UPDATE alerts SET flapping = $3 WHERE id = $1 AND account_id = $2 RETURNING ",
            alert_cols!()
        ))
        .bind(alert.db())
        .bind(account.db())
        .bind(flapping)
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The account's alerts matching `filter`, newest first.
    pub async fn alerts(&self, account: AccountId, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts \
             WHERE account_id = $1 \
                 AND ($2 IS NULL OR status = $2) \
                 AND ($3 IS NULL OR agent_id = $3) \
             ORDER BY raised_at DESC, id"
        ))
        .bind(account.db())
        .bind(filter.status.map(AlertStatus::as_str))
        .bind(filter.agent.map(|a| a.db()))
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Alert::try_from).collect()
    }
}
