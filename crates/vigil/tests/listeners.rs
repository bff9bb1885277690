//! Alerts that say what is listening (issue 17 point 5), end to end: `vigil
//! up` (a real server and a local agent watching 127.0.0.1) in a fresh
//! network namespace, so it only ever scans that namespace's loopback. A
//! program started as another user (`nobody`) listens on an unauthorized
//! port: the stored result, the notification (a webhook contact) and the
//! alert name the process — name, pid, user, executable, command line —
//! and what its HTTP service says. Then the port is authorized with
//! process-change alerts on, and another program takes it over.

mod common;

use common::server::{spawn, wait_for, webhook_receiver, Api, Proc, API};
use common::{can_build_networks, vigil_bin};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

/// The port the other user's program listens on (not authorized).
const PORT: u16 = 2025;
/// The system's Python (not a shim in root's home, which `nobody` cannot read).
const PYTHON: &str = "/usr/bin/python3";

fn start_up(net: &TestNet, dir: &Path) -> Proc {
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["up", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", API]);
    spawn(cmd, "vigil up", &dir.join("up.log"))
}

fn printed(dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("up.log")).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
}

/// `python -m http.server PORT` on 127.0.0.1 as `nobody`, in the namespace.
fn http_server_as_nobody(net: &TestNet, python: &str) -> Child {
    let mut cmd = net.scanner_cmd("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        python,
        "-m",
        "http.server",
    ])
    .arg(PORT.to_string())
    .args(["--bind", "127.0.0.1"])
    .current_dir("/")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let child = cmd.spawn().expect("start the http server as nobody");
    wait_for("the http server to listen", Duration::from_secs(10), || {
        net.in_scanner(|| std::net::TcpStream::connect(("127.0.0.1", PORT)).ok())
            .ok()
            .flatten()
            .map(|_| ())
    });
    child
}

fn latest_result(api: &Api, agent: &str) -> Option<Value> {
    let r = api.get(&format!("/agents/{agent}/results?limit=1"));
    r.as_array().and_then(|a| a.first().cloned())
}

fn port_of(result: &Value, port: u16) -> Option<Value> {
    result["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"] == port)
        .cloned()
}

fn alert(api: &Api, kind: &str, status: &str) -> Option<Value> {
    api.get("/alerts?status=all")
        .as_array()?
        .iter()
        .find(|a| a["kind"] == kind && a["port"] == PORT && a["status"] == status)
        .cloned()
}

/// Asks for a scan now and waits for the result after `previous`.
fn scan(api: &Api, agent: &str, previous: &Value) -> Value {
    wait_for("the scan to be accepted", Duration::from_secs(30), || {
        let (status, _) = api.call("POST", &format!("/agents/{agent}/scan"), None);
        (status == 202).then_some(())
    });
    wait_for("a new scan result", Duration::from_secs(60), || {
        latest_result(api, agent).filter(|r| r["id"] != previous["id"])
    })
}

