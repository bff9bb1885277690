//! Maintenance windows end to end: an agent is tagged, a window for that
//! tag opens (its start is told), a scan finds two unauthorized ports —
//! the alerts open and show, the agent is "in maintenance", nobody is
//! notified; one port closes within the window; the window ends (its end
//! is told) and the alert still open is notified once, the one that came
//! and went is not. Bad windows and tags are refused with a reason.

use crate::alert_endings::{hook, notified, open_alert, upload};
use crate::common::{wait_tasks, Server};
use crate::console_devices::{field, with_csrf, Browser};
use chrono::{Duration as Minutes, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;
use vigil_core::{AccountKind, PortList};

api_tests!(the_console_plans_and_deletes_windows);

api_tests!(start = super::start, in sqlite_clock, postgres_clock: a_window_holds_notices_and_releases_what_is_still_wrong);

async fn start(db: vigil_testdb::TestDb) -> Server {
    Server::start_with(db, |cfg| {
        cfg.sweep_ports = PortList::parse("8000-8100").expect("sweep");
        cfg.damping.clear_after = 1;
        // The maintenance clock runs every tick.
        cfg.tick = Duration::from_millis(200);
    })
    .await
}

/// Local `YYYY-MM-DDTHH:MM` in UTC, `minutes` from now.
fn utc_in(minutes: i64) -> String {
    (Utc::now() + Minutes::minutes(minutes))
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

fn titles(got: &Mutex<Vec<Value>>) -> Vec<String> {
    got.lock()
        .expect("hook lock")
        .iter()
        .filter_map(|n| n["title"].as_str().map(str::to_string))
        .collect()
}

async fn a_window_holds_notices_and_releases_what_is_still_wrong(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let owner = t.owner.as_str();
    let (agent, credential) = s.enroll_agent(owner, "office", "extended").await;

    // Tags: normalized, filterable, checked.
    let tagged = s
        .send(
            Method::PATCH,
            &format!("/agents/{agent}"),
            Some(owner),
            Some(&json!({"tags": ["Paris", "office", "office"]})),
        )
        .await
        .ok(200);
    assert_eq!(tagged["tags"], json!(["office", "paris"]), "{tagged}");
    let listed = s.get_ok("/agents?tag=office", owner).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let listed = s.get_ok("/agents?tag=lab", owner).await;
    assert_eq!(listed, json!([]));
    s.send(
        Method::PATCH,
        &format!("/agents/{agent}"),
        Some(owner),
        Some(&json!({"tags": ["has space"]})),
    )
    .await
    .assert_client_error(&["tag", "has space"]);

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
                     "events": ["unauthorized_port_open", "maintenance_started",
                                "maintenance_ended"]})),
    )
    .await
    .ok(201);
    let policy = json!({"enabled": true, "authorized": "22", "monitored": "",
                        "targets": ["agent_host"], "interval": 60});
    s.send(
        Method::PUT,
        &format!("/agents/{agent}/policy"),
        Some(owner),
        Some(&policy),
    )
    .await
    .ok(200);

    // Bad windows say what to write.
    let bad =
        |schedule: Value, scope: Value| json!({"name": "x", "schedule": schedule, "scope": scope});
    let weekly = json!({"kind": "weekly", "days": [0], "from": "02:00", "to": "04:00",
                        "time_zone": "UTC"});
    for (body, needles) in [
        (
            bad(
                json!({"kind": "weekly", "days": [0], "from": "02:00", "to": "04:00",
                       "time_zone": "Mars/Olympus"}),
                json!({"kind": "account"}),
            ),
            vec!["Mars/Olympus", "IANA"],
        ),
        (
            bad(
                json!({"kind": "cron", "expr": "every night", "duration_minutes": 60,
                       "time_zone": "UTC"}),
                json!({"kind": "account"}),
            ),
            vec!["cron", "every night"],
        ),
        (
            bad(
                weekly.clone(),
                json!({"kind": "agents", "agents": ["00000000-0000-4000-8000-000000000000"]}),
            ),
            vec!["not an agent of this account"],
        ),
        (
            bad(weekly.clone(), json!({"kind": "tag", "tag": "Not OK"})),
            vec!["tag", "Not OK"],
        ),
    ] {
        s.send(Method::POST, "/maintenance", Some(owner), Some(&body))
            .await
            .assert_client_error(&needles);
    }

    // A window for the tag, open now, with start and end notices.
    let window = |start: String, end: String| {
        json!({"name": "firewall change", "notify_start_end": true,
               "schedule": {"kind": "once", "start": start, "end": end, "time_zone": "UTC"},
               "scope": {"kind": "tag", "tag": "office"}})
    };
    let created = s
        .send(
            Method::POST,
            "/maintenance",
            Some(owner),
            Some(&window(utc_in(-1), utc_in(60))),
        )
        .await
        .ok(201);
    assert_eq!(created["agents"], 1, "{created}");
    assert!(created["open"].is_object(), "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    notified(&got, "Maintenance \"firewall change\" started").await;
    let view = s.get_ok(&format!("/agents/{agent}"), owner).await;
    assert_eq!(view["maintenance"]["name"], "firewall change", "{view}");

    // In the window: 8080 and 8090 open. The alerts open and show; nobody hears.
    let tasks = wait_tasks(&s, &agent, &credential, 1).await;
    let first = tasks[0].clone();
    s.upload(
        &agent,
        &credential,
        &upload(&first, "m-1", &[22, 8080, 8090], &[]),
    )
    .await
    .ok(200);
    assert!(open_alert(&s, owner, 8080).await.is_some());
    assert!(open_alert(&s, owner, 8090).await.is_some());
    // 8090 closes within the window (the next scan, asked for now).
    s.send(
        Method::POST,
        &format!("/agents/{agent}/scan"),
        Some(owner),
        None,
    )
    .await
    .ok(202);
    let second = next_task(&s, &agent, &credential, &first).await;
    s.upload(
        &agent,
        &credential,
        &upload(&second, "m-2", &[22, 8080], &[]),
    )
    .await
    .ok(200);
    assert!(open_alert(&s, owner, 8090).await.is_none());
    // A few maintenance rounds later, still nothing about ports.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard = titles(&got);
    assert!(
        heard.iter().all(|t| !t.contains("Unauthorized port")),
        "{heard:?}"
    );

    // The window ends (moved into the past): its end is told, and what is
    // still wrong — 8080 — is notified once; 8090 never is.
    s.send(
        Method::PUT,
        &format!("/maintenance/{id}"),
        Some(owner),
        Some(&window(utc_in(-120), utc_in(-60))),
    )
    .await
    .ok(200);
    notified(&got, "Maintenance \"firewall change\" ended").await;
    let raised = notified(&got, "Unauthorized port 8080/tcp open").await;
    assert_eq!(raised["severity"], "critical", "{raised}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard = titles(&got);
    let about = |port: &str| heard.iter().filter(|t| t.contains(port)).count();
    assert_eq!(about("8080"), 1, "{heard:?}");
    assert_eq!(about("8090"), 0, "{heard:?}");
    let view = s.get_ok(&format!("/agents/{agent}"), owner).await;
    assert!(view.get("maintenance").is_none(), "{view}");

    // Listed with nothing open; deleted.
    let list = s.get_ok("/maintenance", owner).await;
    assert_eq!(list[0]["open"], Value::Null, "{list}");
    s.send(
        Method::DELETE,
        &format!("/maintenance/{id}"),
        Some(owner),
        None,
    )
    .await
    .ok(204);
    assert_eq!(s.get_ok("/maintenance", owner).await, json!([]));
    s.shutdown().await;
}

