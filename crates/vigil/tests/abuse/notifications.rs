//! One tenant against everyone's notifications (issue 14, point 8).
//!
//! Tenant A points a thousand contacts at a webhook that accepts the
//! connection and never answers (each send waits for the 30 s timeout);
//! one alert queues a notification to each. Tenant B's alert e-mail must
//! still go out within seconds, and A never holds more than its share of
//! the senders. And a tenant cannot make the server send test
//! notifications without limit.

use super::common::compliance::{create_account, enroll, login_as};
use super::common::http::http;
use super::common::server::{spawn, unix_now, wait_for, Api, Proc, API};
use super::common::{can_build_networks, smtp_available, stored_emails, vigil_bin};
use serde_json::{json, Value};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

/// The blackholed webhook's host, in the target namespace (a test-net
/// address, which the operator network policy allows for webhooks).
const BLACKHOLE: &str = "198.51.100.40";
const SMTP_PORT: u16 = 2525;
/// Tenant A's contacts, each sent one notification by A's alert.
const A_SENDS: usize = 1000;
/// The most sends one account may have in flight (the outbox's per-account cap).
const ACCOUNT_SHARE: usize = 8;
/// How late B's alert e-mail may be, counted from its alert.
const MAX_DELAY_SECS: i64 = 5;

/// A listener that accepts every connection and never answers; counts
/// the connections open at once (one per send in flight) and the most.
struct Blackhole {
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Blackhole {
    fn start(net: &TestNet, addr: SocketAddr) -> Blackhole {
        let listener = net
            .in_target(move || TcpListener::bind(addr))
            .expect("namespace")
            .expect("bind the blackhole");
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (o, p) = (open.clone(), peak.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let o = o.clone();
                std::thread::spawn(move || {
                    // Read (and ignore) until the sender gives up.
                    let mut conn = conn;
                    let mut buf = [0u8; 4096];
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Blackhole { open, peak }
    }
}

/// A contact told of every event of every agent.
fn contact(api: &Api, name: &str, channel: &str, address: &str) -> String {
    let c = api.ok(
        "POST",
        "/contacts",
        Some(json!({"name": name, "channel": channel, "address": address})),
    );
    api.ok(
        "POST",
        "/rules",
        Some(json!({"contact_id": c["id"], "events": ["*"]})),
    );
    c["id"].as_str().expect("contact id").to_string()
}

fn silence_alert(api: &Api, agent: &str) -> Option<Value> {
    api.get(&format!("/alerts?status=all&agent={agent}"))
        .as_array()?
        .iter()
        .find(|a| a["kind"] == "agent_not_communicating")
        .cloned()
}

fn start_smtp(net: &TestNet, dir: &Path, mail: &Path) -> Proc {
    let mut smtp = net.scanner_cmd("python3");
    smtp.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vigil-notify/tests/smtp_server.py"
    ))
    .arg(mail)
    .args(["--port", &SMTP_PORT.to_string()]);
    let p = spawn(smtp, "smtp", &dir.join("smtp.log"));
    let addr: SocketAddr = ([127, 0, 0, 1], SMTP_PORT).into();
    wait_for("the SMTP server", Duration::from_secs(15), || {
        net.in_scanner(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)))
            .expect("namespace")
            .ok()
            .map(|_| ())
    });
    p
}

