//! A real UPnP IGD / NAT-PMP gateway for a [`TestLan`]: Debian's miniupnpd
//! in the LAN's gateway namespace, and `upnpc` (miniupnpc) to add and
//! delete port mappings from a LAN host.
//!
//! miniupnpd refuses to forward ports when its WAN address is reserved (all
//! the test ranges are) unless STUN says the address is public and
//! unfiltered. So [`UpnpGateway`] also runs a tiny STUN server in the LAN's
//! "internet" namespace that answers every binding request with the address
//! it came from, and tells miniupnpd to use it (`ext_perform_stun`): the
//! external address miniupnpd reports is then the gateway's WAN address
//! ([`UpnpGateway::external_addr`]).
//!
//! ```no_run
//! use std::net::Ipv4Addr;
//! use vigil_testnet::{upnp_add, upnp_delete, TestLan, UpnpGateway};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pc = Ipv4Addr::new(198, 51, 100, 20);
//! let mut lan = TestLan::new("198.51.100.0/24".parse()?, Ipv4Addr::new(198, 51, 100, 10))?;
//! lan.add_host("pc", [2, 0, 0, 0, 0, 0x20], pc)?;
//! lan.add_gateway(Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(203, 0, 113, 2))?;
//! let dir = std::env::temp_dir().join("vigil-upnp-example");
//! let gateway = UpnpGateway::start(&lan, &dir)?;
//! assert_eq!(gateway.external_addr(), Ipv4Addr::new(203, 0, 113, 2));
//! upnp_add(&lan, "pc", pc, 3389, 3389, "TCP", "remote desktop")?;
//! upnp_delete(&lan, "pc", 3389, "TCP")?;
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ns::run_with_stdin;
use crate::{TestLan, TestNetError};

/// Where Debian's miniupnpd package installs the daemon.
pub const MINIUPNPD: &str = "/usr/sbin/miniupnpd";

/// The nftables table miniupnpd's rules go into (see [`UpnpGateway`]).
const NFT_TABLE: &str = "vigilupnp";

/// The nftables skeleton miniupnpd adds its rules to (what Debian's
/// `nft_init.sh` makes, in a table of our own): it creates no tables or
/// chains itself.
const NFT: &str = "table inet vigilupnp {
    chain miniupnpd { }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
    chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
    chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
    chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
}
";

/// The STUN server's port (the standard one).
const STUN_PORT: u16 = 3478;
/// How long [`UpnpGateway::start`] waits for miniupnpd.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why miniupnpd cannot be used here: the missing tools among miniupnpd
/// (at [`MINIUPNPD`]), `upnpc` (miniupnpc) and `nft` (nftables), or `None`
/// when all are installed. Does not check for root (see
/// [`crate::require_root`]).
pub fn miniupnpd_missing() -> Option<String> {
    let runs = |program: &str, args: &[&str]| {
        // miniupnpd --version and bare upnpc exit non-zero: only "runs" counts.
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .is_ok()
    };
    let absent: Vec<&str> = [
        (MINIUPNPD, &["--version"][..], "miniupnpd"),
        ("upnpc", &[][..], "upnpc (miniupnpc)"),
        ("nft", &["--version"][..], "nft (nftables)"),
    ]
    .into_iter()
    .filter(|(program, args, _)| !runs(program, args))
    .map(|(_, _, name)| name)
    .collect();
    (!absent.is_empty()).then(|| absent.join(", "))
}

/// miniupnpd (UPnP IGD on HTTP, NAT-PMP; IPv4 only) running in a
/// [`TestLan`]'s gateway namespace, with the STUN server it needs in the
/// internet namespace. Mappings are allowed for any port of any LAN address
/// (`secure_mode` on: a client may only map to itself); its friendly name is
/// "Vigil Test Router". Its rules live in nftables table `inet vigilupnp`
/// of the gateway namespace.
///
/// Dropping it kills miniupnpd, stops the STUN server and deletes the
/// nftables table; when dropped during a panic it prints the end of
/// miniupnpd's log to stderr. Drop it before the [`TestLan`].
pub struct UpnpGateway {
    child: Child,
    log: PathBuf,
    external: Ipv4Addr,
    /// `nft delete table …` in the gateway namespace.
    cleanup: Command,
    _stun: StunServer,
}

impl std::fmt::Debug for UpnpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpnpGateway")
            .field("pid", &self.child.id())
            .field("log", &self.log)
            .field("external", &self.external)
            .finish_non_exhaustive()
    }
}

