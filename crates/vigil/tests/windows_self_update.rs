//! Self-update of the Windows agent (`vigil.exe` under Wine) from a real
//! Linux `vigil server` that offers a Windows build (`--agent-binary-windows`,
//! a copy of the cross-built binary with its version bumped): the running
//! `vigil.exe` is renamed aside (Windows lets a running program's file be
//! renamed, not overwritten), the new build runs on trial, and the agent
//! hands over to it as a new process; the server sees the new version.
//!
//! Layout as in `windows_agent.rs`: the server in the scanner namespace,
//! the Wine agent in the target namespace. Nothing leaves the namespaces.

mod common;

use common::builds::{agent_update, bump, stamped, write_exe};
use common::compliance::{owner_api, start_server_with};
use common::server::{spawn, wait_for};
use common::wine::{wine_and_exe, Wine};
use common::{can_build_networks, run_ok};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

fn agent_cmd(net: &TestNet, wine: &Wine, exe: &Path) -> Command {
    let mut cmd = net.target_cmd(wine.loader());
    wine.configure(&mut cmd);
    cmd.arg(exe);
    cmd
}

#[test]
fn the_windows_agent_updates_itself() {
    if !can_build_networks() {
        return;
    }
    let Some((wine, built)) = wine_and_exe() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).expect("test network");
    net.add_host("198.51.100.10".parse().expect("ip"))
        .expect("host");

    let v2 = bump(vigil_proto::version::version(), 1);
    let next = dir.join("builds/vigil.exe");
    stamped(&built, &next, &v2);
    let exe = dir.join("Vigil/vigil.exe");
    write_exe(&exe, &std::fs::read(&built).expect("build"));

    let next_arg = next.to_str().expect("path");
    let args = [
        "--heartbeat-secs",
        "1",
        "--tick-ms",
        "200",
        "--agent-binary-windows",
        next_arg,
    ];
    let _server = start_server_with(&net, dir, &args, &[]);
    let api = owner_api(&net);
    let builds = api.get("/updates")["builds"].clone();
    let windows = builds
        .as_array()
        .and_then(|b| b.iter().find(|b| b["platform"] == "windows-x86_64"))
        .cloned()
        .unwrap_or_else(|| panic!("no Windows build offered: {builds}"));
    assert_eq!(windows["version"], v2.as_str());

    let e = api.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "win", "plan": "extended"})),
    );
    let command = e["command"].as_str().expect("command").to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    run_ok(agent_cmd(&net, &wine, &exe).args(&words[1..]));
    let state = wine.unix_path("C:\\ProgramData\\Vigil\\agent");
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("identity.json")).expect("identity"),
    )
    .expect("identity json");
    let agent = identity["agent_id"].as_str().expect("agent id").to_string();

    let mut cmd = agent_cmd(&net, &wine, &exe);
    cmd.args([
        "agent",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--update-trial-secs",
        "60",
    ])
    .env("VIGIL_LOG", "info");
    let _agent = spawn(cmd, "wine agent", &dir.join("agent.log"));
    wait_for(
        "the Wine agent's heartbeat",
        Duration::from_secs(60),
        || {
            let a = agent_update(&api, &agent);
            (a["platform"] == "windows-x86_64" && a["state"] == "outdated").then_some(())
        },
    );

    api.ok("POST", "/updates/rollout", Some(json!({"agents": [agent]})));
    let updated = wait_for(
        "the Wine agent to run the new build",
        Duration::from_secs(150),
        || {
            let a = agent_update(&api, &agent);
            assert_ne!(a["state"], "failed", "{a}\n{}", log(dir));
            (a["state"] == "updated" && a["version"] == v2.as_str()).then_some(a)
        },
    );
    assert_eq!(updated["target_version"], v2.as_str());
    assert_eq!(
        std::fs::read(&exe).expect("exe"),
        std::fs::read(&next).expect("next"),
        "vigil.exe was replaced"
    );
    assert_eq!(
        std::fs::read(dir.join("Vigil/vigil.exe.previous")).expect("previous"),
        std::fs::read(&built).expect("build"),
        "the old vigil.exe is kept"
    );
    // The new process (started by the old one at the hand-over) goes on.
    let seen = |a: &Value| a["updated_at"].as_i64();
    let before = api.get(&format!("/agents/{agent}"))["last_seen_at"].as_i64();
    std::thread::sleep(Duration::from_secs(3));
    assert!(api.get(&format!("/agents/{agent}"))["last_seen_at"].as_i64() > before);
    assert!(seen(&updated).is_some());
    wine.kill_all();
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
}
