//! Three `vigil server` replicas on one PostgreSQL database, killed (-9)
//! in the middle of their work, with the SMTP server down for a while.
//!
//! Twenty agents (seeded in the database, Extended plan) each have a
//! security scan of their observed address (127.0.0.1) every minute: ten
//! due at once (an alert storm follows), then one a second, so scans are
//! scheduled and run all the time. A scan
//! checks two ports: one open (not authorized: every agent gets an alert,
//! and its contacts a webhook and an email) and one that never answers (a
//! listener with a full accept queue: the kernel drops the SYNs), which
//! makes each scan last seconds. The webhook receiver answers each request
//! 1.5 s late, so deliveries take time too. Claims last `--lease-secs 4`.
//!
//! 1. A replica is killed right after it claimed a scan (the scan is
//!    running); 2. another one is killed while a webhook it sends is in
//!    flight; the SMTP server is down until every email has failed once;
//!    the first victim comes back. Then, after two rounds of scans:
//!
//! - every agent's scans ran once per run: the first when due (the seeded
//!   time; later by at most a lease when a replica died holding it) and
//!   the next a minute after, each completed with exactly one result,
//!   nothing skipped, nothing doubled;
//!   the scan running when its replica died was finished by another one;
//! - each agent has one open alert;
//! - every notification reached its receiver (all 20 webhooks, all 20
//!   emails, each email after failing while SMTP was down), and the only
//!   repeats are sends that were in flight in a replica when it died:
//!   delivery is at least once, and such a repeat carries the same
//!   `Idempotency-Key` / `Message-ID` so the receiver drops it.
//!
//! Everything is on 127.0.0.1; PostgreSQL is the throwaway cluster of
//! `vigil-testdb`. Without PostgreSQL or aiosmtpd the test prints
//! `SKIPPED` and passes, unless `VIGIL_REQUIRE_POSTGRES=1` /
//! `VIGIL_REQUIRE_SMTP=1`.

mod common;

use common::replica::{free_ports, Replica};
use common::server::{spawn, unix_now, wait_for, Proc};
use common::{smtp_available, stored_emails};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_core::{
    AccountKind, ConditionKind, Plan, PolicyTarget, PortList, ScanInterval, SecurityPolicy,
};
use vigil_store::{AccountId, AgentId, AlertFilter, AlertStatus, Channel, Heartbeat, Store};

const AGENTS: i64 = 20;
/// Agents whose first scan is due at once.
const BURST: i64 = 10;

/// When the first scan of agent `i` is due.
fn first_due(t0: i64, i: i64) -> i64 {
    t0 + (i - BURST + 1).max(0)
}
/// `--lease-secs` of every replica.
const LEASE_SECS: i64 = 4;
/// How late the webhook receiver answers.
const HOLD: Duration = Duration::from_millis(1500);
const EMAIL: &str = "ops@acme.test";

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    key: String,
    agent: String,
}

/// A webhook receiver on 127.0.0.1 that records each request when it has
/// read it and answers [`HOLD`] later; `held` are the keys being held.
#[derive(Clone, Default)]
struct SlowWebhook {
    hooks: Arc<Mutex<Vec<Hook>>>,
    held: Arc<Mutex<HashSet<String>>>,
}

impl SlowWebhook {
    fn start() -> (SlowWebhook, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("addr");
        let receiver = SlowWebhook::default();
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let receiver = shared.clone();
                std::thread::spawn(move || receiver.serve(conn));
            }
        });
        (receiver, addr)
    }

    /// Requests on one connection (the sender keeps it alive) until it closes.
    fn serve(&self, conn: TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        let mut reader = BufReader::new(conn);
        loop {
            let (mut length, mut key) = (0usize, String::new());
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "idempotency-key" => key = value.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let agent = json["agent_id"].as_str().unwrap_or_default().to_string();
            self.hooks.lock().expect("lock").push(Hook {
                key: key.clone(),
                agent,
            });
            self.held.lock().expect("lock").insert(key.clone());
            std::thread::sleep(HOLD);
            self.held.lock().expect("lock").remove(&key);
            let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if reader.get_mut().write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().expect("lock").clone()
    }

    fn held(&self) -> Vec<String> {
        self.held.lock().expect("lock").iter().cloned().collect()
    }
}

