//! What people are told when an alert is over, and why it is.
//!
//! "Port 8080/tcp no longer open" is only true when the port closed. When
//! a policy change ended the alert ([`Resolution::PolicyChanged`]: the port
//! is now authorized, or no longer monitored; [`Resolution::NotScanned`]:
//! the port is no longer probed) the port may be exactly as it was, so the
//! title and the notice say what changed and who changed it.

use vigil_core::{Condition, ConditionKind, Resolution};
use vigil_store::Alert;

/// Why an alert ended, and whose change ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ending<'a> {
    pub why: Resolution,
    /// The email of the user whose change ended it (who saved the policy
    /// that authorizes the port, who approved the device); `None` when the
    /// scans ended it or nobody is known.
    pub by: Option<&'a str>,
}

impl Ending<'static> {
    /// The condition stopped, as the scans saw.
    pub(crate) const CLEARED: Ending<'static> = Ending {
        why: Resolution::Cleared,
        by: None,
    };
}

impl<'a> Ending<'a> {
    /// How `alert` ended, as stored; `None` while it is open, and for
    /// alerts resolved before Vigil recorded why.
    pub(crate) fn of(alert: &'a Alert) -> Option<Ending<'a>> {
        alert.resolution.map(|why| Ending {
            why,
            by: alert.resolved_by.as_deref(),
        })
    }
}

/// Where the alert is, as its title names it.
pub(crate) struct Place<'a> {
    /// `the agent's host (agent "home")`, `agent "home"`.
    pub place: &'a str,
    /// The agent's name.
    pub agent: &'a str,
    /// `TCP`/`UDP` for the router's port forwards (`forward:<proto>`).
    pub forward: Option<&'a str>,
}

/// `" (policy changed by alice@example.com)"`, `" (policy changed)"`.
fn changed_by(by: Option<&str>) -> String {
    match by {
        Some(by) => format!(" (policy changed by {by})"),
        None => " (policy changed)".into(),
    }
}

/// A one-line title for an alert that `ending` ended.
pub(crate) fn title(at: &Place<'_>, condition: Condition, ending: Ending<'_>) -> String {
    let Place {
        place,
        agent,
        forward,
    } = *at;
    let why = ending.why;
    let by = changed_by(ending.by);
    if let (Some(proto), ConditionKind::UnauthorizedOpen, Some(p)) =
        (forward, condition.kind, condition.port)
    {
        return match why {
            Resolution::Cleared => {
                format!("Router no longer forwards {proto} {p} from outside (agent {agent:?})")
            }
            Resolution::PolicyChanged => format!(
                "Router forwards {proto} {p} from outside, now authorized (agent {agent:?}){by}"
            ),
            Resolution::NotScanned => {
                format!("Router forward of {proto} {p} no longer checked (agent {agent:?}){by}")
            }
        };
    }
    match (why, condition.kind, condition.port) {
        (Resolution::Cleared, ConditionKind::UnauthorizedOpen, Some(p)) => {
            format!("Port {p}/tcp no longer open on {place}")
        }
        (Resolution::Cleared, ConditionKind::ServiceDown, Some(p)) => {
            format!("Service on port {p}/tcp recovered on {place}")
        }
        (Resolution::Cleared, ConditionKind::TargetUnreachable, _) => {
            format!("{place} reachable again")
        }
        (Resolution::Cleared, ConditionKind::AgentNotCommunicating, _) => {
            format!("Agent {agent:?} communicates again")
        }
        (Resolution::Cleared, ConditionKind::NewDevice, _) => match ending.by {
            Some(by) => format!("New {place} approved by {by}"),
            None => format!("New {place} approved"),
        },
        (Resolution::Cleared, ConditionKind::ProcessChanged, Some(p)) => {
            format!("Port {p}/tcp steadily served again on {place}")
        }
        (Resolution::Cleared, _, _) => format!("{condition} over on {place}"),
        (Resolution::PolicyChanged, ConditionKind::UnauthorizedOpen, Some(p)) => {
            format!("Port {p}/tcp now authorized on {place}{by}")
        }
        (Resolution::PolicyChanged, ConditionKind::ServiceDown, Some(p)) => {
            format!("Port {p}/tcp no longer monitored on {place}{by}")
        }
        (Resolution::NotScanned, _, Some(p)) => {
            format!("Port {p}/tcp no longer scanned on {place}{by}")
        }
        (Resolution::PolicyChanged | Resolution::NotScanned, _, _) => {
            format!("{condition} on {place}: no longer an alert{by}")
        }
    }
}

/// What the notice of an alert that `ending` ended says, a few lines.
pub(crate) fn details(condition: Condition, ending: Ending<'_>) -> String {
    let by = match ending.by {
        Some(by) => format!(" (changed by {by})"),
        None => String::new(),
    };
    match (ending.why, condition.kind) {
        (Resolution::Cleared, _) => "The condition is over; no action needed.".into(),
        (Resolution::PolicyChanged, ConditionKind::UnauthorizedOpen) => format!(
            "The port may still be open: the security scan's policy{by} now authorizes \
             it, so it is no longer an alert. If it should not be reachable, remove it from \
             the authorized ports and close it."
        ),
        (Resolution::PolicyChanged, ConditionKind::ServiceDown) => format!(
            "The service may still be down: the security scan's policy{by} no longer \
             monitors the port, so whether it answers is no longer checked."
        ),
        (Resolution::PolicyChanged, _) => format!(
            "The security scan's policy{by} no longer makes this an alert; the scans did not \
             find it over."
        ),
        (Resolution::NotScanned, _) => format!(
            "The security scan's policy{by} no longer probes the port, so nothing is known \
             of it any more. Add it to the monitored or authorized ports to watch it again."
        ),
    }
}

