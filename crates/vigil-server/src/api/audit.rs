//! `GET /audit` (a page of the account's audit log, newest first) and
//! `GET /audit.jsonl` (all of it as JSON lines, newest first, streamed in
//! pages). Owners and admins only: the log names users and addresses.

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Query;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use vigil_store::{AccountId, AuditEntry, Role};

/// Entries per page unless `?limit=` says otherwise, and per export page.
const PAGE: u32 = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// The id of the last entry of the previous page.
    before: Option<String>,
    limit: Option<u32>,
}

/// Owners and admins read the audit log.
pub(crate) fn may_read(role: Role) -> Result<(), ApiError> {
    match role {
        Role::Owner | Role::Admin => Ok(()),
        Role::Viewer => Err(ApiError::Forbidden(
            "the audit log is for admins and owners of the account".into(),
        )),
    }
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditEntry>>, ApiError> {
    may_read(caller.user.role)?;
    let entries = app
        .store
        .audit_log(
            caller.account.id,
            q.before.as_deref(),
            q.limit.unwrap_or(PAGE),
        )
        .await?;
    Ok(axum::Json(entries))
}

pub(crate) async fn export(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    may_read(caller.user.role)?;
    Ok(jsonl(app, caller.account.id))
}

/// The whole log as JSON lines, page by page (shared with the console).
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
                    let text: String = page.iter().map(crate::audit::json_line).collect();
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
