//! The provider channels against local receivers on 127.0.0.1 that check
//! each provider's documented request and answer like it; then the error
//! handling every HTTP channel shares (429 with Retry-After, other 4xx).

use crate::support::{notification, Captured, HttpServer, Reply};
use crate::webhooks::notifier;
use std::collections::HashMap;
use std::time::Duration;
use vigil_notify::{
    retry_delay, Channel, Destination, FieldKind, Notification, SendError, Severity,
};

/// A destination of `channel` whose URLs all point at `server`; secrets
/// contain `SECRET` (errors must not show them).
fn destination(channel: Channel, server: &HttpServer) -> Destination {
    let fields: Vec<(&str, String)> = channel
        .fields()
        .iter()
        .map(|f| {
            let v = match (f.name, f.kind) {
                ("base_url", _) => server.url(""),
                (_, FieldKind::Url | FieldKind::SecretUrl) => server.url("/hook/SECRET-path"),
                (_, FieldKind::Secret) => "SECRET-123:abc".into(),
                ("chat_id", _) => "-1001234".into(),
                ("room_id", _) => "!room:example.org".into(),
                ("user_key", _) => "uQiRzpo4DXghDmr9QzzfQu27cmVRsG".into(),
                ("account_sid", _) => "AC123".into(),
                ("from", _) => "+14155550100".into(),
                (_, FieldKind::Phone) => "+14155550123".into(),
                (_, FieldKind::Email) => "ops@example.com".into(),
                (_, FieldKind::Text) => "x".into(),
            };
            (f.name, v)
        })
        .collect();
    let d = Destination::new(channel, fields);
    d.validate().unwrap();
    d
}

fn recovery() -> Notification {
    let mut n = notification();
    n.severity = Severity::Recovery;
    n.title = "Port 23/tcp closed on 203.0.113.7".into();
    n
}

fn form(r: &Captured) -> HashMap<String, String> {
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    url::form_urlencoded::parse(&r.body).into_owned().collect()
}

#[tokio::test]
async fn telegram_send_message() {
    let server =
        HttpServer::start(Reply::status(200).body(r#"{"ok":true,"result":{"message_id":7}}"#))
            .await;
    let mut d = destination(Channel::Telegram, &server);
    d.insert("bot_token", "123456:ABC-DEF");
    let delivery = notifier().send(&d, &notification()).await.unwrap();
    assert_eq!(delivery.channel, Channel::Telegram);
    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/bot123456:ABC-DEF/sendMessage");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["chat_id"], "-1001234");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("[CRITICAL] Port 23/tcp open on 203.0.113.7\n"),
        "{text}"
    );
    assert!(
        text.contains("https://vigil.example/conditions/42"),
        "{text}"
    );
}

#[tokio::test]
async fn pagerduty_triggers_then_resolves_the_same_incident() {
    let server = HttpServer::start(
        Reply::status(202)
            .body(r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#),
    )
    .await;
    let d = destination(Channel::Pagerduty, &server);
    let n = notification();
    notifier().send(&d, &n).await.unwrap();
    notifier().send(&d, &recovery()).await.unwrap();
    let r = server.requests();
    assert_eq!(r.len(), 2);
    for req in &r {
        assert_eq!(req.method, "POST");
        assert_eq!(req.uri, "/v2/enqueue");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("authorization"), None);
    }
    let trigger = r[0].json();
    assert_eq!(trigger["routing_key"], "SECRET-123:abc");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["dedup_key"], n.dedupe_key);
    assert_eq!(
        trigger["payload"]["summary"],
        "[CRITICAL] Port 23/tcp open on 203.0.113.7"
    );
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "203.0.113.7");
    assert_eq!(
        trigger["links"][0]["href"],
        "https://vigil.example/conditions/42"
    );
    let resolve = r[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], n.dedupe_key);
    assert!(resolve.get("payload").is_none());

    // A key longer than PagerDuty's 255 characters is hashed, the same way each time.
    let mut long = notification();
    long.dedupe_key = "k".repeat(300);
    notifier().send(&d, &long).await.unwrap();
    long.severity = Severity::Recovery;
    notifier().send(&d, &long).await.unwrap();
    let r = server.requests();
    let (a, b) = (r[2].json(), r[3].json());
    assert_eq!(a["dedup_key"], b["dedup_key"]);
    assert!(a["dedup_key"].as_str().unwrap().len() <= 255);
}

