//! `PUT /compliance/scope` and the stored AD bind password: an update that
//! changes the AD connection (URL, bind, CA certificate) must carry the
//! password again, so the stored one is never sent to a directory of the
//! caller's choice; an update that leaves the connection alone keeps it.

use crate::common::Server;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpListener;
use vigil_core::AccountKind;

api_tests!(
    changing_the_ad_connection_needs_the_password_again,
    no_bind_with_the_stored_password_reaches_a_new_url,
);

/// An AD-only scope (simple bind) on `url`.
fn ad_scope(url: &str) -> Value {
    json!({
        "ad": {
            "url": url,
            "bind": {"method": "simple", "bind_dn": "svc-vigil@example.test"},
            "base_dns": ["OU=Computers,DC=example,DC=test"],
        },
    })
}

async fn put_scope(s: &Server, token: &str, body: Value) -> crate::common::Reply {
    s.send(Method::PUT, "/compliance/scope", Some(token), Some(&body))
        .await
}

async fn changing_the_ad_connection_needs_the_password_again(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let url_a = "ldaps://dc1.example.test";
    let url_b = "ldaps://dc9.example.test:1636";
    put_scope(
        &s,
        &t.owner,
        json!({"scope": ad_scope(url_a), "ad_password": "P-password"}),
    )
    .await
    .ok(200);

    // Another URL without the password: refused, nothing changes.
    let reply = put_scope(&s, &t.owner, json!({"scope": ad_scope(url_b)})).await;
    let msg = reply.assert_error(422, &["AD connection changed (url)", "bind password again"]);
    assert_eq!(
        msg,
        "the AD connection changed (url): enter the bind password again"
    );
    let view = s.get_ok("/compliance/scope", &t.owner).await;
    assert_eq!(view["scope"]["ad"]["url"], url_a, "{view}");
    assert_eq!(view["has_ad_password"], true, "{view}");
    assert_eq!(
        s.store()
            .compliance_ad_password(t.id)
            .await
            .unwrap()
            .as_deref(),
        Some("P-password")
    );

    // Another bind DN: refused as well (the CA certificate counts too; see
    // the store's and vigil-core's tests).
    let mut other_dn = ad_scope(url_a);
    other_dn["ad"]["bind"]["bind_dn"] = json!("admin@example.test");
    put_scope(&s, &t.owner, json!({"scope": other_dn}))
        .await
        .assert_error(422, &["(bind)", "bind password again"]);

    // The same connection without the password keeps it.
    let mut filtered = ad_scope(url_a);
    filtered["ad"]["filter"] = json!("(operatingSystem=Windows*)");
    put_scope(&s, &t.owner, json!({"scope": filtered}))
        .await
        .ok(200);
    assert_eq!(
        s.store()
            .compliance_ad_password(t.id)
            .await
            .unwrap()
            .as_deref(),
        Some("P-password")
    );

    // The new URL with the password again: accepted.
    put_scope(
        &s,
        &t.owner,
        json!({"scope": ad_scope(url_b), "ad_password": "Q-password"}),
    )
    .await
    .ok(200);
    let view = s.get_ok("/compliance/scope", &t.owner).await;
    assert_eq!(view["scope"]["ad"]["url"], url_b, "{view}");
    assert_eq!(
        s.store()
            .compliance_ad_password(t.id)
            .await
            .unwrap()
            .as_deref(),
        Some("Q-password")
    );
    s.shutdown().await;
}

/// The attacker's "LDAP server" is a plain TCP listener: switching the
/// scope to it with an empty password field and "Save and re-assess" is
/// refused, and no connection ever reaches it. With the password entered
/// again, the re-assessment does connect (so the listener would have seen
/// the bind).
async fn no_bind_with_the_stored_password_reaches_a_new_url(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let attacker = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let evil_url = format!("ldaps://{}", attacker.local_addr().unwrap());
    put_scope(
        &s,
        &t.owner,
        json!({"scope": ad_scope("ldaps://dc1.example.test"), "ad_password": "P-password"}),
    )
    .await
    .ok(200);

    let reply = put_scope(
        &s,
        &t.owner,
        json!({"scope": ad_scope(&evil_url), "reassess": true}),
    )
    .await;
    reply.assert_error(422, &["AD connection changed (url)"]);
    // Nothing was started either: a manual assessment still uses URL A.
    let view = s.get_ok("/compliance/scope", &t.owner).await;
    assert_eq!(view["scope"]["ad"]["url"], "ldaps://dc1.example.test");
    let accepted = tokio::time::timeout(Duration::from_secs(2), attacker.accept()).await;
    assert!(
        accepted.is_err(),
        "the server connected to the new URL: {accepted:?}"
    );

    // Control: with the password entered again the assessment does reach it.
    put_scope(
        &s,
        &t.owner,
        json!({"scope": ad_scope(&evil_url), "ad_password": "Q-password", "reassess": true}),
    )
    .await
    .ok(202);
    let accepted = tokio::time::timeout(Duration::from_secs(20), attacker.accept()).await;
    assert!(
        matches!(accepted, Ok(Ok(_))),
        "the re-assessment never connected: {accepted:?}"
    );
    s.shutdown().await;
}
