//! The liveness sweeper: notices agents that stopped (or resumed) calling
//! in, raises and clears *agent not communicating*, and disables the scan
//! of abandoned agents.

use crate::alert::{Occurrence, AGENT_TARGET};
use crate::app::App;
use std::sync::Arc;
use tokio::sync::watch;
use vigil_core::history::scan_change;
use vigil_core::{
    contact_range, liveness_event, scan_status, AgentHealth, Condition, LivenessEvent,
};
use vigil_notify::{EventKind, Severity};
use vigil_store::{now_unix, Agent, NewAgentEvent, StoreError, UnixTime, SYSTEM_ACTOR};

/// Runs until `shutdown` turns true.
pub(crate) async fn sweeper(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = sweep(&app, now_unix()).await {
            tracing::error!(error = %e, "liveness sweep failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Agents looked at per round of a sweep.
const SWEEP_BATCH: u32 = 500;

/// One pass: every agent whose stored health is not what its last contact
/// says (found in the database) changes health, and the change is acted
/// on. Several replicas may sweep at once: each change is claimed with a
/// compare-and-set ([`vigil_store::Store::change_health`]), so it is told
/// once. Returns how many agents this replica changed.
pub(crate) async fn sweep(app: &App, now: UnixTime) -> Result<usize, StoreError> {
    let at = u64::try_from(now).unwrap_or(0);
    let ranges = AgentHealth::ALL.map(|h| (h, contact_range(h, at, &app.cfg.liveness)));
    let mut changed = 0;
    loop {
        let stale = app
            .store
            .agents_with_stale_health(&ranges, SWEEP_BATCH)
            .await?;
        let full = stale.len() == SWEEP_BATCH as usize;
        let mut progressed = false;
        for agent in stale {
            let health = app.health_of(&agent, now);
            let previous = agent.last_health;
            if health == previous {
                continue; // it called in meanwhile
            }
            let agent = match app
                .store
                .change_health(agent.account_id, agent.id, previous, health)
                .await
            {
                Ok(Some(a)) => a,
                // Another replica changed it first, or it was removed meanwhile.
                Ok(None) | Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            progressed = true;
            changed += 1;
            tracing::info!(agent = %agent.id, name = %agent.name, from = %previous, to = %health, "agent health changed");
            // Before `on_event`, which may switch the policy off.
            record_scan_change(app, &agent, previous, health, now).await?;
            if let Some(event) = liveness_event(previous, health) {
                on_event(app, &agent, event, now).await?;
            }
        }
        if !full || !progressed {
            return Ok(changed);
        }
    }
}

/// Puts into the agent's history what its health change did to its
/// security scan (suspended, disabled, resumed), if anything.
async fn record_scan_change(
    app: &App,
    agent: &Agent,
    previous: AgentHealth,
    health: AgentHealth,
    now: UnixTime,
) -> Result<(), StoreError> {
    let policy = match app.store.policy(agent.account_id, agent.id).await {
        Ok(Some(p)) => p,
        Ok(None) | Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = |h| scan_status(agent.plan, policy.enabled, agent.is_removed(), h);
    let Some((kind, detail)) = scan_change(status(previous), status(health)) else {
        return Ok(());
    };
    let event = NewAgentEvent {
        at: now,
        kind,
        actor: SYSTEM_ACTOR,
        detail: &detail,
    };
    match app
        .store
        .record_agent_event(agent.account_id, agent.id, &event)
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn on_event(
    app: &App,
    agent: &Agent,
    event: LivenessEvent,
    now: UnixTime,
) -> Result<(), StoreError> {
    let silent = Condition::agent_not_communicating();
    match event {
        LivenessEvent::AgentSilent => {
            app.raise(agent, AGENT_TARGET, silent, now).await?;
        }
        LivenessEvent::AgentBack => {
            app.clear(agent, AGENT_TARGET, silent, false, now).await?;
        }
        LivenessEvent::AgentAbandoned => {
            // Skipped straight from communicating: still say it went silent.
            app.raise(agent, AGENT_TARGET, silent, now).await?;
            let had_policy = match app
                .store
                .set_policy_enabled(agent.account_id, agent.id, false)
                .await
            {
                Ok(()) => true,
                Err(StoreError::NotFound) => false,
                Err(e) => return Err(e),
            };
            if had_policy {
                app.notify(Occurrence {
                    agent,
                    event: EventKind::ScanDisabled,
                    severity: Severity::Warning,
                    target: None,
                    port: None,
                    title: format!(
                        "Security scan of agent {:?} disabled: agent abandoned",
                        agent.name
                    ),
                    details: "The agent has not communicated for the abandonment period, so its \
                              security scan was switched off. Re-enable it once the agent is back."
                        .into(),
                    group_key: format!("{}:scan", agent.id),
                    outbox_key: format!("scan-disabled:{}:{now}", agent.id),
                    at: now,
                })
                .await?;
            }
        }
    }
    Ok(())
}
