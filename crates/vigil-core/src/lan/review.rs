//! How one device of a location looks under the location's policy and
//! history ([`review`]): whether it is *new*, and which of its open ports
//! are unauthorized; and the filters of a device list ([`DeviceFilter`]).
//!
//! *New* means: it joined after the location's first sweep (the baseline,
//! whose devices are not new) and nobody has approved it yet. It joined
//! later when the server raised a *new device* alert for it that is still
//! open (the server decides by the order sweeps arrive in), or when it was
//! first seen after the first sweep was stored (which also covers sweeps
//! whose alerts were not raised, e.g. while the scan was off). An
//! unauthorized port is an open
//! port outside [`authorized_ports`]; a device whose ports nothing judges
//! (unreviewed, under *report only*) has none.

use super::inventory::Device;
use super::policy::{authorized_ports, DeviceKind, UnreviewedDevices};
use crate::ports::PortList;

/// What the policy and the location's history say of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Joined after the location's first sweep and not approved yet.
    pub new: bool,
    /// The ports it may have open; `None`: nothing about its ports alerts.
    pub authorized: Option<PortList>,
    /// Its open ports (as the latest sweep that saw it found them) that
    /// are not authorized, in order.
    pub unauthorized: Vec<u16>,
}

impl Review {
    /// Whether `port` may be open: `None` when nothing judges its ports.
    pub fn allows(&self, port: u16) -> Option<bool> {
        self.authorized.as_ref().map(|a| a.contains(port))
    }
}

/// When a location's devices arrived, as far as a device's review needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arrival {
    /// When the location's first sweep was stored (`None`: none yet).
    pub baseline: Option<i64>,
    /// The device has an open *new device* alert.
    pub alerted: bool,
}

/// `device` under the policy's device `kinds` and `unreviewed` default,
/// arrived as `arrival` says.
pub fn review(
    device: &Device,
    kinds: &[DeviceKind],
    unreviewed: UnreviewedDevices,
    arrival: Arrival,
) -> Review {
    let joined_later = arrival.alerted || arrival.baseline.is_some_and(|b| device.first_seen > b);
    let authorized = authorized_ports(device, kinds, unreviewed);
    let unauthorized = match &authorized {
        Some(list) => device
            .open_ports
            .iter()
            .copied()
            .filter(|p| !list.contains(*p))
            .collect(),
        None => Vec::new(),
    };
    Review {
        new: !device.approved && joined_later,
        authorized,
        unauthorized,
    }
}

/// Which devices a list shows; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Seen by the latest sweep (`true`) or missed by it (`false`).
    pub present: Option<bool>,
    /// The vendor contains this, case-insensitive (a device without a
    /// vendor never matches).
    pub vendor: Option<String>,
    /// New ([`Review::new`]) or not.
    pub new: Option<bool>,
    /// Approved (reviewed) or not.
    pub approved: Option<bool>,
    /// Present with an open port the policy does not authorize (what
    /// alerts now), or not.
    pub unauthorized: Option<bool>,
}

impl DeviceFilter {
    /// Whether `device`, reviewed as `review`, is listed.
    pub fn matches(&self, device: &Device, review: &Review) -> bool {
        let exposed = device.present && !review.unauthorized.is_empty();
        let vendor_ok = match self.vendor.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(want) => device
                .vendor
                .as_deref()
                .is_some_and(|v| v.to_lowercase().contains(&want.to_lowercase())),
        };
        self.present.is_none_or(|p| device.present == p)
            && self.new.is_none_or(|n| review.new == n)
            && self.approved.is_none_or(|a| device.approved == a)
            && self.unauthorized.is_none_or(|u| exposed == u)
            && vendor_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(approved: bool, first_seen: i64, ports: &[u16], present: bool) -> Device {
        Device {
            id: "d".into(),
            mac: None,
            vendor: Some("Hewlett Packard".into()),
            addresses: vec!["198.51.100.10".parse().unwrap()],
            name: None,
            name_source: None,
            first_seen,
            last_seen: first_seen,
            open_ports: ports.to_vec(),
            present,
            approved,
            kind: None,
            authorized: None,
            monitored: false,
        }
    }

    fn ports(s: &str) -> PortList {
        PortList::parse(s).unwrap()
    }

