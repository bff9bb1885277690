//! Turning security-scan observations into alerts, one alert per condition.
//!
//! [`evaluate`] compares one new [`Observation`] of a target (one agent, one
//! target address) against the [`SecurityPolicy`] and the [`TargetState`]
//! left by earlier scans, and returns the [`Event`]s to notify.
//!
//! # Rules
//!
//! * An **open** port that is not authorized (authorized ∪ monitored) is the
//!   condition [`ConditionKind::UnauthorizedOpen`]. Closed and filtered ports
//!   never cause it.
//! * A **monitored** port that is not open (closed, filtered or unreachable)
//!   is [`ConditionKind::ServiceDown`].
//! * A host that cannot be reached is [`ConditionKind::TargetUnreachable`].
//!   While it is unreachable the scan says nothing about its ports, so port
//!   conditions are left exactly as they were (no raise, no clear, counters
//!   frozen).
//! * Only ports present in the observation update their conditions; a port
//!   missing from a scan keeps its condition unchanged.
//! * A condition is **raised** after it was seen in `raise_after`
//!   consecutive scans and **cleared** after `clear_after` consecutive scans
//!   without it ([`DampingConfig`]). Raising emits one [`Change::Raised`],
//!   clearing one [`Change::Cleared`]; nothing is emitted while it persists.
//! * **Flapping**: when the raised/cleared state of a condition changed
//!   `flap_threshold` times within its last `flap_window` evaluations, one
//!   [`Change::FlappingStarted`] is emitted (instead of the Raised/Cleared of
//!   that change) and Raised/Cleared are suppressed until the state has not
//!   changed for `flap_window` evaluations; then one
//!   [`Change::FlappingStopped`] carries the current state in
//!   [`Event::active`].
//! * **Policy changes**: a `ServiceDown` condition whose port is no longer
//!   monitored, or an `UnauthorizedOpen` condition whose port is now
//!   authorized, is removed from the state ([`TargetState::apply_policy`],
//!   which `evaluate` runs first). If the user had been told about it (it
//!   was raised, or flapping) a [`Change::Dropped`] event with
//!   [`Resolution::PolicyChanged`] is returned so the server can close its
//!   record — and say so: the port may be as open as before, so this is no
//!   "port closed" recovery. Use [`TargetState::retain_ports`] when ports
//!   stop being scanned altogether (e.g. the sweep list shrank); its events
//!   carry [`Resolution::NotScanned`].
//! * [`ConditionKind::AgentNotCommunicating`] belongs to the liveness
//!   sweeper, not to scans: `evaluate` never produces it, and should a
//!   [`TargetState`] track it anyway, `evaluate` drops it like any other
//!   condition the policy does not cover.
//!
//! Events are sorted by condition (then change), so results are deterministic.

use crate::policy::SecurityPolicy;
use crate::resolution::Resolution;
use crate::state::PortState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// An open port that the policy does not authorize.
    UnauthorizedOpen,
    /// A monitored port that is not open.
    ServiceDown,
    /// The target host could not be reached at all.
    TargetUnreachable,
    /// The agent stopped calling in (raised by the liveness sweeper, never by
    /// [`evaluate`]).
    AgentNotCommunicating,
    /// A device joined the location's network (raised by the network
    /// sweep, never by [`evaluate`]); over once a user approves it.
    NewDevice,
    /// An authorized open port of the agent's host is served by another
    /// program than in the previous result (raised by the server when the
    /// policy asks for it, see [`crate::listener::process_changes`]; never
    /// by [`evaluate`]); over at the next result that shows no change.
    ProcessChanged,
}

/// One alertable condition of a target: a kind and, for port conditions, the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Condition {
    pub kind: ConditionKind,
    /// The TCP port; `None` for [`ConditionKind::TargetUnreachable`] and
    /// [`ConditionKind::AgentNotCommunicating`].
    pub port: Option<u16>,
}

impl Condition {
    pub fn unauthorized_open(port: u16) -> Self {
        Condition {
            kind: ConditionKind::UnauthorizedOpen,
            port: Some(port),
        }
    }

    pub fn service_down(port: u16) -> Self {
        Condition {
            kind: ConditionKind::ServiceDown,
            port: Some(port),
        }
    }

    pub fn target_unreachable() -> Self {
        Condition {
            kind: ConditionKind::TargetUnreachable,
            port: None,
        }
    }

    pub fn agent_not_communicating() -> Self {
        Condition {
            kind: ConditionKind::AgentNotCommunicating,
            port: None,
        }
    }

    pub fn new_device() -> Self {
        Condition {
            kind: ConditionKind::NewDevice,
            port: None,
        }
    }

    pub fn process_changed(port: u16) -> Self {
        Condition {
            kind: ConditionKind::ProcessChanged,
            port: Some(port),
        }
    }
}

/// `"unauthorized port 8080/tcp open"`, `"service on port 22/tcp down"`,
/// `"target unreachable"`, `"agent not communicating"`.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.port) {
            (ConditionKind::UnauthorizedOpen, Some(p)) => {
                write!(f, "unauthorized port {p}/tcp open")
            }
            (ConditionKind::UnauthorizedOpen, None) => f.write_str("unauthorized port open"),
            (ConditionKind::ServiceDown, Some(p)) => write!(f, "service on port {p}/tcp down"),
            (ConditionKind::ServiceDown, None) => f.write_str("service down"),
            (ConditionKind::TargetUnreachable, _) => f.write_str("target unreachable"),
            (ConditionKind::AgentNotCommunicating, _) => f.write_str("agent not communicating"),
            (ConditionKind::NewDevice, _) => f.write_str("new device on the network"),
            (ConditionKind::ProcessChanged, Some(p)) => {
                write!(f, "another program on port {p}/tcp")
            }
            (ConditionKind::ProcessChanged, None) => f.write_str("another program on a port"),
        }
    }
}

