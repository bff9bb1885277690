//! PostgreSQL restarts under a running server: a real `vigil server` on
//! PostgreSQL with a real enrolled agent heartbeating (every second) and a
//! security-scan policy. PostgreSQL is stopped like a crash (`pg_ctl stop
//! -m immediate`) for a few seconds and started again. Meanwhile `/readyz`
//! says 503 while `/healthz` says 200, and the process neither exits nor
//! panics; afterwards, without anyone touching the server, it is ready
//! again, records the agent's heartbeats, answers the REST API, runs the
//! scan that fell due during the outage and one asked for, and has not
//! blamed the agent for its own outage (no *agent not communicating*).
//!
//! Everything listens on 127.0.0.1 (free ports); PostgreSQL is the
//! throwaway cluster of `vigil-testdb`, which this test binary has to
//! itself (it stops the whole cluster). Without PostgreSQL, or with an
//! external one (`VIGIL_TEST_POSTGRES_URL`, which is not ours to stop), the
//! test prints `SKIPPED` and passes (unless `VIGIL_REQUIRE_POSTGRES=1` and
//! no PostgreSQL at all).

mod common;

use common::replica::free_ports;
use common::server::{unix_now, wait_for};
use common::watch::Watch;
use common::{run_ok, vigil_bin};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vigil_store::{AccountId, AgentId};
use vigil_testdb::ServerControlError;

/// How long PostgreSQL stays down.
const OUTAGE: Duration = Duration::from_secs(8);
/// An agent silent this long (seconds) is "not communicating": shorter
/// than the outage, so the server must not count the time it could not
/// record the agent's calls (the sweeper waits this long after the
/// database is back), and longer than the agent's back-off (at most four
/// heartbeats).
const SILENT_AFTER: u64 = 5;
/// How long `/readyz` waits for the database (vigil-server's health.rs).
const READY_TIMEOUT: Duration = Duration::from_secs(2);
const EMAIL: &str = "owner@acme.test";
const PASSWORD: &str = "correct horse battery staple";

