//! After an assessment: tell the account's contacts which endpoints changed
//! status since the previous completed assessment, and trim the history.
//!
//! One summary notification per assessment (event `compliance_changed`),
//! never one per endpoint: a network change can flip hundreds of addresses
//! at once. It goes through the outbox like alerts do, to the contacts of
//! rules for every agent that list `compliance_changed` (`"*"` includes it);
//! a rule for one agent is about that agent and does not match. The first
//! assessment of an account has nothing to compare with and tells no one;
//! endpoints that appear or disappear (a changed scope) are not changes.

use super::schedule::prune_history;
use crate::app::App;
use std::collections::HashMap;
use vigil_core::compliance::{AdvancedQuery, Endpoint, EndpointStatus, MAX_SCOPE_ADDRESSES};
use vigil_notify::{EventKind, Notification, Severity};
use vigil_store::{endpoint_key, now_unix, AccountId, Assessment, AssessmentId, AssessmentState};
use vigil_store::{StoreError, UnixTime};

/// Changes listed in one notification; the rest are counted.
const MAX_LISTED: usize = 20;
/// Longest endpoint name shown, in characters.
const MAX_NAME_CHARS: usize = 80;
/// What notification receivers see in the "agent" field: the summary is
/// about the account's compliance scope, not one agent.
const SOURCE_NAME: &str = "compliance assessment";

/// One endpoint whose status differs from the previous assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub name: String,
    pub from: EndpointStatus,
    pub to: EndpointStatus,
}

/// Called once an assessment has ended (in whatever state): notifies the
/// status changes of a completed one and prunes the history. Errors are
/// logged; the assessment itself is already recorded.
pub(crate) async fn assessment_finished(app: &App, account: AccountId, id: AssessmentId) {
    match notify_changes(app, account, id).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(%account, assessment = %id, contacts = n,
            "compliance status changes queued for notification"),
        Err(e) => tracing::error!(%account, assessment = %id, error = %e,
            "cannot notify compliance status changes"),
    }
    if let Err(e) = prune_history(&app.store, account).await {
        tracing::error!(%account, error = %e, "cannot prune the compliance history");
    }
}

/// Queues the summary for each interested contact if the assessment is
/// done and endpoints changed status; returns how many were queued.
async fn notify_changes(
    app: &App,
    account: AccountId,
    id: AssessmentId,
) -> Result<usize, StoreError> {
    let assessment = app.store.assessment(account, id).await?;
    if assessment.state != AssessmentState::Done {
        return Ok(0);
    }
    let Some(previous) = previous_done(app, &assessment).await? else {
        return Ok(0); // the first one: nothing to compare with
    };
    let before = app.store.previous_statuses(account, previous.id).await?;
    let (after, _) = app
        .store
        .endpoints(
            account,
            id,
            &AdvancedQuery::default(),
            0,
            MAX_SCOPE_ADDRESSES as u64,
        )
        .await?;
    let changed = changes(&before, &after);
    if changed.is_empty() {
        return Ok(0);
    }
    let contacts = app
        .store
        .account_rules_for(account, EventKind::ComplianceChanged.as_str())
        .await?;
    if contacts.is_empty() {
        return Ok(0);
    }
    let at = assessment.finished_at.unwrap_or_else(now_unix);
    let notification = Notification {
        event: EventKind::ComplianceChanged,
        severity: severity(&changed),
        account: app.store.account(account).await?.name,
        agent_name: SOURCE_NAME.into(),
        agent_id: id.to_string(),
        target: None,
        port: None,
        occurred_at: at.into(),
        title: title(changed.len()),
        details: details(&changed, previous.started_at),
        dedupe_key: format!("compliance:{account}"),
        console_url: app.cfg.console_url.clone(),
        delivery_id: None,
        ack_url: None,
    };
    let payload = serde_json::to_value(&notification)
        .map_err(|e| StoreError::Invalid(format!("cannot encode notification: {e}")))?;
    // One key per assessment: a repeated call queues nothing new.
    let key = format!("compliance-changed:{id}");
    let mut queued = 0;
    for contact in contacts {
        if app
            .store
            .enqueue(account, contact.id, &key, &payload, at)
            .await?
        {
            queued += 1;
        }
    }
    if queued > 0 {
        app.outbox_wake.notify_one();
    }
    Ok(queued)
}

/// The newest completed assessment that started before this one.
async fn previous_done(app: &App, a: &Assessment) -> Result<Option<Assessment>, StoreError> {
    let recent = app.store.assessments(a.account_id, 1000).await?;
    Ok(recent
        .into_iter()
        .skip_while(|p| p.id != a.id)
        .skip(1)
        .find(|p| p.state == AssessmentState::Done))
}