/// What happened to a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The condition became active: alert.
    Raised,
    /// The condition is over: recovery notice.
    Cleared,
    /// The condition keeps coming and going; Raised/Cleared are suppressed.
    FlappingStarted,
    /// The condition has been stable again; [`Event::active`] tells its state.
    FlappingStopped,
    /// The policy no longer covers the condition: close its record with
    /// the reason, never [`Resolution::Cleared`] (the port may be as it was).
    Dropped(Resolution),
}

/// One thing to notify about a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Event {
    pub condition: Condition,
    pub change: Change,
    /// Whether the condition is active after this event (true for
    /// `Raised`, false for `Cleared` and `Dropped`, the current state for the
    /// flapping events).
    pub active: bool,
}

impl Event {
    /// Why the condition is over, when this event ends it: `Cleared` (also
    /// flapping that settled into "fine") or the reason it was dropped.
    pub fn resolution(&self) -> Option<Resolution> {
        match (self.change, self.active) {
            (Change::Cleared, _) | (Change::FlappingStopped, false) => Some(Resolution::Cleared),
            (Change::Dropped(why), _) => Some(why),
            _ => None,
        }
    }
}

/// Damping thresholds. Counts are in scans (evaluations) of the target.
///
/// A `*_raise_after` or `clear_after` of 0 behaves like 1. A `flap_threshold`
/// of 0 disables flap detection; values above `flap_window` never trigger it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DampingConfig {
    /// Consecutive scans with an unauthorized open port before alerting (default 1: urgent).
    pub unauthorized_open_raise_after: u32,
    /// Consecutive scans with a monitored port not open before alerting (default 2).
    pub service_down_raise_after: u32,
    /// Consecutive scans with the host unreachable before alerting (default 2).
    pub target_unreachable_raise_after: u32,
    /// Consecutive scans without the condition before clearing it (default 2).
    pub clear_after: u32,
    /// State changes within `flap_window` evaluations that mark a condition flapping (default 4).
    pub flap_threshold: u32,
    /// Evaluations looked back for flapping, and the stable run that ends it (default 10).
    pub flap_window: u32,
}

impl Default for DampingConfig {
    fn default() -> Self {
        DampingConfig {
            unauthorized_open_raise_after: 1,
            service_down_raise_after: 2,
            target_unreachable_raise_after: 2,
            clear_after: 2,
            flap_threshold: 4,
            flap_window: 10,
        }
    }
}

impl DampingConfig {
    /// Consecutive observations needed to raise a condition of this kind
    /// (at least 1). [`ConditionKind::AgentNotCommunicating`] is already
    /// debounced by the liveness timeout: 1.
    pub fn raise_after(&self, kind: ConditionKind) -> u32 {
        let n = match kind {
            ConditionKind::UnauthorizedOpen => self.unauthorized_open_raise_after,
            ConditionKind::ServiceDown => self.service_down_raise_after,
            ConditionKind::TargetUnreachable => self.target_unreachable_raise_after,
            ConditionKind::AgentNotCommunicating
            | ConditionKind::NewDevice
            | ConditionKind::ProcessChanged => 1,
        };
        n.max(1)
    }
}

/// The result of one scan of one target.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// Whether the host could be reached at all. When false, `ports` is ignored.
    pub host_reachable: bool,
    /// The ports that were probed and their states. Ports not listed were not
    /// scanned; port 0 is ignored; if a port is listed twice the last entry wins.
    pub ports: Vec<(u16, PortState)>,
}

impl Observation {
    /// An observation from probe results alone: the host counts as unreachable
    /// only when at least one port was probed and every probe reported
    /// [`PortState::Unreachable`]. An all-filtered host counts as reachable
    /// (a firewall dropping everything looks the same as a host that is down,
    /// and is the normal state of a well-closed router), so its monitored ports
    /// show up as *service down* rather than the target as unreachable.
    pub fn from_ports(ports: Vec<(u16, PortState)>) -> Self {
        let host_reachable =
            ports.is_empty() || ports.iter().any(|&(_, s)| s != PortState::Unreachable);
        Observation {
            host_reachable,
            ports,
        }
    }

    /// A host that could not be reached: no port information.
    pub fn unreachable() -> Self {
        Observation {
            host_reachable: false,
            ports: Vec::new(),
        }
    }
}

/// Damping bookkeeping for one condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tracker {
    condition: Condition,
    /// The debounced state: raised (true) or cleared (false).
    active: bool,
    /// Consecutive evaluations whose observation disagreed with `active`.
    streak: u32,
    /// Raised/Cleared are suppressed while true.
    flapping: bool,
    /// One entry per recent evaluation (oldest first, at most `flap_window`):
    /// whether `active` changed in it.
    history: VecDeque<bool>,
}

impl Tracker {
    fn new(condition: Condition) -> Self {
        Tracker {
            condition,
            active: false,
            streak: 0,
            flapping: false,
            history: VecDeque::new(),
        }
    }

    /// Feeds one observation (`present`: the condition holds in this scan).
    fn step(&mut self, present: bool, cfg: &DampingConfig) -> Option<Change> {
        if present == self.active {
            self.streak = 0;
        } else {
            self.streak = self.streak.saturating_add(1);
        }
        let needed = if self.active {
            cfg.clear_after.max(1)
        } else {
            cfg.raise_after(self.condition.kind)
        };
        let changed = self.streak >= needed;
        if changed {
            self.active = !self.active;
            self.streak = 0;
        }

        let window = usize::try_from(cfg.flap_window).unwrap_or(usize::MAX);
        self.history.push_back(changed);
        while self.history.len() > window {
            self.history.pop_front();
        }
        let changes = self.history.iter().filter(|&&c| c).count();

        if self.flapping {
            if self.history.len() >= window && changes == 0 {
                self.flapping = false;
                return Some(Change::FlappingStopped);
            }
            return None;
        }
        if !changed {
            return None;
        }
        let threshold = usize::try_from(cfg.flap_threshold).unwrap_or(usize::MAX);
        if threshold > 0 && changes >= threshold {
            self.flapping = true;
            return Some(Change::FlappingStarted);
        }
        Some(if self.active {
            Change::Raised
        } else {
            Change::Cleared
        })
    }

