//! Installing agents on endpoints without one: push install over SSH (a
//! background job per request) and the one-line manual install command.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Json;
use crate::app::App;
use crate::install::{self, InstallError, Layout, Push};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::Plan;
use vigil_proto::api::{InstallCommandRequest, InstallCommandView, InstallJobView, InstallRequest};
use vigil_store::{now_unix, AccountId};

const MAX_TTL_MINUTES: u32 = 30 * 24 * 60;
const DEFAULT_TTL_MINUTES: u32 = 24 * 60;
const DEFAULT_NAME: &str = "installed agent";

fn invalid(e: InstallError) -> ApiError {
    ApiError::Invalid(e.to_string())
}

/// `POST /compliance/install`: starts a push-install job.
pub(crate) async fn push(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<InstallRequest>,
) -> Result<(StatusCode, axum::Json<InstallJobView>), ApiError> {
    caller.can_write()?;
    let push = Push::check(&req).map_err(invalid)?;
    let view = install::start(&app, caller.account.id, push);
    Ok((StatusCode::ACCEPTED, axum::Json(view)))
}

/// `GET /compliance/install/{id}`: a job's progress, per host.
pub(crate) async fn job(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<InstallJobView>, ApiError> {
    app.install
        .job(caller.account.id, &id)
        .map(axum::Json)
        .ok_or(ApiError::NotFound)
}

/// `POST /compliance/install-command`: a fresh token in a one-line command.
pub(crate) async fn command(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<InstallCommandRequest>,
) -> Result<(StatusCode, axum::Json<InstallCommandView>), ApiError> {
    caller.can_write()?;
    let view = install_command(&app, caller.account.id, &req).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// A fresh enrollment token of the account in a one-line install command.
pub(crate) async fn install_command(
    app: &App,
    account: AccountId,
    req: &InstallCommandRequest,
) -> Result<InstallCommandView, ApiError> {
    let layout = Layout::new(
        req.install_dir.as_deref(),
        req.state_dir.as_deref(),
        req.unit_dir.as_deref(),
        req.start,
    )
    .map_err(invalid)?;
    let minutes = req.ttl_minutes.unwrap_or(DEFAULT_TTL_MINUTES);
    if !(1..=MAX_TTL_MINUTES).contains(&minutes) {
        return Err(ApiError::Invalid(format!(
            "ttl_minutes {minutes} is out of range: use 1 to {MAX_TTL_MINUTES} (30 days)"
        )));
    }
    let token = app
        .store
        .create_enrollment(
            account,
            req.name.as_deref().unwrap_or(DEFAULT_NAME),
            req.plan.unwrap_or(Plan::Community),
            Duration::from_secs(u64::from(minutes) * 60),
        )
        .await?;
    let script_url = install::script_url(&app.agent_url, &layout);
    Ok(InstallCommandView {
        command: install::command(&app.install.curl_pin, &script_url, &token),
        token,
        expires_at: now_unix() + i64::from(minutes) * 60,
        script_url,
        pinned_pubkey: app.install.curl_pin.clone(),
    })
}
