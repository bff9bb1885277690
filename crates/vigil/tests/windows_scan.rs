//! `vigil.exe scan` (the Windows build, under Wine) gives the same verdicts
//! as the Linux binary, the truth and `nmap -sT -Pn` on the accuracy
//! scenario: open, closed (WSAECONNREFUSED), filtered (no answer) and
//! unreachable (WSAEHOSTUNREACH / WSAENETUNREACH) ports, IPv4 and IPv6.
//!
//! Wine turns Winsock calls into Linux socket calls inside the exe's own
//! process, so the exe runs in the scanner namespace while every verdict
//! goes through the Windows code of `vigil-scan` (`sys/windows.rs`).

mod common;

use common::scenario::{
    assert_unreachable_in_json, build_both, mismatches, nmap_matching_truth, Built, PORTS,
};
use common::wine::{scanner_cmd, vigil_exe_xml, wine_and_exe};
use common::{can_build_networks, vigil_xml};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

fn same_verdicts(spec: NetSpec) {
    if !can_build_networks() {
        return;
    }
    let Some((wine, exe)) = wine_and_exe() else {
        return;
    };
    let net = TestNet::new(spec).expect("test network");
    let Built {
        v4,
        v6,
        targets,
        truth,
        ..
    } = &build_both(&net);

    let windows = vigil_exe_xml(&net, &wine, &exe, targets, PORTS);
    let wrong = mismatches(&windows, truth);
    assert!(
        wrong.is_empty(),
        "vigil.exe misclassified:\n{}",
        wrong.join("\n")
    );
    // State and reason (conn-refused, syn-ack, host-unreach, no-response)
    // exactly as the Linux binary says them.
    let linux = vigil_xml(&net, targets, PORTS, &["--connect"]);
    assert_eq!(windows, linux, "vigil.exe and the Linux vigil disagree");
    match nmap_matching_truth(&net, "-sT", targets, truth) {
        Some(nmap) => assert_eq!(windows, nmap, "vigil.exe and nmap disagree"),
        None => eprintln!("WARNING: nmap missed the truth 3 times; no comparison with nmap"),
    }

    assert_unreachable_in_json(scanner_cmd(&net, &wine, &exe), &[], v4, v6);
}

#[test]
fn windows_scan_matches_linux_and_nmap_on_a_clean_link() {
    same_verdicts(NetSpec::default());
}

#[test]
fn windows_scan_matches_linux_and_nmap_at_100ms_rtt() {
    same_verdicts(NetSpec {
        rtt: Duration::from_millis(100),
        loss: 0.0,
    });
}
