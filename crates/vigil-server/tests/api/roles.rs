//! Viewers read, admins and owners write, only owners make owners.

use crate::common::{policy, Server};
use reqwest::Method;
use serde_json::{json, Value};
use vigil_core::AccountKind;
use vigil_store::Role;

api_tests!(
    a_viewer_reads_everything_and_writes_nothing,
    admins_make_viewers_but_only_owners_make_owners,
    viewers_see_hook_urls_without_their_secret,
    tokens_never_come_back_and_stay_on_edit,
);

/// Secret fields (bot tokens, keys) are never answered, to anyone; a
/// change that leaves them out keeps them.
async fn tokens_never_come_back_and_stay_on_edit(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let viewer = s.user(a.id, Role::Viewer).await;
    let body = json!({"name": "chat", "channel": "telegram", "address": "-1001234",
        "fields": {"bot_token": "123:SECRETTOKEN"}});
    let created = s
        .send(Method::POST, "/contacts", Some(&a.owner), Some(&body))
        .await
        .ok(201);
    assert!(!created.to_string().contains("SECRETTOKEN"), "{created}");
    assert_eq!(created["address"], "-1001234");
    assert_eq!(created["secrets"], json!(["bot_token"]));
    let path = format!("/contacts/{}", created["id"].as_str().expect("id"));
    for token in [&a.owner, &viewer] {
        let seen = s.get_ok(&path, token).await;
        assert!(!seen.to_string().contains("SECRETTOKEN"), "{seen}");
        let listed = s.get_ok("/contacts", token).await;
        assert!(!listed.to_string().contains("SECRETTOKEN"), "{listed}");
    }
    let renamed = json!({"name": "chat 2", "channel": "telegram", "address": "-1009"});
    let changed = s
        .send(Method::PUT, &path, Some(&a.owner), Some(&renamed))
        .await
        .ok(200);
    assert_eq!(changed["secrets"], json!(["bot_token"]), "{changed}");
    assert_eq!(changed["address"], "-1009");
    let missing = json!({"name": "x", "channel": "telegram", "address": "-1001"});
    s.send(Method::POST, "/contacts", Some(&a.owner), Some(&missing))
        .await
        .assert_error(422, &["Bot token"]);
    let unknown = json!({"name": "x", "channel": "pager", "address": "-1001"});
    s.send(Method::POST, "/contacts", Some(&a.owner), Some(&unknown))
        .await
        .assert_error(422, &["unknown channel", "telegram"]);
}

/// A webhook URL is its own password: viewers see scheme and host only.
async fn viewers_see_hook_urls_without_their_secret(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let viewer = s.user(a.id, Role::Viewer).await;
    let url = "https://198.51.100.7/services/T000/B000/SECRETPART?token=also-secret";
    let contact = s
        .send(
            Method::POST,
            "/contacts",
            Some(&a.owner),
            Some(&json!({"name": "hook", "channel": "slack", "address": url})),
        )
        .await
        .ok(201);
    assert_eq!(contact["address"], url, "the owner who wrote it sees it");
    let path = format!("/contacts/{}", contact["id"].as_str().expect("id"));
    assert_eq!(s.get_ok(&path, &a.owner).await["address"], url);
    for seen in [
        s.get_ok(&path, &viewer).await,
        s.get_ok("/contacts", &viewer).await[0].clone(),
    ] {
        assert_eq!(seen["address"], "https://198.51.100.7/…", "{seen}");
    }
}

