//! A bridged test LAN: one layer-2 segment with an "agent", any number of
//! hosts with chosen MAC addresses, and optionally a gateway to a sealed
//! "internet".
//!
//! Where [`crate::TestNet`] is a routed point-to-point link (no ARP, so
//! missing hosts are silent drops), a [`TestLan`] is a real Ethernet segment:
//! the agent resolves hosts with ARP, its neighbour table shows their MACs,
//! multicast (SSDP) reaches every member, and a host can change its address
//! (DHCP renewal) or leave. That is what device inventory and gateway audits
//! need.
//!
//! Every member is its own namespace, attached by a veth pair to a Linux
//! bridge that lives in a namespace of its own:
//!
//! ```text
//!  agent ns ─eth0══╗                          ╔══lan0─ gateway ns ─wan0══wan0─ internet ns
//!  host ns  ─eth0══╬═ br0 (bridge namespace) ═╝      (forwarding on)          (no other link)
//!  host ns  ─eth0══╝
//! ```
//!
//! Same safety rule as the rest of the crate: only [`crate::ALLOWED_RANGES`]
//! addresses, nothing is routed out of the namespaces (the internet
//! namespace is a dead end), the root namespace is never touched.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Once;

use ipnet::{IpNet, Ipv4Net};

use crate::listener::{self, Hub, Listener};
use crate::ns::{self, Namespace};
use crate::{safety, TestNetError};

/// Names `ip netns add` directories live under (see `ns.rs`).
const NETNS_DIR: &str = "/run/netns";

/// Namespace name suffixes this module uses, after the `vt<pid>-<n>` base:
/// bridge, agent, host, gateway, internet.
const SUFFIXES: [char; 5] = ['b', 'a', 'h', 'g', 'i'];

static CLEAN_STALE: Once = Once::new();

/// One host on a [`TestLan`] (see [`TestLan::host`]).
pub struct LanHost {
    // Listeners first: they pin the namespace, so they close before it goes.
    listeners: Vec<Listener>,
    mac: [u8; 6],
    addr: Ipv4Addr,
    /// The veth end in the bridge namespace; deleting it removes both ends.
    dev_b: String,
    bridge_ns: String,
    ns: Namespace,
}

impl LanHost {
    /// The host's namespace (for `ip netns exec`).
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The MAC of the host's interface ([`TestLan::HOST_IF`]).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The host's current IPv4 address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
}

impl std::fmt::Debug for LanHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanHost")
            .field("ns", &self.ns.name())
            .field("mac", &mac_string(self.mac))
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for LanHost {
    fn drop(&mut self) {
        self.listeners.clear();
        // Deleting the bridge side takes the host side with it, even if
        // something (a process started with host_cmd) still pins the
        // namespace. The namespace itself is deleted when `ns` drops.
        let _ =
            ns::run(Command::new("ip").args(["-n", &self.bridge_ns, "link", "del", &self.dev_b]));
    }
}

/// The gateway of a [`TestLan`] and its dead-end upstream.
struct Gateway {
    lan_addr: Ipv4Addr,
    wan_addr: Ipv4Addr,
    gw: Namespace,
    internet: Namespace,
}

/// A bridged test LAN; see the module docs. Dropping it stops its listeners
/// and deletes every namespace it created (processes still running in them
/// are not killed: stop what you started first).
pub struct TestLan {
    hub: Option<Hub>,
    subnet: Ipv4Net,
    agent_addr: Ipv4Addr,
    // Dropped in declaration order: hosts, gateway and agent before the
    // bridge namespace they are plugged into.
    hosts: HashMap<String, LanHost>,
    gateway: Option<Gateway>,
    agent: Namespace,
    bridge: Namespace,
}

impl std::fmt::Debug for TestLan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestLan")
            .field("subnet", &self.subnet)
            .field("agent", &self.agent.name())
            .field("agent_addr", &self.agent_addr)
            .field("hosts", &self.hosts)
            .field("gateway", &self.gateway.as_ref().map(|g| g.gw.name()))
            .finish()
    }
}

