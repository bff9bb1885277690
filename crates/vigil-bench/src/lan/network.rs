//! The LAN of the benchmark: a `vigil_testnet::TestLan` on
//! `198.18.4.0/22` with the agent at `198.18.4.1` and 50 devices spread
//! over the block at random, each with a MAC of a real vendor (IEEE
//! registry) and the ports such a device serves; the ground truth of what
//! a sweep must find.

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use rand::{seq::SliceRandom, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use vigil_testnet::TestLan;

/// The swept block: 1,024 addresses, all inside 198.18.0.0/15 (not its
/// first /22: `vigil_testnet` keeps 198.18.0.1 for `TestNet`'s scanner and
/// refuses networks that contain it).
pub const SUBNET: &str = "198.18.4.0/22";
/// The agent's own address on it.
pub const AGENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 4, 1);

/// A kind of device: its vendor's OUI (from `/usr/share/ieee-data/oui.csv`),
/// the ports it listens on (all from the sweep's port list) and whether
/// its firewall drops every IPv4 packet (it still answers ARP, as phones
/// do). The devices of the LAN take these in turn.
struct Kind {
    vendor: &'static str,
    oui: [u8; 3],
    ports: &'static [u16],
    drops: bool,
}

#[rustfmt::skip]
const KINDS: [Kind; 20] = [
    Kind { vendor: "AVM (router)", oui: [0x98, 0x9b, 0xcb], ports: &[21, 53, 80, 443], drops: false },
    Kind { vendor: "Apple (phone)", oui: [0x60, 0x8b, 0x0e], ports: &[], drops: true },
    Kind { vendor: "Brother (printer)", oui: [0x00, 0x80, 0x77], ports: &[80, 631, 9100], drops: false },
    Kind { vendor: "Intel (PC)", oui: [0xac, 0xed, 0x5c], ports: &[139, 445, 3389], drops: false },
    Kind { vendor: "Raspberry Pi", oui: [0xdc, 0xa6, 0x32], ports: &[22, 1883], drops: false },
    Kind { vendor: "Sonos (speaker)", oui: [0x54, 0x2a, 0x1b], ports: &[], drops: false },
    Kind { vendor: "Hikvision (camera)", oui: [0x44, 0x47, 0xcc], ports: &[80, 554], drops: false },
    Kind { vendor: "Synology (NAS)", oui: [0x00, 0x11, 0x32], ports: &[22, 139, 445, 5000], drops: false },
    Kind { vendor: "Samsung (phone)", oui: [0x7c, 0x89, 0x56], ports: &[], drops: true },
    Kind { vendor: "Espressif (IoT)", oui: [0x24, 0x6f, 0x28], ports: &[80], drops: false },
    Kind { vendor: "Ubiquiti (access point)", oui: [0x74, 0x83, 0xc2], ports: &[22, 443], drops: false },
    Kind { vendor: "Amazon (speaker)", oui: [0x68, 0xdb, 0xf5], ports: &[], drops: false },
    Kind { vendor: "Dell (PC)", oui: [0x98, 0xe7, 0x43], ports: &[3389], drops: false },
    Kind { vendor: "Google (Chromecast)", oui: [0x58, 0xcb, 0x52], ports: &[8443], drops: false },
    Kind { vendor: "HP (printer)", oui: [0x9c, 0x7b, 0xef], ports: &[80, 443, 631, 9100], drops: false },
    Kind { vendor: "Philips (lighting bridge)", oui: [0x00, 0x17, 0x88], ports: &[80, 443], drops: false },
    Kind { vendor: "Seiko Epson (printer)", oui: [0x50, 0x57, 0x9c], ports: &[80, 631], drops: false },
    Kind { vendor: "Xiaomi (vacuum)", oui: [0xa4, 0x45, 0x19], ports: &[], drops: false },
    Kind { vendor: "NETGEAR (switch)", oui: [0x38, 0x94, 0xed], ports: &[23, 80], drops: false },
    Kind { vendor: "Apple (Mac)", oui: [0x60, 0x8b, 0x0e], ports: &[22, 445, 5900], drops: false },
];

/// What a sweep must find at one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: Option<String>,
    pub open: BTreeSet<u16>,
}

/// The built LAN and its ground truth (the agent's own address included:
/// both tools list it).
pub struct Lan {
    pub lan: TestLan,
    pub truth: BTreeMap<IpAddr, Device>,
    /// Devices with listeners, with none (every port refuses) and behind
    /// a firewall that drops everything.
    pub serving: usize,
    pub refusing: usize,
    pub dropping: usize,
    /// The addresses of the devices that drop everything.
    pub droppers: BTreeSet<IpAddr>,
}

