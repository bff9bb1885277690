//! Deployment keys through the REST API and the real agent API: one key
//! enrolls many agents, each use is recorded, revoked / expired / used-up
//! keys are a 403 at enrollment, other tenants get 404 and viewers 403.

use crate::common::{facts, Server};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_core::{AccountKind, Plan};
use vigil_store::{Role, DEPLOYMENT_KEY_PREFIX};

api_tests!(
    one_key_enrolls_many_agents_until_revoked,
    keys_are_tenant_scoped_and_admin_only,
);

/// `POST /deployment-keys` as `token`; the answer.
async fn create(s: &Server, token: &str, body: Value) -> crate::common::Reply {
    s.send(Method::POST, "/deployment-keys", Some(token), Some(&body))
        .await
}

fn str_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_string()
}

async fn one_key_enrolls_many_agents_until_revoked(s: Server) {
    let a = s.tenant("Acme", AccountKind::Organization).await;
    let created = create(
        &s,
        &a.owner,
        json!({"name": "GPO roll-out", "expires_in_days": 30, "plan": "extended"}),
    )
    .await
    .ok(201);
    let secret = str_of(&created, "secret");
    assert!(secret.starts_with(DEPLOYMENT_KEY_PREFIX), "{secret}");
    let key = &created["key"];
    let id = str_of(key, "id");
    assert_eq!(key["name"], "GPO roll-out");
    assert_eq!(key["plan"], "extended");
    assert_eq!(key["state"], "active");
    assert_eq!(key["use_count"], 0);
    assert_eq!(key["max_uses"], Value::Null);
    let in_30_days = vigil_store::now_unix() + 30 * 86_400;
    let expires = key["expires_at"].as_i64().expect("expires_at");
    assert!(
        (in_30_days - 5..=in_30_days).contains(&expires),
        "{expires}"
    );
    assert!(str_of(&created, "command").contains(&format!("--token {secret}")));
    assert!(str_of(&created, "msiexec").contains(&format!("TOKEN={secret}")));
    assert!(str_of(&created, "pin").starts_with("sha256:"));

    // Listed without the secret.
    let listed = s.get("/deployment-keys", &a.owner).await;
    assert!(
        !listed.text.contains(&secret),
        "secret listed: {}",
        listed.text
    );
    assert_eq!(listed.ok(200).as_array().map(Vec::len), Some(1));

    // Two machines enroll with the one key, through the real agent API.
    let mut agents = Vec::new();
    for host in ["ws-001", "ws-002"] {
        let enrolled = s
            .redeem(&secret, &facts(host, "Windows 11", "0.1.0"))
            .await
            .ok(200);
        let agent = str_of(&enrolled, "agent_id");
        let credential = str_of(&enrolled, "credential");
        s.heartbeat(&agent, &credential, &facts(host, "Windows 11", "0.1.0"))
            .await
            .ok(200);
        let view = s.get_ok(&format!("/agents/{agent}"), &a.owner).await;
        assert_eq!(view["name"], host);
        assert_eq!(view["plan"], "extended");
        assert_eq!(view["hostname"], host);
        agents.push(agent);
    }
    assert_ne!(agents[0], agents[1]);

    let uses = s
        .get_ok(&format!("/deployment-keys/{id}/uses"), &a.owner)
        .await;
    let uses = uses.as_array().expect("uses");
    assert_eq!(uses.len(), 2, "{uses:?}");
    let mut seen: Vec<(String, String)> = uses
        .iter()
        .map(|u| (str_of(u, "agent_id"), str_of(u, "hostname")))
        .collect();
    seen.sort();
    let mut expected = vec![
        (agents[0].clone(), "ws-001".to_string()),
        (agents[1].clone(), "ws-002".to_string()),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    assert!(
        uses.iter().all(|u| u["peer_addr"] == "127.0.0.1"),
        "{uses:?}"
    );
    assert!(uses.iter().all(|u| u["used_at"].is_i64()));
    let limited = s
        .get_ok(&format!("/deployment-keys/{id}/uses?limit=1"), &a.owner)
        .await;
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
    s.get(&format!("/deployment-keys/{id}/uses?limit=0"), &a.owner)
        .await
        .assert_error(422, &["limit"]);
    let listed = s.get_ok("/deployment-keys", &a.owner).await;
    assert_eq!(listed[0]["use_count"], 2);
    assert!(listed[0]["last_used_at"].is_i64(), "{listed}");

    // Revoked: the next enrollment is refused; the agents stay.
    s.send(
        Method::DELETE,
        &format!("/deployment-keys/{id}"),
        Some(&a.owner),
        None,
    )
    .await
    .ok(204);
    s.redeem(&secret, &facts("ws-003", "Windows 11", "0.1.0"))
        .await
        .assert_error(403, &["deployment key", "revoked"]);
    let listed = s.get_ok("/deployment-keys", &a.owner).await;
    assert_eq!(listed[0]["state"], "revoked");
    assert_eq!(listed[0]["use_count"], 2);
    let all = s.get_ok("/agents", &a.owner).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");

    // Used up after max_uses.
    let once = create(
        &s,
        &a.owner,
        json!({"name": "one machine", "expires_in_days": 1, "max_uses": 1}),
    )
    .await
    .ok(201);
    assert_eq!(once["key"]["plan"], "community");
    let once_secret = str_of(&once, "secret");
    s.redeem(&once_secret, &facts("kiosk", "o", "v"))
        .await
        .ok(200);
    s.redeem(&once_secret, &facts("kiosk-2", "o", "v"))
        .await
        .assert_error(403, &["used up"]);
    let listed = s.get_ok("/deployment-keys", &a.owner).await;
    let states: Vec<&Value> = listed
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| &k["state"])
        .collect();
    assert!(states.contains(&&json!("used_up")), "{listed}");

    // Expired (made through the store: the API's shortest key lives a day).
    let two_days_ago = vigil_store::now_unix() - 2 * 86_400;
    let (_, old) = s
        .store()
        .create_deployment_key(
            a.id,
            &vigil_store::NewDeploymentKey {
                name: "old",
                plan: Plan::Community,
                ttl: Duration::from_secs(86_400),
                max_uses: None,
            },
            two_days_ago,
        )
        .await
        .expect("create key");
    s.redeem(&old, &facts("late", "o", "v"))
        .await
        .assert_error(403, &["expired"]);
    let forged = format!("{DEPLOYMENT_KEY_PREFIX}{}", "A".repeat(43));
    s.redeem(&forged, &facts("thief", "o", "v"))
        .await
        .assert_error(403, &["unknown deployment key"]);
    let all = s.get_ok("/agents", &a.owner).await;
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all}");

    // Bad input.
    for bad in [
        json!({"name": "k", "expires_in_days": 0}),
        json!({"name": "k", "expires_in_days": 366}),
        json!({"name": "k", "expires_in_days": 1, "max_uses": 0}),
        json!({"name": "", "expires_in_days": 1}),
    ] {
        create(&s, &a.owner, bad).await.assert_error(422, &[]);
    }
    create(&s, &a.owner, json!({"name": "k"}))
        .await
        .assert_client_error(&["expires_in_days"]);
    s.shutdown().await;
}

