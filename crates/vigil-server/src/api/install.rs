//! Installing agents on endpoints without one: push install over SSH (a
//! background job per request) and the one-line manual install command
//! (`curl … | sh` for Linux, a PowerShell line for Windows).

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::install::{self, InstallError, Layout, Push, WinLayout};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::Plan;
use vigil_proto::api::{
    AgentPlatform, AgentStart, InstallCommandRequest, InstallCommandView, InstallJobView,
    InstallRequest,
};
use vigil_store::{now_unix, AccountId};

const MAX_TTL_MINUTES: u32 = 30 * 24 * 60;
const DEFAULT_TTL_MINUTES: u32 = 24 * 60;
const DEFAULT_NAME: &str = "installed agent";

fn invalid(e: InstallError) -> ApiError {
    match e {
        InstallError::Busy(m) => ApiError::Busy(m),
        e => ApiError::Invalid(e.to_string()),
    }
}

/// `POST /compliance/install`: starts a push-install job.
pub(crate) async fn push(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<InstallRequest>,
) -> Result<(StatusCode, axum::Json<InstallJobView>), ApiError> {
    caller.can_write()?;
    let push = Push::check(&req).map_err(invalid)?;
    push.check_policy(&app.cfg.net_policy)?;
    let view = install::start(&app, caller.account.id, push).map_err(invalid)?;
    audit_install(&app, caller.account.id, &caller, &view).await;
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

/// Records a started install job: the hosts (never the SSH key).
pub(crate) async fn audit_install(
    app: &App,
    account: vigil_store::AccountId,
    actor: impl Into<crate::audit::Actor>,
    job: &InstallJobView,
) {
    let hosts: Vec<&str> = job.hosts.iter().map(|h| h.address.as_str()).collect();
    let detail = serde_json::json!({ "hosts": hosts });
    crate::audit::record(
        app,
        account,
        actor,
        "install.start",
        Some(&job.id),
        Some(detail),
    )
    .await;
}

/// Where the command installs, checked for its platform.
enum Target {
    Linux(Layout),
    Windows(WinLayout),
}

fn target(req: &InstallCommandRequest) -> Result<Target, ApiError> {
    match req.platform {
        AgentPlatform::Linux => Layout::new(
            req.install_dir.as_deref(),
            req.state_dir.as_deref(),
            req.unit_dir.as_deref(),
            req.start,
        )
        .map(Target::Linux)
        .map_err(invalid),
        AgentPlatform::Windows => {
            if req.unit_dir.is_some() {
                return Err(ApiError::Invalid(
                    "unit_dir: Windows agents run as the VigilAgent service, not a systemd unit; leave it out with platform windows".into(),
                ));
            }
            if req.start != AgentStart::Auto {
                return Err(ApiError::Invalid(
                    "start: Windows agents always run as the VigilAgent service; leave it out with platform windows".into(),
                ));
            }
            WinLayout::new(req.install_dir.as_deref(), req.state_dir.as_deref())
                .map(Target::Windows)
                .map_err(invalid)
        }
    }
}

/// A fresh enrollment token of the account in a one-line install command.
pub(crate) async fn install_command(
    app: &App,
    account: AccountId,
    req: &InstallCommandRequest,
) -> Result<InstallCommandView, ApiError> {
    let target = target(req)?;
    // No token is created for a command that cannot work.
    let binary_sha256 = match &target {
        Target::Windows(_) => Some(
            app.install
                .windows()
                .map_err(|e| ApiError::Invalid(e.to_string()))?
                .sha256
                .clone(),
        ),
        Target::Linux(_) => None,
    };
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
    let (script_url, command) = match &target {
        Target::Linux(layout) => {
            let url = install::script_url(&app.agent_url, layout);
            let command = install::command(&app.install.curl_pin, &url, &token);
            (url, command)
        }
        Target::Windows(layout) => {
            let url = install::ps1_url(&app.agent_url, layout);
            let command = install::windows_command(&app.pin, &url, &token);
            (url, command)
        }
    };
    Ok(InstallCommandView {
        command,
        token,
        expires_at: now_unix() + i64::from(minutes) * 60,
        script_url,
        pinned_pubkey: app.install.curl_pin.clone(),
        platform: req.platform,
        cert_pin: Some(app.pin.to_string()),
        binary_sha256,
    })
}