async fn a_viewer_reads_everything_and_writes_nothing(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let viewer = s.user(a.id, Role::Viewer).await;
    let before = s.snapshot(&a.owner, &r).await;

    // Everything the owner sees, the viewer sees the same.
    let seen = s.snapshot(&viewer, &r).await;
    for ((path, owner_view), (_, viewer_view)) in before.iter().zip(&seen) {
        if path == "/me" || path == "/tokens" {
            continue; // who is asking differs
        }
        assert_eq!(owner_view, viewer_view, "viewer's GET {path}");
    }

    let agent = &r.agent;
    // Every body is valid: only the role can refuse them.
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            format!("/agents/{agent}/policy"),
            Some(policy(false, "22", 30)),
        ),
        (
            Method::PATCH,
            format!("/agents/{agent}"),
            Some(json!({"plan": "community"})),
        ),
        (Method::POST, format!("/agents/{agent}/scan"), None),
        (
            Method::POST,
            "/contacts".into(),
            Some(json!({"name": "new", "channel": "email", "address": "new@a.example.com"})),
        ),
        (
            Method::PUT,
            format!("/contacts/{}", r.contact),
            Some(json!({"name": "renamed", "channel": "email", "address": "x@a.example.com"})),
        ),
        (Method::POST, format!("/contacts/{}/test", r.contact), None),
        (
            Method::POST,
            "/rules".into(),
            Some(json!({"contact_id": r.contact, "events": ["*"]})),
        ),
        (Method::DELETE, format!("/rules/{}", r.rule), None),
        (
            Method::POST,
            "/enrollments".into(),
            Some(json!({"name": "sneaky", "plan": "extended"})),
        ),
        (
            Method::POST,
            "/users".into(),
            Some(
                json!({"email": "v2@a.example.com", "password": "long enough password", "role": "viewer"}),
            ),
        ),
        (Method::DELETE, format!("/contacts/{}", r.contact), None),
        (Method::DELETE, format!("/agents/{agent}"), None),
    ];
    for (method, path, body) in &writes {
        let reply = s
            .send(method.clone(), path, Some(&viewer), body.as_ref())
            .await;
        assert_eq!(
            reply.status.as_u16(),
            403,
            "viewer's {method} {path}: {reply:?}"
        );
        reply.assert_error(403, &["viewer"]);
    }
    let after = s.snapshot(&a.owner, &r).await;
    assert_eq!(before, after, "a viewer's writes changed the account");
    s.shutdown().await;
}

async fn admins_make_viewers_but_only_owners_make_owners(s: Server) {
    let a = s.tenant("Account A", AccountKind::Organization).await;
    let admin = s.user(a.id, Role::Admin).await;
    let new_user = |email: &str, role: &str| json!({"email": email, "password": "long enough password", "role": role});
    let users_before = s.get_ok("/users", &a.owner).await;

    let reply = s
        .send(
            Method::POST,
            "/users",
            Some(&admin),
            Some(&new_user("boss@a.example.com", "owner")),
        )
        .await;
    reply.assert_error(403, &["owner"]);
    assert_eq!(
        s.get_ok("/users", &a.owner).await,
        users_before,
        "a refused owner was created"
    );

    let viewer = s
        .send(
            Method::POST,
            "/users",
            Some(&admin),
            Some(&new_user("watcher@a.example.com", "viewer")),
        )
        .await
        .ok(201);
    assert_eq!(viewer["role"], "viewer");
    assert_eq!(viewer["email"], "watcher@a.example.com");

    let owner = s
        .send(
            Method::POST,
            "/users",
            Some(&a.owner),
            Some(&new_user("boss@a.example.com", "owner")),
        )
        .await
        .ok(201);
    assert_eq!(owner["role"], "owner");

    // Both exist and can log in with the role they were given.
    let users = s.get_ok("/users", &a.owner).await;
    let roles: Vec<(String, String)> = users
        .as_array()
        .expect("user list")
        .iter()
        .map(|u| {
            (
                u["email"].as_str().unwrap_or_default().to_string(),
                u["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(roles.contains(&("watcher@a.example.com".into(), "viewer".into())));
    assert!(roles.contains(&("boss@a.example.com".into(), "owner".into())));
    assert_eq!(
        roles.len(),
        users_before.as_array().map_or(0, Vec::len) + 2,
        "{users}"
    );
    let token = s.login("boss@a.example.com", "long enough password").await;
    let me = s.get_ok("/me", &token).await;
    assert_eq!(me["user"]["role"], "owner");
    assert_eq!(me["account"]["id"], a.id.to_string());
    let token = s
        .login("watcher@a.example.com", "long enough password")
        .await;
    let me = s.get_ok("/me", &token).await;
    assert_eq!(me["user"]["role"], "viewer");
    s.shutdown().await;
}
