//! Installing agents as the REST API and the web console ask for it: the
//! one-line manual install command with a fresh enrollment token, the
//! audit record of a started push-install job, and how an install error
//! is answered. Both front ends call these, so they answer alike.

use super::{InstallError, Layout, WinLayout};
use crate::app::App;
use crate::http::error::ApiError;
use std::time::Duration;
use vigil_core::Plan;
use vigil_proto::api::{
    AgentPlatform, AgentStart, InstallCommandRequest, InstallCommandView, InstallJobView,
};
use vigil_store::{now_unix, AccountId};

const MAX_TTL_MINUTES: u32 = 30 * 24 * 60;
const DEFAULT_TTL_MINUTES: u32 = 24 * 60;
const DEFAULT_NAME: &str = "installed agent";

/// How an install error is answered: busy, or what was asked is invalid.
pub(crate) fn invalid(e: InstallError) -> ApiError {
    match e {
        InstallError::Busy(m) => ApiError::Busy(m),
        InstallError::Store(e) => e.into(),
        e => ApiError::Invalid(e.to_string()),
    }
}

/// Records a started install job: the hosts (never the SSH key).
pub(crate) async fn audit_install(
    app: &App,
    account: AccountId,
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
            let url = super::script_url(&app.agent_url, layout);
            let command = super::command(&app.install.curl_pin, &url, &token);
            (url, command)
        }
        Target::Windows(layout) => {
            let url = super::ps1_url(&app.agent_url, layout);
            let command = super::windows_command(&app.pin, &url, &token);
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
