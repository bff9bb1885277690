//! Compliance on a real network (issue 15): endpoints found only by
//! address get names — reverse DNS from a real DNS server (dnsmasq) the
//! test starts, NetBIOS node status from a responder on UDP 137, the host
//! name an agent reports — and the silent addresses of a sparse range are
//! *no host at address*, apart from the machines that exist but do not
//! answer (named, or seen answering before), which stay *unreachable*.
//!
//! The real `vigil server` runs in the scanner namespace, with the test's
//! dnsmasq as its resolver (`/etc/netns/<scanner>/resolv.conf`); the hosts
//! are addresses of the target namespace.

mod common;

use common::can_build_networks;
use common::compliance::{fake_agent, names, owner_api, start_server, wait_done};
use common::server::{wait_for, Api};
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::time::Duration;
use vigil_proto::identify::IdentifyReply;
use vigil_testnet::{dnsmasq_available, DnsServer, DnsSpec, NetSpec, TestNet};

/// Answers on 135; PTR `web01.acme.test`.
const WEB: &str = "198.19.0.21";
/// Answers on 135 and NetBIOS node status as `FILES01`; no PTR.
const FILES: &str = "198.19.40.22";
/// An agent of another server reporting host name `web-agent`.
const AGENT: &str = "198.19.99.23";
/// Silent (firewalled), but has a PTR `web02.acme.test`: it exists.
const NAMED_SILENT: &str = "198.19.200.24";
/// Answers in the first assessment only.
const GONE: &str = "198.19.255.25";
/// The DNS server.
const DNS: &str = "198.51.100.53";
/// A sparse /16: five machines and 65,531 addresses nobody uses.
const SCOPE: &str = "198.19.0.0/16";
const EMPTY: u64 = 65_536 - 5;
const AGENT_PORT: u16 = 47_760;
const OTHER_SERVER: &str = "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";

/// A NetBIOS node-status responder answering as `name` on `addr:137`
/// (what Windows and Samba's nmbd answer: the names the host registered).
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
            let entries: [(&str, u8, u16); 3] = [
                (name, 0x00, 0x0400),
                ("ACME", 0x00, 0x8400),
                (name, 0x20, 0x0400),
            ];
            let rdlength = 1 + entries.len() * 18 + 6;
            reply.extend_from_slice(&(rdlength as u16).to_be_bytes());
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

fn endpoints(api: &Api<'_>, query: &str) -> Value {
    api.get(&format!("/compliance/endpoints?limit=1000&{query}"))
}

fn assess(api: &Api<'_>) -> Value {
    let body = api.ok(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [AGENT_PORT]},
                    "reassess": true})),
    );
    let done = wait_done(api, body["assessment_id"].as_str().unwrap());
    assert_eq!(done["state"], "done", "{done}");
    done
}

