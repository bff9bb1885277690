//! The device inventory of one location, and how a sweep updates it.
//!
//! A device is known by its MAC address where the agent saw one (it is on
//! the agent's own link), so an address the DHCP server moved is the same
//! device. Behind a router (a range the user added) there is no MAC: such
//! a device is known by its address. A device first seen without a MAC
//! and later with one keeps its identity and gains the MAC.

use super::mac::MacAddr;
use crate::compliance::names::NameSource;
use crate::ports::PortList;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// One device as one sweep saw it: it answered on a port (open or
/// closed), or the neighbour table listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The ports that answered open.
    #[serde(default)]
    pub open_ports: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_source: Option<NameSource>,
}

/// A device of the location's inventory, and what its users decided about
/// it (a sweep never changes those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Stable, chosen when the device is first seen.
    pub id: String,
    pub mac: Option<MacAddr>,
    /// From the IEEE registry, by the MAC's prefix.
    pub vendor: Option<String>,
    /// The addresses of the latest sweep that saw it (IPv4 first); never empty.
    pub addresses: Vec<IpAddr>,
    pub name: Option<String>,
    pub name_source: Option<NameSource>,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Open ports in the latest sweep that saw it, sorted.
    pub open_ports: Vec<u16>,
    /// Seen by the latest sweep.
    pub present: bool,
    /// A user reviewed it (*Approve device*).
    pub approved: bool,
    /// What a user says it is, e.g. `printer`: the policy's device kinds
    /// authorize ports by kind.
    pub kind: Option<String>,
    /// Ports authorized on it; `None`: those of its kind.
    pub authorized: Option<PortList>,
    /// Its disappearance alerts (the alarm panel that must be reachable).
    pub monitored: bool,
}

impl Device {
    /// The address shown first.
    pub fn address(&self) -> Option<IpAddr> {
        self.addresses.first().copied()
    }
}

/// What a sweep changed in the inventory, by device id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryChange {
    /// Never seen before.
    Joined { id: String },
    /// Seen again at other addresses (none of the old ones).
    Moved {
        id: String,
        from: Vec<IpAddr>,
        to: Vec<IpAddr>,
    },
    /// Not seen by this sweep, seen by the one before.
    Left { id: String },
    /// Seen again after sweeps that missed it.
    Returned { id: String },
}

/// Whether a sweep saw everything it asked: only a complete sweep's
/// silence says a device left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    Complete,
    /// The OS dropped probes (see `NetworkUpload::incomplete`): devices it
    /// did not see keep their presence.
    Partial,
}

/// Updates `devices` with one complete sweep's `sightings` (see
/// [`merge_sweep`]).
pub fn merge(
    devices: &mut Vec<Device>,
    sightings: &[Sighting],
    now: i64,
    new_id: impl FnMut() -> String,
    vendor_of: impl Fn(MacAddr) -> Option<String>,
) -> Vec<InventoryChange> {
    merge_sweep(
        devices,
        sightings,
        now,
        Coverage::Complete,
        new_id,
        vendor_of,
    )
}