#[test]
fn alerts_and_results_say_what_is_listening() {
    if !can_build_networks() || !Path::new(PYTHON).exists() {
        eprintln!("SKIPPED: needs root, network namespaces and {PYTHON}");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).expect("test network");
    let mut server = http_server_as_nobody(&net, PYTHON);
    let pid = server.id();
    let (hook, seen) = webhook_receiver(&net);
    let _up = start_up(&net, dir);
    let password = wait_for("the first login", Duration::from_secs(30), || {
        printed(dir, "password:")
    });
    let email = printed(dir, "login:").expect("login");
    let mut api = Api {
        net: &net,
        token: None,
    };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": email, "password": password})),
    );
    api.token = Some(login["token"].as_str().expect("token").to_string());
    let c = api.ok(
        "POST",
        "/contacts",
        Some(
            json!({"name": "hook", "channel": "webhook", "address": format!("http://{hook}/hook")}),
        ),
    );
    api.ok(
        "POST",
        "/rules",
        Some(json!({"contact_id": c["id"], "events": ["*"]})),
    );
    let agent = api.get("/agents")[0]["id"]
        .as_str()
        .expect("agent")
        .to_string();

    // The result: the port with its process and what it serves.
    let result = wait_for("a result with the port", Duration::from_secs(90), || {
        latest_result(&api, &agent).filter(|r| port_of(r, PORT).is_some())
    });
    let port = port_of(&result, PORT).expect("port");
    assert_eq!(port["state"], "open", "{port}");
    let details = &port["details"];
    let process = &details["process"];
    assert_eq!(process["name"], "python3", "{port}");
    assert_eq!(process["pid"], pid, "{port}");
    assert_eq!(process["user"], "nobody", "{port}");
    let exe = std::fs::canonicalize(PYTHON).expect("python's executable");
    assert_eq!(process["exe"], exe.to_str().expect("utf-8"), "{port}");
    let cmdline = format!("{PYTHON} -m http.server {PORT} --bind 127.0.0.1");
    assert_eq!(process["cmdline"], cmdline.as_str(), "{port}");
    let server_header = details["http"]["server"].as_str().unwrap_or_default();
    assert!(server_header.starts_with("SimpleHTTP/"), "{port}");
    assert_eq!(
        details["http"]["title"], "Directory listing for /",
        "{port}"
    );

    // The alert and its notification name the process.
    let raised = wait_for(
        "the unauthorized-port alert",
        Duration::from_secs(30),
        || alert(&api, "unauthorized_open", "open"),
    );
    let summary = format!("{cmdline} (pid {pid}, user nobody, {})", exe.display());
    let one = api.get(&format!("/alerts/{}", raised["id"].as_str().expect("id")));
    assert_eq!(one["listening"], summary.as_str(), "{one}");
    let note = wait_for("the notification", Duration::from_secs(30), || {
        let seen = seen.lock().expect("lock");
        seen.iter()
            .find(|n| n["event"] == "unauthorized_port_open" && n["port"] == PORT)
            .cloned()
    });
    let title = note["title"].as_str().expect("title");
    assert!(
        title.starts_with(&format!("Unauthorized port {PORT}/tcp open on "))
            && title.ends_with(&format!(": {summary}")),
        "{note}"
    );
    let text = note["details"].as_str().expect("details");
    assert!(text.contains(&format!("Process: {summary}")), "{note}");
    assert!(
        text.contains("HTTP title: Directory listing for /"),
        "{note}"
    );

    // Authorized, with process-change alerts on: another program (a copy of
    // Python elsewhere) taking the port over raises one, and the next scan
    // that finds it still there ends it.
    let mut view = api.get(&format!("/agents/{agent}/policy"));
    let authorized = view["policy"]["authorized"]
        .as_str()
        .unwrap_or("")
        .to_string();
    view["policy"]["authorized"] = json!(format!("{authorized},{PORT}"));
    view["policy"]["process_change_alerts"] = json!(true);
    api.ok(
        "PUT",
        &format!("/agents/{agent}/policy"),
        Some(view["policy"].clone()),
    );
    let before = scan(&api, &agent, &result);
    assert!(alert(&api, "process_changed", "open").is_none());
    server.kill().expect("kill");
    server.wait().expect("wait");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = other_dir.path().join("other-python");
    std::fs::copy(&exe, &other).expect("copy python");
    let mode = |p: &Path, m| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    };
    mode(other_dir.path(), 0o755);
    mode(&other, 0o755);
    let mut replacement = http_server_as_nobody(&net, other.to_str().expect("utf-8"));
    let after = scan(&api, &agent, &before);
    let now = port_of(&after, PORT).expect("port");
    assert_eq!(
        now["details"]["process"]["exe"],
        other.to_str().expect("utf-8")
    );
    let changed = wait_for("the process-change alert", Duration::from_secs(30), || {
        alert(&api, "process_changed", "open")
    });
    assert!(
        changed["title"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("Port {PORT}/tcp served by another program"))),
        "{changed}"
    );
    let note = wait_for(
        "the process-change notification",
        Duration::from_secs(30),
        || {
            let seen = seen.lock().expect("lock");
            seen.iter()
                .find(|n| {
                    n["severity"] == "warning"
                        && n["title"]
                            .as_str()
                            .is_some_and(|t| t.contains("served by another program"))
                })
                .cloned()
        },
    );
    let text = note["details"].as_str().expect("details");
    assert!(
        text.contains(&format!("Program before: {}", exe.display()))
            && text.contains(&format!("Program now: {}", other.display())),
        "{note}"
    );
    scan(&api, &agent, &after);
    wait_for(
        "the process-change alert to end",
        Duration::from_secs(30),
        || alert(&api, "process_changed", "resolved"),
    );
    let _ = replacement.kill();
    let _ = replacement.wait();
}
