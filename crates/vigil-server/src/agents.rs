//! Agents as users manage them, through the REST API or the web console:
//! the rules a security-scan policy must pass, how long an enrollment
//! token may live, and the command that enrolls an agent.

use crate::app::App;
use crate::http::error::ApiError;
use vigil_core::SecurityPolicy;
use vigil_store::Agent;

/// Longest an enrollment token may live: 30 days.
pub(crate) const MAX_TTL_MINUTES: u32 = 30 * 24 * 60;
/// How long an enrollment token lives unless the user says otherwise: a day.
pub(crate) const DEFAULT_TTL_MINUTES: u32 = 24 * 60;

/// The rules a policy a user sends must pass (the REST API and the web
/// console): the agent is not removed, the policy is valid for the account
/// (normalized), and it is enabled only on a plan with security scans.
pub(crate) fn checked_policy(
    agent: &Agent,
    kind: vigil_core::AccountKind,
    policy: SecurityPolicy,
) -> Result<SecurityPolicy, ApiError> {
    if agent.is_removed() {
        return Err(ApiError::Conflict(
            "the agent was removed; enroll it again to scan it".into(),
        ));
    }
    let policy = policy
        .validated(kind)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    // Enabling a scan on a plan without one is refused, with the reason;
    // a disabled policy may be prepared on any plan.
    if policy.enabled {
        vigil_core::policy::can_run(agent.plan).map_err(|e| ApiError::Invalid(e.to_string()))?;
    }
    Ok(policy)
}

/// The command that enrolls an agent with `token` (it names this server's
/// agent API and pin).
pub(crate) fn enroll_command(app: &App, token: &str) -> String {
    format!(
        "vigil agent enroll --server {} --token {token} --pin {}",
        app.agent_url, app.pin
    )
}
