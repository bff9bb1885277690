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

use crate::arp::{self, ArpJob, ArpTiming};
use crate::gateway::{self, AuditConfig};
use crate::lan::{self, Interface};
use crate::sys;
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
/// How long a PTR lookup may take.
const NAME_TIMEOUT: Duration = Duration::from_secs(2);
/// How long mDNS and NetBIOS answers are awaited after the last question:
/// a responder on the LAN answers in milliseconds (a Wi-Fi client in
/// power save in a few hundred).
const NAME_REPLY_WAIT: Duration = Duration::from_millis(750);
/// How long after the scan the agent waits for neighbour entries the sweep
/// put to the test: the OS checks an entry it has not confirmed lately
/// about 5 s after the sweep first used it (Linux: DELAY, then three
/// PROBEs a second apart), and confirms it or drops it.
const SETTLE: Duration = Duration::from_secs(9);

/// The least time between the starts of two connect windows (see
/// [`connect_batches`]): an entry the probes created for an address
/// nobody holds stays until its resolution fails, 3 s on Linux (3
/// solicitations a second apart), so at most four windows' entries are in
/// the table at once (three, and the next one's while the oldest fail).
const WINDOW_SPACING: Duration = Duration::from_secs(1);

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

/// How a sweep finds the hosts of on-link IPv4 ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// By ARP where the OS lets the agent (see [`crate::arp`]), by connect
    /// probes elsewhere.
    Arp,
    /// By connect probes only (`vigil agent sweep --no-arp`), as an agent
    /// without `CAP_NET_RAW` does.
    Connect,
}

/// Runs the sweep of `task` and returns its upload. Never fails: what
/// could not be swept is in `skipped`, a scan error is logged and leaves
/// the neighbour table as the only source.
///
/// On-link IPv4 ranges are searched by ARP first ([`crate::arp`]) and only
/// the hosts that answered are probed for ports; where ARP cannot be used,
/// on-link ranges are probed in windows the neighbour table has room for
/// ([`connect_batches`]). Routed ranges need no neighbour entries and are
/// probed whole.
pub async fn run(
    task: &ScanTask,
    sweep: &NetworkSweep,
    cfg: ScanConfig,
    discovery: Discovery,
) -> NetworkUpload {
    let started_at = unix_now();
    let overflows_before = sys::neighbour_overflows();
    let ifaces = lan::interfaces();
    let (subnets, left_out) = if sweep.local {
        lan::sweep_subnets(&ifaces, &sweep.include_interfaces)
    } else {
        (Vec::new(), Vec::new())
    };
    let plan = plan(sweep, &subnets, &left_out);
    let sweep_began = std::time::Instant::now();
    let (jobs, mut connect) = match discovery {
        Discovery::Arp => arp_plan(&plan.ranges, &ifaces),
        Discovery::Connect => (Vec::new(), plan.ranges.clone()),
    };
    let mut by_arp: Vec<Seen> = Vec::new();
    let mut arp_covered: Vec<AddrRange> = Vec::new();
    for (range, job) in jobs {
        match discover(job).await {
            Ok(found) => {
                arp_covered.push(range);
                by_arp.extend(found.into_iter().map(|(ip, mac)| Seen {
                    ip: IpAddr::V4(ip),
                    mac,
                    fresh: true,
                }));
            }
            Err(e) => {
                tracing::info!(range = %range, error = %e, "ARP discovery unavailable; probing every address");
                connect.push(range);
            }
        }
    }
    // The hosts ARP found, and this machine itself (it does not ask for
    // its own address).
    let hosts: Vec<AddrRange> = by_arp
        .iter()
        .map(|n| n.ip)
        .chain(ifaces.iter().flat_map(|i| i.addresses.iter().copied()))
        .filter(|ip| arp_covered.iter().any(|r| r.contains(*ip)))
        .collect::<std::collections::BTreeSet<IpAddr>>()
        .into_iter()
        .map(AddrRange::single)
        .collect();
    let batches = connect_batches(&hosts, &connect, &ifaces, sys::neighbour_room());
    let verdicts = match PortList::parse(&task.ports) {
        Ok(ports) => {
            let mut all = BTreeMap::new();
            let mut began: Option<tokio::time::Instant> = None;
            for batch in &batches {
                if let Some(at) = began {
                    tokio::time::sleep_until(at + WINDOW_SPACING).await;
                }
                began = Some(tokio::time::Instant::now());
                all.append(&mut scan(batch, ports.clone(), cfg.clone()).await);
            }
            all
        }
        Err(e) => {
            tracing::warn!(task = %task.task_id, error = %e, "network sweep ports refused; neighbour table only");
            BTreeMap::new()
        }
    };
    let mut neighbours: Vec<Seen> = settled_neighbours(&connect, &verdicts, sweep_began)
        .await
        .into_iter()
        .filter(|n| !arp_covered.iter().any(|r| r.contains(n.ip)))
        .collect();
    neighbours.extend(by_arp);
    let mut devices = sightings(&plan.ranges, &verdicts, &neighbours, &own_macs(&ifaces));
    let addrs: Vec<IpAddr> = devices.iter().map(|d| d.ip).collect();
    let lookup = NameLookup {
        timeout: NAME_TIMEOUT,
        reply_wait: NAME_REPLY_WAIT,
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
    let incomplete = incomplete(overflows_before, sys::neighbour_overflows());
    tracing::info!(
        task = %task.task_id,
        swept = ?plan.swept,
        by_arp = arp_covered.len(),
        batches = batches.len(),
        devices = devices.len(),
        incomplete = incomplete.as_deref().unwrap_or("no"),
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
        incomplete,
    }
}

/// Runs one ARP discovery on a blocking thread.
async fn discover(job: ArpJob) -> std::io::Result<BTreeMap<std::net::Ipv4Addr, MacAddr>> {
    tokio::task::spawn_blocking(move || arp::discover(&job, ArpTiming::default()))
        .await
        .map_err(std::io::Error::other)?
}

/// Why the sweep may have missed devices, from the neighbour-table
/// overflow counters before and after it.
fn incomplete(before: Option<u64>, after: Option<u64>) -> Option<String> {
    let refused = after?.checked_sub(before?)?;
    (refused > 0).then(|| {
        format!(
            "the neighbour table was full {refused} times during the sweep, so some probes were \
             not sent and devices may be missing (raise net.ipv4.neigh.default.gc_thresh3, or \
             run the agent with CAP_NET_RAW so it finds hosts by ARP)"
        )
    })
}

/// The interface whose subnet holds all of `range` (either family), with
/// that subnet: the range is on a directly connected link.
fn on_link<'a>(range: &AddrRange, ifaces: &'a [Interface]) -> Option<(&'a Interface, IpNet)> {
    ifaces.iter().find_map(|i| {
        i.subnets
            .iter()
            .find(|s| s.contains(&range.start()) && s.contains(&range.end()))
            .map(|s| (i, *s))
    })
}

