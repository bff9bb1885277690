//! The JSON bodies of the REST API (`/api/v1`), shared by the server and
//! `vigil ctl`. The OpenAPI document the server serves describes the same
//! shapes.
//!
//! Security-scan policies travel as [`vigil_core::SecurityPolicy`] itself
//! (`{"enabled":true,"authorized":"22,443","monitored":"443",
//! "targets":["agent_host",{"host":"shop.example"}],"interval":60}`).
//! Timestamps are unix seconds.

use serde::{Deserialize, Serialize};
use vigil_core::{AccountKind, AgentHealth, Plan, PortState, SecurityPolicy};

/// Where the REST API lives.
pub const API_PREFIX: &str = "/api/v1";

/// Largest JSON body the REST API accepts.
pub const MAX_API_BODY_BYTES: usize = 256 << 10;

/// Every error answer: `{"error": "..."}` with a 4xx or 5xx status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /api/v1/login`: trade a password for an API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// Name of the token to create (default "login").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The API token (`vgl_…`), shown once. Send it as `Authorization: Bearer …`.
    pub token: String,
    pub user: UserView,
    pub account: AccountView,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user: UserView,
    pub account: AccountView,
}

/// `GET /api/v1/server`: this server, as agents see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The installation's ID; agents it manages report it in identify answers.
    pub server_id: String,
    pub version: String,
    /// The agent API URL given out with enrollment tokens.
    pub agent_url: String,
    /// The agent API certificate's pin (`sha256:…`).
    pub pin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub kind: AccountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
    /// `owner`, `admin` or `viewer`.
    pub role: String,
}

/// `POST /api/v1/users` (owners and admins; only owners create owners).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: String,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Only in the answer to the creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Whether an agent's security scan runs, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStatusView {
    /// `active`, `suspended`, `disabled`, or `none` (no policy yet).
    pub state: String,
    /// Why it is suspended or disabled, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub health: AgentHealth,
    pub enrolled_at: i64,
    pub last_seen_at: Option<i64>,
    /// The address the server saw the agent connect from.
    pub public_addr: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    pub hostname: Option<String>,
    pub removed_at: Option<i64>,
    pub scan: ScanStatusView,
}

/// `PATCH /api/v1/agents/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// `GET /api/v1/agents/{id}/policy`: the policy and what it currently does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    pub policy: SecurityPolicy,
    pub scan: ScanStatusView,
    pub next_run_at: Option<i64>,
}

/// `POST /api/v1/enrollments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEnrollment {
    /// The name the agent will have.
    pub name: String,
    pub plan: Plan,
    /// How long the token stays valid (default 1440 = one day, at most 43200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentView {
    /// Single-use token (`vge_…`), shown once.
    pub token: String,
    pub expires_at: i64,
    /// The agent API URL agents connect to.
    pub server_url: String,
    /// The server certificate's pin (`sha256:…`).
    pub pin: String,
    /// The command to run on the machine to enroll.
    pub command: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub port: u16,
    pub state: PortState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultView {
    pub id: String,
    pub agent_id: String,
    /// Which policy target: `agent_host`, `observed_address`, `host:NAME`.
    pub target: String,
    /// The address actually scanned.
    pub addr: Option<String>,
    pub started_at: i64,
    pub finished_at: i64,
    pub received_at: i64,
    pub ports: Vec<PortView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub agent_id: String,
    pub target: String,
    /// `unauthorized_open`, `service_down`, `target_unreachable`, `agent_not_communicating`.
    pub kind: String,
    pub port: Option<u16>,
    /// `open` or `resolved`.
    pub status: String,
    pub flapping: bool,
    pub raised_at: i64,
    pub resolved_at: Option<i64>,
    /// One line for people.
    pub title: String,
}

/// `POST /api/v1/contacts`, `PUT /api/v1/contacts/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: String,
    /// `email`, `webhook`, `slack`, `teams`, `discord`, `ntfy`.
    pub channel: String,
    /// An email address, or the `http(s)://` URL of the webhook / ntfy topic.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    pub id: String,
    pub name: String,
    pub channel: String,
    pub address: String,
    pub created_at: i64,
}

/// `POST /api/v1/rules`: which events of which agent (or all agents) go to a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Event kinds (`unauthorized_port_open`, `service_down`, ...); `["*"]` for all.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    pub id: String,
    pub contact_id: String,
    pub agent_id: Option<String>,
    pub events: Vec<String>,
    pub created_at: i64,
}

/// `GET /api/v1/compliance/scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceScopeView {
    pub scope: vigil_core::compliance::ComplianceScope,
    /// Whether an AD bind password is stored (it is never sent back).
    pub has_ad_password: bool,
}

/// `PUT /api/v1/compliance/scope`: "Save only" (`reassess: false`) or
/// "Save and re-assess" (`reassess: true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceScopeUpdate {
    pub scope: vigil_core::compliance::ComplianceScope,
    /// The AD bind password; absent keeps the stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_password: Option<String>,
    #[serde(default)]
    pub reassess: bool,
}

/// An assessment and its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentView {
    pub id: String,
    /// `running`, `done`, `cancelled`, `failed`.
    pub state: String,
    pub on_demand: bool,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Addresses probed so far, of `total`.
    pub done: u64,
    pub total: u64,
    pub error: Option<String>,
    /// Endpoints per status (filled when the assessment is done).
    pub counts: vigil_core::compliance::StatusCounts,
}

/// `GET /api/v1/compliance/endpoints`: one page of the endpoints that match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPage {
    pub assessment_id: String,
    /// How many endpoints match in all.
    pub total: u64,
    pub offset: u64,
    pub endpoints: Vec<vigil_core::compliance::Endpoint>,
}
