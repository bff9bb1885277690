//! A real DNS server for a test network: dnsmasq in the target namespace,
//! authoritative for the zones it is given (NXDOMAIN at once for every
//! name or address it has no record of), with A/AAAA and PTR records from a
//! hosts file, optionally forwarding some domains to another server (an AD
//! DC). [`crate::TestNet::set_scanner_dns`] points the scanner side at it.

use crate::{safety, TestNet, TestNetError};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// What a [`DnsServer`] serves.
#[derive(Debug, Clone, Default)]
pub struct DnsSpec {
    /// Where it listens (a test address; [`TestNet::add_host`] is done here).
    pub listen: Option<IpAddr>,
    /// Forward and reverse records: each address and its name.
    pub records: Vec<(IpAddr, String)>,
    /// Zones it answers for alone, e.g. `acme.test`,
    /// `100.51.198.in-addr.arpa`, `ip6.arpa`.
    pub zones: Vec<String>,
    /// Domains forwarded to another server.
    pub forward: Vec<(String, IpAddr)>,
}

/// A running dnsmasq; stopped when dropped.
pub struct DnsServer {
    child: Child,
    addr: IpAddr,
}

/// Whether dnsmasq is installed (Debian package `dnsmasq-base`).
pub fn dnsmasq_available() -> bool {
    std::process::Command::new("dnsmasq")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl DnsServer {
    /// Starts dnsmasq as `spec` says, its files in `dir`, and waits until
    /// it answers (10 s at most).
    pub fn start(tn: &TestNet, spec: &DnsSpec, dir: &Path) -> Result<DnsServer, TestNetError> {
        let addr = spec
            .listen
            .ok_or_else(|| TestNetError::InvalidSpec("a DNS server needs an address".into()))?;
        safety::check_addr(addr)?;
        tn.add_host(addr)?;
        let hosts_file = dir.join("dnsmasq-hosts");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&hosts_file)?;
            for (a, name) in &spec.records {
                writeln!(f, "{a} {name}")?;
            }
            Ok(())
        };
        write().map_err(|e| TestNetError::io(format!("writing {}", hosts_file.display()), e))?;
        let mut cmd = tn.target_cmd("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--conf-file=/dev/null",
            "--user=root",
            "--cache-size=0",
            "--dns-forward-max=1000",
        ])
        .arg(format!("--listen-address={addr}"))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .arg(format!("--addn-hosts={}", hosts_file.display()));
        for zone in &spec.zones {
            cmd.arg(format!("--local=/{zone}/"));
        }
        for (domain, server) in &spec.forward {
            cmd.arg(format!("--server=/{domain}/{server}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| TestNetError::Spawn {
                cmd: "dnsmasq".into(),
                source,
            })?;
        let server = DnsServer { child, addr };
        server.wait_ready(tn)?;
        Ok(server)
    }

    /// Where it listens.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    fn wait_ready(&self, tn: &TestNet) -> Result<(), TestNetError> {
        let to = SocketAddr::new(self.addr, 53);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Any answer to a query (the root's SOA) means it is up.
            let answered = tn.in_scanner(move || -> std::io::Result<bool> {
                let bind: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().expect("address")
                } else {
                    "[::]:0".parse().expect("address")
                };
                let s = UdpSocket::bind(bind)?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                s.send_to(
                    &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1],
                    to,
                )?;
                let mut buf = [0u8; 512];
                Ok(s.recv_from(&mut buf).is_ok())
            })?;
            if matches!(answered, Ok(true)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestNetError::io(
                    format!("dnsmasq on {to} did not answer within 10 s"),
                    std::io::ErrorKind::TimedOut.into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
