//! What the agent knows about its local network: its interfaces with the
//! subnets they are on, and the neighbour table.
//!
//! A *local network* sweep covers the agent's directly connected subnets:
//! those of its interfaces, less the ones that lead somewhere other than
//! the location's network (containers, virtual machines, VPNs) or nowhere
//! (loopback, down). [`interfaces`] says of each interface whether, and
//! why, it is left out by default ([`Interface::excluded`]);
//! [`sweep_subnets`] turns the list and the interfaces the user opted in
//! into the subnets to sweep, and the subnets it will not sweep with the
//! reason, for the console to show.
//!
//! Interfaces come from the `netdev` crate (netlink on Linux,
//! `GetAdaptersAddresses` on Windows); the neighbour table from
//! [`crate::sys::neighbours`]. On Windows an interface is named by its
//! alias (`Ethernet 2`, `vEthernet (WSL)`), the name people see and type,
//! rather than the adapter's GUID.
//!
//! # Left out by default
//!
//! The first rule that matches gives the reason:
//!
//! | interface                                   | reason                              |
//! |---------------------------------------------|-------------------------------------|
//! | loopback (`lo`, Windows' pseudo-interface)  | `loopback`                          |
//! | `docker0`                                   | `container bridge (docker0)`        |
//! | `br-` + 12 hex digits (a Docker network)    | `container bridge (Docker network)` |
//! | `podman*`                                   | `container bridge (Podman)`         |
//! | `lxcbr*`                                    | `container bridge (LXC)`            |
//! | `lxdbr*`                                    | `container bridge (LXD)`            |
//! | `cni*`                                      | `container network (CNI)`           |
//! | `flannel*`                                  | `container network (flannel)`       |
//! | `cali*`                                     | `container network (Calico)`        |
//! | `vxlan*`                                    | `overlay (VXLAN)`                   |
//! | `virbr*`                                    | `VM bridge (libvirt)`               |
//! | `veth*`                                     | `virtual (veth)`                    |
//! | `vEthernet (…)` (Windows: WSL, Hyper-V)     | `virtual (Hyper-V vEthernet)`       |
//! | `tun*`, `tap*`                              | `tunnel (tun/tap)`                  |
//! | `wg*`                                       | `VPN (WireGuard)`                   |
//! | `tailscale*`                                | `VPN (Tailscale)`                   |
//! | `zt*`                                       | `VPN (ZeroTier)`                    |
//! | any other tunnel (PPP, GRE, Teredo, …)      | `tunnel`                            |
//! | any other virtual adapter                   | `virtual`                           |
//! | administratively down, or no carrier        | `down`                              |
//! | no IP address                               | `no address`                        |
//! | link-local addresses only                   | `link-local`                        |
//!
//! A user names an interface to include it anyway: a Hyper-V host with an
//! external virtual switch, for one, has its LAN address on a `vEthernet`
//! adapter. Even then, loopback and link-local subnets (`127.0.0.0/8`,
//! `::1/128`, `169.254.0.0/16`, `fe80::/10`) are never swept, and neither
//! is an IPv6 subnet larger than a /112 (65,536 addresses): a /64 cannot be
//! swept address by address. Such subnets come back from [`sweep_subnets`]
//! in its second list, with the reason.

use crate::sys;
use ipnet::IpNet;
use netdev::interface::state::OperState;
use netdev::interface::types::InterfaceType;
use std::net::IpAddr;

pub use crate::sys::Neighbour;

/// The smallest IPv6 prefix a sweep covers: a /112 is 65,536 addresses.
const MAX_IPV6_PREFIX: u8 = 112;