/// Endpoints present in both assessments whose status differs, by name.
pub(crate) fn changes(before: &HashMap<String, EndpointStatus>, after: &[Endpoint]) -> Vec<Change> {
    let mut out: Vec<Change> = after
        .iter()
        .filter_map(|e| {
            let from = *before.get(&endpoint_key(e))?;
            (from != e.status).then(|| Change {
                name: display_name(e),
                from,
                to: e.status,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The name, with the address when the name is not already it.
fn display_name(e: &Endpoint) -> String {
    let name: String = e.name.chars().take(MAX_NAME_CHARS).collect();
    match e.addrs.first() {
        Some(addr) if addr.to_string() != e.name => format!("{name} ({addr})"),
        _ => name,
    }
}

/// A warning when an endpoint now needs attention (no agent, someone
/// else's agent, unresolved), information otherwise (newly managed here,
/// or just switched off).
pub(crate) fn severity(changes: &[Change]) -> Severity {
    let attention = changes.iter().any(|c| {
        matches!(
            c.to,
            EndpointStatus::NoAgent
                | EndpointStatus::ManagedElsewhere
                | EndpointStatus::UnresolvedAd
        )
    });
    if attention {
        Severity::Warning
    } else {
        Severity::Info
    }
}

pub(crate) fn title(n: usize) -> String {
    match n {
        1 => "1 endpoint changed compliance status".into(),
        n => format!("{n} endpoints changed compliance status"),
    }
}

/// One line per change (at most [`MAX_LISTED`], then how many more).
pub(crate) fn details(changes: &[Change], previous_started: UnixTime) -> String {
    let mut out = format!(
        "Since the assessment started at {}:\n",
        vigil_notify::OccurredAt::from(previous_started)
    );
    for c in changes.iter().take(MAX_LISTED) {
        out.push_str(&format!("{}: {} → {}\n", c.name, c.from, c.to));
    }
    if changes.len() > MAX_LISTED {
        out.push_str(&format!(
            "… and {} more (see the endpoint list of the assessment)\n",
            changes.len() - MAX_LISTED
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointStatus::*;

    fn ep(addr: &str, status: EndpointStatus) -> Endpoint {
        let mut e = Endpoint::new(addr, status);
        e.addrs = vec![addr.parse().unwrap()];
        e
    }

    #[test]
    fn only_endpoints_in_both_with_another_status_changed() {
        let before: HashMap<String, EndpointStatus> = [
            ep("198.51.100.20", Unreachable),
            ep("198.51.100.10", NoAgent),
            ep("198.51.100.30", ManagedHere),
            ep("198.51.100.40", Unreachable),
        ]
        .iter()
        .map(|e| (endpoint_key(e), e.status))
        .collect();
        let mut named = ep("198.51.100.30", NoAgent);
        named.name = "web-1".into();
        let after = [
            ep("198.51.100.20", NoAgent),
            ep("198.51.100.10", ManagedHere),
            named,
            ep("198.51.100.40", Unreachable),
            ep("198.51.100.99", NoAgent), // new: not a change
        ];
        let got = changes(&before, &after);
        assert_eq!(
            got,
            vec![
                Change {
                    name: "198.51.100.10".into(),
                    from: NoAgent,
                    to: ManagedHere
                },
                Change {
                    name: "198.51.100.20".into(),
                    from: Unreachable,
                    to: NoAgent
                },
                Change {
                    name: "web-1 (198.51.100.30)".into(),
                    from: ManagedHere,
                    to: NoAgent
                },
            ]
        );
        assert!(changes(&HashMap::new(), &after).is_empty());
    }

    #[test]
    fn summary_lists_a_capped_number_of_changes() {
        let change = |i: usize, to| Change {
            name: format!("host-{i:02}"),
            from: Unreachable,
            to,
        };
        let few = vec![change(1, NoAgent)];
        assert_eq!(title(few.len()), "1 endpoint changed compliance status");
        assert_eq!(
            details(&few, 0),
            "Since the assessment started at 1970-01-01T00:00:00Z:\n\
             host-01: unreachable → no_agent\n"
        );
        assert_eq!(severity(&few), Severity::Warning);
        assert_eq!(severity(&[change(1, ManagedHere)]), Severity::Info);

        let many: Vec<Change> = (0..MAX_LISTED + 5)
            .map(|i| change(i, ManagedHere))
            .collect();
        assert_eq!(title(many.len()), "25 endpoints changed compliance status");
        let text = details(&many, 0);
        assert_eq!(text.lines().count(), 1 + MAX_LISTED + 1, "{text}");
        assert!(text.ends_with("… and 5 more (see the endpoint list of the assessment)\n"));
        assert!(!text.contains("host-20"), "{text}");
    }

    #[test]
    fn long_names_are_cut() {
        let mut e = ep("198.51.100.7", NoAgent);
        e.name = "x".repeat(500);
        assert_eq!(
            display_name(&e),
            format!("{} (198.51.100.7)", "x".repeat(MAX_NAME_CHARS))
        );
    }
}
