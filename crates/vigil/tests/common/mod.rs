//! Shared helpers for the integration tests: run `vigil` and `nmap` inside a
//! test network and read their nmap-format XML.
#![allow(dead_code)]

pub mod browser;
pub mod builds;
pub mod compliance;
pub mod http;
pub mod lan;
pub mod replica;
pub mod scenario;
pub mod server;
pub mod watch;
pub mod wine;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;
pub use vigil_testnet::nmap::Verdicts;
use vigil_testnet::TestNet;

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

/// True when python3 has aiosmtpd (the real SMTP server of the tests);
/// prints why not otherwise. Fails instead when `VIGIL_REQUIRE_SMTP` is set.
pub fn smtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("VIGIL_REQUIRE_SMTP").is_none(),
        "VIGIL_REQUIRE_SMTP is set but python3 cannot import aiosmtpd"
    );
    if !ok {
        eprintln!("SKIPPED: needs python3-aiosmtpd");
    }
    ok
}

/// Asks the agent listening on `addr` who it is, from the scanner namespace.
pub fn identify_from_scanner(
    net: &TestNet,
    addr: SocketAddr,
) -> vigil_proto::identify::IdentifyReply {
    try_identify(net, addr).unwrap_or_else(|e| panic!("identify exchange with {addr}: {e}"))
}

/// [`identify_from_scanner`], or why the exchange failed. Sends a version 2
/// request with a fresh nonce; the reply's MAC is not checked (the test
/// has no key).
pub fn try_identify(
    net: &TestNet,
    addr: SocketAddr,
) -> Result<vigil_proto::identify::IdentifyReply, String> {
    let nonce = vigil_proto::identify::Nonce::from_bytes(rand::random());
    identify_with(net, addr, &vigil_proto::identify::Request::V2(nonce))
}

/// One identify exchange with `addr` from the scanner namespace: sends
/// `request`, parses the reply line.
pub fn identify_with(
    net: &TestNet,
    addr: SocketAddr,
    request: &vigil_proto::identify::Request,
) -> Result<vigil_proto::identify::IdentifyReply, String> {
    let request = request.to_line();
    let line = net
        .in_scanner(move || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(&request)?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line)?;
            Ok(line)
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    vigil_proto::identify::IdentifyReply::parse(line.as_bytes())
        .map_err(|e| format!("bad identify reply {line:?}: {e}"))
}

/// Every message the test SMTP server (aiosmtpd) stored in `dir`, one JSON
/// file each, so far.
pub fn stored_emails(dir: &std::path::Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect()
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

/// `nmap SCAN -Pn -n -T4` inside the scanner namespace, `scan` being
/// `-sT` (connect) or `-sS` (SYN).
pub fn nmap_xml(net: &TestNet, scan: &str, targets: &[String], ports: &str) -> Verdicts {
    // nmap scans one address family per run.
    let (v6, v4): (Vec<&String>, Vec<&String>) = targets.iter().partition(|t| t.contains(':'));
    let mut v = Verdicts::new();
    for (family, group) in [(None, v4), (Some("-6"), v6)] {
        if group.is_empty() {
            continue;
        }
        let mut cmd = net.scanner_cmd("nmap");
        cmd.args(family)
            .args([scan, "-Pn", "-n", "-T4", "-p", ports, "-oX", "-"])
            .args(group);
        v.extend(parse_nmap_xml(&run_ok(&mut cmd)));
    }
    v
}

/// Reads nmap-format XML, failing the test if it is malformed.
pub fn parse_nmap_xml(xml: &str) -> Verdicts {
    vigil_testnet::nmap::parse_xml(xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

/// The result of one command.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from(out: Output) -> Out {
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success; the standard output.
    pub fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "expected success:\n{self}");
        self.stdout
    }

    /// Asserts success and parses standard output as JSON.
    pub fn json(self) -> Value {
        let text = self.ok();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
    }

    /// Asserts the exit code and that the error names `needle`.
    pub fn fails(self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "expected exit code {code}:\n{self}");
        assert!(
            self.stderr.starts_with("error: ") && self.stderr.contains(needle),
            "expected an error mentioning {needle:?}:\n{self}"
        );
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}