/// One network interface of this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interface {
    /// `eth0`, `wlan0`; on Windows the alias (`Ethernet 2`). What a user
    /// names to include the interface in a sweep.
    pub name: String,
    /// `ethernet`, `wireless`, `loopback`, `tunnel`, `virtual` or `other`.
    pub kind: String,
    /// Lower-case colon form, `aa:bb:cc:dd:ee:ff`; `None` for links
    /// without one (loopback, tunnels).
    pub mac: Option<String>,
    /// The network of each address (`192.168.1.0/24`, not the host's
    /// address in it), each once.
    pub subnets: Vec<IpNet>,
    /// The interface's own addresses.
    pub addresses: Vec<IpAddr>,
    /// The default gateway through this interface (IPv4 first).
    pub gateway: Option<IpAddr>,
    /// Why a local-network sweep leaves the interface out unless the user
    /// names it (see the module doc); `None`: swept by default.
    pub excluded: Option<String>,
}

/// This machine's interfaces, in the order the OS lists them.
pub fn interfaces() -> Vec<Interface> {
    netdev::get_interfaces()
        .into_iter()
        .map(from_netdev)
        .collect()
}

/// The neighbour table: hosts on directly connected links that this
/// machine has heard from lately, with their MAC addresses (see
/// [`Neighbour`] for which entries are kept).
pub fn neighbours() -> Vec<Neighbour> {
    sys::neighbours()
}

/// The subnets a local-network sweep covers, and the ones it leaves out
/// with the reason.
///
/// Covered: the subnets of the interfaces that are not
/// [`excluded`](Interface::excluded), plus those of the interfaces named
/// in `include` (the user opted in), each subnet once. Left out, even when
/// included: loopback and link-local subnets, and IPv6 subnets larger than
/// a /112. The subnets of excluded interfaces that were not included are
/// in neither list: the interface's own reason covers them.
pub fn sweep_subnets(
    ifaces: &[Interface],
    include: &[String],
) -> (Vec<IpNet>, Vec<(IpNet, String)>) {
    let mut swept: Vec<IpNet> = Vec::new();
    let mut left_out: Vec<(IpNet, String)> = Vec::new();
    for iface in ifaces {
        let included = include.contains(&iface.name);
        if iface.excluded.is_some() && !included {
            continue;
        }
        for net in iface.subnets.iter().map(IpNet::trunc) {
            match never_swept(&iface.kind, net) {
                None if !swept.contains(&net) => swept.push(net),
                Some(reason) if !left_out.iter().any(|(n, _)| *n == net) => {
                    left_out.push((net, reason))
                }
                _ => {}
            }
        }
    }
    (swept, left_out)
}

/// Why `net`, on an interface of kind `kind`, is never swept.
fn never_swept(kind: &str, net: IpNet) -> Option<String> {
    if kind == "loopback" || is_loopback(&net) {
        return Some("loopback: never swept".into());
    }
    if is_link_local(&net) {
        return Some("link-local: never swept".into());
    }
    match net {
        IpNet::V6(v6) if v6.prefix_len() < MAX_IPV6_PREFIX => Some(format!(
            "too large to sweep: an IPv6 /{} has 2^{} addresses (at most a /{MAX_IPV6_PREFIX}, 65,536)",
            v6.prefix_len(),
            128 - v6.prefix_len()
        )),
        _ => None,
    }
}

fn is_loopback(net: &IpNet) -> bool {
    net.addr().is_loopback()
}

