//! The agent API: what an agent sends to the server and what it gets back.
//!
//! Every call but [`EnrollRequest`] is authenticated with
//! `Authorization: Bearer <agent id>:<credential>`.

use serde::{Deserialize, Serialize};
use vigil_core::listener::PortDetails;
use vigil_core::PortState;

/// `POST` path prefix of the agent API.
pub const PREFIX: &str = "/agent/v1";
pub const ENROLL_PATH: &str = "/agent/v1/enroll";
pub const HEARTBEAT_PATH: &str = "/agent/v1/heartbeat";
pub const RESULTS_PATH: &str = "/agent/v1/results";
pub const MOVED_PATH: &str = "/agent/v1/moved";
/// Where a finished local-network sweep goes ([`NetworkUpload`]).
pub const NETWORK_PATH: &str = "/agent/v1/network";

/// Largest request body the server accepts from an agent (a full-range
/// result of one target is ~1.5 MB of JSON at most).
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// The largest network sweep upload: the devices of an organization's
/// largest sweep (a /16) with their names and ports.
pub const MAX_NETWORK_BODY_BYTES: usize = 48 << 20;

/// What the agent knows about the machine it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFacts {
    pub hostname: String,
    pub os: String,
    pub version: String,
}

/// `POST /agent/v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The single-use token from the enrollment string.
    pub token: String,
    pub facts: AgentFacts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The agent's GUID.
    pub agent_id: String,
    /// The per-agent secret; shown once, stored by the agent.
    pub credential: String,
    /// The ID of the server that now manages this agent.
    pub server_id: String,
    /// How often to send a heartbeat.
    pub heartbeat_secs: u64,
    /// The agent URLs of every replica of this server (see
    /// [`HeartbeatResponse::server_urls`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_urls: Vec<String>,
}

/// `POST /agent/v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub facts: AgentFacts,
    /// Results waiting in the agent's spool.
    pub spooled: u64,
    /// What the agent binary runs on (`linux-x86_64`, `windows-x86_64`):
    /// which build of the agent an update offers. Absent from agents that
    /// cannot update themselves (they get no offer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// A new version on trial (see [`UpdateOffer`]): it proves it can
    /// reach the server; the server records the heartbeat but hands out
    /// no tasks, moves or offers (the old version is still in charge).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    /// How the last update went, until the server has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateReport>,
}

/// The agent build a server ships, offered in a heartbeat answer (so only
/// over the pinned, authenticated channel). The agent downloads `path`
/// from the same server, checks `size`, `sha256` and `signature` (Ed25519
/// over [`update_message`] with the server's update key), replaces its
/// binary, and runs the new one on trial: it must reach the server within
/// a minute or the old binary is put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    pub version: String,
    pub platform: String,
    /// The agent API path of the download (on the server the agent talks to).
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// Lowercase hex Ed25519 signature of [`update_message`].
    pub signature: String,
}

/// What an update offer's signature covers: the build, by version,
/// platform, digest and size.
pub fn update_message(version: &str, platform: &str, sha256: &str, size: u64) -> Vec<u8> {
    format!("vigil-agent-update/1\n{platform}\n{version}\n{sha256}\n{size}\n").into_bytes()
}

/// The agent's account of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The version offered.
    pub version: String,
    pub outcome: UpdateOutcome,
    /// Why, for people (a failed check, the trial's end).
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// Downloading, checking or on trial.
    Installing,
    /// Not installed, or put back after its trial; not tried again.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// Scans the agent should run now.
    pub tasks: Vec<ScanTask>,
    pub heartbeat_secs: u64,
    /// The agent's address as the server saw it.
    pub observed_addr: String,
    /// Re-enroll with another server (see [`MoveInstruction`]). Absent from
    /// older servers; ignored by older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to: Option<MoveInstruction>,
    /// The agent URLs of every replica of this server (replicas share one
    /// database and one TLS identity): where the agent may go when the one
    /// it talks to fails, trusting the same pinned certificate. Empty from
    /// a server without replicas and from older servers: the agent keeps
    /// what it knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_urls: Vec<String>,
    /// The key that signs this server's agent builds (hex Ed25519 public
    /// key). The agent keeps the first one it sees and refuses offers
    /// signed by another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_key: Option<String>,
    /// Install this build (see [`UpdateOffer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateOffer>,
}

/// "Re-enroll with this server": sent by the agent's current server in a
/// heartbeat answer, so it only ever arrives over the pinned, authenticated
/// channel. The agent enrolls with the new server, keeps its old identity
/// unless that succeeded, and then reports [`MovedNotice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveInstruction {
    /// The new server's agent URL (`https://…`).
    pub server_url: String,
    /// The new server's certificate pin (`sha256:…`).
    pub pin: String,
    /// A single-use enrollment token of the new server.
    pub enrollment_token: String,
}

/// `POST /agent/v1/moved`: the agent is now enrolled with another server;
/// its old server removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedNotice {
    /// The ID of the server that manages the agent now.
    pub server_id: String,
}

/// One scan to run: a target and its ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanTask {
    pub task_id: String,
    /// Host name or address; `"self"` means the agent's own host.
    pub target: String,
    /// Port specification in `vigil scan -p` syntax.
    pub ports: String,
    /// Set for a local-network sweep (target [`NETWORK_TARGET`]); its
    /// result goes to `POST /agent/v1/network` as a [`NetworkUpload`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSweep>,
}