/// A child process killed (and reaped) on drop, which can say whether it
/// is still running.
struct Kid {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Kid {
    fn spawn(mut cmd: Command, name: &'static str, log: &Path) -> Kid {
        let file = std::fs::File::create(log).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Kid {
            name,
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks it to stop (SIGTERM).
    fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with a pid of our own child, which is not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Fails the test if the process ended.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the {} exited ({status}); its log:\n{}",
                self.name,
                self.log()
            );
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange with the REST listener: status (0 if the server
/// could not be reached or did not answer) and body.
fn http(
    api: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut stream = match TcpStream::connect_timeout(&api, Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => return (0, e.to_string()),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut raw = String::new();
    if let Err(e) = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_string(&mut raw))
    {
        return (0, e.to_string());
    }
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The REST API of the server under test.
struct Rest {
    api: SocketAddr,
    token: Option<String>,
}

impl Rest {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = http(
            self.api,
            method,
            &format!("/api/v1{path}"),
            self.token.as_deref(),
            body,
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {json}"
        );
        json
    }

    fn login(&mut self) -> Value {
        self.token = None;
        let login = self.ok(
            "POST",
            "/login",
            Some(json!({"email": EMAIL, "password": PASSWORD})),
        );
        self.token = Some(login["token"].as_str().expect("token").to_string());
        login
    }

    fn results(&self, agent: &str) -> Vec<Value> {
        self.ok("GET", &format!("/agents/{agent}/results?limit=1000"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Status of `GET path` outside `/api/v1` (the probes).
    fn probe(&self, path: &str) -> (u16, String) {
        http(self.api, "GET", path, None, None)
    }
}

/// Lines of `log` about trouble (warnings, errors, panics).
fn troubles(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .collect()
}

#[test]
fn the_server_recovers_from_a_postgresql_restart_by_itself() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(vigil_testdb::postgres()) else {
        return;
    };
    if let Err(ServerControlError::Unsupported(why)) = db.server_control() {
        eprintln!("SKIPPED: PostgreSQL restart test ({why})");
        println!("SKIPPED: {why}");
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("vigil-pg-restart")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    eprintln!("postgres restart working directory: {}", dir.display());

    let [api_port, agent_port] = free_ports();
    let api = SocketAddr::from(([127, 0, 0, 1], api_port));
    let agent_listen = SocketAddr::from(([127, 0, 0, 1], agent_port));
    let agent_url = format!("https://{agent_listen}");

    run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", &db.url, "create-account", "--name", "Acme"])
            .args(["--kind", "organization", "--email", EMAIL])
            .env("VIGIL_PASSWORD", PASSWORD),
    );
    let server_log = dir.join("server.log");
    let mut cmd = Command::new(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--db", &db.url])
        .args(["--listen", &api.to_string()])
        .args(["--agent-listen", &agent_listen.to_string()])
        .args(["--agent-url", &agent_url])
        .args(["--heartbeat-secs", "1", "--tick-ms", "200"])
        .args(["--silent-after-secs", &SILENT_AFTER.to_string()])
        // Scans check the policy's port (the REST API's) and nothing else.
        .args(["--sweep-ports", &api_port.to_string()])
        .env("VIGIL_LOG", "info");
    let mut server = Kid::spawn(cmd, "server", &server_log);
    let mut rest = Rest { api, token: None };
    wait_for("the server to start", Duration::from_secs(30), || {
        server.assert_running();
        let up = |a: SocketAddr| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok();
        (up(api) && up(agent_listen) && rest.probe("/readyz").0 == 200).then_some(())
    });

    // A real agent, enrolled with the command the REST API hands out.
    let login = rest.login();
    let account: AccountId = login["account"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("account id");
    let enrollment = rest.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "restart", "plan": "extended"})),
    );
    let command = enrollment["command"].as_str().expect("command").to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[..3], ["vigil", "agent", "enroll"], "{command}");
    let state = dir.join("agent");
    run_ok(
        Command::new(vigil_bin())
            .arg("agent")
            .arg("--state-dir")
            .arg(&state)
            .args(&words[2..]),
    );
    let identity: Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("identity.json")).expect("identity"),
    )
    .expect("json");
    let agent_id = identity["agent_id"].as_str().expect("agent id").to_string();
    let agent: AgentId = agent_id.parse().expect("agent id");
    let mut cmd = Command::new(vigil_bin());
    cmd.arg("agent")
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("VIGIL_LOG", "info");
    let mut agent_proc = Kid::spawn(cmd, "agent", &dir.join("agent.log"));
    let watch = Watch {
        rt: &rt,
        store: &db.store,
        account,
        agent,
    };
    watch.seen_since(
        unix_now() + 1,
        "the agent's heartbeats",
        Duration::from_secs(20),
    );

