//! Compliance ("find the machines Vigil does not protect"): the account's
//! scope and schedule (here), assessments with their progress
//! (`assessments.rs`), the endpoints each assessment found
//! (`endpoints.rs`) and searching them (`search.rs`).
//!
//! An account has at most one running assessment: starting one cancels the
//! running one in the same transaction, and only a running assessment takes
//! progress, endpoints or its end. The engine polls
//! [`Store::is_assessment_running`] to stop when it was cancelled.

mod assessments;
mod endpoints;
mod identify_keys;
mod search;

pub use endpoints::endpoint_key;
pub use identify_keys::AgentIdentifyKey;

use crate::error::found;
use crate::ids::AccountId;
use crate::model::{from_json, now_unix, to_json, UnixTime};
use crate::validate::limits;
use crate::{with_pool, Result, Store, StoreError};
use std::net::IpAddr;
use uuid::Uuid;
use vigil_core::compliance::{
    check_keep_bind_password, AdBind, ComplianceSchedule, ComplianceScope, Dn,
};

#[derive(sqlx::FromRow)]
struct ScopeRow {
    scope: Option<String>,
    has_password: bool,
}

#[derive(sqlx::FromRow)]
struct DueScheduleRow {
    account_id: String,
    schedule: String,
}

pub(super) fn parse_addrs(text: &str) -> Result<Vec<IpAddr>> {
    from_json("endpoint addresses", text)
}

pub(super) fn parse_dn(text: &str) -> Result<Dn> {
    Dn::parse(text).map_err(|_| StoreError::corrupt("container", text))
}

pub(super) fn parse_guid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| StoreError::corrupt("AD GUID", text))
}

pub(super) fn stored_count(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| StoreError::corrupt("count", &n.to_string()))
}

pub(super) fn db_count(what: &str, n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::invalid(format!("{what} is too large")))
}

/// What a sealed AD password is bound to.
pub(crate) fn ad_password_context(account: AccountId) -> String {
    format!("compliance_scopes.ad_password:{account}")
}

fn check_ad_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(StoreError::invalid(
            "the AD bind password must not be empty (pass none to keep the stored one)",
        ));
    }
    if password.len() > limits::MAX_PASSWORD_LEN || password.contains('\0') {
        return Err(StoreError::invalid(format!(
            "the AD bind password must be at most {} bytes without NUL",
            limits::MAX_PASSWORD_LEN
        )));
    }
    Ok(())
}

/// Keeping the stored bind password (the update carries none) is refused
/// when the update changes the AD connection it was entered for.
fn keep_password_check(stored: &ComplianceScope, new: &ComplianceScope) -> Result<()> {
    match (&stored.ad, &new.ad) {
        (Some(old), Some(new)) => {
            check_keep_bind_password(old, new).map_err(|e| StoreError::invalid(e.to_string()))
        }
        // A stored password belongs to a stored simple bind, and a kept
        // password to a new simple bind: neither side can be missing.
        _ => Err(StoreError::invalid(
            "the AD connection changed: enter the bind password again",
        )),
    }
}

