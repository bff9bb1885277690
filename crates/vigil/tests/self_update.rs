//! Agent self-update end to end, in network namespaces: a real `vigil
//! server` (scanner namespace) offers agent builds; a real agent (target
//! namespace) runs from a copy of the binary in a directory it may write.
//!
//! Two real builds: the test bumps the version of a copy of this build by
//! rewriting its version stamp (`vigil_proto::version`: the one place the
//! version is read from), which gives a second, different binary without
//! compiling the workspace again. The agent is rolled out to it, replaces
//! itself, hands over and heartbeats with the new version. Then the server
//! offers a broken build (it starts but never reaches the server): the
//! agent tries it, the trial ends, the working binary is put back, the
//! failure is reported and the version is not offered again.

mod common;

use common::builds::{agent_update, bump, stamped, write_exe};
use common::compliance::{enroll_with_bin, owner_api, restart_server, start_server_with, EMAIL};
use common::http::{console, console_session, field};
use common::server::{wait_for, Api, Proc};
use common::{can_build_networks, vigil_bin};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

/// The trial period the agent runs with (the default is a minute).
const TRIAL_SECS: u64 = 8;

fn run_agent(net: &TestNet, dir: &Path, exe: &Path) -> Proc {
    let mut cmd = net.target_cmd(exe);
    cmd.args(["agent", "--state-dir"])
        .arg(dir.join("agent"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .args(["--update-trial-secs", &TRIAL_SECS.to_string()])
        .env("VIGIL_LOG", "info");
    common::server::spawn(cmd, "agent", &dir.join("agent.log"))
}

#[test]
fn an_agent_updates_itself_and_rolls_back_a_build_that_cannot_reach_the_server() {
    if !can_build_networks() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).expect("test network");
    // The agent's host, in the target namespace.
    net.add_host("198.51.100.10".parse().expect("addr"))
        .expect("host");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let running = vigil_proto::version::version().to_string();
    let v2 = bump(&running, 1);
    let v3 = bump(&running, 2);

    // The agent's own binary (a copy of this build), and the next build.
    let exe: PathBuf = dir.join("opt/vigil");
    write_exe(&exe, &std::fs::read(vigil_bin()).expect("build"));
    let next = dir.join("builds/next/vigil");
    stamped(Path::new(vigil_bin()), &next, &v2);
    let next_bytes = std::fs::read(&next).expect("next");

    let server_args = [
        "--heartbeat-secs",
        "1",
        "--tick-ms",
        "200",
        "--agent-binary",
    ];
    let mut args: Vec<&str> = server_args.to_vec();
    let next_arg = next.to_str().expect("path");
    args.push(next_arg);
    let mut server = start_server_with(&net, dir, &args, &[]);
    let api = owner_api(&net);
    let builds = api.get("/updates");
    assert_eq!(builds["builds"][0]["version"], v2.as_str(), "{builds}");
    assert_eq!(builds["auto_update"], false);

    let agent_id = enroll_with_bin(&net, dir, &api, "agent", &exe);
    let mut agent = run_agent(&net, dir, &exe);
    let pid = agent.id();
    wait_for(
        "the agent's first heartbeat",
        Duration::from_secs(20),
        || {
            let a = agent_update(&api, &agent_id);
            (a["version"] == running.as_str()).then_some(())
        },
    );
    // No rollout: nothing is offered.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(agent_update(&api, &agent_id)["state"], "outdated");
    assert_eq!(
        std::fs::read(&exe).expect("exe"),
        std::fs::read(vigil_bin()).expect("build")
    );

    // A viewer may not roll out; a rollout names exactly one selection;
    // another account's (or an unknown) agent is not found.
    let (status, _) = api.call(
        "POST",
        "/updates/rollout",
        Some(json!({"all": true, "tag": "x"})),
    );
    assert_eq!(status, 422);
    let (status, _) = api.call(
        "POST",
        "/updates/rollout",
        Some(json!({"agents": ["00000000-0000-4000-8000-000000000000"]})),
    );
    assert_eq!(status, 404);

    // Roll out to this agent: it downloads, checks, replaces itself, runs
    // the new build on trial, hands over (same process), and runs v2.
    let r = api.ok(
        "POST",
        "/updates/rollout",
        Some(json!({"agents": [agent_id]})),
    );
    assert_eq!(r["agents"], 1);
    let updated = wait_for(
        "the agent to run the new build",
        Duration::from_secs(60),
        || {
            let a = agent_update(&api, &agent_id);
            (a["state"] == "updated" && a["version"] == v2.as_str()).then_some(a)
        },
    );
    assert_eq!(updated["target_version"], v2.as_str());
    assert_eq!(
        std::fs::read(&exe).expect("exe"),
        next_bytes,
        "the binary was replaced"
    );
    let previous = dir.join("opt/vigil.previous");
    assert_eq!(
        std::fs::read(&previous).expect("previous"),
        std::fs::read(vigil_bin()).expect("build"),
        "the old binary is kept"
    );
    assert_eq!(agent.id(), pid, "the update handed over within the process");
    assert!(agent.alive(), "the agent runs on");
    let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
    assert!(log.contains("new agent build on trial"), "{log}");
    // The console shows it.
    let session = console_session(&net, EMAIL);
    let page = console(&net, &session, "GET", "/updates", &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&v2) && page.body.contains(">updated<"),
        "{}",
        page.body
    );

    // A broken build: it starts but never reaches the server.
    server.kill();
    let broken = dir.join("builds/broken/vigil");
    write_exe(
        &broken,
        format!("#!/bin/sh\n# VIGIL_VERSION_STAMP[{v3}]\nexec sleep 3600\n").as_bytes(),
    );
    let mut args: Vec<&str> = server_args.to_vec();
    let broken_arg = broken.to_str().expect("path");
    args.push(broken_arg);
    let _server = restart_server(&net, dir, &args);
    let api = owner_api(&net);
    assert_eq!(api.get("/updates")["builds"][0]["version"], v3.as_str());
    // Automatic updates, switched on in the console.
    let session = console_session(&net, EMAIL);
    let page = console(&net, &session, "GET", "/updates", &[]);
    let csrf = field(&page.body, "csrf");
    let on = console(
        &net,
        &session,
        "POST",
        "/updates/auto",
        &[("csrf", &csrf), ("enabled", "on")],
    );
    assert_eq!(on.status, 303, "{}", on.body);
    assert_eq!(api.get("/updates")["auto_update"], true);
    let failed = wait_for(
        "the broken build's trial to fail",
        Duration::from_secs(90),
        || {
            let a = agent_update(&api, &agent_id);
            (a["state"] == "failed").then_some(a)
        },
    );
    assert_eq!(failed["target_version"], v3.as_str(), "{failed}");
    let detail = failed["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("did not reach the server within {TRIAL_SECS} s")),
        "{failed}"
    );
    assert_eq!(
        std::fs::read(&exe).expect("exe"),
        next_bytes,
        "the working binary is back"
    );
    assert_eq!(agent_update(&api, &agent_id)["version"], v2.as_str());
    assert!(agent.alive());
    // Not offered again: the agent stays on v2, heartbeating.
    let seen = |api: &Api<'_>| api.get(&format!("/agents/{agent_id}"))["last_seen_at"].as_i64();
    let before = seen(&api);
    std::thread::sleep(Duration::from_secs(TRIAL_SECS + 3));
    let a = agent_update(&api, &agent_id);
    assert_eq!(
        (a["state"].as_str(), a["version"].as_str()),
        (Some("failed"), Some(v2.as_str()))
    );
    assert!(seen(&api) > before, "the agent heartbeats on");
    let page = console(&net, &session, "GET", "/updates", &[]);
    assert!(
        page.body.contains("update failed") && page.body.contains(detail),
        "{}",
        page.body
    );
    agent.kill();
}