/// Updates `devices` with one sweep's `sightings` made at `now`. New
/// devices get an id from `new_id` and a vendor from `vendor_of` (by MAC);
/// devices not seen are kept, no longer present after a
/// [`Coverage::Complete`] sweep, unchanged after a partial one. Returns
/// what changed.
pub fn merge_sweep(
    devices: &mut Vec<Device>,
    sightings: &[Sighting],
    now: i64,
    coverage: Coverage,
    mut new_id: impl FnMut() -> String,
    vendor_of: impl Fn(MacAddr) -> Option<String>,
) -> Vec<InventoryChange> {
    let mut changes = Vec::new();
    let mut index = Index::of(devices);
    // Per device index: the sightings that matched it.
    let mut matched: Vec<Vec<&Sighting>> = vec![Vec::new(); devices.len()];
    for s in sightings {
        let mac = s.mac.filter(|m| m.is_unicast());
        let found = match mac {
            // Known by address until now, it gains its MAC.
            Some(m) => index.by_mac.get(&m).or_else(|| index.macless.get(&s.ip)),
            // Not in the neighbour table this time: most likely the device
            // that held the address.
            None => index.macless.get(&s.ip).or_else(|| index.holder.get(&s.ip)),
        }
        .copied();
        let i = match found {
            Some(i) => i,
            None => {
                let id = new_id();
                changes.push(InventoryChange::Joined { id: id.clone() });
                devices.push(Device {
                    id,
                    mac,
                    vendor: mac.and_then(&vendor_of),
                    addresses: Vec::new(),
                    name: None,
                    name_source: None,
                    first_seen: now,
                    last_seen: now,
                    open_ports: Vec::new(),
                    // Set below; a new device neither left nor returned.
                    present: true,
                    approved: false,
                    kind: None,
                    authorized: None,
                    monitored: false,
                });
                matched.push(Vec::new());
                let i = devices.len() - 1;
                match mac {
                    Some(m) => {
                        index.by_mac.insert(m, i);
                        index.holder.insert(s.ip, i);
                    }
                    None => {
                        index.macless.insert(s.ip, i);
                    }
                }
                i
            }
        };
        if devices[i].mac.is_none() {
            if let Some(m) = mac {
                devices[i].mac = Some(m);
                devices[i].vendor = vendor_of(m);
                index.macless.retain(|_, d| *d != i);
                index.by_mac.insert(m, i);
            }
        }
        matched[i].push(s);
    }
    for (device, seen) in devices.iter_mut().zip(matched) {
        if seen.is_empty() {
            if device.present && coverage == Coverage::Complete {
                device.present = false;
                changes.push(InventoryChange::Left {
                    id: device.id.clone(),
                });
            }
            continue;
        }
        let mut addresses: Vec<IpAddr> = seen.iter().map(|s| s.ip).collect();
        addresses.sort_by_key(|a| (a.is_ipv6(), *a));
        addresses.dedup();
        let new = device.addresses.is_empty();
        if !new && !device.addresses.iter().any(|a| addresses.contains(a)) {
            changes.push(InventoryChange::Moved {
                id: device.id.clone(),
                from: device.addresses.clone(),
                to: addresses.clone(),
            });
        }
        if !new && !device.present {
            changes.push(InventoryChange::Returned {
                id: device.id.clone(),
            });
        }
        let mut ports: Vec<u16> = seen
            .iter()
            .flat_map(|s| s.open_ports.iter().copied())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        if let Some(named) = seen.iter().find(|s| s.name.is_some()) {
            device.name.clone_from(&named.name);
            device.name_source = named.name_source;
        }
        device.addresses = addresses;
        device.open_ports = ports;
        device.last_seen = now;
        device.present = true;
    }
    changes
}

/// Where [`merge`] looks devices up.
struct Index {
    by_mac: HashMap<MacAddr, usize>,
    /// Devices without a MAC, by address (the first listed, if several).
    macless: HashMap<IpAddr, usize>,
    /// The device with a MAC last seen at each address.
    holder: HashMap<IpAddr, usize>,
}

impl Index {
    fn of(devices: &[Device]) -> Index {
        let mut index = Index {
            by_mac: HashMap::with_capacity(devices.len()),
            macless: HashMap::new(),
            holder: HashMap::new(),
        };
        for (i, d) in devices.iter().enumerate() {
            match d.mac {
                Some(m) => {
                    index.by_mac.entry(m).or_insert(i);
                    for a in &d.addresses {
                        let e = index.holder.entry(*a).or_insert(i);
                        if devices[*e].last_seen < d.last_seen {
                            *e = i;
                        }
                    }
                }
                None => {
                    for a in &d.addresses {
                        index.macless.entry(*a).or_insert(i);
                    }
                }
            }
        }
        index
    }
}

