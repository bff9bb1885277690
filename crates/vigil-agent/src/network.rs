//! A local-network sweep: the subnets of this machine's interfaces and the
//! networks the user added, swept with the scan engine; every address that
//! answered (open or closed) and every neighbour-table entry in them is a
//! device, named by reverse DNS, mDNS or NetBIOS; the gateway is asked
//! what it forwards from outside.
//!
//! Safety: the sweep covers only what the task names (its own subnets when
//! `local` is set, and the networks the server validated), never more than
//! `max_addresses` in all, and never loopback, link-local or multicast
//! addresses (see `vigil_core::lan::scope::touches_never_swept`).

use crate::gateway::{self, AuditConfig};
use crate::lan::{self, Interface};
use crate::task::unix_now;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;
use vigil_core::compliance::names::NameSource;
use vigil_core::lan::scope::touches_never_swept;
use vigil_core::lan::{network_range, MacAddr, Sighting};
use vigil_core::targets::AddrRange;
use vigil_core::{PortList, PortState};
use vigil_proto::agent::{
    GatewayReport, InterfaceReport, NetworkSweep, NetworkUpload, PortForward, ScanTask,
    SkippedNetwork,
};
use vigil_scan::names::{lookup_names, NameLookup};
use vigil_scan::{ScanConfig, Scanner, TargetSet};

/// How long the gateway audit may take.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long name lookups may wait for answers.
const NAME_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after the scan the agent waits for neighbour entries the sweep
/// put to the test: the OS checks an entry it has not confirmed lately
/// about 5 s after the sweep first used it (Linux: DELAY, then three
/// PROBEs a second apart), and confirms it or drops it.
const SETTLE: Duration = Duration::from_secs(9);

/// A neighbour-table entry as the sweep judges it: `fresh` when the OS
/// confirmed the host during the sweep (or cannot say when).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub fresh: bool,
}

/// What a sweep covers: its ranges and what it left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ranges: Vec<AddrRange>,
    /// The networks swept, as the user or the interface names them.
    pub swept: Vec<String>,
    pub skipped: Vec<SkippedNetwork>,
}

/// The ranges of a sweep, pure: own subnets first (when `local`), then the
/// added networks, each taken whole while the total stays within
/// `max_addresses` and left out (and said why) otherwise. An IPv4 subnet's
/// network and broadcast addresses are not hosts and are not swept.
pub fn plan(sweep: &NetworkSweep, subnets: &[IpNet], left_out: &[(IpNet, String)]) -> Plan {
    let mut out = Plan::default();
    for (net, reason) in left_out {
        out.skipped.push(SkippedNetwork {
            network: net.to_string(),
            reason: reason.clone(),
        });
    }
    let mut total: u128 = 0;
    let mut add = |out: &mut Plan, name: String, range: AddrRange| {
        if touches_never_swept(&range) {
            out.skipped.push(SkippedNetwork {
                network: name,
                reason: "loopback, link-local or multicast addresses are never swept".into(),
            });
            return;
        }
        let len = range.len();
        if total.saturating_add(len) > u128::from(sweep.max_addresses) {
            out.skipped.push(SkippedNetwork {
                network: name,
                reason: format!(
                    "{len} addresses would take the sweep over the account's limit of {} addresses",
                    sweep.max_addresses
                ),
            });
            return;
        }
        total += len;
        if !out.swept.contains(&name) {
            out.swept.push(name);
            out.ranges.push(range);
        }
    };
    if sweep.local {
        for net in subnets {
            add(&mut out, net.to_string(), hosts_of(*net));
        }
    }
    for n in &sweep.networks {
        match network_range(n) {
            Ok((name, range)) => add(&mut out, name, range),
            Err(e) => out.skipped.push(SkippedNetwork {
                network: n.clone(),
                reason: e.to_string(),
            }),
        }
    }
    out
}

/// The host addresses of a subnet: without the network and broadcast
/// addresses of an IPv4 subnet larger than a /31.
fn hosts_of(net: IpNet) -> AddrRange {
    match net {
        IpNet::V4(v4) if v4.prefix_len() < 31 => {
            let start = u32::from(v4.network()) + 1;
            let end = u32::from(v4.broadcast()) - 1;
            AddrRange::new(IpAddr::V4(start.into()), IpAddr::V4(end.into()))
                .unwrap_or_else(|_| AddrRange::from(net))
        }
        _ => AddrRange::from(net),
    }
}

