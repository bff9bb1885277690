//! Compliance test fixtures: a server with one account, agents whose
//! identify listener claims a given server, and waiting for assessments.
#![allow(dead_code)]

use super::server::{spawn, wait_for, Api, Proc, API};
use super::{run_ok, vigil_bin};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vigil_testnet::{TestNet, SCANNER_V4};

pub const PASSWORD: &str = "correct horse battery staple";
pub const EMAIL: &str = "owner@acme.test";

/// Runs an agent whose identity says it belongs to `server_id`; its
/// identify listener on `addr:47760` answers with exactly that.
pub fn agent_of(
    net: &TestNet,
    dir: &Path,
    addr: &str,
    server_id: &str,
    name: &'static str,
) -> Proc {
    let state = dir.join(name);
    std::fs::create_dir_all(&state).unwrap();
    let identity = json!({
        "server_url": format!("https://{SCANNER_V4}:8443"),
        "pin": format!("sha256:{}", "0".repeat(64)),
        "agent_id": uuid_like(name),
        "credential": "vga_unused",
        "server_id": server_id,
    });
    std::fs::write(state.join("identity.json"), identity.to_string()).unwrap();
    let mut cmd = net.target_cmd(vigil_bin());
    cmd.args(["agent", "--state-dir"]).arg(&state).args([
        "run",
        "--listen",
        &format!("{addr}:47760"),
    ]);
    spawn(cmd, "agent", &dir.join(format!("{name}.log")))
}

/// A UUID-shaped id derived from `seed`.
pub fn uuid_like(seed: &str) -> String {
    let hex: String =
        seed.bytes().map(|b| format!("{b:02x}")).collect::<String>() + &"0".repeat(32);
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// Creates the account "Acme" and runs `vigil server` in the scanner
/// namespace (REST API on [`API`], agent API on the scanner address).
pub fn start_server(net: &TestNet, dir: &Path) -> Proc {
    start_server_with(net, dir, &[], &[])
}

/// [`start_server`] with extra arguments and environment variables.
pub fn start_server_with(net: &TestNet, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    create_account(&db, "Acme", EMAIL);
    run_server(net, dir, args, env, "server.log")
}

/// `vigil admin create-account`: an organization whose owner `email` has
/// the password [`PASSWORD`].
pub fn create_account(db: &str, name: &str, email: &str) {
    run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", db, "create-account", "--name", name])
            .args(["--kind", "organization", "--email", email])
            .env("VIGIL_PASSWORD", PASSWORD),
    );
}

/// Starts the server of [`start_server_with`] again (same data directory
/// and database; the account exists), logging to `server-restarted.log`.
pub fn restart_server(net: &TestNet, dir: &Path, args: &[&str]) -> Proc {
    run_server(net, dir, args, &[], "server-restarted.log")
}

fn run_server(net: &TestNet, dir: &Path, args: &[&str], env: &[(&str, &str)], log: &str) -> Proc {
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(dir)
        .args(["--db", &db, "--listen", API])
        .args(["--agent-listen", &format!("{SCANNER_V4}:8443")])
        .args(args)
        .env("VIGIL_LOG", "info")
        .envs(env.iter().copied());
    let p = spawn(cmd, "server", &dir.join(log));
    let api = Api { net, token: None };
    wait_for("the server", Duration::from_secs(20), || {
        (api.call("GET", "/openapi.json", None).0 == 200).then_some(())
    });
    p
}

/// An API client logged in as the account's owner.
pub fn owner_api(net: &TestNet) -> Api<'_> {
    login_as(net, EMAIL)
}

/// An API client logged in as `email` (password [`PASSWORD`]).
pub fn login_as<'a>(net: &'a TestNet, email: &str) -> Api<'a> {
    let mut api = Api { net, token: None };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": email, "password": PASSWORD})),
    );
    api.token = Some(login["token"].as_str().unwrap().to_string());
    api
}

/// Adds a user with the viewer role (password [`PASSWORD`]).
pub fn add_viewer(api: &Api<'_>, email: &str) {
    api.ok(
        "POST",
        "/users",
        Some(json!({"email": email, "password": PASSWORD, "role": "viewer"})),
    );
}

/// Saves `scope` (with the AD bind `password`, if any) with *Save and
/// re-assess*; the finished assessment.
pub fn save_and_assess(api: &Api<'_>, scope: Value, password: Option<&str>) -> Value {
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": scope, "ad_password": password, "reassess": true})),
    );
    assert_eq!(status, 202, "{body}");
    wait_done(api, body["assessment_id"].as_str().unwrap())
}

/// Polls assessment `id` until it is no longer running.
pub fn wait_done(api: &Api<'_>, id: &str) -> Value {
    wait_for("the assessment to finish", Duration::from_secs(180), || {
        let a = api.get(&format!("/compliance/assessments?assessment={id}"));
        (a["state"] != "running").then_some(a)
    })
}

/// The names of the endpoints of a result page.
pub fn names(page: &Value) -> Vec<String> {
    page["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// Enrolls an agent in `dir/name` through `POST /enrollments` and the
/// command it returns, without running it; returns its id.
pub fn enroll(net: &TestNet, dir: &Path, api: &Api<'_>, name: &str) -> String {
    enroll_with_bin(net, dir, api, name, Path::new(vigil_bin()))
}

/// [`enroll`] with the agent binary `exe`.
pub fn enroll_with_bin(net: &TestNet, dir: &Path, api: &Api<'_>, name: &str, exe: &Path) -> String {
    let e = api.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": name, "plan": "extended"})),
    );
    let command = e["command"].as_str().expect("command").to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    let state = dir.join(name);
    run_ok(
        net.target_cmd(exe)
            .args(["agent", "--state-dir"])
            .arg(&state)
            .args(&words[2..]),
    );
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("identity.json")).unwrap())
            .unwrap();
    identity["agent_id"].as_str().unwrap().to_string()
}

/// Enrolls a real agent with the server (through `POST /enrollments` and
/// the command it returns) and runs it with its identify listener on
/// `addr:47760`. Returns the process and the agent id.
pub fn enrolled_agent(
    net: &TestNet,
    dir: &Path,
    api: &Api<'_>,
    addr: &str,
    name: &'static str,
) -> (Proc, String) {
    let id = enroll(net, dir, api, name);
    let state = dir.join(name);
    let mut cmd = net.target_cmd(vigil_bin());
    cmd.args(["agent", "--state-dir"])
        .arg(&state)
        .args(["run", "--listen", &format!("{addr}:47760")])
        .env("VIGIL_LOG", "info");
    (spawn(cmd, "agent", &dir.join(format!("{name}.log"))), id)
}

/// A fake agent on `addr:port` in the target namespace: reads a request
/// line, answers `line`, whatever was asked, for as long as the test runs.
pub fn fake_agent(net: &TestNet, addr: &str, port: u16, line: Vec<u8>) {
    use std::io::{BufRead, BufReader, Write};
    let at: std::net::SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let listener = net
        .in_target(move || std::net::TcpListener::bind(at))
        .expect("namespace")
        .expect("bind the fake agent");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = String::new();
            let _ = BufReader::new(&conn).read_line(&mut request);
            let _ = conn.write_all(&line);
        }
    });
}
