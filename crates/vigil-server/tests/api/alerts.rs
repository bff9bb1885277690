//! One alert, its history, and acknowledging it: who may, what the body
//! may say, and what an alert that is resolved or already acknowledged
//! answers.

use crate::common::Server;
use reqwest::Method;
use serde_json::{json, Value};
use vigil_core::AccountKind;
use vigil_store::Role;

api_tests!(
    an_alert_its_history_and_acknowledging_it,
    acknowledging_refuses_bad_bodies_and_other_accounts,
);

/// The email of the token's user.
async fn email(s: &Server, token: &str) -> String {
    let me = s.get_ok("/me", token).await;
    me["user"]["email"]
        .as_str()
        .unwrap_or_else(|| panic!("no user email in /me: {me}"))
        .to_string()
}

fn kinds(history: &Value) -> Vec<&str> {
    history
        .as_array()
        .unwrap_or_else(|| panic!("history is not an array: {history}"))
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect()
}

async fn an_alert_its_history_and_acknowledging_it(s: Server) {
    let a = s.tenant("Account A", AccountKind::Organization).await;
    let r = s.records(&a, "a").await;
    let admin = s.user(a.id, Role::Admin).await;
    let viewer = s.user(a.id, Role::Viewer).await;
    let owner_email = email(&s, &a.owner).await;
    let path = format!("/alerts/{}", r.alert);

    let alert = s.get_ok(&path, &viewer).await;
    assert_eq!(alert["id"], r.alert.as_str());
    assert_eq!(alert["status"], "open");
    assert_eq!(alert["kind"], "unauthorized_open");
    assert_eq!(alert["port"], 8080);
    assert!(
        alert["title"]
            .as_str()
            .is_some_and(|t| t.contains("Unauthorized port 8080/tcp open")),
        "{alert}"
    );
    for field in ["acknowledged_at", "acknowledged_by", "ack_note"] {
        assert_eq!(alert[field], Value::Null, "{field}: {alert}");
    }
    let history = s.get_ok(&format!("{path}/history"), &viewer).await;
    assert_eq!(kinds(&history), ["raised"]);
    assert_eq!(history[0]["seq"], 1);

    // Viewers read but do not acknowledge; nothing changes.
    s.send(
        Method::POST,
        &format!("{path}/ack"),
        Some(&viewer),
        Some(&json!({"note": "mine"})),
    )
    .await
    .assert_error(403, &["viewer"]);
    assert_eq!(s.get_ok(&path, &a.owner).await, alert);

    // The owner acknowledges with a note.
    let acked = s
        .send(
            Method::POST,
            &format!("{path}/ack"),
            Some(&a.owner),
            Some(&json!({"note": "  Looking into it\r\nETA 10 min "})),
        )
        .await
        .ok(200);
    assert_eq!(acked["acknowledged_by"], owner_email.as_str());
    assert_eq!(acked["ack_note"], "Looking into it\nETA 10 min");
    assert_eq!(acked["status"], "open", "acknowledging resolves nothing");
    let at = acked["acknowledged_at"].as_i64().expect("acknowledged_at");
    assert!(at >= alert["raised_at"].as_i64().unwrap());
    assert_eq!(s.get_ok(&path, &viewer).await, acked);
    // The list shows the same.
    let list = s.get_ok("/alerts", &viewer).await;
    assert_eq!(list[0], acked);

    // Someone else: 409 naming who did; the same owner again: unchanged,
    // also without a body.
    s.send(
        Method::POST,
        &format!("{path}/ack"),
        Some(&admin),
        Some(&json!({})),
    )
    .await
    .assert_error(409, &["already acknowledged", &owner_email]);
    let again = s
        .send_raw(
            Method::POST,
            &format!("{path}/ack"),
            Some(&a.owner),
            None,
            Vec::new(),
        )
        .await
        .ok(200);
    assert_eq!(again, acked);

    let history = s.get_ok(&format!("{path}/history"), &viewer).await;
    assert_eq!(kinds(&history), ["raised", "acknowledged"]);
    let entry = &history[1];
    assert_eq!(entry["seq"], 2);
    assert_eq!(entry["at"], at);
    assert_eq!(entry["actor"], owner_email.as_str());
    assert_eq!(entry["detail"], "Looking into it\nETA 10 min");

    // A resolved alert is not acknowledged any more: 409.
    let agent = r.agent.parse().unwrap();
    let other = s
        .store()
        .open_alert(
            a.id,
            agent,
            "agent_host",
            vigil_core::Condition::service_down(443),
            false,
            vigil_store::now_unix(),
        )
        .await
        .unwrap();
    s.store()
        .resolve_alert(a.id, other.id, vigil_store::now_unix())
        .await
        .unwrap();
    s.send(
        Method::POST,
        &format!("/alerts/{}/ack", other.id),
        Some(&admin),
        None,
    )
    .await
    .assert_error(409, &["resolved"]);
    let history = s
        .get_ok(&format!("/alerts/{}/history", other.id), &admin)
        .await;
    assert_eq!(kinds(&history), ["raised", "resolved"]);
    s.shutdown().await;
}

