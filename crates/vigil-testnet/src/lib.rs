//! Isolated test networks for Vigil's integration tests and benchmarks.
//!
//! A [`TestNet`] is a pair of fresh Linux network namespaces: "scanner" (where
//! the code under test opens its sockets, see [`TestNet::in_scanner`]) and
//! "target" (where test hosts, listeners and firewall rules live). They are
//! joined by a veth pair, or — when [`NetSpec`] asks for latency or loss — by
//! two TUN devices and the `vigil-netem` relay process of this crate.
//!
//! Safety rule: only documentation/benchmark addresses are ever used
//! ([`ALLOWED_RANGES`]), there is no default route anywhere, and the root
//! namespace's network configuration is never touched.
//!
//! ```no_run
//! use std::net::{SocketAddr, TcpStream};
//! use std::time::Duration;
//! use vigil_testnet::{NetSpec, TestNet};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = TestNet::new(NetSpec { rtt: Duration::from_millis(20), loss: 0.0 })?;
//! net.add_host("198.51.100.2".parse()?)?;
//! let addr: SocketAddr = "198.51.100.2:80".parse()?;
//! let _listener = net.listen(addr, Some(b"hello\r\n".to_vec()))?;
//! let ok = net.in_scanner(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())?;
//! assert!(ok);
//! # Ok(()) }
//! ```
//!
//! Requires root (see [`require_root`]); the relay binary must be built
//! (`cargo build -p vigil-testnet --bins`) when latency or loss is used.

mod dns;
mod error;
mod lan;
mod link;
mod listener;
mod nft;
pub mod nmap;
mod ns;
mod safety;
mod upnp;

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use dns::{dnsmasq_available, DnsServer, DnsSpec};
pub use error::TestNetError;
pub use lan::{LanHost, TestLan};
pub use listener::Listener;
pub use safety::ALLOWED_RANGES;
pub use upnp::{miniupnpd_missing, upnp_add, upnp_delete, UpnpGateway, MINIUPNPD};

use link::Relay;
use listener::Hub;
use ns::Namespace;

/// The scanner namespace's IPv4 source address.
pub const SCANNER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The scanner namespace's IPv6 source address.
pub const SCANNER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
/// Ranges routed from scanner to target by every [`TestNet`]:
/// `198.51.100.0/24` and `2001:db8:1::/64`.
pub const DEFAULT_RANGES: [IpNet; 2] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0),
        64,
    )),
];

/// Link characteristics between the scanner and the target namespace.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NetSpec {
    /// Round-trip time added by the link (half per direction).
    pub rtt: Duration,
    /// Probability in `[0, 1]` that a packet is dropped, per direction.
    pub loss: f64,
}

/// Two connected network namespaces; see the crate docs. Dropping it stops
/// the listeners and the relay and deletes both namespaces.
pub struct TestNet {
    hub: Option<Hub>,
    relay: Option<Relay>,
    dev_s: String,
    // Declared last: namespaces are deleted after everything inside them.
    scanner: Namespace,
    target: Namespace,
}

impl std::fmt::Debug for TestNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNet")
            .field("scanner", &self.scanner.name())
            .field("target", &self.target.name())
            .field("relay", &self.relay.is_some())
            .finish()
    }
}

impl TestNet {
    /// Creates two fresh namespaces, "scanner" and "target", with unique
    /// names (`vt<pid>-<n>s` / `vt<pid>-<n>t`, also used for the link
    /// devices), `lo` up in both.
    ///
    /// The link is a veth pair if `spec` has neither latency nor loss,
    /// otherwise two TUN devices joined by the `vigil-netem` relay, which
    /// delays each packet by `rtt / 2` and drops it with probability `loss`,
    /// in each direction.
    ///
    /// The scanner side gets [`SCANNER_V4`] and [`SCANNER_V6`] as source
    /// addresses and routes [`DEFAULT_RANGES`] to the link; the target side
    /// routes the scanner addresses back. There is no default route, and
    /// forwarding is off in the target namespace, so packets to addresses
    /// not added with [`TestNet::add_host`] are silently dropped, just like
    /// packets to hosts that are down.
    pub fn new(spec: NetSpec) -> Result<TestNet, TestNetError> {
        if !(0.0..=1.0).contains(&spec.loss) {
            return Err(TestNetError::InvalidSpec(format!(
                "loss {} is not within [0, 1]",
                spec.loss
            )));
        }
        let base = ns::next_base();
        let (dev_s, dev_t) = (format!("{base}s"), format!("{base}t"));
        let scanner = Namespace::create(dev_s.clone())?;
        let target = Namespace::create(dev_t.clone())?;
        let relay = if spec.rtt.is_zero() && spec.loss == 0.0 {
            link::veth(&scanner, &target, &dev_s, &dev_t)?;
            None
        } else {
            let relay = Relay::start(&scanner, &target, &dev_s, &dev_t, &spec)?;
            scanner.ip(&["link", "set", &dev_s, "up"])?;
            target.ip(&["link", "set", &dev_t, "up"])?;
            Some(relay)
        };
        let net = TestNet {
            hub: Some(Hub::new()?),
            relay,
            dev_s,
            scanner,
            target,
        };
        net.configure(&dev_t)?;
        Ok(net)
    }

