//! Tenant B against tenant A's records, on every route of the OpenAPI
//! document that takes an id: B gets exactly what it gets for an id that
//! does not exist (404, same body), and A's records do not change. The
//! routes come from the server's own `/openapi.json`, so a new route is
//! covered as soon as it is documented; one this test does not know how to
//! make a record for (or a body for) fails it until it is taught.

use crate::common::compliance::{
    create_account, enrolled_agent, owner_api, start_server_with, EMAIL, PASSWORD,
};
use crate::common::lan::{sighting, store_sweeps};
use crate::common::server::{spawn, wait_for, Api, Proc};
use crate::common::{can_build_networks, run_ok, vigil_bin};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

const AGENT_HOST: &str = "198.51.100.10";
const B_EMAIL: &str = "owner@b.test";
/// A second server: A's trusted peer (for `/compliance/peers/{id}`) and the
/// destination of move orders.
const PEER_API: &str = "198.18.0.1:18099";

fn login<'n>(net: &'n TestNet, api: &str, email: &str) -> Api<'n> {
    let mut client = Api { net, token: None };
    let (status, body) = client.request_to(
        api,
        "POST",
        "/login",
        Some(json!({"email": email, "password": PASSWORD})),
    );
    assert!(
        matches!(status, 200 | 201),
        "login {email} on {api}: {status} {body}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    client.token = Some(body["token"].as_str().unwrap().to_string());
    client
}

fn start_peer(net: &TestNet, dir: &Path) -> Proc {
    let dir = dir.join("peer");
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    create_account(&db, "Peer", EMAIL);
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(&dir)
        .args(["--db", &db, "--listen", PEER_API])
        .args(["--agent-listen", &format!("{SCANNER_V4}:9443")]);
    let p = spawn(cmd, "peer server", &dir.join("server.log"));
    let probe = Api { net, token: None };
    wait_for("the peer server", Duration::from_secs(20), || {
        (probe.request_to(PEER_API, "GET", "/openapi.json", None).0 == 200).then_some(())
    });
    p
}

