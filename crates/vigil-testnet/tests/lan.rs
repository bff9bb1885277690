//! The bridged test LAN: hosts answer from the agent namespace, ARP shows
//! their chosen MACs, renumbering keeps the MAC, removal takes them off the
//! LAN, the gateway forwards to its sealed internet. Skipped (with a
//! message) when not running as root.

use std::io::ErrorKind;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use vigil_testnet::{require_root, TestLan};

const TIMEOUT: Duration = Duration::from_millis(500);

fn skip() -> bool {
    if require_root() {
        return false;
    }
    eprintln!("SKIPPED: needs root with `ip` and permission to create network namespaces");
    true
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Open,
    Refused,
    /// Timed out, or ARP failed (host unreachable): nobody there.
    Silent,
}

fn connect(addr: Ipv4Addr, port: u16) -> Outcome {
    match TcpStream::connect_timeout(&SocketAddr::from((addr, port)), TIMEOUT) {
        Ok(_) => Outcome::Open,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Outcome::Refused,
        Err(e)
            if e.kind() == ErrorKind::TimedOut || e.raw_os_error() == Some(libc::EHOSTUNREACH) =>
        {
            Outcome::Silent
        }
        Err(e) => panic!("connect {addr}:{port}: {e}"),
    }
}

/// One ICMP echo to `addr` (raw socket, so no `ping` binary needed): true if
/// a reply came back within [`TIMEOUT`].
fn ping(addr: Ipv4Addr) -> bool {
    // SAFETY: plain syscall; the fd is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let id = (std::process::id() & 0xffff) as u16;
    let mut echo = [
        8u8,
        0,
        0,
        0,
        (id >> 8) as u8,
        id as u8,
        0,
        1,
        b'v',
        b'i',
        b'g',
        b'l',
    ];
    let sum = checksum(&echo);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    // SAFETY: zeroed sockaddr_in is valid; filled in below.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as libc::sa_family_t;
    to.sin_addr.s_addr = u32::from(addr).to_be();
    // SAFETY: valid buffer and sockaddr of the stated sizes.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            echo.as_ptr().cast(),
            echo.len(),
            0,
            (&to as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return false; // e.g. EHOSTUNREACH after a failed ARP
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) } <= 0 {
            return false;
        }
        // SAFETY: reading into a valid buffer of the stated size.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else {
            return false;
        };
        // IPv4 header (IHL words), then ICMP type 0 with our id.
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        if n >= ihl + 8
            && from == addr
            && buf[ihl] == 0
            && buf[ihl + 4..ihl + 6] == id.to_be_bytes()
        {
            return true;
        }
    }
    false
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The agent's neighbour table (`/proc/thread-self/net/arp`: `/proc/net` is
/// the main thread's namespace): complete entries only,
/// as (address, MAC).
fn arp_table(lan: &TestLan) -> Vec<(Ipv4Addr, String)> {
    let text = lan
        .in_agent(|| std::fs::read_to_string("/proc/thread-self/net/arp"))
        .unwrap()
        .unwrap();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // IP address, HW type, Flags (0x2 = complete), HW address, Mask, Device
            (cols.len() >= 6 && cols[2] == "0x2")
                .then(|| (cols[0].parse().unwrap(), cols[3].to_string()))
        })
        .collect()
}

fn mac_of(lan: &TestLan, addr: Ipv4Addr) -> Option<String> {
    arp_table(lan)
        .into_iter()
        .find(|(a, _)| *a == addr)
        .map(|(_, mac)| mac)
}

#[test]
fn hosts_answer_with_their_macs_and_can_move_or_leave() {
    if skip() {
        return;
    }
    let t = Instant::now();
    let mut lan = TestLan::new("198.51.100.0/24".parse().unwrap(), ip("198.51.100.10")).unwrap();
    let (nas, printer) = (ip("198.51.100.20"), ip("198.51.100.21"));
    lan.add_host("nas", [0x02, 0x00, 0x5e, 0x00, 0x00, 0x20], nas)
        .unwrap();
    lan.add_host("printer", [0x02, 0x00, 0x5e, 0x00, 0x00, 0x21], printer)
        .unwrap();
    lan.listen("nas", 445).unwrap();
    lan.listen("printer", 631).unwrap();
    assert_eq!(lan.host("nas").unwrap().addr(), nas);

    let agent_view = |lan: &TestLan, addr: Ipv4Addr, port: u16| {
        lan.in_agent(move || (ping(addr), connect(addr, port), connect(addr, port + 1)))
            .unwrap()
    };
    assert_eq!(
        agent_view(&lan, nas, 445),
        (true, Outcome::Open, Outcome::Refused)
    );
    assert_eq!(
        agent_view(&lan, printer, 631),
        (true, Outcome::Open, Outcome::Refused)
    );
    assert_eq!(mac_of(&lan, nas).as_deref(), Some("02:00:5e:00:00:20"));
    assert_eq!(mac_of(&lan, printer).as_deref(), Some("02:00:5e:00:00:21"));

    // `ip neigh` in the agent namespace agrees.
    let out = lan
        .agent_cmd("ip")
        .args(["neigh", "show", &nas.to_string()])
        .output()
        .unwrap();
    let neigh = String::from_utf8_lossy(&out.stdout);
    assert!(neigh.contains("lladdr 02:00:5e:00:00:20"), "{neigh}");

    // A host in another namespace sees the agent too (plain L2 segment).
    let out = lan
        .host_cmd("printer", "ip")
        .args(["-4", "addr", "show", "dev", TestLan::HOST_IF])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("198.51.100.21/24"));

    // DHCP renewal: new address, same MAC; the listener follows.
    let moved = ip("198.51.100.30");
    lan.set_host_addr("nas", moved).unwrap();
    assert_eq!(
        agent_view(&lan, moved, 445),
        (true, Outcome::Open, Outcome::Refused)
    );
    assert_eq!(mac_of(&lan, moved).as_deref(), Some("02:00:5e:00:00:20"));
    assert_eq!(
        lan.host("nas").unwrap().mac(),
        [0x02, 0x00, 0x5e, 0x00, 0x00, 0x20]
    );
    assert_eq!(
        lan.in_agent(move || connect(nas, 445)).unwrap(),
        Outcome::Silent
    );

    // Leaving: gone from the LAN, the other host stays.
    let ns = lan.host("printer").unwrap().ns().to_string();
    lan.remove_host("printer").unwrap();
    assert!(!std::path::Path::new("/run/netns").join(&ns).exists());
    assert!(lan.host("printer").is_none());
    assert_eq!(
        agent_view(&lan, printer, 631),
        (false, Outcome::Silent, Outcome::Silent)
    );
    assert_eq!(
        agent_view(&lan, moved, 445),
        (true, Outcome::Open, Outcome::Refused)
    );
    assert!(lan.remove_host("printer").is_err());
    eprintln!("lan test took {:?}", t.elapsed());
}

