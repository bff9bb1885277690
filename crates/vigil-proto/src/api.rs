//! The JSON bodies of the REST API (`/api/v1`), shared by the server and
//! `vigil ctl`. The OpenAPI document the server serves describes the same
//! shapes.
//!
//! Security-scan policies travel as [`vigil_core::SecurityPolicy`] itself
//! (`{"enabled":true,"authorized":"22,443","monitored":"443",
//! "targets":["agent_host",{"host":"shop.example"}],"interval":60}`).
//! Timestamps are unix seconds.

use serde::{Deserialize, Serialize};
use vigil_core::history::AgentEventKind;
use vigil_core::timeline::{State, Window};
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
    /// The current code of the user's authenticator app, or one of their
    /// recovery codes: needed when the user has two-factor login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<String>,
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
    /// Labels for choosing agents (maintenance windows, `?tag=` filters).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The maintenance window covering the agent now, if any: its alerts
    /// are still raised and shown, but nobody is notified until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<AgentMaintenance>,
}

/// `GET /api/v1/trends`, `GET /api/v1/agents/{id}/trends`: exposure per
/// UTC day, oldest first (see `vigil_core::trend`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendView {
    pub window: vigil_core::trend::TrendWindow,
    pub days: Vec<vigil_core::trend::TrendPoint>,
}

/// The maintenance window an agent is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMaintenance {
    pub window_id: String,
    pub name: String,
    /// When it ends (Unix seconds); the latest end when several cover the agent.
    pub until: i64,
}

/// `PATCH /api/v1/agents/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Replaces the agent's tags (lowercase letters, digits, `-_.:`; at most 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `GET /api/v1/maintenance`, `POST /api/v1/maintenance` (answer): a
/// maintenance window and when it is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceView {
    pub id: String,
    /// The window as saved (what `POST`/`PUT` take).
    pub window: vigil_core::maintenance::Window,
    /// The occurrence open now, if any.
    pub open: Option<vigil_core::maintenance::Occurrence>,
    /// The next occurrence that starts later (within a year).
    pub next: Option<vigil_core::maintenance::Occurrence>,
    /// How many of the account's agents it covers.
    pub agents: u64,
    pub created_at: i64,
    pub created_by: Option<String>,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub port: u16,
    pub state: PortState,
    /// What listens on an open port: service name, banner, TLS
    /// certificate, HTTP server and title, and (for the agent's own host)
    /// the process. Absent when nothing is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<vigil_core::listener::PortDetails>,
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
    /// The ports that were open, every port the policy names (authorized
    /// or monitored) whatever its state, and filtered or unreachable ports
    /// when the scan found 25 or fewer in that state
    /// ([`vigil_core::listed_in_result`]); the rest are only counted.
    pub ports: Vec<PortView>,
    /// How many ports the scan probed; `null` for results stored before
    /// Vigil recorded it (then only `ports` is known).
    #[serde(default)]
    pub probed_count: Option<u32>,
    /// The probed ports as a port list (`1-65535`); `null` when unknown or
    /// too long to show.
    #[serde(default)]
    pub probed_ports: Option<String>,
    /// How many filtered ports the scan found without listing them in
    /// `ports`: more than 25 filtered ports are only counted, as nmap's
    /// "Not shown: 65530 filtered tcp ports" does. `null` for results
    /// stored before Vigil counted them (which listed them all). The
    /// closed ports left out are `probed_count` minus the ports listed and
    /// the two counts.
    #[serde(default)]
    pub filtered_not_listed: Option<u32>,
    /// The same for unreachable ports.
    #[serde(default)]
    pub unreachable_not_listed: Option<u32>,
}

impl ResultView {
    /// "65,535 ports probed (1-65535); not shown: 65,530 filtered".
    pub fn probed_summary(&self) -> String {
        vigil_core::probed_summary(
            self.probed_count,
            self.probed_ports.as_deref(),
            self.ports.len(),
            vigil_core::NotListed {
                filtered: self.filtered_not_listed,
                unreachable: self.unreachable_not_listed,
            },
        )
    }
}

