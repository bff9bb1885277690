//! Shared helpers for the integration tests: run `vigil` and `nmap` inside a
//! test network and read their nmap-format XML.
#![allow(dead_code)]

use quick_xml::events::Event;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;
use vigil_core::PortList;
use vigil_testnet::TestNet;

/// (state, reason) per (address, port), as nmap's XML states them.
pub type Verdicts = BTreeMap<(IpAddr, u16), (String, String)>;

pub fn vigil_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vigil")
}

/// True when namespace tests can run; prints why not otherwise.
pub fn can_build_networks() -> bool {
    if vigil_testnet::require_root() {
        return true;
    }
    eprintln!("SKIPPED: needs root and iproute2 to build network namespaces (CI runs as root)");
    false
}

/// Runs a command to completion, failing the test with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `vigil scan ARGS --xml -` inside the scanner namespace.
pub fn vigil_xml(net: &TestNet, targets: &[String], ports: &str, extra: &[&str]) -> Verdicts {
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["scan", "--no-progress", "-p", ports, "--xml", "-"])
        .args(extra)
        .args(targets);
    parse_nmap_xml(&run_ok(&mut cmd))
}

/// `nmap -sT -Pn -n -T4` inside the scanner namespace.
pub fn nmap_xml(net: &TestNet, targets: &[String], ports: &str) -> Verdicts {
    // nmap scans one address family per run.
    let (v6, v4): (Vec<&String>, Vec<&String>) = targets.iter().partition(|t| t.contains(':'));
    let mut v = Verdicts::new();
    for (family, group) in [(None, v4), (Some("-6"), v6)] {
        if group.is_empty() {
            continue;
        }
        let mut cmd = net.scanner_cmd("nmap");
        cmd.args(family)
            .args(["-sT", "-Pn", "-n", "-T4", "-p", ports, "-oX", "-"])
            .args(group);
        v.extend(parse_nmap_xml(&run_ok(&mut cmd)));
    }
    v
}

/// Reads `<port>` and `<extraports>/<extrareasons ports=…>` of every host.
pub fn parse_nmap_xml(xml: &str) -> Verdicts {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Verdicts::new();
    let mut addr: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut extra_state: Option<String> = None;
    loop {
        let ev = reader.read_event().expect("well-formed XML");
        let (e, is_end) = match &ev {
            Event::Start(e) | Event::Empty(e) => (e.clone(), false),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"host" => addr = None,
                    b"port" => port = None,
                    b"extraports" => extra_state = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let _ = is_end;
        let attr = |name: &str| -> Option<String> {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == name.as_bytes())
                .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        };
        match e.name().as_ref() {
            b"address" if attr("addrtype").as_deref() != Some("mac") => {
                addr = attr("addr").and_then(|a| a.parse().ok());
            }
            b"port" => port = attr("portid").and_then(|p| p.parse().ok()),
            b"state" => {
                if let (Some(a), Some(p)) = (addr, port) {
                    out.insert((a, p), (attr("state").unwrap(), attr("reason").unwrap()));
                }
            }
            b"extraports" => extra_state = attr("state"),
            b"extrareasons" => {
                let (Some(a), Some(state)) = (addr, extra_state.clone()) else {
                    continue;
                };
                let reason = attr("reason").unwrap();
                let ports = attr("ports").expect("extrareasons lists its ports");
                for p in PortList::parse(&ports).unwrap().iter() {
                    out.insert((a, p), (state.clone(), reason.clone()));
                }
            }
            _ => {}
        }
    }
    out
}