#[test]
fn refuses_foreign_addresses_and_duplicates() {
    if skip() {
        return;
    }
    assert!(TestLan::new("10.0.0.0/24".parse().unwrap(), ip("10.0.0.1")).is_err());
    assert!(TestLan::new("198.51.100.0/24".parse().unwrap(), ip("203.0.113.1")).is_err());
    let mut lan = TestLan::new("203.0.113.0/24".parse().unwrap(), ip("203.0.113.10")).unwrap();
    assert!(lan
        .add_host("x", [2, 0, 0, 0, 0, 1], ip("198.51.100.2"))
        .is_err());
    lan.add_host("x", [2, 0, 0, 0, 0, 1], ip("203.0.113.2"))
        .unwrap();
    assert!(lan
        .add_host("x", [2, 0, 0, 0, 0, 2], ip("203.0.113.3"))
        .is_err());
    assert!(lan.set_host_addr("nobody", ip("203.0.113.4")).is_err());
    assert!(lan.listen("nobody", 80).is_err());
}

#[test]
fn gateway_routes_to_a_sealed_internet() {
    if skip() {
        return;
    }
    let mut lan = TestLan::new("198.51.100.0/24".parse().unwrap(), ip("198.51.100.10")).unwrap();
    lan.add_host("early", [2, 0, 0, 0, 0, 0x20], ip("198.51.100.20"))
        .unwrap();
    let gw_ns = lan
        .add_gateway(ip("198.51.100.1"), ip("203.0.113.2"))
        .unwrap();
    lan.add_host("late", [2, 0, 0, 0, 0, 0x21], ip("198.51.100.21"))
        .unwrap();
    let internet = lan.internet_addr().unwrap();
    assert_eq!(internet, ip("203.0.113.1"));

    // The gateway's namespace is the one gateway_cmd runs in.
    let out = lan
        .gateway_cmd("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&out.stdout);
    assert!(
        addrs.contains("lan0") && addrs.contains("198.51.100.1/24"),
        "{addrs}"
    );
    assert!(
        addrs.contains("wan0") && addrs.contains("203.0.113.2/24"),
        "{addrs}"
    );
    assert!(lan
        .agent_cmd("true")
        .get_args()
        .any(|a| a == lan.agent_ns()));
    assert!(!gw_ns.is_empty());

    // Everyone has a default route through the gateway, which forwards.
    for cmd in [
        lan.agent_cmd("ip"),
        lan.host_cmd("early", "ip"),
        lan.host_cmd("late", "ip"),
    ] {
        let mut cmd = cmd;
        let out = cmd.args(["route", "show", "default"]).output().unwrap();
        let route = String::from_utf8_lossy(&out.stdout);
        assert!(route.contains("via 198.51.100.1"), "{route}");
    }
    assert!(lan.in_agent(move || ping(internet)).unwrap());

    // UDP from the agent reaches the internet namespace through the gateway.
    let server = lan
        .in_internet(move || UdpSocket::bind((internet, 3478)))
        .unwrap()
        .unwrap();
    server.set_read_timeout(Some(TIMEOUT)).unwrap();
    lan.in_agent(move || {
        UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"hi", (internet, 3478)))
    })
    .unwrap()
    .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from.ip()),
        (&b"hi"[..], ip("198.51.100.10").into())
    );

    // Sealed: nothing beyond the internet namespace is routed.
    let out = lan
        .in_internet(|| {
            std::process::Command::new("ip")
                .args(["route", "show", "default"])
                .output()
        })
        .unwrap()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn lans_coexist() {
    if skip() {
        return;
    }
    let subnet: ipnet::Ipv4Net = "198.18.5.0/24".parse().unwrap();
    let a = TestLan::new(subnet, ip("198.18.5.10")).unwrap();
    let b = TestLan::new(subnet, ip("198.18.5.10")).unwrap();
    assert_ne!(a.agent_ns(), b.agent_ns());
    let ns = a.agent_ns().to_string();
    drop(a);
    assert!(!std::path::Path::new("/run/netns").join(ns).exists());
    assert!(std::path::Path::new("/run/netns")
        .join(b.agent_ns())
        .exists());
}
