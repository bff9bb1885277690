//! Operating a server: `/metrics` (checked with Prometheus' own `promtool`),
//! `/healthz` and `/readyz`, and `--log-format json`, on a real `vigil
//! server` with a real enrolled agent in a test network; and `/readyz`
//! following a PostgreSQL database that goes away and comes back.

mod common;

use common::compliance::{owner_api, EMAIL, PASSWORD};
use common::server::{wait_for, API};
use common::{can_build_networks, run_ok, vigil_bin};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

/// The agent's host in the target namespace; it has SSH (22) open.
const HOME: &str = "198.51.100.10";
const METRICS_TOKEN: &str = "scrape-s3cret";

/// A child killed (and reaped) on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with standard output and standard error in separate files.
fn spawn_split(mut cmd: Command, dir: &Path, name: &str) -> Kid {
    let file = |ext: &str| std::fs::File::create(dir.join(format!("{name}.{ext}"))).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"));
    Kid(cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}")))
}

/// An HTTP/1.1 response.
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// `GET path` with extra header lines, over `connect`'s stream.
fn get_with(
    connect: impl FnOnce() -> std::io::Result<TcpStream>,
    host: &str,
    path: &str,
    headers: &[&str],
) -> Response {
    let failed = |e: std::io::Error| Response {
        status: 0,
        head: String::new(),
        body: e.to_string(),
    };
    let mut stream = match connect() {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n");
    let mut raw = String::new();
    if let Err(e) = stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.read_to_string(&mut raw))
    {
        return failed(e);
    }
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// `GET path` on the REST listener of the server in the scanner namespace.
fn get_in(net: &TestNet, path: &str, headers: &[&str]) -> Response {
    let addr: SocketAddr = API.parse().unwrap();
    let connect = || {
        net.in_scanner(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
            .expect("namespace")
    };
    get_with(connect, API, path, headers)
}

/// `GET path` on 127.0.0.1.
fn get_local(addr: SocketAddr, path: &str) -> Response {
    let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    get_with(connect, &addr.to_string(), path, &[])
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn promtool_available() -> bool {
    let ok = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("VIGIL_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
        panic!(
            "VIGIL_REQUIRE_PROMTOOL=1 but promtool is missing (Debian: apt-get install prometheus)"
        );
    }
    ok
}

/// `promtool check metrics`: the exposition parses and follows
/// Prometheus' naming rules (exit 0: no lint problem either).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- exposition\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every line of a `--log-format json` standard error is a JSON object with
/// a timestamp, a level and a message; returns them.
fn json_log(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}\n--- all\n{text}"));
            for key in ["timestamp", "level", "message", "target"] {
                assert!(v.get(key).is_some(), "no {key:?} in {l}");
            }
            v
        })
        .collect();
    assert!(!lines.is_empty(), "{} is empty", path.display());
    lines
}

