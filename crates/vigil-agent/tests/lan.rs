//! The local network as the agent sees it, on a real link: two network
//! namespaces joined by a veth pair with chosen MACs (Linux, root only;
//! prints SKIPPED otherwise), and a smoke test that runs everywhere,
//! Windows under Wine included.
//!
//! The agent's side runs in a child process started with
//! `ip netns exec`, which also mounts the namespace's own `/sys`, so the
//! interface facts read there are the namespace's, as in a container.

use vigil_agent::lan;

/// Whatever this machine has, listing must not fail and must be coherent.
#[test]
fn interfaces_and_neighbours_are_listed() {
    let interfaces = lan::interfaces();
    let neighbours = lan::neighbours();
    for i in &interfaces {
        println!("interface {i:?}");
        for net in &i.subnets {
            assert_eq!(*net, net.trunc(), "{i:?}");
        }
        for a in &i.addresses {
            assert!(i.subnets.iter().any(|n| n.contains(a)), "{a} in {i:?}");
        }
    }
    for n in &neighbours {
        println!("neighbour {n:?}");
        assert_eq!(n.mac.len(), 17, "{n:?}");
        assert_eq!(n.mac, n.mac.to_lowercase(), "{n:?}");
    }
    let (swept, left_out) = lan::sweep_subnets(&interfaces, &[]);
    println!("swept by default: {swept:?}; left out: {left_out:?}");
    for net in &swept {
        assert!(!net.addr().is_loopback(), "{net}");
    }
}

#[cfg(target_os = "linux")]
mod namespaces {
    use super::*;
    use std::net::IpAddr;
    use std::process::Command;
    use std::time::{Duration, Instant};

