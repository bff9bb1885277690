//! The gateway port-forward audit on a bridged test LAN
//! ([`vigil_testnet::TestLan`]): against Debian's miniupnpd (UPnP IGD and
//! NAT-PMP) in the LAN's gateway namespace, without any gateway, against a
//! hostile LAN host, and against a NAT-PMP gateway that stutters.
//!
//! Root only: prints SKIPPED and passes otherwise, or when miniupnpd,
//! upnpc or nft are missing — unless `VIGIL_REQUIRE_MINIUPNPD=1`, then
//! those are failures.
//!
//! The gateway is [`vigil_testnet::UpnpGateway`]; its external address is
//! the gateway's WAN address, 203.0.113.2.
#![cfg(target_os = "linux")]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_agent::gateway::{self, AuditConfig, GatewayAudit, PortForward};
use vigil_testnet::{miniupnpd_missing, require_root, upnp_add, upnp_delete, TestLan, UpnpGateway};

const SUBNET: &str = "198.51.100.0/24";
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const GATEWAY_LAN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const GATEWAY_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const PC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
const TIMEOUT: Duration = Duration::from_secs(5);
/// How much later than its timeout an audit may return.
const SLACK: Duration = Duration::from_millis(700);

/// True (after printing why) if the test cannot run here; panics instead
/// when `VIGIL_REQUIRE_MINIUPNPD=1`.
fn skip(needs_miniupnpd: bool) -> bool {
    let required = std::env::var("VIGIL_REQUIRE_MINIUPNPD").is_ok_and(|v| v == "1");
    let missing = if !require_root() {
        Some("root with `ip` and permission to create network namespaces".to_string())
    } else if needs_miniupnpd {
        miniupnpd_missing()
    } else {
        None
    };
    match missing {
        None => false,
        Some(what) if required => panic!("VIGIL_REQUIRE_MINIUPNPD=1 but this needs {what}"),
        Some(what) => {
            eprintln!("SKIPPED: needs {what}");
            true
        }
    }
}

fn lan() -> TestLan {
    TestLan::new(SUBNET.parse().unwrap(), AGENT).unwrap()
}

/// Runs the audit on a thread inside the agent namespace, with a runtime
/// of its own; returns it and how long it took.
fn audit_in_agent(
    lan: &TestLan,
    gateway: Option<Ipv4Addr>,
    timeout: Duration,
) -> (GatewayAudit, Duration) {
    let cfg = AuditConfig {
        timeout,
        gateway: gateway.map(IpAddr::V4),
    };
    lan.in_agent(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        let audit = rt.block_on(gateway::audit(&cfg));
        (audit, started.elapsed())
    })
    .unwrap()
}

/// A UDP socket served by a thread until dropped.
struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Serves `sock` (bound wherever the test needs it) with `answer`,
    /// called per datagram with its bytes and sender.
    fn serve(
        sock: UdpSocket,
        mut answer: impl FnMut(&UdpSocket, &[u8], SocketAddr) + Send + 'static,
    ) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    answer(&sock, &buf[..n], from);
                }
            }
        });
        Responder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn lists_upnp_forwards_and_natpmp_from_miniupnpd() {
    if skip(true) {
        return;
    }
    let mut lan = lan();
    lan.add_host("pc", [0x02, 0x00, 0x5e, 0x00, 0x00, 0x20], PC)
        .unwrap();
    lan.add_gateway(GATEWAY_LAN, GATEWAY_WAN).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let upnpd = UpnpGateway::start(&lan, dir.path()).unwrap();
    assert_eq!(upnpd.external_addr(), GATEWAY_WAN);

    // Nothing forwarded yet.
    let (audit, took) = audit_in_agent(&lan, Some(GATEWAY_LAN), TIMEOUT);
    eprintln!("empty audit in {took:?}: {audit:#?}");
    assert_eq!(audit.answered, ["upnp", "nat-pmp", "pcp"], "{audit:#?}");
    assert!(audit.forwards.is_empty(), "{audit:#?}");

    let out = upnp_add(&lan, "pc", PC, 3389, 3389, "TCP", "test rdp").unwrap();
    eprintln!("upnpc -a:\n{out}");

    let (audit, took) = audit_in_agent(&lan, Some(GATEWAY_LAN), TIMEOUT);
    eprintln!("audit in {took:?}: {audit:#?}");
    assert!(took < TIMEOUT + SLACK, "{took:?}");
    assert_eq!(audit.answered, ["upnp", "nat-pmp", "pcp"], "{audit:#?}");
    assert_eq!(audit.gateway.as_deref(), Some("198.51.100.1"));
    assert_eq!(audit.friendly_name.as_deref(), Some("Vigil Test Router"));
    assert_eq!(audit.external_address.as_deref(), Some("203.0.113.2"));
    assert!(audit.problems.is_empty(), "{audit:#?}");
    assert_eq!(audit.forwards.len(), 1, "{audit:#?}");
    let f = &audit.forwards[0];
    assert!(f.lease_secs > 0, "{f:?}");
    assert_eq!(
        *f,
        PortForward {
            protocol: "tcp".into(),
            external_port: 3389,
            internal_client: "198.51.100.20".into(),
            internal_port: 3389,
            description: "test rdp".into(),
            enabled: true,
            remote_host: String::new(),
            lease_secs: f.lease_secs,
            source: "upnp".into(),
        }
    );

    // Without knowing the gateway: found by multicast alone, NAT-PMP asked
    // at the device UPnP found.
    let (blind, took) = audit_in_agent(&lan, None, TIMEOUT);
    eprintln!("audit without a known gateway in {took:?}: {blind:#?}");
    assert_eq!(blind.answered, audit.answered);
    // The same mapping; its lease ran down meanwhile.
    let unleased = |f: &[PortForward]| -> Vec<PortForward> {
        f.iter()
            .map(|f| PortForward {
                lease_secs: 0,
                ..f.clone()
            })
            .collect()
    };
    assert_eq!(unleased(&blind.forwards), unleased(&audit.forwards));
    assert_eq!(blind.external_address, audit.external_address);

    let out = upnp_delete(&lan, "pc", 3389, "TCP").unwrap();
    eprintln!("upnpc -d:\n{out}");
    // A refusal is an error: secure_mode allows no mapping to another host.
    let other = Ipv4Addr::new(198, 51, 100, 66);
    let refused = upnp_add(&lan, "pc", other, 22, 2222, "TCP", "not mine").unwrap_err();
    eprintln!("mapping another host: {refused}");
    let (after, took) = audit_in_agent(&lan, Some(GATEWAY_LAN), TIMEOUT);
    eprintln!("audit after the delete in {took:?}: {after:#?}");
    assert_eq!(after.answered, ["upnp", "nat-pmp", "pcp"]);
    assert!(after.forwards.is_empty(), "{after:#?}");
    assert!(after.problems.is_empty(), "{after:#?}");
    drop(upnpd);
}