#[test]
fn ip_only_endpoints_get_names_and_empty_addresses_are_no_host() {
    if !can_build_networks() {
        return;
    }
    if !dnsmasq_available() {
        assert!(
            std::env::var_os("VIGIL_REQUIRE_DNSMASQ").is_none(),
            "dnsmasq is required (VIGIL_REQUIRE_DNSMASQ is set)"
        );
        eprintln!("SKIPPED: needs dnsmasq");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.route_range(SCOPE.parse().unwrap()).unwrap();
    for host in [WEB, FILES, AGENT, NAMED_SILENT, GONE] {
        net.add_host(host.parse().unwrap()).unwrap();
    }
    let spec = DnsSpec {
        listen: Some(DNS.parse().unwrap()),
        records: vec![
            (WEB.parse().unwrap(), "web01.acme.test".into()),
            (NAMED_SILENT.parse().unwrap(), "web02.acme.test".into()),
        ],
        // Authoritative: NXDOMAIN for every other address at once.
        zones: vec!["acme.test".into(), "19.198.in-addr.arpa".into()],
        forward: vec![],
    };
    let _dns = DnsServer::start(&net, &spec, dir).unwrap();
    net.set_scanner_dns(DNS.parse().unwrap()).unwrap();

    let _web = net
        .listen(format!("{WEB}:135").parse().unwrap(), None)
        .unwrap();
    let _files = net
        .listen(format!("{FILES}:135").parse().unwrap(), None)
        .unwrap();
    netbios_responder(&net, FILES, "FILES01");
    let reply = IdentifyReply {
        agent_id: "0b4c1d2e-0000-4000-8000-000000000023".into(),
        server_id: OTHER_SERVER.into(),
        version: "0.1.0".into(),
        mac: None,
        hostname: Some("web-agent".into()),
    };
    fake_agent(&net, AGENT, AGENT_PORT, reply.to_line());
    let _agent_135 = net
        .listen(format!("{AGENT}:135").parse().unwrap(), None)
        .unwrap();
    net.filter_host(NAMED_SILENT.parse().unwrap()).unwrap();
    let gone = net
        .listen(format!("{GONE}:135").parse().unwrap(), None)
        .unwrap();

    let _server = start_server(&net, dir);
    let api = owner_api(&net);
    let first = assess(&api);
    let counts = &first["counts"];
    // Live: WEB, FILES, AGENT, GONE.
    assert_eq!(counts["no_agent"], 3, "{first}");
    assert_eq!(counts["managed_elsewhere"], 1, "{first}");
    // The firewalled host with a name exists: unreachable, not empty.
    assert_eq!(counts["unreachable"], 1, "{first}");
    assert_eq!(counts["no_host"], EMPTY, "{first}");

    // Names and where they came from.
    let all = endpoints(&api, "");
    assert_eq!(all["total"], 5, "the empty addresses are collapsed: {all}");
    let by_addr = |addr: &str| -> Value {
        all["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["addrs"][0] == addr)
            .cloned()
            .unwrap_or_else(|| panic!("{addr} in {all}"))
    };
    let named = |addr: &str| {
        let e = by_addr(addr);
        (
            e["name"].as_str().unwrap().to_string(),
            e["name_source"].as_str().unwrap_or("").to_string(),
            e["status"].as_str().unwrap().to_string(),
        )
    };
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(named(WEB), s("web01.acme.test", "dns", "no_agent"));
    assert_eq!(named(FILES), s("FILES01", "netbios", "no_agent"));
    assert_eq!(named(AGENT), s("web-agent", "agent", "managed_elsewhere"));
    assert_eq!(
        named(NAMED_SILENT),
        s("web02.acme.test", "dns", "unreachable")
    );
    assert_eq!(named(GONE), s(GONE, "", "no_agent"));

    // The wildcard search the compliance pages are built around finds them.
    let mut web = names(&endpoints(&api, "name=web*"));
    web.sort();
    assert_eq!(web, ["web-agent", "web01.acme.test", "web02.acme.test"]);
    assert_eq!(names(&endpoints(&api, "name=files01")), ["FILES01"]);
    // The empty addresses are there when asked for.
    let empty = endpoints(&api, "status=no_host");
    assert_eq!(empty["total"], EMPTY, "{empty}");

    // The CSV: the same rows by default, with the name's source.
    let csv = api.raw("GET", "/compliance/endpoints.csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5, "{csv}");
    let files_row = rows
        .iter()
        .find(|r| &r[col("name")] == "FILES01")
        .expect("FILES01 in the CSV");
    assert_eq!(&files_row[col("name_source")], "netbios");
    assert_eq!(&files_row[col("status")], "no_agent");
    let no_host_csv = api.raw("GET", "/compliance/endpoints.csv?status=no_host");
    // (Sent chunked, page by page: count the rows, not the raw lines.)
    let rows = no_host_csv
        .lines()
        .filter(|l| l.contains(",no_host,"))
        .count();
    assert_eq!(rows as u64, EMPTY);

    // A machine that answered before and is now silent exists: unreachable,
    // with when it was last seen; the empty addresses stay no host.
    drop(gone);
    net.filter_host(GONE.parse().unwrap()).unwrap();
    let second = assess(&api);
    assert_eq!(second["counts"]["unreachable"], 2, "{second}");
    assert_eq!(second["counts"]["no_host"], EMPTY, "{second}");
    let gone_now = wait_for("the silent machine", Duration::from_secs(5), || {
        endpoints(&api, &format!("name={GONE}"))["endpoints"]
            .as_array()
            .and_then(|e| e.first().cloned())
    });
    assert_eq!(gone_now["status"], "unreachable", "{gone_now}");
    assert!(gone_now["last_seen"].as_i64().is_some(), "{gone_now}");
}
