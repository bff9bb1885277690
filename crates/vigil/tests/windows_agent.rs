//! The Windows agent (`vigil.exe`, under Wine) against a real Linux
//! `vigil server`: enrollment with the command the server prints, heartbeats
//! with Windows facts, the default state directory under `%ProgramData%`,
//! a scan task that finds an unauthorized port (→ alert), results spooled
//! on disk while the server is down and delivered once after its restart,
//! and the identify answer that makes a compliance assessment classify the
//! Wine host as *managed by this server*.
//!
//! Layout: the server in the scanner namespace (agent API on 198.18.0.1),
//! the Wine agent and the ports it watches on 198.51.100.10 in the target
//! namespace, a firewalled host whose slow scan keeps the agent busy while
//! the server is killed. Nothing leaves the namespaces.

mod common;

use common::compliance::{owner_api, start_server_with, wait_done};
use common::server::{spawn, unix_now, wait_for, Api, Proc};
use common::wine::{wine_and_exe, Wine};
use common::{can_build_networks, run_ok};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

const HOST: &str = "198.51.100.10";
const SILENT: &str = "198.51.100.30";
const SERVER_ARGS: [&str; 6] = [
    "--heartbeat-secs",
    "1",
    "--tick-ms",
    "200",
    "--sweep-ports",
    "1-1024",
];

/// `vigil.exe ARGS` under Wine in the target namespace.
fn agent_cmd(net: &TestNet, wine: &Wine, exe: &Path) -> Command {
    let mut cmd = net.target_cmd(wine.loader());
    wine.configure(&mut cmd);
    cmd.arg(exe);
    cmd
}