/// Splits the ranges into ARP discoveries (IPv4 ranges inside the subnet
/// of an interface with a MAC and an address there) and the rest.
pub fn arp_plan(
    ranges: &[AddrRange],
    ifaces: &[Interface],
) -> (Vec<(AddrRange, ArpJob)>, Vec<AddrRange>) {
    let mut jobs = Vec::new();
    let mut rest = Vec::new();
    for range in ranges {
        let job = on_link(range, ifaces).and_then(|(iface, subnet)| {
            let own_mac = iface
                .mac
                .as_deref()?
                .parse::<MacAddr>()
                .ok()
                .filter(|m| m.is_unicast())?;
            let own_ip = iface.addresses.iter().find_map(|a| match a {
                IpAddr::V4(v4) if subnet.contains(a) => Some(*v4),
                _ => None,
            })?;
            let targets = (0..range.len())
                .filter_map(|i| match range.nth(i) {
                    Some(IpAddr::V4(v4)) => Some(v4),
                    _ => None,
                })
                .collect();
            Some(ArpJob {
                interface: iface.name.clone(),
                own_mac,
                own_ip,
                targets,
            })
        });
        match job {
            Some(job) => jobs.push((*range, job)),
            None => rest.push(*range),
        }
    }
    (jobs, rest)
}

