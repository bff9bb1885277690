//! Email against a real SMTP server (aiosmtpd).

use crate::support::{closed_port, notification, SmtpMode, SmtpServer, TestPki};
use std::time::{Duration, Instant};
use vigil_notify::{
    Channel, Destination, Notifier, NotifierConfig, SendError, Severity, SmtpConfig, SmtpSecurity,
};

const FROM: &str = "Vigil Alerts <vigil@example.com>";

fn smtp_config(port: u16, security: SmtpSecurity) -> SmtpConfig {
    SmtpConfig {
        port,
        timeout: Duration::from_secs(10),
        ..SmtpConfig::new("127.0.0.1", security, FROM)
    }
}

fn notifier(smtp: SmtpConfig) -> Notifier {
    Notifier::new(&NotifierConfig {
        smtp: Some(smtp),
        ..NotifierConfig::default()
    })
    .unwrap()
}

fn to(address: &str) -> Destination {
    Destination::with_address(Channel::Email, address)
}

#[tokio::test]
async fn plain_local_relay_delivers_the_rendered_message() {
    let Some(server) = SmtpServer::start(SmtpMode::Plain, None) else {
        return;
    };
    let notifier = notifier(smtp_config(server.port, SmtpSecurity::None));
    let n = notification();

    let delivery = notifier.send(&to("ops@example.com"), &n).await.unwrap();
    assert_eq!(delivery.channel, Channel::Email);
    assert!(
        delivery.response.starts_with("250 2.0.0 Ok: queued as"),
        "{delivery:?}"
    );

    let messages = server.wait_for_messages(1);
    let m = &messages[0];
    assert_eq!(m["mail_from"], "vigil@example.com");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["ops@example.com"]));
    assert_eq!(m["from"], FROM);
    assert_eq!(m["to"], "ops@example.com");
    assert_eq!(
        m["subject"],
        "[Vigil] CRITICAL: Port 23/tcp open on 203.0.113.7"
    );
    assert_eq!(m["tls"], false);
    assert_eq!(m["headers"]["Auto-Submitted"], "auto-generated");
    assert_eq!(m["headers"]["X-Vigil-Event"], "unauthorized_port_open");
    let body = m["body"].as_str().unwrap().replace("\r\n", "\n");
    assert_eq!(
        body.trim_end(),
        vigil_notify::render::email_body(&n).trim_end()
    );

    // Non-ASCII text survives the header and body encodings.
    let mut recovered = notification();
    recovered.severity = Severity::Recovery;
    recovered.title = "Port 23/tcp wieder geschlossen – Büro Zürich".into();
    recovered.details = "Alles in Ordnung: ✅ ".repeat(20);
    notifier
        .send(&to("ops@example.com"), &recovered)
        .await
        .unwrap();
    let messages = server.wait_for_messages(2);
    assert_eq!(
        messages[1]["subject"],
        "[Vigil] RECOVERED: Port 23/tcp wieder geschlossen – Büro Zürich"
    );
    assert!(messages[1]["body"]
        .as_str()
        .unwrap()
        .contains("Alles in Ordnung: ✅ Alles"));
    // Alert and recovery of one condition thread together.
    assert_eq!(
        messages[0]["headers"]["References"],
        messages[1]["headers"]["References"]
    );
}

#[tokio::test]
async fn starttls_with_private_ca_and_auth() {
    let pki = TestPki::new();
    let Some(server) = SmtpServer::start(SmtpMode::StartTls(&pki), Some(("vigil", "s3cret")))
    else {
        return;
    };
    let n = notification();
    let mut config = SmtpConfig {
        username: Some("vigil".into()),
        password: Some("s3cret".into()),
        extra_root_ca_pem: Some(pki.ca_pem.clone()),
        ..smtp_config(server.port, SmtpSecurity::StartTls)
    };

    notifier(config.clone())
        .send(&to("soc@example.com"), &n)
        .await
        .unwrap();
    let messages = server.wait_for_messages(1);
    assert_eq!(messages[0]["tls"], true, "message did not go over STARTTLS");
    assert_eq!(messages[0]["auth_user"], "vigil");
    assert_eq!(
        messages[0]["rcpt_tos"],
        serde_json::json!(["soc@example.com"])
    );

    // A wrong password is a permanent rejection (535).
    config.password = Some("wrong".into());
    let err = notifier(config.clone())
        .send(&to("soc@example.com"), &n)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::SmtpRejected { code: 535, .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());

    // Without the private CA the certificate is not trusted: permanent TLS error,
    // and nothing is sent (the password neither).
    config.password = Some("s3cret".into());
    config.extra_root_ca_pem = None;
    let err = notifier(config)
        .send(&to("soc@example.com"), &n)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Tls { .. }), "{err:?}");
    assert!(err.is_permanent());
    assert!(err.to_string().contains("certificate"), "{err}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn implicit_tls_with_private_ca() {
    let pki = TestPki::new();
    let Some(server) = SmtpServer::start(SmtpMode::ImplicitTls(&pki), None) else {
        return;
    };
    let config = SmtpConfig {
        extra_root_ca_pem: Some(pki.ca_pem.clone()),
        ..smtp_config(server.port, SmtpSecurity::Tls)
    };
    notifier(config)
        .send(&to("ops@example.com"), &notification())
        .await
        .unwrap();
    assert_eq!(server.wait_for_messages(1)[0]["tls"], true);
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_permanent() {
    let pki = TestPki::new();
    let Some(server) = SmtpServer::start(SmtpMode::Plain, None) else {
        return;
    };
    let config = SmtpConfig {
        extra_root_ca_pem: Some(pki.ca_pem.clone()),
        ..smtp_config(server.port, SmtpSecurity::StartTls)
    };
    let err = notifier(config)
        .send(&to("ops@example.com"), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Smtp {
                transient: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn recipient_rejections_by_reply_class() {
    let Some(server) = SmtpServer::start(SmtpMode::Plain, None) else {
        return;
    };
    let notifier = notifier(smtp_config(server.port, SmtpSecurity::None));
    let n = notification();

    let err = notifier
        .send(&to("reject-permanent@example.com"), &n)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::SmtpRejected { code: 550, .. }),
        "{err:?}"
    );
    assert!(err.is_permanent());
    assert!(err.to_string().contains("no such user"), "{err}");

    let err = notifier
        .send(&to("reject-transient@example.com"), &n)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SendError::SmtpRejected { code: 451, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn server_down_is_transient() {
    let notifier = notifier(smtp_config(closed_port(), SmtpSecurity::None));
    let err = notifier
        .send(&to("ops@example.com"), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn silent_server_times_out_transiently() {
    // Accepts the TCP connection but never sends the 220 greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let config = SmtpConfig {
        timeout: Duration::from_millis(500),
        ..smtp_config(port, SmtpSecurity::None)
    };
    let started = Instant::now();
    let err = notifier(config)
        .send(&to("ops@example.com"), &notification())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}
