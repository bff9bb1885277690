//! Forged identify replies (issue 14, point 10): a host on a scanned
//! network answers the identify probe in the name of a real agent of this
//! server — with no MAC at all, or with the MAC of an exchange it captured
//! earlier — and must be counted as having *no agent*, flagged `forged`;
//! the real agent stays *managed here*; a host naming another server is
//! *managed elsewhere*, unverified.
//!
//! Everything runs in the test network: the real `vigil server` in the
//! scanner namespace, a real agent enrolled through the API and the fakes
//! on test hosts of the target namespace.

use crate::common::compliance::fake_agent as fake_agent_on;
use crate::common::compliance::{enrolled_agent, owner_api, start_server, wait_done};
use crate::common::{can_build_networks, identify_with, try_identify};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use vigil_proto::identify::{IdentifyReply, Nonce, Request};
use vigil_testnet::{NetSpec, TestNet};

/// The real, enrolled agent.
const REAL: &str = "198.51.100.10";
/// Replays the real agent's id and our server id, without a MAC.
const FAKE_NO_MAC: &str = "198.51.100.20";
/// Replays a whole reply of the real agent captured earlier, MAC included.
const FAKE_REPLAY: &str = "198.51.100.21";
/// Claims an agent id we never issued, with our server id and a made-up MAC.
const FAKE_UNKNOWN: &str = "198.51.100.22";
/// Answers as an agent of another server.
const OTHER: &str = "198.51.100.30";
const OTHER_SERVER: &str = "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";
const SCOPE: &str = "198.51.100.0/27";
pub(crate) const PORT: u16 = 47_760;

/// A fake agent on `addr`, port [`PORT`] (see `common::compliance::fake_agent`).
pub(crate) fn fake_agent(net: &TestNet, addr: &str, line: Vec<u8>) {
    fake_agent_on(net, addr, PORT, line);
}

/// The endpoint of the latest assessment at `addr`.
fn endpoint(api: &crate::common::server::Api<'_>, addr: &str) -> Value {
    let page = api.get(&format!("/compliance/endpoints?ip={addr}"));
    assert_eq!(page["total"], 1, "{addr}: {page}");
    page["endpoints"][0].clone()
}

#[test]
fn forged_and_replayed_identify_replies_are_no_agent_and_flagged() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    for host in [REAL, FAKE_NO_MAC, FAKE_REPLAY, FAKE_UNKNOWN, OTHER] {
        net.add_host(host.parse().unwrap()).unwrap();
    }
    let _server = start_server(&net, dir);
    let api = owner_api(&net);
    let server_id = api.get("/server")["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_agent, agent_id) = enrolled_agent(&net, dir, &api, REAL, "real");
    let real: SocketAddr = format!("{REAL}:{PORT}").parse().unwrap();
    crate::common::server::wait_for(
        "the agent's identify listener",
        Duration::from_secs(20),
        || try_identify(&net, real).ok(),
    );

    // What an attacker on the network can learn: a reply of the real agent
    // to a challenge of its own choosing (MAC included).
    let captured_nonce = Nonce::from_bytes([0x5a; 32]);
    let captured =
        identify_with(&net, real, &Request::V2(captured_nonce)).expect("captured exchange");
    assert_eq!(
        (captured.agent_id.as_str(), captured.server_id.as_str()),
        (agent_id.as_str(), server_id.as_str())
    );
    assert!(
        captured.mac.is_some(),
        "a version 2 reply has a MAC: {captured:?}"
    );

    let no_mac = IdentifyReply {
        mac: None,
        ..captured.clone()
    };
    let unknown = IdentifyReply {
        agent_id: "00000000-0000-4000-8000-00000000beef".into(),
        mac: Some("ab".repeat(32)),
        ..captured.clone()
    };
    let other = IdentifyReply {
        agent_id: "0b4c1d2e-0000-4000-8000-000000000030".into(),
        server_id: OTHER_SERVER.into(),
        version: "0.1.0".into(),
        mac: None,
        hostname: None,
    };
    fake_agent(&net, FAKE_NO_MAC, no_mac.to_line());
    fake_agent(&net, FAKE_REPLAY, captured.to_line());
    fake_agent(&net, FAKE_UNKNOWN, unknown.to_line());
    fake_agent(&net, OTHER, other.to_line());

    // One assessment over a range holding all of them.
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [PORT]},
                    "reassess": true})),
    );
    assert_eq!(status, 202, "{body}");
    let done = wait_done(&api, body["assessment_id"].as_str().unwrap());
    assert_eq!(done["state"], "done", "{done}");
    let counts = &done["counts"];
    assert_eq!(counts["managed_here"], 1, "only the real agent: {done}");
    assert_eq!(counts["managed_elsewhere"], 1, "{done}");
    assert_eq!(counts["no_agent"], 3, "the three fakes: {done}");

    // The real agent: managed here, its reply verified.
    let ep = endpoint(&api, REAL);
    assert_eq!(ep["status"], "managed_here", "{ep}");
    assert_eq!(ep["identify"], "verified", "{ep}");
    assert_eq!(ep["agent_id"], agent_id.as_str(), "{ep}");

    // The fakes: no agent, flagged forged, with what they claimed.
    for fake in [FAKE_NO_MAC, FAKE_REPLAY, FAKE_UNKNOWN] {
        let ep = endpoint(&api, fake);
        assert_eq!(ep["status"], "no_agent", "{fake}: {ep}");
        assert_eq!(ep["identify"], "forged", "{fake}: {ep}");
        assert_eq!(ep["server_id"], server_id.as_str(), "{fake}: {ep}");
    }
    assert_eq!(endpoint(&api, FAKE_REPLAY)["agent_id"], agent_id.as_str());

    // Another server's agent: managed elsewhere, unverified.
    let ep = endpoint(&api, OTHER);
    assert_eq!(ep["status"], "managed_elsewhere", "{ep}");
    assert_eq!(ep["identify"], "unverified", "{ep}");
    assert_eq!(ep["server_id"], OTHER_SERVER, "{ep}");

    // The CSV export says so too.
    let csv = api.raw("GET", "/compliance/endpoints.csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (addr_col, status_col, identify_col) = (col("addresses"), col("status"), col("identify"));
    for row in reader.records().map(|r| r.unwrap()) {
        let want = match &row[addr_col] {
            REAL => Some(("managed_here", "verified")),
            FAKE_NO_MAC | FAKE_REPLAY | FAKE_UNKNOWN => Some(("no_agent", "forged")),
            OTHER => Some(("managed_elsewhere", "unverified")),
            _ => None,
        };
        if let Some((status, identify)) = want {
            assert_eq!(
                (&row[status_col], &row[identify_col]),
                (status, identify),
                "{row:?}"
            );
        }
    }

    // A database-only assessment does not promote a forged claim to one of
    // our agents because the agent it names is enrolled here.
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [PORT], "on_demand": false},
                    "reassess": true})),
    );
    assert_eq!(status, 202, "{body}");
    let db_only = wait_done(&api, body["assessment_id"].as_str().unwrap());
    assert_eq!(db_only["state"], "done", "{db_only}");
    assert_eq!(db_only["counts"]["managed_here"], 1, "{db_only}");
    let ep = endpoint(&api, FAKE_REPLAY);
    assert_eq!(
        (&ep["status"], &ep["identify"]),
        (&json!("no_agent"), &json!("forged"))
    );
}
