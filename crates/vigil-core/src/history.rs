//! An agent's history: the kinds of change recorded for it, and the short
//! summaries people read in it ("authorized ports added 80; interval 60 →
//! 45 min").
//!
//! The summaries are computed once, when the change happens, and stored as
//! text: a later policy must not rewrite what an earlier change meant.

use crate::liveness::{AgentHealth, ScanStatus, StatusReason};
use crate::plan::Plan;
use crate::policy::{PolicyTarget, SecurityPolicy};
use crate::ports::PortList;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest summary, in characters; longer ones end in "…".
pub const MAX_SUMMARY_CHARS: usize = 500;

/// What happened to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentEventKind {
    /// An enrollment token was redeemed: the agent exists.
    Enrolled,
    /// A user moved it to another plan.
    PlanChanged,
    /// A user created or changed its security-scan policy.
    PolicyChanged,
    /// Its scan stopped for a while by itself (the agent went silent).
    ScanSuspended,
    /// Its scan was switched off by the server (the agent was abandoned).
    ScanDisabled,
    /// A suspended or automatically disabled scan runs again.
    ScanResumed,
    /// The liveness sweeper saw it start or stop communicating.
    HealthChanged,
    /// Another Vigil server asked for it to move there.
    MoveOrdered,
    /// It re-enrolled with another server (and was removed here).
    Moved,
    /// A user removed it.
    Removed,
}

impl AgentEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [AgentEventKind; 10] = [
        AgentEventKind::Enrolled,
        AgentEventKind::PlanChanged,
        AgentEventKind::PolicyChanged,
        AgentEventKind::ScanSuspended,
        AgentEventKind::ScanDisabled,
        AgentEventKind::ScanResumed,
        AgentEventKind::HealthChanged,
        AgentEventKind::MoveOrdered,
        AgentEventKind::Moved,
        AgentEventKind::Removed,
    ];

    /// The stored and serialized spelling, e.g. `policy_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentEventKind::Enrolled => "enrolled",
            AgentEventKind::PlanChanged => "plan_changed",
            AgentEventKind::PolicyChanged => "policy_changed",
            AgentEventKind::ScanSuspended => "scan_suspended",
            AgentEventKind::ScanDisabled => "scan_disabled",
            AgentEventKind::ScanResumed => "scan_resumed",
            AgentEventKind::HealthChanged => "health_changed",
            AgentEventKind::MoveOrdered => "move_ordered",
            AgentEventKind::Moved => "moved",
            AgentEventKind::Removed => "removed",
        }
    }

    /// The kind for people, e.g. "Policy changed".
    pub fn label(self) -> &'static str {
        match self {
            AgentEventKind::Enrolled => "Enrolled",
            AgentEventKind::PlanChanged => "Plan changed",
            AgentEventKind::PolicyChanged => "Policy changed",
            AgentEventKind::ScanSuspended => "Scan suspended",
            AgentEventKind::ScanDisabled => "Scan disabled",
            AgentEventKind::ScanResumed => "Scan resumed",
            AgentEventKind::HealthChanged => "Health changed",
            AgentEventKind::MoveOrdered => "Move ordered",
            AgentEventKind::Moved => "Moved",
            AgentEventKind::Removed => "Removed",
        }
    }

    /// Parses [`AgentEventKind::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<AgentEventKind> {
        AgentEventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AgentEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What changed from `old` (`None`: the agent had no policy) to `new`, in