/// Devices from the sweep's port verdicts and the neighbour table, pure:
/// an address is a device when a port answered (open or closed) or the
/// neighbour table lists it; the neighbour table (or this machine's own
/// interface) gives its MAC. Only a fresh entry makes a device of an
/// address that did not answer: the OS keeps an entry resolved for a while
/// after its host left. A MAC that answered at one address is not also a
/// device at an address where only the neighbour table still has it: that
/// is the address it held before the DHCP server moved it.
pub fn sightings(
    ranges: &[AddrRange],
    verdicts: &BTreeMap<IpAddr, Vec<(u16, PortState)>>,
    neighbours: &[Seen],
    own: &[(IpAddr, MacAddr)],
) -> Vec<Sighting> {
    let in_sweep = |ip: &IpAddr| ranges.iter().any(|r| r.contains(*ip));
    let own: Vec<Seen> = own
        .iter()
        .map(|&(ip, mac)| Seen {
            ip,
            mac,
            fresh: true,
        })
        .collect();
    let mut macs: HashMap<IpAddr, MacAddr> = HashMap::new();
    for n in own.iter().chain(neighbours) {
        if n.mac.is_unicast() {
            macs.insert(n.ip, n.mac);
        }
    }
    let mut out: BTreeMap<IpAddr, Sighting> = BTreeMap::new();
    for (ip, ports) in verdicts {
        let answered = ports
            .iter()
            .any(|(_, s)| matches!(s, PortState::Open | PortState::Closed));
        if !answered {
            continue;
        }
        let mut open: Vec<u16> = ports
            .iter()
            .filter(|(_, s)| *s == PortState::Open)
            .map(|(p, _)| *p)
            .collect();
        open.sort_unstable();
        out.insert(*ip, sighting(*ip, macs.get(ip).copied(), open));
    }
    let answering: std::collections::HashSet<MacAddr> =
        out.values().filter_map(|s| s.mac).collect();
    for n in neighbours.iter().chain(&own) {
        if n.fresh
            && in_sweep(&n.ip)
            && n.mac.is_unicast()
            && !out.contains_key(&n.ip)
            && !answering.contains(&n.mac)
        {
            out.insert(n.ip, sighting(n.ip, Some(n.mac), Vec::new()));
        }
    }
    out.into_values().collect()
}

fn sighting(ip: IpAddr, mac: Option<MacAddr>, open_ports: Vec<u16>) -> Sighting {
    Sighting {
        ip,
        mac,
        open_ports,
        name: None,
        name_source: None,
    }
}

fn report(iface: &Interface) -> InterfaceReport {
    InterfaceReport {
        name: iface.name.clone(),
        kind: iface.kind.clone(),
        mac: iface.mac.clone(),
        subnets: iface.subnets.iter().map(ToString::to_string).collect(),
        excluded: iface.excluded.clone(),
    }
}

/// This machine's own addresses with the MAC of their interface: the agent's
/// host is a device of the network too, and no neighbour table lists it.
fn own_macs(ifaces: &[Interface]) -> Vec<(IpAddr, MacAddr)> {
    ifaces
        .iter()
        .filter_map(|i| Some((i, i.mac.as_deref()?.parse::<MacAddr>().ok()?)))
        .flat_map(|(i, mac)| i.addresses.iter().map(move |a| (*a, mac)))
        .collect()
}

fn gateway_report(audit: gateway::GatewayAudit) -> GatewayReport {
    GatewayReport {
        answered: audit.answered,
        gateway: audit.gateway,
        friendly_name: audit.friendly_name,
        external_address: audit.external_address,
        forwards: audit
            .forwards
            .into_iter()
            .map(|f| PortForward {
                protocol: f.protocol,
                external_port: f.external_port,
                internal_client: f.internal_client,
                internal_port: f.internal_port,
                description: f.description,
                enabled: f.enabled,
                remote_host: f.remote_host,
                lease_secs: f.lease_secs,
                source: f.source,
            })
            .collect(),
        problems: audit.problems,
    }
}