/// Builds the LAN with `hosts` devices placed by `seed`; `device_entries`:
/// the devices learn the agent's MAC by ARP (see below).
pub fn build(hosts: usize, seed: u64, device_entries: bool) -> Result<Lan> {
    let subnet: Ipv4Net = SUBNET.parse()?;
    let mut lan = TestLan::new(subnet, AGENT_ADDR).context("building the test LAN")?;
    let mut truth = BTreeMap::new();
    truth.insert(
        IpAddr::V4(AGENT_ADDR),
        Device {
            mac: Some(agent_mac(&lan)?),
            open: BTreeSet::new(),
        },
    );
    let (mut serving, mut refusing, mut dropping) = (0, 0, 0);
    let mut droppers = BTreeSet::new();
    for (i, addr) in place(subnet, hosts, seed).into_iter().enumerate() {
        let kind = &KINDS[i % KINDS.len()];
        let [a, b, c] = kind.oui;
        let mac = [a, b, c, 0x42, (i >> 8) as u8, i as u8];
        let name = format!("d{i}");
        lan.add_host(&name, mac, addr)?;
        for &port in kind.ports {
            lan.listen(&name, port)?;
        }
        if kind.drops {
            drop_everything(&lan, &name)?;
            dropping += 1;
            droppers.insert(IpAddr::V4(addr));
        } else if kind.ports.is_empty() {
            refusing += 1;
        } else {
            serving += 1;
        }
        // The device knows the agent's MAC already: a permanent entry, which
        // the kernel does not count against the neighbour table's limit.
        // Without it, each device namespace adds the entry its ARP answer
        // creates to the one table the whole machine shares, which a real
        // LAN's devices (other machines) do not.
        if !device_entries {
            let agent_mac = truth[&IpAddr::V4(AGENT_ADDR)]
                .mac
                .clone()
                .unwrap_or_default();
            let host_ns = lan
                .host(&name)
                .context("the host just added")?
                .ns()
                .to_string();
            #[rustfmt::skip]
            run_ip(&[
                "-n", &host_ns, "neigh", "replace", &AGENT_ADDR.to_string(),
                "lladdr", &agent_mac, "nud", "permanent", "dev", TestLan::HOST_IF,
            ])?;
        }
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        truth.insert(
            IpAddr::V4(addr),
            Device {
                mac: Some(mac),
                open: if kind.drops {
                    BTreeSet::new()
                } else {
                    kind.ports.iter().copied().collect()
                },
            },
        );
    }
    Ok(Lan {
        lan,
        truth,
        serving,
        refusing,
        dropping,
        droppers,
    })
}

/// `n` distinct host addresses of `subnet`, spread at random, never the
/// agent's.
fn place(subnet: Ipv4Net, n: usize, seed: u64) -> Vec<Ipv4Addr> {
    let mut all: Vec<Ipv4Addr> = subnet.hosts().filter(|a| *a != AGENT_ADDR).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    all.shuffle(&mut rng);
    all.truncate(n);
    all.sort();
    all
}

/// The vendors of the devices, for the report ("AVM (router) ×3, …").
pub fn kinds_used(hosts: usize) -> String {
    KINDS
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let n = (0..hosts).filter(|i| i % KINDS.len() == k).count();
            let ports = if kind.drops {
                "drops everything".to_string()
            } else if kind.ports.is_empty() {
                "refuses every port".to_string()
            } else {
                kind.ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!("{} ×{n} ({ports})", kind.vendor)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// An nftables table in the host's namespace that drops every IPv4
/// packet it receives: ARP is not IPv4, so the host still answers it.
fn drop_everything(lan: &TestLan, host: &str) -> Result<()> {
    let script = "add table inet vigilbench\n\
         add chain inet vigilbench input { type filter hook input priority 0; policy accept; }\n\
         add rule inet vigilbench input meta nfproto ipv4 drop\n";
    run_with_input(lan.host_cmd(host, "nft").args(["-f", "-"]), script)
        .with_context(|| format!("nft in host {host}"))
}

fn run_with_input(cmd: &mut Command, input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The MAC of the agent's LAN interface (the kernel chose it).
fn agent_mac(lan: &TestLan) -> Result<String> {
    let out = ip_json(lan, &["link", "show", "dev", TestLan::HOST_IF])?;
    out.first()
        .and_then(|l| l["address"].as_str())
        .map(str::to_lowercase)
        .context("no MAC on the agent's interface")
}

/// `ip -j ARGS` in the agent namespace, parsed.
fn ip_json(lan: &TestLan, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let out = Command::new("ip")
        .args(["-n", lan.agent_ns(), "-j"])
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_str(&text)?)
}

fn run_ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Empties the agent namespace's neighbour table, so every run starts
/// from the same (cold) state, like a first sweep.
pub fn flush_neighbours(lan: &TestLan) -> Result<()> {
    run_ip(&["-n", lan.agent_ns(), "neigh", "flush", "all"])
}

/// The agent namespace's neighbour entries by state ("REACHABLE 51,
/// FAILED 971"), as a run left them.
pub fn neighbour_states(lan: &TestLan) -> Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for entry in ip_json(lan, &["-4", "neigh", "show"])? {
        let state = entry["state"]
            .as_array()
            .and_then(|s| s.first())
            .and_then(|s| s.as_str())
            .unwrap_or("NONE")
            .to_string();
        *counts.entry(state).or_default() += 1;
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_spread_over_the_block_and_never_the_agent() {
        let subnet: Ipv4Net = SUBNET.parse().expect("subnet");
        let a = place(subnet, 50, 7);
        assert_eq!(a.len(), 50);
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 50);
        assert!(a.iter().all(|x| subnet.contains(x) && *x != AGENT_ADDR));
        assert!(a
            .iter()
            .all(|x| *x != subnet.network() && *x != subnet.broadcast()));
        // Spread: not all in the first /24.
        assert!(a.iter().any(|x| x.octets()[2] > 4));
        assert_eq!(a, place(subnet, 50, 7), "the seed decides");
    }

    #[test]
    fn every_listener_is_a_port_of_the_sweep() {
        let ports: BTreeSet<u16> = super::super::PORTS
            .split(',')
            .map(|p| p.parse().expect("port"))
            .collect();
        for k in &KINDS {
            assert!(k.ports.iter().all(|p| ports.contains(p)), "{}", k.vendor);
            assert!(!k.drops || k.ports.is_empty(), "{}", k.vendor);
        }
    }
}