/// A device of the location's inventory (`GET /agents/{id}/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    /// `None`: known by its address (behind a router).
    pub mac: Option<String>,
    /// From the IEEE registry, by the MAC's prefix.
    pub vendor: Option<String>,
    /// The first of `addresses`.
    pub address: Option<String>,
    pub addresses: Vec<String>,
    pub name: Option<String>,
    /// `dns`, `mdns`, `netbios`.
    pub name_source: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub open_ports: Vec<u16>,
    /// Seen by the latest sweep.
    pub present: bool,
    /// A user reviewed it.
    pub approved: bool,
    /// What a user says it is (`printer`); the policy authorizes ports by kind.
    pub kind: Option<String>,
    /// Its own authorized ports (`""`: none); `None`: its kind's.
    pub authorized: Option<String>,
    /// Its disappearance alerts.
    pub monitored: bool,
}

/// `PATCH /agents/{id}/devices/{device}`: what a user decides; absent
/// fields keep their value, `null` clears `kind` and `authorized`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePatchBody {
    #[serde(default)]
    pub approved: Option<bool>,
    #[serde(default, with = "double_option")]
    pub kind: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    pub authorized: Option<Option<String>>,
    #[serde(default)]
    pub monitored: Option<bool>,
}

/// An absent field is `None`, a `null` one `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// The latest local-network sweep of an agent's location
/// (`GET /agents/{id}/network`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    pub started_at: i64,
    pub finished_at: i64,
    pub received_at: i64,
    /// The agent's interfaces, each with why it is left out by default.
    pub interfaces: Vec<crate::agent::InterfaceReport>,
    /// The networks swept.
    pub swept: Vec<String>,
    /// Networks left out, and why.
    pub skipped: Vec<crate::agent::SkippedNetwork>,
    /// What the gateway said (`None` when it was not asked).
    pub gateway: Option<crate::agent::GatewayReport>,
    /// Why devices may be missing from this sweep (the agent's OS dropped
    /// probes); such a sweep took no device for gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    pub devices: usize,
    pub present: usize,
}

/// One entry of an agent's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEventView {
    pub at: i64,
    /// `enrolled`, `plan_changed`, `policy_changed`, `scan_suspended`,
    /// `scan_disabled`, `scan_resumed`, `health_changed`, `move_ordered`,
    /// `moved`, `removed`.
    pub kind: AgentEventKind,
    /// The user's email, or `system`.
    pub actor: String,
    /// What changed, for people (e.g. "authorized ports added 80").
    pub detail: String,
}

/// `GET /api/v1/agents/{id}/history`: one page of the history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHistoryPage {
    pub events: Vec<AgentEventView>,
    /// How many entries the history has in all.
    pub total: u64,
    pub offset: u64,
    pub limit: u32,
}

/// `GET /api/v1/agents/{id}/timeline`: reachability over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineView {
    /// `24h`, `7d` or `30d`.
    pub window: Window,
    pub from: i64,
    pub to: i64,
    /// The agent's communication first, then each scanned target followed
    /// by its monitored ports.
    pub rows: Vec<TimelineRowView>,
    /// Rows left out: at most 100 are given.
    pub hidden_rows: u64,
}

/// One row of a timeline: something that is up or down over time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRowView {
    /// `agent` (it communicates with the server), `target` (a scanned
    /// target is reachable) or `service` (a monitored port is open).
    pub kind: String,
    /// For people, e.g. "443/tcp on the agent's host".
    pub label: String,
    /// The policy target key (`target` and `service` rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `service` rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The share of the known part of the window it was up, in percent;
    /// `null` when nothing of the window is known yet.
    pub up_percent: Option<f64>,
    /// Seconds of the window it was down.
    pub down_secs: i64,
    /// Oldest first; together they cover the window.
    pub segments: Vec<SegmentView>,
}

