//! Installing agents on endpoints without one: push install over SSH (a
//! background job per request) and the one-line manual install command
//! (`curl … | sh` for Linux, a PowerShell line for Windows). The command
//! and the audit record are made in [`crate::install::service`], shared
//! with the console.

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::install::service::{audit_install, install_command, invalid};
use crate::install::{self, Push};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_proto::api::{InstallCommandRequest, InstallCommandView, InstallJobView, InstallRequest};

/// `POST /compliance/install`: starts a push-install job.
pub(crate) async fn push(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<InstallRequest>,
) -> Result<(StatusCode, axum::Json<InstallJobView>), ApiError> {
    caller.can_write()?;
    let push = Push::check(&req).map_err(invalid)?;
    push.check_policy(&app.cfg.net_policy)?;
    let view = install::start(&app, caller.account.id, push)
        .await
        .map_err(invalid)?;
    audit_install(&app, caller.account.id, &caller, &view).await;
    Ok((StatusCode::ACCEPTED, axum::Json(view)))
}

/// `GET /compliance/install/{id}`: a job's progress, per host.
pub(crate) async fn job(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<InstallJobView>, ApiError> {
    install::job(&app, caller.account.id, &id)
        .await?
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
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "install.command",
        None,
        None,
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(view)))
}