/// The line an alert's history shows for its `resolved` entry, whose
/// detail is the stored [`Resolution`] (none before Vigil recorded it).
pub(crate) fn history_line(detail: Option<&str>) -> &'static str {
    match detail.map(Resolution::parse) {
        Some(Ok(Resolution::Cleared)) => "The condition is over.",
        Some(Ok(Resolution::PolicyChanged)) => {
            "The policy changed: it no longer makes this an alert."
        }
        Some(Ok(Resolution::NotScanned)) => "The policy no longer scans its port.",
        Some(Err(_)) | None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Place<'static> = Place {
        place: "the agent's host (agent \"home\")",
        agent: "home",
        forward: None,
    };
    const ROUTER: Place<'static> = Place {
        place: "forward:tcp",
        agent: "home",
        forward: Some("TCP"),
    };

    fn ending(why: Resolution, by: Option<&'static str>) -> Ending<'static> {
        Ending { why, by }
    }

    #[test]
    fn titles_say_why_and_who() {
        use Resolution::*;
        let alice = Some("alice@example.com");
        let open = Condition::unauthorized_open(8080);
        let down = Condition::service_down(22);
        let cases: &[(&Place<'_>, Condition, Ending<'_>, &str)] = &[
            (
                &HOST,
                open,
                ending(Cleared, None),
                "Port 8080/tcp no longer open on the agent's host (agent \"home\")",
            ),
            (
                &HOST,
                open,
                ending(PolicyChanged, alice),
                "Port 8080/tcp now authorized on the agent's host (agent \"home\") \
                 (policy changed by alice@example.com)",
            ),
            (
                &HOST,
                open,
                ending(PolicyChanged, None),
                "Port 8080/tcp now authorized on the agent's host (agent \"home\") \
                 (policy changed)",
            ),
            (
                &HOST,
                open,
                ending(NotScanned, alice),
                "Port 8080/tcp no longer scanned on the agent's host (agent \"home\") \
                 (policy changed by alice@example.com)",
            ),
            (
                &HOST,
                down,
                ending(Cleared, None),
                "Service on port 22/tcp recovered on the agent's host (agent \"home\")",
            ),
            (
                &HOST,
                down,
                ending(PolicyChanged, alice),
                "Port 22/tcp no longer monitored on the agent's host (agent \"home\") \
                 (policy changed by alice@example.com)",
            ),
            (
                &HOST,
                Condition::target_unreachable(),
                ending(Cleared, None),
                "the agent's host (agent \"home\") reachable again",
            ),
            (
                &HOST,
                Condition::target_unreachable(),
                ending(PolicyChanged, None),
                "target unreachable on the agent's host (agent \"home\"): no longer an alert \
                 (policy changed)",
            ),
            (
                &HOST,
                Condition::agent_not_communicating(),
                ending(Cleared, None),
                "Agent \"home\" communicates again",
            ),
            (
                &Place {
                    place: "device 3c:d9:2b:00:00:10 (agent \"home\")",
                    ..HOST
                },
                Condition::new_device(),
                ending(Cleared, alice),
                "New device 3c:d9:2b:00:00:10 (agent \"home\") approved by alice@example.com",
            ),
            (
                &ROUTER,
                Condition::unauthorized_open(3389),
                ending(Cleared, None),
                "Router no longer forwards TCP 3389 from outside (agent \"home\")",
            ),
            (
                &ROUTER,
                Condition::unauthorized_open(3389),
                ending(PolicyChanged, alice),
                "Router forwards TCP 3389 from outside, now authorized (agent \"home\") \
                 (policy changed by alice@example.com)",
            ),
        ];
        for (at, condition, ending, want) in cases {
            assert_eq!(title(at, *condition, *ending), *want);
        }
    }

    #[test]
    fn details_never_claim_a_policy_change_closed_anything() {
        let open = Condition::unauthorized_open(8080);
        let cleared = details(open, Ending::CLEARED);
        assert_eq!(cleared, "The condition is over; no action needed.");
        for why in [Resolution::PolicyChanged, Resolution::NotScanned] {
            for condition in [open, Condition::service_down(22)] {
                let by = details(condition, ending(why, Some("alice@example.com")));
                assert!(by.contains("alice@example.com"), "{by}");
                assert!(!by.contains("is over"), "{by}");
                let nobody = details(condition, ending(why, None));
                assert!(!nobody.contains("changed by"), "{nobody}");
            }
        }
        assert!(details(open, ending(Resolution::PolicyChanged, None))
            .starts_with("The port may still be open"));
    }

    #[test]
    fn history_lines_follow_the_stored_reason() {
        for (detail, want) in [
            (Some("cleared"), "The condition is over."),
            (Some("policy_changed"), "The policy changed"),
            (Some("not_scanned"), "no longer scans"),
            (Some("bogus"), ""),
            (None, ""),
        ] {
            let line = history_line(detail);
            assert!(
                if want.is_empty() {
                    line.is_empty()
                } else {
                    line.contains(want)
                },
                "{detail:?}: {line}"
            );
        }
    }
}