async fn acknowledging_refuses_bad_bodies_and_other_accounts(s: Server) {
    let a = s.tenant("Account A", AccountKind::Organization).await;
    let b = s.tenant("Account B", AccountKind::Organization).await;
    let r = s.records(&a, "a").await;
    let ack = format!("/alerts/{}/ack", r.alert);
    let before = s.get_ok(&format!("/alerts/{}", r.alert), &a.owner).await;

    for (body, needles) in [
        (json!({"note": 5}), vec!["note"]),
        (
            json!({"note": "x", "by": "me"}),
            vec!["unknown field", "by"],
        ),
        (json!("on it"), vec!["AckRequest"]),
    ] {
        s.send(Method::POST, &ack, Some(&a.owner), Some(&body))
            .await
            .assert_client_error(&needles);
    }
    s.send_raw(
        Method::POST,
        &ack,
        Some(&a.owner),
        Some("text/plain"),
        b"on it".to_vec(),
    )
    .await
    .assert_error(400, &["JSON"]);
    s.send_raw(
        Method::POST,
        &ack,
        Some(&a.owner),
        Some("application/json"),
        b"{\"note\": ".to_vec(),
    )
    .await
    .assert_error(400, &[]);
    s.send(
        Method::POST,
        &ack,
        Some(&a.owner),
        Some(&json!({"note": "x".repeat(2001)})),
    )
    .await
    .assert_error(422, &["note", "2000"]);
    s.send(
        Method::POST,
        &ack,
        Some(&a.owner),
        Some(&json!({"note": "bell \u{7}"})),
    )
    .await
    .assert_error(422, &["control characters"]);

    // Ids: malformed is 400, unknown or another account's is 404.
    for path in [
        "/alerts/nope".to_string(),
        "/alerts/nope/history".into(),
        "/alerts/nope/ack".into(),
    ] {
        let method = if path.ends_with("/ack") {
            Method::POST
        } else {
            Method::GET
        };
        s.send(method, &path, Some(&a.owner), None)
            .await
            .assert_error(400, &["alert id"]);
    }
    let unknown = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::GET, format!("/alerts/{unknown}")),
        (Method::GET, format!("/alerts/{unknown}/history")),
        (Method::POST, format!("/alerts/{unknown}/ack")),
        (Method::GET, format!("/alerts/{}", r.alert)),
        (Method::GET, format!("/alerts/{}/history", r.alert)),
        (Method::POST, ack.clone()),
    ] {
        let token = if path.contains(&unknown.to_string()) {
            &a.owner
        } else {
            &b.owner
        };
        s.send(method.clone(), &path, Some(token), None)
            .await
            .assert_error(404, &["not found"]);
    }
    // Nothing was acknowledged by any of it.
    assert_eq!(
        s.get_ok(&format!("/alerts/{}", r.alert), &a.owner).await,
        before
    );
    let history = s
        .get_ok(&format!("/alerts/{}/history", r.alert), &a.owner)
        .await;
    assert_eq!(kinds(&history), ["raised"]);
    s.shutdown().await;
}