impl TestLan {
    /// The LAN interface of the agent and of every host.
    pub const HOST_IF: &'static str = "eth0";
    /// The bridge, in the bridge namespace.
    pub const BRIDGE_IF: &'static str = "br0";
    /// The gateway's LAN leg (miniupnpd's `listening_ip`).
    pub const GATEWAY_LAN_IF: &'static str = "lan0";
    /// The gateway's WAN leg (miniupnpd's `ext_ifname`), and its peer's name
    /// in the internet namespace.
    pub const GATEWAY_WAN_IF: &'static str = "wan0";

    /// A bridge (in its own namespace) and an "agent" namespace attached to
    /// it by a veth, the agent side ([`TestLan::HOST_IF`]) given
    /// `agent_addr` with `subnet`'s prefix; `lo` up everywhere. Both must be
    /// inside the allowed ranges, and `agent_addr` a host address of
    /// `subnet`.
    pub fn new(subnet: Ipv4Net, agent_addr: Ipv4Addr) -> Result<TestLan, TestNetError> {
        CLEAN_STALE.call_once(remove_stale);
        let subnet = subnet.trunc();
        safety::check_net(IpNet::V4(subnet))?;
        check_member(subnet, agent_addr)?;

        let bridge = Namespace::create(format!("{}b", ns::next_base()))?;
        #[rustfmt::skip]
        bridge.ip(&[
            "link", "add", Self::BRIDGE_IF, "type", "bridge",
            "stp_state", "0", "mcast_snooping", "0",
        ])?;
        bridge.ip(&["link", "set", Self::BRIDGE_IF, "up"])?;

        let (agent, _dev_b) = plug(&bridge, 'a', Self::HOST_IF, None)?;
        let prefix = format!("{agent_addr}/{}", subnet.prefix_len());
        agent.ip(&["addr", "add", &prefix, "dev", Self::HOST_IF])?;
        Ok(TestLan {
            hub: Some(Hub::new()?),
            subnet,
            agent_addr,
            hosts: HashMap::new(),
            gateway: None,
            agent,
            bridge,
        })
    }

    /// The agent namespace (for `ip netns exec`).
    pub fn agent_ns(&self) -> &str {
        self.agent.name()
    }

    /// The agent's address, as given to [`TestLan::new`].
    pub fn agent_addr(&self) -> Ipv4Addr {
        self.agent_addr
    }

