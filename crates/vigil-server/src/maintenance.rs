//! Maintenance windows at work: which window covers an agent, holding the
//! notices of its alerts while one does, and the clock that tells what is
//! still wrong once the window ends (and, when asked, that a window starts
//! and ends).
//!
//! During a window everything else goes on: scans run, results are
//! evaluated, alerts open and resolve and show in the console and the API.
//! Only the alert notices wait ([`App::hold_if_in_maintenance`]). When no
//! window covers the agent any more, each held notice is looked at once:
//! an alert raised in the window and still open is told; one raised and
//! over within it is not (nobody needs to hear of it); one told before the
//! window and over within it has its end told, so receivers such as
//! PagerDuty close their incident.

use crate::app::App;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::watch;
use vigil_notify::{EventKind, Notification, Severity};
use vigil_proto::api::AgentMaintenance;
use vigil_store::{
    now_unix, AccountId, Agent, AgentId, Alert, AlertStatus, HeldNotice, HeldPhase,
    MaintenanceWindow, StoreError, UnixTime,
};

/// The window covering `agent` at `at` among `windows`: the one that
/// ends last when several do.
pub(crate) fn covering(
    windows: &[MaintenanceWindow],
    agent: &Agent,
    at: UnixTime,
) -> Option<AgentMaintenance> {
    let id = agent.id.to_string();
    windows
        .iter()
        .filter(|w| w.window.scope.covers(&id, &agent.tags))
        .filter_map(|w| w.window.open_at(at).map(|o| (w, o)))
        .max_by_key(|(_, o)| o.end)
        .map(|(w, o)| AgentMaintenance {
            window_id: w.id.to_string(),
            name: w.window.name.clone(),
            until: o.end,
        })
}

impl App {
    /// The window covering `agent` now, if any.
    pub(crate) async fn maintenance_of(
        &self,
        agent: &Agent,
        at: UnixTime,
    ) -> Result<Option<AgentMaintenance>, StoreError> {
        let windows = self.store.windows(agent.account_id).await?;
        Ok(covering(&windows, agent, at))
    }

    /// Holds the notice of `alert` (raised, or over) when a window covers
    /// its agent: `true` when it did, and nothing is to be sent now.
    pub(crate) async fn hold_if_in_maintenance(
        &self,
        agent: &Agent,
        alert: &Alert,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let Some(window) = self.maintenance_of(agent, now).await? else {
            return Ok(false);
        };
        let phase = match alert.status {
            AlertStatus::Open => HeldPhase::Open,
            AlertStatus::Resolved => HeldPhase::Resolved,
        };
        // An opening held earlier stays held as such: the contacts never
        // heard of the alert, so its end is no news either.
        self.store
            .hold_notice(agent.account_id, agent.id, alert.id, phase, now)
            .await?;
        tracing::info!(
            alert = %alert.id,
            agent = %agent.id,
            window = %window.name,
            "notification held: the agent is in maintenance"
        );
        Ok(true)
    }
}

/// Checks a window a tenant wrote: its own rules, and that the agents it
/// names are the account's. The error says what to change.
pub(crate) async fn checked(
    app: &App,
    account: vigil_store::AccountId,
    window: &vigil_core::maintenance::Window,
) -> Result<(), crate::http::error::ApiError> {
    use crate::http::error::ApiError;
    window
        .validate()
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    if let vigil_core::maintenance::Scope::Agents { agents } = &window.scope {
        let mine: std::collections::HashSet<String> = app
            .store
            .agents(account)
            .await?
            .iter()
            .map(|a| a.id.to_string())
            .collect();
        if let Some(unknown) = agents.iter().find(|a| !mine.contains(a.as_str())) {
            return Err(ApiError::Invalid(format!(
                "agent {unknown:?} is not an agent of this account: list them with GET /api/v1/agents"
            )));
        }
    }
    Ok(())
}

