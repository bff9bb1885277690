//! Agent liveness and whether an agent's security scan runs.
//!
//! Times are unix seconds passed in by the caller; nothing here reads a clock.

use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How long an agent may stay silent. Serialized as whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LivenessConfig {
    /// Silent for more than this: not communicating (default 10 minutes).
    #[serde(with = "secs")]
    pub silent_after: Duration,
    /// Silent for more than this: abandoned (default 30 days).
    #[serde(with = "secs")]
    pub abandoned_after: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            silent_after: Duration::from_secs(10 * 60),
            abandoned_after: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

/// Whether an agent is talking to the server. Ordered by silence: the
/// lesser of two healths is the less silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentHealth {
    Communicating,
    NotCommunicating,
    Abandoned,
}

impl AgentHealth {
    /// Every health, in the order lists and filters show them.
    pub const ALL: [AgentHealth; 3] = [
        AgentHealth::Communicating,
        AgentHealth::NotCommunicating,
        AgentHealth::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentHealth::Communicating => "communicating",
            AgentHealth::NotCommunicating => "not communicating",
            AgentHealth::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for AgentHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The health of an agent last heard from at `last_seen_unix`, or, if it
/// never talked to the server, enrolled at `enrolled_unix`.
///
/// Silent for more than `abandoned_after`: [`AgentHealth::Abandoned`]; for
/// more than `silent_after`: [`AgentHealth::NotCommunicating`]. A contact
/// time in the future (clock skew) counts as just now.
pub fn health(
    last_seen_unix: Option<u64>,
    enrolled_unix: u64,
    now_unix: u64,
    cfg: &LivenessConfig,
) -> AgentHealth {
    let last_contact = last_seen_unix.unwrap_or(enrolled_unix);
    let silent_for = now_unix.saturating_sub(last_contact);
    if silent_for > cfg.abandoned_after.as_secs() {
        AgentHealth::Abandoned
    } else if silent_for > cfg.silent_after.as_secs() {
        AgentHealth::NotCommunicating
    } else {
        AgentHealth::Communicating
    }
}

/// The last-contact times (unix seconds, inclusive) at which an agent has
/// `health` at `now`: what [`health`] decides, as a range a database can
/// filter on. `None`: no time qualifies (e.g. "abandoned" just after the
/// epoch). Agents that never talked to the server count from enrollment,
/// as in [`health`].
pub fn contact_range(
    health: AgentHealth,
    now_unix: u64,
    cfg: &LivenessConfig,
) -> Option<(Option<u64>, Option<u64>)> {
    let silent = cfg.silent_after.as_secs();
    let abandoned = cfg.abandoned_after.as_secs();
    // Silent for more than `limit` ⇔ last contact before `now - limit`.
    let before = |limit: u64| now_unix.checked_sub(limit)?.checked_sub(1);
    match health {
        AgentHealth::Communicating => Some((Some(now_unix.saturating_sub(silent)), None)),
        AgentHealth::NotCommunicating => {
            let to = before(silent)?;
            let from = now_unix.saturating_sub(abandoned);
            (from <= to).then_some((Some(from), Some(to)))
        }
        AgentHealth::Abandoned => Some((None, Some(before(abandoned)?))),
    }
}

/// Why a security scan is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusReason {
    AgentNotCommunicating,
    AgentAbandoned,
    AgentRemoved,
    CommunityPlan,
    DisabledByUser,
}

impl StatusReason {
    /// A sentence for users.
    pub fn text(self) -> &'static str {
        match self {
            StatusReason::AgentNotCommunicating => {
                "the agent is not communicating; scans resume when it is back"
            }
            StatusReason::AgentAbandoned => {
                "the agent has not communicated for a long time and is considered abandoned"
            }
            StatusReason::AgentRemoved => "the agent was removed",
            StatusReason::CommunityPlan => "security scans need the Extended plan",
            StatusReason::DisabledByUser => "the security scan was disabled by a user",
        }
    }
}

