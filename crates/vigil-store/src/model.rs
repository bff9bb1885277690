//! The records the store hands out, and how enums are spelled in the database.

use crate::ids::*;
use crate::{Result, StoreError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use vigil_core::{AccountKind, AgentHealth, Condition, ConditionKind, Plan, PortState};

/// Seconds since the Unix epoch, the unit of every timestamp in the store.
pub type UnixTime = i64;

/// The current time in unix seconds.
pub fn now_unix() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Declares a string-backed enum with `as_str`, `Display` and `FromStr`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stored / serialized spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err(StoreError::Invalid(format!(
                        concat!("unknown ", stringify!($name), " {:?}"), s
                    ))),
                }
            }
        }
    };
}

text_enum! {
    /// What a user may do in an account.
    Role {
        /// Everything, including managing users and billing.
        Owner = "owner",
        /// Everything except managing owners.
        Admin = "admin",
        /// Read only.
        Viewer = "viewer",
    }
}

/// How a contact is notified: one of the channels registered in
/// `vigil-notify` (the database only checks that it is not empty).
pub use vigil_notify::Channel;

text_enum! {
    /// What became of a queued notification (see [`Delivery`]).
    DeliveryState {
        /// Not sent yet: due, being sent, or waiting to be retried.
        Queued = "queued",
        Sent = "sent",
        /// Given up on; [`Delivery::last_error`] says why.
        Failed = "failed",
    }
}

text_enum! {
    /// Whether an alert is still going on.
    AlertStatus {
        Open = "open",
        Resolved = "resolved",
    }
}

text_enum! {
    /// Where a compliance assessment stands. Only a running one changes.
    AssessmentState {
        Running = "running",
        /// Finished normally.
        Done = "done",
        /// Stopped by a newer assessment of the account, or by a user.
        Cancelled = "cancelled",
        /// Stopped by an error (see [`Assessment::error`]).
        Failed = "failed",
    }
}

text_enum! {
    /// What started a compliance assessment.
    AssessmentTrigger {
        /// A user asked for it.
        Manual = "manual",
        /// The account's compliance schedule.
        Schedule = "schedule",
        /// The compliance scope was saved.
        ScopeSaved = "scope_saved",
    }
}

text_enum! {
    /// Where a push-install job stands ([`crate::InstallJob`]).
    InstallJobState {
        /// Its server is installing (it renews the job's lease).
        Running = "running",
        /// Every host was tried: each says installed or failed.
        Done = "done",
        /// Its server stopped (restart, crash, lost database) before the
        /// job finished; the hosts it had not finished say why.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// Where one host of a push-install job stands.
    InstallHostState {
        Pending = "pending",
        Running = "running",
        Installed = "installed",
        Failed = "failed",
    }
}

/// Parses a stored enum value; a bad value means a corrupt row.
pub(crate) fn parse_stored<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse().map_err(|_| StoreError::corrupt(what, s))
}

/// A value stored as JSON text.
pub(crate) fn to_json<T: Serialize>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::invalid(format!("cannot serialize {what}: {e}")))
}

/// A value read from JSON text; bad text means a corrupt row.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| StoreError::corrupt(what, text))
}

pub(crate) fn plan_str(p: Plan) -> &'static str {
    p.as_str()
}

pub(crate) fn parse_plan(s: &str) -> Result<Plan> {
    match s {
        "community" => Ok(Plan::Community),
        "extended" => Ok(Plan::Extended),
        _ => Err(StoreError::corrupt("plan", s)),
    }
}

pub(crate) fn account_kind_str(k: AccountKind) -> &'static str {
    k.as_str()
}

pub(crate) fn parse_account_kind(s: &str) -> Result<AccountKind> {
    match s {
        "member" => Ok(AccountKind::Member),
        "organization" => Ok(AccountKind::Organization),
        _ => Err(StoreError::corrupt("account kind", s)),
    }
}

/// `communicating`, `not_communicating`, `abandoned` (the serde spelling).
pub(crate) fn health_str(h: AgentHealth) -> &'static str {
    match h {
        AgentHealth::Communicating => "communicating",
        AgentHealth::NotCommunicating => "not_communicating",
        AgentHealth::Abandoned => "abandoned",
    }
}

