//! `vigil up`: the newcomer's one command starts a server on SQLite and a
//! local agent watching 127.0.0.1 with an example policy, prints the
//! console URL and a first login that works — and a second start reuses
//! all of it. The example policy authorizes Vigil's own listeners, so its
//! first scan alerts on the other program listening there and on nothing
//! of Vigil's. Run in a fresh network namespace so its fixed ports are free
//! and it only ever scans that namespace's own loopback.

mod common;

use common::server::{spawn, wait_for, Api, API};
use common::{can_build_networks, vigil_bin};
use serde_json::{json, Value};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

/// A port another program listens on, on the same machine.
const OTHER: u16 = 2024;

fn start_up(net: &TestNet, dir: &std::path::Path, log: &str) -> common::server::Proc {
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["up", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", API]);
    spawn(cmd, "vigil up", &dir.join(log))
}

fn printed(dir: &std::path::Path, log: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(log)).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
}

#[test]
fn vigil_up_runs_a_server_and_a_local_agent() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    // Something else listening on this machine: its port is not authorized.
    let _other = net
        .in_scanner(|| std::net::TcpListener::bind(("127.0.0.1", OTHER)))
        .unwrap()
        .expect("a listener of another program");
    let mut up = start_up(&net, dir, "up.log");
    let password = wait_for("the first login", Duration::from_secs(30), || {
        printed(dir, "up.log", "password:")
    });
    let console = printed(dir, "up.log", "console:").unwrap();
    assert_eq!(console, format!("http://{API}/"));
    let email = printed(dir, "up.log", "login:").unwrap();
    // Vigil's own ports, from its actual listeners (the console on the
    // --listen port given, the agent API and identify ports by default).
    let own = wait_for(
        "the line about Vigil's own ports",
        Duration::from_secs(5),
        || printed(dir, "up.log", "Authorized Vigil's own ports"),
    );
    assert_eq!(
        own,
        "18080 (console and REST API), 8443 (agent API), 47760 (agent identify) in the \
         local agent's policy"
    );

    let mut api = Api {
        net: &net,
        token: None,
    };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": email, "password": password})),
    );
    api.token = Some(login["token"].as_str().unwrap().to_string());
    let agents = api.get("/agents");
    let agent = agents[0]["id"].as_str().unwrap().to_string();
    assert_eq!(agents[0]["plan"], "extended", "{agents}");
    let policy = api.get(&format!("/agents/{agent}/policy"));
    assert_eq!(policy["policy"]["targets"][0], "agent_host", "{policy}");
    assert_eq!(policy["scan"]["state"], "active", "{policy}");
    assert_eq!(
        policy["policy"]["authorized"], "22,8443,18080,47760",
        "{policy}"
    );
    // The example scan of 127.0.0.1 runs: the other program's port it
    // finds open is not authorized, so it is reported; Vigil's own are.
    let result = wait_for(
        "the local agent's first scan",
        Duration::from_secs(60),
        || {
            let r = api.get(&format!("/agents/{agent}/results?limit=1"));
            r.as_array().and_then(|a| a.first().cloned())
        },
    );
    assert_eq!(result["addr"], "127.0.0.1", "{result}");
    let open: Vec<u64> = result["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "open")
        .filter_map(|p| p["port"].as_u64())
        .collect();
    for port in [18080, 8443, 47760, u64::from(OTHER)] {
        assert!(open.contains(&port), "{port} open: {result}");
    }
    assert_eq!(result["probed_count"], 65535, "{result}");
    wait_for(
        "an unauthorized-port alert for the other program",
        Duration::from_secs(20),
        || {
            let alerts = api.get("/alerts?status=open");
            alerts
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["kind"] == "unauthorized_open" && a["port"] == OTHER)
                .then_some(())
        },
    );
    // The scan was evaluated (that alert; the others of one evaluation
    // follow within milliseconds), and raised nothing for Vigil.
    std::thread::sleep(Duration::from_secs(2));
    let alerts = api.get("/alerts?status=all");
    let ports: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["port"])
        .collect();
    assert_eq!(ports, [&json!(OTHER)], "{alerts}");

    // A second start keeps the account, the agent and the password.
    up.kill();
    let _up = start_up(&net, dir, "up2.log");
    let again = wait_for("the second start", Duration::from_secs(30), || {
        printed(dir, "up2.log", "password:")
    });
    assert_eq!(again, password);
    let own_again = wait_for(
        "the line on the second start",
        Duration::from_secs(5),
        || printed(dir, "up2.log", "Authorized Vigil's own ports"),
    );
    assert_eq!(own_again, own);
    let api2 = Api {
        net: &net,
        token: api.token.clone(),
    };
    wait_for("the server again", Duration::from_secs(20), || {
        (api2.call("GET", "/agents", None).0 == 200).then_some(())
    });
    assert_eq!(api2.get("/agents").as_array().unwrap().len(), 1);
}
