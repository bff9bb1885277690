//! Why an alert ended, end to end: an agent uploads a sweep with ports
//! open, alerts are raised and sent to a webhook; the owner authorizes one
//! port — its alert ends at once as *now authorized, policy changed by*
//! the owner (alert, history, notification), although the port is still
//! open — and a port that then closes ends as *no longer open*. The
//! result says what was swept, not how many ports it kept.

use crate::common::{wait_tasks, Server};
use crate::console_devices::Browser;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_core::{AccountKind, PortList};

// On a server that sweeps `SWEEP` and clears a condition after one scan
// without it.
api_tests!(start = super::start: authorizing_an_open_port_ends_its_alert_saying_who);

/// The sweep of these tests: 101 ports (plus the policy's).
const SWEEP: &str = "8000-8100";

async fn start(db: vigil_testdb::TestDb) -> Server {
    Server::start_with(db, |cfg| {
        cfg.sweep_ports = PortList::parse(SWEEP).expect("sweep");
        cfg.damping.clear_after = 1;
    })
    .await
}

/// A webhook receiver on loopback: its URL and what it received.
pub(crate) async fn hook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("hook lock").push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// Waits (up to 20 s) until the receiver has a notification whose title
/// contains `needle`; returns it.
pub(crate) async fn notified(got: &Mutex<Vec<Value>>, needle: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let found = got
            .lock()
            .expect("hook lock")
            .iter()
            .find(|n| n["title"].as_str().is_some_and(|t| t.contains(needle)))
            .cloned();
        if let Some(n) = found {
            return n;
        }
        assert!(
            Instant::now() < until,
            "no notification titled {needle:?}; got {:#?}",
            got.lock().expect("hook lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A result for `task` with every port of its list closed but `open`
/// (and `filtered`), as a real agent uploads it.
pub(crate) fn upload(task: &Value, id: &str, open: &[u16], filtered: &[u16]) -> Value {
    let list = PortList::parse(task["ports"].as_str().expect("task ports")).expect("port list");
    let ports: Vec<Value> = list
        .iter()
        .map(|p| {
            let state = if open.contains(&p) {
                "open"
            } else if filtered.contains(&p) {
                "filtered"
            } else {
                "closed"
            };
            json!({"port": p, "state": state})
        })
        .collect();
    json!({"upload_id": id, "task_id": task["task_id"], "target": "self",
           "addr": "127.0.0.1", "started_at": 100, "finished_at": 160, "ports": ports})
}

/// The open alert for `port`, or `None`.
pub(crate) async fn open_alert(s: &Server, token: &str, port: u16) -> Option<Value> {
    let open = s.get_ok("/alerts?status=open", token).await;
    open.as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["kind"] == "unauthorized_open" && a["port"] == port)
        .cloned()
}

async fn authorizing_an_open_port_ends_its_alert_saying_who(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let owner = t.owner.as_str();
    let email = s.get_ok("/me", owner).await["user"]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let (agent, credential) = s.enroll_agent(owner, "office", "extended").await;
    let (url, got) = hook().await;
    let contact = s
        .send(
            Method::POST,
            "/contacts",
            Some(owner),
            Some(&json!({"name": "ops", "channel": "webhook", "address": url})),
        )
        .await
        .ok(201);
    s.send(
        Method::POST,
        "/rules",
        Some(owner),
        Some(&json!({"contact_id": contact["id"], "agent_id": agent,
                     "events": ["unauthorized_port_open"]})),
    )
    .await
    .ok(201);
    let policy = |authorized: &str| {
        json!({"enabled": true, "authorized": authorized, "monitored": "",
               "targets": ["agent_host"], "interval": 60})
    };
    let policy_path = format!("/agents/{agent}/policy");
    s.send(Method::PUT, &policy_path, Some(owner), Some(&policy("22")))
        .await
        .ok(200);

    // The first sweep: 22 (authorized), 8080 and 8090 open; 8081 filtered.
    let tasks = wait_tasks(&s, &agent, &credential, 1).await;
    let first = &tasks[0];
    assert_eq!(first["ports"], "22,8000-8100", "{first}");
    let up = upload(first, "sweep-1", &[22, 8080, 8090], &[8081]);
    let ack = s.upload(&agent, &credential, &up).await.ok(200);
    assert_eq!(ack["status"], "stored");

    // The result says what was swept, beside the few ports it keeps.
    let results = s.get_ok(&format!("/agents/{agent}/results"), owner).await;
    let result = &results[0];
    assert_eq!(result["probed_count"], 102, "{result}");
    assert_eq!(result["probed_ports"], "22,8000-8100", "{result}");
    let kept: Vec<u64> = result["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(kept, [22, 8080, 8081, 8090], "{result}");

    let alert = open_alert(&s, owner, 8080).await.expect("alert for 8080");
    assert!(open_alert(&s, owner, 8090).await.is_some());
    assert!(open_alert(&s, owner, 22).await.is_none());
    assert_eq!(alert["resolution"], Value::Null, "{alert}");
    assert_eq!(alert["resolved_by"], Value::Null, "{alert}");
    let raised = notified(&got, "Unauthorized port 8080/tcp open").await;
    assert_eq!(raised["severity"], "critical", "{raised}");
    let id = alert["id"].as_str().expect("id").to_string();

    // The owner authorizes 8080. Its alert ends at once — no scan needed —
    // saying why and who; the port was not closed.
    s.send(
        Method::PUT,
        &policy_path,
        Some(owner),
        Some(&policy("22,8080")),
    )
    .await
    .ok(200);
    let ended = s.get_ok(&format!("/alerts/{id}"), owner).await;
    assert_eq!(ended["status"], "resolved", "{ended}");
    assert_eq!(ended["resolution"], "policy_changed", "{ended}");
    assert_eq!(ended["resolved_by"], email.as_str(), "{ended}");
    let title = ended["title"].as_str().expect("title");
    assert!(
        title.starts_with("Port 8080/tcp now authorized on the agent's host (agent \"office\")")
            && title.ends_with(&format!("(policy changed by {email})")),
        "{title}"
    );
    assert!(!title.contains("no longer open"), "{title}");
    // The one who changed the policy is the one the audit log names.
    let audit = s.get_ok("/audit", owner).await;
    let change = audit
        .as_array()
        .expect("audit")
        .iter()
        .find(|e| e["action"] == "policy.update")
        .cloned()
        .expect("policy.update in the audit log");
    assert_eq!(change["actor"], ended["resolved_by"], "{change}");

    // Its history: resolved by the owner, for a policy change, and the
    // notice queued with that title.
    let history = s.get_ok(&format!("/alerts/{id}/history"), owner).await;
    let entries = history.as_array().expect("history");
    let resolved = entries
        .iter()
        .find(|e| e["kind"] == "resolved")
        .unwrap_or_else(|| panic!("no resolved entry: {history:#}"));
    assert_eq!(resolved["actor"], email.as_str(), "{resolved}");
    assert_eq!(resolved["detail"], "policy_changed", "{resolved}");
    let queued: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "notification_queued")
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert_eq!(queued.len(), 2, "raised and ended: {history:#}");
    assert_eq!(queued[1], title);

    // The notice says it too, as a recovery, with what to do.
    let notice = notified(&got, "Port 8080/tcp now authorized").await;
    assert_eq!(notice["severity"], "recovery", "{notice}");
    assert_eq!(notice["title"], title, "{notice}");
    let details = notice["details"].as_str().expect("details");
    assert!(
        details.contains("may still be open") && details.contains(&email),
        "{details}"
    );
    // 8090 is not authorized: still open.
    assert!(open_alert(&s, owner, 8090).await.is_some());

    // The console shows the same: the alert's page why and by whom, the
    // agent's page what the sweep probed.
    let browser = Browser::login(&s, &email).await;
    let page = browser.get(&format!("/alerts/{id}")).await.page();
    for needle in [
        "Port 8080/tcp now authorized on the agent",
        &format!("(policy changed by {email})"),
        "Why it ended",
        "The policy changed: it no longer makes this an alert.",
        &format!("By {email}."),
    ] {
        assert!(page.contains(needle), "{needle:?} in {page}");
    }
    assert!(!page.contains("no longer open"), "{page}");
    let page = browser.get(&format!("/agents/{agent}")).await.page();
    assert!(
        page.contains("102 ports probed (22,8000-8100)"),
        "what was probed in {page}"
    );

    // The next sweep: 8080 still open (authorized, nothing again), 8090
    // closed — that alert ends as closed, by nobody.
    let until = Instant::now() + Duration::from_secs(30);
    let second = loop {
        let tasks = wait_tasks(&s, &agent, &credential, 1).await;
        if let Some(t) = tasks.iter().find(|t| t["task_id"] != first["task_id"]) {
            break t.clone();
        }
        assert!(Instant::now() < until, "no second task: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(second["ports"], "22,8000-8100", "{second}");
    let up = upload(&second, "sweep-2", &[22, 8080], &[8081]);
    s.upload(&agent, &credential, &up).await.ok(200);
    assert!(open_alert(&s, owner, 8090).await.is_none());
    assert!(open_alert(&s, owner, 8080).await.is_none());
    let all = s.get_ok("/alerts", owner).await;
    let closed = all
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["port"] == 8090)
        .cloned()
        .expect("the 8090 alert");
    assert_eq!(closed["status"], "resolved", "{closed}");
    assert_eq!(closed["resolution"], "cleared", "{closed}");
    assert_eq!(closed["resolved_by"], Value::Null, "{closed}");
    assert!(
        closed["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Port 8090/tcp no longer open on")),
        "{closed}"
    );
    let notice = notified(&got, "Port 8090/tcp no longer open").await;
    assert_eq!(
        notice["details"], "The condition is over; no action needed.",
        "{notice}"
    );
    // One alert for 8080 in all, ended once: the sweep after the change
    // neither raised it again nor ended it a second time.
    let for_8080: Vec<&Value> = all
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["port"] == 8080)
        .collect();
    assert_eq!(for_8080.len(), 1, "{all:#}");
    let history = s.get_ok(&format!("/alerts/{id}/history"), owner).await;
    let resolved = history
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["kind"] == "resolved")
        .count();
    assert_eq!(resolved, 1, "{history:#}");
    s.shutdown().await;
}