impl Store {
    /// Saves the account's compliance scope after [`ComplianceScope::validate`]
    /// (a rejected scope is [`StoreError::Invalid`] with its message).
    ///
    /// `ad_password` is the AD simple-bind password: `None` keeps the stored
    /// one, but only while the AD connection (URL, bind, CA certificate) is
    /// unchanged: when a password is stored and the update changes the
    /// connection ([`check_keep_bind_password`]), `None` is
    /// [`StoreError::Invalid`] and nothing is saved, so a stored password
    /// never goes to a directory it was not entered for. A scope without a
    /// simple bind (no AD scope, or GSSAPI) keeps no password: the stored
    /// one is dropped, and passing one is invalid.
    pub async fn put_compliance_scope(
        &self,
        account: AccountId,
        scope: &ComplianceScope,
        ad_password: Option<&str>,
    ) -> Result<()> {
        scope
            .validate()
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        let simple_bind = scope
            .ad
            .as_ref()
            .is_some_and(|ad| matches!(ad.bind, AdBind::Simple { .. }));
        if let Some(password) = ad_password {
            if !simple_bind {
                return Err(StoreError::invalid(
                    "an AD bind password is only used with a simple bind: \
                     configure an AD scope with a simple bind or leave the password out",
                ));
            }
            check_ad_password(password)?;
        }
        let replace_password = ad_password.is_some() || !simple_bind;
        let ad_password = ad_password
            .map(|p| self.seal(&ad_password_context(account), p))
            .transpose()?;
        let json = to_json("compliance scope", scope)?;
        const STORED: &str = "SELECT scope, ad_password IS NOT NULL AS has_password \
             FROM compliance_scopes WHERE account_id = $1";
        const UPSERT: &str = "INSERT INTO compliance_scopes \
                 (account_id, scope, ad_password, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id) DO UPDATE SET scope = excluded.scope, \
                 ad_password = CASE WHEN $5 THEN excluded.ad_password \
                                    ELSE compliance_scopes.ad_password END, \
                 updated_at = excluded.updated_at";

        // The stored scope is read and replaced in one transaction, so the
        // connection the kept password was entered for is the one compared.
        crate::in_account_tx!(self, account, |tx| {
            if !replace_password {
                let stored = sqlx::query_as::<_, ScopeRow>(STORED)
                    .bind(account.db())
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(ScopeRow {
                    scope: Some(text),
                    has_password: true,
                }) = stored
                {
                    keep_password_check(&from_json("compliance scope", &text)?, scope)?;
                }
            }
            sqlx::query(UPSERT)
                .bind(account.db())
                .bind(&json)
                .bind(ad_password.as_deref())
                .bind(now_unix())
                .bind(replace_password)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// The account's compliance scope and whether an AD bind password is
    /// stored; `None` until a scope is saved.
    pub async fn compliance_scope(
        &self,
        account: AccountId,
    ) -> Result<Option<(ComplianceScope, bool)>> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, ScopeRow>(
            "SELECT scope, ad_password IS NOT NULL AS has_password FROM compliance_scopes \
             WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        let Some(ScopeRow {
            scope: Some(text),
            has_password,
        }) = row
        else {
            return Ok(None);
        };
        Ok(Some((from_json("compliance scope", &text)?, has_password)))
    }

    /// The stored AD bind password, for the server's own use (never shown).
    pub async fn compliance_ad_password(&self, account: AccountId) -> Result<Option<String>> {
        let password = with_pool!(self, pool => sqlx::query_scalar::<_, Option<String>>(
            "SELECT ad_password FROM compliance_scopes WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        password
            .flatten()
            .map(|p| self.open(&ad_password_context(account), &p))
            .transpose()
    }

    /// Saves the account's assessment schedule after
    /// [`ComplianceSchedule::validate`] and schedules its next run:
    /// [`ComplianceSchedule::next_run`] after `now` (none when disabled).
    pub async fn put_compliance_schedule(
        &self,
        account: AccountId,
        schedule: &ComplianceSchedule,
        now: UnixTime,
    ) -> Result<()> {
        schedule
            .validate()
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        let json = to_json("compliance schedule", schedule)?;
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO compliance_scopes (account_id, schedule, next_run_at, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id) DO UPDATE SET schedule = excluded.schedule, \
                 next_run_at = excluded.next_run_at, updated_at = excluded.updated_at",
        )
        .bind(account.db())
        .bind(&json)
        .bind(schedule.next_run(now))
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The account's schedule; `None` until one is saved.
    pub async fn compliance_schedule(
        &self,
        account: AccountId,
    ) -> Result<Option<ComplianceSchedule>> {
        let text = with_pool!(self, pool => sqlx::query_scalar::<_, Option<String>>(
            "SELECT schedule FROM compliance_scopes WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        text.flatten()
            .map(|t| from_json("compliance schedule", &t))
            .transpose()
    }

    /// When the account's next scheduled assessment is due; `None` if none is.
    pub async fn compliance_next_run(&self, account: AccountId) -> Result<Option<UnixTime>> {
        let at = with_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT next_run_at FROM compliance_scopes WHERE account_id = $1",
        )
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(at.flatten())
    }

    /// Schedules whose next run is due at `now`, earliest first, of every
    /// account. The caller starts each assessment (if the account has a
    /// scope with targets) and reschedules it with
    /// [`Store::set_compliance_next_run`].
    pub async fn due_compliance_schedules(
        &self,
        now: UnixTime,
    ) -> Result<Vec<(AccountId, ComplianceSchedule)>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, DueScheduleRow>(
            "SELECT account_id, schedule FROM compliance_scopes \
             WHERE next_run_at IS NOT NULL AND next_run_at <= $1 AND schedule IS NOT NULL \
             ORDER BY next_run_at, account_id",
        )
        .bind(now)
        .fetch_all(pool)
        .await)?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    AccountId::from_db(&r.account_id)?,
                    from_json("compliance schedule", &r.schedule)?,
                ))
            })
            .collect()
    }

    /// Moves the account's schedule, due at `now`, on to `next`, if it is
    /// still due: `false` when it is not (another server replica claimed
    /// this run first). A replica runs the assessment only after winning.
    pub async fn claim_compliance_run(
        &self,
        account: AccountId,
        now: UnixTime,
        next: Option<UnixTime>,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE compliance_scopes SET next_run_at = $3 \
             WHERE account_id = $1 AND next_run_at IS NOT NULL AND next_run_at <= $2",
        )
        .bind(account.db())
        .bind(now)
        .bind(next)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Sets when the account's next scheduled assessment is due (`None`:
    /// never). [`StoreError::NotFound`] if the account saved no scope or schedule.
    pub async fn set_compliance_next_run(
        &self,
        account: AccountId,
        at: Option<UnixTime>,
    ) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE compliance_scopes SET next_run_at = $2 WHERE account_id = $1",
        )
        .bind(account.db())
        .bind(at)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)
    }
}
