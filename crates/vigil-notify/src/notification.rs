//! What is sent: one [`Notification`], the same for every channel.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    UnauthorizedPortOpen,
    ServiceDown,
    ServiceRecovered,
    TargetUnreachable,
    TargetReachable,
    AgentNotCommunicating,
    AgentBack,
    ScanSuspended,
    ScanDisabled,
    /// A device joined the location's network.
    NewDevice,
    /// Endpoints of a compliance assessment changed status since the
    /// previous one (one summary per assessment, about the account).
    ComplianceChanged,
    /// A maintenance window covering the agent started (only windows saved
    /// with start and end notices).
    MaintenanceStarted,
    /// A maintenance window covering the agent ended.
    MaintenanceEnded,
    /// An authorized port is served by another program than before (only
    /// policies that ask for it), or by the same one again.
    ProcessChanged,
    /// A test message sent from the console to check a contact.
    Test,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 15] = [
        EventKind::UnauthorizedPortOpen,
        EventKind::ServiceDown,
        EventKind::ServiceRecovered,
        EventKind::TargetUnreachable,
        EventKind::TargetReachable,
        EventKind::AgentNotCommunicating,
        EventKind::AgentBack,
        EventKind::ScanSuspended,
        EventKind::ScanDisabled,
        EventKind::NewDevice,
        EventKind::ComplianceChanged,
        EventKind::MaintenanceStarted,
        EventKind::MaintenanceEnded,
        EventKind::ProcessChanged,
        EventKind::Test,
    ];

    /// The wire name (`unauthorized_port_open`, ...), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UnauthorizedPortOpen => "unauthorized_port_open",
            EventKind::ServiceDown => "service_down",
            EventKind::ServiceRecovered => "service_recovered",
            EventKind::TargetUnreachable => "target_unreachable",
            EventKind::TargetReachable => "target_reachable",
            EventKind::AgentNotCommunicating => "agent_not_communicating",
            EventKind::AgentBack => "agent_back",
            EventKind::ScanSuspended => "scan_suspended",
            EventKind::ScanDisabled => "scan_disabled",
            EventKind::NewDevice => "new_device",
            EventKind::ComplianceChanged => "compliance_changed",
            EventKind::MaintenanceStarted => "maintenance_started",
            EventKind::MaintenanceEnded => "maintenance_ended",
            EventKind::ProcessChanged => "process_changed",
            EventKind::Test => "test",
        }
    }

    /// A short label for people ("Unauthorized port open").
    pub fn label(self) -> &'static str {
        match self {
            EventKind::UnauthorizedPortOpen => "Unauthorized port open",
            EventKind::ServiceDown => "Service down",
            EventKind::ServiceRecovered => "Service recovered",
            EventKind::TargetUnreachable => "Target unreachable",
            EventKind::TargetReachable => "Target reachable again",
            EventKind::AgentNotCommunicating => "Agent not communicating",
            EventKind::AgentBack => "Agent back",
            EventKind::ScanSuspended => "Scanning suspended",
            EventKind::ScanDisabled => "Scanning disabled",
            EventKind::NewDevice => "New device on the network",
            EventKind::ComplianceChanged => "Compliance status changed",
            EventKind::MaintenanceStarted => "Maintenance started",
            EventKind::MaintenanceEnded => "Maintenance ended",
            EventKind::ProcessChanged => "Listening program changed",
            EventKind::Test => "Test notification",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad it is. `Recovery` is the all-clear that follows an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
    Recovery,
}

impl Severity {
    /// The wire name (`critical`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Recovery => "recovery",
        }
    }

    /// The tag put in front of subjects and chat messages ("CRITICAL", ..., "RECOVERED").
    pub fn tag(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
            Severity::Recovery => "RECOVERED",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When it happened: an RFC 3339 string (kept as given) or Unix seconds.
///
/// Serialized untagged, so both `"2026-05-01T12:00:00Z"` and `1777636800` read back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OccurredAt {
    Unix(i64),
    Rfc3339(String),
}

impl OccurredAt {
    /// RFC 3339 in UTC for Unix seconds (`2026-05-01T12:00:00Z`), the string as given otherwise.
    pub fn to_rfc3339(&self) -> String {
        match self {
            OccurredAt::Rfc3339(s) => s.clone(),
            OccurredAt::Unix(secs) => unix_to_rfc3339(*secs),
        }
    }
}