/// A listener that accepts (and drops) every connection: an open port.
fn open_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || for _conn in listener.incoming() {});
    port
}

/// A port that never answers: a listener whose accept queue (one
/// connection) is full, so the kernel drops further SYNs and a scan waits
/// for its probe timeouts. Keep the returned sockets.
fn silent_port() -> (u16, TcpListener, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    // SAFETY: listen(2) on a socket this function owns; it only changes the backlog.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(rc, 0, "listen");
    let addr = listener.local_addr().expect("addr");
    let filler = TcpStream::connect(addr).expect("fill the accept queue");
    let probe = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
    assert!(probe.is_err(), "the port still answers: {probe:?}");
    (addr.port(), listener, filler)
}

/// The JSON log records of every start of `r`.
fn log_records(r: &Replica) -> Vec<Value> {
    r.logs().iter().flat_map(|p| records(p)).collect()
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// The values of `field` of the records with `message`.
fn logged(records: &[Value], message: &str, field: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["message"] == message)
        .filter_map(|r| r[field].as_str().map(str::to_string))
        .collect()
}

/// Deliveries the log shows started and not finished (sent or failed).
fn unfinished_deliveries(records: &[Value]) -> HashSet<String> {
    let mut started: HashSet<String> = logged(records, "sending notification", "delivery")
        .into_iter()
        .collect();
    for done in ["notification sent", "notification not delivered"] {
        for d in logged(records, done, "delivery") {
            started.remove(&d);
        }
    }
    started
}

/// The delivery id in an email's `Message-ID: <id.delivery@vigil.invalid>`.
fn email_delivery(mail: &Value) -> String {
    let id = mail["headers"]["Message-ID"].as_str().unwrap_or_default();
    id.trim_start_matches('<')
        .trim_end_matches(".delivery@vigil.invalid>")
        .to_string()
}

/// Seeds the account, its two contacts, and [`AGENTS`] agents whose scans
/// are due from `t0` on ([`first_due`]).
async fn seed(store: &Store, t0: i64, webhook: SocketAddr) -> (AccountId, Vec<AgentId>) {
    let account = store
        .create_account("Acme", AccountKind::Organization)
        .await
        .expect("account");
    let hook_url = format!("http://{webhook}/hook");
    for (name, channel, address) in [
        ("ops hook", Channel::Webhook, hook_url.as_str()),
        ("ops mail", Channel::Email, EMAIL),
    ] {
        let contact = store
            .create_contact(account.id, name, channel, address)
            .await
            .expect("contact");
        store
            .create_rule(account.id, contact.id, None, &["unauthorized_port_open"])
            .await
            .expect("rule");
    }
    let policy = SecurityPolicy {
        enabled: true,
        authorized: PortList::default(),
        monitored: PortList::default(),
        targets: vec![PolicyTarget::ObservedAddress],
        interval: ScanInterval::try_from(1).expect("interval"),
        include_interfaces: Vec::new(),
        unreviewed_devices: Default::default(),
        device_kinds: Vec::new(),
        process_change_alerts: false,
    };
    let now = unix_now();
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let ttl = Duration::from_secs(600);
        let name = format!("site-{i:02}");
        let token = store
            .create_enrollment(account.id, &name, Plan::Extended, ttl)
            .await
            .expect("enrollment");
        let (agent, _) = store.redeem_enrollment(&token, now).await.expect("enroll");
        let hb = Heartbeat {
            now,
            public_addr: Some("127.0.0.1"),
            ..Default::default()
        };
        store
            .record_heartbeat(account.id, agent.id, &hb)
            .await
            .expect("heartbeat");
        store
            .put_policy(account.id, agent.id, &policy)
            .await
            .expect("policy");
        store
            .set_next_run(account.id, agent.id, first_due(t0, i))
            .await
            .expect("next run");
        agents.push(agent.id);
    }
    (account.id, agents)
}

/// A scheduled scan task as the database has it.
#[derive(Debug, sqlx::FromRow)]
struct TaskRow {
    id: String,
    agent_id: String,
    run_id: String,
    created_at: i64,
    completed_at: Option<i64>,
    results: i64,
}