    fn configure(&self, dev_t: &str) -> Result<(), TestNetError> {
        let (v4, v6) = (SCANNER_V4.to_string(), SCANNER_V6.to_string());
        let dev_s = self.dev_s.as_str();
        self.scanner
            .ip(&["addr", "add", &format!("{v4}/32"), "dev", dev_s])?;
        #[rustfmt::skip]
        self.scanner.ip(&["addr", "add", &format!("{v6}/128"), "dev", dev_s, "nodad"])?;
        self.target
            .ip(&["route", "add", &format!("{v4}/32"), "dev", dev_t])?;
        self.target
            .ip(&["route", "add", &format!("{v6}/128"), "dev", dev_t])?;
        self.target
            .run_in(|| -> std::io::Result<()> {
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "0")?;
                std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "0")
            })?
            .map_err(|e| TestNetError::io("disabling forwarding in the target namespace", e))?;
        DEFAULT_RANGES
            .iter()
            .try_for_each(|net| self.route_range(*net))
    }

    /// Name of the scanner namespace (usable with `ip netns exec`).
    pub fn scanner_ns(&self) -> &str {
        self.scanner.name()
    }

    /// Name of the target namespace.
    pub fn target_ns(&self) -> &str {
        self.target.name()
    }

    /// Makes programs started with [`TestNet::scanner_cmd`] resolve names
    /// with the DNS server at `server` (e.g. a test domain controller in
    /// the target namespace): writes `/etc/netns/<scanner>/resolv.conf`,
    /// which `ip netns exec` mounts over `/etc/resolv.conf`. Removed when
    /// the net is dropped. Code run with [`TestNet::in_scanner`] is not
    /// affected (it shares this process's mounts).
    pub fn set_scanner_dns(&self, server: IpAddr) -> Result<(), TestNetError> {
        let dir = self.scanner_etc();
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join("resolv.conf"),
                    format!("nameserver {server}\noptions timeout:2 attempts:1\n"),
                )
            })
            .map_err(|e| TestNetError::io("writing the scanner namespace's resolv.conf", e))
    }

    /// `/etc/netns/<scanner>`: files `ip netns exec` mounts over `/etc`.
    fn scanner_etc(&self) -> std::path::PathBuf {
        std::path::Path::new("/etc/netns").join(self.scanner.name())
    }

    /// Make `addr` a live host in the target namespace (assigned to `lo`
    /// there as /32 or /128). It must be reachable through a routed range
    /// ([`DEFAULT_RANGES`] or [`TestNet::route_range`]) to be scanned.
    pub fn add_host(&self, addr: IpAddr) -> Result<(), TestNetError> {
        safety::check_addr(addr)?;
        let (prefix, flags): (String, &[&str]) = match addr {
            IpAddr::V4(a) => (format!("{a}/32"), &[]),
            IpAddr::V6(a) => (format!("{a}/128"), &["nodad"]),
        };
        let mut args = vec!["addr", "add", &prefix, "dev", "lo"];
        args.extend_from_slice(flags);
        self.target.ip(&args)
    }

    /// Route a whole range from the scanner to the target namespace, e.g.
    /// `198.19.0.0/16` or `2001:db8:2::/112` (not `198.18.0.0/16`: it holds
    /// the scanner's own address). Addresses in it that were not added with
    /// [`TestNet::add_host`] silently drop packets (a blackhole route in the
    /// target namespace).
    pub fn route_range(&self, net: IpNet) -> Result<(), TestNetError> {
        safety::check_net(net)?;
        let src = match net {
            IpNet::V4(_) => SCANNER_V4.to_string(),
            IpNet::V6(_) => SCANNER_V6.to_string(),
        };
        let net = net.trunc().to_string();
        self.scanner
            .ip(&["route", "add", &net, "dev", &self.dev_s, "src", &src])?;
        self.target.ip(&["route", "add", "blackhole", &net])
    }

    /// Start a TCP listener in the target namespace on `addr` (whose IP must
    /// have been added with [`TestNet::add_host`]; port 0 picks a free port,
    /// see [`Listener::local_addr`]). Every connection is accepted, sent
    /// `banner` if given, and closed. The backlog is 4096 and the accept
    /// queue is drained continuously by one shared thread. Dropping the
    /// [`Listener`] closes the port.
    pub fn listen(
        &self,
        addr: SocketAddr,
        banner: Option<Vec<u8>>,
    ) -> Result<Listener, TestNetError> {
        safety::check_addr(addr.ip())?;
        let sock = self
            .target
            .run_in(move || listener::bind(addr))?
            .map_err(|e| TestNetError::io(format!("bind {addr} in {}", self.target.name()), e))?;
        self.hub()?.add(sock, banner)
    }

    fn hub(&self) -> Result<&Hub, TestNetError> {
        self.hub.as_ref().ok_or_else(|| {
            TestNetError::io(
                "listener hub",
                std::io::Error::other("the TestNet is being dropped"),
            )
        })
    }

    /// Silently drop TCP to `addr:port` in the target namespace (a
    /// "filtered" port), via table `inet vigiltest`, chain `input`.
    pub fn filter_port(&self, addr: IpAddr, port: u16) -> Result<(), TestNetError> {
        safety::check_addr(addr)?;
        nft::drop_tcp(&self.target, addr, Some(port))
    }

    /// Silently drop all TCP to `addr` (a completely firewalled host).
    pub fn filter_host(&self, addr: IpAddr) -> Result<(), TestNetError> {
        safety::check_addr(addr)?;
        nft::drop_tcp(&self.target, addr, None)
    }

    /// Make connects to `addr` fail at once with `EHOSTUNREACH`: an
    /// `unreachable` route for `addr/32` or `/128` in the scanner namespace.
    pub fn unreachable_host(&self, addr: IpAddr) -> Result<(), TestNetError> {
        safety::check_addr(addr)?;
        let prefix = match addr {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        };
        self.scanner.ip(&["route", "add", "unreachable", &prefix])
    }

    /// A command that runs `program` inside the scanner namespace
    /// (`ip netns exec NS program`); add arguments as usual.
    pub fn scanner_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.scanner.exec(program)
    }

    /// A command that runs `program` inside the target namespace.
    pub fn target_cmd(&self, program: impl AsRef<OsStr>) -> Command {
        self.target.exec(program)
    }

    /// Run `f` on a thread that has entered the scanner namespace and return
    /// its value. Sockets created there stay in that namespace, and threads
    /// or processes spawned from `f` start in it. A panic in `f` is
    /// propagated.
    pub fn in_scanner<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, TestNetError> {
        self.scanner.run_in(f)
    }

    /// Like [`TestNet::in_scanner`], for the target namespace.
    pub fn in_target<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, TestNetError> {
        self.target.run_in(f)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Close listener sockets first (they pin the namespace), then stop
        // the relay; the namespaces are deleted when the fields drop.
        drop(self.hub.take());
        drop(self.relay.take());
        // Namespace names are unique to this process: the directory, if
        // any, was made by set_scanner_dns.
        let _ = std::fs::remove_dir_all(self.scanner_etc());
    }
}

/// True if this process can build test networks: effective uid 0, `ip`
/// runs, and a network namespace can actually be created. Tests use it to
/// skip with a clear message.
pub fn require_root() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return false;
        }
        let ip_ok = Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        // unshare on a throwaway thread only affects that thread.
        // SAFETY: plain syscall.
        ip_ok
            && std::thread::spawn(|| unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0)
                .join()
                .unwrap_or(false)
    })
}
