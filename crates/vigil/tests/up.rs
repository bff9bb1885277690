//! `vigil up`: the newcomer's one command starts a server on SQLite and a
//! local agent watching 127.0.0.1 with an example policy, prints the
//! console URL and a first login that works — and a second start reuses
//! all of it. Run in a fresh network namespace so its fixed ports are free
//! and it only ever scans that namespace's own loopback.

mod common;

use common::server::{spawn, wait_for, Api, API};
use common::{can_build_networks, vigil_bin};
use serde_json::json;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

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
    let mut up = start_up(&net, dir, "up.log");
    let password = wait_for("the first login", Duration::from_secs(30), || {
        printed(dir, "up.log", "password:")
    });
    let console = printed(dir, "up.log", "console:").unwrap();
    assert_eq!(console, format!("http://{API}/"));
    let email = printed(dir, "up.log", "login:").unwrap();

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
    // The example scan of 127.0.0.1 runs: the REST API port it finds open
    // is not authorized, so it is reported.
    let result = wait_for(
        "the local agent's first scan",
        Duration::from_secs(60),
        || {
            let r = api.get(&format!("/agents/{agent}/results?limit=1"));
            r.as_array().and_then(|a| a.first().cloned())
        },
    );
    assert_eq!(result["addr"], "127.0.0.1", "{result}");
    wait_for(
        "an unauthorized-port alert for 18080",
        Duration::from_secs(20),
        || {
            let alerts = api.get("/alerts?status=open");
            alerts
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["kind"] == "unauthorized_open" && a["port"] == 18080)
                .then_some(())
        },
    );

    // A second start keeps the account, the agent and the password.
    up.kill();
    let _up = start_up(&net, dir, "up2.log");
    let again = wait_for("the second start", Duration::from_secs(30), || {
        printed(dir, "up2.log", "password:")
    });
    assert_eq!(again, password);
    let api2 = Api {
        net: &net,
        token: api.token.clone(),
    };
    wait_for("the server again", Duration::from_secs(20), || {
        (api2.call("GET", "/agents", None).0 == 200).then_some(())
    });
    assert_eq!(api2.get("/agents").as_array().unwrap().len(), 1);
}
