//! Maintenance windows of an account, and the alert notices held while a
//! window covered their agent (see [`vigil_core::maintenance`]).

use crate::ids::{AccountId, AgentId, AlertId, MaintenanceId};
use crate::{with_pool, Result, Store, StoreError, UnixTime};
use vigil_core::maintenance::Window;

/// Most windows one account may keep.
pub const MAX_WINDOWS: i64 = 200;

/// A saved window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub id: MaintenanceId,
    pub account_id: AccountId,
    pub window: Window,
    /// The start of the occurrence the server last saw open, if one is.
    pub open_start: Option<UnixTime>,
    pub created_at: UnixTime,
    /// The email of the user who saved it.
    pub created_by: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WindowRow {
    id: String,
    account_id: String,
    spec: String,
    open_start: Option<i64>,
    created_at: i64,
    created_by: Option<String>,
}

impl TryFrom<WindowRow> for MaintenanceWindow {
    type Error = StoreError;

    fn try_from(r: WindowRow) -> Result<Self> {
        Ok(MaintenanceWindow {
            id: MaintenanceId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            window: serde_json::from_str(&r.spec)
                .map_err(|_| StoreError::corrupt("maintenance window", &r.spec))?,
            open_start: r.open_start,
            created_at: r.created_at,
            created_by: r.created_by,
        })
    }
}

/// Which notice of an alert was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldPhase {
    /// It was raised while its agent was in maintenance.
    Open,
    /// It ended in maintenance after its opening had been told.
    Resolved,
}

impl HeldPhase {
    fn as_str(self) -> &'static str {
        match self {
            HeldPhase::Open => "open",
            HeldPhase::Resolved => "resolved",
        }
    }
}

/// A held notice, as listed for release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldNotice {
    pub alert_id: AlertId,
    pub account_id: AccountId,
    pub agent_id: AgentId,
    pub phase: HeldPhase,
    pub held_at: UnixTime,
}

const COLS: &str = "id, account_id, spec, open_start, created_at, created_by";

fn encode(window: &Window) -> Result<String> {
    window
        .validate()
        .map_err(|e| StoreError::invalid(e.to_string()))?;
    serde_json::to_string(window)
        .map_err(|e| StoreError::invalid(format!("cannot encode the window: {e}")))
}

