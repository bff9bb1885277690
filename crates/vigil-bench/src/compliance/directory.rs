//! The Active Directory side: a Samba AD DC in the target namespace with
//! thousands of computer objects, DNS records for some of them (pointing at
//! live test hosts), the scope that reads them, and the peer baseline for
//! the directory read: OpenLDAP's `ldapsearch` with the same paged search.

use super::network::{Counts, Range, Role};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use vigil_testdir::{Computer, DcOptions, SambaDc};
use vigil_testnet::TestNet;

/// The DC's address (in the default routed range).
pub const DC_ADDR: &str = "198.51.100.53";
/// Where the benchmark's computers live.
const OU: &str = "Bench";
const BASE_DN: &str = "OU=Bench,DC=example,DC=test";
/// The attributes the server reads (see vigil-server's compliance::ad).
const ATTRS: [&str; 6] = [
    "objectGUID",
    "cn",
    "dNSHostName",
    "operatingSystem",
    "lastLogonTimestamp",
    "userAccountControl",
];

/// The DC and the computers created so far.
pub struct Directory {
    pub dc: SambaDc,
    pub computers: usize,
    /// The addresses the resolving computers point at, with their roles.
    resolving: Vec<(IpAddr, Role)>,
}

/// Starts the DC and makes the scanner namespace resolve names with it.
pub fn start(net: &TestNet) -> Result<Directory> {
    let started = Instant::now();
    let dc = SambaDc::start(net, DC_ADDR.parse()?, &DcOptions::default())?;
    net.set_scanner_dns(dc.addr())?;
    eprintln!(
        "[ad] Samba AD DC up in {:.1}s ({:?})",
        started.elapsed().as_secs_f64(),
        dc.timings()
    );
    Ok(Directory {
        dc,
        computers: 0,
        resolving: Vec::new(),
    })
}

fn name(i: usize) -> String {
    format!("BENCH-{i:05}")
}

fn fqdn(i: usize) -> String {
    format!("bench-{i:05}.example.test")
}

impl Directory {
    /// Grows the directory to `total` computers; the first `resolving` of
    /// all get DNS records pointing at distinct live hosts of `range`.
    pub fn grow(&mut self, total: usize, resolving: usize, range: &Range) -> Result<Duration> {
        let started = Instant::now();
        let new: Vec<Computer> = (self.computers..total)
            .map(|i| Computer {
                ou: Some(OU.into()),
                dns_host_name: Some(fqdn(i)),
                operating_system: Some("Windows 11 Pro".into()),
                ..Computer::new(name(i))
            })
            .collect();
        for chunk in new.chunks(2000) {
            super::check_interrupted()?;
            self.dc.add_computers(chunk)?;
        }
        self.computers = total;
        if self.resolving.len() < resolving {
            let hosts: Vec<(IpAddr, Role)> = range.hosts.iter().map(|(a, r)| (*a, *r)).collect();
            if hosts.len() < resolving {
                bail!(
                    "only {} live hosts for {resolving} DNS records",
                    hosts.len()
                );
            }
            let names: Vec<String> = (0..resolving).map(fqdn).collect();
            let addrs: Vec<[IpAddr; 1]> = hosts[..resolving].iter().map(|(a, _)| [*a]).collect();
            let records: Vec<(&str, &[IpAddr])> = names
                .iter()
                .zip(&addrs)
                .map(|(n, a)| (n.as_str(), &a[..]))
                .collect();
            self.dc.set_dns_records(&records)?;
            self.resolving = hosts[..resolving].to_vec();
        }
        Ok(started.elapsed())
    }

    /// An AD-only scope (IP scope disabled) over the benchmark's OU.
    pub fn scope_body(&self, on_demand: bool) -> Value {
        json!({
            "scope": {
                "ad": {
                    "url": self.dc.ldaps_url(),
                    "bind": {"method": "simple", "bind_dn": self.dc.bind_dn()},
                    "base_dns": [BASE_DN],
                    "ca_cert": self.dc.ca_cert_pem(),
                },
                "ip": {"enabled": false, "ranges": []},
                "agent_ports": [super::network::AGENT_PORT],
                "unreachable_port": super::network::RPC_PORT,
                "on_demand": on_demand,
            },
            "ad_password": self.dc.password(),
            "reassess": true,
        })
    }

    /// What the AD-only assessment must find: each resolving computer has
    /// the status of the host its name points at, the others are
    /// unresolved AD assessments.
    pub fn expected(&self) -> Counts {
        let n = |role| self.resolving.iter().filter(|(_, r)| *r == role).count() as u64;
        Counts {
            managed_here: n(Role::Ours),
            managed_elsewhere: n(Role::Theirs),
            no_agent: n(Role::Rpc) + n(Role::Refusing),
            unreachable: 0,
            unresolved_ad: (self.computers - self.resolving.len()) as u64,
            no_host: 0,
        }
    }

    pub fn resolving(&self) -> usize {
        self.resolving.len()
    }

    /// The paged search the server does, with `ldapsearch` from the
    /// scanner namespace; its wall time and the entries it returned.
    pub fn ldapsearch(&self, net: &TestNet, dir: &Path) -> Result<(Duration, usize)> {
        let ca = dir.join("dc-ca.pem");
        std::fs::write(&ca, self.dc.ca_cert_pem())?;
        let mut cmd = net.scanner_cmd("ldapsearch");
        cmd.env("LDAPTLS_CACERT", &ca)
            .args(ldapsearch_args(&self.dc))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let out = cmd.output().context("running ldapsearch")?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            bail!(
                "ldapsearch failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let entries = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("dn: "))
            .count();
        Ok((elapsed, entries))
    }
}

fn ldapsearch_args(dc: &SambaDc) -> Vec<String> {
    let mut args: Vec<String> = [
        "-LLL",
        "-x",
        "-H",
        &dc.ldaps_url(),
        "-D",
        &dc.bind_dn(),
        "-w",
        dc.password(),
        "-b",
        BASE_DN,
        "-E",
        "pr=1000/noprompt",
        "(objectCategory=computer)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(ATTRS.iter().map(|s| s.to_string()));
    args
}

/// The `ldapsearch` command line as shown in the report (password elided).
pub fn ldapsearch_shown() -> String {
    format!(
        "ldapsearch -LLL -x -H ldaps://{DC_ADDR}:636 -D … -w … -b {BASE_DN} -E pr=1000/noprompt '(objectCategory=computer)' {}",
        ATTRS.join(" ")
    )
}