    /// Whether the user has been told about this condition (so dropping it needs an event).
    fn visible(&self) -> bool {
        self.active || self.flapping
    }

    /// Nothing worth keeping: cleared, no pending streak, no recent changes.
    fn idle(&self) -> bool {
        !self.active && self.streak == 0 && !self.flapping && !self.history.contains(&true)
    }

    fn event(&self, change: Change) -> Event {
        Event {
            condition: self.condition,
            change,
            active: self.active,
        }
    }
}

/// What earlier scans of one (agent, target address) left behind.
///
/// Serializable so the server can store it between scans; start with
/// [`TargetState::default`]. Only conditions that are raised, pending,
/// flapping or recently changed are kept, so it stays small.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetState {
    /// Sorted by condition, at most one tracker per condition.
    #[serde(default)]
    conditions: Vec<Tracker>,
}

impl TargetState {
    pub fn new() -> Self {
        TargetState::default()
    }

    /// The conditions currently raised, sorted (including flapping ones that are raised right now).
    pub fn active_conditions(&self) -> Vec<Condition> {
        self.conditions
            .iter()
            .filter(|t| t.active)
            .map(|t| t.condition)
            .collect()
    }

    /// The ports of every condition kept (raised, pending, flapping or
    /// recently changed): the ports whose next scans decide something.
    pub fn tracked_ports(&self) -> crate::ports::PortList {
        crate::ports::PortList::from_ports(self.conditions.iter().filter_map(|t| t.condition.port))
    }

    /// Whether `condition` is currently raised.
    pub fn is_active(&self, condition: &Condition) -> bool {
        self.find(condition).is_some_and(|t| t.active)
    }

    /// Whether `condition` is currently marked flapping.
    pub fn is_flapping(&self, condition: &Condition) -> bool {
        self.find(condition).is_some_and(|t| t.flapping)
    }

    /// Forgets port conditions for ports outside `scanned` (call it when the
    /// set of scanned ports shrinks, with `policy.ports_to_scan(&sweep)`).
    /// Returns a [`Change::Dropped`] event ([`Resolution::NotScanned`]) for
    /// each forgotten condition the user had been told about.
    pub fn retain_ports(&mut self, scanned: &crate::ports::PortList) -> Vec<Event> {
        self.drop_where(Resolution::NotScanned, |c| {
            c.port.is_some_and(|p| !scanned.contains(p))
        })
    }

    /// Forgets the conditions `policy` no longer makes a problem: an open
    /// port it now authorizes, a port it no longer monitors (and conditions
    /// scans never produce). Returns a [`Change::Dropped`] event
    /// ([`Resolution::PolicyChanged`]) for each one the user had been told
    /// about, sorted. [`evaluate`] does this first; call it alone when a
    /// policy is saved, so its alerts end at once, with who saved it.
    pub fn apply_policy(&mut self, policy: &SecurityPolicy) -> Vec<Event> {
        let mut events = self.drop_where(Resolution::PolicyChanged, |c| match (c.kind, c.port) {
            (ConditionKind::ServiceDown, Some(p)) => !policy.is_monitored(p),
            (ConditionKind::UnauthorizedOpen, Some(p)) => policy.is_authorized(p),
            (ConditionKind::TargetUnreachable, _) => false,
            // Not scan conditions: `evaluate` could never update or clear them.
            (
                ConditionKind::AgentNotCommunicating
                | ConditionKind::NewDevice
                | ConditionKind::ProcessChanged,
                _,
            ) => true,
            // Port conditions without a port cannot come from `evaluate`.
            (_, None) => true,
        });
        events.sort();
        events
    }

    fn find(&self, condition: &Condition) -> Option<&Tracker> {
        self.conditions
            .binary_search_by(|t| t.condition.cmp(condition))
            .ok()
            .and_then(|i| self.conditions.get(i))
    }

    fn drop_where(
        &mut self,
        why: Resolution,
        mut drop: impl FnMut(&Condition) -> bool,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        self.conditions.retain(|t| {
            if !drop(&t.condition) {
                return true;
            }
            if t.visible() {
                events.push(Event {
                    condition: t.condition,
                    change: Change::Dropped(why),
                    active: false,
                });
            }
            false
        });
        events
    }

    /// Feeds one observation of `condition`. A condition without a tracker
    /// that is not present needs none.
    fn observe(
        &mut self,
        condition: Condition,
        present: bool,
        cfg: &DampingConfig,
    ) -> Option<Event> {
        let i = match self
            .conditions
            .binary_search_by(|t| t.condition.cmp(&condition))
        {
            Ok(i) => i,
            Err(_) if !present => return None,
            Err(i) => {
                self.conditions.insert(i, Tracker::new(condition));
                i
            }
        };
        let tracker = self.conditions.get_mut(i)?;
        tracker.step(present, cfg).map(|c| tracker.event(c))
    }
}

