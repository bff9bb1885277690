//! Tokens from `POST /login` expire (30 days by default, configurable);
//! tokens made with `POST /tokens` for automation last until revoked.

use crate::common::{Server, PASSWORD};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use vigil_core::AccountKind;
use vigil_store::{Role, TokenExpiry};

#[tokio::test(flavor = "multi_thread")]
async fn login_tokens_expire_and_named_tokens_do_not() {
    let db = vigil_testdb::sqlite().await;
    let s = Server::start_with(db, |cfg| {
        cfg.login_token = TokenExpiry {
            lifetime: Some(Duration::from_secs(4)),
            idle: None,
        };
    })
    .await;
    let a = s.tenant("A", AccountKind::Organization).await;
    // `tenant` logs its owner in: that token is a login token.
    let named = s
        .send(
            Method::POST,
            "/tokens",
            Some(&a.owner),
            Some(&json!({"name": "ci"})),
        )
        .await
        .ok(201)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let viewer_email = "viewer@a.test";
    s.store()
        .create_user(a.id, viewer_email, PASSWORD, Role::Viewer)
        .await
        .expect("user");
    let login = s.login(viewer_email, PASSWORD).await;
    s.get_ok("/me", &login).await;
    tokio::time::sleep(Duration::from_millis(5100)).await;
    s.send(Method::GET, "/me", Some(&login), None)
        .await
        .assert_error(401, &["credentials"]);
    s.send(Method::GET, "/me", Some(&a.owner), None)
        .await
        .assert_error(401, &["credentials"]);
    s.get_ok("/me", &named).await;
}
