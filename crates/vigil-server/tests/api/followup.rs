//! Reminders, escalation and acknowledging from a notification, end to end
//! on a real server whose alert clock ticks every 200 ms. Time is driven
//! by the alerts' age, not by sleeping: alerts are opened in the store as
//! raised minutes ago, and the server's own rounds find what is due.

use crate::alert_endings::{hook, notified};
use crate::common::Server;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;
use vigil_core::{AccountKind, Condition};
use vigil_store::{now_unix, AgentId};

api_tests!(start = super::start: reminders_and_escalation_stop_at_acknowledge);

async fn start(db: vigil_testdb::TestDb) -> Server {
    Server::start_with(db, |cfg| {
        cfg.tick = Duration::from_millis(200);
        cfg.console_url = Some("https://vigil.example/".into());
    })
    .await
}

fn titles(got: &Mutex<Vec<Value>>) -> Vec<String> {
    got.lock()
        .expect("hook lock")
        .iter()
        .filter_map(|n| n["title"].as_str().map(str::to_string))
        .collect()
}

async fn reminders_and_escalation_stop_at_acknowledge(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let owner = t.owner.as_str();
    let (agent, _) = s.enroll_agent(owner, "office", "extended").await;
    let agent_id: AgentId = agent.parse().expect("agent id");
    let (first_url, first) = hook().await;
    let (boss_url, boss) = hook().await;
    let contact =
        |name: &str, url: &str| json!({"name": name, "channel": "webhook", "address": url});
    let on_call = s
        .send(
            Method::POST,
            "/contacts",
            Some(owner),
            Some(&contact("on call", &first_url)),
        )
        .await
        .ok(201);
    let lead = s
        .send(
            Method::POST,
            "/contacts",
            Some(owner),
            Some(&contact("team lead", &boss_url)),
        )
        .await
        .ok(201);

    // Bad follow-ups are refused with what to write; nothing is stored.
    for (body, needles) in [
        (
            json!({"remind_every_minutes": 2}),
            vec!["remind_every_minutes 2", "5"],
        ),
        (
            json!({"escalation": [{"after_minutes": 10, "contacts": []}]}),
            vec!["step 1", "contacts"],
        ),
        (
            json!({"escalation": [{"after_minutes": 10,
                                   "contacts": ["00000000-0000-4000-8000-000000000000"]}]}),
            vec!["not a contact of this account"],
        ),
    ] {
        let mut rule = json!({"contact_id": on_call["id"], "events": ["unauthorized_port_open"]});
        for (k, v) in body.as_object().expect("object") {
            rule[k] = v.clone();
        }
        s.send(Method::POST, "/rules", Some(owner), Some(&rule))
            .await
            .assert_client_error(&needles);
    }
    assert_eq!(s.get_ok("/rules", owner).await, json!([]));

    let rule = s
        .send(
            Method::POST,
            "/rules",
            Some(owner),
            Some(
                &json!({"contact_id": on_call["id"], "events": ["unauthorized_port_open"],
                         "remind_every_minutes": 5,
                         "escalation": [{"after_minutes": 10, "contacts": [lead["id"]]}]}),
            ),
        )
        .await
        .ok(201);
    assert_eq!(rule["remind_every_minutes"], 5, "{rule}");
    assert_eq!(rule["escalation"][0]["after_minutes"], 10, "{rule}");

    // Four alerts, as if raised minutes ago: 11 min (a second reminder and
    // the escalation are due), 4 min (nothing yet), 11 min but
    // acknowledged (nothing), 11 min on port 9090 (due, acknowledged from
    // the escalation's link below).
    let now = now_unix();
    let store = s.store();
    let open = |port: u16, ago: i64| {
        store.open_alert(
            t.id,
            agent_id,
            "agent_host",
            Condition::unauthorized_open(port),
            false,
            now - ago,
        )
    };
    let due = open(8080, 660).await.expect("alert");
    open(8081, 240).await.expect("alert");
    let acked = open(8082, 660).await.expect("alert");
    let later = open(9090, 660).await.expect("alert");
    store
        .acknowledge_alert_as(t.id, acked.id, "someone", None, now)
        .await
        .expect("ack");

    let reminder = notified(&first, "Reminder: Unauthorized port 8080/tcp open").await;
    assert!(
        reminder["details"]
            .as_str()
            .is_some_and(|d| d.contains("reminder 2, every 5 min")),
        "{reminder}"
    );
    let escalated = notified(&boss, "Escalated: Unauthorized port 8080/tcp open").await;
    assert!(
        escalated["details"]
            .as_str()
            .is_some_and(|d| d.contains("escalation step 1 of 1")),
        "{escalated}"
    );
    let escalated_9090 = notified(&boss, "Escalated: Unauthorized port 9090/tcp open").await;
    // A few rounds later: each once, nothing for the young or acknowledged alert.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard: Vec<String> = titles(&first).into_iter().chain(titles(&boss)).collect();
    let count = |needle: &str| heard.iter().filter(|t| t.contains(needle)).count();
    assert_eq!(count("Reminder: Unauthorized port 8080"), 1, "{heard:?}");
    assert_eq!(count("Escalated: Unauthorized port 8080"), 1, "{heard:?}");
    assert_eq!(count("8081"), 0, "{heard:?}");
    assert_eq!(count("8082"), 0, "{heard:?}");

    // The escalation carries a link that acknowledges without logging in:
    // opening it changes nothing, its button does, once.
    let link = escalated_9090["ack_url"]
        .as_str()
        .expect("ack_url")
        .to_string();
    assert!(link.starts_with("https://vigil.example/ack/"), "{link}");
    let path = link.trim_start_matches("https://vigil.example");
    let page = s.console_get(path, &[]).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("page");
    assert!(page.contains("Acknowledge as team lead"), "{page}");
    let alert = s.get_ok(&format!("/alerts/{}", later.id), owner).await;
    assert_eq!(
        alert["acknowledged_by"],
        Value::Null,
        "GET changed nothing: {alert}"
    );
    let post = |path: String| {
        let http = reqwest::Client::new();
        let url = s.console_url(&path);
        async move { http.post(url).send().await.expect("post") }
    };
    let done = post(path.to_string()).await;
    assert_eq!(done.status(), 200);
    assert!(done
        .text()
        .await
        .expect("page")
        .contains("Acknowledged as team lead (notification link)"));
    let alert = s.get_ok(&format!("/alerts/{}", later.id), owner).await;
    assert_eq!(
        alert["acknowledged_by"], "team lead (notification link)",
        "{alert}"
    );
    let again = post(path.to_string()).await;
    assert_eq!(again.status(), 409);
    assert!(again
        .text()
        .await
        .expect("page")
        .contains("acknowledged already, by team lead"));
    // A changed link does nothing.
    let forged = post(path.replace(&later.id.to_string(), &due.id.to_string())).await;
    assert_eq!(forged.status(), 400);
    let alert = s.get_ok(&format!("/alerts/{}", due.id), owner).await;
    assert_eq!(alert["acknowledged_by"], Value::Null, "{alert}");
    // The first notice's link works for the on-call contact too.
    let link = reminder["ack_url"].as_str().expect("ack_url");
    assert!(link.contains(&due.id.to_string()), "{link}");
    s.shutdown().await;
}
