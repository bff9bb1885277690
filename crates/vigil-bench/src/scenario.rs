//! The benchmark scenarios: a test network, its listeners and filters, and
//! the ground truth of which ports are open.

use anyhow::{Context, Result};
use ipnet::IpNet;
use rand::{seq::SliceRandom, Rng, SeedableRng};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use vigil_testnet::{Listener, NetSpec, TestNet};

/// A built scenario; dropping it tears the network down.
pub struct Scenario {
    pub name: &'static str,
    /// Target specification as every tool accepts it (address or CIDR).
    pub target: String,
    /// Port specification: `Ports::All`, a range, or one port.
    pub ports: Ports,
    /// The ground truth.
    pub open: OpenSet,
    pub net: TestNet,
    _listeners: Vec<Listener>,
}

/// The open `(address, port)` pairs.
pub type OpenSet = BTreeSet<(IpAddr, u16)>;

#[derive(Debug, Clone, Copy)]
pub enum Ports {
    Range(u16, u16),
    One(u16),
}

/// Names accepted by `--only`.
pub const NAMES: [&str; 4] = [
    "full-range",
    "latency-filtered",
    "sweep-16",
    "silent-full-range",
];

pub fn build(name: &str, seed: u64) -> Result<Scenario> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    match name {
        "full-range" => full_range(&mut rng),
        "latency-filtered" => latency_filtered(&mut rng),
        "sweep-16" => sweep_16(&mut rng),
        "silent-full-range" => silent_full_range(),
        other => anyhow::bail!("unknown scenario {other:?}; known: {}", NAMES.join(", ")),
    }
}

const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

/// All 65535 ports of one host on a clean link (0 ms RTT); 20 listen, the
/// rest refuse.
fn full_range(rng: &mut impl Rng) -> Result<Scenario> {
    let net = TestNet::new(NetSpec::default())?;
    net.add_host(HOST)?;
    let mut ports: Vec<u16> = (1..=u16::MAX).collect();
    ports.shuffle(rng);
    let (listeners, open) = listen_on(&net, HOST, &ports[..20])?;
    Ok(Scenario {
        name: "65535 ports, 1 host, 0 ms RTT",
        target: HOST.to_string(),
        ports: Ports::Range(1, u16::MAX),
        open,
        net,
        _listeners: listeners,
    })
}

/// All 65535 ports of one address that drops every TCP packet (what most
/// home routers and firewalls do to an outside scan): every port filtered,
/// so the time is all timeouts, retries and probe rate.
fn silent_full_range() -> Result<Scenario> {
    let net = TestNet::new(NetSpec::default())?;
    net.add_host(HOST)?;
    net.filter_host(HOST)?;
    Ok(Scenario {
        name: "65535 ports, 1 silent address (drops everything), 0 ms RTT",
        target: HOST.to_string(),
        ports: Ports::Range(1, u16::MAX),
        open: OpenSet::new(),
        net,
        _listeners: Vec::new(),
    })
}

/// Ports 1–1000 of one host at 50 ms RTT: 10 listen, 500 are dropped by the
/// firewall (filtered), the rest refuse.
fn latency_filtered(rng: &mut impl Rng) -> Result<Scenario> {
    let net = TestNet::new(NetSpec {
        rtt: Duration::from_millis(50),
        loss: 0.0,
    })?;
    net.add_host(HOST)?;
    let mut ports: Vec<u16> = (1..=1000).collect();
    ports.shuffle(rng);
    let (listeners, open) = listen_on(&net, HOST, &ports[..10])?;
    for &p in &ports[10..510] {
        net.filter_port(HOST, p)?;
    }
    Ok(Scenario {
        name: "1000 ports, 1 host, 50 ms RTT, 500 filtered",
        target: HOST.to_string(),
        ports: Ports::Range(1, 1000),
        open,
        net,
        _listeners: listeners,
    })
}

/// Port 80 on 198.19.0.0/16: 300 hosts exist (200 listen, 100 refuse), the
/// other 65236 addresses silently drop every packet like hosts that are down.
fn sweep_16(rng: &mut impl Rng) -> Result<Scenario> {
    let range: IpNet = "198.19.0.0/16".parse().context("range")?;
    let net = TestNet::new(NetSpec::default())?;
    net.route_range(range)?;
    let mut hosts: Vec<IpAddr> = range.hosts().collect();
    hosts.shuffle(rng);
    hosts.truncate(300);
    let mut listeners = Vec::new();
    let mut open = BTreeSet::new();
    for (i, &h) in hosts.iter().enumerate() {
        net.add_host(h)?;
        if i < 200 {
            let (mut l, o) = listen_on(&net, h, &[80])?;
            listeners.append(&mut l);
            open.extend(o);
        }
    }
    Ok(Scenario {
        name: "port 80 on a routed /16, 300 hosts up",
        target: range.to_string(),
        ports: Ports::One(80),
        open,
        net,
        _listeners: listeners,
    })
}

fn listen_on(net: &TestNet, host: IpAddr, ports: &[u16]) -> Result<(Vec<Listener>, OpenSet)> {
    let mut listeners = Vec::new();
    for &p in ports {
        listeners.push(net.listen(SocketAddr::new(host, p), None)?);
    }
    let open = ports.iter().map(|&p| (host, p)).collect();
    Ok((listeners, open))
}