impl fmt::Display for StatusReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Whether an agent's security scan runs.
///
/// Serialized as `{"status": "active"}` or
/// `{"status": "suspended", "reason": "agent_not_communicating"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ScanStatus {
    /// Scans run at the policy's interval.
    Active,
    /// Temporarily not running; resumes by itself when the reason goes away.
    Suspended { reason: StatusReason },
    /// Not running until something is changed (plan, policy, agent).
    Disabled { reason: StatusReason },
}

impl ScanStatus {
    pub fn is_active(self) -> bool {
        matches!(self, ScanStatus::Active)
    }

    pub fn reason(self) -> Option<StatusReason> {
        match self {
            ScanStatus::Active => None,
            ScanStatus::Suspended { reason } | ScanStatus::Disabled { reason } => Some(reason),
        }
    }
}

/// `"active"`, `"suspended: <reason text>"`, `"disabled: <reason text>"`.
impl fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanStatus::Active => f.write_str("active"),
            ScanStatus::Suspended { reason } => write!(f, "suspended: {reason}"),
            ScanStatus::Disabled { reason } => write!(f, "disabled: {reason}"),
        }
    }
}

/// Decides whether an agent's security scan runs, first matching rule wins:
///
/// 1. agent removed → `Disabled(AgentRemoved)`
/// 2. Community plan → `Disabled(CommunityPlan)`
/// 3. agent abandoned → `Disabled(AgentAbandoned)` (abandonment also
///    switches the policy off, so this comes before the user switch)
/// 4. policy disabled → `Disabled(DisabledByUser)`
/// 5. agent not communicating → `Suspended(AgentNotCommunicating)`
/// 6. otherwise `Active`.
///
/// This is a pure function of its inputs: an abandoned agent that talks
/// again is `Communicating`, so its scan is `Active` again. To make
/// abandonment require a user action, persist `policy_enabled = false` when
/// [`LivenessEvent::AgentAbandoned`] is emitted.
pub fn scan_status(
    plan: Plan,
    policy_enabled: bool,
    removed: bool,
    health: AgentHealth,
) -> ScanStatus {
    let disabled = |reason| ScanStatus::Disabled { reason };
    if removed {
        disabled(StatusReason::AgentRemoved)
    } else if !plan.allows_security_scan() {
        disabled(StatusReason::CommunityPlan)
    } else if health == AgentHealth::Abandoned {
        // Before the user switch: abandonment switches the policy off
        // itself, and the reason shown must stay "abandoned".
        disabled(StatusReason::AgentAbandoned)
    } else if !policy_enabled {
        disabled(StatusReason::DisabledByUser)
    } else {
        match health {
            AgentHealth::NotCommunicating => ScanStatus::Suspended {
                reason: StatusReason::AgentNotCommunicating,
            },
            _ => ScanStatus::Active,
        }
    }
}

/// A change of agent health worth notifying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessEvent {
    /// The agent stopped communicating (alert).
    AgentSilent,
    /// The agent communicates again (recovery).
    AgentBack,
    /// The agent has been silent long enough to be considered abandoned.
    AgentAbandoned,
}

/// The event to notify when an agent's health goes from `previous` to
/// `current`, if any. Each event fires once per transition:
///
/// | previous \ current | Communicating | NotCommunicating | Abandoned      |
/// |--------------------|---------------|------------------|----------------|
/// | Communicating      | –             | AgentSilent      | AgentAbandoned |
/// | NotCommunicating   | AgentBack     | –                | AgentAbandoned |
/// | Abandoned          | AgentBack     | –                | –              |
pub fn liveness_event(previous: AgentHealth, current: AgentHealth) -> Option<LivenessEvent> {
    use AgentHealth::*;
    match (previous, current) {
        (Communicating, NotCommunicating) => Some(LivenessEvent::AgentSilent),
        (Communicating | NotCommunicating, Abandoned) => Some(LivenessEvent::AgentAbandoned),
        (NotCommunicating | Abandoned, Communicating) => Some(LivenessEvent::AgentBack),
        _ => None,
    }
}