/// 169.254.0.0/16 and fe80::/10.
fn is_link_local(net: &IpNet) -> bool {
    match net.addr() {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Our view of one of netdev's interfaces.
fn from_netdev(i: netdev::Interface) -> Interface {
    // Windows names adapters by GUID; the alias is what people know.
    let name = i
        .friendly_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| i.name.clone());
    let loopback = i.is_loopback() || i.if_type == InterfaceType::Loopback;
    let kind = if loopback {
        "loopback"
    } else {
        link_kind(&name, i.if_type, i.is_point_to_point())
    };
    let mut subnets: Vec<IpNet> = Vec::new();
    let mut addresses = Vec::new();
    let nets = i.ipv4.iter().map(|&n| IpNet::V4(n));
    for net in nets.chain(i.ipv6.iter().map(|&n| IpNet::V6(n))) {
        addresses.push(net.addr());
        if !subnets.contains(&net.trunc()) {
            subnets.push(net.trunc());
        }
    }
    // Down: not brought up, or up without a carrier (a cable out).
    let up = i.is_up() && !matches!(i.oper_state, OperState::Down | OperState::LowerLayerDown);
    let gateway = i.gateway.as_ref().and_then(|g| {
        let v4 = g.ipv4.first().copied().map(IpAddr::V4);
        v4.or_else(|| g.ipv6.first().copied().map(IpAddr::V6))
    });
    Interface {
        excluded: exclusion(&name, kind, up, &subnets),
        mac: i
            .mac_addr
            .map(|m| m.octets())
            .filter(|m| *m != [0; 6])
            .map(sys::mac_text),
        kind: kind.into(),
        name,
        subnets,
        addresses,
        gateway,
    }
}

/// The kind of a link that is not loopback: by name for the links
/// containers, virtual machines and VPNs make (their OS type is often just
/// Ethernet), else by the OS's interface type.
fn link_kind(name: &str, if_type: InterfaceType, point_to_point: bool) -> &'static str {
    use InterfaceType as T;
    if let Some((kind, _)) = by_name(name) {
        return kind;
    }
    match if_type {
        T::Loopback => "loopback",
        T::Wireless80211 | T::PeerToPeerWireless | T::Wman | T::Wwan | T::Wwanpp | T::Wwanpp2 => {
            "wireless"
        }
        T::Ethernet
        | T::GigabitEthernet
        | T::FastEthernetT
        | T::FastEthernetFx
        | T::Ethernet3Megabit => "ethernet",
        T::Tunnel | T::Ppp | T::Slip => "tunnel",
        T::ProprietaryVirtual | T::Bridge => "virtual",
        _ if point_to_point => "tunnel",
        _ => "other",
    }
}

/// Links known by their name: (name prefix, kind, reason to leave out).
const NAMED_LINKS: [(&str, &str, &str); 15] = [
    ("podman", "virtual", "container bridge (Podman)"),
    ("lxcbr", "virtual", "container bridge (LXC)"),
    ("lxdbr", "virtual", "container bridge (LXD)"),
    ("cni", "virtual", "container network (CNI)"),
    ("flannel", "virtual", "container network (flannel)"),
    ("cali", "virtual", "container network (Calico)"),
    ("vxlan", "virtual", "overlay (VXLAN)"),
    ("virbr", "virtual", "VM bridge (libvirt)"),
    ("veth", "virtual", "virtual (veth)"),
    ("vEthernet", "virtual", "virtual (Hyper-V vEthernet)"),
    ("tun", "tunnel", "tunnel (tun/tap)"),
    ("tap", "tunnel", "tunnel (tun/tap)"),
    ("wg", "tunnel", "VPN (WireGuard)"),
    ("tailscale", "tunnel", "VPN (Tailscale)"),
    ("zt", "tunnel", "VPN (ZeroTier)"),
];

