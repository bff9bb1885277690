//! The compliance status of one endpoint, and the pure decision that turns
//! what a probe saw into that status.
//!
//! Order of the rules in [`classify`]:
//! 1. The unreachable check is configured and its port got no answer:
//!    **unreachable**, and nothing else counts (the assessment skips the
//!    other checks for speed; the verdict is the same if it did not). A
//!    refused connection (RST) is an answer: the host is up.
//! 2. An agent answered identify with our server ID and proved it (the
//!    reply's MAC, see `identify.rs`): **managed here**; with another
//!    non-empty server ID: **managed elsewhere** (unverified: only that
//!    server could check it).
//! 3. Anything answered (the unreachable-check port, an agent port, even a
//!    refusal, an agent not enrolled anywhere, or a reply claiming our
//!    server without proof): **no agent**. An agent that reports no server
//!    protects nothing; its ID and version are kept on the endpoint so the
//!    list can say so (and a forged claim is flagged there).
//! 4. Nothing answered at all: **unreachable**.
//!
//! **Unresolved AD** and **no host at address** are never the outcome of a
//! probe: the join (see `join.rs`) decides them, for AD computers that could
//! not be assessed and for silent addresses nothing shows a machine uses.

use super::error::ComplianceError;
use super::identify::{check_identify, IdentifyCheck, Proof};
use crate::state::PortState;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an endpoint stands, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// An agent answered with this server's ID (or AD says it is ours).
    ManagedHere,
    /// An agent of another Vigil server answered (unverified: only that
    /// server could check its reply).
    ManagedElsewhere,
    /// The host is up but no enrolled agent answered.
    NoAgent,
    /// A machine that exists (known from AD, named, or seen answering
    /// before) did not answer.
    Unreachable,
    /// An AD computer not in our database whose address is unknown.
    UnresolvedAd,
    /// An address of an IP range where nothing answered, now or ever
    /// before, and that has no name: most likely no machine uses it (see
    /// `join::settle_silent_addresses`). Collapsed in lists by default.
    NoHost,
}

impl EndpointStatus {
    /// Every status, in display order.
    pub const ALL: [EndpointStatus; 6] = [
        EndpointStatus::ManagedHere,
        EndpointStatus::ManagedElsewhere,
        EndpointStatus::NoAgent,
        EndpointStatus::Unreachable,
        EndpointStatus::UnresolvedAd,
        EndpointStatus::NoHost,
    ];

    /// The statuses lists, searches and exports show unless asked for
    /// others: every one but [`EndpointStatus::NoHost`] (a sparse range
    /// has tens of thousands of those).
    pub const SHOWN: [EndpointStatus; 5] = [
        EndpointStatus::ManagedHere,
        EndpointStatus::ManagedElsewhere,
        EndpointStatus::NoAgent,
        EndpointStatus::Unreachable,
        EndpointStatus::UnresolvedAd,
    ];

    /// The machine name, as serialized: `managed_here`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::ManagedHere => "managed_here",
            EndpointStatus::ManagedElsewhere => "managed_elsewhere",
            EndpointStatus::NoAgent => "no_agent",
            EndpointStatus::Unreachable => "unreachable",
            EndpointStatus::UnresolvedAd => "unresolved_ad",
            EndpointStatus::NoHost => "no_host",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            EndpointStatus::ManagedHere => "Managed by this server",
            EndpointStatus::ManagedElsewhere => "Managed by another server (unverified)",
            EndpointStatus::NoAgent => "No agent installed",
            EndpointStatus::Unreachable => "Unreachable",
            EndpointStatus::UnresolvedAd => "Unresolved Active Directory assessment",
            EndpointStatus::NoHost => "No host at address",
        }
    }

    /// Whether a Vigil server protects the endpoint.
    pub fn is_managed(self) -> bool {
        matches!(
            self,
            EndpointStatus::ManagedHere | EndpointStatus::ManagedElsewhere
        )
    }
}

impl fmt::Display for EndpointStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EndpointStatus {
    type Err = ComplianceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EndpointStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ComplianceError::UnknownStatus { status: s.into() })
    }
}

/// Endpoints per status, as shown above the result list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatusCounts {
    pub managed_here: u64,
    pub managed_elsewhere: u64,
    pub no_agent: u64,
    pub unreachable: u64,
    pub unresolved_ad: u64,
    /// Absent from counts stored before the status existed.
    #[serde(default)]
    pub no_host: u64,
}

