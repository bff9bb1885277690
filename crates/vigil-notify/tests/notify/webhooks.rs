//! Webhook channels against real HTTP(S) servers (hyper) on 127.0.0.1.

use crate::support::{closed_port, notification, HttpServer, Reply, TestPki};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::netpolicy::{NetPolicy, Verdict};
use vigil_notify::{render, Channel, Destination, HttpConfig, Notifier, NotifierConfig, SendError};

/// The receivers listen on 127.0.0.1, which the default network policy
/// refuses for webhooks: these tests run with loopback allowed.
pub(crate) fn notifier_with(mut http: HttpConfig) -> Notifier {
    let mut policy = NetPolicy::default();
    policy.add(Verdict::Allow, "webhook=loopback").unwrap();
    http.policy = Arc::new(policy);
    Notifier::new(&NotifierConfig { smtp: None, http }).unwrap()
}

pub(crate) fn notifier() -> Notifier {
    notifier_with(HttpConfig {
        timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    })
}

fn user_agent() -> String {
    format!("vigil/{}", env!("CARGO_PKG_VERSION"))
}

#[tokio::test]
async fn generic_webhook_posts_the_notification() {
    let server = HttpServer::start(Reply::status(200).body("ok")).await;
    let n = notification();
    let dest = Destination::with_address(Channel::Webhook, &server.url("/hooks/vigil?key=abc"));
    let delivery = notifier().send(&dest, &n).await.unwrap();
    assert_eq!(delivery.channel, Channel::Webhook);
    assert_eq!(delivery.response, "HTTP 200 OK");

    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/hooks/vigil?key=abc");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some(user_agent().as_str()));
    assert_eq!(r.header("x-vigil-event"), Some("unauthorized_port_open"));
    assert_eq!(r.header("x-vigil-severity"), Some("critical"));
    assert_eq!(r.header("idempotency-key"), None, "no delivery id, no key");
    let received: vigil_notify::Notification = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(received, n);
}

/// A delivery id travels as `Idempotency-Key` (and in the body), the same
/// on a second attempt, so the receiver can drop the repeat.
#[tokio::test]
async fn generic_webhook_carries_the_delivery_id() {
    let server = HttpServer::start(Reply::status(200)).await;
    let mut n = notification();
    n.delivery_id = Some("4f1c2d9e-0000-4000-8000-00000000002a".into());
    let dest = Destination::with_address(Channel::Webhook, &server.url("/hook"));
    for _ in 0..2 {
        notifier().send(&dest, &n).await.unwrap();
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(r.header("idempotency-key"), n.delivery_id.as_deref());
        let received: vigil_notify::Notification = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(received.delivery_id, n.delivery_id);
    }
}