/// `[start, end)` of a timeline row in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentView {
    pub start: i64,
    pub end: i64,
    /// `up`, `down` or `unknown` (before anything was known).
    pub state: State,
    /// A down segment that had not ended by the end of the window.
    pub open: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub agent_id: String,
    pub target: String,
    /// `unauthorized_open`, `service_down`, `target_unreachable`, `agent_not_communicating`,
    /// `new_device`.
    pub kind: String,
    pub port: Option<u16>,
    /// `open` or `resolved`.
    pub status: String,
    pub flapping: bool,
    pub raised_at: i64,
    pub resolved_at: Option<i64>,
    /// Why it ended: `cleared` (the condition stopped: the port closed, the
    /// service answers), `policy_changed` (a policy change made it none:
    /// the port, maybe still open, is now authorized, or no longer
    /// monitored), `not_scanned` (its port is no longer probed); `null`
    /// while open and for alerts resolved before Vigil recorded it.
    #[serde(default)]
    pub resolution: Option<String>,
    /// The email of the user whose change ended it (who saved the policy).
    #[serde(default)]
    pub resolved_by: Option<String>,
    /// One line for people; for an alert that ended, why it did.
    pub title: String,
    /// What listens on the alert's port, from the target's latest result
    /// (`python3 -m http.server (pid 1234, user nobody, /usr/bin/python3.11)`,
    /// else the service and what it announces): only in `GET
    /// /alerts/{id}`, for open port alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listening: Option<String>,
    /// When someone acknowledged it ("I am on it"); `null` while nobody has.
    #[serde(default)]
    pub acknowledged_at: Option<i64>,
    /// The email of the user who acknowledged it.
    #[serde(default)]
    pub acknowledged_by: Option<String>,
    /// The note they left, if any.
    #[serde(default)]
    pub ack_note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/ack` (an empty body is no note).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// What you are doing about it, for the rest of the team (at most 2000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One entry of `GET /api/v1/alerts/{id}/history`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEventView {
    /// 1, 2, … in the order things happened.
    pub seq: u64,
    pub at: i64,
    /// `raised`, `resolved`, `flapping_started`, `flapping_stopped`,
    /// `acknowledged`, `notification_queued`, `notification_delivered`,
    /// `notification_failed`.
    pub kind: String,
    /// Who: the user's email for `acknowledged`.
    pub actor: Option<String>,
    /// The acknowledgement's note, or the title of a queued notification.
    pub detail: Option<String>,
    /// Notifications: the contact, with its name and channel as they were then.
    pub contact_id: Option<String>,
    pub contact_name: Option<String>,
    pub channel: Option<String>,
    /// Notifications: the delivery attempt (1-based).
    pub attempt: Option<u32>,
    /// `notification_failed`: why.
    pub error: Option<String>,
    /// `notification_failed`: when it is tried again (`null`: given up).
    pub retry_at: Option<i64>,
}

/// `POST /api/v1/contacts`, `PUT /api/v1/contacts/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: String,
    /// A registered channel (`email`, `webhook`, `telegram`, ...; see the
    /// `ChannelFields` schema of `/api/v1/openapi.json`).
    pub channel: String,
    /// The channel's first field (an email address, a hook URL, a chat id);
    /// may be left out when `fields` has it.
    #[serde(default)]
    pub address: String,
    /// The channel's other fields by name (`bot_token`, `base_url`, ...).
    /// On a change, a secret left out keeps its stored value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fields: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    pub id: String,
    pub name: String,
    pub channel: String,
    /// The first field, as the caller may see it (URLs without path for viewers).
    pub address: String,
    /// The fields that are no secret, as the caller may see them.
    #[serde(default)]
    pub fields: std::collections::BTreeMap<String, String>,
    /// The secret fields that are set; their values are never sent back.
    #[serde(default)]
    pub secrets: Vec<String>,
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
    /// Repeat the notice of an open, unacknowledged alert every N minutes (at least 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_every_minutes: Option<u32>,
    /// While an alert stays unacknowledged, notify more contacts after N minutes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation: Vec<vigil_core::followup::EscalationStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    pub id: String,
    pub contact_id: String,
    pub agent_id: Option<String>,
    pub events: Vec<String>,
    pub created_at: i64,
    #[serde(default)]
    pub remind_every_minutes: Option<u32>,
    #[serde(default)]
    pub escalation: Vec<vigil_core::followup::EscalationStep>,
}

/// `GET /api/v1/compliance/scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceScopeView {
    pub scope: vigil_core::compliance::ComplianceScope,
    /// Whether an AD bind password is stored (it is never sent back).
    pub has_ad_password: bool,
}