/// `(method, path)` of every documented route with an `{id}`.
fn id_routes(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.contains("{id}") {
            continue;
        }
        for method in item.as_object().expect("path item").keys() {
            if method != "parameters" {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Deletions last, the agent's very last: were one to succeed, the
    // records the other attempts aim at would be gone.
    out.sort_by_key(|(m, p)| (m == "DELETE", p.starts_with("/agents/"), p.clone()));
    out
}

/// The record kind a route's id names: its path up to `/{id}`.
fn kind(path: &str) -> &str {
    path.split("/{id}").next().unwrap_or(path)
}

#[test]
fn tenant_b_cannot_reach_tenant_a_on_any_id_route() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(AGENT_HOST.parse().unwrap()).unwrap();
    let _server = start_server_with(
        &net,
        dir,
        &[
            "--heartbeat-secs",
            "1",
            "--silent-after-secs",
            "2",
            "--tick-ms",
            "200",
        ],
        &[],
    );
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    create_account(&db, "B", B_EMAIL);
    let _peer = start_peer(&net, dir);
    let a = owner_api(&net);
    let b = login(&net, crate::common::server::API, B_EMAIL);
    let on_peer = login(&net, PEER_API, EMAIL);

    // A's records, one of each kind an id route names.
    let mut ids: BTreeMap<&str, String> = BTreeMap::new();
    let (mut agent_proc, agent) = enrolled_agent(&net, dir, &a, AGENT_HOST, "a-agent");
    ids.insert("/agents", agent.clone());
    // A device of A's location, as its sweep would have stored it.
    let devices = store_sweeps(
        &dir.join("vigil.db"),
        &agent,
        &[(
            "a-sweep",
            vigil_store::now_unix(),
            vec![sighting("198.51.100.50", "3c:d9:2b:00:00:50", &[9100])],
        )],
    );
    let device = devices.first().expect("A's device").id.clone();
    a.ok(
        "PUT",
        &format!("/agents/{agent}/policy"),
        Some(json!({"enabled": false, "authorized": "22,443", "targets": ["agent_host"], "interval": 30})),
    );
    let contact = a.ok(
        "POST",
        "/contacts",
        Some(json!({"name": "a ops", "channel": "email", "address": "ops@a.test"})),
    );
    ids.insert("/contacts", contact["id"].as_str().unwrap().into());
    let rule = a.ok(
        "POST",
        "/rules",
        Some(json!({"contact_id": contact["id"], "events": ["*"]})),
    );
    ids.insert("/rules", rule["id"].as_str().unwrap().into());
    let token = &a.get("/tokens")[0];
    ids.insert("/tokens", token["id"].as_str().unwrap().into());
    let key = a.ok(
        "POST",
        "/deployment-keys",
        Some(json!({"name": "fleet", "expires_in_days": 7, "plan": "extended"})),
    );
    ids.insert(
        "/deployment-keys",
        key["key"]["id"].as_str().unwrap().into(),
    );
    let window = a.ok(
        "POST",
        "/maintenance",
        Some(json!({"name": "a patch night",
                    "schedule": {"kind": "weekly", "days": [0], "from": "02:00", "to": "03:00",
                                 "time_zone": "Europe/Paris"},
                    "scope": {"kind": "agents", "agents": [agent]}})),
    );
    ids.insert("/maintenance", window["id"].as_str().unwrap().into());
    let peer_call = |method: &str, path: &str, body: Option<Value>| -> Value {
        let (status, text) = on_peer.request_to(PEER_API, method, path, body);
        assert!(
            (200..300).contains(&status),
            "peer {method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap()
    };
    let peer_token = peer_call("POST", "/tokens", Some(json!({"name": "for A"})))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let peer = a.ok(
        "POST",
        "/compliance/peers",
        Some(json!({"name": "peer", "api_url": format!("http://{PEER_API}"), "api_token": peer_token})),
    );
    ids.insert("/compliance/peers", peer["id"].as_str().unwrap().into());
    let key_path = dir.join("id_ed25519");
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key_path),
    );
    let job = a.ok(
        "POST",
        "/compliance/install",
        Some(json!({"addresses": ["198.51.100.99"],
                    "ssh": {"private_key": std::fs::read_to_string(&key_path).unwrap()}})),
    );
    ids.insert("/compliance/install", job["id"].as_str().unwrap().into());
    // An alert: the agent stops calling in.
    wait_for(
        "the agent's first heartbeat",
        Duration::from_secs(20),
        || {
            a.get(&format!("/agents/{agent}"))["last_seen_at"]
                .as_i64()
                .map(|_| ())
        },
    );
    agent_proc.kill();
    let alert = wait_for("an alert of A", Duration::from_secs(30), || {
        a.get("/alerts").as_array().and_then(|l| l.first().cloned())
    });
    ids.insert("/alerts", alert["id"].as_str().unwrap().into());

    // Bodies a write would succeed with, had the record been B's.
    let peer_info = peer_call("GET", "/server", None);
    let enrollment = peer_call(
        "POST",
        "/enrollments",
        Some(json!({"name": "moved", "plan": "extended"})),
    );
    let bodies: BTreeMap<(&str, &str), Value> = BTreeMap::from([
        (("PATCH", "/agents/{id}"), json!({"plan": "community"})),
        (
            ("PUT", "/agents/{id}/policy"),
            json!({"enabled": false, "authorized": "22", "targets": ["agent_host"], "interval": 15}),
        ),
        (
            ("POST", "/agents/{id}/move"),
            json!({"agent_url": "https://198.18.0.1:9443", "pin": peer_info["pin"],
                   "enrollment_token": enrollment["token"]}),
        ),
        (("POST", "/alerts/{id}/ack"), json!({"note": "B was here"})),
        (
            ("PATCH", "/agents/{id}/devices/{device}"),
            json!({"approved": true, "monitored": true}),
        ),
        (
            ("PUT", "/contacts/{id}"),
            json!({"name": "hijacked", "channel": "email", "address": "evil@b.test"}),
        ),
        (
            ("PUT", "/maintenance/{id}"),
            json!({"name": "hijacked",
                   "schedule": {"kind": "once", "start": "2026-01-01T00:00",
                                "end": "2026-01-01T01:00", "time_zone": "UTC"},
                   "scope": {"kind": "account"}}),
        ),
    ]);

    // What A sees, before and after.
    let a_view = |ids: &BTreeMap<&str, String>| -> Vec<Value> {
        let mut paths = vec![
            "/agents".to_string(),
            "/contacts".into(),
            "/rules".into(),
            "/alerts".into(),
            "/deployment-keys".into(),
            "/compliance/peers".into(),
            "/maintenance".into(),
        ];
        paths.push(format!("/agents/{}/policy", ids["/agents"]));
        paths.push(format!("/agents/{}/devices", ids["/agents"]));
        paths.push(format!(
            "/compliance/install/{}",
            ids["/compliance/install"]
        ));
        let mut out: Vec<Value> = paths.iter().map(|p| a.get(p)).collect();
        // `last_used_at` of tokens moves with A's own requests.
        out.push(json!(a
            .get("/tokens")
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!([t["id"], t["revoked_at"]]))
            .collect::<Vec<_>>()));
        out
    };
    let before = a_view(&ids);
    let doc = b.get("/openapi.json");
    let routes = id_routes(&doc);
    assert!(routes.len() >= 20, "{routes:?}");
    for (method, path) in &routes {
        let id = ids.get(kind(path)).unwrap_or_else(|| {
            panic!(
                "{method} {path}: this test makes no record of kind {}; teach it",
                kind(path)
            )
        });
        let body = match method.as_str() {
            "GET" | "DELETE" => None,
            _ if doc["paths"][path][method.to_lowercase()]["requestBody"].is_null() => None,
            _ => Some(
                bodies
                    .get(&(method.as_str(), path.as_str()))
                    .unwrap_or_else(|| panic!("{method} {path}: give this test a valid body"))
                    .clone(),
            ),
        };
        let nobody = uuid_v4_like(id);
        // A's device, under A's agent and under an agent that does not exist.
        let path_of = |agent: &str| path.replace("{id}", agent).replace("{device}", &device);
        let (status, answer) = b.request(method, &path_of(id), body.clone());
        let (status_none, answer_none) = b.request(method, &path_of(&nobody), body);
        assert_eq!(status, 404, "B {method} {path} with A's id: {answer}");
        assert_eq!(
            (status, answer),
            (status_none, answer_none),
            "B {method} {path}: A's id must look like no record at all"
        );
    }
    assert_eq!(a_view(&ids), before, "A's records changed");
}

/// An id of the same shape that names nothing.
fn uuid_v4_like(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_hexdigit() { '0' } else { c })
        .collect::<String>()
        .replacen('0', "f", 1)
}