/// The kind and reason to leave out of a link known by its name.
fn by_name(name: &str) -> Option<(&'static str, String)> {
    if name == "docker0" {
        return Some(("virtual", "container bridge (docker0)".into()));
    }
    // Docker names a user-defined network's bridge `br-` and the first 12
    // hex digits of the network's id; OpenWrt's `br-lan` is a real LAN.
    let docker_network = name
        .strip_prefix("br-")
        .is_some_and(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    if docker_network {
        return Some(("virtual", "container bridge (Docker network)".into()));
    }
    NAMED_LINKS
        .iter()
        .find(|(prefix, ..)| name.starts_with(prefix))
        .map(|(_, kind, reason)| (*kind, (*reason).to_string()))
}

/// Why an interface is left out of a local-network sweep by default, from
/// its name, kind, state and subnets (the table in the module doc);
/// `None`: it is swept.
fn exclusion(name: &str, kind: &str, up: bool, subnets: &[IpNet]) -> Option<String> {
    if kind == "loopback" {
        return Some("loopback".into());
    }
    if let Some((_, reason)) = by_name(name) {
        return Some(reason);
    }
    if kind == "tunnel" || kind == "virtual" {
        return Some(kind.into());
    }
    if !up {
        return Some("down".into());
    }
    if subnets.is_empty() {
        return Some("no address".into());
    }
    if subnets.iter().all(is_link_local) {
        return Some("link-local".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn kinds_by_name_then_by_type() {
        use InterfaceType as T;
        let cases = [
            ("eth0", T::Ethernet, false, "ethernet"),
            ("enp3s0", T::GigabitEthernet, false, "ethernet"),
            ("wlan0", T::Wireless80211, false, "wireless"),
            ("wwan0", T::Wwan, false, "wireless"),
            ("veth1a2b3c", T::Ethernet, false, "virtual"),
            ("docker0", T::Ethernet, false, "virtual"),
            ("br-0123456789ab", T::Ethernet, false, "virtual"),
            ("br-lan", T::Ethernet, false, "ethernet"),
            ("br0", T::Ethernet, false, "ethernet"),
            ("vEthernet (WSL)", T::Ethernet, false, "virtual"),
            ("tun0", T::Unknown, true, "tunnel"),
            ("tap0", T::Ethernet, false, "tunnel"),
            ("wg0", T::Unknown, true, "tunnel"),
            ("tailscale0", T::Unknown, true, "tunnel"),
            ("ztks5abcde", T::Ethernet, false, "tunnel"),
            ("ppp0", T::Ppp, true, "tunnel"),
            (
                "Teredo Tunneling Pseudo-Interface",
                T::Tunnel,
                false,
                "tunnel",
            ),
            ("gre1", T::Unknown, true, "tunnel"),
            ("Ethernet 2", T::Ethernet, false, "ethernet"),
            ("Wi-Fi", T::Wireless80211, false, "wireless"),
            (
                "Local Area Connection* 1",
                T::ProprietaryVirtual,
                false,
                "virtual",
            ),
            ("can0", T::Can, false, "other"),
            ("lo", T::Loopback, false, "loopback"),
        ];
        for (name, if_type, ptp, want) in cases {
            assert_eq!(link_kind(name, if_type, ptp), want, "{name}");
        }
    }

    #[test]
    fn exclusions_follow_the_table() {
        let lan = nets(&["192.168.1.0/24", "fe80::/64"]);
        // name, kind, up, subnets, reason
        type Case<'a> = (&'a str, &'a str, bool, &'a [IpNet], Option<&'a str>);
        let cases: [Case; 30] = [
            ("eth0", "ethernet", true, &lan, None),
            ("wlan0", "wireless", true, &lan, None),
            ("br0", "ethernet", true, &lan, None),
            ("br-lan", "ethernet", true, &lan, None),
            ("Ethernet 2", "ethernet", true, &lan, None),
            ("enp3s0", "other", true, &lan, None),
            (
                "lo",
                "loopback",
                true,
                &nets(&["127.0.0.0/8"]),
                Some("loopback"),
            ),
            (
                "docker0",
                "virtual",
                true,
                &lan,
                Some("container bridge (docker0)"),
            ),
            // A docker0 without containers has no carrier: its name says more.
            (
                "docker0",
                "virtual",
                false,
                &lan,
                Some("container bridge (docker0)"),
            ),
            (
                "br-0123456789ab",
                "virtual",
                true,
                &lan,
                Some("container bridge (Docker network)"),
            ),
            ("br-0123456789", "ethernet", true, &lan, None),
            ("br-0123456789xy", "ethernet", true, &lan, None),
            (
                "podman0",
                "virtual",
                true,
                &lan,
                Some("container bridge (Podman)"),
            ),
            (
                "lxcbr0",
                "virtual",
                true,
                &lan,
                Some("container bridge (LXC)"),
            ),
            (
                "lxdbr0",
                "virtual",
                true,
                &lan,
                Some("container bridge (LXD)"),
            ),
            (
                "cni0",
                "virtual",
                true,
                &lan,
                Some("container network (CNI)"),
            ),
            (
                "flannel.1",
                "virtual",
                true,
                &lan,
                Some("container network (flannel)"),
            ),
            (
                "cali8d3c2b1a0f9",
                "virtual",
                true,
                &lan,
                Some("container network (Calico)"),
            ),
            (
                "vxlan.calico",
                "virtual",
                true,
                &lan,
                Some("overlay (VXLAN)"),
            ),
            ("virbr0", "virtual", true, &lan, Some("VM bridge (libvirt)")),
            ("veth9f1e2d3", "virtual", true, &lan, Some("virtual (veth)")),
            (
                "vEthernet (Default Switch)",
                "virtual",
                true,
                &lan,
                Some("virtual (Hyper-V vEthernet)"),
            ),
            ("tun0", "tunnel", true, &lan, Some("tunnel (tun/tap)")),
            ("tap100i0", "tunnel", true, &lan, Some("tunnel (tun/tap)")),
            ("wg0", "tunnel", true, &lan, Some("VPN (WireGuard)")),
            ("tailscale0", "tunnel", true, &lan, Some("VPN (Tailscale)")),
            ("ztks5abcde", "tunnel", true, &lan, Some("VPN (ZeroTier)")),
            ("ppp0", "tunnel", true, &lan, Some("tunnel")),
            ("eth1", "ethernet", false, &lan, Some("down")),
            ("eth2", "ethernet", true, &[], Some("no address")),
        ];
        for (name, kind, up, subnets, want) in cases {
            assert_eq!(
                exclusion(name, kind, up, subnets).as_deref(),
                want,
                "{name} {kind} up={up}"
            );
        }
        let link_local = nets(&["169.254.0.0/16", "fe80::/64"]);
        assert_eq!(
            exclusion("eth0", "ethernet", true, &link_local).as_deref(),
            Some("link-local")
        );
        assert_eq!(
            exclusion("Local Area Connection* 1", "virtual", true, &lan).as_deref(),
            Some("virtual")
        );
    }

    fn iface(name: &str, kind: &str, subnets: &[&str], excluded: Option<&str>) -> Interface {
        Interface {
            name: name.into(),
            kind: kind.into(),
            mac: None,
            subnets: nets(subnets),
            addresses: Vec::new(),
            gateway: None,
            excluded: excluded.map(Into::into),
        }
    }

    #[test]
    fn sweeps_what_is_not_excluded_and_what_is_included() {
        let ifaces = [
            iface(
                "lo",
                "loopback",
                &["127.0.0.0/8", "::1/128"],
                Some("loopback"),
            ),
            iface(
                "eth0",
                "ethernet",
                &[
                    "192.168.1.0/24",
                    "2001:db8:1::/64",
                    "2001:db8:2::/112",
                    "fe80::/64",
                ],
                None,
            ),
            // The same subnet on a second interface is swept once.
            iface("wlan0", "wireless", &["192.168.1.0/24", "fe80::/64"], None),
            iface(
                "docker0",
                "virtual",
                &["172.17.0.0/16"],
                Some("container bridge (docker0)"),
            ),
            iface(
                "veth1",
                "virtual",
                &["198.51.100.0/24"],
                Some("virtual (veth)"),
            ),
            iface("eth1", "ethernet", &["169.254.0.0/16"], Some("link-local")),
        ];
        let (swept, left_out) = sweep_subnets(&ifaces, &[]);
        assert_eq!(swept, nets(&["192.168.1.0/24", "2001:db8:2::/112"]));
        let left: Vec<(String, &str)> = left_out
            .iter()
            .map(|(n, why)| (n.to_string(), why.split(':').next().unwrap_or_default()))
            .collect();
        assert_eq!(
            left,
            [
                ("2001:db8:1::/64".to_string(), "too large to sweep"),
                ("fe80::/64".to_string(), "link-local"),
            ]
        );
        assert!(
            left_out[0].1.contains("2^64 addresses"),
            "{}",
            left_out[0].1
        );

        // Opted in: the veth's subnet is swept; loopback and link-local
        // never are, even when named.
        let include = ["veth1".to_string(), "lo".to_string(), "eth1".to_string()];
        let (swept, left_out) = sweep_subnets(&ifaces, &include);
        assert_eq!(
            swept,
            nets(&["192.168.1.0/24", "2001:db8:2::/112", "198.51.100.0/24"])
        );
        let never: Vec<(String, String)> = left_out
            .iter()
            .map(|(n, why)| (n.to_string(), why.clone()))
            .filter(|(_, why)| why.ends_with("never swept"))
            .collect();
        assert_eq!(
            never,
            [
                ("127.0.0.0/8", "loopback: never swept"),
                ("::1/128", "loopback: never swept"),
                ("fe80::/64", "link-local: never swept"),
                ("169.254.0.0/16", "link-local: never swept"),
            ]
            .map(|(n, w)| (n.to_string(), w.to_string()))
        );
    }

    #[test]
    fn a_loopback_interface_is_never_swept_whatever_its_addresses() {
        // Routers put service addresses on lo.
        let lo = iface("lo", "loopback", &["203.0.113.7/32"], Some("loopback"));
        let (swept, left_out) = sweep_subnets(&[lo], &["lo".into()]);
        assert!(swept.is_empty());
        assert_eq!(left_out[0].1, "loopback: never swept");
    }

    #[test]
    fn from_netdev_keeps_networks_not_hosts() {
        let mut raw = netdev::Interface::dummy();
        raw.name = "{4D36E972-E325-11CE-BFC1-08002BE10318}".into();
        raw.friendly_name = Some("Ethernet 2".into());
        raw.if_type = InterfaceType::Ethernet;
        raw.mac_addr = Some(netdev::MacAddr::new(0x02, 0x5E, 0x10, 0, 0, 0x0A));
        raw.ipv4 = vec!["198.51.100.1/24".parse().expect("v4")];
        raw.ipv6 = vec![
            "2001:db8:52::1/120".parse().expect("v6"),
            "fe80::5e:10ff:fe00:a/64".parse().expect("ll"),
        ];
        #[allow(clippy::unnecessary_cast)] // a c_int on Linux, a u32 on Windows
        {
            raw.flags = netdev::interface::flags::IFF_UP as u32;
        }
        raw.oper_state = OperState::Up;
        raw.gateway = Some(netdev::NetworkDevice {
            mac_addr: netdev::MacAddr::zero(),
            ipv4: vec!["198.51.100.254".parse().expect("gw")],
            ipv6: vec!["2001:db8:52::fe".parse().expect("gw6")],
        });
        let got = from_netdev(raw.clone());
        assert_eq!(
            got,
            Interface {
                name: "Ethernet 2".into(),
                kind: "ethernet".into(),
                mac: Some("02:5e:10:00:00:0a".into()),
                subnets: nets(&["198.51.100.0/24", "2001:db8:52::/120", "fe80::/64"]),
                addresses: ["198.51.100.1", "2001:db8:52::1", "fe80::5e:10ff:fe00:a"]
                    .map(|a| a.parse().expect("ip"))
                    .to_vec(),
                gateway: Some("198.51.100.254".parse().expect("gw")),
                excluded: None,
            }
        );

        raw.oper_state = OperState::LowerLayerDown;
        assert_eq!(from_netdev(raw.clone()).excluded.as_deref(), Some("down"));
        raw.friendly_name = None;
        raw.name = "lo".into();
        raw.if_type = InterfaceType::Loopback;
        raw.mac_addr = Some(netdev::MacAddr::zero());
        let lo = from_netdev(raw);
        assert_eq!((lo.kind.as_str(), lo.mac), ("loopback", None));
        assert_eq!(lo.excluded.as_deref(), Some("loopback"));
    }

    #[test]
    fn this_machine_has_a_loopback_interface() {
        let all = interfaces();
        let lo = all
            .iter()
            .find(|i| i.kind == "loopback")
            .unwrap_or_else(|| panic!("no loopback in {all:?}"));
        assert_eq!(lo.excluded.as_deref(), Some("loopback"));
        assert!(lo.addresses.iter().any(IpAddr::is_loopback), "{lo:?}");
    }
}