/// `POST /api/v1/compliance/scope/certificate`: the TLS certificate the
/// saved AD scope's directory presents (the handshake only; no bind), to
/// pin it after checking its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdCertificateView {
    pub url: String,
    /// `sha256:` and the hex SHA-256 of the certificate (its pin).
    pub fingerprint: String,
    /// Whether the saved scope trusts it (by CA and name, or by pin).
    pub trusted: bool,
    /// Why not, when it is not.
    pub problem: Option<String>,
    /// Whether the scope pins exactly this certificate.
    pub pinned: bool,
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
    /// Endpoints per status: while running, those classified so far (the
    /// unreachable ones once the unreachable port is swept, the rest when
    /// probing ends); when done, the stored endpoints.
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

/// `POST /api/v1/compliance/peers`: trust another Vigil server, so its
/// agents can be moved here. The server calls `GET {api_url}/api/v1/server`
/// with the token to learn the peer's server ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPeer {
    pub name: String,
    /// The other server's REST API base URL, e.g. `https://vigil-b.example`
    /// (without `/api/v1`).
    pub api_url: String,
    /// An API token of an admin or owner on the other server (`vgl_…`);
    /// stored, never sent back.
    pub api_token: String,
}

/// A trusted peer server (its token is never shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    pub id: String,
    pub name: String,
    pub api_url: String,
    /// The peer's server ID, as agents it manages report it.
    pub server_id: String,
    pub created_at: i64,
}

/// `POST /api/v1/compliance/move`: move agents that the latest assessment
/// found managed by another server to this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Agent ids as shown on `managed_elsewhere` endpoints.
    pub agent_ids: Vec<String>,
    /// The plan of the agents here (default `community`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// The answer to [`MoveRequest`]: one outcome per agent id, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveResponse {
    pub results: Vec<MoveOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveOutcome {
    pub agent_id: String,
    /// `requested` (the other server will tell its agent at its next
    /// heartbeat) or `error`.
    pub status: String,
    /// The server that manages the agent now, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /api/v1/agents/{id}/move` (called by the destination server as a
/// peer): tell the agent at its next heartbeat to re-enroll there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentMoveOrder {
    /// The destination's agent URL (`https://…`).
    pub agent_url: String,
    /// The destination's certificate pin (`sha256:…`).
    pub pin: String,
    /// A single-use enrollment token of the destination.
    pub enrollment_token: String,
    /// How long the instruction stands (default 60, at most 1440).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u32>,
}

/// `GET /api/v1/agents/{id}/move`: the agent's latest move instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMoveView {
    pub agent_id: String,
    /// `pending` (waiting for the agent's heartbeat), `expired`, or `moved`.
    pub state: String,
    pub agent_url: String,
    pub requested_at: i64,
    pub expires_at: i64,
    pub moved_at: Option<i64>,
    /// The server that manages the agent now.
    pub moved_to: Option<String>,
}

/// `GET /api/v1/compliance/schedule`: when assessments run by themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceScheduleView {
    /// Disabled with nothing set until one is saved.
    pub schedule: vigil_core::compliance::ComplianceSchedule,
    /// When the next scheduled assessment starts (unix seconds); `None`
    /// while the schedule is disabled.
    pub next_run_at: Option<i64>,
}

/// `PUT /api/v1/compliance/schedule`: an interval (`every_minutes`) or a
/// UTC time of day (`daily_at`, `HH:MM`), optionally on one weekday
/// (`weekly_on`, 0 = Sunday … 6 = Saturday). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceScheduleUpdate {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_on: Option<u8>,
}

impl From<ComplianceScheduleUpdate> for vigil_core::compliance::ComplianceSchedule {
    fn from(u: ComplianceScheduleUpdate) -> Self {
        vigil_core::compliance::ComplianceSchedule {
            enabled: u.enabled,
            every_minutes: u.every_minutes,
            daily_at: u.daily_at,
            weekly_on: u.weekly_on,
        }
    }
}

