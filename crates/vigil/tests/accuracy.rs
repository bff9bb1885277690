//! `vigil scan` classifies ports exactly like nmap on a test network built
//! in namespaces, on a clean link, at 100 ms RTT and with 2% loss, for IPv4
//! and IPv6: its connect engine like `nmap -sT -Pn`, its SYN engine like
//! `nmap -sS -Pn` (states and reasons), and the two engines alike; and the
//! connect engine loses no open port at high concurrency or when it runs
//! out of file descriptors.

mod common;

use common::scenario::{
    assert_unreachable_in_json, build_both, hosts_v4, hosts_v6, mismatches, nmap_matching_truth,
    Built, PORTS,
};
use common::{can_build_networks, run_ok, vigil_bin, vigil_xml, Verdicts};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use vigil_testnet::{Listener, NetSpec, TestNet};

fn accuracy(spec: NetSpec) {
    if !can_build_networks() {
        return;
    }
    let net = TestNet::new(spec).expect("test network");
    let Built {
        v4,
        v6,
        targets,
        truth,
        ..
    } = &build_both(&net);

    // Each engine against the truth (one try), then against nmap's scan of
    // the same kind (state and reason), then the two engines' states
    // against each other. (Namespace tests run as root: SYN is permitted.)
    let mut states = Vec::new();
    for (engine, nmap_scan) in [("--connect", "-sT"), ("--syn", "-sS")] {
        let vigil = vigil_xml(&net, targets, PORTS, &[engine]);
        let wrong = mismatches(&vigil, truth);
        assert!(
            wrong.is_empty(),
            "vigil {engine} misclassified:\n{}",
            wrong.join("\n")
        );
        match nmap_matching_truth(&net, nmap_scan, targets, truth) {
            Some(nmap) => assert_eq!(
                vigil, nmap,
                "vigil {engine} and nmap {nmap_scan} disagree on a state or reason"
            ),
            None => eprintln!(
                "WARNING: nmap {nmap_scan} missed the truth 3 times; Vigil matched it; no comparison"
            ),
        }
        assert_unreachable_in_json(net.scanner_cmd(vigil_bin()), &[engine], v4, v6);
        let only_states: BTreeMap<_, _> = vigil
            .into_iter()
            .map(|(k, (state, _))| (k, state))
            .collect();
        states.push((engine, only_states));
    }
    let [(_, connect), (_, syn)] = &states[..] else {
        unreachable!("two engines")
    };
    assert_eq!(
        connect, syn,
        "the connect and SYN engines disagree on a state"
    );
}

#[test]
fn same_verdicts_as_nmap_on_a_clean_link() {
    accuracy(NetSpec::default());
}

#[test]
fn same_verdicts_as_nmap_at_100ms_rtt() {
    accuracy(NetSpec {
        rtt: Duration::from_millis(100),
        loss: 0.0,
    });
}

#[test]
fn same_verdicts_as_nmap_at_100ms_rtt_and_2_percent_loss() {
    accuracy(NetSpec {
        rtt: Duration::from_millis(100),
        loss: 0.02,
    });
}

/// Opens `n` listeners on distinct random ports of `host`; returns them and
/// their ports.
fn random_listeners(
    net: &TestNet,
    host: IpAddr,
    n: usize,
    seed: u64,
) -> (Vec<Listener>, BTreeSet<u16>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut candidates: Vec<u16> = (1..=u16::MAX).collect();
    candidates.shuffle(&mut rng);
    let mut listeners = Vec::new();
    for port in candidates.into_iter().take(n) {
        listeners.push(
            net.listen(SocketAddr::new(host, port), None)
                .expect("listen"),
        );
    }
    let ports = listeners.iter().map(|l| l.local_addr().port()).collect();
    (listeners, ports)
}

fn open_ports(verdicts: &Verdicts) -> BTreeSet<u16> {
    vigil_testnet::nmap::open_set(verdicts)
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// Full port range against ~300 random listeners at the highest concurrency:
/// every open port is found, on every run.
#[test]
fn no_open_port_lost_at_max_concurrency() {
    if !can_build_networks() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).expect("test network");
    let host = hosts_v4().mixed;
    net.add_host(host).expect("add host");
    let seed = rand::rng().random();
    let (_listeners, expected) = random_listeners(&net, host, 300, seed);
    for round in 0..2 {
        let got = vigil_xml(
            &net,
            &[host.to_string()],
            "-",
            &["--connect", "--concurrency", "10000"],
        );
        assert_eq!(
            open_ports(&got),
            expected,
            "round {round}, listener seed {seed}: open set differs"
        );
        assert_eq!(got.len(), 65535, "every port gets a verdict");
    }
}

/// With only 200 file descriptors and 4000 requested in flight, vigil waits
/// for descriptors instead of reporting ports it could not probe.
#[test]
fn no_open_port_lost_when_out_of_file_descriptors() {
    if !can_build_networks() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).expect("test network");
    let host = hosts_v6().mixed;
    net.add_host(host).expect("add host");
    let seed = rand::rng().random();
    let (_listeners, expected) = random_listeners(&net, host, 100, seed);
    let mut cmd = net.scanner_cmd("sh");
    cmd.args([
        "-c",
        "ulimit -n 200 && exec \"$@\"",
        "sh",
        vigil_bin(),
        "scan",
        "--connect",
        "--no-progress",
        "--concurrency",
        "4000",
        "-p",
        "1-65535",
        "--xml",
        "-",
        &host.to_string(),
    ]);
    let got = common::parse_nmap_xml(&run_ok(&mut cmd));
    assert_eq!(open_ports(&got), expected, "listener seed {seed}");
    assert_eq!(got.len(), 65535, "every port gets a verdict");
}
