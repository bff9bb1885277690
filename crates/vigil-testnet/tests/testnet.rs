//! End-to-end tests: real namespaces, real TCP. Skipped (with a message)
//! when not running as root.

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_testnet::{require_root, NetSpec, TestNet};

const TIMEOUT: Duration = Duration::from_millis(300);

fn skip() -> bool {
    if require_root() {
        return false;
    }
    eprintln!("SKIPPED: needs root with `ip` and permission to create network namespaces");
    true
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Open,
    Refused,
    Timeout,
    Os(Option<i32>),
}

fn connect(addr: SocketAddr, timeout: Duration) -> Outcome {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Outcome::Open,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Outcome::Refused,
        Err(e) if e.kind() == ErrorKind::TimedOut => Outcome::Timeout,
        Err(e) => Outcome::Os(e.raw_os_error()),
    }
}

/// Connect from the scanner namespace.
fn probe(net: &TestNet, addr: SocketAddr) -> Outcome {
    net.in_scanner(move || connect(addr, TIMEOUT)).unwrap()
}

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// The port states a scanner must tell apart, for one address family.
fn port_states(host: &str, other: &str, unreachable: &str, down: &str) {
    if skip() {
        return;
    }
    let [host, other, unreachable, down]: [IpAddr; 4] =
        [host, other, unreachable, down].map(|s| s.parse().unwrap());
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(host).unwrap();
    net.add_host(other).unwrap();

    let open = net
        .listen(sa(host, 80), Some(b"hello\r\n".to_vec()))
        .unwrap();
    assert_eq!(probe(&net, sa(host, 80)), Outcome::Open);
    let banner = net
        .in_scanner(move || {
            let mut s = TcpStream::connect_timeout(&sa(host, 80), TIMEOUT)?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).map(|_| buf)
        })
        .unwrap()
        .unwrap();
    assert_eq!(banner, b"hello\r\n");

    assert_eq!(probe(&net, sa(host, 81)), Outcome::Refused);

    let _filtered = net.listen(sa(host, 82), None).unwrap();
    net.filter_port(host, 82).unwrap();
    assert_eq!(probe(&net, sa(host, 82)), Outcome::Timeout);

    let _other = net.listen(sa(other, 80), None).unwrap();
    assert_eq!(probe(&net, sa(other, 80)), Outcome::Open);
    net.filter_host(other).unwrap();
    assert_eq!(probe(&net, sa(other, 80)), Outcome::Timeout);
    assert_eq!(probe(&net, sa(other, 81)), Outcome::Timeout);

    net.unreachable_host(unreachable).unwrap();
    let t = Instant::now();
    assert_eq!(
        probe(&net, sa(unreachable, 80)),
        Outcome::Os(Some(libc::EHOSTUNREACH))
    );
    assert!(t.elapsed() < TIMEOUT);

    assert_eq!(probe(&net, sa(down, 80)), Outcome::Timeout);

    drop(open);
    assert_eq!(probe(&net, sa(host, 80)), Outcome::Refused);
}

#[test]
fn veth_ipv4_port_states() {
    port_states(
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.9",
        "198.51.100.50",
    );
}

#[test]
fn veth_ipv6_port_states() {
    port_states(
        "2001:db8:1::2",
        "2001:db8:1::3",
        "2001:db8:1::9",
        "2001:db8:1::50",
    );
}

#[test]
fn relay_adds_rtt() {
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec {
        rtt: Duration::from_millis(100),
        loss: 0.0,
    })
    .unwrap();
    for host in ["198.51.100.2", "2001:db8:1::2"] {
        let host: IpAddr = host.parse().unwrap();
        net.add_host(host).unwrap();
        let _l = net.listen(sa(host, 80), None).unwrap();
        for _ in 0..3 {
            let elapsed = net
                .in_scanner(move || {
                    let t = Instant::now();
                    let outcome = connect(sa(host, 80), Duration::from_secs(1));
                    (outcome, t.elapsed())
                })
                .unwrap();
            eprintln!("rtt 100ms: connect to {host} took {:?}", elapsed.1);
            assert_eq!(elapsed.0, Outcome::Open);
            assert!(
                elapsed.1 >= Duration::from_millis(95) && elapsed.1 < Duration::from_millis(200),
                "connect to {host} took {:?}",
                elapsed.1
            );
        }
        assert_eq!(probe(&net, sa(host, 81)), Outcome::Refused);
    }
}

#[test]
fn relay_drops_packets() {
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec {
        rtt: Duration::ZERO,
        loss: 0.3,
    })
    .unwrap();
    let host: IpAddr = "198.51.100.2".parse().unwrap();
    net.add_host(host).unwrap();
    let _l = net.listen(sa(host, 80), None).unwrap();
    const ATTEMPTS: usize = 200;
    const THREADS: usize = 40;
    // Threads spawned inside in_scanner inherit the scanner namespace.
    let failures = net
        .in_scanner(move || {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(move || {
                            (0..ATTEMPTS / THREADS)
                                .filter(|_| connect(sa(host, 80), TIMEOUT) != Outcome::Open)
                                .count()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<usize>()
            })
        })
        .unwrap();
    let fraction = failures as f64 / ATTEMPTS as f64;
    eprintln!("loss 0.3 per direction: {failures}/{ATTEMPTS} connects failed");
    // Expected 1 - 0.7^2 = 0.51.
    assert!(
        (0.2..=0.75).contains(&fraction),
        "failure fraction {fraction}"
    );
}