/// The scans of a sweep, run one after another and started at least
/// [`WINDOW_SPACING`] apart: the first takes the hosts ARP found, the
/// routed ranges and the first window of the on-link ones; each further
/// one the next window. An on-link address the connect probes go to takes
/// a neighbour-table entry until it resolves or fails (3 s), so a window
/// is a quarter of the room the table has left (`room`; 200 addresses
/// when unknown: the Linux default limit is 1,024 for the whole machine),
/// never fewer than 16.
pub fn connect_batches(
    hosts: &[AddrRange],
    connect: &[AddrRange],
    ifaces: &[Interface],
    room: Option<usize>,
) -> Vec<Vec<AddrRange>> {
    let window = room.map_or(200, |r| r / 4).max(16) as u128;
    let mut first: Vec<AddrRange> = hosts.to_vec();
    let mut windows: Vec<AddrRange> = Vec::new();
    for range in connect {
        if on_link(range, ifaces).is_none() {
            first.push(*range);
            continue;
        }
        let mut at = 0u128;
        while at < range.len() {
            let last = (at + window).min(range.len()) - 1;
            if let (Some(a), Some(b)) = (range.nth(at), range.nth(last)) {
                if let Ok(w) = AddrRange::new(a, b) {
                    windows.push(w);
                }
            }
            at = last + 1;
        }
    }
    let mut windows = windows.into_iter();
    if let Some(w) = windows.next() {
        first.push(w);
    }
    let mut out = Vec::new();
    if !first.is_empty() {
        out.push(first);
    }
    out.extend(windows.map(|w| vec![w]));
    out
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

    fn iface(name: &str, mac: Option<&str>, addrs: &[&str], subnets: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            kind: "ethernet".into(),
            mac: mac.map(str::to_string),
            subnets: subnets.iter().map(|s| net(s)).collect(),
            addresses: addrs.iter().map(|a| a.parse().expect(a)).collect(),
            gateway: None,
            excluded: None,
        }
    }

    fn range(s: &str) -> AddrRange {
        network_range(s).expect(s).1
    }

    #[test]
    fn arp_asks_on_link_ipv4_ranges_from_the_interface_that_holds_them() {
        let ifaces = [
            iface("tun0", None, &["198.18.0.1"], &["198.18.0.0/24"]),
            iface(
                "eth0",
                Some("02:5e:10:00:00:01"),
                &["2001:db8::1", "198.51.100.1"],
                &["198.51.100.0/24", "2001:db8::/120"],
            ),
        ];
        let ranges = [
            range("198.51.100.10-198.51.100.12"),
            range("198.51.100.250-198.51.101.5"), // leaves the subnet
            range("2001:db8::/124"),              // no ARP for IPv6
            range("198.18.0.0/28"),               // no MAC: no ARP
            range("203.0.113.0/30"),              // routed
        ];
        let (jobs, rest) = arp_plan(&ranges, &ifaces);
        assert_eq!(jobs.len(), 1);
        let (r, job) = &jobs[0];
        assert_eq!(*r, ranges[0]);
        assert_eq!(job.interface, "eth0");
        assert_eq!(job.own_ip.to_string(), "198.51.100.1");
        assert_eq!(job.own_mac.to_string(), "02:5e:10:00:00:01");
        let targets: Vec<String> = job.targets.iter().map(|t| t.to_string()).collect();
        assert_eq!(targets, ["198.51.100.10", "198.51.100.11", "198.51.100.12"]);
        assert_eq!(rest, ranges[1..].to_vec());
    }

    #[test]
    fn on_link_ranges_are_probed_in_windows_the_neighbour_table_has_room_for() {
        let ifaces = [iface(
            "eth0",
            Some("02:5e:10:00:00:01"),
            &["198.18.4.1"],
            &["198.18.4.0/22"],
        )];
        let hosts = [AddrRange::single("198.51.100.7".parse().expect("ip"))];
        let connect = [range("198.18.4.1-198.18.7.254"), range("203.0.113.0/24")];
        let batches = connect_batches(&hosts, &connect, &ifaces, Some(1200));
        let sizes: Vec<Vec<u128>> = batches
            .iter()
            .map(|b| b.iter().map(|r| r.len()).collect())
            .collect();
        // 1,022 on-link addresses in windows of 300; the host and the
        // routed /24 go with the first.
        assert_eq!(sizes, [vec![1, 256, 300], vec![300], vec![300], vec![122]]);
        let covered: u128 = batches.iter().flatten().map(|r| r.len()).sum();
        assert_eq!(covered, 1 + 256 + 1022);
        assert_eq!(batches[3][0].end().to_string(), "198.18.7.254");
        // Unknown room: 200 at a time; almost none: 16 at a time.
        assert_eq!(connect_batches(&[], &connect[..1], &ifaces, None).len(), 6);
        assert_eq!(
            connect_batches(&[], &connect[..1], &ifaces, Some(5)).len(),
            64
        );
        assert!(connect_batches(&[], &[], &ifaces, None).is_empty());
    }

    #[test]
    fn a_sweep_is_incomplete_when_the_table_overflowed_during_it() {
        assert_eq!(incomplete(Some(7), Some(7)), None);
        assert_eq!(incomplete(None, Some(9)), None);
        assert_eq!(incomplete(Some(9), None), None);
        let why = incomplete(Some(7), Some(19)).expect("overflowed");
        assert!(why.contains("full 12 times"), "{why}");
    }
}