/// The devices of `changes` that joined, as a set of ids.
pub fn joined(changes: &[InventoryChange]) -> HashSet<&str> {
    changes
        .iter()
        .filter_map(|c| match c {
            InventoryChange::Joined { id } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().expect(s)
    }

    fn seen(ip: &str, m: Option<&str>, ports: &[u16]) -> Sighting {
        Sighting {
            ip: ip.parse().expect(ip),
            mac: m.map(mac),
            open_ports: ports.to_vec(),
            name: None,
            name_source: None,
        }
    }

    struct Ids(u32);
    impl Ids {
        fn next(&mut self) -> String {
            self.0 += 1;
            format!("d{}", self.0)
        }
    }

    fn vendor(m: MacAddr) -> Option<String> {
        (m.octets()[..3] == [0x00, 0x1b, 0x63]).then(|| "Apple, Inc.".to_string())
    }

    fn sweep(
        devices: &mut Vec<Device>,
        ids: &mut Ids,
        now: i64,
        s: &[Sighting],
    ) -> Vec<InventoryChange> {
        merge(devices, s, now, || ids.next(), vendor)
    }

    #[test]
    fn first_sweep_adds_every_device_with_its_vendor() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let changes = sweep(
            &mut inv,
            &mut ids,
            100,
            &[
                seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[80, 443]),
                seen("198.51.100.11", Some("02:00:00:00:00:02"), &[]),
                seen("198.51.100.12", None, &[22]),
            ],
        );
        assert_eq!(changes.len(), 3);
        assert_eq!(joined(&changes).len(), 3);
        assert_eq!(inv[0].vendor.as_deref(), Some("Apple, Inc."));
        assert_eq!(inv[0].open_ports, vec![80, 443]);
        assert_eq!(inv[1].vendor, None, "locally administered: no vendor");
        assert_eq!(inv[2].mac, None);
        assert!(inv.iter().all(|d| d.present && d.first_seen == 100));
    }

    #[test]
    fn a_dhcp_address_change_is_the_same_device() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let m = Some("00:1b:63:00:00:01");
        sweep(&mut inv, &mut ids, 100, &[seen("198.51.100.10", m, &[80])]);
        let changes = sweep(&mut inv, &mut ids, 200, &[seen("198.51.100.77", m, &[80])]);
        assert_eq!(
            changes,
            vec![InventoryChange::Moved {
                id: "d1".into(),
                from: vec!["198.51.100.10".parse().unwrap()],
                to: vec!["198.51.100.77".parse().unwrap()],
            }]
        );
        assert_eq!(inv.len(), 1);
        assert_eq!((inv[0].first_seen, inv[0].last_seen), (100, 200));
    }

    #[test]
    fn devices_leave_and_return() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let a = seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[]);
        let b = seen("198.51.100.11", Some("00:1b:63:00:00:02"), &[]);
        sweep(&mut inv, &mut ids, 100, &[a.clone(), b.clone()]);
        let changes = sweep(&mut inv, &mut ids, 200, std::slice::from_ref(&a));
        assert_eq!(changes, vec![InventoryChange::Left { id: "d2".into() }]);
        assert!(!inv[1].present);
        assert_eq!(inv[1].last_seen, 100, "last seen stays when it was");
        assert!(sweep(&mut inv, &mut ids, 300, std::slice::from_ref(&a)).is_empty());
        let changes = sweep(&mut inv, &mut ids, 400, &[a, b]);
        assert_eq!(changes, vec![InventoryChange::Returned { id: "d2".into() }]);
    }

    #[test]
    fn a_partial_sweep_takes_nobody_for_gone() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let a = seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[]);
        let b = seen("198.51.100.11", Some("00:1b:63:00:00:02"), &[]);
        let c = seen("198.51.100.12", Some("00:1b:63:00:00:03"), &[]);
        sweep(&mut inv, &mut ids, 100, &[a.clone(), b]);
        let changes = merge_sweep(
            &mut inv,
            &[a, c],
            200,
            Coverage::Partial,
            || ids.next(),
            |_| None,
        );
        assert_eq!(changes, vec![InventoryChange::Joined { id: "d3".into() }]);
        assert!(inv.iter().all(|d| d.present), "{inv:?}");
        assert_eq!(inv[1].last_seen, 100, "not seen, so not seen again");
    }

    #[test]
    fn a_device_known_by_address_gains_its_mac() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        sweep(
            &mut inv,
            &mut ids,
            100,
            &[seen("198.51.100.10", None, &[22])],
        );
        let changes = sweep(
            &mut inv,
            &mut ids,
            200,
            &[seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[22])],
        );
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].vendor.as_deref(), Some("Apple, Inc."));
        // Missing from the neighbour table once: still that device.
        let changes = sweep(
            &mut inv,
            &mut ids,
            300,
            &[seen("198.51.100.10", None, &[22, 80])],
        );
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!((inv.len(), inv[0].open_ports.clone()), (1, vec![22, 80]));
    }

    #[test]
    fn one_mac_with_several_addresses_is_one_device() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let m = Some("00:1b:63:00:00:01");
        sweep(
            &mut inv,
            &mut ids,
            100,
            &[
                seen("2001:db8::10", m, &[443]),
                seen("198.51.100.10", m, &[80]),
            ],
        );
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].address(), Some("198.51.100.10".parse().unwrap()));
        assert_eq!(inv[0].open_ports, vec![80, 443]);
    }

    #[test]
    fn broadcast_or_zero_macs_do_not_identify() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        sweep(
            &mut inv,
            &mut ids,
            100,
            &[
                seen("198.51.100.10", Some("00:00:00:00:00:00"), &[]),
                seen("198.51.100.11", Some("ff:ff:ff:ff:ff:ff"), &[]),
            ],
        );
        assert_eq!(inv.len(), 2);
        assert!(inv.iter().all(|d| d.mac.is_none()));
    }

    #[test]
    fn names_are_kept_until_a_new_one_is_seen() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let mut s = seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[]);
        s.name = Some("printer.lan".into());
        s.name_source = Some(NameSource::Dns);
        sweep(&mut inv, &mut ids, 100, &[s.clone()]);
        s.name = None;
        s.name_source = None;
        sweep(&mut inv, &mut ids, 200, &[s]);
        assert_eq!(inv[0].name.as_deref(), Some("printer.lan"));
        assert_eq!(inv[0].name_source, Some(NameSource::Dns));
    }

    #[test]
    fn one_sweep_seeing_an_address_with_and_without_its_mac_is_one_device() {
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let changes = sweep(
            &mut inv,
            &mut ids,
            100,
            &[
                seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[80]),
                seen("198.51.100.10", None, &[443]),
            ],
        );
        assert_eq!(joined(&changes).len(), 1);
        assert_eq!(inv.len(), 1);
        assert_eq!(inv[0].open_ports, vec![80, 443]);
    }

    #[test]
    fn large_inventories_merge_by_index() {
        // 2^16 devices known, all seen again at new addresses: one pass
        // (a linear search per sighting would be 2^32 steps).
        let (mut inv, mut ids) = (Vec::new(), Ids(0));
        let mac = |i: u32| MacAddr([0, 0x1b, 0x63, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let first: Vec<Sighting> = (0..1u32 << 16)
            .map(|i| Sighting {
                ip: IpAddr::V4((0xc612_0000 + i).into()),
                mac: Some(mac(i)),
                open_ports: Vec::new(),
                name: None,
                name_source: None,
            })
            .collect();
        sweep(&mut inv, &mut ids, 100, &first);
        let moved: Vec<Sighting> = first
            .iter()
            .map(|s| Sighting {
                ip: IpAddr::V4(
                    (u32::from(match s.ip {
                        IpAddr::V4(a) => a,
                        IpAddr::V6(_) => unreachable!(),
                    }) ^ 1)
                        .into(),
                ),
                ..s.clone()
            })
            .collect();
        let changes = sweep(&mut inv, &mut ids, 200, &moved);
        assert_eq!(inv.len(), 1 << 16);
        assert_eq!(changes.len(), 1 << 16, "every device moved, none joined");
        assert!(joined(&changes).is_empty());
    }
}