/// one line; `None` when nothing did.
///
/// Changed fields come in a fixed order, separated by "; ": the switch
/// ("scan enabled"), authorized and monitored ports ("authorized ports
/// added 80, removed 23"), targets ("targets added \"nas.lan\"") and the
/// interval ("interval 60 → 45 min"). A new policy is described whole
/// ("policy created: scan enabled; authorized ports 22; …").
pub fn policy_change(old: Option<&SecurityPolicy>, new: &SecurityPolicy) -> Option<String> {
    let Some(old) = old else {
        let ports = |list: &PortList| {
            if list.is_empty() {
                "none".to_string()
            } else {
                list.to_string()
            }
        };
        return Some(clip(format!(
            "policy created: {}; authorized ports {}; monitored ports {}; targets {}; every {} min",
            switch(new.enabled),
            ports(&new.authorized),
            ports(&new.monitored),
            targets_text(new.targets.iter()),
            new.interval.minutes()
        )));
    };
    let mut parts = Vec::new();
    if old.enabled != new.enabled {
        parts.push(switch(new.enabled).to_string());
    }
    parts.extend(ports_change(
        "authorized ports",
        &old.authorized,
        &new.authorized,
    ));
    parts.extend(ports_change(
        "monitored ports",
        &old.monitored,
        &new.monitored,
    ));
    let added: Vec<&PolicyTarget> = new
        .targets
        .iter()
        .filter(|t| !old.targets.contains(t))
        .collect();
    let removed: Vec<&PolicyTarget> = old
        .targets
        .iter()
        .filter(|t| !new.targets.contains(t))
        .collect();
    parts.extend(added_removed(
        "targets",
        (!added.is_empty()).then(|| targets_text(added.into_iter())),
        (!removed.is_empty()).then(|| targets_text(removed.into_iter())),
    ));
    if old.interval != new.interval {
        parts.push(format!(
            "interval {} → {} min",
            old.interval.minutes(),
            new.interval.minutes()
        ));
    }
    // Only the order of targets changed: the policy scans the same.
    (!parts.is_empty()).then(|| clip(parts.join("; ")))
}

/// "communicating → not communicating"; `None` when it did not change.
pub fn health_change(previous: AgentHealth, current: AgentHealth) -> Option<String> {
    (previous != current).then(|| format!("{previous} → {current}"))
}

/// "community → extended"; `None` when it did not change.
pub fn plan_change(previous: Plan, current: Plan) -> Option<String> {
    (previous != current).then(|| format!("{previous} → {current}"))
}

/// What an agent's health change did to its scan by itself, as an event
/// kind and why; `None` when nothing worth telling happened.
///
/// A scan that becomes suspended, or disabled for a reason no user chose
/// (the agent is abandoned or silent), is recorded with that reason; one
/// that runs again after either is "resumed". Changes users make (the
/// switch, the plan, removing the agent) have events of their own.
pub fn scan_change(previous: ScanStatus, current: ScanStatus) -> Option<(AgentEventKind, String)> {
    if previous == current {
        return None;
    }
    let automatic = |r: StatusReason| {
        matches!(
            r,
            StatusReason::AgentNotCommunicating | StatusReason::AgentAbandoned
        )
    };
    match current {
        ScanStatus::Suspended { reason } => {
            Some((AgentEventKind::ScanSuspended, reason.text().to_string()))
        }
        ScanStatus::Disabled { reason } if automatic(reason) => {
            Some((AgentEventKind::ScanDisabled, reason.text().to_string()))
        }
        ScanStatus::Disabled { .. } => None,
        ScanStatus::Active => match previous.reason() {
            Some(was) if automatic(was) => Some((
                AgentEventKind::ScanResumed,
                "the agent communicates again; scans run at the policy's interval".to_string(),
            )),
            _ => None,
        },
    }
}

fn switch(enabled: bool) -> &'static str {
    if enabled {
        "scan enabled"
    } else {
        "scan disabled"
    }
}