async fn keys_are_tenant_scoped_and_admin_only(s: Server) {
    let a = s.tenant("Acme", AccountKind::Organization).await;
    let b = s.tenant("Other", AccountKind::Organization).await;
    let created = create(&s, &a.owner, json!({"name": "k", "expires_in_days": 7}))
        .await
        .ok(201);
    let id = str_of(&created["key"], "id");

    // Another tenant: nothing listed, the id is a 404 like a missing one.
    let theirs = s.get_ok("/deployment-keys", &b.owner).await;
    assert_eq!(theirs, json!([]));
    s.get(&format!("/deployment-keys/{id}/uses"), &b.owner)
        .await
        .assert_error(404, &["not found"]);
    s.send(
        Method::DELETE,
        &format!("/deployment-keys/{id}"),
        Some(&b.owner),
        None,
    )
    .await
    .assert_error(404, &["not found"]);
    let missing = uuid::Uuid::new_v4();
    s.send(
        Method::DELETE,
        &format!("/deployment-keys/{missing}"),
        Some(&a.owner),
        None,
    )
    .await
    .assert_error(404, &["not found"]);
    s.get("/deployment-keys/not-a-uuid/uses", &a.owner)
        .await
        .assert_error(400, &["deployment key id"]);

    // Viewers read; only admins and owners create and revoke.
    let viewer = s.user(a.id, Role::Viewer).await;
    create(&s, &viewer, json!({"name": "v", "expires_in_days": 7}))
        .await
        .assert_error(403, &["viewers"]);
    s.send(
        Method::DELETE,
        &format!("/deployment-keys/{id}"),
        Some(&viewer),
        None,
    )
    .await
    .assert_error(403, &["viewers"]);
    let seen = s.get_ok("/deployment-keys", &viewer).await;
    assert_eq!(seen.as_array().map(Vec::len), Some(1));
    assert_eq!(seen[0]["state"], "active");
    s.get_ok(&format!("/deployment-keys/{id}/uses"), &viewer)
        .await;

    let admin = s.user(a.id, Role::Admin).await;
    create(
        &s,
        &admin,
        json!({"name": "by admin", "expires_in_days": 365}),
    )
    .await
    .ok(201);
    s.send(
        Method::DELETE,
        &format!("/deployment-keys/{id}"),
        Some(&admin),
        None,
    )
    .await
    .ok(204);
    let listed = s.get_ok("/deployment-keys", &a.owner).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    s.shutdown().await;
}