/// Applies one scan of a target to its state and returns the events to notify,
/// sorted by condition. See the [module documentation](self) for the rules.
pub fn evaluate(
    state: &mut TargetState,
    policy: &SecurityPolicy,
    obs: &Observation,
    cfg: &DampingConfig,
) -> Vec<Event> {
    let mut events = state.apply_policy(policy);

    events.extend(state.observe(Condition::target_unreachable(), !obs.host_reachable, cfg));

    if obs.host_reachable {
        let scanned: BTreeMap<u16, PortState> =
            obs.ports.iter().copied().filter(|&(p, _)| p != 0).collect();
        for (port, port_state) in scanned {
            let open = port_state == PortState::Open;
            let unauthorized = open && !policy.is_authorized(port);
            events.extend(state.observe(Condition::unauthorized_open(port), unauthorized, cfg));
            if policy.is_monitored(port) {
                events.extend(state.observe(Condition::service_down(port), !open, cfg));
            }
        }
    }

    state.conditions.retain(|t| !t.idle());
    events.sort();
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ScanInterval;
    use crate::policy::PolicyTarget;
    use crate::ports::PortList;
    use PortState::*;

    const MONITORED: u16 = 22;
    const AUTHORIZED: u16 = 443;
    const ROGUE: u16 = 8080;

    /// Authorizes 443, monitors 22.
    fn policy() -> SecurityPolicy {
        SecurityPolicy {
            enabled: true,
            authorized: PortList::from_ports([AUTHORIZED]),
            monitored: PortList::from_ports([MONITORED]),
            targets: vec![PolicyTarget::AgentHost],
            interval: ScanInterval::default(),
            include_interfaces: Vec::new(),
            unreviewed_devices: Default::default(),
            device_kinds: Vec::new(),
            process_change_alerts: false,
        }
    }

    /// One scan of a single port: `O` open, `C` closed, `F` filtered,
    /// `u` port unreachable (host reachable), `U` host unreachable, `-` port not scanned.
    fn scan(port: u16, c: char) -> Observation {
        let state = match c {
            'O' => Open,
            'C' => Closed,
            'F' => Filtered,
            'u' => Unreachable,
            'U' => return Observation::unreachable(),
            '-' => {
                return Observation {
                    host_reachable: true,
                    ports: vec![],
                }
            }
            other => panic!("bad scan code {other:?}"),
        };
        Observation {
            host_reachable: true,
            ports: vec![(port, state)],
        }
    }

    fn short(e: &Event) -> String {
        let kind = match e.condition.kind {
            ConditionKind::UnauthorizedOpen => "unauth",
            ConditionKind::ServiceDown => "down",
            ConditionKind::TargetUnreachable => "unreach",
            ConditionKind::AgentNotCommunicating => "silent",
            ConditionKind::NewDevice => "new",
            ConditionKind::ProcessChanged => "process",
        };
        let change = match e.change {
            Change::Raised => "raised",
            Change::Cleared => "cleared",
            Change::FlappingStarted => "flap_start",
            Change::FlappingStopped => "flap_stop",
            Change::Dropped(Resolution::PolicyChanged) => "dropped",
            Change::Dropped(Resolution::NotScanned) => "unscanned",
            Change::Dropped(Resolution::Cleared) => "dropped(cleared)",
        };
        let port = e
            .condition
            .port
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!("{kind}{port} {change} active={}", e.active)
    }

    /// Runs a scan pattern on one port; returns "step: event" lines.
    fn run(port: u16, pattern: &str, cfg: &DampingConfig) -> Vec<String> {
        let mut state = TargetState::new();
        let policy = policy();
        let mut out = Vec::new();
        for (i, c) in pattern.chars().filter(|c| !c.is_whitespace()).enumerate() {
            for e in evaluate(&mut state, &policy, &scan(port, c), cfg) {
                out.push(format!("{i}: {}", short(&e)));
            }
        }
        out
    }

    #[test]
    fn single_port_sequences_with_default_damping() {
        // (port, scans, expected "step: event" lines)
        let cases: &[(u16, &str, &[&str])] = &[
            // Unauthorized open port: urgent, raised on the first scan, cleared after 2.
            (ROGUE, "O", &["0: unauth:8080 raised active=true"]),
            (ROGUE, "OOOOO", &["0: unauth:8080 raised active=true"]),
            (
                ROGUE,
                "OCC",
                &[
                    "0: unauth:8080 raised active=true",
                    "2: unauth:8080 cleared active=false",
                ],
            ),
            // A single closed scan is not enough to clear.
            (ROGUE, "OCOCO", &["0: unauth:8080 raised active=true"]),
            // Closed, filtered and unreachable ports are never alerts.
            (ROGUE, "CCFFuuCF", &[]),
            // Authorized and monitored ports may be open.
            (AUTHORIZED, "OOOO", &[]),
            (MONITORED, "OOOO", &[]),
            // Service down needs 2 scans, for every not-open state.
            (MONITORED, "C", &[]),
            (MONITORED, "OCO", &[]),
            (MONITORED, "CC", &["1: down:22 raised active=true"]),
            (MONITORED, "FF", &["1: down:22 raised active=true"]),
            (MONITORED, "uu", &["1: down:22 raised active=true"]),
            (MONITORED, "CFu", &["1: down:22 raised active=true"]),
            (
                MONITORED,
                "CCCOO",
                &[
                    "1: down:22 raised active=true",
                    "4: down:22 cleared active=false",
                ],
            ),
            (MONITORED, "CCCOCOC", &["1: down:22 raised active=true"]),
            // Authorized but not monitored: closed is fine.
            (AUTHORIZED, "CCCC", &[]),
            // Alternating every scan is fully damped for service down.
            (MONITORED, "OCOCOCOCOCOCOCOCOCOC", &[]),
            // Host unreachable: only the target condition, raised after 2, cleared after 2.
            (ROGUE, "U", &[]),
            (ROGUE, "UU", &["1: unreach raised active=true"]),
            (
                MONITORED,
                "UUUCC",
                &[
                    "1: unreach raised active=true",
                    "4: down:22 raised active=true",
                    "4: unreach cleared active=false",
                ],
            ),
            (MONITORED, "UUUUUUUUUU", &["1: unreach raised active=true"]),
            // Port not scanned: nothing changes, in either direction.
            (MONITORED, "C-C", &["2: down:22 raised active=true"]),
            (
                MONITORED,
                "CC----O--O",
                &[
                    "1: down:22 raised active=true",
                    "9: down:22 cleared active=false",
                ],
            ),
            (ROGUE, "O------", &["0: unauth:8080 raised active=true"]),
        ];
        let cfg = DampingConfig::default();
        for (port, pattern, want) in cases {
            assert_eq!(
                run(*port, pattern, &cfg),
                *want,
                "port {port}, scans {pattern}"
            );
        }
    }

    #[test]
    fn tracked_ports_are_those_a_next_scan_decides() {
        let cfg = DampingConfig::default();
        let policy = policy();
        let mut state = TargetState::new();
        assert!(state.tracked_ports().is_empty());
        // Raised, then closed once: the alert is still open, waiting for
        // a second scan to clear it, so its port is still tracked.
        for c in ['O', 'C'] {
            evaluate(&mut state, &policy, &scan(ROGUE, c), &cfg);
            assert_eq!(state.tracked_ports().as_slice(), [ROGUE], "after {c}");
        }
        // A monitored port closed once: pending, tracked.
        evaluate(&mut state, &policy, &scan(MONITORED, 'C'), &cfg);
        assert!(state.tracked_ports().contains(MONITORED));
    }

    #[test]
    fn one_alert_per_condition_over_twenty_identical_scans() {
        let cfg = DampingConfig::default();
        let cases: &[(u16, char, &str)] = &[
            (ROGUE, 'O', "unauth:8080 raised active=true"),
            (MONITORED, 'C', "down:22 raised active=true"),
            (MONITORED, 'F', "down:22 raised active=true"),
            (ROGUE, 'U', "unreach raised active=true"),
        ];
        for (port, code, want) in cases {
            let pattern: String = std::iter::repeat_n(*code, 20).collect();
            let got = run(*port, &pattern, &cfg);
            assert_eq!(got.len(), 1, "{code} x20 on {port}: {got:?}");
            assert!(got[0].ends_with(want), "{got:?}");
        }
        // Many conditions at once: each alerts exactly once.
        let mut state = TargetState::new();
        let obs = Observation {
            host_reachable: true,
            ports: vec![
                (MONITORED, Closed),
                (ROGUE, Open),
                (9000, Open),
                (AUTHORIZED, Open),
            ],
        };
        let mut all = Vec::new();
        for _ in 0..20 {
            all.extend(evaluate(&mut state, &policy(), &obs, &cfg));
        }
        // Unauthorized ports alert in the first scan, service down in the second.
        assert_eq!(
            all.iter().map(short).collect::<Vec<_>>(),
            [
                "unauth:8080 raised active=true",
                "unauth:9000 raised active=true",
                "down:22 raised active=true",
            ]
        );
    }

    #[test]
    fn flapping_is_detected_and_suppressed() {
        let cfg = DampingConfig::default();
        // (port, scans, expected)
        let cases: &[(u16, &str, &[&str])] = &[
            // Service down: down 2, up 2, ... changes at 1, 3, 5, 7: the 4th starts flapping.
            // Then stable (open) for 10 evaluations (8..=17): stops at 17, cleared.
            (
                MONITORED,
                "CC OO CC OO OOOOO OOOOO O",
                &[
                    "1: down:22 raised active=true",
                    "3: down:22 cleared active=false",
                    "5: down:22 raised active=true",
                    "7: down:22 flap_start active=false",
                    "17: down:22 flap_stop active=false",
                ],
            ),
            // Stops flapping in the raised state.
            (
                MONITORED,
                "CC OO CC OO CC CCCCC CCCC C",
                &[
                    "1: down:22 raised active=true",
                    "3: down:22 cleared active=false",
                    "5: down:22 raised active=true",
                    "7: down:22 flap_start active=false",
                    "19: down:22 flap_stop active=true",
                ],
            ),
            // Keeps flapping: no Raised/Cleared storm however long it goes on.
            (
                MONITORED,
                "CCOO CCOO CCOO CCOO CCOO CCOO CCOO CCOO CCOO CCOO",
                &[
                    "1: down:22 raised active=true",
                    "3: down:22 cleared active=false",
                    "5: down:22 raised active=true",
                    "7: down:22 flap_start active=false",
                ],
            ),
            // Unauthorized port: raise after 1, clear after 2; changes at 0, 2, 3, 5.
            (
                ROGUE,
                "OCC OCC OCC OCC OCC",
                &[
                    "0: unauth:8080 raised active=true",
                    "2: unauth:8080 cleared active=false",
                    "3: unauth:8080 raised active=true",
                    "5: unauth:8080 flap_start active=false",
                ],
            ),
            // Changes spread wider than the window never count as flapping.
            (
                MONITORED,
                "CC OOOOOOOOOO CCCCCCCCCC OOOOOOOOOO CC",
                &[
                    "1: down:22 raised active=true",
                    "3: down:22 cleared active=false",
                    "13: down:22 raised active=true",
                    "23: down:22 cleared active=false",
                    "33: down:22 raised active=true",
                ],
            ),
            // Host reachability flaps too.
            (
                MONITORED,
                "UUOOUUOOOOOOOOOOOOO",
                &[
                    "1: unreach raised active=true",
                    "3: unreach cleared active=false",
                    "5: unreach raised active=true",
                    "7: unreach flap_start active=false",
                    "17: unreach flap_stop active=false",
                ],
            ),
        ];
        for (port, pattern, want) in cases {
            assert_eq!(
                run(*port, pattern, &cfg),
                *want,
                "port {port}, scans {pattern}"
            );
        }
    }

    #[test]
    fn flapping_restarts_after_it_stopped() {
        let cfg = DampingConfig::default();
        let got = run(MONITORED, "CCOOCCOO OOOOOOOOOO CCOOCCOO", &cfg);
        assert_eq!(
            got,
            [
                "1: down:22 raised active=true",
                "3: down:22 cleared active=false",
                "5: down:22 raised active=true",
                "7: down:22 flap_start active=false",
                "17: down:22 flap_stop active=false",
                "19: down:22 raised active=true",
                "21: down:22 cleared active=false",
                "23: down:22 raised active=true",
                "25: down:22 flap_start active=false",
            ]
        );
    }

    #[test]
    fn damping_is_configurable() {
        let no_damping = DampingConfig {
            unauthorized_open_raise_after: 1,
            service_down_raise_after: 1,
            target_unreachable_raise_after: 1,
            clear_after: 1,
            flap_threshold: 0,
            flap_window: 10,
        };
        let zeros = DampingConfig {
            unauthorized_open_raise_after: 0,
            service_down_raise_after: 0,
            target_unreachable_raise_after: 0,
            clear_after: 0,
            ..no_damping
        };
        let slow = DampingConfig {
            unauthorized_open_raise_after: 3,
            clear_after: 3,
            ..DampingConfig::default()
        };
        let cases: &[(&str, DampingConfig, u16, &str, &[&str])] = &[
            (
                "no damping",
                no_damping,
                MONITORED,
                "COCO",
                &[
                    "0: down:22 raised active=true",
                    "1: down:22 cleared active=false",
                    "2: down:22 raised active=true",
                    "3: down:22 cleared active=false",
                ],
            ),
            (
                "zero counts behave like 1",
                zeros,
                ROGUE,
                "OC",
                &[
                    "0: unauth:8080 raised active=true",
                    "1: unauth:8080 cleared active=false",
                ],
            ),
            (
                "slow",
                slow,
                ROGUE,
                "OOCOOOCCOCCC",
                &[
                    "5: unauth:8080 raised active=true",
                    "11: unauth:8080 cleared active=false",
                ],
            ),
        ];
        for (name, cfg, port, pattern, want) in cases {
            assert_eq!(run(*port, pattern, cfg), *want, "{name}");
        }
        assert_eq!(
            DampingConfig::default().raise_after(ConditionKind::UnauthorizedOpen),
            1
        );
        assert_eq!(
            DampingConfig::default().raise_after(ConditionKind::ServiceDown),
            2
        );
        assert_eq!(
            DampingConfig::default().raise_after(ConditionKind::TargetUnreachable),
            2
        );
        assert_eq!(
            DampingConfig::default().raise_after(ConditionKind::AgentNotCommunicating),
            1
        );
        assert_eq!(slow.raise_after(ConditionKind::AgentNotCommunicating), 1);
    }

    #[test]
    fn evaluate_never_tracks_agent_not_communicating() {
        let cfg = DampingConfig::default();
        let silent = Condition::agent_not_communicating();
        let observations = [
            scan(ROGUE, 'O'),
            scan(MONITORED, 'C'),
            Observation::unreachable(),
            scan(MONITORED, '-'),
        ];
        let mut state = TargetState::new();
        for _ in 0..3 {
            for obs in &observations {
                for e in evaluate(&mut state, &policy(), obs, &cfg) {
                    assert_ne!(e.condition, silent, "{e:?}");
                }
                assert!(state.find(&silent).is_none());
            }
        }

        // A state that tracks it anyway loses it on the next scan, whatever
        // the scan says: reported as dropped if it was raised, silently if it
        // was already cleared. (presence fed to the tracker, scan, events)
        let dropped = Event {
            condition: silent,
            change: Change::Dropped(Resolution::PolicyChanged),
            active: false,
        };
        let cases: &[(&[bool], Observation, &[Event])] = &[
            (&[true], scan(MONITORED, 'O'), &[dropped]),
            (&[true], Observation::unreachable(), &[dropped]),
            (&[true, true, true], scan(ROGUE, '-'), &[dropped]),
            (&[true, false, false], scan(MONITORED, 'O'), &[]),
        ];
        for (presence, obs, want) in cases {
            let mut state = TargetState::new();
            for &present in *presence {
                state.observe(silent, present, &cfg);
            }
            assert!(state.find(&silent).is_some(), "{presence:?}");
            let got: Vec<Event> = evaluate(&mut state, &policy(), obs, &cfg)
                .into_iter()
                .filter(|e| e.condition == silent)
                .collect();
            assert_eq!(got, *want, "{presence:?}, {obs:?}");
            assert!(state.find(&silent).is_none(), "{presence:?}");
        }
    }

    #[test]
    fn unreachable_host_freezes_port_conditions() {
        let cfg = DampingConfig::default();
        let p = policy();
        let mut state = TargetState::new();
        let both = |rogue, monitored| Observation {
            host_reachable: true,
            ports: vec![(ROGUE, rogue), (MONITORED, monitored)],
        };
        let steps: &[(Observation, &[&str])] = &[
            (both(Open, Closed), &["unauth:8080 raised active=true"]),
            (both(Open, Closed), &["down:22 raised active=true"]),
            // Port states reported alongside an unreachable host are ignored.
            (
                Observation {
                    host_reachable: false,
                    ports: vec![(ROGUE, Filtered), (MONITORED, Open)],
                },
                &[],
            ),
            (Observation::unreachable(), &["unreach raised active=true"]),
            (Observation::unreachable(), &[]),
            // Back: the port conditions resume from where they were.
            (both(Closed, Open), &[]),
            (
                both(Closed, Open),
                &[
                    "unauth:8080 cleared active=false",
                    "down:22 cleared active=false",
                    "unreach cleared active=false",
                ],
            ),
        ];
        for (i, (obs, want)) in steps.iter().enumerate() {
            let got: Vec<String> = evaluate(&mut state, &p, obs, &cfg)
                .iter()
                .map(short)
                .collect();
            assert_eq!(got, *want, "step {i}");
        }
        assert!(state.active_conditions().is_empty());
        // Cleared conditions are kept while their recent changes matter for
        // flap detection, then forgotten.
        assert_ne!(state, TargetState::new());
        for _ in 0..cfg.flap_window {
            assert!(evaluate(&mut state, &p, &both(Closed, Open), &cfg).is_empty());
        }
        assert_eq!(state, TargetState::new(), "idle conditions are forgotten");
    }

    #[test]
    fn host_unreachable_from_the_start_gives_no_port_alerts() {
        let cfg = DampingConfig::default();
        let mut state = TargetState::new();
        let obs = Observation::from_ports(vec![(ROGUE, Unreachable), (MONITORED, Unreachable)]);
        assert!(!obs.host_reachable);
        let mut all = Vec::new();
        for _ in 0..5 {
            all.extend(evaluate(&mut state, &policy(), &obs, &cfg));
        }
        assert_eq!(
            all.iter().map(short).collect::<Vec<_>>(),
            ["unreach raised active=true"]
        );
    }

    #[test]
    fn observation_reachability_heuristic() {
        let cases: &[(&[(u16, PortState)], bool)] = &[
            (&[], true),
            (&[(22, Unreachable)], false),
            (&[(22, Unreachable), (80, Unreachable)], false),
            (&[(22, Unreachable), (80, Filtered)], true),
            (&[(22, Filtered), (80, Filtered)], true),
            (&[(22, Closed)], true),
            (&[(22, Open)], true),
        ];
        for (ports, reachable) in cases {
            assert_eq!(
                Observation::from_ports(ports.to_vec()).host_reachable,
                *reachable,
                "{ports:?}"
            );
        }
    }

    #[test]
    fn policy_changes_drop_conditions() {
        let cfg = DampingConfig::default();
        let mut state = TargetState::new();
        let mut p = policy();
        p.monitored = PortList::from_ports([22, 25]);
        let obs = Observation {
            host_reachable: true,
            ports: vec![(22, Closed), (25, Closed), (ROGUE, Open), (9000, Open)],
        };
        evaluate(&mut state, &p, &obs, &cfg);
        let second = Observation {
            host_reachable: true,
            ports: vec![(22, Closed), (ROGUE, Open), (9000, Open)],
        };
        evaluate(&mut state, &p, &second, &cfg);
        // Raised: unauth 8080, unauth 9000, down 22. Pending (1 scan): down 25.
        assert_eq!(
            state.active_conditions(),
            [
                Condition::unauthorized_open(ROGUE),
                Condition::unauthorized_open(9000),
                Condition::service_down(22),
            ]
        );

        // The user authorizes 8080 and stops monitoring 22 and 25.
        p.authorized = PortList::from_ports([AUTHORIZED, ROGUE]);
        p.monitored = PortList::default();
        let got: Vec<String> = evaluate(&mut state, &p, &obs, &cfg)
            .iter()
            .map(short)
            .collect();
        assert_eq!(
            got,
            [
                "unauth:8080 dropped active=false",
                "down:22 dropped active=false"
            ]
        );
        assert_eq!(
            state.active_conditions(),
            [Condition::unauthorized_open(9000)]
        );

        // Port 9000 leaves the scan entirely.
        let got: Vec<String> = state
            .retain_ports(&PortList::from_ports([22, 443]))
            .iter()
            .map(short)
            .collect();
        assert_eq!(got, ["unauth:9000 unscanned active=false"]);
        assert_eq!(state, TargetState::new());

        // A scan without the monitored port afterwards changes nothing.
        assert!(evaluate(&mut state, &p, &scan(22, '-'), &cfg).is_empty());
    }

    #[test]
    fn closing_and_authorizing_are_told_apart() {
        // (what happens to the open, unauthorized 8080 after its alert, the
        // events of the scan after that, the resolution they carry)
        let cfg = DampingConfig {
            clear_after: 1,
            ..DampingConfig::default()
        };
        let authorized = {
            let mut p = policy();
            p.authorized = PortList::from_ports([AUTHORIZED, ROGUE]);
            p
        };
        type Case<'a> = (
            &'a str,
            SecurityPolicy,
            char,
            &'a [&'a str],
            Option<Resolution>,
        );
        let cases: &[Case<'_>] = &[
            (
                "the port closes",
                policy(),
                'C',
                &["unauth:8080 cleared active=false"],
                Some(Resolution::Cleared),
            ),
            (
                "the port is authorized while still open",
                authorized.clone(),
                'O',
                &["unauth:8080 dropped active=false"],
                Some(Resolution::PolicyChanged),
            ),
            (
                "authorized, and not even scanned this time",
                authorized,
                '-',
                &["unauth:8080 dropped active=false"],
                Some(Resolution::PolicyChanged),
            ),
            ("still open, still unauthorized", policy(), 'O', &[], None),
        ];
        for (name, p, next, want, resolution) in cases {
            let mut state = TargetState::new();
            evaluate(&mut state, &policy(), &scan(ROGUE, 'O'), &cfg);
            assert!(state.is_active(&Condition::unauthorized_open(ROGUE)));
            let events = evaluate(&mut state, p, &scan(ROGUE, *next), &cfg);
            let got: Vec<String> = events.iter().map(short).collect();
            assert_eq!(got, *want, "{name}");
            assert_eq!(
                events.first().and_then(Event::resolution),
                *resolution,
                "{name}"
            );
        }
    }

    #[test]
    fn applying_a_policy_alone_drops_what_it_no_longer_covers() {
        let cfg = DampingConfig::default();
        let mut p = policy();
        p.monitored = PortList::from_ports([22, 25]);
        let mut state = TargetState::new();
        // Raised: unauth 8080 and 9000, down 22 (two scans). Pending: down
        // 25 (one scan of the two it takes).
        let obs = Observation {
            host_reachable: true,
            ports: vec![(22, Closed), (ROGUE, Open), (9000, Open)],
        };
        evaluate(&mut state, &p, &obs, &cfg);
        evaluate(&mut state, &p, &obs, &cfg);
        let pending = Observation {
            host_reachable: true,
            ports: vec![(25, Closed)],
        };
        evaluate(&mut state, &p, &pending, &cfg);
        assert!(state.find(&Condition::service_down(25)).is_some());
        let before = state.clone();

        // The same policy again changes nothing.
        assert!(state.apply_policy(&p).is_empty());
        assert_eq!(state, before);

        // 8080 and 9000 authorized, 22 and 25 no longer monitored: the
        // raised ones are dropped (sorted), the pending one silently.
        p.authorized = PortList::from_ports([AUTHORIZED, ROGUE, 9000]);
        p.monitored = PortList::default();
        let events = state.apply_policy(&p);
        let got: Vec<String> = events.iter().map(short).collect();
        assert_eq!(
            got,
            [
                "unauth:8080 dropped active=false",
                "unauth:9000 dropped active=false",
                "down:22 dropped active=false",
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.resolution() == Some(Resolution::PolicyChanged)));
        assert!(state.active_conditions().is_empty());
        assert!(state.find(&Condition::service_down(25)).is_none());
        // The next scan with the ports still open raises nothing again.
        assert!(evaluate(&mut state, &p, &obs, &cfg).is_empty());
    }

    #[test]
    fn which_events_end_a_condition() {
        let c = Condition::unauthorized_open(ROGUE);
        let event = |change, active| Event {
            condition: c,
            change,
            active,
        };
        let cases = [
            (event(Change::Raised, true), None),
            (event(Change::FlappingStarted, true), None),
            (event(Change::FlappingStarted, false), None),
            (event(Change::FlappingStopped, true), None),
            (
                event(Change::FlappingStopped, false),
                Some(Resolution::Cleared),
            ),
            (event(Change::Cleared, false), Some(Resolution::Cleared)),
            (
                event(Change::Dropped(Resolution::PolicyChanged), false),
                Some(Resolution::PolicyChanged),
            ),
            (
                event(Change::Dropped(Resolution::NotScanned), false),
                Some(Resolution::NotScanned),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.resolution(), want, "{e:?}");
        }
        assert_eq!(
            serde_json::to_value(event(Change::Dropped(Resolution::NotScanned), false)).unwrap()
                ["change"],
            serde_json::json!({"dropped": "not_scanned"})
        );
    }

    #[test]
    fn events_are_sorted_by_condition() {
        let cfg = DampingConfig {
            service_down_raise_after: 1,
            ..DampingConfig::default()
        };
        let mut p = policy();
        p.monitored = PortList::from_ports([22, 25, 80]);
        let obs = Observation {
            host_reachable: true,
            ports: vec![
                (9000, Open),
                (80, Filtered),
                (8080, Open),
                (22, Closed),
                (25, Closed),
                (0, Open),
                (9000, Open),
            ],
        };
        let got: Vec<String> = evaluate(&mut TargetState::new(), &p, &obs, &cfg)
            .iter()
            .map(short)
            .collect();
        assert_eq!(
            got,
            [
                "unauth:8080 raised active=true",
                "unauth:9000 raised active=true",
                "down:22 raised active=true",
                "down:25 raised active=true",
                "down:80 raised active=true",
            ]
        );
    }

    #[test]
    fn duplicate_port_entries_last_wins() {
        let cfg = DampingConfig::default();
        let obs = Observation {
            host_reachable: true,
            ports: vec![(ROGUE, Open), (ROGUE, Closed)],
        };
        assert!(evaluate(&mut TargetState::new(), &policy(), &obs, &cfg).is_empty());
    }

    #[test]
    fn state_survives_a_serde_round_trip() {
        let cfg = DampingConfig::default();
        let p = policy();
        let pattern = "CCOOCCOOOOOOOOOOOOOOCC";
        let expected = run(MONITORED, pattern, &cfg);

        let mut state = TargetState::new();
        let mut got = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            // Store and reload between every scan, as the server would.
            let json = serde_json::to_string(&state).unwrap();
            state = serde_json::from_str(&json).unwrap();
            for e in evaluate(&mut state, &p, &scan(MONITORED, c), &cfg) {
                got.push(format!("{i}: {}", short(&e)));
            }
        }
        assert_eq!(got, expected);
        assert!(state.is_active(&Condition::service_down(MONITORED)));
        assert!(!state.is_flapping(&Condition::service_down(MONITORED)));
    }

    #[test]
    fn serde_shapes() {
        let e = Event {
            condition: Condition::unauthorized_open(8080),
            change: Change::FlappingStarted,
            active: true,
        };
        assert_eq!(
            serde_json::to_value(e).unwrap(),
            serde_json::json!({
                "condition": {"kind": "unauthorized_open", "port": 8080},
                "change": "flapping_started",
                "active": true,
            })
        );
        assert_eq!(
            serde_json::to_value(Condition::agent_not_communicating()).unwrap(),
            serde_json::json!({"kind": "agent_not_communicating", "port": null})
        );
        assert_eq!(
            serde_json::from_str::<ConditionKind>("\"agent_not_communicating\"").unwrap(),
            ConditionKind::AgentNotCommunicating
        );
        let cfg: DampingConfig = serde_json::from_str(r#"{"clear_after": 3}"#).unwrap();
        assert_eq!(
            cfg,
            DampingConfig {
                clear_after: 3,
                ..DampingConfig::default()
            }
        );
        let obs: Observation =
            serde_json::from_str(r#"{"host_reachable": true, "ports": [[22, "open"]]}"#).unwrap();
        assert_eq!(obs.ports, [(22, Open)]);
        assert_eq!(
            serde_json::from_str::<TargetState>("{}").unwrap(),
            TargetState::new()
        );
    }

    #[test]
    fn conditions_display() {
        let cases = [
            (
                Condition::unauthorized_open(8080),
                "unauthorized port 8080/tcp open",
            ),
            (Condition::service_down(22), "service on port 22/tcp down"),
            (Condition::target_unreachable(), "target unreachable"),
            (
                Condition::agent_not_communicating(),
                "agent not communicating",
            ),
        ];
        for (c, want) in cases {
            assert_eq!(c.to_string(), want);
        }
    }
}