pub(crate) fn parse_health(s: &str) -> Result<AgentHealth> {
    match s {
        "communicating" => Ok(AgentHealth::Communicating),
        "not_communicating" => Ok(AgentHealth::NotCommunicating),
        "abandoned" => Ok(AgentHealth::Abandoned),
        _ => Err(StoreError::corrupt("agent health", s)),
    }
}

/// The serde spelling of a condition kind.
pub(crate) fn condition_kind_str(k: ConditionKind) -> &'static str {
    match k {
        ConditionKind::UnauthorizedOpen => "unauthorized_open",
        ConditionKind::ServiceDown => "service_down",
        ConditionKind::TargetUnreachable => "target_unreachable",
        ConditionKind::AgentNotCommunicating => "agent_not_communicating",
        ConditionKind::NewDevice => "new_device",
        ConditionKind::ProcessChanged => "process_changed",
    }
}

pub(crate) fn parse_condition(kind: &str, port: Option<i64>) -> Result<Condition> {
    let kind = match kind {
        "unauthorized_open" => ConditionKind::UnauthorizedOpen,
        "service_down" => ConditionKind::ServiceDown,
        "target_unreachable" => ConditionKind::TargetUnreachable,
        "agent_not_communicating" => ConditionKind::AgentNotCommunicating,
        "new_device" => ConditionKind::NewDevice,
        "process_changed" => ConditionKind::ProcessChanged,
        _ => return Err(StoreError::corrupt("alert kind", kind)),
    };
    let port = match port {
        None => None,
        Some(p) => Some(u16::try_from(p).map_err(|_| StoreError::corrupt("port", &p.to_string()))?),
    };
    Ok(Condition { kind, port })
}

/// An account (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub kind: AccountKind,
    pub created_at: UnixTime,
}

/// A console user. The password hash never leaves the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub account_id: AccountId,
    /// Lower-cased.
    pub email: String,
    pub role: Role,
    pub created_at: UnixTime,
}

/// An API token's metadata (the secret is only returned once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub account_id: AccountId,
    pub user_id: UserId,
    pub name: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
    /// When it stops working, if it expires (web console sessions).
    pub expires_at: Option<UnixTime>,
}

/// An enrolled agent. Its credential hash never leaves the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: AgentId,
    pub account_id: AccountId,
    pub name: String,
    pub plan: Plan,
    pub enrolled_at: UnixTime,
    pub last_seen_at: Option<UnixTime>,
    /// The address the server saw the agent connect from.
    pub public_addr: Option<String>,
    pub version: Option<String>,
    pub os: Option<String>,
    pub hostname: Option<String>,
    pub removed_at: Option<UnixTime>,
    /// The health the liveness sweeper last recorded.
    pub last_health: AgentHealth,
    /// Labels for choosing agents (maintenance windows, filters), normalized
    /// by [`vigil_core::maintenance::normalize_tags`].
    pub tags: Vec<String>,
}

impl Agent {
    pub fn is_removed(&self) -> bool {
        self.removed_at.is_some()
    }
}

/// What an agent reports with each heartbeat. `None` keeps the stored value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heartbeat<'a> {
    pub now: UnixTime,
    pub public_addr: Option<&'a str>,
    pub version: Option<&'a str>,
    pub os: Option<&'a str>,
    pub hostname: Option<&'a str>,
}

/// One probed port in a scan result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortResult {
    pub port: u16,
    pub state: PortState,
    /// What listens (stored inside the result's JSON port list, so older
    /// rows simply have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<vigil_core::listener::PortDetails>>,
}