/// The agent's next task after `previous`.
async fn next_task(s: &Server, agent: &str, credential: &str, previous: &Value) -> Value {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = wait_tasks(s, agent, credential, 1).await;
        if let Some(t) = tasks.iter().find(|t| t["task_id"] != previous["task_id"]) {
            return t.clone();
        }
        assert!(std::time::Instant::now() < until, "no next task: {tasks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The console's Maintenance page: a refused form says why and keeps what
/// was typed; a saved window is listed with when, for whom and whether it
/// is open; deleting it removes it. Viewers see no form.
async fn the_console_plans_and_deletes_windows(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let email = s.get_ok("/me", &t.owner).await["user"]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let owner = Browser::login(&s, &email).await;
    let page = owner.get("/maintenance").await.page();
    assert!(page.contains("No maintenance window yet."), "{page}");
    let csrf = field(&page, "csrf");
    let weekly = |tz: &'static str| {
        vec![
            ("name", "patch night"),
            ("time_zone", tz),
            ("kind", "weekly"),
            ("days", "0"),
            ("days", "6"),
            ("from", "22:00"),
            ("to", "02:00"),
            ("scope", "tag"),
            ("tag", "Office"),
            ("notify", "on"),
        ]
    };
    let refused = owner
        .post("/maintenance", &with_csrf(&csrf, &weekly("Mars/Base")))
        .await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(refused.body.contains("Mars/Base"), "{}", refused.body);
    assert!(
        refused.body.contains("value=\"patch night\""),
        "typed name kept"
    );
    let saved = owner
        .post("/maintenance", &with_csrf(&csrf, &weekly("Europe/Paris")))
        .await;
    assert_eq!(
        saved.location.as_deref(),
        Some("/maintenance?done=added"),
        "{saved:?}"
    );
    let page = owner.get("/maintenance?done=added").await.page();
    for needle in [
        "Maintenance window added.",
        "patch night",
        "Sunday, Saturday 22:00–02:00 (Europe/Paris)",
        "Agents tagged “office”",
        "(start and end notified)",
    ] {
        assert!(page.contains(needle), "{needle:?} in {page}");
    }
    let windows = s.get_ok("/maintenance", &t.owner).await;
    let id = windows[0]["id"].as_str().expect("id").to_string();

    // Tags from the agent's page; the agents list filters by them.
    let (agent, _) = s.enroll_agent(&t.owner, "branch-7", "extended").await;
    let tagged = owner
        .post(
            &format!("/agents/{agent}/tags"),
            &with_csrf(&csrf, &[("tags", "Office, lab")]),
        )
        .await;
    assert_eq!(
        tagged.location.as_deref(),
        Some(format!("/agents/{agent}?done=tags").as_str()),
        "{tagged:?}"
    );
    let refused = owner
        .post(
            &format!("/agents/{agent}/tags"),
            &with_csrf(&csrf, &[("tags", "no spaces please")]),
        )
        .await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert!(
        refused.body.contains("no spaces please"),
        "{}",
        refused.body
    );
    let page = owner.get(&format!("/agents/{agent}")).await.page();
    assert!(page.contains("value=\"lab, office\""), "{page}");
    let listed = owner.get("/agents?tag=office").await.page();
    assert!(
        listed.contains("branch-7") && listed.contains("tagged “office”"),
        "{listed}"
    );
    let listed = owner.get("/agents?tag=paris").await.page();
    assert!(!listed.contains("branch-7"), "{listed}");
    let viewer_email = "viewer@acme.example";
    s.store()
        .create_user(
            t.id,
            viewer_email,
            crate::common::PASSWORD,
            vigil_store::Role::Viewer,
        )
        .await
        .expect("viewer");
    let viewer = Browser::login(&s, viewer_email).await;
    let seen = viewer.get("/maintenance").await.page();
    assert!(
        seen.contains("patch night") && seen.contains("Viewers may only read"),
        "{seen}"
    );
    let deleted = owner
        .post(&format!("/maintenance/{id}/delete"), &with_csrf(&csrf, &[]))
        .await;
    assert_eq!(
        deleted.location.as_deref(),
        Some("/maintenance?done=deleted"),
        "{deleted:?}"
    );
    assert_eq!(s.get_ok("/maintenance", &t.owner).await, json!([]));
    s.shutdown().await;
}