#[test]
fn without_a_gateway_the_audit_is_quick_and_empty() {
    if skip(false) {
        return;
    }
    let timeout = Duration::from_secs(2);
    let mut lan = lan();
    let check = |audit: &GatewayAudit, took: Duration| {
        assert!(took < timeout + SLACK, "{took:?}");
        assert!(audit.answered.is_empty(), "{audit:#?}");
        assert!(audit.forwards.is_empty(), "{audit:#?}");
        assert_eq!(audit.external_address, None);
    };
    // No route anywhere: not even the multicast search can be sent.
    let (audit, took) = audit_in_agent(&lan, None, timeout);
    eprintln!("no route, {took:?}: {audit:#?}");
    check(&audit, took);
    assert!(took < Duration::from_millis(500), "{took:?}");

    // A configured gateway address where nobody is.
    let (audit, took) = audit_in_agent(&lan, Some(GATEWAY_LAN), timeout);
    eprintln!("nobody at the gateway address, {took:?}: {audit:#?}");
    check(&audit, took);

    // No gateway namespace to run miniupnpd in.
    let dir = tempfile::tempdir().unwrap();
    let err = UpnpGateway::start(&lan, dir.path()).unwrap_err();
    assert!(err.to_string().contains("add_gateway"), "{err}");

    // A gateway that speaks neither UPnP nor NAT-PMP.
    lan.add_gateway(GATEWAY_LAN, GATEWAY_WAN).unwrap();
    let (audit, took) = audit_in_agent(&lan, Some(GATEWAY_LAN), timeout);
    eprintln!("plain gateway, {took:?}: {audit:#?}");
    check(&audit, took);
    assert!(audit.problems.is_empty(), "{audit:#?}");
}

/// The description the hostile host serves: a WAN connection service whose
/// controlURL is on another host.
const HOSTILE_DESCRIPTION: &str = "<?xml version=\"1.0\"?><root><device>\
    <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>\
    <friendlyName>Totally the router</friendlyName><serviceList><service>\
    <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>\
    <controlURL>http://198.51.100.20:8080/ctl</controlURL></service></serviceList>\
    </device></root>";