/// A scan result as uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewScanResult<'a> {
    /// Client-chosen idempotency key, unique per agent (printable ASCII, at most 128 bytes).
    pub upload_id: &'a str,
    pub target: &'a str,
    pub started_at: UnixTime,
    pub finished_at: UnixTime,
    pub ports: &'a [PortResult],
    /// The address the target resolved to, if the scanner reports it
    /// (printable ASCII, at most 64 bytes).
    pub addr: Option<&'a str>,
    /// The [`ScanTask`] this result answers, as the agent reports it
    /// (printable ASCII, at most 128 bytes); not checked against the tasks.
    pub task_id: Option<&'a str>,
    /// Every port the scan reported on (`ports` may keep only some of
    /// them); `None` when unknown. Stored as a count and, when short
    /// enough, as a port list ([`ScanResult::probed_count`]).
    pub probed: Option<Probed<'a>>,
}

/// What a scan probed, beside the ports its result lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed<'a> {
    /// Every port the scan reported on.
    pub ports: &'a vigil_core::PortList,
    /// How many of them were filtered, and unreachable, without being
    /// listed in the result ([`vigil_core::listed_in_result`]); the closed
    /// ones left out are what remains.
    pub filtered_not_listed: u32,
    pub unreachable_not_listed: u32,
}

impl<'a> Probed<'a> {
    /// Probed ports that the result lists all of, but closed ones.
    pub fn listing_all(ports: &'a vigil_core::PortList) -> Probed<'a> {
        Probed {
            ports,
            filtered_not_listed: 0,
            unreachable_not_listed: 0,
        }
    }
}

/// A stored scan result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    pub id: ScanResultId,
    pub account_id: AccountId,
    pub agent_id: AgentId,
    pub upload_id: String,
    pub target: String,
    pub started_at: UnixTime,
    pub finished_at: UnixTime,
    pub ports: Vec<PortResult>,
    pub received_at: UnixTime,
    pub addr: Option<String>,
    pub task_id: Option<String>,
    /// How many ports the scan probed (`ports` keeps only some of them: a
    /// sweep's closed ports are left out); `None` for results stored
    /// before Vigil recorded it.
    pub probed_count: Option<u32>,
    /// The probed ports as a port list (`1-65535`); `None` when unknown or
    /// longer than [`crate::limits::MAX_PROBED_PORTS_LEN`].
    pub probed_ports: Option<String>,
    /// The filtered and unreachable ports counted but not listed (more
    /// than [`vigil_core::MAX_SILENT_LISTED`] in one state); `None` for
    /// results stored before Vigil counted them, which listed them all.
    pub not_listed: vigil_core::NotListed,
}

/// A scan the server asked an agent to run. Open while not completed and
/// not expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanTask {
    pub id: TaskId,
    pub account_id: AccountId,
    pub agent_id: AgentId,
    /// Which policy target this scans ([`vigil_core::PolicyTarget::key`]).
    pub target_key: String,
    /// The host or address to scan.
    pub target: String,
    /// The ports to probe, as the server wrote them (e.g. a port-list string).
    pub ports: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub completed_at: Option<UnixTime>,
}

/// What [`crate::Store::ingest_result`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "id", rename_all = "snake_case")]
pub enum Ingested {
    /// Stored now.
    New(ScanResultId),
    /// This upload id was already stored (a retry); nothing changed.
    Duplicate(ScanResultId),
}

impl Ingested {
    pub fn id(self) -> ScanResultId {
        match self {
            Ingested::New(id) | Ingested::Duplicate(id) => id,
        }
    }

    pub fn is_new(self) -> bool {
        matches!(self, Ingested::New(_))
    }
}

/// An alert: one occurrence of a condition on an agent's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    pub account_id: AccountId,
    pub agent_id: AgentId,
    pub target: String,
    pub condition: Condition,
    pub status: AlertStatus,
    pub flapping: bool,
    pub raised_at: UnixTime,
    pub resolved_at: Option<UnixTime>,
    /// Why it is over; `None` while open, and for alerts resolved before
    /// Vigil recorded it.
    pub resolution: Option<vigil_core::Resolution>,
    /// The email of the user whose change ended it (e.g. who saved the
    /// policy that authorizes its port), as it was then.
    pub resolved_by: Option<String>,
    /// When someone acknowledged it ("I am on it"), see [`crate::Store::acknowledge_alert`].
    pub acknowledged_at: Option<UnixTime>,
    /// The email of the user who acknowledged it, as it was then.
    pub acknowledged_by: Option<String>,
    /// Their note, if they left one.
    pub ack_note: Option<String>,
}

