//! The Windows agent as a Windows service, under Wine's service manager,
//! against a real Linux `vigil server`:
//!
//! * `vigil.exe agent service install|status|start|stop|uninstall`: the
//!   service runs the enrolled agent (heartbeats, identify answers, log
//!   file under `%ProgramData%\Vigil\agent\logs`) and stops cleanly on the
//!   manager's stop request;
//! * the MSI (`packaging/build-msi`) run by Wine's `msiexec /qn` with a
//!   deployment key: a forged key rolls the whole install back; a real one
//!   installs `C:\Program Files\Vigil\vigil.exe`, enrolls (the key's use is
//!   recorded) and starts the service; uninstalling removes the service
//!   and the program and keeps the agent's state.
//!
//! Wine starts a prefix's service manager from the first Wine process that
//! needs it, so every Wine command here runs in the target namespace: the
//! services it starts are there too. And Wine stops its services (and its
//! service manager) a few seconds after the last ordinary Wine process of
//! the prefix exits, which Windows of course never does: each test keeps a
//! `cmd.exe` waiting on its open stdin for as long as it runs.

mod common;

use common::compliance::{owner_api, start_server_with};
use common::server::{spawn, wait_for, Api, Proc};
use common::wine::{wine_and_exe, Wine};
use common::{can_build_networks, run_ok, try_identify};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

const HOST: &str = "198.51.100.10";