    /// The LAN's subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// A command running `program` in the agent namespace
    /// (`ip netns exec NS program`); add arguments as usual.
    pub fn agent_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.agent.exec(program)
    }

    /// Run `f` on a thread that has entered the agent namespace and return
    /// its value (sockets it opens stay there; threads and processes it
    /// spawns start there). A panic in `f` is propagated.
    pub fn in_agent<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, TestNetError> {
        self.agent.run_in(f)
    }

    /// A new host namespace `name` whose veth into the bridge
    /// ([`TestLan::HOST_IF`] inside it) has MAC `mac` and address `addr`
    /// (with the subnet's prefix). If the LAN has a gateway, the host gets a
    /// default route through it.
    pub fn add_host(
        &mut self,
        name: &str,
        mac: [u8; 6],
        addr: Ipv4Addr,
    ) -> Result<(), TestNetError> {
        if self.hosts.contains_key(name) {
            return Err(TestNetError::io(
                format!("adding host {name:?}"),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a host of that name is on the LAN",
                ),
            ));
        }
        check_member(self.subnet, addr)?;
        let (ns, dev_b) = plug(&self.bridge, 'h', Self::HOST_IF, Some(mac))?;
        let host = LanHost {
            listeners: Vec::new(),
            mac,
            addr,
            dev_b,
            bridge_ns: self.bridge.name().to_string(),
            ns,
        };
        let prefix = format!("{addr}/{}", self.subnet.prefix_len());
        host.ns
            .ip(&["addr", "add", &prefix, "dev", Self::HOST_IF])?;
        if let Some(gw) = &self.gateway {
            default_route(&host.ns, gw.lan_addr)?;
        }
        self.hosts.insert(name.to_string(), host);
        Ok(())
    }

    /// The host `name`, if it is on the LAN.
    pub fn host(&self, name: &str) -> Option<&LanHost> {
        self.hosts.get(name)
    }

    /// DHCP-style renumbering: the host's address becomes `addr`, its MAC
    /// (and its listeners, bound to 0.0.0.0) stay.
    pub fn set_host_addr(&mut self, name: &str, addr: Ipv4Addr) -> Result<(), TestNetError> {
        check_member(self.subnet, addr)?;
        let prefix_len = self.subnet.prefix_len();
        let gateway = self.gateway.as_ref().map(|g| g.lan_addr);
        let host = self.host_mut(name)?;
        let old = format!("{}/{prefix_len}", host.addr);
        let new = format!("{addr}/{prefix_len}");
        host.ns.ip(&["addr", "del", &old, "dev", Self::HOST_IF])?;
        host.ns.ip(&["addr", "add", &new, "dev", Self::HOST_IF])?;
        host.addr = addr;
        // Deleting the only address took the default route with it.
        if let Some(lan_addr) = gateway {
            default_route(&host.ns, lan_addr)?;
        }
        Ok(())
    }

    /// The host leaves the LAN: its listeners close, its veth and namespace
    /// are deleted.
    pub fn remove_host(&mut self, name: &str) -> Result<(), TestNetError> {
        self.host_mut(name)?;
        self.hosts.remove(name);
        Ok(())
    }

    /// A TCP listener in the host's namespace on `0.0.0.0:port` that accepts
    /// and closes every connection, kept until the host is removed or the
    /// LAN dropped.
    pub fn listen(&mut self, name: &str, port: u16) -> Result<(), TestNetError> {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        let hub = self.hub.as_ref().ok_or_else(|| {
            TestNetError::io(
                "listener hub",
                io::Error::other("the TestLan is being dropped"),
            )
        })?;
        let host = self.hosts.get_mut(name).ok_or_else(|| no_host(name))?;
        let sock = host
            .ns
            .run_in(move || listener::bind(addr))?
            .map_err(|e| TestNetError::io(format!("bind {addr} in {}", host.ns.name()), e))?;
        host.listeners.push(hub.add(sock, None)?);
        Ok(())
    }

    /// Like [`TestLan::in_agent`], in the host's namespace (e.g. to bind a
    /// socket there that the test serves itself).
    pub fn in_host<T: Send>(
        &self,
        name: &str,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, TestNetError> {
        self.hosts
            .get(name)
            .ok_or_else(|| no_host(name))?
            .ns
            .run_in(f)
    }

    /// A command running `program` in the host's namespace.
    ///
    /// # Panics
    /// If there is no host `name` on the LAN.
    pub fn host_cmd(&self, name: &str, program: impl AsRef<OsStr>) -> Command {
        match self.hosts.get(name) {
            Some(host) => host.ns.exec(program),
            None => panic!("TestLan::host_cmd: no host {name:?} on the LAN"),
        }
    }

    /// A gateway namespace: LAN leg ([`TestLan::GATEWAY_LAN_IF`]) into the
    /// bridge with `lan_addr`, WAN leg ([`TestLan::GATEWAY_WAN_IF`], a veth)
    /// to a separate "internet" namespace, the gateway's WAN side
    /// `wan_addr/24`, the internet side the `.1` of that /24 (`.2` if
    /// `wan_addr` is the `.1`), forwarding on in the gateway. The gateway's
    /// default route points at the internet namespace, which routes the LAN
    /// back to the gateway and has no other link: everything stays sealed.
    /// The agent and all hosts (present and future) get a default route via
    /// `lan_addr`. Returns the gateway's namespace name (to run miniupnpd
    /// there).
    pub fn add_gateway(
        &mut self,
        lan_addr: Ipv4Addr,
        wan_addr: Ipv4Addr,
    ) -> Result<String, TestNetError> {
        if self.gateway.is_some() {
            return Err(TestNetError::io(
                "adding a gateway",
                io::Error::new(io::ErrorKind::AlreadyExists, "the LAN already has one"),
            ));
        }
        check_member(self.subnet, lan_addr)?;
        let wan_net = Ipv4Net::new(wan_addr, 24)
            .map_err(|e| TestNetError::InvalidSpec(e.to_string()))?
            .trunc();
        safety::check_net(IpNet::V4(wan_net))?;
        check_member(wan_net, wan_addr)?;
        let peer = internet_addr(wan_addr);

        let (gw, _dev_b) = plug(&self.bridge, 'g', Self::GATEWAY_LAN_IF, None)?;
        let lan_prefix = format!("{lan_addr}/{}", self.subnet.prefix_len());
        gw.ip(&["addr", "add", &lan_prefix, "dev", Self::GATEWAY_LAN_IF])?;

        // The internet's name shares the gateway's base: vt<pid>-<n>g / …i.
        let internet_name = format!("{}i", gw.name().trim_end_matches('g'));
        let internet = Namespace::create(internet_name)?;
        let wan = Self::GATEWAY_WAN_IF;
        #[rustfmt::skip]
        gw.ip(&["link", "add", "name", wan, "type", "veth", "peer", "name", wan, "netns", internet.name()])?;
        gw.ip(&["addr", "add", &format!("{wan_addr}/24"), "dev", wan])?;
        internet.ip(&["addr", "add", &format!("{peer}/24"), "dev", wan])?;
        gw.ip(&["link", "set", wan, "up"])?;
        internet.ip(&["link", "set", wan, "up"])?;
        gw.ip(&["route", "add", "default", "via", &peer.to_string()])?;
        #[rustfmt::skip]
        internet.ip(&["route", "add", &self.subnet.to_string(), "via", &wan_addr.to_string()])?;
        gw.run_in(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
            .map_err(|e| TestNetError::io("enabling forwarding in the gateway namespace", e))?;

        default_route(&self.agent, lan_addr)?;
        for host in self.hosts.values() {
            default_route(&host.ns, lan_addr)?;
        }
        let name = gw.name().to_string();
        self.gateway = Some(Gateway {
            lan_addr,
            wan_addr,
            gw,
            internet,
        });
        Ok(name)
    }

    /// A command running `program` in the gateway namespace.
    ///
    /// # Panics
    /// If [`TestLan::add_gateway`] has not been called.
    pub fn gateway_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.gateway_ref().gw.exec(program)
    }

    /// Like [`TestLan::in_agent`], in the gateway namespace.
    ///
    /// # Panics
    /// If [`TestLan::add_gateway`] has not been called.
    pub fn in_gateway<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, TestNetError> {
        self.gateway_ref().gw.run_in(f)
    }

    /// Like [`TestLan::in_agent`], in the internet namespace behind the
    /// gateway (e.g. to run a STUN server at [`TestLan::internet_addr`]).
    ///
    /// # Panics
    /// If [`TestLan::add_gateway`] has not been called.
    pub fn in_internet<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, TestNetError> {
        self.gateway_ref().internet.run_in(f)
    }

    /// The internet namespace's address on the gateway's WAN link, if the
    /// LAN has a gateway.
    pub fn internet_addr(&self) -> Option<Ipv4Addr> {
        self.gateway.as_ref().map(|gw| internet_addr(gw.wan_addr))
    }

    fn gateway_ref(&self) -> &Gateway {
        match &self.gateway {
            Some(gw) => gw,
            None => panic!("TestLan: add_gateway() has not been called"),
        }
    }

    fn host_mut(&mut self, name: &str) -> Result<&mut LanHost, TestNetError> {
        self.hosts.get_mut(name).ok_or_else(|| no_host(name))
    }
}

