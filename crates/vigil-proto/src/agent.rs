//! The agent API: what an agent sends to the server and what it gets back.
//!
//! Every call but [`EnrollRequest`] is authenticated with
//! `Authorization: Bearer <agent id>:<credential>`.

use serde::{Deserialize, Serialize};
use vigil_core::PortState;

/// `POST` path prefix of the agent API.
pub const PREFIX: &str = "/agent/v1";
pub const ENROLL_PATH: &str = "/agent/v1/enroll";
pub const HEARTBEAT_PATH: &str = "/agent/v1/heartbeat";
pub const RESULTS_PATH: &str = "/agent/v1/results";
pub const MOVED_PATH: &str = "/agent/v1/moved";

/// Largest request body the server accepts from an agent (a full-range
/// result of one target is ~1.5 MB of JSON at most).
pub const MAX_BODY_BYTES: usize = 4 << 20;

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
}

/// The target name that means "the agent's own host".
pub const SELF_TARGET: &str = "self";

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortObservation {
    pub port: u16,
    pub state: PortState,
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
            ports: vec![PortObservation {
                port: 22,
                state: PortState::Open,
            }],
        };
        let json = serde_json::to_string(&up).expect("serialize");
        assert!(json.contains(r#""state":"open""#), "{json}");
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
