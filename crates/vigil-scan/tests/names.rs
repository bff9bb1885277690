//! `vigil_scan::names` against real responders in network namespaces:
//! dnsmasq for PTR, a NetBIOS node-status responder, avahi-daemon for
//! mDNS, and a lying mDNS responder. The lookups run in the scanner
//! namespace; the devices are addresses of the target namespace on one
//! link, `203.0.113.0/24` (mDNS responders answer unicast queries only
//! from their own link).
//!
//! Root only: without root (or without avahi, for the mDNS tests) a test
//! prints SKIPPED and passes, unless `VIGIL_REQUIRE_AVAHI=1`.
#![cfg(target_os = "linux")]

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{DNSClass, Name, RData, Record};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil_scan::names::{
    lookup_names, mdns_reverse, node_status, reverse_dns, NameLookup, NameSource,
};
use vigil_testnet::{dnsmasq_available, require_root, DnsServer, DnsSpec, NetSpec, TestNet};

/// The scanner's address on the shared link.
const SCANNER: &str = "203.0.113.1";
/// Runs avahi (host name `printer-7`) and a NetBIOS responder (`PRINTER7`).
const PRINTER: &str = "203.0.113.2";
/// Answers node status as `FILES01`; no mDNS, no PTR.
const FILES: &str = "203.0.113.3";
/// Has a PTR (`web01.acme.test`) and answers node status as `WEB01`.
const WEB: &str = "203.0.113.4";
/// A lying mDNS responder (see `liar`).
const LIAR: &str = "203.0.113.5";
/// The liar's other address: its good answer comes from there.
const LIAR_OTHER: &str = "203.0.113.6";
/// On the link, but nothing there answers.
const SILENT: &str = "203.0.113.7";
/// The DNS server (dnsmasq).
const DNS: &str = "198.51.100.53";
/// The mDNS host name avahi is given.
const AVAHI_HOST: &str = "printer-7";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A test network whose two namespaces share the link `203.0.113.0/24`:
/// the scanner is `.1`, the target side's link device has `PRINTER`; the
/// other devices are addresses of the target's `lo` (reached over the link
/// all the same).
struct Lan {
    net: TestNet,
    /// The target side's link device (avahi's only interface).
    dev_t: String,
}

/// A [`Lan`], or `None` when this process cannot build one.
fn lan() -> Option<Lan> {
    if !require_root() {
        return None;
    }
    let net = TestNet::new(NetSpec::default()).expect("test network");
    let link = |ns: &str| -> String {
        // The namespace's one device besides `lo`: its end of the link.
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .find(|name| name != "lo")
            .expect("a link device")
    };
    let ip_in = |ns: &str, args: &[&str]| {
        let st = Command::new("ip")
            .arg("-n")
            .arg(ns)
            .args(args)
            .status()
            .expect("ip");
        assert!(st.success(), "ip -n {ns} {args:?}");
    };
    let (s, t) = (net.scanner_ns().to_owned(), net.target_ns().to_owned());
    ip_in(
        &s,
        &["addr", "add", &format!("{SCANNER}/24"), "dev", &link(&s)],
    );
    let dev_t = link(&t);
    ip_in(
        &t,
        &["addr", "add", &format!("{PRINTER}/24"), "dev", &dev_t],
    );
    for host in [FILES, WEB, LIAR, LIAR_OTHER] {
        net.add_host(ip(host)).expect("add host");
    }
    Some(Lan { net, dev_t })
}

/// `make()`'s future, run to its end on a thread in the scanner namespace
/// (its sockets are opened there).
fn in_scanner<T: Send, F: Future<Output = T>>(net: &TestNet, make: impl FnOnce() -> F + Send) -> T {
    net.in_scanner(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(make())
    })
    .expect("scanner namespace")
}

