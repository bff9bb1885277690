//! `GET /audit` (a page of the account's audit log, newest first) and
//! `GET /audit.jsonl` (all of it as JSON lines, newest first, streamed in
//! pages, [`crate::audit::jsonl`]). Owners and admins only: the log names
//! users and addresses.

use crate::app::App;
use crate::audit::{jsonl, PAGE};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Query;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use vigil_store::{AuditEntry, Role};

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