/// Runs the sweep of `task` and returns its upload. Never fails: what
/// could not be swept is in `skipped`, a scan error is logged and leaves
/// the neighbour table as the only source.
pub async fn run(task: &ScanTask, sweep: &NetworkSweep, cfg: ScanConfig) -> NetworkUpload {
    let started_at = unix_now();
    let ifaces = lan::interfaces();
    let (subnets, left_out) = if sweep.local {
        lan::sweep_subnets(&ifaces, &sweep.include_interfaces)
    } else {
        (Vec::new(), Vec::new())
    };
    let plan = plan(sweep, &subnets, &left_out);
    let sweep_began = std::time::Instant::now();
    let verdicts = match PortList::parse(&task.ports) {
        Ok(ports) => scan(&plan.ranges, ports, cfg).await,
        Err(e) => {
            tracing::warn!(task = %task.task_id, error = %e, "network sweep ports refused; neighbour table only");
            BTreeMap::new()
        }
    };
    let neighbours = settled_neighbours(&plan.ranges, &verdicts, sweep_began).await;
    let mut devices = sightings(&plan.ranges, &verdicts, &neighbours, &own_macs(&ifaces));
    let addrs: Vec<IpAddr> = devices.iter().map(|d| d.ip).collect();
    let lookup = NameLookup {
        timeout: NAME_TIMEOUT,
        ..NameLookup::default()
    };
    let names = lookup_names(&addrs, &lookup).await;
    for d in &mut devices {
        if let Some((source, name)) = names.get(&d.ip) {
            d.name = Some(name.clone());
            d.name_source = Some(match source {
                vigil_scan::names::NameSource::Dns => NameSource::Dns,
                vigil_scan::names::NameSource::Mdns => NameSource::Mdns,
                vigil_scan::names::NameSource::Netbios => NameSource::Netbios,
            });
        }
    }
    let gateway = if sweep.audit_gateway {
        let cfg = AuditConfig {
            timeout: GATEWAY_TIMEOUT,
            gateway: ifaces.iter().find_map(|i| i.gateway),
        };
        Some(gateway_report(gateway::audit(&cfg).await))
    } else {
        None
    };
    tracing::info!(
        task = %task.task_id,
        swept = ?plan.swept,
        devices = devices.len(),
        "network sweep finished"
    );
    NetworkUpload {
        upload_id: format!("{:032x}", rand::random::<u128>()),
        task_id: task.task_id.clone(),
        started_at,
        finished_at: unix_now(),
        interfaces: ifaces.iter().map(report).collect(),
        swept: plan.swept,
        skipped: plan.skipped,
        devices,
        gateway,
    }
}

