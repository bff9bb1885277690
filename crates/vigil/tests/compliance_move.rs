//! Moving an agent between Vigil servers, end to end: two real `vigil
//! server` processes in the scanner namespace — A ("another server") and B
//! ("this server") — and a real agent enrolled with A on a test host in the
//! target namespace. B's assessment finds the agent managed by A; B trusts
//! A as a peer (with an API token of A) and moves the agent; the agent
//! re-enrolls with B, A removes it, and B's next assessment finds it
//! managed here. A move instruction with a bad token leaves the agent with
//! A. Only namespace addresses and loopback inside the namespace are used.

mod common;

use common::compliance::{uuid_like, EMAIL, PASSWORD};
use common::server::{spawn, wait_for, Api, Proc};
use common::{can_build_networks, run_ok, vigil_bin};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

/// The host with A's agent.
const HOST: &str = "198.51.100.30";
const SCOPE: &str = "198.51.100.16/28";

/// One server of the test, reached through its REST API.
struct Server<'a> {
    net: &'a TestNet,
    api: &'static str,
    token: Option<String>,
    /// The server process; `None` for another user's view of it.
    _proc: Option<Proc>,
}

impl Server<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let api = Api {
            net: self.net,
            token: self.token.clone(),
        };
        let (status, text) = api.request_to(self.api, method, path, body);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} on {} answered {status}: {json}",
            self.api
        );
        json
    }

    fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None)
    }

    /// Logs in as `email`; the returned client uses that user's token.
    fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/login",
            Some(json!({"email": email, "password": password})),
        );
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    fn as_user(&self, token: &str) -> Server<'_> {
        Server {
            net: self.net,
            api: self.api,
            token: Some(token.to_string()),
            _proc: None,
        }
    }
}

/// Starts a server with the account "Acme" (owner [`EMAIL`]), heartbeats
/// every second, REST API on `api` and agent API on the scanner address.
fn start<'a>(net: &'a TestNet, dir: &Path, api: &'static str, agent_port: u16) -> Server<'a> {
    std::fs::create_dir_all(dir).unwrap();
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", &db, "create-account", "--name", "Acme"])
            .args(["--kind", "organization", "--email", EMAIL])
            .env("VIGIL_PASSWORD", PASSWORD),
    );
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(dir)
        .args(["--db", &db, "--listen", api])
        .args(["--agent-listen", &format!("{SCANNER_V4}:{agent_port}")])
        .args(["--heartbeat-secs", "1", "--tick-ms", "200"])
        // The two servers reach each other as peers on the namespace's loopback.
        .args(["--allow-targets", "peer=127.0.0.0/8"])
        .env("VIGIL_LOG", "info");
    let proc = spawn(cmd, "server", &dir.join("server.log"));
    let mut server = Server {
        net,
        api,
        token: None,
        _proc: Some(proc),
    };
    wait_for("the server", Duration::from_secs(20), || {
        (server.call("GET", "/openapi.json", None).0 == 200).then_some(())
    });
    server.token = Some(server.login(EMAIL, PASSWORD));
    server
}