/// `Duration` as whole seconds.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AgentHealth::*;

    const MIN: u64 = 60;
    const DAY: u64 = 24 * 60 * MIN;

    #[test]
    fn health_from_silence() {
        let cfg = LivenessConfig::default();
        let now = 1_700_000_000;
        // (last seen, enrolled, expected)
        let cases: &[(Option<u64>, u64, AgentHealth)] = &[
            (Some(now), 0, Communicating),
            (Some(now - 10 * MIN), 0, Communicating),
            (Some(now - 10 * MIN - 1), 0, NotCommunicating),
            (Some(now - 30 * DAY), 0, NotCommunicating),
            (Some(now - 30 * DAY - 1), 0, Abandoned),
            (Some(0), 0, Abandoned),
            // Clock skew: contact "in the future" is just now.
            (Some(now + 3600), 0, Communicating),
            // Never seen: silence counts from enrollment.
            (None, now - 5 * MIN, Communicating),
            (None, now - 11 * MIN, NotCommunicating),
            (None, now - 31 * DAY, Abandoned),
            // Seen: enrollment does not matter.
            (Some(now - 11 * MIN), now, NotCommunicating),
        ];
        for &(last_seen, enrolled, want) in cases {
            assert_eq!(
                health(last_seen, enrolled, now, &cfg),
                want,
                "last_seen {last_seen:?}, enrolled {enrolled}"
            );
        }
    }

    #[test]
    fn contact_ranges_agree_with_health() {
        let cfgs = [
            LivenessConfig::default(),
            LivenessConfig {
                silent_after: Duration::from_secs(30),
                abandoned_after: Duration::from_secs(100),
            },
        ];
        for cfg in &cfgs {
            for now in [0, 29, 30, 31, 100, 101, 1_000, 1_700_000_000] {
                for h in [Communicating, NotCommunicating, Abandoned] {
                    let range = contact_range(h, now, cfg);
                    let probes = [0, 1, now.saturating_sub(101), now.saturating_sub(100)]
                        .into_iter()
                        .chain([now.saturating_sub(31), now.saturating_sub(30), now])
                        .chain([now + 5])
                        .chain((0..4).map(|k| now.saturating_sub(cfg.silent_after.as_secs() + k)))
                        .chain(
                            (0..4).map(|k| now.saturating_sub(cfg.abandoned_after.as_secs() + k)),
                        );
                    for seen in probes {
                        let inside = range.is_some_and(|(from, to)| {
                            from.is_none_or(|f| seen >= f) && to.is_none_or(|t| seen <= t)
                        });
                        assert_eq!(
                            inside,
                            health(Some(seen), 0, now, cfg) == h,
                            "{h:?} at {now}, seen {seen}, range {range:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn health_follows_the_config() {
        let cfg = LivenessConfig {
            silent_after: Duration::from_secs(30),
            abandoned_after: Duration::from_secs(100),
        };
        let cases = [
            (30, Communicating),
            (31, NotCommunicating),
            (100, NotCommunicating),
            (101, Abandoned),
        ];
        for (silent, want) in cases {
            assert_eq!(
                health(Some(1000 - silent), 0, 1000, &cfg),
                want,
                "{silent}s"
            );
        }
    }

    #[test]
    fn scan_status_rules_in_order() {
        use Plan::*;
        use StatusReason::*;
        let disabled = |reason| ScanStatus::Disabled { reason };
        // (plan, policy enabled, removed, health, expected)
        let cases: &[(Plan, bool, bool, AgentHealth, ScanStatus)] = &[
            (Extended, true, false, Communicating, ScanStatus::Active),
            (
                Extended,
                true,
                false,
                NotCommunicating,
                ScanStatus::Suspended {
                    reason: AgentNotCommunicating,
                },
            ),
            (Extended, true, false, Abandoned, disabled(AgentAbandoned)),
            (
                Extended,
                false,
                false,
                Communicating,
                disabled(DisabledByUser),
            ),
            (Extended, false, false, Abandoned, disabled(AgentAbandoned)),
            (
                Community,
                true,
                false,
                Communicating,
                disabled(CommunityPlan),
            ),
            (
                Community,
                false,
                false,
                NotCommunicating,
                disabled(CommunityPlan),
            ),
            (Extended, true, true, Communicating, disabled(AgentRemoved)),
            (Community, false, true, Abandoned, disabled(AgentRemoved)),
        ];
        for &(plan, enabled, removed, health, want) in cases {
            assert_eq!(
                scan_status(plan, enabled, removed, health),
                want,
                "{plan} enabled={enabled} removed={removed} {health}"
            );
        }
    }

    #[test]
    fn suspension_is_temporary() {
        let cfg = LivenessConfig::default();
        let seen = 1_000_000;
        let status_at = |last_seen: u64, now: u64| {
            scan_status(
                Plan::Extended,
                true,
                false,
                health(Some(last_seen), 0, now, &cfg),
            )
        };
        assert!(status_at(seen, seen + MIN).is_active());
        assert_eq!(
            status_at(seen, seen + 20 * MIN).reason(),
            Some(StatusReason::AgentNotCommunicating)
        );
        // The agent talks again.
        assert!(status_at(seen + 20 * MIN, seen + 21 * MIN).is_active());
    }

    #[test]
    fn liveness_events_fire_once_per_transition() {
        use LivenessEvent::*;
        let cases: &[(AgentHealth, AgentHealth, Option<LivenessEvent>)] = &[
            (Communicating, Communicating, None),
            (Communicating, NotCommunicating, Some(AgentSilent)),
            (Communicating, Abandoned, Some(AgentAbandoned)),
            (NotCommunicating, Communicating, Some(AgentBack)),
            (NotCommunicating, NotCommunicating, None),
            (NotCommunicating, Abandoned, Some(AgentAbandoned)),
            (Abandoned, Communicating, Some(AgentBack)),
            (Abandoned, NotCommunicating, None),
            (Abandoned, Abandoned, None),
        ];
        for &(prev, cur, want) in cases {
            assert_eq!(liveness_event(prev, cur), want, "{prev} -> {cur}");
        }
    }

    #[test]
    fn a_silent_agent_alerts_once_then_recovers_once() {
        let cfg = LivenessConfig::default();
        let seen = 1_000_000;
        let mut prev = Communicating;
        let mut events = Vec::new();
        // Silent for an hour, checked every minute, then back.
        for minute in 0..=60 {
            let cur = health(Some(seen), 0, seen + minute * MIN, &cfg);
            events.extend(liveness_event(prev, cur));
            prev = cur;
        }
        let cur = health(Some(seen + 61 * MIN), 0, seen + 61 * MIN, &cfg);
        events.extend(liveness_event(prev, cur));
        assert_eq!(
            events,
            [LivenessEvent::AgentSilent, LivenessEvent::AgentBack]
        );
    }

    #[test]
    fn texts_and_serde() {
        assert_eq!(
            ScanStatus::Disabled {
                reason: StatusReason::CommunityPlan
            }
            .to_string(),
            "disabled: security scans need the Extended plan"
        );
        assert_eq!(ScanStatus::Active.to_string(), "active");
        for reason in [
            StatusReason::AgentNotCommunicating,
            StatusReason::AgentAbandoned,
            StatusReason::AgentRemoved,
            StatusReason::CommunityPlan,
            StatusReason::DisabledByUser,
        ] {
            assert!(!reason.text().is_empty());
        }
        assert_eq!(
            serde_json::to_value(ScanStatus::Suspended {
                reason: StatusReason::AgentNotCommunicating
            })
            .unwrap(),
            serde_json::json!({"status": "suspended", "reason": "agent_not_communicating"})
        );
        assert_eq!(
            serde_json::to_value(ScanStatus::Active).unwrap(),
            serde_json::json!({"status": "active"})
        );
        assert_eq!(
            serde_json::to_value(LivenessConfig::default()).unwrap(),
            serde_json::json!({"silent_after": 600, "abandoned_after": 2_592_000})
        );
        let cfg: LivenessConfig = serde_json::from_str(r#"{"silent_after": 300}"#).unwrap();
        assert_eq!(cfg.silent_after, Duration::from_secs(300));
        assert_eq!(
            cfg.abandoned_after,
            LivenessConfig::default().abandoned_after
        );
        assert_eq!(
            serde_json::to_string(&AgentHealth::NotCommunicating).unwrap(),
            "\"not_communicating\""
        );
        assert_eq!(
            serde_json::to_string(&LivenessEvent::AgentBack).unwrap(),
            "\"agent_back\""
        );
    }
}