#[tokio::test]
async fn slack_teams_discord_bodies() {
    let n = notification();
    let cases = [
        (
            Channel::Slack,
            200,
            "/services/T000/B000/XXXX",
            render::slack_json(&n),
        ),
        (
            Channel::Teams,
            200,
            "/webhookb2/abc/IncomingWebhook/def",
            render::teams_json(&n),
        ),
        (
            Channel::Discord,
            204,
            "/api/webhooks/123/token",
            render::discord_json(&n),
        ),
    ];
    for (channel, status, path, expected) in cases {
        let server = HttpServer::start(Reply::status(status)).await;
        let url = server.url(path);
        let dest = Destination::with_address(channel, &url);
        let delivery = notifier().send(&dest, &n).await.unwrap();
        assert_eq!(delivery.channel, channel);
        let r = server.single_request();
        assert_eq!(r.method, "POST", "{channel}");
        assert_eq!(r.uri, path, "{channel}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json(), expected, "{channel}");
    }

    // Spot-check the shapes each service expects.
    let slack = render::slack_json(&n);
    assert!(slack["text"]
        .as_str()
        .unwrap()
        .starts_with("*[CRITICAL] Port 23/tcp open"));
    assert_eq!(render::teams_json(&n)["@type"], "MessageCard");
    let discord = render::discord_json(&n);
    assert!(discord["content"]
        .as_str()
        .unwrap()
        .starts_with("**[CRITICAL] Port 23/tcp open"));
}

#[tokio::test]
async fn ntfy_posts_text_with_headers_and_token() {
    let server = HttpServer::start(Reply::status(200).body(r#"{"id":"x1"}"#)).await;
    let mut n = notification();
    n.title = "Büro: Port 23/tcp open".into();
    let dest = Destination::new(
        Channel::Ntfy,
        [
            ("url", server.url("/vigil-alerts")),
            ("token", "tk_testtoken".into()),
        ],
    );
    notifier().send(&dest, &n).await.unwrap();
    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/vigil-alerts");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.header("title"),
        Some("=?UTF-8?B?QsO8cm86IFBvcnQgMjMvdGNwIG9wZW4=?=")
    );
    assert_eq!(r.header("priority"), Some("5"));
    assert_eq!(
        r.header("tags"),
        Some("rotating_light,vigil,unauthorized_port_open")
    );
    assert_eq!(
        r.header("click"),
        Some("https://vigil.example/conditions/42")
    );
    assert_eq!(r.header("authorization"), Some("Bearer tk_testtoken"));
    assert_eq!(String::from_utf8(r.body).unwrap(), render::ntfy(&n).body);
}

async fn error_for(reply: Reply, timeout: Duration) -> (SendError, HttpServer) {
    let server = HttpServer::start(reply).await;
    let dest = Destination::with_address(
        Channel::Slack,
        &server.url("/services/T000/B000/SECRETPATH"),
    );
    let err = notifier_with(HttpConfig {
        timeout,
        ..HttpConfig::default()
    })
    .send(&dest, &notification())
    .await
    .unwrap_err();
    assert!(
        !err.to_string().contains("SECRETPATH"),
        "error leaks the hook URL: {err}"
    );
    (err, server)
}

#[tokio::test]
async fn http_status_classification() {
    let secs = Duration::from_secs(5);

    let (err, _s) = error_for(Reply::status(500).body("upstream broke"), secs).await;
    assert!(
        matches!(&err, SendError::HttpStatus { status: 500, body, .. } if body == "upstream broke"),
        "{err:?}"
    );
    assert!(err.is_transient());

    let (err, _s) = error_for(
        Reply::status(429)
            .header("retry-after", "7")
            .body("rate_limited"),
        secs,
    )
    .await;
    assert!(
        matches!(err, SendError::HttpStatus { status: 429, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    let (err, _s) = error_for(Reply::status(404).body("no_service"), secs).await;
    assert!(
        matches!(err, SendError::HttpStatus { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(
        err.to_string().ends_with("answered HTTP 404: no_service"),
        "{err}"
    );

    let (err, _s) = error_for(Reply::status(408), secs).await;
    assert!(err.is_transient(), "{err:?}");

    let (err, s) = error_for(
        Reply::status(301).header("location", "https://new.example/hooks/SECRETPATH"),
        secs,
    )
    .await;
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.to_string()
            .contains("redirects to https://new.example/…"),
        "{err}"
    );
    assert_eq!(s.requests().len(), 1, "the redirect must not be followed");
}

#[tokio::test]
async fn closed_port_is_transient() {
    let dest = Destination::with_address(
        Channel::Webhook,
        &format!("http://127.0.0.1:{}/hooks/SECRETPATH", closed_port()),
    );
    let err = notifier().send(&dest, &notification()).await.unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("SECRETPATH"), "{err}");
}

#[tokio::test]
async fn slow_server_times_out_transiently() {
    let started = Instant::now();
    let (err, _s) = error_for(
        Reply::status(200).delay(Duration::from_secs(3)),
        Duration::from_millis(300),
    )
    .await;
    assert!(matches!(err, SendError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn https_with_private_ca() {
    let pki = TestPki::new();
    let server = HttpServer::start_tls(Reply::status(200), &pki).await;
    let dest = Destination::with_address(Channel::Ntfy, &server.url("/alerts"));
    let trusting = notifier_with(HttpConfig {
        extra_root_ca_pem: Some(pki.ca_pem.clone()),
        ..HttpConfig::default()
    });
    trusting.send(&dest, &notification()).await.unwrap();
    assert_eq!(server.single_request().uri, "/alerts");

    let err = notifier().send(&dest, &notification()).await.unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(server.requests().len(), 1);
}

/// With the default policy, a webhook on loopback (by address or by a name
/// resolving to it) is refused before any connection, permanently, and the
/// message names the rule.
#[tokio::test]
async fn the_default_policy_refuses_loopback_webhooks() {
    let server = HttpServer::start(Reply::status(200)).await;
    let notifier = Notifier::new(&NotifierConfig {
        smtp: None,
        http: HttpConfig::default(),
    })
    .unwrap();
    let by_address = server.url("/hook");
    let by_name = by_address.replace("127.0.0.1", "localhost");
    assert_ne!(by_address, by_name);
    for url in [by_address, by_name] {
        let dest = Destination::with_address(Channel::Webhook, &url);
        let err = notifier.send(&dest, &notification()).await.unwrap_err();
        assert!(matches!(err, SendError::Refused { .. }), "{url}: {err:?}");
        assert!(err.is_permanent());
        let text = err.to_string();
        assert!(text.contains("loopback"), "{text}");
        assert!(!text.contains("/hook"), "the path is a secret: {text}");
    }
    assert!(server.requests().is_empty(), "nothing reached the receiver");
}