#[test]
fn listeners_are_cheap_and_drain_bursts() {
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).unwrap();
    let host: IpAddr = "198.51.100.2".parse().unwrap();
    net.add_host(host).unwrap();
    let listeners: Vec<_> = (1000..1300)
        .map(|port| net.listen(sa(host, port), None).unwrap())
        .collect();
    let any = net.listen(sa(host, 0), None).unwrap();
    assert_ne!(any.local_addr().port(), 0);
    // 3200 connects from 64 threads spread over the ports: none may fail.
    let failed = net
        .in_scanner(move || {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..64u16)
                    .map(|t| {
                        s.spawn(move || {
                            (0..50u16)
                                .map(|i| sa(host, 1000 + (t * 50 + i) % 300))
                                .filter(|a| connect(*a, Duration::from_secs(2)) != Outcome::Open)
                                .count()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .sum::<usize>()
            })
        })
        .unwrap();
    assert_eq!(failed, 0);
    drop(listeners);
    assert_eq!(probe(&net, sa(host, 1000)), Outcome::Refused);
    // A Listener may outlive its TestNet.
    drop(net);
    drop(any);
}

#[test]
fn routed_ranges() {
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.route_range("198.19.0.0/16".parse().unwrap()).unwrap();
    net.route_range("2001:db8:2::/112".parse().unwrap())
        .unwrap();
    for (live, dead) in [
        ("198.19.7.7", "198.19.8.8"),
        ("2001:db8:2::7", "2001:db8:2::8"),
    ] {
        let (live, dead): (IpAddr, IpAddr) = (live.parse().unwrap(), dead.parse().unwrap());
        net.add_host(live).unwrap();
        let _l = net.listen(sa(live, 80), None).unwrap();
        assert_eq!(probe(&net, sa(live, 80)), Outcome::Open);
        assert_eq!(probe(&net, sa(dead, 80)), Outcome::Timeout);
    }
    // Not routed at all: no route in the scanner namespace.
    assert_eq!(
        probe(&net, sa("203.0.113.5".parse().unwrap(), 80)),
        Outcome::Os(Some(libc::ENETUNREACH))
    );
}

#[test]
fn refuses_unsafe_addresses() {
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).unwrap();
    assert!(net.add_host("10.0.0.1".parse().unwrap()).is_err());
    assert!(net.add_host("198.18.0.1".parse().unwrap()).is_err());
    assert!(net.route_range("198.18.0.0/16".parse().unwrap()).is_err());
    assert!(net.route_range("0.0.0.0/0".parse().unwrap()).is_err());
    assert!(net.unreachable_host("1.1.1.1".parse().unwrap()).is_err());
}

#[test]
fn commands_run_inside_namespaces() {
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).unwrap();
    let out = net
        .scanner_cmd("ip")
        .args(["addr", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("198.18.0.1/32"), "{text}");
    assert!(text.contains("2001:db8:ffff::1/128"), "{text}");

    net.filter_port("198.51.100.2".parse().unwrap(), 22)
        .unwrap();
    let out = net
        .target_cmd("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("table inet vigiltest"), "{text}");
    assert!(text.contains("tcp dport 22 drop"), "{text}");

    // No default route on either side.
    for ns in [net.scanner_ns(), net.target_ns()] {
        for family in ["-4", "-6"] {
            let out = Command::new("ip")
                .args(["-n", ns, family, "route", "show", "default"])
                .output()
                .unwrap();
            assert!(out.status.success());
            assert!(
                out.stdout.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn drop_tears_down() {
    if skip() {
        return;
    }
    for spec in [
        NetSpec::default(),
        NetSpec {
            rtt: Duration::from_millis(2),
            loss: 0.0,
        },
    ] {
        let net = TestNet::new(spec).unwrap();
        let names = [net.scanner_ns().to_string(), net.target_ns().to_string()];
        assert_ne!(names[0], names[1]);
        assert!(names.iter().all(|n| n.len() <= 15));
        let listed = netns_list();
        assert!(
            names.iter().all(|n| listed.contains(n.as_str())),
            "{listed}"
        );
        drop(net);
        let listed = netns_list();
        for name in &names {
            assert!(
                !listed
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(name)),
                "{name} still listed: {listed}"
            );
        }
    }
}

/// Relay throughput at zero delay: UDP blasted from the scanner side,
/// counted on the target side. Run with `--ignored --nocapture`.
#[test]
#[ignore = "measurement; run manually"]
fn relay_throughput() {
    use std::net::UdpSocket;
    if skip() {
        return;
    }
    let net = TestNet::new(NetSpec {
        rtt: Duration::ZERO,
        loss: 1e-9,
    })
    .unwrap();
    let host: IpAddr = "198.51.100.2".parse().unwrap();
    net.add_host(host).unwrap();
    let rx = net
        .in_target(move || UdpSocket::bind(sa(host, 9999)))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let tx = net
        .in_scanner(|| UdpSocket::bind("198.18.0.1:0"))
        .unwrap()
        .unwrap();
    const SENT: usize = 200_000;
    let counter = std::thread::spawn(move || {
        let (mut n, mut buf) = (0usize, [0u8; 64]);
        let mut first = None;
        let mut last = Instant::now();
        while rx.recv(&mut buf).is_ok() {
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            n += 1;
        }
        (n, first.map(|f| last - f))
    });
    let t = Instant::now();
    let mut sent = 0;
    for i in 0..SENT {
        // Pace lightly so the TUN queue (500 packets) doesn't overflow.
        if i % 64 == 0 {
            std::thread::yield_now();
        }
        if tx.send_to(&[0u8; 32], sa(host, 9999)).is_ok() {
            sent += 1;
        }
    }
    let send_time = t.elapsed();
    let (received, span) = counter.join().unwrap();
    let span = span.unwrap_or_default();
    eprintln!(
        "sent {sent} in {send_time:?}, received {received} over {span:?}: {:.0} packets/s",
        received as f64 / span.as_secs_f64()
    );
}