fn identity(state: &Path) -> Value {
    let text = std::fs::read_to_string(state.join("identity.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Runs an assessment on `b` and waits for its end.
fn assess(b: &Server<'_>) -> Value {
    let a = b.ok("POST", "/compliance/assessments", None);
    let id = a["id"].as_str().unwrap().to_string();
    wait_for("the assessment to finish", Duration::from_secs(60), || {
        let a = b.get(&format!("/compliance/assessments?assessment={id}"));
        (a["state"] != "running").then_some(a)
    })
}

fn log_of(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn an_agent_of_another_server_moves_here() {
    if !can_build_networks() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(HOST.parse().unwrap()).unwrap();
    let a = start(&net, &dir.join("a"), "127.0.0.1:18080", 8443);
    let b = start(&net, &dir.join("b"), "127.0.0.1:18081", 9443);
    let a_info = a.get("/server");
    let b_info = b.get("/server");
    let a_id = a_info["server_id"].as_str().unwrap().to_string();
    let b_id = b_info["server_id"].as_str().unwrap().to_string();
    assert_ne!(a_id, b_id);

    // A real agent of A on the test host.
    let e = a.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "web1", "plan": "extended"})),
    );
    let state = dir.join("agent");
    run_ok(
        net.target_cmd(vigil_bin())
            .args(["agent", "--state-dir"])
            .arg(&state)
            .args(["enroll", "--server", e["server_url"].as_str().unwrap()])
            .args(["--token", e["token"].as_str().unwrap()])
            .args(["--pin", e["pin"].as_str().unwrap()]),
    );
    let agent_id = identity(&state)["agent_id"].as_str().unwrap().to_string();
    let agent_log = dir.join("agent.log");
    let mut run = net.target_cmd(vigil_bin());
    run.args(["agent", "--state-dir"])
        .arg(&state)
        .args(["run", "--listen", &format!("{HOST}:47760")])
        .env("VIGIL_LOG", "info");
    let _agent = spawn(run, "agent", &agent_log);
    wait_for(
        "the agent's first heartbeat",
        Duration::from_secs(20),
        || {
            a.get(&format!("/agents/{agent_id}"))["last_seen_at"]
                .as_i64()
                .map(|_| ())
        },
    );

    // B's assessment: the agent is managed by another server, A.
    b.ok(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [47760]}})),
    );
    let done = assess(&b);
    assert_eq!(done["counts"]["managed_elsewhere"], 1, "{done}");
    let page = b.get("/compliance/endpoints?status=managed_elsewhere");
    let endpoint = &page["endpoints"][0];
    assert_eq!(endpoint["agent_id"], agent_id.as_str(), "{page}");
    assert_eq!(endpoint["server_id"], a_id.as_str(), "{page}");

    // Without a trusted peer for A, B cannot move it; unknown agents and
    // malformed ids are refused per agent.
    let other = uuid_like("stranger");
    let r = b.ok(
        "POST",
        "/compliance/move",
        Some(json!({"agent_ids": [agent_id, other, "not-a-uuid"]})),
    );
    let results = r["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "error", "{r}");
    assert_eq!(results[0]["server_id"], a_id.as_str(), "{r}");
    let msg = results[0]["error"].as_str().unwrap();
    assert!(
        msg.contains("no trusted peer") && msg.contains(&a_id),
        "{msg}"
    );
    assert!(
        results[1]["error"]
            .as_str()
            .unwrap()
            .contains("not managed by another server"),
        "{r}"
    );
    assert!(
        results[2]["error"].as_str().unwrap().contains("UUID"),
        "{r}"
    );
    let (status, body) = b.call("POST", "/compliance/move", Some(json!({"agent_ids": []})));
    assert_eq!(status, 422, "{body}");

    // Bad peers: not a URL, nobody there, a token A refuses, B itself.
    let token_on_a = a.ok("POST", "/tokens", Some(json!({"name": "peer B"})))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let peer = |url: &str, token: &str| {
        b.call(
            "POST",
            "/compliance/peers",
            Some(json!({"name": "A", "api_url": url, "api_token": token})),
        )
    };
    let (status, body) = peer("ftp://127.0.0.1:18080", &token_on_a);
    assert_eq!(status, 422, "{body}");
    let (status, body) = peer("http://127.0.0.1:18099", &token_on_a);
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cannot reach"),
        "{body}"
    );
    let (status, body) = peer("http://127.0.0.1:18080", "vgl_wrong");
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("refused the API token"),
        "{body}"
    );
    let token_on_b = b.ok("POST", "/tokens", Some(json!({"name": "self"})))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = peer("http://127.0.0.1:18081", &token_on_b);
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("this server"),
        "{body}"
    );

    // Viewers of B may look at peers but neither add them nor move agents;
    // viewers of A cannot order moves.
    for s in [&a, &b] {
        s.ok(
            "POST",
            "/users",
            Some(json!({"email": "viewer@acme.test", "password": PASSWORD, "role": "viewer"})),
        );
    }
    let b_viewer = b.as_user(&b.login("viewer@acme.test", PASSWORD));
    let a_viewer = a.as_user(&a.login("viewer@acme.test", PASSWORD));
    assert_eq!(b_viewer.call("GET", "/compliance/peers", None).0, 200);
    let (status, body) = b_viewer.call(
        "POST",
        "/compliance/peers",
        Some(json!({"name": "A", "api_url": "http://127.0.0.1:18080", "api_token": token_on_a})),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = b_viewer.call(
        "POST",
        "/compliance/move",
        Some(json!({"agent_ids": [agent_id]})),
    );
    assert_eq!(status, 403, "{body}");
    let order = |token: &str| json!({"agent_url": b_info["agent_url"], "pin": b_info["pin"], "enrollment_token": token});
    let (status, body) = a_viewer.call(
        "POST",
        &format!("/agents/{agent_id}/move"),
        Some(order("vge_whatever")),
    );
    assert_eq!(status, 403, "{body}");
    let (status, body) = a.call(
        "POST",
        &format!("/agents/{agent_id}/move"),
        Some(
            json!({"agent_url": "http://198.18.0.1:9443", "pin": b_info["pin"],
                    "enrollment_token": "vge_x"}),
        ),
    );
    assert_eq!(status, 422, "plain http is refused: {body}");

    // A move instruction with a token B never issued: the agent tries,
    // B refuses, and the agent stays with A.
    let r = a.ok(
        "POST",
        &format!("/agents/{agent_id}/move"),
        Some(order("vge_not-a-real-token")),
    );
    assert_eq!(r["state"], "pending", "{r}");
    wait_for(
        "the agent to refuse the move",
        Duration::from_secs(20),
        || log_of(&agent_log).contains("move refused").then_some(()),
    );
    assert_eq!(identity(&state)["server_id"], a_id.as_str());
    let seen = a.get(&format!("/agents/{agent_id}"))["last_seen_at"]
        .as_i64()
        .unwrap();
    wait_for("another heartbeat to A", Duration::from_secs(10), || {
        let agent = a.get(&format!("/agents/{agent_id}"));
        assert!(agent["removed_at"].is_null(), "{agent}");
        (agent["last_seen_at"].as_i64().unwrap() > seen).then_some(())
    });
    assert!(b.get("/agents").as_array().unwrap().is_empty());

    // B trusts A (the token stays secret) and moves the agent.
    let p = b.ok(
        "POST",
        "/compliance/peers",
        Some(json!({"name": "A", "api_url": "http://127.0.0.1:18080", "api_token": token_on_a})),
    );
    assert_eq!(p["server_id"], a_id.as_str(), "{p}");
    let (status, body) = peer("http://127.0.0.1:18080", &token_on_a);
    assert_eq!(status, 409, "{body}");
    let peers = b.get("/compliance/peers");
    assert_eq!(peers.as_array().unwrap().len(), 1);
    assert!(!peers.to_string().contains(&token_on_a), "{peers}");

    let r = b.ok(
        "POST",
        "/compliance/move",
        Some(json!({"agent_ids": [agent_id], "plan": "extended"})),
    );
    assert_eq!(r["results"][0]["status"], "requested", "{r}");
    assert_eq!(r["results"][0]["server_id"], a_id.as_str(), "{r}");

    // The agent re-enrolls with B and keeps running there.
    wait_for("the agent to move to B", Duration::from_secs(30), || {
        (identity(&state)["server_id"] == b_id.as_str()).then_some(())
    });
    let new_id = identity(&state)["agent_id"].as_str().unwrap().to_string();
    assert_ne!(new_id, agent_id);
    wait_for("a heartbeat to B", Duration::from_secs(20), || {
        b.get("/agents")
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == new_id.as_str() && x["last_seen_at"].is_i64())
            .map(|x| {
                assert_eq!(x["name"], "web1", "{x}");
                assert_eq!(x["plan"], "extended", "{x}");
            })
    });

    // A removed it, saying where it went.
    let moved = wait_for("A to record the move", Duration::from_secs(20), || {
        let m = a.get(&format!("/agents/{agent_id}/move"));
        (m["state"] == "moved").then_some(m)
    });
    assert_eq!(moved["moved_to"], b_id.as_str(), "{moved}");
    let old = a.get(&format!("/agents/{agent_id}"));
    assert!(old["removed_at"].is_i64(), "{old}");
    assert!(a.get("/agents").as_array().unwrap().is_empty());
    assert!(!log_of(&agent_log).contains("panicked"));

    // B's next assessment: managed here, by the new agent id.
    let done = assess(&b);
    assert_eq!(done["counts"]["managed_here"], 1, "{done}");
    assert_eq!(done["counts"]["managed_elsewhere"], 0, "{done}");
    let page = b.get("/compliance/endpoints?status=managed_here");
    assert_eq!(page["endpoints"][0]["addrs"][0], HOST, "{page}");
    assert_eq!(page["endpoints"][0]["agent_id"], new_id.as_str(), "{page}");

    // A peer can be deleted; viewers cannot.
    let peer_id = p["id"].as_str().unwrap();
    let (status, _) = b_viewer.call("DELETE", &format!("/compliance/peers/{peer_id}"), None);
    assert_eq!(status, 403);
    let (status, _) = b.call("DELETE", &format!("/compliance/peers/{peer_id}"), None);
    assert_eq!(status, 204);
    assert!(b.get("/compliance/peers").as_array().unwrap().is_empty());
    eprintln!("move test took {:?}", started.elapsed());
}
