//! The history of one device of the location's inventory: what the sweeps
//! saw change about it ("joined", "moved from 198.51.100.10 to
//! 198.51.100.77", "left", "returned"), one event per
//! [`InventoryChange`].
//!
//! The addresses of a move are kept with the event: the device's current
//! addresses say only where it is now.

use super::inventory::InventoryChange;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What a sweep saw change about a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceEventKind {
    /// Seen for the first time.
    Joined,
    /// Seen at other addresses (none of the old ones): a DHCP move.
    Moved,
    /// Missed by a sweep after the one before saw it.
    Left,
    /// Seen again after sweeps that missed it.
    Returned,
}

impl DeviceEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [DeviceEventKind; 4] = [
        DeviceEventKind::Joined,
        DeviceEventKind::Moved,
        DeviceEventKind::Left,
        DeviceEventKind::Returned,
    ];

    /// The stored and serialized spelling, e.g. `joined`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceEventKind::Joined => "joined",
            DeviceEventKind::Moved => "moved",
            DeviceEventKind::Left => "left",
            DeviceEventKind::Returned => "returned",
        }
    }

    /// The kind of a stored spelling.
    pub fn parse(s: &str) -> Option<DeviceEventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind for people, e.g. "Joined the network".
    pub fn label(self) -> &'static str {
        match self {
            DeviceEventKind::Joined => "Joined the network",
            DeviceEventKind::Moved => "Moved to another address",
            DeviceEventKind::Left => "Left the network",
            DeviceEventKind::Returned => "Returned to the network",
        }
    }
}

/// One entry of a device's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    pub device_id: String,
    /// Unix seconds: when the server stored the sweep that saw it.
    pub at: i64,
    pub kind: DeviceEventKind,
    /// A move's addresses before it (empty for other kinds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<IpAddr>,
    /// A move's addresses after it (empty for other kinds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<IpAddr>,
}

impl DeviceEvent {
    /// The event a sweep stored at `at` records for `change`.
    pub fn of(change: &InventoryChange, at: i64) -> DeviceEvent {
        let (id, kind, from, to) = match change {
            InventoryChange::Joined { id } => (id, DeviceEventKind::Joined, vec![], vec![]),
            InventoryChange::Moved { id, from, to } => {
                (id, DeviceEventKind::Moved, from.clone(), to.clone())
            }
            InventoryChange::Left { id } => (id, DeviceEventKind::Left, vec![], vec![]),
            InventoryChange::Returned { id } => (id, DeviceEventKind::Returned, vec![], vec![]),
        };
        DeviceEvent {
            device_id: id.clone(),
            at,
            kind,
            from,
            to,
        }
    }

    /// One line for people: "moved from 198.51.100.10 to 198.51.100.77".
    pub fn summary(&self) -> String {
        let list = |a: &[IpAddr]| {
            if a.is_empty() {
                "(no address)".to_string()
            } else {
                a.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match self.kind {
            DeviceEventKind::Joined => "joined the network".into(),
            DeviceEventKind::Moved => {
                format!("moved from {} to {}", list(&self.from), list(&self.to))
            }
            DeviceEventKind::Left => "not seen by the sweep: left the network".into(),
            DeviceEventKind::Returned => "seen again: returned to the network".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_change_becomes_its_event() {
        let id = || "d1".to_string();
        let cases = [
            (
                InventoryChange::Joined { id: id() },
                DeviceEventKind::Joined,
                "joined the network",
            ),
            (
                InventoryChange::Moved {
                    id: id(),
                    from: vec![ip("198.51.100.10")],
                    to: vec![ip("198.51.100.77"), ip("2001:db8::77")],
                },
                DeviceEventKind::Moved,
                "moved from 198.51.100.10 to 198.51.100.77, 2001:db8::77",
            ),
            (
                InventoryChange::Left { id: id() },
                DeviceEventKind::Left,
                "not seen by the sweep: left the network",
            ),
            (
                InventoryChange::Returned { id: id() },
                DeviceEventKind::Returned,
                "seen again: returned to the network",
            ),
        ];
        for (change, kind, summary) in cases {
            let e = DeviceEvent::of(&change, 42);
            assert_eq!((e.device_id.as_str(), e.at, e.kind), ("d1", 42, kind));
            assert_eq!(e.summary(), summary);
            assert_eq!(e.from.is_empty(), kind != DeviceEventKind::Moved);
        }
    }

    #[test]
    fn kinds_round_trip_their_spelling() {
        for k in DeviceEventKind::ALL {
            assert_eq!(DeviceEventKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(DeviceEventKind::parse("Joined"), None);
        assert_eq!(DeviceEventKind::parse(""), None);
    }

    #[test]
    fn a_move_without_addresses_still_reads() {
        let e = DeviceEvent {
            device_id: "d".into(),
            at: 0,
            kind: DeviceEventKind::Moved,
            from: vec![],
            to: vec![ip("198.51.100.1")],
        };
        assert_eq!(e.summary(), "moved from (no address) to 198.51.100.1");
        let json = serde_json::to_value(DeviceEvent::of(
            &InventoryChange::Left { id: "d".into() },
            5,
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"device_id": "d", "at": 5, "kind": "left"})
        );
    }
}