impl Store {
    /// Saves a new window (checked first; at most [`MAX_WINDOWS`] per account).
    pub async fn create_window(
        &self,
        account: AccountId,
        window: &Window,
        by: Option<&str>,
        now: UnixTime,
    ) -> Result<MaintenanceWindow> {
        let spec = encode(window)?;
        let count = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM maintenance_windows WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_one(pool)
        .await)?;
        if count >= MAX_WINDOWS {
            return Err(StoreError::invalid(format!(
                "an account keeps at most {MAX_WINDOWS} maintenance windows: delete old ones first"
            )));
        }
        let sql = format!(
            "INSERT INTO maintenance_windows (id, account_id, name, spec, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLS}"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, WindowRow>(&sql)
            .bind(MaintenanceId::random().db())
            .bind(account.db())
            .bind(window.name.trim())
            .bind(&spec)
            .bind(now)
            .bind(by)
            .fetch_one(pool)
            .await)?;
        row.try_into()
    }

    /// Replaces a window's settings; whether it is open is worked out again.
    pub async fn update_window(
        &self,
        account: AccountId,
        id: MaintenanceId,
        window: &Window,
    ) -> Result<MaintenanceWindow> {
        let spec = encode(window)?;
        let sql = format!(
            "UPDATE maintenance_windows SET name = $3, spec = $4 \
             WHERE id = $1 AND account_id = $2 RETURNING {COLS}"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, WindowRow>(&sql)
            .bind(id.db())
            .bind(account.db())
            .bind(window.name.trim())
            .bind(&spec)
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// One window of the account.
    pub async fn window(&self, account: AccountId, id: MaintenanceId) -> Result<MaintenanceWindow> {
        let sql =
            format!("SELECT {COLS} FROM maintenance_windows WHERE id = $1 AND account_id = $2");
        let row = with_pool!(self, pool => sqlx::query_as::<_, WindowRow>(&sql)
            .bind(id.db())
            .bind(account.db())
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The account's windows, by name.
    pub async fn windows(&self, account: AccountId) -> Result<Vec<MaintenanceWindow>> {
        let sql = format!(
            "SELECT {COLS} FROM maintenance_windows WHERE account_id = $1 ORDER BY name, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, WindowRow>(&sql)
            .bind(account.db())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Every account's windows (the server's maintenance tick).
    pub async fn all_windows(&self) -> Result<Vec<MaintenanceWindow>> {
        let sql = format!("SELECT {COLS} FROM maintenance_windows ORDER BY account_id, id");
        let rows = with_pool!(self, pool => sqlx::query_as::<_, WindowRow>(&sql)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Deletes a window.
    pub async fn delete_window(&self, account: AccountId, id: MaintenanceId) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "DELETE FROM maintenance_windows WHERE id = $1 AND account_id = $2",
        )
        .bind(id.db())
        .bind(account.db())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        crate::error::found(n)
    }

    /// Records that the window's open occurrence is now `open_start` (or
    /// none) if it was `was`: `true` when this call changed it, so a start
    /// or end is told once even with several server replicas.
    pub async fn mark_window_open(
        &self,
        id: MaintenanceId,
        was: Option<UnixTime>,
        open_start: Option<UnixTime>,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE maintenance_windows SET open_start = $2 \
             WHERE id = $1 AND open_start IS NOT DISTINCT FROM $3",
        )
        .bind(id.db())
        .bind(open_start)
        .bind(was)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Holds a notice of `alert`. An opening held earlier stays held as
    /// such (the contacts never heard of the alert).
    pub async fn hold_notice(
        &self,
        account: AccountId,
        agent: AgentId,
        alert: AlertId,
        phase: HeldPhase,
        now: UnixTime,
    ) -> Result<()> {
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO held_notices (alert_id, account_id, agent_id, phase, held_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alert_id) DO NOTHING",
        )
        .bind(alert.db())
        .bind(account.db())
        .bind(agent.db())
        .bind(phase.as_str())
        .bind(now)
        .execute(pool)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The held notice of `alert`, if any.
    pub async fn held_notice(
        &self,
        account: AccountId,
        alert: AlertId,
    ) -> Result<Option<HeldNotice>> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, (String, String, String, String, i64)>(
            "SELECT alert_id, account_id, agent_id, phase, held_at FROM held_notices \
             WHERE alert_id = $1 AND account_id = $2",
        )
        .bind(alert.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.map(held_from_row).transpose()
    }

    /// Every held notice (the server's maintenance tick), oldest first.
    pub async fn held_notices(&self) -> Result<Vec<HeldNotice>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (String, String, String, String, i64)>(
            "SELECT alert_id, account_id, agent_id, phase, held_at FROM held_notices \
             ORDER BY held_at, alert_id",
        )
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(held_from_row).collect()
    }

    /// Takes a held notice away: `true` if this call did (so it is told
    /// once even with several server replicas).
    pub async fn take_held_notice(&self, alert: AlertId) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query("DELETE FROM held_notices WHERE alert_id = $1")
            .bind(alert.db())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}

fn held_from_row(r: (String, String, String, String, i64)) -> Result<HeldNotice> {
    let phase = match r.3.as_str() {
        "open" => HeldPhase::Open,
        "resolved" => HeldPhase::Resolved,
        other => return Err(StoreError::corrupt("held notice phase", other)),
    };
    Ok(HeldNotice {
        alert_id: AlertId::from_db(&r.0)?,
        account_id: AccountId::from_db(&r.1)?,
        agent_id: AgentId::from_db(&r.2)?,
        phase,
        held_at: r.4,
    })
}