/// The target name that means "the agent's own host".
pub const SELF_TARGET: &str = "self";

/// The target name of a local-network sweep (see [`NetworkSweep`]).
pub const NETWORK_TARGET: &str = "network";

/// What a local-network sweep covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSweep {
    /// Sweep the subnets of the agent's own interfaces.
    pub local: bool,
    /// Interfaces left out by default that the user includes, by name.
    #[serde(default)]
    pub include_interfaces: Vec<String>,
    /// Networks the user added (CIDR blocks, ranges, addresses).
    #[serde(default)]
    pub networks: Vec<String>,
    /// The most addresses the whole sweep may cover (the account's limit);
    /// a subnet that would go over is left out and reported.
    pub max_addresses: u64,
    /// Ask the gateway (UPnP IGD, NAT-PMP) what it forwards from outside.
    pub audit_gateway: bool,
}

/// One interface of the agent's machine, as a network sweep reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceReport {
    pub name: String,
    /// "ethernet", "wireless", "loopback", "tunnel", "virtual" or "other".
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its networks in CIDR form.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Why it is left out of the sweep by default; `None`: swept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<String>,
}

/// A network the sweep did not cover, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedNetwork {
    pub network: String,
    pub reason: String,
}

/// A port forward the gateway reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortForward {
    /// "tcp" or "udp".
    pub protocol: String,
    pub external_port: u16,
    pub internal_client: String,
    pub internal_port: u16,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    /// The only outside address allowed to use it; empty: anyone.
    #[serde(default)]
    pub remote_host: String,
    /// Seconds left; 0: permanent.
    #[serde(default)]
    pub lease_secs: u32,
    /// How it was learned, e.g. "upnp".
    pub source: String,
}

/// What the gateway said about itself and its forwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayReport {
    /// The protocols that answered: "upnp", "nat-pmp", "pcp".
    #[serde(default)]
    pub answered: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    #[serde(default)]
    pub forwards: Vec<PortForward>,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// `POST /agent/v1/network`: one finished local-network sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkUpload {
    /// As in [`ResultUpload::upload_id`].
    pub upload_id: String,
    pub task_id: String,
    pub started_at: i64,
    pub finished_at: i64,
    #[serde(default)]
    pub interfaces: Vec<InterfaceReport>,
    /// The networks swept (CIDR blocks and ranges).
    #[serde(default)]
    pub swept: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<SkippedNetwork>,
    /// Every device that answered or that the neighbour table listed.
    #[serde(default)]
    pub devices: Vec<vigil_core::lan::Sighting>,
    /// `None` when the sweep did not ask the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayReport>,
    /// Why devices may be missing from `devices` (the OS dropped probes):
    /// the server then takes no device for gone because this sweep missed
    /// it. `None`: the sweep saw everything it asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// `POST /agent/v1/results`: one finished scan of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultUpload {
    /// Chosen by the agent when the scan finishes; the server stores each
    /// upload id once, so re-sending after a lost answer is harmless.
    pub upload_id: String,
    pub task_id: String,
    pub target: String,
    /// The address actually scanned.
    pub addr: String,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: i64,
    pub ports: Vec<PortObservation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortObservation {
    pub port: u16,
    pub state: PortState,
    /// What listens on an open port (service, banner, certificate, HTTP
    /// server, process); absent from older agents and for other states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<PortDetails>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Stored now.
    Stored,
    /// Already stored earlier (a re-send).
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAck {
    pub status: UploadStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_upload_round_trips_with_snake_case_states() {
        let up = ResultUpload {
            upload_id: "u1".into(),
            task_id: "t1".into(),
            target: SELF_TARGET.into(),
            addr: "127.0.0.1".into(),
            started_at: 1,
            finished_at: 2,
            ports: vec![
                PortObservation {
                    port: 22,
                    state: PortState::Open,
                    details: None,
                },
                PortObservation {
                    port: 8080,
                    state: PortState::Open,
                    details: Some(Box::new(PortDetails {
                        service: Some("http-alt".into()),
                        ..PortDetails::default()
                    })),
                },
            ],
        };
        let json = serde_json::to_string(&up).expect("serialize");
        assert!(json.contains(r#""state":"open""#), "{json}");
        // No `details` key where there are none: older servers see what they know.
        assert!(json.contains(r#"{"port":22,"state":"open"}"#), "{json}");
        let back: ResultUpload = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, up);
    }

    #[test]
    fn heartbeat_responses_without_a_move_stay_as_before() {
        let old = r#"{"tasks":[],"heartbeat_secs":30,"observed_addr":"198.51.100.7"}"#;
        let parsed: HeartbeatResponse = serde_json::from_str(old).expect("parse");
        assert_eq!(parsed.move_to, None);
        assert!(parsed.server_urls.is_empty());
        let json = serde_json::to_string(&parsed).expect("serialize");
        assert!(!json.contains("move_to"), "{json}");
        assert!(!json.contains("server_urls"), "{json}");
    }

    #[test]
    fn unknown_states_are_rejected() {
        let bad = r#"{"port":22,"state":"ajar"}"#;
        assert!(serde_json::from_str::<PortObservation>(bad).is_err());
    }
}
