//! The audit log of an account: who changed what, when and from where
//! (users, tokens, roles, the compliance scope, policies, contacts, rules,
//! moves, installs, logins and failed logins).
//!
//! Entries are written next to the change, not in its transaction: a
//! change that is refused leaves no entry, and an entry that cannot be
//! written is logged and does not undo the change. They are read newest
//! first in pages (`before` the last one seen) and pruned by age.

use crate::ids::{AccountId, UserId};
use crate::validate;
use crate::{with_pool, Result, Store, StoreError};

/// Longest text of one field; longer text is cut (the log must take
/// whatever a client sent that was worth recording).
const MAX_FIELD_CHARS: usize = 512;
/// Longest `detail` JSON.
const MAX_DETAIL_CHARS: usize = 4096;

/// One entry to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry<'a> {
    /// The user's email, or what else acted (`anonymous` for a failed
    /// login with an unknown password).
    pub actor: &'a str,
    pub user_id: Option<UserId>,
    /// The client's address.
    pub source: Option<String>,
    /// `object.verb`: `user.create`, `login.failed`, `scope.update`, …
    pub action: &'a str,
    /// What it acted on (an id or a name).
    pub target: Option<&'a str>,
    /// A JSON object of facts worth keeping (never a secret).
    pub detail: Option<serde_json::Value>,
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub actor: String,
    pub user_id: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    at_ms: i64,
    actor: String,
    user_id: Option<String>,
    source: Option<String>,
    action: String,
    target: Option<String>,
    detail: Option<String>,
}

impl From<Row> for AuditEntry {
    fn from(r: Row) -> AuditEntry {
        AuditEntry {
            id: r.id,
            at_ms: r.at_ms,
            actor: r.actor,
            user_id: r.user_id,
            source: r.source,
            action: r.action,
            target: r.target,
            // Written by us as JSON; anything else is kept as text.
            detail: r
                .detail
                .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Store {
    /// Appends an entry to the account's audit log.
    pub async fn record_audit(&self, account: AccountId, e: &NewAuditEntry<'_>) -> Result<()> {
        if e.action.is_empty() || e.action.len() > 64 {
            return Err(StoreError::invalid("an audit action is 1 to 64 characters"));
        }
        let detail = e
            .detail
            .as_ref()
            .map(|d| cut(&d.to_string(), MAX_DETAIL_CHARS));
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO audit_log (id, account_id, at_ms, actor, user_id, source, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(account.db())
        .bind(now_ms())
        .bind(cut(e.actor, MAX_FIELD_CHARS))
        .bind(e.user_id.map(|u| u.to_string()))
        .bind(e.source.as_deref().map(|s| cut(s, MAX_FIELD_CHARS)))
        .bind(e.action)
        .bind(e.target.map(|t| cut(t, MAX_FIELD_CHARS)))
        .bind(detail)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// The account's entries, newest first, at most `limit` (1 to 1000),
    /// older than the entry `before` (its id) when given.
    pub async fn audit_log(
        &self,
        account: AccountId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let limit = validate::limit(limit)?;
        let rows = match before {
            None => with_pool!(self, pool => sqlx::query_as::<_, Row>(
                "SELECT id, at_ms, actor, user_id, source, action, target, detail FROM audit_log \
                 WHERE account_id = $1 ORDER BY at_ms DESC, id DESC LIMIT $2",
            )
            .bind(account.db())
            .bind(limit)
            .fetch_all(pool)
            .await)?,
            Some(before) => with_pool!(self, pool => sqlx::query_as::<_, Row>(
                "SELECT a.id, a.at_ms, a.actor, a.user_id, a.source, a.action, a.target, a.detail \
                 FROM audit_log a JOIN audit_log b ON b.id = $2 AND b.account_id = $1 \
                 WHERE a.account_id = $1 \
                   AND (a.at_ms < b.at_ms OR (a.at_ms = b.at_ms AND a.id < b.id)) \
                 ORDER BY a.at_ms DESC, a.id DESC LIMIT $3",
            )
            .bind(account.db())
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        };
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    /// The account and id of the user with `email`, if any: where a failed
    /// login for that email is recorded.
    pub async fn user_of_email(&self, email: &str) -> Result<Option<(AccountId, UserId)>> {
        let Ok(email) = validate::email(email) else {
            return Ok(None);
        };
        let row = with_pool!(self, pool => sqlx::query_as::<_, (String, String)>(
            "SELECT account_id, id FROM users WHERE email = $1",
        )
        .bind(&email)
        .fetch_optional(pool)
        .await)?;
        row.map(|(a, u)| Ok((AccountId::from_db(&a)?, UserId::from_db(&u)?)))
            .transpose()
    }
}