impl fmt::Display for OccurredAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl From<i64> for OccurredAt {
    fn from(secs: i64) -> Self {
        OccurredAt::Unix(secs)
    }
}

impl From<String> for OccurredAt {
    fn from(s: String) -> Self {
        OccurredAt::Rfc3339(s)
    }
}

impl From<&str> for OccurredAt {
    fn from(s: &str) -> Self {
        OccurredAt::Rfc3339(s.to_owned())
    }
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(crate) fn unix_to_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One notification, rendered the same way for every contact it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub event: EventKind,
    pub severity: Severity,
    /// The account (tenant) the agent belongs to.
    pub account: String,
    pub agent_name: String,
    /// Read from a JSON string or integer, always written as a string.
    #[serde(deserialize_with = "string_or_integer")]
    pub agent_id: String,
    /// The scanned host or address, when the event is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The TCP port, when the event is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub occurred_at: OccurredAt,
    /// One short line for people ("Port 23/tcp open on 203.0.113.7").
    pub title: String,
    /// A few lines of explanation and what to do.
    pub details: String,
    /// Stable for one condition (alert and recovery share it): receivers group or dedupe on it.
    pub dedupe_key: String,
    /// A link to the condition in the web console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// This notification's delivery to one contact: the same on every
    /// retry, different for each contact. Delivery is at least once (a
    /// sender that dies after sending but before recording it sends again),
    /// so receivers drop a repeat by it: it is the webhook's
    /// `Idempotency-Key` header and the email's `Message-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// Acknowledges the alert without logging in: a signed link for this
    /// contact that expires (a day) and works once. Only on notices of an
    /// open alert when the server knows its console URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_url: Option<String>,
}

fn string_or_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Signed(i64),
        Unsigned(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(s) => s,
        Id::Signed(n) => n.to_string(),
        Id::Unsigned(n) => n.to_string(),
    })
}

impl Notification {
    /// `target:port`, `target`, `port N`, or `None`.
    pub fn location(&self) -> Option<String> {
        match (&self.target, self.port) {
            (Some(t), Some(p)) if t.contains(':') => Some(format!("[{t}]:{p}")),
            (Some(t), Some(p)) => Some(format!("{t}:{p}")),
            (Some(t), None) => Some(t.clone()),
            (None, Some(p)) => Some(format!("port {p}")),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_format_as_utc() {
        assert_eq!(unix_to_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(unix_to_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(unix_to_rfc3339(1_777_636_800), "2026-05-01T12:00:00Z");
        assert_eq!(unix_to_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(unix_to_rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn occurred_at_reads_both_forms() {
        let a: OccurredAt = serde_json::from_str("1777636800").unwrap();
        assert_eq!(a, OccurredAt::Unix(1_777_636_800));
        assert_eq!(a.to_rfc3339(), "2026-05-01T12:00:00Z");
        let b: OccurredAt = serde_json::from_str("\"2026-05-01T14:00:00+02:00\"").unwrap();
        assert_eq!(b.to_rfc3339(), "2026-05-01T14:00:00+02:00");
        assert_eq!(serde_json::to_string(&a).unwrap(), "1777636800");
    }

    #[test]
    fn kinds_serialize_as_their_wire_names() {
        for k in EventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            let back: EventKind = serde_json::from_value(k.as_str().into()).unwrap();
            assert_eq!(back, k);
        }
        for s in [
            Severity::Critical,
            Severity::Warning,
            Severity::Info,
            Severity::Recovery,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn agent_id_reads_strings_and_integers() {
        let mut v = serde_json::to_value(crate::render::tests::sample()).unwrap();
        assert_eq!(v["agent_id"], "a1b2c3");
        v["agent_id"] = 42.into();
        let n: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(n.agent_id, "42");
    }

    #[test]
    fn location_brackets_ipv6() {
        let mut n = crate::render::tests::sample();
        assert_eq!(n.location().as_deref(), Some("203.0.113.7:23"));
        n.target = Some("2001:db8::7".into());
        assert_eq!(n.location().as_deref(), Some("[2001:db8::7]:23"));
        n.port = None;
        assert_eq!(n.location().as_deref(), Some("2001:db8::7"));
        n.target = None;
        assert_eq!(n.location(), None);
    }
}