#[test]
fn a_hostile_lan_host_cannot_steer_the_audit() {
    if skip(false) {
        return;
    }
    let evil = Ipv4Addr::new(198, 51, 100, 66);
    let mut lan = lan();
    lan.add_host("victim", [2, 0, 0, 0, 0, 0x20], PC).unwrap();
    lan.add_host("evil", [2, 0, 0, 0, 0, 0x66], evil).unwrap();
    // A gateway with nothing on it: the agent's route for multicast.
    lan.add_gateway(GATEWAY_LAN, GATEWAY_WAN).unwrap();

    // The victim counts every connection it gets.
    let victim = lan
        .in_host("victim", || TcpListener::bind("0.0.0.0:8080"))
        .unwrap()
        .unwrap();
    victim.set_nonblocking(true).unwrap();

    // The hostile host serves its description over HTTP...
    let web = lan
        .in_host("evil", || TcpListener::bind("0.0.0.0:8000"))
        .unwrap()
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for mut conn in web.incoming().flatten() {
            count.fetch_add(1, Ordering::Relaxed);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                HOSTILE_DESCRIPTION.len(),
                HOSTILE_DESCRIPTION
            );
        }
    });
    // ...and answers every search twice: with a LOCATION on the victim, and
    // with one on itself (whose controlURL is on the victim).
    let ssdp = lan
        .in_host("evil", move || -> std::io::Result<UdpSocket> {
            let s = UdpSocket::bind("0.0.0.0:1900")?;
            s.join_multicast_v4(&Ipv4Addr::new(239, 255, 255, 250), &evil)?;
            Ok(s)
        })
        .unwrap()
        .unwrap();
    let _ssdp = Responder::serve(ssdp, |sock, request, from| {
        if !request.starts_with(b"M-SEARCH") {
            return;
        }
        for location in [
            "http://198.51.100.20:8080/rootDesc.xml",
            "http://198.51.100.66:8000/rootDesc.xml",
        ] {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
                 LOCATION: {location}\r\nSERVER: evil/1 UPnP/1.1 evil/1\r\n\r\n"
            );
            let _ = sock.send_to(answer.as_bytes(), from);
        }
    });

    let (audit, took) = audit_in_agent(&lan, None, TIMEOUT);
    eprintln!("hostile LAN, {took:?}: {audit:#?}");
    assert!(
        audit.answered.is_empty() && audit.forwards.is_empty(),
        "{audit:#?}"
    );
    let problems = audit.problems.join("\n");
    assert!(
        problems.contains("ignored 198.51.100.66's answer: its LOCATION http://198.51.100.20:8080/rootDesc.xml points at 198.51.100.20"),
        "{problems}"
    );
    assert!(
        problems.contains("its controlURL http://198.51.100.20:8080/ctl points at 198.51.100.20"),
        "{problems}"
    );
    assert!(
        served.load(Ordering::Relaxed) >= 1,
        "the device's own description was read"
    );

    // Knowing the gateway, the impostor is not even asked, only reported.
    let (audit, _) = audit_in_agent(&lan, Some(GATEWAY_LAN), TIMEOUT);
    eprintln!("hostile LAN, gateway known: {audit:#?}");
    assert!(
        audit.answered.is_empty() && audit.forwards.is_empty(),
        "{audit:#?}"
    );
    let problems = audit.problems.join("\n");
    assert!(
        problems.contains("198.51.100.66 answered as an Internet gateway device but is not the default gateway 198.51.100.1"),
        "{problems}"
    );

    match victim.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the victim was contacted: {other:?}"),
    }
}

#[test]
fn natpmp_retries_past_garbage() {
    if skip(false) {
        return;
    }
    let fake = Ipv4Addr::new(198, 51, 100, 30);
    let mut lan = lan();
    lan.add_host("fake", [2, 0, 0, 0, 0, 0x30], fake).unwrap();
    let sock = lan
        .in_host("fake", move || UdpSocket::bind((fake, 5351)))
        .unwrap()
        .unwrap();
    // First request: answered with junk (too short, PCP, a mapping answer);
    // the retransmission gets the real answer. A PCP request gets what a
    // NAT-PMP-only gateway answers: "unsupported version".
    let requests = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&requests);
    let _natpmp = Responder::serve(sock, move |sock, request, from| {
        if request.first() == Some(&2) {
            let _ = sock.send_to(&[0, 0x80, 0, 1, 0, 0, 0, 5], from);
            return;
        }
        assert_eq!(request, [0, 0]);
        if count.fetch_add(1, Ordering::Relaxed) == 0 {
            for junk in [
                &[0u8][..],
                &[2, 0x80, 0, 0, 0, 0, 0, 1, 9, 9, 9, 9],
                &[0, 0x81, 0, 0],
            ] {
                let _ = sock.send_to(junk, from);
            }
        } else {
            let _ = sock.send_to(&[0, 0x80, 0, 0, 0, 0, 0, 5, 203, 0, 113, 77], from);
        }
    });
    let (audit, took) = audit_in_agent(&lan, Some(fake), TIMEOUT);
    eprintln!("stuttering NAT-PMP, {took:?}: {audit:#?}");
    assert_eq!(audit.answered, ["nat-pmp"]);
    assert_eq!(audit.gateway.as_deref(), Some("198.51.100.30"));
    assert_eq!(audit.external_address.as_deref(), Some("203.0.113.77"));
    assert!(audit.forwards.is_empty());
    assert!(requests.load(Ordering::Relaxed) >= 2);
}
