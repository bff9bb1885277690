//! The test network of the compliance benchmark: a sparse IPv4 /16 and a
//! sparse IPv6 /112 in the target namespace, their hosts (real agents of
//! the server under test, identify listeners of another server, hosts with
//! only port 135, hosts that only refuse) and the ground truth of what an
//! assessment must find.

use anyhow::{Context, Result};
use ipnet::IpNet;
use rand::{seq::SliceRandom, SeedableRng};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::watch;
use vigil_proto::identify::Responder;
use vigil_testnet::{Listener, TestNet};

/// The agents' communication port (identify), as the scope lists it.
pub const AGENT_PORT: u16 = 47760;
/// The "unreachable" port of the scope.
pub const RPC_PORT: u16 = 135;
/// The server id the identify listeners of "another server" claim.
pub const OTHER_SERVER: &str = "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";

/// What a host of the test network is, i.e. the status it must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A real `vigil agent run` enrolled with the server under test.
    Ours,
    /// An identify listener that claims [`OTHER_SERVER`].
    Theirs,
    /// Port 135 listens, no agent.
    Rpc,
    /// Every port refuses (RST): up, no agent.
    Refusing,
}

/// How many hosts of each kind a range gets.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub ours: usize,
    pub theirs: usize,
    pub rpc: usize,
    pub refusing: usize,
}

impl Mix {
    pub fn hosts(&self) -> usize {
        self.ours + self.theirs + self.rpc + self.refusing
    }
}

/// One scanned range and its ground truth.
pub struct Range {
    pub label: &'static str,
    pub net: IpNet,
    /// Every address of the range (network and broadcast included: the
    /// scope counts them).
    pub size: u64,
    pub hosts: BTreeMap<IpAddr, Role>,
}

impl Range {
    /// The hosts with a given role.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = IpAddr> + '_ {
        self.hosts
            .iter()
            .filter(move |(_, r)| **r == role)
            .map(|(a, _)| *a)
    }

    /// The expected counts per status, as the API names them.
    pub fn expected(&self) -> Counts {
        let n = |role| self.with_role(role).count() as u64;
        Counts {
            managed_here: n(Role::Ours),
            managed_elsewhere: n(Role::Theirs),
            no_agent: n(Role::Rpc) + n(Role::Refusing),
            // Silent, never seen, no PTR: no host at address.
            unreachable: 0,
            unresolved_ad: 0,
            no_host: self.size - self.hosts.len() as u64,
        }
    }

    /// The open `(address, port)` pairs among `ports`, within `sample`.
    pub fn open_in(&self, sample: &IpNet) -> std::collections::BTreeSet<(IpAddr, u16)> {
        self.hosts
            .iter()
            .filter(|(a, _)| sample.contains(*a))
            .filter_map(|(a, r)| match r {
                Role::Ours | Role::Theirs => Some((*a, AGENT_PORT)),
                Role::Rpc => Some((*a, RPC_PORT)),
                Role::Refusing => None,
            })
            .collect()
    }
}

/// Endpoint counts per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub struct Counts {
    pub managed_here: u64,
    pub managed_elsewhere: u64,
    pub no_agent: u64,
    pub unreachable: u64,
    pub unresolved_ad: u64,
    #[serde(default)]
    pub no_host: u64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} here, {} elsewhere, {} no agent, {} unreachable, {} unresolved AD, {} no host",
            self.managed_here,
            self.managed_elsewhere,
            self.no_agent,
            self.unreachable,
            self.unresolved_ad,
            self.no_host
        )
    }
}

