//! Writing the audit log ([`vigil_store::NewAuditEntry`]) from the REST API
//! and the console, and reading it back (`GET /api/v1/audit`, the console's
//! Audit page, JSON-lines export).
//!
//! An entry that cannot be written is logged and does not fail the change
//! it describes: the change happened.

use crate::app::App;
use serde_json::Value;
use std::net::IpAddr;
use vigil_store::{AccountId, AuditEntry, NewAuditEntry, UserId};

/// Who acted, from where.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub email: String,
    pub user_id: Option<UserId>,
    pub from: Option<IpAddr>,
}

impl Actor {
    /// Someone who gave `email` but is no user of the account (yet): a
    /// failed login.
    pub(crate) fn claimed(email: &str, from: Option<IpAddr>) -> Actor {
        Actor {
            email: email.to_string(),
            user_id: None,
            from,
        }
    }
}

impl From<&crate::http::auth::Caller> for Actor {
    fn from(c: &crate::http::auth::Caller) -> Actor {
        Actor {
            email: c.user.email.clone(),
            user_id: Some(c.user.id),
            from: c.from,
        }
    }
}

/// Records `action` on `target` by `actor` in `account`'s log.
pub(crate) async fn record(
    app: &App,
    account: AccountId,
    actor: impl Into<Actor>,
    action: &str,
    target: Option<&str>,
    detail: Option<Value>,
) {
    let actor = actor.into();
    let entry = NewAuditEntry {
        actor: &actor.email,
        user_id: actor.user_id,
        source: actor.from.map(|a| a.to_string()),
        action,
        target,
        detail,
    };
    if let Err(e) = app.store.record_audit(account, &entry).await {
        tracing::warn!(%account, action, error = %e, "cannot write the audit log");
    }
}

/// One entry as a line of the JSON-lines export.
pub(crate) fn json_line(e: &AuditEntry) -> String {
    let mut line = serde_json::to_string(e).unwrap_or_default();
    line.push('\n');
    line
}
