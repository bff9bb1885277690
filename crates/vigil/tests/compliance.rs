//! Compliance assessment of an IP scope, end to end: a real `vigil server`
//! in the scanner namespace sweeps test hosts in the target namespace — an
//! agent of this server, an agent of another server, a host with only port
//! 135, a host with nothing listening, and silent (down) addresses — and
//! every status comes out right, searchable and exportable as CSV.

mod common;

use common::can_build_networks;
use common::compliance::{
    agent_of, enrolled_agent, names, start_server, wait_done, EMAIL, PASSWORD,
};
use common::server::{wait_for, Api};
use serde_json::json;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

const OURS: &str = "198.51.100.10";
const THEIRS: &str = "198.51.100.30";
const ONLY_135: &str = "198.51.100.20";
const BARE: &str = "198.51.100.50";
const SCOPE: &str = "198.51.100.0/26";

#[test]
fn ip_scope_assessment_finds_every_status() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    for host in [OURS, THEIRS, ONLY_135, BARE] {
        net.add_host(host.parse().unwrap()).unwrap();
    }
    let _rpc = net
        .listen(format!("{ONLY_135}:135").parse().unwrap(), None)
        .unwrap();
    // An agent port that accepts (in the kernel's backlog) but never
    // answers identify: the second pass waits out the identify timeout, so
    // the progress between the passes stays visible for seconds.
    let _mute = net
        .in_target(|| std::net::TcpListener::bind(format!("{BARE}:47760")))
        .unwrap()
        .unwrap();
    let _server = start_server(&net, dir);
    let mut api = Api {
        net: &net,
        token: None,
    };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    );
    api.token = Some(login["token"].as_str().unwrap().to_string());
    let server_id = api.get("/server")["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    let other_server = "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";
    // Enrolled for real: a reply naming our server must prove it.
    let (_ours, ours_id) = enrolled_agent(&net, dir, &api, OURS, "ours");
    let _theirs = agent_of(&net, dir, THEIRS, other_server, "theirs");
    // Wait for both identify listeners.
    std::thread::sleep(Duration::from_secs(1));

    // Bad scopes are refused with the range and the limit named.
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(
            json!({"scope": {"ip": {"enabled": true, "ranges": ["2001:db8::/104"]},
                              "agent_ports": [47760]}}),
        ),
    );
    assert_eq!(status, 422, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("2001:db8::/104") && msg.contains("65,536"),
        "{msg}"
    );
    assert_eq!(api.call("GET", "/compliance/scope", None).0, 404);

    // Save and re-assess.
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [47760], "unreachable_port": 135},
                    "reassess": true})),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["assessment_id"].as_str().unwrap().to_string();
    // Progress while it runs: the 60 silent addresses are counted as
    // unreachable once port 135 is swept (they wait out their timeouts,
    // so that step is seen), everything once probing ends; at the end,
    // nothing shows a machine at those silent addresses (no name, never
    // seen): no host at address.
    let mut seen_running = Vec::new();
    let done = wait_for("the assessment to finish", Duration::from_secs(60), || {
        let a = api.get(&format!("/compliance/assessments?assessment={id}"));
        if a["state"] == "running" {
            seen_running.push(a);
            std::thread::sleep(Duration::from_millis(50));
            return None;
        }
        Some(a)
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["total"], 64);
    assert!(!seen_running.is_empty(), "never saw it running");
    for a in &seen_running {
        let (done_n, total) = (a["done"].as_u64().unwrap(), a["total"].as_u64().unwrap());
        assert!(done_n <= total && total == 64, "{a}");
        let counted = &a["counts"];
        let partial = json!({"managed_here": 0, "managed_elsewhere": 0, "no_agent": 0,
                             "unreachable": 60, "unresolved_ad": 0, "no_host": 0});
        let nothing = json!({"managed_here": 0, "managed_elsewhere": 0, "no_agent": 0,
                             "unreachable": 0, "unresolved_ad": 0, "no_host": 0});
        let probed = json!({"managed_here": 1, "managed_elsewhere": 1, "no_agent": 2,
                             "unreachable": 60, "unresolved_ad": 0, "no_host": 0});
        assert!(
            *counted == nothing
                || *counted == partial
                || *counted == probed
                || *counted == done["counts"],
            "running counts are what is classified so far: {a}"
        );
    }
    assert!(
        seen_running
            .iter()
            .any(|a| a["counts"]["unreachable"] == 60),
        "the unreachable count shows before the end: {seen_running:?}"
    );
    let counts = &done["counts"];
    assert_eq!(counts["managed_here"], 1, "{done}");
    assert_eq!(counts["managed_elsewhere"], 1, "{done}");
    assert_eq!(counts["no_agent"], 2, "{done}");
    assert_eq!(counts["unreachable"], 0, "{done}");
    assert_eq!(counts["no_host"], 60, "{done}");
    assert_eq!(counts["unresolved_ad"], 0, "{done}");

    // Drill down: each count is a list.
    let page = api.get("/compliance/endpoints?status=managed_here");
    assert_eq!(page["total"], 1);
    let ours = &page["endpoints"][0];
    assert_eq!(ours["addrs"][0], OURS, "{page}");
    assert_eq!(ours["server_id"], server_id.as_str());
    let page = api.get("/compliance/endpoints?status=managed_elsewhere");
    assert_eq!(page["endpoints"][0]["server_id"], other_server, "{page}");
    assert_eq!(
        page["endpoints"][0]["agent_version"],
        env!("CARGO_PKG_VERSION")
    );
    let mut no_agent = names(&api.get("/compliance/endpoints?status=no_agent"));
    no_agent.sort();
    assert_eq!(no_agent, [ONLY_135, BARE]);

    // Name search: exact, or with `*`; an incomplete name finds nothing.
    // (The agents' endpoints are named by the host name they report.)
    assert_eq!(
        names(&api.get(&format!("/compliance/endpoints?name={ONLY_135}"))),
        [ONLY_135]
    );
    let page = api.get("/compliance/endpoints?name=198.51.100.1&status=no_host");
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(api.get("/compliance/endpoints?name=198.51.100")["total"], 0);
    // The empty addresses only when asked for.
    assert_eq!(
        api.get("/compliance/endpoints?name=198.51.100.*")["total"],
        2
    );
    assert_eq!(
        api.get("/compliance/endpoints?name=198.51.100.*&status=no_host")["total"],
        60
    );
    assert_eq!(
        api.get("/compliance/endpoints?name=*100.5*&status=no_agent")["total"],
        1
    );
    // Advanced search: an IP range and a status together; pagination.
    let page = api.get(
        "/compliance/endpoints?ip=198.51.100.0-198.51.100.31&status=no_host&limit=10&offset=10",
    );
    assert_eq!(page["total"], 29, "{page}");
    assert_eq!(page["endpoints"].as_array().unwrap().len(), 10);
    let (status, body) = api.call("GET", "/compliance/endpoints?status=lost", None);
    assert_eq!(status, 422, "{body}");

    // CSV export of the current list.
    let addr: std::net::SocketAddr = common::server::API.parse().unwrap();
    let token = api.token.clone().unwrap();
    let csv = net
        .in_scanner(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /api/v1/compliance/endpoints.csv?status=no_agent,managed_here HTTP/1.1\r\n\
                 Host: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .unwrap();
    assert!(csv.contains("text/csv"), "{csv}");
    let body = csv.split_once("\r\n\r\n").unwrap().1;
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3, "{body}");
    assert!(
        rows.iter()
            .any(|r| &r[2] == OURS && &r[3] == "managed_here"),
        "{body}"
    );

    // A new assessment while one runs cancels the old one cleanly.
    let first = api.ok("POST", "/compliance/assessments", None);
    let second = api.ok("POST", "/compliance/assessments", None);
    let first = wait_done(&api, first["id"].as_str().unwrap());
    let second = wait_done(&api, second["id"].as_str().unwrap());
    assert_eq!(first["state"], "cancelled", "{first}");
    assert_eq!(second["state"], "done", "{second}");
    assert_eq!(second["counts"]["no_host"], 60);

    // Database only: fast, from the last on-demand results plus what the
    // server knows. The agent claiming our server ID was removed here
    // meanwhile, so it no longer counts as managed here.
    api.ok("DELETE", &format!("/agents/{ours_id}"), None);
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [47760], "unreachable_port": 135,
                              "on_demand": false},
                    "reassess": true})),
    );
    assert_eq!(status, 202, "{body}");
    let db_only = wait_done(&api, body["assessment_id"].as_str().unwrap());
    assert_eq!(db_only["state"], "done", "{db_only}");
    assert_eq!(db_only["on_demand"], false);
    let counts = &db_only["counts"];
    assert_eq!(counts["managed_here"], 0, "{db_only}");
    assert_eq!(counts["no_agent"], 3, "{db_only}");
    assert_eq!(counts["managed_elsewhere"], 1, "{db_only}");
    assert_eq!(counts["no_host"], 60, "{db_only}");
}