async fn tasks(pool: &sqlx::PgPool) -> Vec<TaskRow> {
    sqlx::query_as(
        "SELECT t.id, t.agent_id, t.run_id, t.created_at, t.completed_at, \
             (SELECT COUNT(*) FROM scan_results r WHERE r.task_id = t.id) AS results \
         FROM scan_tasks t WHERE t.run_id IS NOT NULL ORDER BY t.agent_id, t.created_at",
    )
    .fetch_all(pool)
    .await
    .expect("tasks")
}

#[derive(Debug, sqlx::FromRow)]
struct OutboxRow {
    id: String,
    channel: String,
    attempts: i64,
    sent_at: Option<i64>,
    /// An attempt failed (the error is kept).
    failed: bool,
}

async fn outbox(pool: &sqlx::PgPool) -> Vec<OutboxRow> {
    sqlx::query_as(
        "SELECT o.id, c.channel, o.attempts::BIGINT AS attempts, o.sent_at, \
             o.last_error IS NOT NULL AS failed \
         FROM outbox o JOIN contacts c ON c.id = o.contact_id",
    )
    .fetch_all(pool)
    .await
    .expect("outbox")
}

fn of_channel(rows: &[OutboxRow], channel: &str) -> HashSet<String> {
    rows.iter()
        .filter(|r| r.channel == channel)
        .map(|r| r.id.clone())
        .collect()
}

/// How often each value occurs.
fn counts<'a>(values: impl Iterator<Item = &'a String>) -> BTreeMap<&'a String, usize> {
    let mut out = BTreeMap::new();
    for v in values {
        *out.entry(v).or_default() += 1;
    }
    out
}