fn targets_text<'a>(targets: impl Iterator<Item = &'a PolicyTarget>) -> String {
    let names: Vec<String> = targets.map(ToString::to_string).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn ports_change(what: &str, old: &PortList, new: &PortList) -> Option<String> {
    let added = PortList::from_ports(new.iter().filter(|&p| !old.contains(p)));
    let removed = PortList::from_ports(old.iter().filter(|&p| !new.contains(p)));
    added_removed(
        what,
        (!added.is_empty()).then(|| added.to_string()),
        (!removed.is_empty()).then(|| removed.to_string()),
    )
}

fn added_removed(what: &str, added: Option<String>, removed: Option<String>) -> Option<String> {
    match (added, removed) {
        (None, None) => None,
        (Some(a), None) => Some(format!("{what} added {a}")),
        (None, Some(r)) => Some(format!("{what} removed {r}")),
        (Some(a), Some(r)) => Some(format!("{what} added {a}, removed {r}")),
    }
}

/// At most [`MAX_SUMMARY_CHARS`] characters.
fn clip(text: String) -> String {
    if text.chars().count() <= MAX_SUMMARY_CHARS {
        return text;
    }
    let mut short: String = text.chars().take(MAX_SUMMARY_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ScanInterval;

    fn policy(
        enabled: bool,
        authorized: &str,
        monitored: &str,
        targets: &[PolicyTarget],
        minutes: u32,
    ) -> SecurityPolicy {
        let list = |s: &str| {
            if s.is_empty() {
                PortList::default()
            } else {
                PortList::parse(s).unwrap()
            }
        };
        SecurityPolicy {
            enabled,
            authorized: list(authorized),
            monitored: list(monitored),
            targets: targets.to_vec(),
            interval: ScanInterval::try_from(minutes).unwrap(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        }
    }

    #[test]
    fn policy_changes_are_summarized_field_by_field() {
        use PolicyTarget::*;
        let nas = || Host("nas.lan".into());
        let base = policy(true, "22,443", "443", &[AgentHost], 60);
        // (new policy, expected summary)
        let cases: Vec<(SecurityPolicy, Option<&str>)> = vec![
            (base.clone(), None),
            (
                policy(false, "22,443", "443", &[AgentHost], 60),
                Some("scan disabled"),
            ),
            (
                policy(true, "22,80,443", "443", &[AgentHost], 60),
                Some("authorized ports added 80"),
            ),
            (
                policy(true, "443", "443", &[AgentHost], 60),
                Some("authorized ports removed 22"),
            ),
            (
                policy(true, "23,443,8000-8002", "443", &[AgentHost], 60),
                Some("authorized ports added 23,8000-8002, removed 22"),
            ),
            (
                policy(true, "22,443", "", &[AgentHost], 60),
                Some("monitored ports removed 443"),
            ),
            (
                policy(true, "22,443", "443", &[AgentHost, nas()], 60),
                Some("targets added \"nas.lan\""),
            ),
            (
                policy(true, "22,443", "443", &[ObservedAddress], 60),
                Some("targets added observed address, removed agent host"),
            ),
            (
                policy(true, "22,443", "443", &[AgentHost], 45),
                Some("interval 60 → 45 min"),
            ),
            (
                policy(false, "22,80", "443,8443", &[nas(), AgentHost], 15),
                Some(
                    "scan disabled; authorized ports added 80, removed 443; \
                     monitored ports added 8443; targets added \"nas.lan\"; interval 60 → 15 min",
                ),
            ),
        ];
        for (new, want) in cases {
            assert_eq!(policy_change(Some(&base), &new).as_deref(), want, "{new:?}");
        }
    }

    #[test]
    fn order_of_targets_is_no_change() {
        use PolicyTarget::*;
        let a = policy(true, "22", "", &[AgentHost, ObservedAddress], 60);
        let b = policy(true, "22", "", &[ObservedAddress, AgentHost], 60);
        assert_eq!(policy_change(Some(&a), &b), None);
    }

    #[test]
    fn a_new_policy_is_described_whole() {
        use PolicyTarget::*;
        let cases: Vec<(SecurityPolicy, &str)> = vec![
            (
                policy(true, "22,80", "443", &[AgentHost], 45),
                "policy created: scan enabled; authorized ports 22,80; monitored ports 443; \
                 targets agent host; every 45 min",
            ),
            (
                policy(
                    false,
                    "",
                    "",
                    &[Host("nas.lan".into()), ObservedAddress],
                    60,
                ),
                "policy created: scan disabled; authorized ports none; monitored ports none; \
                 targets \"nas.lan\", observed address; every 60 min",
            ),
        ];
        for (new, want) in cases {
            assert_eq!(policy_change(None, &new).as_deref(), Some(want));
        }
    }

    #[test]
    fn long_summaries_are_clipped() {
        let hosts: Vec<PolicyTarget> = (0..100)
            .map(|i| PolicyTarget::Host(format!("host-{i}.example.org")))
            .collect();
        let old = policy(true, "22", "", &[PolicyTarget::AgentHost], 60);
        let new = policy(true, "22", "", &hosts, 60);
        let s = policy_change(Some(&old), &new).unwrap();
        assert_eq!(s.chars().count(), MAX_SUMMARY_CHARS);
        assert!(s.ends_with('…'), "{s}");
        assert!(s.starts_with("targets added \"host-0.example.org\""), "{s}");
    }

    #[test]
    fn health_and_plan_changes() {
        use AgentHealth::*;
        let cases: &[(AgentHealth, AgentHealth, Option<&str>)] = &[
            (Communicating, Communicating, None),
            (
                Communicating,
                NotCommunicating,
                Some("communicating → not communicating"),
            ),
            (
                NotCommunicating,
                Communicating,
                Some("not communicating → communicating"),
            ),
            (
                NotCommunicating,
                Abandoned,
                Some("not communicating → abandoned"),
            ),
        ];
        for &(a, b, want) in cases {
            assert_eq!(health_change(a, b).as_deref(), want, "{a} → {b}");
        }
        assert_eq!(plan_change(Plan::Extended, Plan::Extended), None);
        assert_eq!(
            plan_change(Plan::Community, Plan::Extended).as_deref(),
            Some("community → extended")
        );
    }

    #[test]
    fn scan_changes_by_themselves_are_told() {
        use AgentEventKind::*;
        use StatusReason::*;
        let active = ScanStatus::Active;
        let suspended = ScanStatus::Suspended {
            reason: AgentNotCommunicating,
        };
        let disabled = |reason| ScanStatus::Disabled { reason };
        // (previous, current, expected kind)
        let cases: &[(ScanStatus, ScanStatus, Option<AgentEventKind>)] = &[
            (active, active, None),
            (active, suspended, Some(ScanSuspended)),
            (suspended, suspended, None),
            (suspended, active, Some(ScanResumed)),
            (active, disabled(AgentAbandoned), Some(ScanDisabled)),
            (suspended, disabled(AgentAbandoned), Some(ScanDisabled)),
            (disabled(AgentAbandoned), active, Some(ScanResumed)),
            // Users' and plans' doings have events of their own.
            (disabled(AgentAbandoned), disabled(DisabledByUser), None),
            (active, disabled(DisabledByUser), None),
            (active, disabled(CommunityPlan), None),
            (disabled(DisabledByUser), active, None),
            (disabled(CommunityPlan), active, None),
            (
                disabled(DisabledByUser),
                disabled(AgentAbandoned),
                Some(ScanDisabled),
            ),
        ];
        for &(a, b, want) in cases {
            let got = scan_change(a, b);
            assert_eq!(got.as_ref().map(|(k, _)| *k), want, "{a} → {b}");
            if let Some((_, why)) = got {
                assert!(!why.is_empty());
            }
        }
        assert_eq!(
            scan_change(active, suspended).unwrap().1,
            AgentNotCommunicating.text()
        );
        assert_eq!(
            scan_change(active, disabled(AgentAbandoned)).unwrap().1,
            AgentAbandoned.text()
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in AgentEventKind::ALL {
            assert_eq!(AgentEventKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
            assert!(!k.label().is_empty());
        }
        assert_eq!(AgentEventKind::parse("Enrolled"), None);
        assert_eq!(AgentEventKind::parse(""), None);
    }
}
