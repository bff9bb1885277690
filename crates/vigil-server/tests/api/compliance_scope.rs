//! `PUT /compliance/scope` and the stored AD bind password: an update that
//! changes the AD connection (URL, bind, CA certificate) must carry the
//! password again, so the stored one is never sent to a directory of the
//! caller's choice; an update that leaves the connection alone keeps it.
//! GSSAPI binds (the server's own Kerberos ticket) only for the accounts
//! the operator allows; ranges and directory hosts the network policy
//! refuses are refused when saved. The certificate check (`POST
//! /compliance/scope/certificate`) says why it cannot check.

use crate::common::Server;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpListener;
use vigil_core::AccountKind;
use vigil_server::GssapiAccounts;
use vigil_store::Role;

api_tests!(
    changing_the_ad_connection_needs_the_password_again,
    no_bind_with_the_stored_password_reaches_a_new_url,
    refused_networks_are_refused_when_saved,
    the_certificate_check_answers_clearly,
);

/// The same AD scope with a GSSAPI bind.
fn gssapi_scope() -> Value {
    json!({
        "ad": {
            "url": "ldap://dc1.example.test",
            "bind": {"method": "gssapi"},
            "base_dns": ["OU=Computers,DC=example,DC=test"],
        },
    })
}

/// Only the accounts the operator names may bind with the server's own
/// Kerberos ticket; the others are refused before anything is saved.
#[tokio::test(flavor = "multi_thread")]
async fn gssapi_binds_need_the_operators_leave() {
    let db = vigil_testdb::sqlite().await;
    let allowed = db
        .store
        .create_account("Allowed", AccountKind::Organization)
        .await
        .expect("account");
    let s = Server::start_with(db, |cfg| {
        cfg.gssapi_accounts = GssapiAccounts::Some(vec![allowed.id]);
    })
    .await;
    let other = s.tenant("Other", AccountKind::Organization).await;
    put_scope(&s, &other.owner, json!({"scope": gssapi_scope()}))
        .await
        .assert_error(403, &["own Kerberos ticket", "--gssapi-account"]);
    assert!(
        s.store()
            .compliance_scope(other.id)
            .await
            .expect("read")
            .is_none(),
        "nothing saved"
    );
    let owner = s.user(allowed.id, Role::Owner).await;
    let reply = put_scope(&s, &owner, json!({"scope": gssapi_scope()})).await;
    if cfg!(feature = "gssapi") {
        reply.ok(200);
    } else {
        reply.assert_error(422, &["not available in this build"]);
    }
}

/// The network policy at save time (the server of these tests allows
/// loopback for every kind; the rest are the defaults).
async fn refused_networks_are_refused_when_saved(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    for (ranges, needle) in [
        (json!(["169.254.169.0/24"]), "link-local"),
        (
            json!(["198.51.100.0/24", "169.254.169.254"]),
            "169.254.169.254",
        ),
        (json!(["224.0.0.1-224.0.0.9"]), "multicast"),
        (json!(["fe80::/120"]), "link-local"),
    ] {
        let body =
            json!({"scope": {"ip": {"enabled": true, "ranges": ranges}, "agent_ports": [47760]}});
        put_scope(&s, &t.owner, body)
            .await
            .assert_error(403, &[needle, "refused for compliance destinations"]);
    }
    assert!(s
        .store()
        .compliance_scope(t.id)
        .await
        .expect("read")
        .is_none());
    // Private ranges are what compliance scopes are for.
    let body = json!({"scope": {"ip": {"enabled": true, "ranges": ["10.20.0.0/24", "192.168.1.1"]}, "agent_ports": [47760]}});
    put_scope(&s, &t.owner, body).await.ok(200);
    // A directory on a metadata address.
    let body = json!({"scope": ad_scope("ldaps://169.254.169.254"), "ad_password": "x"});
    put_scope(&s, &t.owner, body)
        .await
        .assert_error(403, &["refused for ldap destinations"]);
}

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

/// `POST /compliance/scope/certificate` before anything can be checked:
/// no scope, no AD part, no TLS, an unreachable directory, a viewer. (The
/// handshake itself is tested against a real DC: compliance_ad_pin.)
async fn the_certificate_check_answers_clearly(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let check = |token: &str| {
        let token = token.to_string();
        let s = &s;
        async move {
            s.send(
                Method::POST,
                "/compliance/scope/certificate",
                Some(&token),
                None,
            )
            .await
        }
    };
    check(&t.owner)
        .await
        .assert_error(409, &["no compliance scope saved yet"]);
    put_scope(
        &s,
        &t.owner,
        json!({"scope": {"ip": {"enabled": true, "ranges": ["198.51.100.0/30"]}}}),
    )
    .await
    .ok(200);
    check(&t.owner)
        .await
        .assert_error(409, &["no Active Directory part"]);
    // A directory that does not answer: 502, naming it.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("listener");
    let url = format!("ldaps://{}", closed.local_addr().unwrap());
    drop(closed);
    put_scope(
        &s,
        &t.owner,
        json!({"scope": ad_scope(&url), "ad_password": "P-password"}),
    )
    .await
    .ok(200);
    check(&t.owner).await.assert_error(502, &[url.as_str()]);
    let viewer = s.user(t.id, Role::Viewer).await;
    check(&viewer).await.assert_error(403, &[]);
    s.shutdown().await;
}

/// A directory reached without TLS (a GSSAPI bind over ldap://) has no
/// certificate to check: a 422 that says so. Needs the GSSAPI build and
/// the operator's leave for the account.
#[tokio::test(flavor = "multi_thread")]
async fn a_directory_without_tls_has_no_certificate_to_check() {
    if !cfg!(feature = "gssapi") {
        return;
    }
    let db = vigil_testdb::sqlite().await;
    let s = Server::start_with(db, |cfg| cfg.gssapi_accounts = GssapiAccounts::All).await;
    let t = s.tenant("Acme", AccountKind::Organization).await;
    put_scope(&s, &t.owner, json!({"scope": gssapi_scope()}))
        .await
        .ok(200);
    s.send(
        Method::POST,
        "/compliance/scope/certificate",
        Some(&t.owner),
        None,
    )
    .await
    .assert_error(422, &["uses no TLS", "no certificate to check"]);
    s.shutdown().await;
}