impl Alert {
    pub fn is_acknowledged(&self) -> bool {
        self.acknowledged_at.is_some()
    }
}

/// Which alerts [`crate::Store::alerts`] lists; `None` means any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub agent: Option<AgentId>,
}

/// Which alerts [`crate::Store::alerts_page`] lists by acknowledgement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AckFilter {
    #[default]
    Any,
    Acknowledged,
    Unacknowledged,
}

/// What [`crate::Store::acknowledge_alert`] found. Only the first outcome
/// changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Recorded now, with an `acknowledged` event in the history.
    Acknowledged(Alert),
    /// Someone (see [`Alert::acknowledged_by`]) acknowledged it before.
    AlreadyAcknowledged(Alert),
    /// The alert is resolved: there is nothing left to take on.
    Resolved(Alert),
}

text_enum! {
    /// What happened to an alert (one entry of its history).
    AlertEventKind {
        Raised = "raised",
        Resolved = "resolved",
        FlappingStarted = "flapping_started",
        FlappingStopped = "flapping_stopped",
        /// By [`AlertEvent::actor`], with the note in [`AlertEvent::detail`].
        Acknowledged = "acknowledged",
        /// A notification about the alert was queued for a contact; its
        /// title is in [`AlertEvent::detail`].
        NotificationQueued = "notification_queued",
        NotificationDelivered = "notification_delivered",
        /// One delivery attempt failed ([`AlertEvent::error`]); retried at
        /// [`AlertEvent::retry_at`], or given up when that is `None`.
        NotificationFailed = "notification_failed",
    }
}

/// One entry of an alert's history ([`crate::Store::alert_history`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub alert_id: AlertId,
    /// 1, 2, … in the order things happened.
    pub seq: u64,
    pub at: UnixTime,
    pub kind: AlertEventKind,
    /// Who did it: the user's email for an acknowledgement.
    pub actor: Option<String>,
    /// The acknowledgement's note, or the title of a queued notification.
    pub detail: Option<String>,
    /// Notifications: the contact, with its name and channel as they were
    /// (it may have been renamed or deleted since).
    pub contact_id: Option<ContactId>,
    pub contact_name: Option<String>,
    pub channel: Option<Channel>,
    /// Notifications: the delivery attempt (1-based).
    pub attempt: Option<u32>,
    /// A failed delivery: why.
    pub error: Option<String>,
    /// A failed delivery: when it is tried again (`None`: given up).
    pub retry_at: Option<UnixTime>,
}

/// Someone (or something) to notify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub account_id: AccountId,
    pub name: String,
    pub channel: Channel,
    /// The destination's stored form ([`vigil_notify::Destination::to_address`]):
    /// the bare address (an email address, a hook URL) when that is its only
    /// field, else a JSON object of the channel's fields.
    pub address: String,
    pub created_at: UnixTime,
}

impl Contact {
    /// Where this contact's notifications go.
    pub fn destination(
        &self,
    ) -> std::result::Result<vigil_notify::Destination, vigil_notify::DestinationError> {
        vigil_notify::Destination::from_address(self.channel, &self.address)
    }
}

/// Which events go to which contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRule {
    pub id: RuleId,
    pub account_id: AccountId,
    pub contact_id: ContactId,
    /// `None`: every agent of the account.
    pub agent_id: Option<AgentId>,
    /// Event kinds, sorted, without duplicates.
    pub events: Vec<String>,
    pub created_at: UnixTime,
    /// Repeat the notice of an open, unacknowledged alert this often.
    pub remind_every_minutes: Option<u32>,
    /// Notify more contacts while an alert stays unacknowledged.
    pub escalation: Vec<vigil_core::followup::EscalationStep>,
}