#[test]
fn replicas_killed_mid_work_neither_skip_nor_repeat_work() {
    if !smtp_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(vigil_testdb::postgres()) else {
        return;
    };
    let pool = rt
        .block_on(sqlx::PgPool::connect(&db.url))
        .expect("connect");
    let tmp = tempfile::Builder::new()
        .prefix("vigil-replica-faults")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    eprintln!("working directory: {}", dir.display());

    let (webhook, webhook_addr) = SlowWebhook::start();
    let open = open_port();
    let (silent, _silent_listener, _filler) = silent_port();
    let [smtp_port] = free_ports();
    let mail_dir = dir.join("mail");
    std::fs::create_dir_all(&mail_dir).expect("mail dir");

    // Seeded before the replicas start, due from t0 on.
    let t0 = unix_now() + 12;
    let (account, agents) = rt.block_on(seed(&db.store, t0, webhook_addr));

    let mut replicas = Replica::on_one_database(["a", "b", "c"], dir, &db.url);
    for r in &mut replicas {
        r.args = vec![
            "--log-format".into(),
            "json".into(),
            "--tick-ms".into(),
            "200".into(),
            "--heartbeat-secs".into(),
            "1".into(),
            // The seeded agents never call in: they stay "communicating".
            "--silent-after-secs".into(),
            "3600".into(),
            "--lease-secs".into(),
            LEASE_SECS.to_string(),
            "--sweep-ports".into(),
            format!("{open},{silent}"),
            "--smtp-host".into(),
            "127.0.0.1".into(),
            "--smtp-port".into(),
            smtp_port.to_string(),
            "--smtp-security".into(),
            "none".into(),
        ];
        r.log_filter = "info,vigil_server::scan=debug,vigil_server::outbox=debug";
    }
    let mut procs: Vec<Option<Proc>> = Vec::new();
    let (first, pin) = replicas[0].start();
    procs.push(Some(first));
    for i in 1..replicas.len() {
        replicas[i].share_identity(&replicas[0]);
        let (proc, p) = replicas[i].start();
        assert_eq!(p, pin, "replicas present one certificate");
        procs.push(Some(proc));
    }
    eprintln!(
        "three replicas up {} s before the first scan is due",
        t0 - unix_now()
    );

    // 1. Kill a replica right after it claimed a scan: the scan takes
    //    seconds (the silent port), so it is still running.
    let mut seen: HashSet<(usize, String)> = HashSet::new();
    let (victim1, task1) = wait_for("a replica claiming a scan", Duration::from_secs(60), || {
        for (i, r) in replicas.iter().enumerate() {
            for task in logged(&log_records(r), "server-side scan claimed", "task") {
                if !seen.insert((i, task.clone())) {
                    continue;
                }
                let done: Option<Option<i64>> = rt
                    .block_on(
                        sqlx::query_scalar("SELECT completed_at FROM scan_tasks WHERE id = $1")
                            .bind(&task)
                            .fetch_optional(&pool),
                    )
                    .expect("task");
                if matches!(done, Some(None)) && unix_now() >= t0 + 2 {
                    return Some((i, task));
                }
            }
        }
        None
    });
    procs[victim1].take().expect("running").kill();
    eprintln!(
        "killed {} while it scanned (task {task1})",
        replicas[victim1].name
    );

    // 2. Kill another one while a webhook it sends is in flight.
    let (victim2, key2) = wait_for("a webhook in flight", Duration::from_secs(60), || {
        let held = webhook.held();
        (0..replicas.len())
            .filter(|&i| procs[i].is_some())
            .find_map(|i| {
                let sending = logged(
                    &records(&replicas[i].log()),
                    "sending notification",
                    "delivery",
                );
                held.iter()
                    .find(|k| sending.contains(k))
                    .map(|k| (i, k.clone()))
            })
    });
    procs[victim2].take().expect("running").kill();
    eprintln!("killed {} while it sent {key2}", replicas[victim2].name);
    // Sends in flight when a replica died: each such death may repeat a
    // send once (the outbox sends in parallel, so one send can be in
    // flight at both deaths: claimed by the first victim, then by the
    // second after the first one's lease ran out).
    std::thread::sleep(Duration::from_millis(300));
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    for v in [victim1, victim2] {
        for key in unfinished_deliveries(&records(&replicas[v].log())) {
            *in_flight.entry(key).or_default() += 1;
        }
    }
    assert!(in_flight.contains_key(&key2), "{in_flight:?}");

    // 3. SMTP stays down until every email has failed once.
    wait_for("every email to fail once", Duration::from_secs(120), || {
        let rows = rt.block_on(outbox(&pool));
        let mails: Vec<&OutboxRow> = rows.iter().filter(|r| r.channel == "email").collect();
        (mails.len() == AGENTS as usize && mails.iter().all(|r| r.failed)).then_some(())
    });
    assert!(stored_emails(&mail_dir).is_empty());
    let mut smtp = Command::new("python3");
    smtp.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vigil-notify/tests/smtp_server.py"
    ))
    .arg(&mail_dir)
    .args(["--port", &smtp_port.to_string()]);
    let _smtp = spawn(smtp, "smtp", &dir.join("smtp.log"));
    eprintln!("SMTP server up at t0 + {} s", unix_now() - t0);

    // The first victim comes back.
    let (back, _) = replicas[victim1].start();
    procs[victim1] = Some(back);

    // Two rounds of scans, every notification delivered.
    let done = wait_for(
        "two rounds and every notification",
        Duration::from_secs(180),
        || {
            let tasks = rt.block_on(tasks(&pool));
            let completed = tasks.iter().filter(|t| t.completed_at.is_some()).count();
            let keys: HashSet<String> = webhook.hooks().into_iter().map(|h| h.key).collect();
            let mails: HashSet<String> = stored_emails(&mail_dir)
                .iter()
                .map(email_delivery)
                .collect();
            (completed >= 2 * AGENTS as usize
                && keys.len() == AGENTS as usize
                && mails.len() == AGENTS as usize)
                .then_some(tasks)
        },
    );
    eprintln!("done at t0 + {} s", unix_now() - t0);
    std::thread::sleep(Duration::from_secs(LEASE_SECS as u64 + 1));

    // Scans: two runs per agent, once each, each with one result.
    let mut by_agent: HashMap<String, Vec<&TaskRow>> = HashMap::new();
    for t in &done {
        by_agent.entry(t.agent_id.clone()).or_default().push(t);
    }
    assert_eq!(by_agent.len(), AGENTS as usize);
    for (i, agent) in agents.iter().enumerate() {
        let tasks = &by_agent[&agent.to_string()];
        let due = first_due(t0, i as i64);
        let [first, second, ..] = tasks.as_slice() else {
            panic!("agent {i}: {tasks:#?}");
        };
        // Each run is scheduled when due, later by at most a lease when the
        // replica scheduling it died first; the next one a minute after.
        let late = first.created_at - due;
        assert!(
            (0..=LEASE_SECS + 3).contains(&late),
            "agent {i}: {tasks:#?}"
        );
        let gap = second.created_at - first.created_at;
        assert!(
            (60..=60 + LEASE_SECS + 3).contains(&gap),
            "agent {i}: {tasks:#?}"
        );
        for t in &tasks[..2] {
            assert!(t.completed_at.is_some(), "agent {i}: {t:?}");
            assert_eq!(t.results, 1, "agent {i}: one result per scan: {t:?}");
        }
        // A third run may have begun; never before its time, never twice.
        for pair in tasks.windows(2) {
            assert!(pair[1].created_at - pair[0].created_at >= 60, "{tasks:#?}");
            assert_ne!(pair[1].run_id, pair[0].run_id);
        }
    }
    // The scan that was running when its replica died was run by another.
    let task1_row = done.iter().find(|t| t.id == task1).expect("task 1");
    assert_eq!(task1_row.results, 1);
    let finishers: Vec<&str> = replicas
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            let logs = if *i == victim1 {
                r.logs()[1..].to_vec()
            } else {
                r.logs()
            };
            logs.iter()
                .any(|p| logged(&records(p), "server-side scan claimed", "task").contains(&task1))
        })
        .map(|(_, r)| r.name)
        .collect();
    assert_eq!(
        finishers.len(),
        1,
        "claimed again by one replica: {finishers:?}"
    );

    // One open alert per agent, for the open port.
    let filter = AlertFilter {
        status: Some(AlertStatus::Open),
        agent: None,
    };
    let alerts = rt
        .block_on(db.store.alerts(account, &filter))
        .expect("alerts");
    assert_eq!(alerts.len(), AGENTS as usize, "{alerts:#?}");
    let alerted: HashSet<AgentId> = alerts.iter().map(|a| a.agent_id).collect();
    assert_eq!(alerted, agents.iter().copied().collect());
    assert!(alerts
        .iter()
        .all(|a| a.condition.kind == ConditionKind::UnauthorizedOpen
            && a.condition.port == Some(open)));

    // Notifications: every one delivered; repeats only of sends in flight.
    let rows = rt.block_on(outbox(&pool));
    assert!(rows.iter().all(|r| r.sent_at.is_some()), "{rows:#?}");
    let hooks = webhook.hooks();
    let hook_counts = counts(hooks.iter().map(|h| &h.key));
    assert_eq!(
        hook_counts
            .keys()
            .map(|k| k.to_string())
            .collect::<HashSet<_>>(),
        of_channel(&rows, "webhook")
    );
    let hooked: HashSet<&String> = hooks.iter().map(|h| &h.agent).collect();
    assert_eq!(hooked.len(), AGENTS as usize);
    let mails = stored_emails(&mail_dir);
    let mail_ids: Vec<String> = mails.iter().map(email_delivery).collect();
    let mail_counts = counts(mail_ids.iter());
    assert_eq!(
        mail_counts
            .keys()
            .map(|k| k.to_string())
            .collect::<HashSet<_>>(),
        of_channel(&rows, "email")
    );
    assert!(mails.iter().all(|m| m["rcpt_tos"][0] == EMAIL));
    for (key, n) in hook_counts.iter().chain(mail_counts.iter()) {
        let deaths = in_flight.get(*key).copied().unwrap_or(0);
        assert!(
            *n <= 1 + deaths,
            "{key} arrived {n} times and was in flight at {deaths} replica deaths"
        );
    }
    // The send held by the receiver when its sender died came again from
    // another replica (and once more if it was also in flight at the
    // first death).
    let deaths2 = in_flight[&key2];
    assert!(
        (2..=1 + deaths2).contains(&hook_counts[&key2]),
        "the send in flight was repeated by another replica: {} arrivals, in flight at {deaths2} deaths",
        hook_counts[&key2]
    );
    // Every email failed while SMTP was down, and arrived after.
    assert!(
        rows.iter()
            .filter(|r| r.channel == "email")
            .all(|r| r.attempts >= 2),
        "{rows:#?}"
    );

    for r in &replicas {
        for log in r.logs() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(!text.contains("panicked"), "{}: {text}", log.display());
        }
    }
    eprintln!(
        "{} webhook requests for {} notifications, {} emails for {}",
        hooks.len(),
        hook_counts.len(),
        mails.len(),
        mail_counts.len()
    );
}
