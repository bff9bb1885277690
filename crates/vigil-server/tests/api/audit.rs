//! The audit log: the changes an account's users make and their logins
//! (failed ones too) are recorded with who, when and from where, readable
//! by owners and admins only, page by page and as JSON lines, and never
//! across accounts.

use crate::common::Server;
use reqwest::Method;
use serde_json::{json, Value};
use vigil_core::AccountKind;
use vigil_store::Role;

api_tests!(changes_and_logins_are_recorded_per_account);

fn actions(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_string())
        .collect()
}

async fn changes_and_logins_are_recorded_per_account(s: Server) {
    let a = s.tenant("Account A", AccountKind::Organization).await;
    let b = s.tenant("Account B", AccountKind::Organization).await;
    let owner = a.owner.as_str();
    let me = s.get_ok("/me", owner).await;
    let email = me["user"]["email"].as_str().expect("email").to_string();

    let contact = s
        .send(
            Method::POST,
            "/contacts",
            Some(owner),
            Some(&json!({"name": "ops", "channel": "webhook",
                         "address": "https://198.51.100.7/hook/SECRET"})),
        )
        .await
        .ok(201);
    let contact_id = contact["id"].as_str().expect("id").to_string();
    s.send(
        Method::POST,
        "/rules",
        Some(owner),
        Some(&json!({"contact_id": contact_id, "events": ["*"]})),
    )
    .await
    .ok(201);
    s.send(
        Method::POST,
        "/users",
        Some(owner),
        Some(&json!({"email": "v@a.test", "password": "long enough password", "role": "viewer"})),
    )
    .await
    .ok(201);
    s.send(
        Method::PUT,
        "/compliance/scope",
        Some(owner),
        Some(
            &json!({"scope": {"ip": {"enabled": true, "ranges": ["198.51.100.0/28"]},
                               "agent_ports": [47760]}}),
        ),
    )
    .await
    .ok(200);
    s.send(
        Method::DELETE,
        &format!("/contacts/{contact_id}"),
        Some(owner),
        None,
    )
    .await
    .ok(204);
    // A wrong password for A's owner, then a right one.
    s.send(
        Method::POST,
        "/login",
        None,
        Some(&json!({"email": email, "password": "wrong password!"})),
    )
    .await
    .assert_error(401, &["credentials"]);
    s.send(
        Method::POST,
        "/login",
        None,
        Some(&json!({"email": email, "password": crate::common::PASSWORD})),
    )
    .await
    .ok(201);

    let log = s.get_ok("/audit", owner).await;
    let got = actions(&log);
    let want = [
        "login",
        "login.failed",
        "contact.delete",
        "scope.update",
        "user.create",
        "rule.create",
        "contact.create",
    ];
    assert_eq!(got[..want.len()], want, "newest first: {log}");
    for e in log.as_array().expect("list") {
        assert_eq!(e["source"], "127.0.0.1", "{e}");
        assert!(
            e["at_ms"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
            "{e}"
        );
    }
    assert_eq!(log[0]["actor"], email.as_str());
    assert_eq!(log[1]["detail"]["reason"], "password");
    assert_eq!(
        log[1]["user_id"],
        Value::Null,
        "a failed login is no user's act"
    );
    assert!(
        !log.to_string().contains("SECRET"),
        "no secrets in the log: {log}"
    );
    assert_eq!(log[4]["detail"]["role"], "viewer");

    // Pages: two at a time, then the rest after the last one seen.
    let first = s.get_ok("/audit?limit=2", owner).await;
    assert_eq!(actions(&first), want[..2]);
    let last = first[1]["id"].as_str().expect("id");
    let next = s
        .get_ok(&format!("/audit?limit=2&before={last}"), owner)
        .await;
    assert_eq!(actions(&next), want[2..4]);

    // JSON lines: the same entries.
    let reply = s.send(Method::GET, "/audit.jsonl", Some(owner), None).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert!(reply.content_type.starts_with("application/x-ndjson"));
    let lines: Vec<Value> = reply
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(Value::Array(lines), log);

    // Viewers may not read it; another account sees none of it.
    let viewer = s.user(a.id, Role::Viewer).await;
    s.send(Method::GET, "/audit", Some(&viewer), None)
        .await
        .assert_error(403, &["admins and owners"]);
    s.send(Method::GET, "/audit.jsonl", Some(&viewer), None)
        .await
        .assert_error(403, &["admins and owners"]);
    let theirs = s.get_ok("/audit", &b.owner).await;
    assert!(
        !theirs.to_string().contains(&email)
            && !actions(&theirs).contains(&"contact.create".into()),
        "{theirs}"
    );
}