impl StatusCounts {
    pub fn get(&self, status: EndpointStatus) -> u64 {
        match status {
            EndpointStatus::ManagedHere => self.managed_here,
            EndpointStatus::ManagedElsewhere => self.managed_elsewhere,
            EndpointStatus::NoAgent => self.no_agent,
            EndpointStatus::Unreachable => self.unreachable,
            EndpointStatus::UnresolvedAd => self.unresolved_ad,
            EndpointStatus::NoHost => self.no_host,
        }
    }

    pub fn add(&mut self, status: EndpointStatus) {
        let n = match status {
            EndpointStatus::ManagedHere => &mut self.managed_here,
            EndpointStatus::ManagedElsewhere => &mut self.managed_elsewhere,
            EndpointStatus::NoAgent => &mut self.no_agent,
            EndpointStatus::Unreachable => &mut self.unreachable,
            EndpointStatus::UnresolvedAd => &mut self.unresolved_ad,
            EndpointStatus::NoHost => &mut self.no_host,
        };
        *n += 1;
    }

    pub fn total(&self) -> u64 {
        EndpointStatus::ALL.iter().map(|&s| self.get(s)).sum()
    }
}

impl FromIterator<EndpointStatus> for StatusCounts {
    fn from_iter<I: IntoIterator<Item = EndpointStatus>>(iter: I) -> Self {
        let mut counts = StatusCounts::default();
        for status in iter {
            counts.add(status);
        }
        counts
    }
}

/// Whether a TCP connection attempt got any answer.
///
/// Map port states with `From<PortState>`: open and closed (refused) are
/// answers, a timeout or an ICMP unreachable is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    Answered,
    NoAnswer,
}

impl From<PortState> for Reachability {
    fn from(state: PortState) -> Self {
        match state {
            PortState::Open | PortState::Closed => Reachability::Answered,
            PortState::Filtered | PortState::Unreachable => Reachability::NoAnswer,
        }
    }
}

/// What an agent said in reply to identify.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identified {
    pub agent_id: String,
    /// The managing server's ID; empty if the agent is not enrolled.
    pub server_id: String,
    pub version: String,
    /// What the reply's MAC proved (checked only for replies naming us).
    #[serde(default)]
    pub proof: Proof,
    /// The host name the agent reported (any host can claim any name, so
    /// it only names the endpoint; see `names.rs`).
    #[serde(default)]
    pub hostname: Option<String>,
}

impl Identified {
    /// The verdict on this reply at the server `our_server_id`.
    pub fn check(&self, our_server_id: &str) -> Option<IdentifyCheck> {
        check_identify(&self.server_id, our_server_id, self.proof)
    }
}

/// What probing one address saw.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Probe {
    /// The unreachable-port check: `None` when not configured.
    pub unreachable_check: Option<Reachability>,
    /// Any other answer: an agent port accepted or refused a connection.
    pub other_answer: bool,
    /// The identify reply, if an agent gave one.
    pub identify: Option<Identified>,
}

