//! An agent's reachability timeline: the rows the REST API
//! (`GET /api/v1/agents/{id}/timeline`) and the web console's history page
//! draw from the same code.
//!
//! A timeline has one row for the agent's communication with the server
//! (its *agent not communicating* alerts), one per scanned target (*target
//! unreachable*) and one per monitored port of a target (*service down*).
//! Each row is known from when its subject could first be seen: the
//! agent's enrollment, a target's first scan; earlier is "unknown".

use crate::alert::{target_label, AGENT_TARGET};
use crate::app::App;
use std::collections::BTreeSet;
use vigil_core::timeline::{Outage, Timeline, Window};
use vigil_core::ConditionKind;
use vigil_store::{Agent, AlertSpan, StoreError, UnixTime};

/// At most this many rows per timeline (the agent, targets, services).
pub(crate) const MAX_ROWS: usize = 100;

/// What a timeline row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    /// The agent communicates with the server.
    Agent,
    /// A scanned target answers.
    Target,
    /// A monitored port of a target is open.
    Service,
}

impl RowKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RowKind::Agent => "agent",
            RowKind::Target => "target",
            RowKind::Service => "service",
        }
    }
}

/// One row of a timeline.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub kind: RowKind,
    /// For people: "Agent", "nas.lan", "443/tcp on the agent's host".
    pub label: String,
    pub target: Option<String>,
    pub port: Option<u16>,
    pub timeline: Timeline,
}

impl Row {
    /// The row in one sentence: "Agent reachable 97.3 % of the last 24 h".
    pub(crate) fn summary(&self, window: Window) -> String {
        let verb = match self.kind {
            RowKind::Agent | RowKind::Target => "reachable",
            RowKind::Service => "up",
        };
        let subject = match self.kind {
            RowKind::Service => format!("Port {}", self.label),
            _ => capitalized(&self.label),
        };
        match self.timeline.up_fraction() {
            Some(f) => format!(
                "{subject} {verb} {} % of the last {}",
                vigil_core::timeline::percent_text(f),
                window.label()
            ),
            None => format!(
                "{subject}: nothing known of the last {} yet",
                window.label()
            ),
        }
    }
}

/// "the agent's host" starts a sentence as "The agent's host"; host names
/// stay as they are.
fn capitalized(s: &str) -> String {
    match s.strip_prefix("the ") {
        Some(rest) => format!("The {rest}"),
        None => s.to_string(),
    }
}

/// The timeline rows of `agent` for the window ending `now`, and how many
/// rows were left out (beyond [`MAX_ROWS`]).
pub(crate) async fn timeline_rows(
    app: &App,
    agent: &Agent,
    window: Window,
    now: UnixTime,
) -> Result<(Vec<Row>, usize), StoreError> {
    let (account, id) = (agent.account_id, agent.id);
    let from = now - window.secs();
    let spans = app.store.timeline_alerts(account, id, from, now).await?;
    let first_scans = app.store.first_scans(account, id).await?;
    let policy = app.store.policy(account, id).await?;
    Ok(rows_of(
        agent,
        policy.as_ref(),
        &spans,
        &first_scans,
        from,
        now,
    ))
}