impl Drop for TestLan {
    fn drop(&mut self) {
        // Close the listeners (they pin host namespaces) and stop the accept
        // thread; the namespaces go when the fields drop.
        for host in self.hosts.values_mut() {
            host.listeners.clear();
        }
        drop(self.hub.take());
    }
}

/// A fresh namespace `vt<pid>-<n><suffix>` plugged into the bridge: a veth
/// pair with the bridge end (named like the namespace) enslaved to
/// [`TestLan::BRIDGE_IF`] and the other end `inner` inside the namespace,
/// with `mac` if given; both up. Returns the namespace and the bridge end's
/// name.
fn plug(
    bridge: &Namespace,
    suffix: char,
    inner: &str,
    mac: Option<[u8; 6]>,
) -> Result<(Namespace, String), TestNetError> {
    let name = format!("{}{suffix}", ns::next_base());
    let member = Namespace::create(name.clone())?;
    let mac = mac.map(mac_string);
    let mut args = vec![
        "link", "add", "name", &name, "type", "veth", "peer", "name", inner,
    ];
    if let Some(mac) = &mac {
        args.extend(["address", mac.as_str()]);
    }
    args.extend(["netns", member.name()]);
    bridge.ip(&args)?;
    bridge.ip(&["link", "set", &name, "master", TestLan::BRIDGE_IF, "up"])?;
    member.ip(&["link", "set", inner, "up"])?;
    Ok((member, name))
}

