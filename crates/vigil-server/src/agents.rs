//! Agents as users manage them, through the REST API or the web console:
//! the rules a security-scan policy must pass, saving one (which ends at
//! once, naming who saved it, the alerts it no longer makes a problem),
//! how long an enrollment token may live, and the command that enrolls an
//! agent.

use crate::app::App;
use crate::audit::Actor;
use crate::http::error::ApiError;
use std::collections::BTreeSet;
use vigil_core::{PolicyTarget, SecurityPolicy};
use vigil_store::{now_unix, Agent, AlertFilter, AlertStatus, StoreError};

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

/// Saves `policy` (passed [`checked_policy`]) for `agent` as `actor`
/// asked: stored with its "policy changed" history entry, due at once,
/// audited; then [`end_alerts_it_allows`].
pub(crate) async fn save_policy(
    app: &App,
    agent: &Agent,
    policy: &SecurityPolicy,
    actor: Actor,
) -> Result<(), StoreError> {
    let account = agent.account_id;
    app.store
        .put_policy_by(account, agent.id, policy, &actor.email)
        .await?;
    app.scheduler_wake.notify_one();
    let email = actor.email.clone();
    let detail = serde_json::to_value(policy).ok();
    crate::audit::record(
        app,
        account,
        actor,
        "policy.update",
        Some(&agent.name),
        detail,
    )
    .await;
    end_alerts_it_allows(app, agent, policy, &email).await
}

/// Ends the agent's open alerts that `policy`, just saved by `by`, no
/// longer makes a problem — an open port it now authorizes, a port it no
/// longer monitors or scans — at once and naming `by`, rather than at the
/// next scan, which could not say who changed what. The targets the
/// policy judges directly (the agent's host, the location's address,
/// hosts) and the router's forwards are settled here; a device's ports
/// depend on its own review and are settled by the next sweep.
pub(crate) async fn end_alerts_it_allows(
    app: &App,
    agent: &Agent,
    policy: &SecurityPolicy,
    by: &str,
) -> Result<(), StoreError> {
    let filter = AlertFilter {
        status: Some(AlertStatus::Open),
        agent: Some(agent.id),
    };
    let open = app.store.alerts(agent.account_id, &filter).await?;
    let targets: BTreeSet<&str> = open.iter().map(|a| a.target.as_str()).collect();
    let scanned = policy.ports_to_scan(&app.cfg.sweep_ports);
    let forwards = crate::devices::forward_rules(policy);
    let now = now_unix();
    for target in targets {
        let direct = matches!(
            PolicyTarget::from_key(target),
            Ok(PolicyTarget::AgentHost | PolicyTarget::ObservedAddress | PolicyTarget::Host(_))
        );
        let events = if direct {
            app.update_target(agent, target, |state| {
                let mut events = state.retain_ports(&scanned);
                events.extend(state.apply_policy(policy));
                events
            })
            .await?
        } else if vigil_core::lan::policy::forward_protocol(target).is_some() {
            app.update_target(agent, target, |state| state.apply_policy(&forwards))
                .await?
        } else {
            continue;
        };
        debug_assert!(events.iter().all(|e| e.resolution().is_some()));
        app.act_all(agent, target, events, Some(by), now).await?;
    }
    // *Process changed* alerts are the server's, not the target state's:
    // over when the policy no longer asks for them or no longer
    // authorizes their port.
    let ending = crate::alert::Ending {
        why: vigil_core::Resolution::PolicyChanged,
        by: Some(by),
    };
    for a in &open {
        let asked = policy.process_change_alerts
            && a.condition.port.is_some_and(|p| policy.is_authorized(p));
        if a.condition.kind == vigil_core::ConditionKind::ProcessChanged && !asked {
            app.clear(agent, &a.target, a.condition, ending, now)
                .await?;
        }
    }
    Ok(())
}

/// The command that enrolls an agent with `token` (it names this server's
/// agent API and pin).
pub(crate) fn enroll_command(app: &App, token: &str) -> String {
    format!(
        "vigil agent enroll --server {} --token {token} --pin {}",
        app.agent_url, app.pin
    )
}