    /// The namespace pair and what the child process checks, passed in
    /// its environment.
    const ENV: &str = "VIGIL_LAN_TEST";
    const MAC_A: &str = "02:5e:10:00:00:0a";
    /// Given upper-case to `ip`: the agent reports lower case.
    const MAC_B: &str = "02:5E:10:00:00:0B";

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1))
                == Some("0")
        })
    }

    fn ip(args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Two namespaces, deleted (with the veth pair in them) on drop.
    struct Pair {
        a: String,
        b: String,
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            for ns in [&self.a, &self.b] {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
            }
        }
    }

    /// A: `vethA<pid>`, 198.51.100.1/24, 2001:db8:51::1/64 and
    /// 2001:db8:52::1/120; B: `vethB<pid>` with .2 of each. Only connected
    /// routes: nothing leaves the pair.
    fn build(pid: u32) -> (Pair, String) {
        let pair = Pair {
            a: format!("vigil-lan-a-{pid}"),
            b: format!("vigil-lan-b-{pid}"),
        };
        drop(Pair {
            a: pair.a.clone(),
            b: pair.b.clone(),
        }); // leftovers of a killed run with this pid
        let (veth_a, veth_b) = (format!("vethA{pid}"), format!("vethB{pid}"));
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "-n", &pair.a, "link", "add", &veth_a, "address", MAC_A, "type", "veth", "peer",
            "name", &veth_b, "address", MAC_B, "netns", &pair.b,
        ]);
        for (ns, dev, host) in [(&pair.a, &veth_a, "1"), (&pair.b, &veth_b, "2")] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            let v4 = format!("198.51.100.{host}/24");
            ip(&["-n", ns, "addr", "add", &v4, "dev", dev]);
            for v6 in [
                format!("2001:db8:51::{host}/64"),
                format!("2001:db8:52::{host}/120"),
            ] {
                ip(&["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]);
            }
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        (pair, veth_a)
    }

    #[test]
    fn a_veth_peer_is_seen_with_its_subnet_and_mac() {
        if !is_root() {
            println!("SKIPPED: needs root (network namespaces)");
            return;
        }
        if Command::new("ip").arg("-V").output().is_err() {
            println!("SKIPPED: needs iproute2's ip");
            return;
        }
        let pid = std::process::id();
        let (pair, veth_a) = build(pid);
        let exe = std::env::current_exe().expect("this test binary");
        let out = Command::new("ip")
            .args(["netns", "exec", &pair.a])
            .arg(exe)
            .args(["--exact", "namespaces::inside_namespace_a"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(ENV, &veth_a)
            .output()
            .expect("running the test binary in the namespace");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "the check inside the namespace failed"
        );
        assert!(text.contains("1 passed"), "the check inside did not run");
    }

    /// Runs in namespace A, started by the test above.
    #[test]
    #[ignore = "run inside its namespace by a_veth_peer_is_seen_with_its_subnet_and_mac"]
    fn inside_namespace_a() {
        let veth = std::env::var(ENV).expect("started by the test that builds the namespaces");
        let peer_v4: IpAddr = "198.51.100.2".parse().expect("ip");
        let peer_v6: IpAddr = "2001:db8:52::2".parse().expect("ip");
        arp_finds_the_peer_and_leaves_no_entries(&veth);
        for peer in [peer_v4, peer_v6] {
            knock(peer);
        }

        let interfaces = lan::interfaces();
        println!("interfaces: {interfaces:#?}");
        let mine = interfaces
            .iter()
            .find(|i| i.name == veth)
            .unwrap_or_else(|| panic!("{veth} not in {interfaces:?}"));
        assert_eq!(mine.kind, "virtual");
        assert_eq!(mine.mac.as_deref(), Some(MAC_A));
        assert_eq!(mine.excluded.as_deref(), Some("virtual (veth)"));
        assert_eq!(mine.gateway, None);
        let subnet = |s: &str| s.parse::<ipnet::IpNet>().expect("net");
        for net in ["198.51.100.0/24", "2001:db8:51::/64", "2001:db8:52::/120"] {
            assert!(mine.subnets.contains(&subnet(net)), "{net} in {mine:?}");
        }
        assert!(mine
            .addresses
            .contains(&"198.51.100.1".parse().expect("ip")));
        let lo = interfaces.iter().find(|i| i.name == "lo").expect("lo");
        assert_eq!(lo.excluded.as_deref(), Some("loopback"));

        // By default nothing here is swept: lo and a veth are left out.
        let (swept, left_out) = lan::sweep_subnets(&interfaces, &[]);
        assert_eq!((swept.as_slice(), left_out.as_slice()), (&[][..], &[][..]));
        // Named, the veth's subnets are swept, but not its /64 or fe80::/64.
        let (swept, left_out) = lan::sweep_subnets(&interfaces, std::slice::from_ref(&veth));
        println!("including {veth}: swept {swept:?}; left out {left_out:?}");
        assert_eq!(
            swept,
            [subnet("198.51.100.0/24"), subnet("2001:db8:52::/120")]
        );
        let why = |net: &str| {
            left_out
                .iter()
                .find(|(n, _)| *n == subnet(net))
                .map(|(_, why)| why.as_str())
        };
        assert!(why("2001:db8:51::/64").is_some_and(|w| w.starts_with("too large to sweep")));
        if mine.subnets.contains(&subnet("fe80::/64")) {
            assert_eq!(why("fe80::/64"), Some("link-local: never swept"));
        }

        let neighbours = lan::neighbours();
        println!("neighbours: {neighbours:#?}");
        for peer in [peer_v4, peer_v6] {
            let found = neighbours
                .iter()
                .find(|n| n.ip == peer)
                .unwrap_or_else(|| panic!("{peer} in {neighbours:?}"));
            assert_eq!(found.mac, MAC_B.to_lowercase());
            assert_eq!(found.interface, veth);
            // Just answered the knock: confirmed moments ago (rtnetlink says).
            let ago = found
                .confirmed_ago
                .expect("rtnetlink gives the confirmation time");
            assert!(ago < Duration::from_secs(30), "{found:?}");
        }
    }

    /// ARP over the /24 finds B (and nobody else), and asking 253
    /// addresses left no neighbour entry behind: the kernel neither
    /// created entries for the requests nor learned from the answer.
    fn arp_finds_the_peer_and_leaves_no_entries(veth: &str) {
        use std::net::Ipv4Addr;
        use vigil_agent::arp::{discover, ArpJob, ArpTiming};
        let job = ArpJob {
            interface: veth.to_string(),
            own_mac: MAC_A.parse().expect("mac"),
            own_ip: Ipv4Addr::new(198, 51, 100, 1),
            targets: (1..=254).map(|h| Ipv4Addr::new(198, 51, 100, h)).collect(),
        };
        // The link may still be coming up: ask until B answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = discover(&job, ArpTiming::default()).expect("ARP as root");
            if !found.is_empty() || Instant::now() > deadline {
                break found;
            }
        };
        let got: Vec<(String, String)> = found
            .iter()
            .map(|(ip, mac)| (ip.to_string(), mac.to_string()))
            .collect();
        assert_eq!(
            got,
            [("198.51.100.2".to_string(), MAC_B.to_lowercase())],
            "ARP answers"
        );
        let out = Command::new("ip")
            .args(["-4", "neigh", "show", "dev", veth])
            .output()
            .expect("ip neigh");
        let table = String::from_utf8_lossy(&out.stdout);
        println!("IPv4 neighbours after ARP discovery:\n{table}");
        let others: Vec<&str> = table
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("198.51.100.2 "))
            .collect();
        assert!(
            others.is_empty(),
            "entries left by the discovery: {others:?}"
        );
        // Without a packet socket on this interface: a clear error.
        let missing = ArpJob {
            interface: "vigil-none0".into(),
            ..job
        };
        assert!(discover(&missing, ArpTiming::default()).is_err());
    }

    /// A TCP connect to a closed port: the peer's refusal fills the
    /// neighbour table. Retried while the link comes up.
    fn knock(peer: IpAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let result =
                std::net::TcpStream::connect_timeout(&(peer, 9).into(), Duration::from_secs(1));
            match result {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ if Instant::now() > deadline => panic!("{peer} did not answer: {result:?}"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}