/// `PROGRAM ARGS` under Wine in the target namespace (`PROGRAM`: a Linux
/// path to an exe, or a Windows program such as `msiexec`).
fn wine_cmd(net: &TestNet, wine: &Wine, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = net.target_cmd(wine.loader());
    wine.configure(&mut cmd);
    cmd.arg(program);
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What both tests run in: the test network with the agent's host, a
/// server, a Wine prefix whose services are kept alive, and `vigil.exe`.
struct World {
    // Drop order: the Wine anchor, the server, the network, the directory.
    _alive: Proc,
    _server: Proc,
    net: TestNet,
    wine: Wine,
    exe: PathBuf,
    tmp: tempfile::TempDir,
}

/// The [`World`], or `None` (printed why) when it cannot be built here.
fn world() -> Option<World> {
    if !can_build_networks() {
        return None;
    }
    let (wine, exe) = wine_and_exe()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let net = TestNet::new(NetSpec::default()).expect("test network");
    net.add_host(HOST.parse().expect("ip")).expect("host");
    let server = start_server_with(&net, tmp.path(), &["--heartbeat-secs", "1"], &[]);
    // A Wine process that lives until dropped (`cmd.exe` reading the stdin
    // that `spawn` holds open), so Wine keeps the prefix's services running.
    let alive = spawn(
        wine_cmd(&net, &wine, "cmd.exe"),
        "wine cmd.exe",
        &tmp.path().join("cmd.log"),
    );
    Some(World {
        _alive: alive,
        _server: server,
        net,
        wine,
        exe,
        tmp,
    })
}

fn last_seen(api: &Api, agent: &str) -> i64 {
    api.get(&format!("/agents/{agent}"))["last_seen_at"]
        .as_i64()
        .unwrap_or(0)
}

/// Waits for a heartbeat after `since` (unix seconds).
fn wait_heartbeat(api: &Api, agent: &str, since: i64) {
    wait_for(
        "a heartbeat from the service",
        Duration::from_secs(40),
        || (last_seen(api, agent) > since).then_some(()),
    );
}

#[test]
fn service_commands_run_the_agent_under_wines_service_manager() {
    let Some(w) = world() else {
        return;
    };
    let (net, wine, exe) = (&w.net, &w.wine, &w.exe);
    let api = owner_api(net);
    let server_id = api.get("/server")["server_id"]
        .as_str()
        .expect("server id")
        .to_string();
    let vigil = |args: &[&str]| {
        let mut cmd = wine_cmd(net, wine, exe);
        cmd.args(args);
        output(&mut cmd)
    };

    // Not enrolled yet: install refuses, naming the fix.
    let out = vigil(&["agent", "service", "install"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not enrolled"), "{}", text(&out));

    let e = api.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "win-svc", "plan": "extended"})),
    );
    let command = e["command"].as_str().expect("command");
    let words: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = vigil(&words);
    assert!(out.status.success(), "{}", text(&out));
    let state = wine.unix_path("C:\\ProgramData\\Vigil\\agent");
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("identity.json")).expect("identity"),
    )
    .expect("json");
    let agent = identity["agent_id"].as_str().expect("id").to_string();

    let listen = format!("{HOST}:47760");
    let out = vigil(&["agent", "service", "install", "--listen", &listen]);
    assert!(out.status.success(), "{}", text(&out));
    let out = vigil(&["agent", "service", "install", "--listen", &listen]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "installed twice: {}",
        text(&out)
    );
    let status = text(&vigil(&["agent", "service", "status"]));
    assert!(status.contains("service-run"), "{status}");
    assert!(status.contains(&listen), "{status}");

    let since = last_seen(&api, &agent);
    let out = vigil(&["agent", "service", "start"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&vigil(&["agent", "service", "status"])).contains("Running"),
        "running after start"
    );
    let addr: SocketAddr = listen.parse().expect("addr");
    let reply = wait_for(
        "the service's identify answer",
        Duration::from_secs(30),
        || try_identify(net, addr).ok(),
    );
    assert_eq!(reply.agent_id, agent);
    assert_eq!(reply.server_id, server_id);
    wait_heartbeat(&api, &agent, since);
    let logs: Vec<PathBuf> = std::fs::read_dir(state.join("logs"))
        .expect("the service's log directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    let log = logs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<String>();
    assert!(log.contains("agent running"), "{logs:?}: {log}");

    // A stop request ends the agent: the port closes, the state is Stopped.
    let out = vigil(&["agent", "service", "stop"]);
    assert!(out.status.success(), "{}", text(&out));
    wait_for(
        "the identify port to close",
        Duration::from_secs(15),
        || try_identify(net, addr).is_err().then_some(()),
    );
    let status = text(&vigil(&["agent", "service", "status"]));
    assert!(status.contains("Stopped"), "{status}");
    let log = std::fs::read_to_string(&logs[0]).unwrap_or_default();
    assert!(log.contains("stopped"), "{log}");

    let out = vigil(&["agent", "service", "uninstall"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = vigil(&["agent", "service", "status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

/// What the service logged so far (for failure messages).
fn service_log(state: &Path) -> String {
    std::fs::read_dir(state.join("logs"))
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_else(|e| format!("no log directory: {e}"))
}

/// Builds the MSI from the Windows binary (stripped: wixl compresses every
/// byte, and the debug build's symbols are most of them).
fn build_msi(exe: &Path, dir: &Path) -> PathBuf {
    let stripped = dir.join("vigil.exe");
    run_ok(
        Command::new("x86_64-w64-mingw32-strip")
            .arg("-o")
            .arg(&stripped)
            .arg(exe),
    );
    let msi = dir.join("vigil-agent.msi");
    run_ok(
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/build-msi"
        ))
        .arg(&stripped)
        .arg(&msi),
    );
    msi
}

#[test]
fn msi_installs_enrolls_and_starts_the_agent_under_wine() {
    let Some(w) = world() else {
        return;
    };
    let (net, wine) = (&w.net, &w.wine);
    let api = owner_api(net);
    let msi = vigil_testwine::windows_path(&build_msi(&w.exe, w.tmp.path()));
    let key = api.ok(
        "POST",
        "/deployment-keys",
        Some(json!({"name": "gpo", "expires_in_days": 1, "plan": "extended"})),
    );
    let secret = key["secret"].as_str().expect("secret").to_string();
    let key_id = key["key"]["id"].as_str().expect("key id").to_string();
    let pin = key["pin"].as_str().expect("pin").to_string();
    let server = key["server_url"].as_str().expect("server url").to_string();
    let installed = wine.unix_path("C:\\Program Files\\Vigil\\vigil.exe");
    let state = wine.unix_path("C:\\ProgramData\\Vigil\\agent");
    let msiexec = |args: &[String]| output(wine_cmd(net, wine, "msiexec").args(args));
    let install = |token: &str| {
        msiexec(&[
            "/i".into(),
            msi.clone(),
            format!("SERVER={server}"),
            format!("TOKEN={token}"),
            format!("PIN={pin}"),
            "/qn".into(),
        ])
    };

    // A forged key: the enrollment fails, so does the install, and it
    // rolls back (no program, no service).
    let out = install("vgd_forged");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!installed.exists(), "rolled back");
    let sc = output(wine_cmd(net, wine, "sc").args(["query", "VigilAgent"]));
    assert!(!text(&sc).contains("RUNNING"), "{}", text(&sc));

    // The real key: installed, enrolled, running.
    let out = install(&secret);
    assert!(out.status.success(), "{}", text(&out));
    assert!(installed.is_file());
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("identity.json")).expect("enrolled by the MSI"),
    )
    .expect("json");
    let agent = identity["agent_id"].as_str().expect("id").to_string();
    let uses = api.get(&format!("/deployment-keys/{key_id}/uses"));
    assert_eq!(uses.as_array().map(Vec::len), Some(1), "{uses}");
    assert_eq!(uses[0]["agent_id"], agent.as_str(), "{uses}");
    let sc = output(wine_cmd(net, wine, "sc").args(["query", "VigilAgent"]));
    assert!(text(&sc).contains("RUNNING"), "{}", text(&sc));
    // The service's agent listens on every address (the default).
    let addr: SocketAddr = format!("{HOST}:47760").parse().expect("addr");
    let reply = wait_for(
        "the service's identify answer",
        Duration::from_secs(30),
        || try_identify(net, addr).ok(),
    );
    assert_eq!(reply.agent_id, agent, "{}", service_log(&state));
    let since = last_seen(&api, &agent);
    wait_heartbeat(&api, &agent, since);

    // Uninstall: service and program gone, the agent's state kept.
    let out = msiexec(&["/x".into(), msi.clone(), "/qn".into()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!installed.exists());
    let sc = output(wine_cmd(net, wine, "sc").args(["query", "VigilAgent"]));
    assert!(!text(&sc).contains("RUNNING"), "{}", text(&sc));
    assert!(state.join("identity.json").is_file());
    wait_for(
        "the identify port to close",
        Duration::from_secs(15),
        || try_identify(net, addr).is_err().then_some(()),
    );
}
