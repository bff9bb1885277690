//! Reminders and escalation (see [`vigil_core::followup`]): every round of
//! the alert clock, the open alerts nobody acknowledged are held against
//! the rules that remind or escalate. A reminder repeats the alert's
//! notice to the rule's contact; an escalation step sends it to the step's
//! contacts. Each is queued under a key of its own (`…:remind:<rule>:<n>`,
//! `…:escalate:<rule>:<step>`), which the outbox takes once per contact,
//! so several server replicas and repeated rounds send each once. Alerts of
//! agents in maintenance wait, like their first notice.

use crate::alert::event_for;
use crate::app::App;
use crate::maintenance::covering;
use std::collections::{BTreeMap, HashMap};
use vigil_core::followup::{reminder_due, steps_due};
use vigil_store::{
    AccountId, Agent, AgentId, Alert, AlertFilter, AlertStatus, Contact, MaintenanceWindow,
    NotificationRule, StoreError, UnixTime,
};

/// One round at `now`; `windows` are every account's maintenance windows.
pub(crate) async fn tick(
    app: &App,
    windows: &[MaintenanceWindow],
    now: UnixTime,
) -> Result<(), StoreError> {
    let mut by_account: BTreeMap<AccountId, Vec<NotificationRule>> = BTreeMap::new();
    for rule in app.store.followup_rules().await? {
        by_account.entry(rule.account_id).or_default().push(rule);
    }
    for (account, rules) in by_account {
        if let Err(e) = account_round(app, account, &rules, windows, now).await {
            tracing::warn!(%account, error = %e, "reminders and escalation failed for an account");
        }
    }
    Ok(())
}

async fn account_round(
    app: &App,
    account: AccountId,
    rules: &[NotificationRule],
    windows: &[MaintenanceWindow],
    now: UnixTime,
) -> Result<(), StoreError> {
    let open: Vec<Alert> = app
        .store
        .alerts(
            account,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                agent: None,
            },
        )
        .await?
        .into_iter()
        .filter(|a| !a.is_acknowledged())
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    let agents: HashMap<AgentId, Agent> = app
        .store
        .agents(account)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    let contacts: HashMap<String, Contact> = app
        .store
        .contacts(account)
        .await?
        .into_iter()
        .map(|c| (c.id.to_string(), c))
        .collect();
    let mine: Vec<MaintenanceWindow> = windows
        .iter()
        .filter(|w| w.account_id == account)
        .cloned()
        .collect();
    for alert in &open {
        let Some(agent) = agents.get(&alert.agent_id) else {
            continue;
        };
        if covering(&mine, agent, now).is_some() {
            continue;
        }
        let event = event_for(alert.condition, true).0;
        let applying: Vec<&NotificationRule> = rules
            .iter()
            .filter(|r| {
                r.agent_id.is_none_or(|a| a == agent.id)
                    && r.events.iter().any(|e| e == "*" || e == event.as_str())
            })
            .collect();
        if applying.is_empty() {
            continue;
        }
        // Counted from the first notice: an alert raised in maintenance was
        // first told when the window ended.
        let first = app
            .store
            .first_queued_at(account, &format!("alert:{}:raised", alert.id))
            .await?;
        let since = first.unwrap_or(alert.raised_at).max(alert.raised_at);
        for rule in applying {
            follow_up(app, agent, alert, since, rule, &contacts, now).await?;
        }
    }
    Ok(())
}

/// Queues what `rule` has due at `now` for `alert`, first told at
/// `since`. What was queued
/// before is looked up first (one indexed read), so a round over alerts
/// whose follow-ups went out already builds no notice.
async fn follow_up(
    app: &App,
    agent: &Agent,
    alert: &Alert,
    since: UnixTime,
    rule: &NotificationRule,
    contacts: &HashMap<String, Contact>,
    now: UnixTime,
) -> Result<(), StoreError> {
    let minutes = |since: UnixTime| (now - since).max(0) / 60;
    if let Some(every) = rule.remind_every_minutes {
        if let Some(n) = reminder_due(since, now, every) {
            let key = format!("alert:{}:remind:{}:{n}", alert.id, rule.id);
            let to = unqueued(
                app,
                alert,
                [rule.contact_id.to_string()].iter(),
                contacts,
                &key,
            )
            .await?;
            if !to.is_empty() {
                let mut o = app.occurrence_of(agent, &alert.target, alert, now).await?;
                o.title = format!("Reminder: {}", o.title);
                o.details = format!(
                    "Still open and not acknowledged after {} min (reminder {n}, every {every} min \
                     until someone acknowledges it or it ends).\n\n{}",
                    minutes(since),
                    o.details
                );
                o.outbox_key = key;
                app.queue_to(o, Some(alert.id), to).await?;
            }
        }
    }
    for step in steps_due(since, now, &rule.escalation) {
        let key = format!("alert:{}:escalate:{}:{step}", alert.id, rule.id);
        let to = unqueued(
            app,
            alert,
            rule.escalation[step].contacts.iter(),
            contacts,
            &key,
        )
        .await?;
        if to.is_empty() {
            continue;
        }
        let mut o = app.occurrence_of(agent, &alert.target, alert, now).await?;
        o.title = format!("Escalated: {}", o.title);
        o.details = format!(
            "Not acknowledged {} min after it was told: escalation step {} of {}.\n\n{}",
            rule.escalation[step].after_minutes,
            step + 1,
            rule.escalation.len(),
            o.details
        );
        o.outbox_key = key;
        app.queue_to(o, Some(alert.id), to).await?;
    }
    Ok(())
}

/// The contacts among `ids` (the account's, still there) that `key` was
/// not queued for yet.
async fn unqueued<'a>(
    app: &App,
    alert: &Alert,
    ids: impl Iterator<Item = &'a String>,
    contacts: &HashMap<String, Contact>,
    key: &str,
) -> Result<Vec<Contact>, StoreError> {
    let mut out = Vec::new();
    for c in ids.filter_map(|id| contacts.get(id)) {
        if !app.store.is_queued(alert.account_id, c.id, key).await? {
            out.push(c.clone());
        }
    }
    Ok(out)
}