fn start_server(net: &TestNet, dir: &Path, db: &str) -> Proc {
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(dir.join("server"))
        .args(["--db", db, "--listen", API])
        .args(["--agent-listen", &format!("{SCANNER_V4}:8443")])
        .args(["--tick-ms", "200", "--heartbeat-secs", "1"])
        .args(["--silent-after-secs", "3", "--abandoned-after-secs", "3600"])
        .args([
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &SMTP_PORT.to_string(),
        ])
        .args(["--smtp-security", "none", "--smtp-from", "vigil@vigil.test"])
        .env("VIGIL_LOG", "info");
    let p = spawn(cmd, "server", &dir.join("server.log"));
    let api = Api { net, token: None };
    wait_for("the server", Duration::from_secs(20), || {
        (api.call("GET", "/openapi.json", None).0 == 200).then_some(())
    });
    p
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-abuse-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn a_blackholed_tenant_does_not_delay_another_tenants_alert_email() {
    if !can_build_networks() || !smtp_available() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).expect("test network");
    net.add_host(BLACKHOLE.parse().expect("ip")).expect("host");
    let hole_addr: SocketAddr = format!("{BLACKHOLE}:8080").parse().expect("addr");
    let hole = Blackhole::start(&net, hole_addr);
    let dir = scratch("notifications");
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).expect("mail dir");
    let db = format!("sqlite://{}", dir.join("server/vigil.db").display());
    std::fs::create_dir_all(dir.join("server")).expect("server dir");
    create_account(&db, "Tenant A", "owner@a.test");
    create_account(&db, "Tenant B", "owner@b.test");
    let _smtp = start_smtp(&net, &dir, &mail);
    let _server = start_server(&net, &dir, &db);

    // A: a thousand contacts, all on the blackholed webhook; one alert
    // queues a notification to each.
    let a = login_as(&net, "owner@a.test");
    for i in 0..A_SENDS {
        contact(
            &a,
            &format!("hook {i}"),
            "webhook",
            &format!("http://{hole_addr}/hook/{i}"),
        );
    }
    let a_agent = enroll(&net, &dir, &a, "a-office");
    wait_for("A's alert", Duration::from_secs(30), || {
        silence_alert(&a, &a_agent)
    });
    wait_for(
        "A's sends to hang in the blackhole",
        Duration::from_secs(20),
        || (hole.open.load(Ordering::SeqCst) > 0).then_some(()),
    );

    // B: one e-mail contact and an alert of its own, raised now.
    let b = login_as(&net, "owner@b.test");
    contact(&b, "ops mail", "email", "ops@b.test");
    let b_agent = enroll(&net, &dir, &b, "b-office");
    let alert = wait_for("B's alert", Duration::from_secs(30), || {
        silence_alert(&b, &b_agent)
    });
    let raised_at = alert["raised_at"].as_i64().expect("raised_at");
    // On a server that sends in order, B's e-mail waits behind A's
    // thousand 30-second timeouts: this wait fails.
    let email = wait_for("B's alert e-mail", Duration::from_secs(60), || {
        stored_emails(&mail)
            .into_iter()
            .find(|m| m["rcpt_tos"].to_string().contains("ops@b.test"))
    });
    let delay = unix_now() - raised_at;
    assert!(
        delay <= MAX_DELAY_SECS,
        "B's alert e-mail came {delay} s after its alert: {email}"
    );
    // A's sends were hanging all along, never more than its share at once.
    let (open, peak) = (
        hole.open.load(Ordering::SeqCst),
        hole.peak.load(Ordering::SeqCst),
    );
    assert!(open > 0, "A's sends are still hanging");
    assert!(
        peak <= ACCOUNT_SHARE,
        "A held {peak} senders at once (its share is {ACCOUNT_SHARE})"
    );
}

/// Status, `Retry-After` and body of `POST /api/v1{path}` with `token`.
fn post(net: &TestNet, token: &str, path: &str) -> (u16, Option<u64>, String) {
    let auth = format!("Bearer {token}");
    let answer = http(
        net,
        "POST",
        &format!("/api/v1{path}"),
        &[("Authorization", &auth)],
        "",
    );
    let retry = answer.header("retry-after").and_then(|v| v.parse().ok());
    (answer.status, retry, answer.body)
}

#[test]
fn test_notifications_are_rate_limited_per_account() {
    if !can_build_networks() {
        return;
    }
    let net = TestNet::new(NetSpec::default()).expect("test network");
    let dir = scratch("test-sends");
    let db = format!("sqlite://{}", dir.join("server/vigil.db").display());
    std::fs::create_dir_all(dir.join("server")).expect("server dir");
    create_account(&db, "Tenant A", "owner@a.test");
    create_account(&db, "Tenant B", "owner@b.test");
    let _server = start_server(&net, &dir, &db);
    let a = login_as(&net, "owner@a.test");
    let b = login_as(&net, "owner@b.test");
    let hook = format!("http://{BLACKHOLE}:8080/hook");
    let a_contact = contact(&a, "hook", "webhook", &hook);
    let b_contact = contact(&b, "hook", "webhook", &hook);
    let token = |api: &Api| api.token.clone().expect("token");

    let path = format!("/contacts/{a_contact}/test");
    for i in 0..5 {
        let (status, _, body) = post(&net, &token(&a), &path);
        assert_eq!(status, 202, "test {i}: {body}");
    }
    // A flood is refused at once, saying when to try again.
    for _ in 0..20 {
        let (status, retry, body) = post(&net, &token(&a), &path);
        assert_eq!(status, 429, "{body}");
        let retry = retry.expect("Retry-After");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert!(body.contains("at most 5 a minute"), "{body}");
    }
    // Another tenant is not affected.
    let (status, _, body) = post(&net, &token(&b), &format!("/contacts/{b_contact}/test"));
    assert_eq!(status, 202, "{body}");
}