/// One compliance assessment: a run over the account's compliance scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub id: AssessmentId,
    pub account_id: AccountId,
    pub started_at: UnixTime,
    /// When it left [`AssessmentState::Running`].
    pub finished_at: Option<UnixTime>,
    pub state: AssessmentState,
    /// Why it failed, for [`AssessmentState::Failed`] (or a note on another end).
    pub error: Option<String>,
    /// Progress: `done` of `total` addresses or computers.
    pub total: u64,
    pub done: u64,
    /// Whether endpoints were contacted live (else answered from stored results).
    pub on_demand: bool,
    pub trigger: AssessmentTrigger,
    /// While running: the endpoints per status known so far (final counts
    /// come from the stored endpoints once it is done).
    pub live_counts: Option<vigil_core::compliance::StatusCounts>,
}

/// A queued notification claimed by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: OutboxId,
    pub account_id: AccountId,
    pub contact: Contact,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    /// Delivery attempts started so far, including the current one.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: UnixTime,
}

/// A notification of the outbox as its contact's history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: OutboxId,
    pub contact_id: ContactId,
    pub dedupe_key: String,
    pub payload: serde_json::Value,
    pub state: DeliveryState,
    /// Delivery attempts started so far.
    pub attempts: u32,
    /// Why the last attempt failed (kept after a later success).
    pub last_error: Option<String>,
    pub created_at: UnixTime,
    pub sent_at: Option<UnixTime>,
    /// When it is tried next ([`DeliveryState::Queued`] only).
    pub next_attempt_at: Option<UnixTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
            assert_eq!(serde_json::to_string(r).unwrap(), format!("\"{r}\""));
        }
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
            assert_eq!(serde_json::to_string(c).unwrap(), format!("\"{c}\""));
        }
        for s in AlertStatus::ALL {
            assert_eq!(s.as_str().parse::<AlertStatus>().unwrap(), *s);
        }
        for k in AlertEventKind::ALL {
            assert_eq!(k.as_str().parse::<AlertEventKind>().unwrap(), *k);
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        }
        for s in AssessmentState::ALL {
            assert_eq!(s.as_str().parse::<AssessmentState>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for t in AssessmentTrigger::ALL {
            assert_eq!(t.as_str().parse::<AssessmentTrigger>().unwrap(), *t);
            assert_eq!(serde_json::to_string(t).unwrap(), format!("\"{t}\""));
        }
        assert!(matches!(
            "root".parse::<Role>(),
            Err(StoreError::Invalid(_))
        ));
        assert!(Channel::ALL.len() >= 14);
    }

    #[test]
    fn core_enums_match_their_serde_spelling() {
        for p in [Plan::Community, Plan::Extended] {
            assert_eq!(serde_json::to_value(p).unwrap(), plan_str(p));
            assert_eq!(parse_plan(plan_str(p)).unwrap(), p);
        }
        for k in [AccountKind::Member, AccountKind::Organization] {
            assert_eq!(serde_json::to_value(k).unwrap(), account_kind_str(k));
            assert_eq!(parse_account_kind(account_kind_str(k)).unwrap(), k);
        }
        for h in [
            AgentHealth::Communicating,
            AgentHealth::NotCommunicating,
            AgentHealth::Abandoned,
        ] {
            assert_eq!(serde_json::to_value(h).unwrap(), health_str(h));
            assert_eq!(parse_health(health_str(h)).unwrap(), h);
        }
        for c in [
            Condition::unauthorized_open(8080),
            Condition::service_down(22),
            Condition::target_unreachable(),
            Condition::agent_not_communicating(),
        ] {
            assert_eq!(
                serde_json::to_value(c.kind).unwrap(),
                condition_kind_str(c.kind)
            );
            let back = parse_condition(condition_kind_str(c.kind), c.port.map(i64::from)).unwrap();
            assert_eq!(back, c);
        }
        assert!(parse_plan("gold").is_err());
        assert!(parse_health("not communicating").is_err());
        assert!(parse_condition("service_down", Some(70_000)).is_err());
        assert!(parse_condition("bogus", None).is_err());
    }

    #[test]
    fn ingested_accessors() {
        let id = ScanResultId::random();
        assert!(Ingested::New(id).is_new());
        assert!(!Ingested::Duplicate(id).is_new());
        assert_eq!(Ingested::Duplicate(id).id(), id);
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_unix() > 1_704_067_200);
    }
}
