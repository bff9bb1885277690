//! Which ports a device of the location's network may have open, and
//! which of its changes alert.
//!
//! A device's own list (set when a user approves it: what it has open
//! then) wins; otherwise its kind's list from the policy ("printers may
//! have 80, 443, 631, 9100"); otherwise, for a device nobody reviewed, the
//! policy's default: every open port is unauthorized, or report only.
//! Device alerts reuse the security scan's conditions on a target of their
//! own ([`device_target`]): *unauthorized port open* on the device, and
//! *target unreachable* when a monitored device is gone. The gateway's
//! port forwards are the target [`forward_target`] of each protocol: a
//! forward whose outside port the policy does not authorize is an
//! *unauthorized port open* there.

use super::inventory::Device;
use super::mac::MacAddr;
use crate::ports::PortList;
use serde::{Deserialize, Serialize};

/// What the alerts say of devices nobody has reviewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreviewedDevices {
    /// Any open port of an unreviewed device is unauthorized.
    #[default]
    OpenPortsAlert,
    /// Unreviewed devices are listed, never alerted on.
    ReportOnly,
}

impl UnreviewedDevices {
    pub fn as_str(self) -> &'static str {
        match self {
            UnreviewedDevices::OpenPortsAlert => "open_ports_alert",
            UnreviewedDevices::ReportOnly => "report_only",
        }
    }
}

/// The ports devices of one kind may have open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceKind {
    /// e.g. `printer`, compared without case.
    pub name: String,
    #[serde(with = "crate::policy::port_list_serde")]
    pub authorized: PortList,
}

/// The ports `device` may have open; `None`: nothing about its ports
/// alerts (an unreviewed device under [`UnreviewedDevices::ReportOnly`]).
pub fn authorized_ports(
    device: &Device,
    kinds: &[DeviceKind],
    unreviewed: UnreviewedDevices,
) -> Option<PortList> {
    if let Some(own) = &device.authorized {
        return Some(own.clone());
    }
    if let Some(kind) = device
        .kind
        .as_deref()
        .and_then(|k| kinds.iter().find(|d| d.name.eq_ignore_ascii_case(k)))
    {
        return Some(kind.authorized.clone());
    }
    if device.approved || unreviewed == UnreviewedDevices::OpenPortsAlert {
        Some(PortList::default())
    } else {
        None
    }
}

/// The alert target of a device: `device:<mac>`, or `device:<address>` for
/// one known by its address (behind a router).
pub fn device_target(device: &Device) -> Option<String> {
    match (device.mac, device.address()) {
        (Some(mac), _) => Some(format!("{DEVICE_PREFIX}{mac}")),
        (None, Some(ip)) => Some(format!("{DEVICE_PREFIX}{ip}")),
        (None, None) => None,
    }
}

/// The alert target of the gateway's forwards of `protocol` (`tcp`, `udp`).
pub fn forward_target(protocol: &str) -> String {
    format!("{FORWARD_PREFIX}{}", protocol.to_ascii_lowercase())
}

/// The protocol (`tcp`, `udp`) of a [`forward_target`]; `None` for other
/// targets.
pub fn forward_protocol(key: &str) -> Option<&str> {
    key.strip_prefix(FORWARD_PREFIX)
}

const DEVICE_PREFIX: &str = "device:";
const FORWARD_PREFIX: &str = "forward:";

/// What an alert target of this module is, for people: `device:<mac>` →
/// `device 00:1b:63:…`; `None` for other targets.
pub fn target_label(key: &str, vendor_of: impl Fn(MacAddr) -> Option<String>) -> Option<String> {
    if let Some(id) = key.strip_prefix(DEVICE_PREFIX) {
        return Some(match id.parse::<MacAddr>().ok().and_then(&vendor_of) {
            Some(vendor) => format!("device {id} ({vendor})"),
            None => format!("device {id}"),
        });
    }
    key.strip_prefix(FORWARD_PREFIX)
        .map(|proto| format!("the gateway's {} port forwards", proto.to_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device {
            id: "d1".into(),
            mac: Some("3c:d9:2b:00:00:10".parse().unwrap()),
            vendor: None,
            addresses: vec!["198.51.100.10".parse().unwrap()],
            name: None,
            name_source: None,
            first_seen: 0,
            last_seen: 0,
            open_ports: vec![631],
            present: true,
            approved: false,
            kind: None,
            authorized: None,
            monitored: false,
        }
    }

    fn ports(s: &str) -> PortList {
        PortList::parse(s).unwrap()
    }

    #[test]
    fn own_list_then_kind_then_the_default() {
        let kinds = [DeviceKind {
            name: "Printer".into(),
            authorized: ports("80,443,631,9100"),
        }];
        let mut d = device();
        let alert = UnreviewedDevices::OpenPortsAlert;
        let quiet = UnreviewedDevices::ReportOnly;
        assert_eq!(
            authorized_ports(&d, &kinds, alert),
            Some(PortList::default())
        );
        assert_eq!(authorized_ports(&d, &kinds, quiet), None);
        d.kind = Some("printer".into());
        assert_eq!(
            authorized_ports(&d, &kinds, quiet),
            Some(ports("80,443,631,9100"))
        );
        d.authorized = Some(ports("631"));
        assert_eq!(authorized_ports(&d, &kinds, quiet), Some(ports("631")));
        let mut approved = device();
        approved.approved = true;
        assert_eq!(
            authorized_ports(&approved, &[], quiet),
            Some(PortList::default())
        );
    }

    #[test]
    fn targets_and_their_labels() {
        let mut d = device();
        let key = device_target(&d).unwrap();
        assert_eq!(key, "device:3c:d9:2b:00:00:10");
        let vendor = |_| Some("Hewlett Packard".to_string());
        assert_eq!(
            target_label(&key, vendor).as_deref(),
            Some("device 3c:d9:2b:00:00:10 (Hewlett Packard)")
        );
        d.mac = None;
        let key = device_target(&d).unwrap();
        assert_eq!(
            target_label(&key, vendor).as_deref(),
            Some("device 198.51.100.10")
        );
        assert_eq!(
            target_label(&forward_target("TCP"), vendor).as_deref(),
            Some("the gateway's TCP port forwards")
        );
        assert_eq!(target_label("agent_host", vendor), None);
    }

    #[test]
    fn kinds_and_defaults_in_json() {
        let k: DeviceKind =
            serde_json::from_str(r#"{"name":"camera","authorized":"554"}"#).unwrap();
        assert_eq!(k.authorized, ports("554"));
        assert!(
            serde_json::from_str::<DeviceKind>(r#"{"name":"x","authorized":"99999"}"#).is_err()
        );
        assert_eq!(
            serde_json::to_string(&UnreviewedDevices::ReportOnly).unwrap(),
            "\"report_only\""
        );
    }
}
