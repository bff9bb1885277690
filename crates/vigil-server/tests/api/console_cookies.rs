//! The console's cookies are `Secure` behind a TLS-terminating proxy the
//! operator trusts (`X-Forwarded-Proto: https` from a `--trusted-proxy`
//! address), and only then: anyone else's header is ignored.

use crate::common::Server;

async fn login_cookie(s: &Server, headers: &[(&str, &str)]) -> String {
    let reply = s.console_get("/login", headers).await;
    assert_eq!(reply.status().as_u16(), 200);
    reply
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_are_secure_behind_a_trusted_proxy_only() {
    let https = [("x-forwarded-proto", "https")];
    let untrusting = Server::start(vigil_testdb::sqlite().await).await;
    let cookie = login_cookie(&untrusting, &https).await;
    assert!(!cookie.is_empty() && !cookie.contains("Secure"), "{cookie}");

    let behind = Server::start_with(vigil_testdb::sqlite().await, |cfg| {
        cfg.trusted_proxies = vec!["127.0.0.0/8".parse().expect("cidr")];
    })
    .await;
    let cookie = login_cookie(&behind, &https).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(cookie.matches("Secure").count(), cookie.lines().count());
    for plain in [&[][..], &[("x-forwarded-proto", "http")][..]] {
        let cookie = login_cookie(&behind, plain).await;
        assert!(!cookie.contains("Secure"), "{plain:?}: {cookie}");
    }
}