#[test]
fn metrics_probes_and_json_logs_of_a_server_with_an_agent() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("vigil-observability")
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).expect("test network");
    net.add_host(HOME.parse().unwrap()).unwrap();
    let _ssh = net
        .listen(format!("{HOME}:22").parse().unwrap(), None)
        .unwrap();

    // The server, logging JSON; its banner goes to standard output.
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", &db, "create-account", "--name", "Acme"])
            .args(["--kind", "organization", "--email", EMAIL])
            .env("VIGIL_PASSWORD", PASSWORD),
    );
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["server", "--log-format", "json", "--data-dir"])
        .arg(dir)
        .args(["--db", &db, "--listen", API])
        .args(["--agent-listen", &format!("{SCANNER_V4}:8443")])
        .args(["--heartbeat-secs", "1", "--tick-ms", "200"])
        .args(["--sweep-ports", "1-100", "--metrics-token", METRICS_TOKEN])
        .env("VIGIL_LOG", "info");
    let server = spawn_split(cmd, dir, "server");
    wait_for("the server", Duration::from_secs(20), || {
        (get_in(&net, "/healthz", &[]).status == 200).then_some(())
    });
    let api = owner_api(&net);

    // A real agent: enrolled with the command the server gives out, run
    // with its logs in JSON (from the environment this time).
    let e = api.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "home", "plan": "extended"})),
    );
    let command = e["command"].as_str().unwrap().to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    let state = dir.join("home");
    run_ok(
        net.target_cmd(vigil_bin())
            .args(["agent", "--state-dir"])
            .arg(&state)
            .args(&words[2..]),
    );
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("identity.json")).unwrap())
            .unwrap();
    let agent = identity["agent_id"].as_str().unwrap().to_string();
    let mut cmd = net.target_cmd(vigil_bin());
    cmd.args(["agent", "--state-dir"])
        .arg(&state)
        .args(["run", "--listen", &format!("{HOME}:47760")])
        .env("VIGIL_LOG", "info")
        .env("VIGIL_LOG_FORMAT", "json");
    let agent_proc = spawn_split(cmd, dir, "agent");

    // A policy is due at once: the agent scans its host and uploads, and
    // the server scans the agent's observed address (with SYN probes: the
    // test runs as root).
    api.ok(
        "PUT",
        &format!("/agents/{agent}/policy"),
        Some(json!({"enabled": true, "authorized": "", "monitored": "",
                    "targets": ["agent_host", "observed_address"], "interval": 60})),
    );
    wait_for("both scans' results", Duration::from_secs(60), || {
        let r = api.get(&format!("/agents/{agent}/results"));
        let targets: Vec<&str> = r
            .as_array()?
            .iter()
            .filter_map(|x| x["target"].as_str())
            .collect();
        (targets.contains(&"agent_host") && targets.contains(&"observed_address")).then_some(())
    });

    // Probes: no token needed.
    let health = get_in(&net, "/healthz", &[]);
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    let ready = get_in(&net, "/readyz", &[]);
    assert_eq!((ready.status, ready.body.trim()), (200, "ready"));

    // Metrics need the token given.
    assert_eq!(get_in(&net, "/metrics", &[]).status, 401);
    assert_eq!(
        get_in(&net, "/metrics", &["Authorization: Bearer wrong"]).status,
        401
    );
    let auth = format!("Authorization: Bearer {METRICS_TOKEN}");
    let scrape = get_in(&net, "/metrics", &[&auth]);
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    assert!(
        scrape
            .head
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        scrape.head
    );
    let text = scrape.body;
    let at_least_one = [
        "vigil_scan_results_ingested_total{target=\"agent_host\",outcome=\"stored\"}",
        "vigil_scan_tasks_created_total{target=\"agent_host\"}",
        "vigil_ingest_duration_seconds_count",
        "vigil_http_request_duration_seconds_count{api=\"agent\",method=\"POST\",route=\"/agent/v1/heartbeat\"}",
        "vigil_http_requests_total{api=\"agent\",method=\"POST\",route=\"/agent/v1/results\",status=\"200\"}",
        "vigil_http_requests_total{api=\"rest\",method=\"GET\",route=\"/api/v1/agents/{id}/results\",status=\"200\"}",
        "vigil_http_requests_total{api=\"rest\",method=\"GET\",route=\"/metrics\",status=\"401\"}",
    ];
    for series in at_least_one {
        let v = sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        assert!(v >= 1.0, "{series} is {v}");
    }
    // The observed-address scan went through the SYN engine: 100 ports,
    // each answered (the agent's host is there to answer).
    assert_eq!(
        sample(&text, "vigil_scan_engine{what=\"rate\"}"),
        Some(vigil_scan::SYN_DEFAULT_RATE),
        "{text}"
    );
    for what in ["sent", "answers"] {
        let series = format!("vigil_scan_probes_total{{what=\"{what}\"}}");
        let v = sample(&text, &series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        assert!(v >= 100.0, "{series} is {v}");
    }
    let exactly = [
        ("vigil_agents{health=\"communicating\"}", 1.0),
        ("vigil_agents{health=\"not_communicating\"}", 0.0),
        ("vigil_agents{health=\"abandoned\"}", 0.0),
        ("vigil_database_up", 1.0),
        ("vigil_outbox_pending", 0.0),
    ];
    for (series, want) in exactly {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            &format!(
                "vigil_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0)
    );
    // Routes are patterns: the agent id never becomes a label value.
    assert!(!text.contains(&agent), "{text}");
    if promtool_available() {
        promtool_check(&text);
    } else {
        eprintln!("SKIPPED promtool check: promtool not installed (Debian: prometheus)");
    }

    // Prometheus asks for OpenMetrics and gets it.
    let om = get_in(
        &net,
        "/metrics",
        &[
            &auth,
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ],
    );
    assert_eq!(om.status, 200);
    assert!(
        om.head
            .contains("content-type: application/openmetrics-text"),
        "{}",
        om.head
    );
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(om
        .body
        .contains("# TYPE vigil_scan_results_ingested counter"));

    // Logs: JSON lines, the server's own included.
    drop(agent_proc);
    drop(server);
    let server_log = json_log(&dir.join("server.stderr"));
    assert!(
        server_log
            .iter()
            .any(|l| l["message"] == "server started" && l["level"] == "INFO"),
        "{server_log:?}"
    );
    json_log(&dir.join("agent.stderr"));
}

/// A TCP proxy to `upstream` on 127.0.0.1 that can be cut (open
/// connections closed, new ones refused after accept) and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut kept = conns2.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        kept.push(c);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database() {
    let Some(db) = vigil_testdb::postgres().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // The server reaches PostgreSQL through a proxy the test can cut.
    let upstream: SocketAddr = {
        let u = url::Url::parse(&db.url).unwrap();
        let host = u.host_str().unwrap().to_string();
        format!("{host}:{}", u.port().unwrap()).parse().unwrap()
    };
    assert!(upstream.ip().is_loopback(), "{upstream}");
    let proxy = Proxy::start(upstream);
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();

    let result = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(vigil_bin());
        cmd.args(["server", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--db", url.as_str()])
            .args(["--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"])
            .env("VIGIL_LOG", "info");
        let _server = spawn_split(cmd, &dir, "server");
        // The REST address, from the banner.
        let api: SocketAddr = wait_for("the server's banner", Duration::from_secs(30), || {
            let out = std::fs::read_to_string(dir.join("server.stdout")).ok()?;
            let rest = out.split("REST API:  http://").nth(1)?;
            rest.split('/').next()?.parse().ok()
        });
        let ready = get_local(api, "/readyz");
        assert_eq!((ready.status, ready.body.trim()), (200, "ready"));

        proxy.cut();
        let down = wait_for("/readyz to fail", Duration::from_secs(20), || {
            let r = get_local(api, "/readyz");
            (r.status == 503).then_some(r)
        });
        assert!(
            down.body.starts_with("not ready: the database"),
            "{}",
            down.body
        );
        // The process itself is fine, and its metrics say what is wrong.
        assert_eq!(get_local(api, "/healthz").status, 200);
        let m = get_local(api, "/metrics");
        assert_eq!(m.status, 200);
        assert_eq!(
            sample(&m.body, "vigil_database_up"),
            Some(0.0),
            "{}",
            m.body
        );

        proxy.restore();
        wait_for("/readyz to recover", Duration::from_secs(30), || {
            (get_local(api, "/readyz").status == 200).then_some(())
        });
        let m = get_local(api, "/metrics");
        assert_eq!(
            sample(&m.body, "vigil_database_up"),
            Some(1.0),
            "{}",
            m.body
        );
    })
    .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
