//! Writing the audit log ([`vigil_store::NewAuditEntry`]) from the REST API
//! and the console, and reading it back (`GET /api/v1/audit`, the console's
//! Audit page, JSON-lines export).
//!
//! An entry that cannot be written is logged and does not fail the change
//! it describes: the change happened.

use crate::app::App;
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use vigil_store::{AccountId, AuditEntry, NewAuditEntry, UserId};

/// Entries per page unless `?limit=` says otherwise, and per export page.
pub(crate) const PAGE: u32 = 200;

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

/// The whole log as JSON lines, page by page (the REST API's
/// `GET /audit.jsonl` and the console's export).
pub(crate) fn jsonl(app: Arc<App>, account: AccountId) -> Response {
    let pages = futures::stream::unfold(Some(None::<String>), move |cursor| {
        let app = app.clone();
        async move {
            let before = cursor?;
            match app.store.audit_log(account, before.as_deref(), PAGE).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => {
                    let next = (page.len() == PAGE as usize)
                        .then(|| page.last().map(|e| e.id.clone()))
                        .flatten();
                    let text: String = page.iter().map(json_line).collect();
                    Some((Ok::<_, std::io::Error>(text), next.map(Some)))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"vigil-audit.jsonl\"",
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response()
}