/// The neighbour table once the entries of addresses that did not answer
/// are settled (confirmed during the sweep, or no longer listed), waiting
/// at most [`SETTLE`].
async fn settled_neighbours(
    ranges: &[AddrRange],
    verdicts: &BTreeMap<IpAddr, Vec<(u16, PortState)>>,
    sweep_began: std::time::Instant,
) -> Vec<Seen> {
    let answered = |ip: &IpAddr| {
        verdicts.get(ip).is_some_and(|ports| {
            ports
                .iter()
                .any(|(_, s)| matches!(s, PortState::Open | PortState::Closed))
        })
    };
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let since = sweep_began.elapsed();
        let seen: Vec<Seen> = lan::neighbours()
            .into_iter()
            .filter_map(|n| {
                Some(Seen {
                    ip: n.ip,
                    mac: n.mac.parse().ok()?,
                    fresh: n.confirmed_ago.is_none_or(|ago| ago <= since),
                })
            })
            .collect();
        let unsettled = seen
            .iter()
            .any(|n| !n.fresh && !answered(&n.ip) && ranges.iter().any(|r| r.contains(n.ip)));
        if !unsettled || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every port verdict of the sweep, by address.
async fn scan(
    ranges: &[AddrRange],
    ports: PortList,
    cfg: ScanConfig,
) -> BTreeMap<IpAddr, Vec<(u16, PortState)>> {
    let mut out: BTreeMap<IpAddr, Vec<(u16, PortState)>> = BTreeMap::new();
    if ranges.is_empty() {
        return out;
    }
    let started = TargetSet::from_ranges(ranges.to_vec(), BTreeMap::new())
        .map_err(|e| e.to_string())
        .and_then(|targets| {
            let scanner = Scanner::new(cfg).map_err(|e| e.to_string())?;
            scanner.start(targets, ports).map_err(|e| e.to_string())
        });
    let mut scan = match started {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "network sweep could not start; neighbour table only");
            return out;
        }
    };
    while let Some(r) = scan.next().await {
        out.entry(r.addr).or_default().push((r.port, r.state));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(local: bool, networks: &[&str], max: u64) -> NetworkSweep {
        NetworkSweep {
            local,
            include_interfaces: Vec::new(),
            networks: networks.iter().map(|s| s.to_string()).collect(),
            max_addresses: max,
            audit_gateway: false,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect(s)
    }

    #[test]
    fn own_subnets_then_added_networks_within_the_limit() {
        let p = plan(
            &sweep(
                true,
                &["198.18.0.0/22", "198.51.100.200-198.51.100.209"],
                1024,
            ),
            &[net("198.51.100.0/24")],
            &[(net("fe80::/64"), "link-local".into())],
        );
        assert_eq!(
            p.swept,
            vec!["198.51.100.0/24", "198.51.100.200-198.51.100.209"]
        );
        assert_eq!(p.ranges[0].len(), 254, "no network or broadcast address");
        assert_eq!(
            p.ranges[0].start(),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        let skipped: Vec<&str> = p.skipped.iter().map(|s| s.network.as_str()).collect();
        assert_eq!(skipped, vec!["fe80::/64", "198.18.0.0/22"]);
        assert!(
            p.skipped[1].reason.contains("limit of 1024"),
            "{:?}",
            p.skipped[1]
        );
    }

    #[test]
    fn nothing_local_unless_asked_and_never_loopback() {
        let p = plan(
            &sweep(
                false,
                &[
                    "127.0.0.0/30",
                    "169.253.255.255-169.255.0.0",
                    "198.51.100.7",
                ],
                1 << 20,
            ),
            &[net("198.51.100.0/24")],
            &[],
        );
        assert_eq!(p.swept, vec!["198.51.100.7"]);
        assert_eq!(p.skipped[0].network, "127.0.0.0/30");
        // Ordinary ends, link-local inside.
        assert_eq!(p.skipped[1].network, "169.253.255.255-169.255.0.0");
    }

    #[test]
    fn devices_are_what_answered_or_the_neighbour_table_lists() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mac = |s: &str| s.parse::<MacAddr>().unwrap();
        let ranges = [AddrRange::from(net("198.51.100.0/24"))];
        let mut verdicts = BTreeMap::new();
        verdicts.insert(
            ip("198.51.100.10"),
            vec![(22, PortState::Closed), (80, PortState::Open)],
        );
        verdicts.insert(ip("198.51.100.11"), vec![(22, PortState::Filtered)]);
        verdicts.insert(ip("198.51.100.12"), vec![(22, PortState::Closed)]);
        let seen = |a: &str, m: &str, fresh: bool| Seen {
            ip: ip(a),
            mac: mac(m),
            fresh,
        };
        let neighbours = [
            seen("198.51.100.10", "00:1b:63:00:00:10", true),
            seen("198.51.100.13", "00:1b:63:00:00:13", true),
            seen("203.0.113.5", "00:1b:63:00:00:99", true), // not swept
            seen("198.51.100.14", "00:00:00:00:00:00", true),
            // Where .10 was before its address changed.
            seen("198.51.100.99", "00:1b:63:00:00:10", true),
            // Left a while ago; the OS has not dropped its entry yet.
            seen("198.51.100.15", "00:1b:63:00:00:15", false),
        ];
        let own = [(ip("198.51.100.2"), mac("02:00:00:00:00:02"))];
        let got = sightings(&ranges, &verdicts, &neighbours, &own);
        let summary: Vec<(String, Option<String>, Vec<u16>)> = got
            .iter()
            .map(|s| {
                (
                    s.ip.to_string(),
                    s.mac.map(|m| m.to_string()),
                    s.open_ports.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "198.51.100.2".into(),
                    Some("02:00:00:00:00:02".into()),
                    vec![]
                ),
                (
                    "198.51.100.10".into(),
                    Some("00:1b:63:00:00:10".into()),
                    vec![80]
                ),
                ("198.51.100.12".into(), None, vec![]),
                (
                    "198.51.100.13".into(),
                    Some("00:1b:63:00:00:13".into()),
                    vec![]
                ),
            ]
        );
    }
}