#[tokio::test]
async fn opsgenie_creates_then_closes_by_alias() {
    let server = HttpServer::start(
        Reply::status(202)
            .body(r#"{"result":"Request will be processed","took":0.2,"requestId":"43a2"}"#),
    )
    .await;
    let d = destination(Channel::Opsgenie, &server);
    let n = notification();
    notifier().send(&d, &n).await.unwrap();
    notifier().send(&d, &recovery()).await.unwrap();
    let r = server.requests();
    assert_eq!(r.len(), 2);
    for req in &r {
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("authorization"), Some("GenieKey SECRET-123:abc"));
    }
    assert_eq!(r[0].uri, "/v2/alerts");
    let create = r[0].json();
    assert_eq!(create["alias"], n.dedupe_key);
    assert_eq!(
        create["message"],
        "[CRITICAL] Port 23/tcp open on 203.0.113.7"
    );
    assert_eq!(create["priority"], "P1");
    assert_eq!(create["source"], "Vigil");
    assert_eq!(
        r[1].uri,
        "/v2/alerts/acme%2Foffice-gw%2F203.0.113.7%2Funauthorized%2F23/close?identifierType=alias"
    );
    assert_eq!(r[1].json()["source"], "Vigil");
}

#[tokio::test]
async fn pushover_messages() {
    let server =
        HttpServer::start(Reply::status(200).body(r#"{"status":1,"request":"5042"}"#)).await;
    let d = destination(Channel::Pushover, &server);
    notifier().send(&d, &notification()).await.unwrap();
    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/1/messages.json");
    let f = form(&r);
    assert_eq!(f["token"], "SECRET-123:abc");
    assert_eq!(f["user"], "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    assert_eq!(f["title"], "[CRITICAL] Port 23/tcp open on 203.0.113.7");
    assert_eq!(f["priority"], "1");
    assert_eq!(f["url"], "https://vigil.example/conditions/42");
    assert!(f["message"].contains("Telnet answers"), "{}", f["message"]);
}

#[tokio::test]
async fn gotify_message_under_a_path() {
    let server = HttpServer::start(Reply::status(200).body(r#"{"id":25,"appid":5}"#)).await;
    let mut d = destination(Channel::Gotify, &server);
    d.insert("base_url", &server.url("/gotify/"));
    notifier().send(&d, &notification()).await.unwrap();
    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/gotify/message");
    assert_eq!(r.header("x-gotify-key"), Some("SECRET-123:abc"));
    let body = r.json();
    assert_eq!(body["title"], "[CRITICAL] Port 23/tcp open on 203.0.113.7");
    assert_eq!(body["priority"], 8);
    assert_eq!(
        body["extras"]["client::notification"]["click"]["url"],
        "https://vigil.example/conditions/42"
    );
}

#[tokio::test]
async fn matrix_room_message_is_idempotent_per_delivery() {
    let server = HttpServer::start(Reply::status(200).body(r#"{"event_id":"$YUwRid"}"#)).await;
    let d = destination(Channel::Matrix, &server);
    let mut n = notification();
    n.delivery_id = Some("0b9e7d52".into());
    for _ in 0..2 {
        notifier().send(&d, &n).await.unwrap();
    }
    let r = server.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].uri, r[1].uri, "a retry reuses the transaction id");
    assert_eq!(r[0].method, "PUT");
    assert_eq!(
        r[0].uri,
        "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/vigil-0b9e7d52"
    );
    assert_eq!(r[0].header("authorization"), Some("Bearer SECRET-123:abc"));
    let body = r[0].json();
    assert_eq!(body["msgtype"], "m.text");
    assert!(body["body"]
        .as_str()
        .unwrap()
        .starts_with("[CRITICAL] Port 23/tcp open"));
}

#[tokio::test]
async fn mattermost_incoming_webhook() {
    let server = HttpServer::start(Reply::status(200).body("ok")).await;
    let d = destination(Channel::Mattermost, &server);
    notifier().send(&d, &notification()).await.unwrap();
    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/hook/SECRET-path");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let text = r.json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("**[CRITICAL] Port 23/tcp open on 203.0.113.7**\n"),
        "{text}"
    );
}

#[tokio::test]
async fn sms_through_twilio() {
    let server = HttpServer::start(
        Reply::status(201)
            .body(r#"{"sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued"}"#),
    )
    .await;
    let d = destination(Channel::Sms, &server);
    notifier().send(&d, &notification()).await.unwrap();
    let r = server.single_request();
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/2010-04-01/Accounts/AC123/Messages.json");
    // base64("AC123:SECRET-123:abc")
    assert_eq!(
        r.header("authorization"),
        Some("Basic QUMxMjM6U0VDUkVULTEyMzphYmM=")
    );
    let f = form(&r);
    assert_eq!(f["To"], "+14155550123");
    assert_eq!(f["From"], "+14155550100");
    assert_eq!(
        f["Body"],
        "Vigil [CRITICAL] Port 23/tcp open on 203.0.113.7 https://vigil.example/conditions/42"
    );
}

fn http_channels() -> impl Iterator<Item = Channel> {
    Channel::ALL
        .iter()
        .copied()
        .filter(|c| *c != Channel::Email)
}

/// 429 with Retry-After: transient, and the retry is scheduled no earlier
/// than the provider asked, whatever the backoff says.
#[tokio::test]
async fn rate_limits_are_honoured_by_every_channel() {
    for channel in http_channels() {
        for retry_after in ["120", "7"] {
            let server = HttpServer::start(
                Reply::status(429)
                    .header("retry-after", retry_after)
                    .body(r#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#),
            )
            .await;
            let d = destination(channel, &server);
            let err = notifier().send(&d, &notification()).await.unwrap_err();
            assert!(
                matches!(err, SendError::HttpStatus { status: 429, .. }),
                "{channel}: {err:?}"
            );
            assert!(err.is_transient(), "{channel}");
            let asked = Duration::from_secs(retry_after.parse().unwrap());
            assert_eq!(err.retry_after(), Some(asked), "{channel}");
            for attempt in 0..3 {
                let delay = retry_delay(&err, attempt, 99).unwrap();
                assert!(
                    delay >= asked,
                    "{channel}: retry in {delay:?} before {asked:?}"
                );
            }
            assert!(!err.to_string().contains("SECRET"), "{channel}: {err}");
            assert_eq!(server.requests().len(), 1, "{channel}");
        }
    }
}

/// Other 4xx answers (a revoked token, an unknown chat) are permanent: no
/// retry is scheduled; 5xx are retried.
#[tokio::test]
async fn client_errors_are_not_retried_server_errors_are() {
    for channel in http_channels() {
        for (status, transient) in [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (503, true),
        ] {
            let server =
                HttpServer::start(Reply::status(status).body(r#"{"message":"nope"}"#)).await;
            let d = destination(channel, &server);
            let err = notifier().send(&d, &notification()).await.unwrap_err();
            assert!(
                matches!(err, SendError::HttpStatus { status: s, .. } if s == status),
                "{channel}: {err:?}"
            );
            assert_eq!(err.is_transient(), transient, "{channel} {status}");
            assert_eq!(
                retry_delay(&err, 0, 1).is_some(),
                transient,
                "{channel} {status}"
            );
            assert!(!err.to_string().contains("SECRET"), "{channel}: {err}");
            assert_eq!(server.requests().len(), 1, "{channel}");
        }
    }
}