impl From<vigil_core::compliance::ComplianceSchedule> for ComplianceScheduleUpdate {
    fn from(s: vigil_core::compliance::ComplianceSchedule) -> Self {
        ComplianceScheduleUpdate {
            enabled: s.enabled,
            every_minutes: s.every_minutes,
            daily_at: s.daily_at,
            weekly_on: s.weekly_on,
        }
    }
}

/// One past (or running) assessment in `GET /api/v1/compliance/history`,
/// newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentHistoryEntry {
    pub id: String,
    /// `running`, `done`, `cancelled`, `failed`.
    pub state: String,
    /// What started it: `manual`, `schedule`, `scope_saved`.
    pub trigger: String,
    pub on_demand: bool,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub done: u64,
    pub total: u64,
    pub error: Option<String>,
    /// Endpoints per status.
    pub counts: vigil_core::compliance::StatusCounts,
}

/// How an installed agent is started: `auto` (systemd when the host runs
/// it, otherwise detached), `systemd`, or `detached` (a background process
/// whose pid is kept in `<install_dir>/vigil-agent.pid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStart {
    #[default]
    Auto,
    Systemd,
    Detached,
}

impl AgentStart {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStart::Auto => "auto",
            AgentStart::Systemd => "systemd",
            AgentStart::Detached => "detached",
        }
    }
}

/// The platform an install command is for: `linux` (default; also other
/// Unix hosts with a matching `--agent-binary`: `curl … | sh`) or
/// `windows` (Windows PowerShell 5.1 in an elevated prompt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentPlatform {
    #[default]
    Linux,
    Windows,
}

impl AgentPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentPlatform::Linux => "linux",
            AgentPlatform::Windows => "windows",
        }
    }
}

/// SSH key authentication for a push install. The key is used for that
/// job only and never stored or sent back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshLogin {
    /// Default `root`.
    #[serde(default = "default_ssh_user")]
    pub user: String,
    /// Default 22.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// An unencrypted private key, OpenSSH or PEM format.
    pub private_key: String,
    /// `known_hosts` lines the hosts' keys must match; without them a host
    /// key is accepted on first use (and reported in the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
}

fn default_ssh_user() -> String {
    "root".into()
}

fn default_ssh_port() -> u16 {
    22
}

impl std::fmt::Debug for SshLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshLogin")
            .field("user", &self.user)
            .field("port", &self.port)
            .field("private_key", &"<redacted>")
            .field("known_hosts", &self.known_hosts.is_some())
            .finish()
    }
}

/// `POST /api/v1/compliance/install`: push-install agents over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// IP addresses of the hosts (typically the `no_agent` endpoints).
    pub addresses: Vec<String>,
    pub ssh: SshLogin,
    /// The agents' plan (default `community`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Where the binary goes (default `/opt/vigil`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<String>,
    /// The agent's state directory (default `/var/lib/vigil-agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// Where `vigil-agent.service` is written (default `/etc/systemd/system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_dir: Option<String>,
    #[serde(default)]
    pub start: AgentStart,
    /// Where `vigil.exe` goes on hosts that turn out to run Windows
    /// (default `%ProgramFiles%\Vigil`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_install_dir: Option<String>,
    /// The agent's state directory on Windows hosts (default
    /// `%ProgramData%\Vigil\agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_state_dir: Option<String>,
}

/// A push-install job (`GET /api/v1/compliance/install/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallJobView {
    pub id: String,
    /// `running`, `done`, or `interrupted` (its server stopped first: each
    /// host it had not finished is `failed`, its `error` says so).
    pub state: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub hosts: Vec<InstallHostView>,
}

/// One host of an install job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallHostView {
    pub address: String,
    /// `pending`, `running`, `installed`, `failed`.
    pub state: String,
    /// What happened, for people (how the agent was started, the host key
    /// accepted on first use, ...).
    pub message: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The enrolled agent.
    pub agent_id: Option<String>,
    pub finished_at: Option<i64>,
}