/// The view of a saved window at `now`; `agents` are the account's.
pub(crate) fn view(
    w: &MaintenanceWindow,
    agents: &[Agent],
    now: UnixTime,
) -> vigil_proto::api::MaintenanceView {
    let covered = agents
        .iter()
        .filter(|a| w.window.scope.covers(&a.id.to_string(), &a.tags))
        .count();
    vigil_proto::api::MaintenanceView {
        id: w.id.to_string(),
        window: w.window.clone(),
        open: w.window.open_at(now),
        next: w.window.schedule.next_after(now),
        agents: u64::try_from(covered).unwrap_or(u64::MAX),
        created_at: w.created_at,
        created_by: w.created_by.clone(),
    }
}

/// The alert clock, every tick: windows that started or ended are told
/// (when asked), held notices of agents no longer in maintenance are
/// released, and reminders and escalation steps that fell due are sent
/// ([`crate::followup`]).
pub(crate) async fn clock(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let now = now_unix();
        if let Err(e) = tick(&app, now).await {
            tracing::error!(error = %e, "maintenance round failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

async fn tick(app: &App, now: UnixTime) -> Result<(), StoreError> {
    let windows = app.store.all_windows().await?;
    for w in &windows {
        let open = w.window.open_at(now).map(|o| o.start);
        if open != w.open_start && app.store.mark_window_open(w.id, w.open_start, open).await? {
            if w.open_start.is_some() {
                tell_window(app, w, false, now).await?;
            }
            if open.is_some() {
                tell_window(app, w, true, now).await?;
            }
        }
    }
    // Held notices, per account: one look at its agents, then only the
    // notices of agents out of maintenance cost more.
    let mut by_account: BTreeMap<AccountId, Vec<HeldNotice>> = BTreeMap::new();
    for held in app.store.held_notices().await? {
        by_account.entry(held.account_id).or_default().push(held);
    }
    for (account, held) in by_account {
        let agents: HashMap<AgentId, Agent> = app
            .store
            .agents(account)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        let mine: Vec<MaintenanceWindow> = windows
            .iter()
            .filter(|w| w.account_id == account)
            .cloned()
            .collect();
        for h in held {
            if let Err(e) = release(app, agents.get(&h.agent_id), &mine, &h, now).await {
                tracing::warn!(alert = %h.alert_id, error = %e, "cannot release a held notification");
            }
        }
    }
    crate::followup::tick(app, &windows, now).await
}

/// Tells what `held` held if its agent (`None`: removed) is out of maintenance.
async fn release(
    app: &App,
    agent: Option<&Agent>,
    windows: &[MaintenanceWindow],
    held: &HeldNotice,
    now: UnixTime,
) -> Result<(), StoreError> {
    let Some(agent) = agent else {
        // Removed: nobody is told about its alerts any more.
        app.store.take_held_notice(held.alert_id).await?;
        return Ok(());
    };
    if covering(windows, agent, now).is_some() {
        return Ok(());
    }
    if !app.store.take_held_notice(held.alert_id).await? {
        return Ok(()); // another replica released it
    }
    let alert = app.store.alert(held.account_id, held.alert_id).await?;
    let still_news = match (held.phase, alert.status) {
        // Raised in the window and still wrong: told once now.
        (HeldPhase::Open, AlertStatus::Open) => true,
        // Raised and over within the window: nobody heard of it.
        (HeldPhase::Open, AlertStatus::Resolved) => false,
        // Told before, over in the window: its end is told.
        (HeldPhase::Resolved, _) => alert.status == AlertStatus::Resolved,
    };
    if still_news {
        app.announce_released(agent, &alert, now).await?;
    }
    Ok(())
}

/// Tells the contacts of the agents a window covers that it started or
/// ended (only windows saved with `notify_start_end`).
async fn tell_window(
    app: &App,
    w: &MaintenanceWindow,
    started: bool,
    now: UnixTime,
) -> Result<(), StoreError> {
    if !w.window.notify_start_end {
        return Ok(());
    }
    let agents: Vec<Agent> = app
        .store
        .agents(w.account_id)
        .await?
        .into_iter()
        .filter(|a| w.window.scope.covers(&a.id.to_string(), &a.tags))
        .collect();
    let event = if started {
        EventKind::MaintenanceStarted
    } else {
        EventKind::MaintenanceEnded
    };
    let mut contacts = Vec::new();
    for agent in &agents {
        for c in app
            .store
            .rules_for(w.account_id, agent.id, event.as_str())
            .await?
        {
            if !contacts.iter().any(|k: &vigil_store::Contact| k.id == c.id) {
                contacts.push(c);
            }
        }
    }
    if contacts.is_empty() {
        return Ok(());
    }
    let account = app.store.account(w.account_id).await?.name;
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    let title = if started {
        format!("Maintenance {:?} started", w.window.name)
    } else {
        format!("Maintenance {:?} ended", w.window.name)
    };
    let details = if started {
        format!(
            "Alerts of {} are still raised and shown, but not notified until the window ends; \
             what is still wrong then is notified once.",
            agent_list(&names)
        )
    } else {
        format!(
            "Notifications about {} go out again; alerts still open are notified now.",
            agent_list(&names)
        )
    };
    let notification = Notification {
        event,
        severity: if started {
            Severity::Warning
        } else {
            Severity::Recovery
        },
        account,
        agent_name: String::new(),
        agent_id: String::new(),
        target: None,
        port: None,
        occurred_at: now.into(),
        title,
        details,
        dedupe_key: format!("maintenance:{}", w.id),
        console_url: app.cfg.console_url.clone(),
        delivery_id: None,
        ack_url: None,
    };
    let payload = serde_json::to_value(&notification)
        .map_err(|e| StoreError::Invalid(format!("cannot encode notification: {e}")))?;
    let key = format!(
        "maintenance:{}:{}:{}",
        w.id,
        w.open_start.unwrap_or(now),
        if started { "start" } else { "end" }
    );
    for c in contacts {
        app.store
            .enqueue(w.account_id, c.id, &key, &payload, now)
            .await?;
    }
    app.outbox_wake.notify_one();
    Ok(())
}

fn agent_list(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect();
    match names.len() {
        0 => "no agent yet".into(),
        1 => format!("agent {}", shown[0]),
        n if n <= SHOWN => format!("agents {}", shown.join(", ")),
        n => format!("agents {} and {} more", shown.join(", "), n - SHOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::maintenance::{Schedule, Scope, Window};
    use vigil_store::{AccountId, MaintenanceId};

    fn window(name: &str, scope: Scope, start: &str, end: &str) -> MaintenanceWindow {
        MaintenanceWindow {
            id: MaintenanceId::random(),
            account_id: AccountId::random(),
            window: Window {
                name: name.into(),
                schedule: Schedule::Once {
                    start: start.into(),
                    end: end.into(),
                    time_zone: "UTC".into(),
                },
                scope,
                notify_start_end: false,
            },
            open_start: None,
            created_at: 0,
            created_by: None,
        }
    }

    #[test]
    fn the_covering_window_that_ends_last_wins() {
        let mut agent = crate::testing::agent("home", 0);
        agent.tags = vec!["office".into()];
        // 2026-12-07T01:00Z.
        let at = 1_796_605_200;
        let windows = vec![
            window(
                "short",
                Scope::Account,
                "2026-12-07T00:00",
                "2026-12-07T02:00",
            ),
            window(
                "long",
                Scope::Tag {
                    tag: "office".into(),
                },
                "2026-12-07T00:30",
                "2026-12-07T05:00",
            ),
            window(
                "other tag",
                Scope::Tag { tag: "lab".into() },
                "2026-12-07T00:00",
                "2026-12-08T00:00",
            ),
        ];
        let m = covering(&windows, &agent, at).expect("covered");
        assert_eq!(m.name, "long");
        assert_eq!(m.until, at + 4 * 3600);
        assert!(covering(&windows, &agent, at + 5 * 3600).is_none());
        agent.tags.clear();
        assert_eq!(
            covering(&windows, &agent, at).map(|m| m.name),
            Some("short".into())
        );
    }

    #[test]
    fn agent_lists_stay_short() {
        assert_eq!(agent_list(&["a"]), "agent \"a\"");
        assert_eq!(
            agent_list(&["a", "b", "c", "d", "e", "f", "g"]),
            "agents \"a\", \"b\", \"c\", \"d\", \"e\" and 2 more"
        );
    }
}