fn skip(why: &str) {
    assert!(
        std::env::var("VIGIL_REQUIRE_AVAHI").as_deref() != Ok("1"),
        "VIGIL_REQUIRE_AVAHI=1, but {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// A NetBIOS node-status responder answering as `name` on `addr:137`.
fn netbios_responder(net: &TestNet, addr: &str, name: &'static str) {
    let at = format!("{addr}:137");
    let socket = net
        .in_target(move || UdpSocket::bind(at))
        .expect("namespace")
        .expect("bind UDP 137");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            // A node-status question: QTYPE 0x0021 after the 34-byte name.
            if n < 50 || buf[46..48] != [0, 0x21] {
                continue;
            }
            let mut reply = Vec::new();
            reply.extend_from_slice(&buf[..2]);
            reply.extend_from_slice(&[0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
            reply.extend_from_slice(&buf[12..46]);
            reply.extend_from_slice(&[0, 0x21, 0, 1, 0, 0, 0, 0]);
            let entries: [(&str, u8, u16); 2] = [(name, 0x00, 0x0400), (name, 0x20, 0x0400)];
            reply.extend_from_slice(&((1 + entries.len() * 18 + 6) as u16).to_be_bytes());
            reply.push(entries.len() as u8);
            for (n, suffix, flags) in entries {
                reply.extend_from_slice(format!("{n:<15}").as_bytes());
                reply.push(suffix);
                reply.extend_from_slice(&flags.to_be_bytes());
            }
            reply.extend_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
            let _ = socket.send_to(&reply, from);
        }
    });
}

/// dnsmasq with a PTR for `WEB` and for `PRINTER` (`printer.acme.test`).
fn dns(net: &TestNet, dir: &Path) -> Option<DnsServer> {
    if !dnsmasq_available() {
        eprintln!("(no dnsmasq: PTR lookups not tested)");
        return None;
    }
    let spec = DnsSpec {
        listen: Some(ip(DNS)),
        records: vec![
            (ip(WEB), "web01.acme.test".into()),
            (ip(PRINTER), "printer.acme.test".into()),
        ],
        zones: vec!["acme.test".into(), "113.0.203.in-addr.arpa".into()],
        forward: Vec::new(),
    };
    Some(DnsServer::start(net, &spec, dir).expect("dnsmasq"))
}

/// avahi-daemon on the target's side of the link, host name
/// [`AVAHI_HOST`], answering for `PRINTER`. Stopped when dropped.
struct Avahi(Child);

impl Avahi {
    fn available() -> bool {
        Command::new("avahi-daemon")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(lan: &Lan, dir: &Path) -> Avahi {
        let conf = dir.join("avahi-daemon.conf");
        std::fs::write(
            &conf,
            format!(
                "[server]\nhost-name={AVAHI_HOST}\ndomain-name=local\nuse-ipv4=yes\nuse-ipv6=no\n\
                 allow-interfaces={dev}\nenable-dbus=no\nratelimit-interval-usec=0\n\
                 [wide-area]\nenable-wide-area=no\n\
                 [publish]\npublish-addresses=yes\npublish-hinfo=no\npublish-workstation=no\n\
                 publish-domain=no\n",
                dev = lan.dev_t
            ),
        )
        .expect("avahi config");
        let log = std::fs::File::create(dir.join("avahi.log")).expect("avahi log");
        // `ip netns exec` runs it in a mount namespace of its own: the
        // tmpfs over /run (for avahi's pid file, which would clash with
        // another avahi on this machine) is seen by it alone.
        let child = lan
            .net
            .target_cmd("sh")
            .arg("-c")
            .arg(format!(
                "mount -t tmpfs vigil-avahi /run && mkdir /run/avahi-daemon && \
                 exec avahi-daemon --file={} --no-drop-root --no-chroot --no-rlimits --no-proc-title --debug",
                conf.display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start avahi-daemon");
        Avahi(child)
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An mDNS responder on `LIAR:5353` that answers every query for its
/// reverse name with bad replies — another id, another name, another
/// port, class CH, a query instead of a response — and last with a good
/// one, `liar-ok.local`, from its other address `LIAR_OTHER` (as a
/// responder answers from its interface's main address).
fn liar(net: &TestNet) {
    let (socket, other_addr, other_port) = net
        .in_target(|| {
            (
                UdpSocket::bind(format!("{LIAR}:5353")).expect("bind liar"),
                UdpSocket::bind(format!("{LIAR_OTHER}:5353")).expect("bind liar's other address"),
                UdpSocket::bind(format!("{LIAR}:0")).expect("bind liar's other port"),
            )
        })
        .expect("namespace");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(asked) = query.queries().first().map(|q| q.name().clone()) else {
                continue;
            };
            let reply =
                |id: u16, owner: &Name, class: DNSClass, kind: MessageType, target: &str| {
                    let mut msg = Message::new();
                    msg.set_id(id)
                        .set_message_type(kind)
                        .set_authoritative(true);
                    msg.add_queries(query.queries().to_vec());
                    let mut record = Record::from_rdata(
                        owner.clone(),
                        120,
                        RData::PTR(PTR(Name::from_ascii(target).unwrap())),
                    );
                    record.set_dns_class(class);
                    msg.add_answer(record);
                    msg.to_vec().unwrap()
                };
            let (id, ok, response) = (query.id(), DNSClass::IN, MessageType::Response);
            let other_name = Name::from(ip(SILENT));
            for bad in [
                reply(id.wrapping_add(1), &asked, ok, response, "wrong-id.local."),
                reply(id, &other_name, ok, response, "other-name.local."),
                reply(id, &asked, DNSClass::CH, response, "class-ch.local."),
                reply(id, &asked, ok, MessageType::Query, "a-query.local."),
            ] {
                let _ = socket.send_to(&bad, from);
            }
            let _ = other_port.send_to(&reply(id, &asked, ok, response, "wrong-port.local."), from);
            std::thread::sleep(Duration::from_millis(20));
            let _ = other_addr.send_to(&reply(id, &asked, ok, response, "liar-ok.local."), from);
        }
    });
}

/// Asks `mdns_reverse` about `PRINTER` until avahi answers (it probes
/// its host name for about a second first), 15 s at most.
fn wait_for_avahi(lan: &Lan, dir: &Path) -> HashMap<IpAddr, String> {
    let printer = [ip(PRINTER)];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let found = in_scanner(&lan.net, || {
            mdns_reverse(&printer, Duration::from_millis(300))
        });
        if !found.is_empty() {
            return found;
        }
        let log = std::fs::read_to_string(dir.join("avahi.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "avahi never answered; its log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ptr_and_netbios_name_hosts_in_that_order() {
    let Some(lan) = lan() else {
        eprintln!("SKIPPED: needs root (network namespaces)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(_dns) = dns(&lan.net, tmp.path()) else {
        eprintln!("SKIPPED: needs dnsmasq");
        return;
    };
    netbios_responder(&lan.net, FILES, "FILES01");
    netbios_responder(&lan.net, WEB, "WEB01");
    let addrs: Vec<IpAddr> = [WEB, FILES, SILENT, WEB].map(ip).to_vec();
    let how = NameLookup {
        mdns: false,
        timeout: Duration::from_millis(500),
        reply_wait: Duration::from_millis(500),
        name_servers: vec![SocketAddr::new(ip(DNS), 53)],
        ..NameLookup::default()
    };
    let started = Instant::now();
    let all = in_scanner(&lan.net, || lookup_names(&addrs, &how));
    let took = started.elapsed();
    let ptr = in_scanner(&lan.net, || {
        reverse_dns(&addrs, how.timeout, &how.name_servers)
    });
    let netbios = in_scanner(&lan.net, || node_status(&addrs, how.timeout));
    assert_eq!(
        all,
        HashMap::from([
            (ip(WEB), (NameSource::Dns, "web01.acme.test".to_string())),
            (ip(FILES), (NameSource::Netbios, "FILES01".to_string())),
        ])
    );
    assert_eq!(
        ptr,
        HashMap::from([(ip(WEB), "web01.acme.test".to_string())])
    );
    assert_eq!(
        netbios,
        HashMap::from([
            (ip(WEB), "WEB01".to_string()),
            (ip(FILES), "FILES01".to_string())
        ])
    );
    // The silent address costs one timeout, the lookups running at once.
    eprintln!("lookup_names took {took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn a_resolver_that_never_answers_costs_one_timeout() {
    let Some(lan) = lan() else {
        eprintln!("SKIPPED: needs root (network namespaces)");
        return;
    };
    // Nothing listens at this routed address: every query times out.
    let nowhere = vec![SocketAddr::new(ip("198.51.100.99"), 53)];
    let addrs: Vec<IpAddr> = (1..=50).map(|i| ip(&format!("198.51.100.{i}"))).collect();
    let started = Instant::now();
    let found = in_scanner(&lan.net, || {
        reverse_dns(&addrs, Duration::from_millis(300), &nowhere)
    });
    let took = started.elapsed();
    assert!(found.is_empty());
    // 50 lookups at once, each one 300 ms attempt.
    eprintln!("50 unanswered PTR lookups took {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn mdns_replies_must_answer_the_query() {
    let Some(lan) = lan() else {
        eprintln!("SKIPPED: needs root (network namespaces)");
        return;
    };
    liar(&lan.net);
    // The liar, an address where nothing answers, an IPv6 address with
    // no route, a link-local one (skipped).
    let addrs: Vec<IpAddr> = [LIAR, SILENT, "2001:db8:1::7", "fe80::1"].map(ip).to_vec();
    let started = Instant::now();
    let found = in_scanner(&lan.net, || {
        mdns_reverse(&addrs, Duration::from_millis(500))
    });
    let took = started.elapsed();
    assert_eq!(
        found,
        HashMap::from([(ip(LIAR), "liar-ok.local".to_string())])
    );
    eprintln!("mDNS of {} addresses took {took:?}", addrs.len());
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn mdns_reverse_lookup_asks_avahi() {
    if !require_root() {
        return skip("not root (network namespaces)");
    }
    if !Avahi::available() {
        return skip("avahi-daemon is not installed (Debian package avahi-daemon)");
    }
    let lan = lan().expect("test network");
    let tmp = tempfile::tempdir().unwrap();
    let _avahi = Avahi::start(&lan, tmp.path());
    let started = Instant::now();
    let found = wait_for_avahi(&lan, tmp.path());
    eprintln!("avahi answered {:?} after start", started.elapsed());
    assert_eq!(
        found,
        HashMap::from([(ip(PRINTER), format!("{AVAHI_HOST}.local"))])
    );
    // Answered at once, the other addresses (no responder) cost the wait.
    let addrs: Vec<IpAddr> = [PRINTER, FILES, SILENT].map(ip).to_vec();
    let started = Instant::now();
    let found = in_scanner(&lan.net, || {
        mdns_reverse(&addrs, Duration::from_millis(500))
    });
    let took = started.elapsed();
    assert_eq!(
        found,
        HashMap::from([(ip(PRINTER), format!("{AVAHI_HOST}.local"))])
    );
    eprintln!("mDNS of {} addresses took {took:?}", addrs.len());
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn lookup_names_prefers_ptr_then_mdns_then_netbios() {
    if !require_root() {
        return skip("not root (network namespaces)");
    }
    if !Avahi::available() {
        return skip("avahi-daemon is not installed (Debian package avahi-daemon)");
    }
    let lan = lan().expect("test network");
    let tmp = tempfile::tempdir().unwrap();
    let _avahi = Avahi::start(&lan, tmp.path());
    let dns = dns(&lan.net, tmp.path());
    netbios_responder(&lan.net, PRINTER, "PRINTER7");
    netbios_responder(&lan.net, FILES, "FILES01");
    wait_for_avahi(&lan, tmp.path());
    let addrs: &[IpAddr] = &[PRINTER, FILES, SILENT].map(ip);
    let look = |ptr: bool, mdns: bool| {
        let how = NameLookup {
            ptr,
            mdns,
            netbios: true,
            timeout: Duration::from_millis(500),
            reply_wait: Duration::from_millis(500),
            name_servers: vec![SocketAddr::new(ip(DNS), 53)],
        };
        let found = in_scanner(&lan.net, || async move { lookup_names(addrs, &how).await });
        let named = |addr: &str| {
            found
                .get(&ip(addr))
                .map(|(s, n)| (*s, n.as_str().to_owned()))
        };
        (named(PRINTER), named(FILES), named(SILENT))
    };
    let files = Some((NameSource::Netbios, "FILES01".to_string()));
    let mdns = Some((NameSource::Mdns, format!("{AVAHI_HOST}.local")));
    if dns.is_some() {
        let dns = Some((NameSource::Dns, "printer.acme.test".to_string()));
        assert_eq!(look(true, true), (dns, files.clone(), None));
    }
    assert_eq!(look(false, true), (mdns, files.clone(), None));
    let netbios = Some((NameSource::Netbios, "PRINTER7".to_string()));
    assert_eq!(look(false, false), (netbios, files, None));
}