/// [`timeline_rows`] from what the store said (pure).
fn rows_of(
    agent: &Agent,
    policy: Option<&vigil_core::SecurityPolicy>,
    spans: &[AlertSpan],
    first_scans: &[(String, UnixTime)],
    from: UnixTime,
    to: UnixTime,
) -> (Vec<Row>, usize) {
    let outages = |target: &str, kind: ConditionKind, port: Option<u16>| -> Vec<Outage> {
        spans
            .iter()
            .filter(|s| s.target == target && s.condition.kind == kind && s.condition.port == port)
            .map(|s| Outage {
                start: s.raised_at,
                end: s.resolved_at,
            })
            .collect()
    };
    let mut rows = vec![Row {
        kind: RowKind::Agent,
        label: "Agent".into(),
        target: None,
        port: None,
        timeline: Timeline::new(
            from,
            to,
            agent.enrolled_at,
            &outages(AGENT_TARGET, ConditionKind::AgentNotCommunicating, None),
        ),
    }];
    // The policy's targets in its order, then targets that had an outage
    // in the window but are no longer in the policy.
    let mut targets: Vec<String> = policy
        .map(|p| p.targets.iter().map(|t| t.key()).collect())
        .unwrap_or_default();
    for s in spans {
        if s.target != AGENT_TARGET && !targets.contains(&s.target) {
            targets.push(s.target.clone());
        }
    }
    let mut total = 1;
    for target in &targets {
        // Never scanned: nothing known (unless an outage says otherwise).
        let known = first_scans
            .iter()
            .find(|(t, _)| t == target)
            .map_or(to, |(_, at)| *at);
        let label = target_label(target);
        let in_policy = policy.is_some_and(|p| p.targets.iter().any(|t| &t.key() == target));
        let mut ports: BTreeSet<u16> = BTreeSet::new();
        if in_policy {
            ports.extend(policy.map(|p| p.monitored.iter()).into_iter().flatten());
        }
        ports.extend(
            spans
                .iter()
                .filter(|s| &s.target == target && s.condition.kind == ConditionKind::ServiceDown)
                .filter_map(|s| s.condition.port),
        );
        total += 1 + ports.len();
        if rows.len() < MAX_ROWS {
            rows.push(Row {
                kind: RowKind::Target,
                label: label.clone(),
                target: Some(target.clone()),
                port: None,
                timeline: Timeline::new(
                    from,
                    to,
                    known,
                    &outages(target, ConditionKind::TargetUnreachable, None),
                ),
            });
        }
        for port in ports {
            if rows.len() >= MAX_ROWS {
                break;
            }
            rows.push(Row {
                kind: RowKind::Service,
                label: format!("{port}/tcp on {label}"),
                target: Some(target.clone()),
                port: Some(port),
                timeline: Timeline::new(
                    from,
                    to,
                    known,
                    &outages(target, ConditionKind::ServiceDown, Some(port)),
                ),
            });
        }
    }
    let hidden = total - rows.len();
    (rows, hidden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::timeline::State::*;
    use vigil_core::{Condition, PolicyTarget, PortList, SecurityPolicy};

    fn agent(enrolled_at: i64) -> Agent {
        crate::testing::agent("alpha", enrolled_at)
    }

    fn span(target: &str, condition: Condition, raised: i64, resolved: Option<i64>) -> AlertSpan {
        AlertSpan {
            target: target.into(),
            condition,
            raised_at: raised,
            resolved_at: resolved,
        }
    }

    #[test]
    fn rows_follow_the_policy_and_the_alerts() {
        let policy = SecurityPolicy {
            enabled: true,
            authorized: PortList::default(),
            monitored: PortList::from_ports([443, 22]),
            targets: vec![
                PolicyTarget::AgentHost,
                PolicyTarget::Host("nas.lan".into()),
            ],
            interval: Default::default(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        };
        let spans = [
            span(
                "agent",
                Condition::agent_not_communicating(),
                1100,
                Some(1200),
            ),
            span("agent_host", Condition::service_down(443), 1300, None),
            // No longer in the policy, but down in the window.
            span(
                "host:old.lan",
                Condition::target_unreachable(),
                1500,
                Some(1600),
            ),
            span(
                "host:old.lan",
                Condition::service_down(8080),
                1500,
                Some(1600),
            ),
        ];
        let firsts = [("agent_host".to_string(), 1050)];
        let (rows, hidden) = rows_of(&agent(1000), Some(&policy), &spans, &firsts, 0, 2000);
        assert_eq!(hidden, 0);
        let labels: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.kind.as_str(), r.label.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("agent", "Agent"),
                ("target", "the agent's host"),
                ("service", "22/tcp on the agent's host"),
                ("service", "443/tcp on the agent's host"),
                ("target", "nas.lan"),
                ("service", "22/tcp on nas.lan"),
                ("service", "443/tcp on nas.lan"),
                ("target", "old.lan"),
                ("service", "8080/tcp on old.lan"),
            ]
        );
        let states = |i: usize| -> Vec<_> {
            rows[i]
                .timeline
                .segments
                .iter()
                .map(|s| (s.start, s.end, s.state))
                .collect()
        };
        assert_eq!(
            states(0),
            [
                (0, 1000, Unknown),
                (1000, 1100, Up),
                (1100, 1200, Down),
                (1200, 2000, Up)
            ]
        );
        assert_eq!(states(1), [(0, 1050, Unknown), (1050, 2000, Up)]);
        assert_eq!(
            states(3),
            [(0, 1050, Unknown), (1050, 1300, Up), (1300, 2000, Down)]
        );
        // Never scanned: unknown throughout.
        assert_eq!(states(4), [(0, 2000, Unknown)]);
        assert_eq!(
            states(7),
            [(0, 1500, Unknown), (1500, 1600, Down), (1600, 2000, Up)]
        );
        assert_eq!(rows[1].target.as_deref(), Some("agent_host"));
        assert_eq!(rows[3].port, Some(443));

        assert_eq!(
            rows[0].summary(Window::Day),
            "Agent reachable 90.0 % of the last 24 h"
        );
        assert_eq!(
            rows[3].summary(Window::Week),
            "Port 443/tcp on the agent's host up 26.3 % of the last 7 d"
        );
        assert_eq!(
            rows[1].summary(Window::Day),
            "The agent's host reachable 100 % of the last 24 h"
        );
        assert_eq!(
            rows[4].summary(Window::Month),
            "nas.lan: nothing known of the last 30 d yet"
        );
    }

    #[test]
    fn rows_are_capped() {
        let policy = SecurityPolicy {
            enabled: true,
            authorized: PortList::default(),
            monitored: PortList::parse("1-500").unwrap(),
            targets: vec![PolicyTarget::AgentHost],
            interval: Default::default(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        };
        let (rows, hidden) = rows_of(&agent(0), Some(&policy), &[], &[], 0, 100);
        assert_eq!(rows.len(), MAX_ROWS);
        assert_eq!(hidden, 502 - MAX_ROWS);
        let (rows, hidden) = rows_of(&agent(0), None, &[], &[], 0, 100);
        assert_eq!((rows.len(), hidden), (1, 0));
    }
}