/// Picks `mix.hosts()` addresses of `net`, spread over it at random, and
/// assigns their roles. `route` routes the range to the target namespace
/// first (the default ranges already are).
pub fn plan(
    tn: &TestNet,
    label: &'static str,
    net: IpNet,
    route: bool,
    mix: Mix,
    seed: u64,
) -> Result<Range> {
    if route {
        tn.route_range(net)
            .with_context(|| format!("routing {net}"))?;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let size: u64 = match net {
        IpNet::V4(n) => 1u64 << (32 - n.prefix_len()),
        IpNet::V6(n) => 1u64 << (128 - n.prefix_len()),
    };
    // hosts() skips network and broadcast in IPv4: fine for test hosts.
    let mut addrs: Vec<IpAddr> = net.hosts().collect();
    addrs.shuffle(&mut rng);
    addrs.truncate(mix.hosts());
    let roles = std::iter::repeat_n(Role::Ours, mix.ours)
        .chain(std::iter::repeat_n(Role::Theirs, mix.theirs))
        .chain(std::iter::repeat_n(Role::Rpc, mix.rpc))
        .chain(std::iter::repeat_n(Role::Refusing, mix.refusing));
    let hosts: BTreeMap<IpAddr, Role> = addrs.into_iter().zip(roles).collect();
    for &addr in hosts.keys() {
        tn.add_host(addr)
            .with_context(|| format!("adding host {addr}"))?;
    }
    Ok(Range {
        label,
        net,
        size,
        hosts,
    })
}

/// The listeners of the hosts that are not real agents: port 135 on the
/// RPC hosts, an identify listener claiming [`OTHER_SERVER`] on the
/// others'. Dropping it closes them all.
pub struct Listeners {
    _rpc: Vec<Listener>,
    /// Kept so the identify listeners run (they stop when it drops).
    _shutdown: watch::Sender<bool>,
    _replies: Vec<watch::Sender<Responder>>,
}

pub fn listen(tn: &TestNet, range: &Range, rt: &tokio::runtime::Runtime) -> Result<Listeners> {
    let mut rpc = Vec::new();
    for addr in range.with_role(Role::Rpc) {
        rpc.push(tn.listen(SocketAddr::new(addr, RPC_PORT), None)?);
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut replies = Vec::new();
    for (i, addr) in range.with_role(Role::Theirs).enumerate() {
        let sock_addr = SocketAddr::new(addr, AGENT_PORT);
        let sock = tn
            .in_target(move || std::net::TcpListener::bind(sock_addr))?
            .with_context(|| format!("binding {sock_addr} in the target namespace"))?;
        sock.set_nonblocking(true)?;
        // Another server's agent: its MAC could only be checked there.
        let (reply, reply_rx) = watch::channel(Responder {
            agent_id: agent_id(range.label, i),
            server_id: OTHER_SERVER.to_string(),
            version: "0.0.0-other".to_string(),
            key: None,
            hostname: None,
        });
        replies.push(reply);
        let stop = shutdown_rx.clone();
        let _guard = rt.enter();
        let listener = tokio::net::TcpListener::from_std(sock)?;
        rt.spawn(vigil_agent::identify::serve(listener, reply_rx, stop));
    }
    Ok(Listeners {
        _rpc: rpc,
        _shutdown: shutdown,
        _replies: replies,
    })
}

/// A UUID-shaped agent id for identify listener `i` of `label`.
fn agent_id(label: &str, i: usize) -> String {
    let tag = label
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31) ^ u32::from(b));
    format!("{tag:08x}-0000-4000-8000-{i:012x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Range {
        let a = |s: &str| -> IpAddr { s.parse().expect("ip") };
        Range {
            label: "test",
            net: "198.19.0.0/16".parse().expect("net"),
            size: 65_536,
            hosts: BTreeMap::from([
                (a("198.19.0.5"), Role::Ours),
                (a("198.19.0.6"), Role::Theirs),
                (a("198.19.0.7"), Role::Rpc),
                (a("198.19.200.7"), Role::Rpc),
                (a("198.19.0.8"), Role::Refusing),
            ]),
        }
    }

    #[test]
    fn expected_counts_follow_the_roles() {
        let c = range().expected();
        assert_eq!(
            c,
            Counts {
                managed_here: 1,
                managed_elsewhere: 1,
                no_agent: 3,
                unreachable: 0,
                unresolved_ad: 0,
                no_host: 65_531,
            }
        );
    }

    #[test]
    fn open_ports_of_a_sample() {
        let sample: IpNet = "198.19.0.0/22".parse().expect("net");
        let open = range().open_in(&sample);
        let a = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(
            open.into_iter().collect::<Vec<_>>(),
            [
                (a("198.19.0.5"), AGENT_PORT),
                (a("198.19.0.6"), AGENT_PORT),
                (a("198.19.0.7"), RPC_PORT),
            ]
        );
    }

    #[test]
    fn agent_ids_are_uuid_shaped_and_distinct() {
        let (x, y) = (agent_id("IPv4 /16", 1), agent_id("IPv4 /16", 2));
        assert_ne!(x, y);
        assert_eq!(x.len(), 36);
        assert_eq!(x.matches('-').count(), 4);
    }
}