impl UpnpGateway {
    /// Starts miniupnpd on `lan`'s gateway ([`TestLan::add_gateway`] must
    /// have been called) and waits (15 s at most) until both its UPnP (HTTP)
    /// and NAT-PMP sides listen. Its configuration, pid file and log
    /// (`miniupnpd.log`, see [`UpnpGateway::log`]) go into `dir`, which is
    /// created if needed; a fresh directory per gateway is best.
    ///
    /// Only one at a time per LAN. On failure the error carries miniupnpd's
    /// log.
    pub fn start(lan: &TestLan, dir: &Path) -> Result<UpnpGateway, TestNetError> {
        let stun_addr = lan.internet_addr().ok_or_else(|| {
            TestNetError::InvalidSpec(
                "UpnpGateway::start needs a TestLan with a gateway (add_gateway)".into(),
            )
        })?;
        std::fs::create_dir_all(dir)
            .map_err(|e| TestNetError::io(format!("creating {}", dir.display()), e))?;
        let external = wan_addr(lan)?;

        run_with_stdin(
            lan.gateway_cmd("nft").args(["-f", "-"]),
            Some(NFT.as_bytes()),
        )?;
        let mut cleanup = lan.gateway_cmd("nft");
        cleanup.args(["delete", "table", "inet", NFT_TABLE]);
        // Until miniupnpd runs, a failure must still remove the table.
        let mut cleanup = Cleanup(Some(cleanup));

        let sock = lan
            .in_internet(move || UdpSocket::bind((stun_addr, STUN_PORT)))?
            .map_err(|e| TestNetError::io(format!("binding STUN {stun_addr}:{STUN_PORT}"), e))?;
        let stun = StunServer::serve(sock)?;

        let conf = dir.join("miniupnpd.conf");
        std::fs::write(&conf, config(lan, stun_addr))
            .map_err(|e| TestNetError::io(format!("writing {}", conf.display()), e))?;
        let log = dir.join("miniupnpd.log");
        let out = File::create(&log)
            .map_err(|e| TestNetError::io(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| TestNetError::io(format!("duplicating {}", log.display()), e))?;
        let mut cmd = lan.gateway_cmd(MINIUPNPD);
        cmd.arg("-d")
            .arg("-f")
            .arg(&conf)
            .arg("-P")
            .arg(dir.join("miniupnpd.pid"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // `ip netns exec` execs miniupnpd: the child is miniupnpd itself.
        let child = cmd.spawn().map_err(|source| TestNetError::Spawn {
            cmd: describe(&cmd),
            source,
        })?;
        let mut gateway = UpnpGateway {
            child,
            log,
            external,
            cleanup: cleanup.0.take().expect("set above"),
            _stun: stun,
        };
        gateway.wait_ready()?;
        Ok(gateway)
    }

    /// The external address miniupnpd reports (over UPnP and NAT-PMP): the
    /// gateway's WAN address, as given to [`TestLan::add_gateway`].
    pub fn external_addr(&self) -> Ipv4Addr {
        self.external
    }

    /// miniupnpd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The path of miniupnpd's log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Until both the HTTP and the NAT-PMP side listen (after STUN).
    fn wait_ready(&mut self) -> Result<(), TestNetError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = self.log();
            if log.contains("HTTP listening on port") && log.contains("Listening for NAT-PMP") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(TestNetError::Command {
                    cmd: MINIUPNPD.into(),
                    status: status.to_string(),
                    stderr: log,
                });
            }
            if Instant::now() >= deadline {
                return Err(TestNetError::io(
                    format!("miniupnpd not ready within {READY_TIMEOUT:?}; its log:\n{log}"),
                    io::ErrorKind::TimedOut.into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for UpnpGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self
            .cleanup
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("the end of miniupnpd's log:\n{}", tail.join("\n"));
        }
    }
}

/// Runs its command (quietly) on drop unless taken.
struct Cleanup(Option<Command>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cmd) = &mut self.0 {
            let _ = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// miniupnpd's configuration for `lan`, STUN at `stun`.
fn config(lan: &TestLan, stun: Ipv4Addr) -> String {
    format!(
        "ext_ifname={wan}\n\
         listening_ip={lan_if}\n\
         http_port=0\n\
         enable_upnp=yes\n\
         enable_natpmp=yes\n\
         ipv6_disable=yes\n\
         secure_mode=yes\n\
         ext_perform_stun=yes\n\
         ext_stun_host={stun}\n\
         ext_stun_port={STUN_PORT}\n\
         upnp_table_name={NFT_TABLE}\n\
         upnp_nat_table_name={NFT_TABLE}\n\
         friendly_name=Vigil Test Router\n\
         system_uptime=no\n\
         uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
         allow 1-65535 {subnet} 1-65535\n\
         deny 0-65535 0.0.0.0/0 0-65535\n",
        wan = TestLan::GATEWAY_WAN_IF,
        lan_if = TestLan::GATEWAY_LAN_IF,
        subnet = lan.subnet(),
    )
}

/// The gateway's IPv4 address on [`TestLan::GATEWAY_WAN_IF`].
fn wan_addr(lan: &TestLan) -> Result<Ipv4Addr, TestNetError> {
    let out = run_with_stdin(
        lan.gateway_cmd("ip")
            .args(["-4", "-o", "addr", "show", "dev", TestLan::GATEWAY_WAN_IF]),
        None,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| {
            TestNetError::io(
                format!("no IPv4 address on the gateway's WAN interface: {text}"),
                io::ErrorKind::NotFound.into(),
            )
        })
}

/// `upnpc -i -e DESC -a CLIENT PORT EXT_PORT PROTO` on LAN host `host`
/// (`-i`: use the IGD although its external address is a reserved one):
/// maps the gateway's external `ext_port` to `client:port`, `proto` being
/// `TCP` or `UDP`. With miniupnpd's `secure_mode`, `client` must be the
/// host's own address. Returns upnpc's output; an error (with that output)
/// unless upnpc reports the redirection.
pub fn upnp_add(
    lan: &TestLan,
    host: &str,
    client: Ipv4Addr,
    port: u16,
    ext_port: u16,
    proto: &str,
    desc: &str,
) -> Result<String, TestNetError> {
    let (port, ext_port) = (port.to_string(), ext_port.to_string());
    let client_s = client.to_string();
    let args = ["-e", desc, "-a", &client_s, &port, &ext_port, proto];
    let expect = format!("is redirected to internal {client}:{port}");
    upnpc(lan, host, &args, |out| {
        out.contains(&expect) && !out.contains("failed")
    })
}

/// `upnpc -i -d EXT_PORT PROTO` on LAN host `host`: deletes the mapping of
/// the gateway's external `ext_port`. Returns upnpc's output; an error (with
/// that output) unless upnpc reports success.
pub fn upnp_delete(
    lan: &TestLan,
    host: &str,
    ext_port: u16,
    proto: &str,
) -> Result<String, TestNetError> {
    let ext_port = ext_port.to_string();
    upnpc(lan, host, &["-d", &ext_port, proto], |out| {
        out.contains("UPNP_DeletePortMapping() returned : 0") && !out.contains("failed")
    })
}

/// `upnpc -i ARGS` on host `host`; its stdout and stderr, if it exits
/// successfully and `ok` accepts them.
fn upnpc(
    lan: &TestLan,
    host: &str,
    args: &[&str],
    ok: impl FnOnce(&str) -> bool,
) -> Result<String, TestNetError> {
    if lan.host(host).is_none() {
        return Err(TestNetError::InvalidSpec(format!("no LAN host {host:?}")));
    }
    let mut cmd = lan.host_cmd(host, "upnpc");
    cmd.arg("-i").args(args).stdin(Stdio::null());
    let line = describe(&cmd);
    let out = cmd.output().map_err(|source| TestNetError::Spawn {
        cmd: line.clone(),
        source,
    })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && ok(&text) {
        Ok(text)
    } else {
        Err(TestNetError::Command {
            cmd: line,
            status: out.status.to_string(),
            stderr: text.trim().to_string(),
        })
    }
}

/// `cmd`'s command line, for errors.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A STUN server on a thread until dropped.
struct StunServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StunServer {
    fn serve(sock: UdpSocket) -> Result<StunServer, TestNetError> {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| TestNetError::io("setting the STUN socket's timeout", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("vigil-stun".into())
            .spawn(move || {
                let mut buf = [0u8; 2048];
                while !flag.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        if let Some(answer) = stun_answer(&buf[..n], from) {
                            let _ = sock.send_to(&answer, from);
                        }
                    }
                }
            })
            .map_err(|e| TestNetError::io("starting the STUN thread", e))?;
        Ok(StunServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for StunServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A STUN binding response (RFC 5389) telling the sender its own address,
/// as MAPPED-ADDRESS: all miniupnpd's check needs (it sends four requests
/// and wants four answers, the first from the address it asked, each with
/// its own port).
fn stun_answer(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let SocketAddr::V4(from) = from else {
        return None;
    };
    if request.len() < 20 || request[..2] != [0, 1] {
        return None;
    }
    let mut out = vec![0x01, 0x01, 0, 12];
    out.extend_from_slice(&request[4..20]); // magic cookie + transaction id
    out.extend_from_slice(&[0, 1, 0, 8, 0, 1]);
    out.extend_from_slice(&from.port().to_be_bytes());
    out.extend_from_slice(&from.ip().octets());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stun_answer_is_what_miniupnpd_expects() {
        let mut request = vec![0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42];
        request.extend(1..=12u8);
        request.extend([0, 3, 0, 4, 0, 0, 0, 6]);
        let from: SocketAddr = "203.0.113.2:40000".parse().unwrap();
        let answer = stun_answer(&request, from).unwrap();
        assert_eq!(&answer[..4], [1, 1, 0, 12]);
        assert_eq!(&answer[4..20], &request[4..20]);
        assert_eq!(
            &answer[20..],
            [0, 1, 0, 8, 0, 1, 0x9c, 0x40, 203, 0, 113, 2]
        );
        assert!(stun_answer(&[0, 1], from).is_none());
        assert!(stun_answer(
            &[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            from
        )
        .is_none());
    }
}