    // A security scan of the agent's host (127.0.0.1), the REST API's port
    // authorized: every minute (the shortest interval), the first one at once.
    rest.ok(
        "PUT",
        &format!("/agents/{agent_id}/policy"),
        Some(
            json!({"enabled": true, "authorized": api_port.to_string(), "monitored": "",
                    "targets": ["agent_host"], "interval": 1}),
        ),
    );
    let first = wait_for("the first scan result", Duration::from_secs(30), || {
        rest.results(&agent_id).into_iter().next()
    });
    assert_eq!(first["addr"], "127.0.0.1", "{first}");
    let open = |r: &Value| {
        r["ports"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["port"] == api_port && p["state"] == "open")
        })
    };
    assert!(open(&first), "{first}");
    watch.healthy_for(Duration::from_secs(2));
    let results_before = rest.results(&agent_id).len();
    // The next scheduled scan falls due in the middle of the outage.
    let due_at = unix_now() + 2;
    rt.block_on(db.store.set_next_run(account, agent, due_at))
        .expect("set next run");
    eprintln!("server and agent running ({:?})", started.elapsed());

    // PostgreSQL crashes.
    db.stop_server().expect("stop PostgreSQL");
    let stopped_at = unix_now();
    let outage = Instant::now();
    eprintln!("PostgreSQL stopped ({:?})", started.elapsed());
    let (status, body) = wait_for("/readyz to say 503", Duration::from_secs(10), || {
        let r = rest.probe("/readyz");
        (r.0 != 200).then_some(r)
    });
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: the database"), "{body}");
    // Alive the whole time: the process runs and answers /healthz.
    while outage.elapsed() + READY_TIMEOUT < OUTAGE {
        server.assert_running();
        let (status, body) = rest.probe("/healthz");
        assert_eq!(
            (status, body.trim()),
            (200, "ok"),
            "/healthz during the outage"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // (Takes READY_TIMEOUT: the server's wait for the database.)
    assert_eq!(rest.probe("/readyz").0, 503, "still no database");
    server.assert_running();

    // PostgreSQL is back; nobody touches the server.
    db.start_server().expect("start PostgreSQL");
    let restarted_at = unix_now();
    let back = Instant::now();
    eprintln!(
        "PostgreSQL started again after {:?} ({:?})",
        outage.elapsed(),
        started.elapsed()
    );
    wait_for("/readyz to say 200 again", Duration::from_secs(20), || {
        server.assert_running();
        (rest.probe("/readyz").0 == 200).then_some(())
    });
    eprintln!("ready again {:?} after the restart", back.elapsed());
    watch.seen_since(
        restarted_at + 1,
        "heartbeats recorded after the restart",
        Duration::from_secs(20),
    );
    eprintln!("heartbeats recorded {:?} after the restart", back.elapsed());

    // The REST API: a new login (a write), the agent list (reads).
    rest.login();
    let agents = rest.ok("GET", "/agents", None);
    let listed = agents
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == agent_id.as_str()))
        .unwrap_or_else(|| panic!("the agent is not listed: {agents}"));
    assert_eq!(listed["health"], "communicating", "{listed}");
    assert!(
        listed["last_seen_at"].as_i64() >= Some(restarted_at),
        "{listed}"
    );

    // The scan that fell due during the outage runs now.
    let scheduled = wait_for(
        "the scan that fell due during the outage",
        Duration::from_secs(15),
        || {
            let results = rest.results(&agent_id);
            (results.len() > results_before).then(|| results[0].clone())
        },
    );
    assert!(
        scheduled["started_at"].as_i64() >= Some(stopped_at),
        "{scheduled}"
    );
    assert!(open(&scheduled), "{scheduled}");
    eprintln!("scheduled scan done {:?} after the restart", back.elapsed());
    // And one asked for through the REST API.
    let before = rest.results(&agent_id).len();
    wait_for("a scan now to be accepted", Duration::from_secs(15), || {
        // 409 while the previous task is still out: try again.
        (rest
            .call("POST", &format!("/agents/{agent_id}/scan"), None)
            .0
            == 202)
            .then_some(())
    });
    wait_for(
        "the result of the scan asked for",
        Duration::from_secs(30),
        || (rest.results(&agent_id).len() > before).then_some(()),
    );
    eprintln!("requested scan done {:?} after the restart", back.elapsed());

    // The agent was never blamed for the server's outage.
    watch.healthy_for(Duration::from_secs(3));
    let alerts = rest.ok("GET", &format!("/alerts?status=all&agent={agent_id}"), None);
    assert_eq!(alerts, json!([]), "no alert of any kind");

    server.assert_running();
    agent_proc.assert_running();
    let log = server.log();
    let trouble = troubles(&log);
    eprintln!(
        "server warnings and errors ({}):\n{}",
        trouble.len(),
        trouble.join("\n")
    );
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("not ready") && l.contains("database")),
        "the server's log should say the database was away:\n{log}"
    );
    assert!(
        !log.contains("agent health changed"),
        "no agent changed health:\n{log}"
    );
    let agent_log = agent_proc.log();
    assert!(!agent_log.contains("panicked"), "{agent_log}");

    // Stopped (SIGTERM) while the database is away, the server still exits
    // within its shutdown grace (10 s), not after the pool's timeouts.
    db.stop_server().expect("stop PostgreSQL");
    std::thread::sleep(Duration::from_secs(3));
    let term = Instant::now();
    server.terminate();
    let status = wait_for("the server to exit", Duration::from_secs(20), || {
        server.child.try_wait().ok().flatten()
    });
    eprintln!("exited ({status}) {:?} after SIGTERM", term.elapsed());
    assert!(term.elapsed() < Duration::from_secs(15));
    db.start_server().expect("start PostgreSQL");
    eprintln!("done ({:?})", started.elapsed());
}