    #[test]
    fn new_means_after_the_baseline_and_not_approved() {
        let alert = UnreviewedDevices::OpenPortsAlert;
        // (approved, first seen, baseline, alerted, new)
        let cases = [
            (false, 100, Some(100), false, false), // in the baseline sweep
            (false, 101, Some(100), false, true),
            (true, 101, Some(100), false, false),
            (false, 100, None, false, false),
            (false, 99, Some(100), false, false),
            // A later sweep stored in the baseline's second: the alert says.
            (false, 100, Some(100), true, true),
            (true, 100, Some(100), true, false),
        ];
        for (approved, first, baseline, alerted, new) in cases {
            let d = device(approved, first, &[], true);
            let arrival = Arrival { baseline, alerted };
            assert_eq!(
                review(&d, &[], alert, arrival).new,
                new,
                "{approved} {first} {arrival:?}"
            );
        }
    }

    #[test]
    fn unauthorized_ports_follow_the_devices_policy() {
        let kinds = [DeviceKind {
            name: "printer".into(),
            authorized: ports("80,631"),
        }];
        let alert = UnreviewedDevices::OpenPortsAlert;
        let quiet = UnreviewedDevices::ReportOnly;
        let mut d = device(false, 0, &[22, 80, 631], true);
        let r = review(&d, &kinds, alert, Arrival::default());
        assert_eq!(r.unauthorized, vec![22, 80, 631]);
        assert_eq!(r.allows(80), Some(false));
        let r = review(&d, &kinds, quiet, Arrival::default());
        assert_eq!((r.unauthorized.len(), r.allows(22)), (0, None));
        d.kind = Some("Printer".into());
        let r = review(&d, &kinds, quiet, Arrival::default());
        assert_eq!(r.unauthorized, vec![22]);
        assert_eq!((r.allows(631), r.allows(22)), (Some(true), Some(false)));
        d.authorized = Some(ports("22,80,631"));
        assert!(review(&d, &kinds, alert, Arrival::default())
            .unauthorized
            .is_empty());
    }

    #[test]
    fn filters_combine() {
        let alert = UnreviewedDevices::OpenPortsAlert;
        let new_exposed = device(false, 200, &[23], true);
        let old_quiet = {
            let mut d = device(true, 100, &[443], true);
            d.authorized = Some(ports("443"));
            d.vendor = Some("Raspberry Pi Foundation".into());
            d
        };
        let gone_exposed = device(false, 100, &[23], false);
        let devices = [&new_exposed, &old_quiet, &gone_exposed];
        let shown = |f: &DeviceFilter| -> Vec<usize> {
            devices
                .iter()
                .enumerate()
                .filter(|(_, d)| {
                    let arrival = Arrival {
                        baseline: Some(100),
                        alerted: false,
                    };
                    f.matches(d, &review(d, &[], alert, arrival))
                })
                .map(|(i, _)| i)
                .collect()
        };
        let cases: Vec<(DeviceFilter, Vec<usize>)> = vec![
            (DeviceFilter::default(), vec![0, 1, 2]),
            (
                DeviceFilter {
                    new: Some(true),
                    ..Default::default()
                },
                vec![0],
            ),
            (
                DeviceFilter {
                    approved: Some(false),
                    ..Default::default()
                },
                vec![0, 2],
            ),
            (
                DeviceFilter {
                    unauthorized: Some(true),
                    ..Default::default()
                },
                vec![0], // the gone one exposes nothing now
            ),
            (
                DeviceFilter {
                    unauthorized: Some(false),
                    ..Default::default()
                },
                vec![1, 2],
            ),
            (
                DeviceFilter {
                    vendor: Some("  pi FOUND".into()),
                    ..Default::default()
                },
                vec![1],
            ),
            (
                DeviceFilter {
                    vendor: Some(" ".into()),
                    present: Some(false),
                    ..Default::default()
                },
                vec![2],
            ),
            (
                DeviceFilter {
                    approved: Some(false),
                    present: Some(true),
                    new: Some(false),
                    ..Default::default()
                },
                vec![],
            ),
        ];
        for (f, want) in cases {
            assert_eq!(shown(&f), want, "{f:?}");
        }
    }
}