/// `POST /api/v1/compliance/install-command`: a one-line manual install
/// command with a fresh single-use enrollment token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallCommandRequest {
    /// The agent's name (default `installed agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// How long the token stays valid (default 1440 = one day, at most 43200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u32>,
    /// With `platform: windows`, a Windows absolute path (`C:\…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<String>,
    /// With `platform: windows`, a Windows absolute path (`C:\…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// Linux only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_dir: Option<String>,
    /// Linux only.
    #[serde(default)]
    pub start: AgentStart,
    /// Which command: `linux` (default, `curl … | sh`) or `windows`
    /// (a PowerShell line).
    #[serde(default)]
    pub platform: AgentPlatform,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallCommandView {
    /// `curl … | sh -s -- 'vge_…'` to run as root on the host, or, for
    /// Windows, a line for an elevated PowerShell prompt.
    pub command: String,
    /// The single-use enrollment token in the command.
    pub token: String,
    pub expires_at: i64,
    /// The install script's URL on the agent API.
    pub script_url: String,
    /// curl's `--pinnedpubkey` form of the agent API key: `sha256//<base64>`.
    pub pinned_pubkey: String,
    /// The platform the command is for.
    #[serde(default)]
    pub platform: AgentPlatform,
    /// The agent API certificate's pin (`sha256:<hex>` of its DER), which
    /// the PowerShell line and script check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pin: Option<String>,
    /// Windows: the hex SHA-256 of the `vigil.exe` the server hands out,
    /// which the script checks before installing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
}

/// `POST /api/v1/deployment-keys`: a reusable enrollment secret for mass
/// roll-outs (GPO, MSI), given to `vigil agent enroll --token` like a
/// single-use token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDeploymentKey {
    pub name: String,
    /// How long the key enrolls agents: 1 to 365 days.
    pub expires_in_days: u32,
    /// How many agents it may enroll (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    /// The plan of the agents it enrolls (default `community`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// Whether a deployment key still enrolls agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKeyState {
    Active,
    Expired,
    Revoked,
    /// It enrolled its `max_uses` agents.
    UsedUp,
}

/// A deployment key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentKeyView {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub state: DeploymentKeyState,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: Option<u64>,
    /// How many agents it enrolled.
    pub use_count: u64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The answer to `POST /api/v1/deployment-keys`: the secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentKeyCreated {
    /// The secret (`vgd_…`); only its hash is kept.
    pub secret: String,
    pub key: DeploymentKeyView,
    /// The agent API URL agents connect to.
    pub server_url: String,
    /// The server certificate's pin (`sha256:…`).
    pub pin: String,
    /// `vigil agent enroll --server … --token vgd_… --pin …`.
    pub command: String,
    /// `msiexec /i vigil-agent.msi SERVER=… TOKEN=vgd_… PIN=… /qn`.
    pub msiexec: String,
}

/// `GET /api/v1/deployment-keys/{id}/uses`: one agent the key enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentKeyUseView {
    pub agent_id: String,
    pub used_at: i64,
    /// The address the enrollment came from.
    pub peer_addr: Option<String>,
    /// The hostname the agent reported (its name).
    pub hostname: Option<String>,
}

/// `GET /api/v1/updates`: the agent builds this server offers, whether the
/// account updates its agents automatically, and where each agent stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatesView {
    pub builds: Vec<AgentBuildView>,
    pub auto_update: bool,
    pub agents: Vec<AgentUpdateView>,
}

/// One agent build offered for self-update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentBuildView {
    /// `linux-x86_64`, `windows-x86_64`.
    pub platform: String,
    pub version: String,
    pub size: u64,
    pub sha256: String,
}

/// An agent's update: `current` (runs the build of its platform),
/// `outdated` (another version, no rollout), `requested` (rolled out, not
/// offered yet: the agent has not called in, or cannot update itself),
/// `offered`, `installing`, `updated`, `failed` (with the agent's reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdateView {
    pub agent_id: String,
    pub name: String,
    pub version: Option<String>,
    pub platform: Option<String>,
    pub state: String,
    /// The version the state is about (offered, installed, failed).
    pub target_version: Option<String>,
    pub detail: Option<String>,
    pub updated_at: Option<i64>,
}

/// `POST /api/v1/updates/rollout`: exactly one of `all`, `tag`, `agents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub agents: Vec<String>,
}

/// The answer to a rollout: how many agents it is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutView {
    pub agents: u64,
}

/// `PUT /api/v1/updates/auto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoUpdateRequest {
    pub enabled: bool,
}