fn results(api: &Api, agent: &str) -> Vec<Value> {
    api.get(&format!("/agents/{agent}/results?limit=1000"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Asks for a scan now and waits until its result (a new one) is stored.
fn scan_and_wait(api: &Api, agent: &str) -> Value {
    let before = results(api, agent).len();
    wait_for("the scan to be accepted", Duration::from_secs(20), || {
        let (status, _) = api.call("POST", &format!("/agents/{agent}/scan"), None);
        (status == 202).then_some(())
    });
    wait_for("a new scan result", Duration::from_secs(40), || {
        let r = results(api, agent);
        (r.len() > before).then(|| r[0].clone())
    })
}

fn open_ports(result: &Value) -> Vec<u64> {
    result["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["state"] == "open")
        .filter_map(|p| p["port"].as_u64())
        .collect()
}

fn spooled(spool: &Path) -> usize {
    std::fs::read_dir(spool)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn windows_agent_against_a_linux_server() {
    if !can_build_networks() {
        return;
    }
    let Some((wine, exe)) = wine_and_exe() else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("vigil-winagent")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir: PathBuf = tmp.path().to_path_buf();
    eprintln!("working directory: {}", dir.display());
    let net = TestNet::new(NetSpec::default()).expect("test network");
    for host in [HOST, SILENT] {
        net.add_host(host.parse().expect("ip")).expect("host");
    }
    net.filter_host(SILENT.parse().expect("ip"))
        .expect("filter");
    let _ssh = net.listen(format!("{HOST}:22").parse().unwrap(), None);
    let mut server = start_server_with(&net, &dir, &SERVER_ARGS, &[]);
    let api = owner_api(&net);
    let server_id = api.get("/server")["server_id"]
        .as_str()
        .expect("server id")
        .to_string();

    // Enroll with the command the server prints, run by vigil.exe with its
    // default state directory.
    let e = api.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "win", "plan": "extended"})),
    );
    let command = e["command"].as_str().expect("command").to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..3], ["vigil", "agent", "enroll"], "{command}");
    let out = run_ok(agent_cmd(&net, &wine, &exe).args(&words[1..]));
    assert!(out.contains("enrolled as agent"), "{out}");
    let state = wine.unix_path("C:\\ProgramData\\Vigil\\agent");
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("identity.json")).expect("identity in %ProgramData%"),
    )
    .expect("identity json");
    let agent = identity["agent_id"].as_str().expect("agent id").to_string();
    let status = run_ok(agent_cmd(&net, &wine, &exe).args(["agent", "status"]));
    assert!(status.contains(&agent), "{status}");
    // The single-use token is spent: a second enrollment says why in the
    // server's words.
    let again = agent_cmd(&net, &wine, &exe)
        .args(["agent", "--state-dir", "C:\\second"])
        .args(&words[2..])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{err}");
    assert!(err.contains("refused the enrollment"), "{err}");

    let run_agent = |log: &str| -> Proc {
        let mut cmd = agent_cmd(&net, &wine, &exe);
        cmd.args(["agent", "run", "--listen", &format!("{HOST}:47760")])
            .env("VIGIL_LOG", "info");
        spawn(cmd, "wine agent", &dir.join(log))
    };
    let _agent = run_agent("agent.log");

    // Heartbeats (after the facts sent at enrollment) carry Windows facts.
    let enrolled_seen = api.get(&format!("/agents/{agent}"))["last_seen_at"]
        .as_i64()
        .unwrap_or(0);
    let seen = wait_for("a heartbeat of agent run", Duration::from_secs(30), || {
        let a = api.get(&format!("/agents/{agent}"));
        (a["last_seen_at"].as_i64().unwrap_or(0) > enrolled_seen).then_some(a)
    });
    assert!(
        seen["hostname"].as_str().is_some_and(|h| !h.is_empty()),
        "{seen}"
    );
    let os = seen["os"].as_str().unwrap_or_default();
    assert!(os.contains("Windows"), "OS from Windows: {seen}");
    assert_eq!(seen["public_addr"], HOST, "{seen}");
    assert_eq!(seen["version"], env!("CARGO_PKG_VERSION"));

    // The identify answer, as a compliance sweep asks it.
    let addr = format!("{HOST}:47760").parse().unwrap();
    let reply = wait_for("the identify listener", Duration::from_secs(20), || {
        common::try_identify(&net, addr).ok()
    });
    assert_eq!(reply.agent_id, agent);
    assert_eq!(reply.server_id, server_id);

    // A scan task from the server: 22 authorized, then 23 opens → alert.
    api.ok(
        "PUT",
        &format!("/agents/{agent}/policy"),
        Some(json!({"enabled": true, "authorized": "22", "monitored": "",
                    "targets": ["agent_host"], "interval": 60})),
    );
    let first = scan_and_wait(&api, &agent);
    assert_eq!(first["addr"], HOST, "{first}");
    assert_eq!(open_ports(&first), [22], "{first}");
    let _telnet = net.listen(format!("{HOST}:23").parse().unwrap(), None);
    let second = scan_and_wait(&api, &agent);
    assert_eq!(open_ports(&second), [22, 23], "{second}");
    let alert = wait_for("the port-23 alert", Duration::from_secs(15), || {
        api.get(&format!("/alerts?status=all&agent={agent}"))
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["kind"] == "unauthorized_open" && a["port"] == 23)
            .cloned()
    });
    assert_eq!(alert["status"], "open", "{alert}");

    // The server dies while the agent scans the silent host: the result
    // waits in the spool under %ProgramData% and arrives once afterwards.
    api.ok(
        "PUT",
        &format!("/agents/{agent}/policy"),
        Some(
            json!({"enabled": true, "authorized": "22,23", "monitored": "",
                    "targets": ["agent_host", {"host": SILENT}], "interval": 60}),
        ),
    );
    wait_for(
        "the agent to start scanning the silent host",
        Duration::from_secs(30),
        || {
            let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
            log.lines()
                .any(|l| l.contains("scan started") && l.contains(SILENT))
                .then_some(())
        },
    );
    server.kill();
    let killed_at = unix_now();
    let spool = state.join("spool");
    wait_for("the result in the spool", Duration::from_secs(60), || {
        (spooled(&spool) > 0).then_some(())
    });
    let _server = common::compliance::restart_server(&net, &dir, &SERVER_ARGS);
    let silent = wait_for(
        "the spooled result after the restart",
        Duration::from_secs(40),
        || {
            let r: Vec<Value> = results(&api, &agent)
                .into_iter()
                .filter(|r| r["target"] == format!("host:{SILENT}"))
                .collect();
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(silent.len(), 1, "delivered exactly once: {silent:?}");
    assert!(silent[0]["received_at"].as_i64().unwrap() >= killed_at);
    wait_for("the spool to empty", Duration::from_secs(20), || {
        (spooled(&spool) == 0).then_some(())
    });
    // Spooling itself went without an error (a directory fsync that
    // Windows refuses once failed every push after its rename).
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(!log.contains("spooled result"), "{log}");

    // Compliance: the Wine host is managed by this server.
    let (code, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(
            json!({"scope": {"ip": {"enabled": true, "ranges": [format!("{HOST}/32")]},
                              "agent_ports": [47760], "unreachable_port": 135},
                    "reassess": true}),
        ),
    );
    assert_eq!(code, 202, "{body}");
    let done = wait_done(&api, body["assessment_id"].as_str().expect("id"));
    assert_eq!(done["counts"]["managed_here"], 1, "{done}");
    let page = api.get("/compliance/endpoints?status=managed_here");
    assert_eq!(page["endpoints"][0]["addrs"][0], HOST, "{page}");
    assert_eq!(page["endpoints"][0]["agent_id"], agent.as_str(), "{page}");
}