/// The status of a probed address (never [`EndpointStatus::UnresolvedAd`]).
/// Server IDs are compared exactly.
pub fn classify(probe: &Probe, our_server_id: &str) -> EndpointStatus {
    if probe.unreachable_check == Some(Reachability::NoAnswer) {
        return EndpointStatus::Unreachable;
    }
    match probe
        .identify
        .as_ref()
        .and_then(|id| id.check(our_server_id))
    {
        Some(IdentifyCheck::Verified) => return EndpointStatus::ManagedHere,
        Some(IdentifyCheck::Unverified) => return EndpointStatus::ManagedElsewhere,
        Some(IdentifyCheck::Forged | IdentifyCheck::Removed) | None => {}
    }
    let answered = probe.unreachable_check == Some(Reachability::Answered)
        || probe.other_answer
        || probe.identify.is_some();
    if answered {
        EndpointStatus::NoAgent
    } else {
        EndpointStatus::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointStatus::*;
    use Reachability::*;

    const OURS: &str = "srv-ours";

    /// A reply naming `server_id`, its MAC proven valid.
    fn id(server_id: &str) -> Option<Identified> {
        proven(server_id, Proof::Valid)
    }

    fn proven(server_id: &str, proof: Proof) -> Option<Identified> {
        Some(Identified {
            agent_id: "agent-1".into(),
            server_id: server_id.into(),
            version: "0.1.0".into(),
            proof,
            hostname: None,
        })
    }

    #[test]
    fn classify_table() {
        // (case, unreachable check, other answer, identify, expected)
        type Case = (
            &'static str,
            Option<Reachability>,
            bool,
            Option<Identified>,
            EndpointStatus,
        );
        let cases: Vec<Case> = vec![
            ("our agent", Some(Answered), true, id(OURS), ManagedHere),
            (
                "our agent, no check configured",
                None,
                true,
                id(OURS),
                ManagedHere,
            ),
            (
                "other server's agent",
                Some(Answered),
                true,
                id("srv-other"),
                ManagedElsewhere,
            ),
            (
                "other agent, no check",
                None,
                true,
                id("srv-other"),
                ManagedElsewhere,
            ),
            (
                "server id differs in case",
                None,
                true,
                id("SRV-OURS"),
                ManagedElsewhere,
            ),
            (
                "check port answered, no agent",
                Some(Answered),
                false,
                None,
                NoAgent,
            ),
            ("agent port refused, no check", None, true, None, NoAgent),
            ("agent not enrolled", None, true, id(""), NoAgent),
            (
                "our server id without proof: forged",
                Some(Answered),
                true,
                proven(OURS, Proof::Unproven),
                NoAgent,
            ),
            (
                "our server id, agent removed",
                None,
                true,
                proven(OURS, Proof::RemovedAgent),
                NoAgent,
            ),
            (
                "other server: nobody can prove it",
                None,
                true,
                proven("srv-other", Proof::Unproven),
                ManagedElsewhere,
            ),
            (
                "check port silent: skip the rest",
                Some(NoAnswer),
                false,
                None,
                Unreachable,
            ),
            (
                "check port silent wins over agent",
                Some(NoAnswer),
                true,
                id(OURS),
                Unreachable,
            ),
            (
                "nothing configured, nothing answered",
                None,
                false,
                None,
                Unreachable,
            ),
        ];
        for (case, check, other, identify, want) in cases {
            let probe = Probe {
                unreachable_check: check,
                other_answer: other,
                identify,
            };
            assert_eq!(classify(&probe, OURS), want, "{case}");
        }
        // An unenrolled agent never matches a server with an empty ID.
        let probe = Probe {
            identify: id(""),
            ..Probe::default()
        };
        assert_eq!(classify(&probe, ""), NoAgent);
    }

    #[test]
    fn port_states_map_to_reachability() {
        let cases = [
            (PortState::Open, Answered),
            (PortState::Closed, Answered),
            (PortState::Filtered, NoAnswer),
            (PortState::Unreachable, NoAnswer),
        ];
        for (state, want) in cases {
            assert_eq!(Reachability::from(state), want, "{state}");
        }
    }

    #[test]
    fn names_labels_and_order() {
        let cases = [
            (ManagedHere, "managed_here", "Managed by this server"),
            (
                ManagedElsewhere,
                "managed_elsewhere",
                "Managed by another server (unverified)",
            ),
            (NoAgent, "no_agent", "No agent installed"),
            (Unreachable, "unreachable", "Unreachable"),
            (
                UnresolvedAd,
                "unresolved_ad",
                "Unresolved Active Directory assessment",
            ),
        ];
        for (i, (status, key, label)) in cases.iter().enumerate() {
            assert_eq!(EndpointStatus::ALL[i], *status);
            assert_eq!(status.as_str(), *key);
            assert_eq!(status.label(), *label);
            assert_eq!(status.to_string(), *key);
            assert_eq!(key.parse::<EndpointStatus>(), Ok(*status));
            assert_eq!(serde_json::to_string(status).unwrap(), format!("\"{key}\""));
        }
        assert!(matches!(
            "Managed".parse::<EndpointStatus>(),
            Err(ComplianceError::UnknownStatus { .. })
        ));
    }

    #[test]
    fn counts_per_status() {
        let counts: StatusCounts = [
            ManagedHere,
            NoAgent,
            NoAgent,
            UnresolvedAd,
            Unreachable,
            NoAgent,
        ]
        .into_iter()
        .collect();
        let want = [
            (ManagedHere, 1),
            (ManagedElsewhere, 0),
            (NoAgent, 3),
            (Unreachable, 1),
            (UnresolvedAd, 1),
        ];
        for (status, n) in want {
            assert_eq!(counts.get(status), n, "{status}");
        }
        assert_eq!(counts.total(), 6);
        let json = serde_json::to_value(counts).unwrap();
        assert_eq!(json["no_agent"], 3);
    }
}
