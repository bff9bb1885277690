//! The liveness sweeper: notices agents that stopped (or resumed) calling
//! in, raises and clears *agent not communicating*, and disables the scan
//! of abandoned agents.
//!
//! Silence is only held against an agent when the server could have heard
//! it: while the database is unusable (or this server was not running),
//! agents' calls cannot be recorded, so after the server starts and after
//! a database outage the sweeper waits one silence threshold
//! (`--silent-after-secs`) before it counts an agent as silent again;
//! agents that call in meanwhile were never silent. Agents coming back are
//! noticed at once.

use crate::alert::{Occurrence, AGENT_TARGET};
use crate::app::App;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use vigil_core::history::scan_change;
use vigil_core::{
    contact_range, liveness_event, scan_status, AgentHealth, Condition, LivenessEvent,
};
use vigil_notify::{EventKind, Severity};
use vigil_store::{now_unix, Agent, NewAgentEvent, StoreError, UnixTime, SYSTEM_ACTOR};

/// How long the database may take to answer the sweeper's check.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// When the sweeper may count agents as silent: not before the server
/// could hear them for a whole silence threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hearing {
    /// The start, or the end of the latest database outage.
    since: UnixTime,
    /// The database is unusable now.
    deaf: bool,
}

impl Hearing {
    fn new(start: UnixTime) -> Self {
        Hearing {
            since: start,
            deaf: false,
        }
    }

    /// Takes the database check made at `now`; returns whether the state changed.
    fn checked(&mut self, usable: bool, now: UnixTime) -> bool {
        let was = self.deaf;
        if usable && self.deaf {
            self.since = now;
        }
        self.deaf = !usable;
        was != self.deaf
    }

    /// Takes a sweep that took `took` and ended at `now`. One slower than
    /// the database check's own limit means the database stalled meanwhile
    /// (a sweep waits for a connection while the database is down, without
    /// failing): agents' calls stalled with it, so this counts as an
    /// outage that ended `now`. Returns whether it did.
    fn swept(&mut self, took: Duration, now: UnixTime) -> bool {
        let stalled = took > PING_TIMEOUT && !self.deaf;
        if stalled {
            self.since = self.since.max(now);
        }
        stalled
    }

    /// Whether silence counts at `now`.
    fn judges_silence(&self, now: UnixTime, silent_after: Duration) -> bool {
        let threshold = i64::try_from(silent_after.as_secs()).unwrap_or(i64::MAX);
        !self.deaf && now >= self.since.saturating_add(threshold)
    }
}

/// Runs until `shutdown` turns true.
pub(crate) async fn sweeper(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let silent_after = app.cfg.liveness.silent_after;
    let mut hearing = Hearing::new(now_unix());
    loop {
        let usable = crate::health::readiness(&app.store, PING_TIMEOUT).await;
        let now = now_unix();
        if hearing.checked(usable.is_ok(), now) {
            match &usable {
                Err(why) => tracing::warn!(
                    reason = %why,
                    "agents' calls cannot be recorded: no agent is counted as silent until the database is back for the silence threshold"
                ),
                Ok(()) => tracing::info!(
                    silent_after_secs = silent_after.as_secs(),
                    "the database is back: agents are counted as silent again after the silence threshold"
                ),
            }
        }
        if usable.is_ok() {
            let judge = hearing.judges_silence(now, silent_after);
            let started = std::time::Instant::now();
            if let Err(e) = sweep(&app, now, judge).await {
                tracing::error!(error = %e, "liveness sweep failed");
            }
            if hearing.swept(started.elapsed(), now_unix()) {
                tracing::warn!(
                    took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "the database stalled: no agent is counted as silent until it answers promptly for the silence threshold"
                );
            }
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
/// on; without `judge_silence` only for the better. Several replicas may
/// sweep at once: each change is claimed with a compare-and-set
/// ([`vigil_store::Store::change_health`]), so it is told once. Returns how
/// many agents this replica changed.
pub(crate) async fn sweep(
    app: &App,
    now: UnixTime,
    judge_silence: bool,
) -> Result<usize, StoreError> {
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
            let health = app.contact_health(&agent, now);
            let previous = agent.last_health;
            if health == previous {
                continue; // it called in meanwhile
            }
            if !judge_silence && health > previous {
                continue; // the server may not have heard it
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
            app.clear(
                agent,
                AGENT_TARGET,
                silent,
                crate::alert::Ending::CLEARED,
                now,
            )
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const THRESHOLD: Duration = Duration::from_secs(600);

    #[test]
    fn silence_counts_a_threshold_after_the_start() {
        let h = Hearing::new(1000);
        assert!(!h.judges_silence(1000, THRESHOLD));
        assert!(!h.judges_silence(1599, THRESHOLD));
        assert!(h.judges_silence(1600, THRESHOLD));
    }

    #[test]
    fn an_outage_suspends_judging_until_a_threshold_after_it_ends() {
        let mut h = Hearing::new(0);
        assert!(h.judges_silence(5000, THRESHOLD));
        assert!(h.checked(false, 5000), "the outage begins");
        assert!(!h.checked(false, 5005), "still out: no change");
        assert!(!h.judges_silence(5005, THRESHOLD));
        assert!(h.checked(true, 5900), "back");
        assert!(!h.judges_silence(5900, THRESHOLD));
        assert!(!h.judges_silence(6499, THRESHOLD));
        assert!(h.judges_silence(6500, THRESHOLD));
        assert!(!h.checked(true, 6500));
        assert_eq!(h.since, 5900, "a usable check does not move it");
    }

    #[test]
    fn a_stalled_sweep_counts_as_an_outage() {
        let mut h = Hearing::new(0);
        assert!(!h.swept(PING_TIMEOUT, 5000), "as slow as a check may be");
        assert!(h.judges_silence(5000, THRESHOLD));
        // The sweep waited for a connection while the database was down
        // and nobody noticed: its end starts the threshold again.
        assert!(h.swept(PING_TIMEOUT * 5, 5010));
        assert!(!h.judges_silence(5609, THRESHOLD));
        assert!(h.judges_silence(5610, THRESHOLD));
        // During a noticed outage the end of the outage decides.
        assert!(h.checked(false, 6000));
        assert!(!h.swept(PING_TIMEOUT * 5, 6010));
        assert!(h.checked(true, 6020));
        assert_eq!(h.since, 6020);
    }

    #[test]
    fn health_is_ordered_by_silence() {
        assert!(AgentHealth::Communicating < AgentHealth::NotCommunicating);
        assert!(AgentHealth::NotCommunicating < AgentHealth::Abandoned);
    }
}