/// `ip route replace default via GW` in `ns`.
fn default_route(ns: &Namespace, gw: Ipv4Addr) -> Result<(), TestNetError> {
    ns.ip(&[
        "route",
        "replace",
        "default",
        "via",
        &gw.to_string(),
        "dev",
        TestLan::HOST_IF,
    ])
}

/// The internet side of a gateway's WAN link: `.1` of `wan`'s /24, or `.2`
/// if `wan` is the `.1`.
fn internet_addr(wan: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, d] = wan.octets();
    Ipv4Addr::new(a, b, c, if d == 1 { 2 } else { 1 })
}

/// `addr` is an allowed address and a usable host address of `subnet`.
fn check_member(subnet: Ipv4Net, addr: Ipv4Addr) -> Result<(), TestNetError> {
    safety::check_addr(IpAddr::V4(addr))?;
    let usable = subnet.contains(&addr)
        && (subnet.prefix_len() >= 31 || (addr != subnet.network() && addr != subnet.broadcast()));
    if usable {
        Ok(())
    } else {
        Err(TestNetError::InvalidSpec(format!(
            "{addr} is not a host address of {subnet}"
        )))
    }
}

fn no_host(name: &str) -> TestNetError {
    TestNetError::io(
        format!("host {name:?}"),
        io::Error::new(io::ErrorKind::NotFound, "no host of that name on the LAN"),
    )
}

fn mac_string(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// Delete namespaces left by earlier processes that died without running
/// their destructors: names `vt<pid>-<n>` plus one of [`SUFFIXES`], pid gone.
/// (`ns.rs` cleans up the `s`/`t` names of [`crate::TestNet`].)
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = stale_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ns::run(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// The pid in a name this module makes, `vt<pid>-<n><suffix>`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("vt")?;
    let rest = rest.strip_suffix(SUFFIXES)?;
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn members() {
        let lan = net("198.51.100.0/24");
        assert!(check_member(lan, "198.51.100.10".parse().unwrap()).is_ok());
        assert!(check_member(lan, "198.51.100.0".parse().unwrap()).is_err());
        assert!(check_member(lan, "198.51.100.255".parse().unwrap()).is_err());
        assert!(check_member(lan, "203.0.113.5".parse().unwrap()).is_err());
        assert!(check_member(net("10.0.0.0/8"), "10.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            internet_addr("203.0.113.2".parse().unwrap()),
            Ipv4Addr::new(203, 0, 113, 1)
        );
        assert_eq!(
            internet_addr("203.0.113.1".parse().unwrap()),
            Ipv4Addr::new(203, 0, 113, 2)
        );
        assert_eq!(mac_string([2, 0, 0, 0xab, 0, 1]), "02:00:00:ab:00:01");
        assert_eq!(stale_pid("vt12-3h"), Some(12));
        assert_eq!(stale_pid("vt12-3s"), None);
        assert_eq!(stale_pid("vtx-3b"), None);
    }
}
