//! Email over SMTP (lettre, rustls): a plain-text message to one address.

use crate::config::{is_local_host, SmtpConfig, SmtpSecurity};
use crate::destination::{parse_email, Channel, Destination};
use crate::error::{chain_text, find_rustls_error, ConfigError, SendError};
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec, SinkContext};
use crate::render;
use crate::sinks::{Delivery, SendFuture, Sink};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::error::Error as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Email",
    fields: &[FieldSpec::new(
        "to",
        "Email recipient",
        FieldKind::Email,
        "One address (ops@example.com); the server's SMTP relay sends the mail.",
    )],
    check: None,
    build: Build::Custom(build),
};

fn build<'a>(ctx: &'a SinkContext, d: &Destination) -> Result<Box<dyn Sink + 'a>, SendError> {
    let smtp = ctx
        .smtp
        .as_deref()
        .ok_or(SendError::NotConfigured(Channel::Email))?;
    Ok(Box::new(EmailSink {
        smtp,
        to: parse_email(d.require("to")?)?,
    }))
}

/// The configured relay: one connection per message (no pool), so a relay
/// restart never leaves a stale connection behind.
pub(crate) struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    endpoint: String,
    timeout: Duration,
}

impl SmtpSender {
    pub(crate) fn new(config: &SmtpConfig) -> Result<Self, ConfigError> {
        let host = config.host.trim();
        if host.is_empty() {
            return Err(ConfigError::SmtpHostEmpty);
        }
        if config.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout { what: "SMTP" });
        }
        let from = Mailbox::from_str(config.from.trim()).map_err(|e| ConfigError::SmtpFrom {
            from: config.from.clone(),
            reason: e.to_string(),
        })?;
        let tls_parameters = || -> Result<TlsParameters, ConfigError> {
            let domain = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let mut builder = TlsParameters::builder(domain);
            if let Some(pem) = &config.extra_root_ca_pem {
                for der in crate::notifier::parse_ca_pem("SMTP", pem)? {
                    let cert = Certificate::from_der(der.as_ref().to_vec()).map_err(|e| {
                        ConfigError::RootCa {
                            what: "SMTP",
                            reason: e.to_string(),
                        }
                    })?;
                    builder = builder.add_root_certificate(cert);
                }
            }
            builder.build_rustls().map_err(|e| ConfigError::RootCa {
                what: "SMTP",
                reason: chain_text(&e),
            })
        };
        let tls = match config.security {
            SmtpSecurity::StartTls => Tls::Required(tls_parameters()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpSecurity::None => {
                if !is_local_host(host) {
                    return Err(ConfigError::SmtpPlaintextNotLocal {
                        host: host.to_owned(),
                    });
                }
                Tls::None
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            host.trim_start_matches('[').trim_end_matches(']'),
        )
        .port(config.port)
        .tls(tls)
        .timeout(Some(config.timeout));
        match (&config.username, &config.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
            }
            (None, None) => {}
            _ => return Err(ConfigError::SmtpCredentialsIncomplete),
        }
        Ok(SmtpSender {
            transport: builder.build(),
            from,
            endpoint: config.endpoint(),
            timeout: config.timeout,
        })
    }

    async fn send(&self, to: &Address, n: &Notification) -> Result<Delivery, SendError> {
        let started = Instant::now();
        let message = build_message(&self.from, to, n)?;
        let result = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        match result {
            Err(_) => Err(SendError::Timeout {
                endpoint: self.endpoint.clone(),
                timeout: self.timeout,
            }),
            Ok(Err(e)) => Err(classify_smtp(&e, &self.endpoint, self.timeout)),
            Ok(Ok(response)) => Ok(Delivery {
                channel: Channel::Email,
                response: format!(
                    "{} {}",
                    u16::from(response.code()),
                    response.message().collect::<Vec<_>>().join(" ")
                )
                .trim_end()
                .to_owned(),
                elapsed: started.elapsed(),
            }),
        }
    }
}

/// The message for `to`: plain text, marked as automatic, threaded by dedupe key.
pub(crate) fn build_message(
    from: &Mailbox,
    to: &Address,
    n: &Notification,
) -> Result<Message, SendError> {
    let raw = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
    // Alert and recovery of one condition share a References id, so mail
    // clients show them as one thread.
    let thread = format!("<{:016x}.condition@vigil.invalid>", fnv1a64(&n.dedupe_key));
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to.clone()))
        .subject(render::email_subject(n))
        // A retried delivery keeps its Message-ID, so a mail system that saw
        // it already can drop the copy.
        .message_id(n.delivery_id.as_deref().map(delivery_message_id))
        .raw_header(raw("References", thread))
        // RFC 3834: keeps vacation auto-replies away from the sender.
        .raw_header(raw("Auto-Submitted", "auto-generated".into()))
        .raw_header(raw("X-Vigil-Event", n.event.as_str().into()))
        .raw_header(raw("X-Vigil-Severity", n.severity.as_str().into()))
        .header(ContentType::TEXT_PLAIN)
        .body(render::email_body(n))
        .map_err(|e| SendError::Message(e.to_string()))
}

/// `<delivery-id.delivery@vigil.invalid>`; a delivery id with characters a
/// Message-ID cannot hold is hashed.
fn delivery_message_id(id: &str) -> String {
    let safe = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        format!("<{id}.delivery@vigil.invalid>")
    } else {
        format!("<{:016x}.delivery@vigil.invalid>", fnv1a64(id))
    }
}

pub(crate) fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn classify_smtp(
    e: &lettre::transport::smtp::Error,
    endpoint: &str,
    timeout: Duration,
) -> SendError {
    let endpoint = endpoint.to_owned();
    if let Some(code) = e.status() {
        return SendError::SmtpRejected {
            endpoint,
            code: code.into(),
            message: e.source().map(|s| s.to_string()).unwrap_or_default(),
        };
    }
    if e.is_timeout() {
        return SendError::Timeout { endpoint, timeout };
    }
    if let Some(tls) = find_rustls_error(e) {
        return SendError::Tls {
            endpoint,
            reason: tls.to_string(),
        };
    }
    if e.is_tls() {
        return SendError::Tls {
            endpoint,
            reason: chain_text(e),
        };
    }
    let reason = chain_text(e);
    if e.is_client() {
        // No STARTTLS offered, no usable AUTH mechanism: the relay or the config must change.
        return SendError::Smtp {
            endpoint,
            reason,
            transient: false,
        };
    }
    // lettre has no accessor for its connection errors; they are the ones it
    // displays as "Connection error". Either way the error is transient.
    if reason.starts_with("Connection error") {
        return SendError::Connect { endpoint, reason };
    }
    SendError::Smtp {
        endpoint,
        reason,
        transient: true,
    }
}

/// Email to one address.
pub struct EmailSink<'a> {
    pub(crate) smtp: &'a SmtpSender,
    pub(crate) to: Address,
}

impl Sink for EmailSink<'_> {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(self.smtp.send(&self.to, notification))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, security: SmtpSecurity) -> SmtpConfig {
        SmtpConfig::new(host, security, "Vigil <vigil@example.com>")
    }

    #[test]
    fn plaintext_only_to_a_local_relay() {
        assert!(SmtpSender::new(&config("127.0.0.1", SmtpSecurity::None)).is_ok());
        assert!(SmtpSender::new(&config("localhost", SmtpSecurity::None)).is_ok());
        assert_eq!(
            SmtpSender::new(&config("mail.example.com", SmtpSecurity::None)).err(),
            Some(ConfigError::SmtpPlaintextNotLocal {
                host: "mail.example.com".into()
            })
        );
        assert!(SmtpSender::new(&config("mail.example.com", SmtpSecurity::StartTls)).is_ok());
        assert!(SmtpSender::new(&config("mail.example.com", SmtpSecurity::Tls)).is_ok());
    }

    #[test]
    fn config_errors() {
        let mut c = config("mail.example.com", SmtpSecurity::StartTls);
        c.from = "not an address".into();
        assert!(matches!(
            SmtpSender::new(&c).err(),
            Some(ConfigError::SmtpFrom { .. })
        ));
        let mut c = config("mail.example.com", SmtpSecurity::StartTls);
        c.username = Some("u".into());
        assert_eq!(
            SmtpSender::new(&c).err(),
            Some(ConfigError::SmtpCredentialsIncomplete)
        );
        let mut c = config("mail.example.com", SmtpSecurity::StartTls);
        c.extra_root_ca_pem = Some("not a certificate".into());
        assert!(matches!(
            SmtpSender::new(&c).err(),
            Some(ConfigError::RootCa { .. })
        ));
        let mut c = config(" ", SmtpSecurity::StartTls);
        assert_eq!(SmtpSender::new(&c).err(), Some(ConfigError::SmtpHostEmpty));
        c.host = "mail.example.com".into();
        c.timeout = Duration::ZERO;
        assert!(matches!(
            SmtpSender::new(&c).err(),
            Some(ConfigError::ZeroTimeout { .. })
        ));
    }

    #[test]
    fn message_headers() {
        let n = crate::render::tests::sample();
        let from = Mailbox::from_str("Vigil <vigil@example.com>").unwrap();
        let to = Address::from_str("ops@example.com").unwrap();
        let raw = String::from_utf8(build_message(&from, &to, &n).unwrap().formatted()).unwrap();
        assert!(raw.contains("From: Vigil <vigil@example.com>\r\n"), "{raw}");
        assert!(raw.contains("To: ops@example.com\r\n"));
        assert!(raw.contains("Subject: [Vigil] CRITICAL: Port 23/tcp open on 203.0.113.7\r\n"));
        assert!(raw.contains("Auto-Submitted: auto-generated\r\n"));
        assert!(raw.contains("X-Vigil-Event: unauthorized_port_open\r\n"));
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        let thread = format!(
            "References: <{:016x}.condition@vigil.invalid>\r\n",
            fnv1a64(&n.dedupe_key)
        );
        assert!(raw.contains(&thread));
        assert!(raw.contains("Message-ID: <"));
        assert!(raw.contains("\r\nEvent:     Unauthorized port open"));
        // A delivery keeps its Message-ID on every attempt.
        let mut n = n;
        n.delivery_id = Some("0b9e7d52-5f4a-4c1e-9a57-2f1d3c4b5a69".into());
        let ids: Vec<String> = (0..2)
            .map(|_| String::from_utf8(build_message(&from, &to, &n).unwrap().formatted()).unwrap())
            .map(|raw| {
                raw.lines()
                    .find(|l| l.starts_with("Message-ID:"))
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            ids[0],
            "Message-ID: <0b9e7d52-5f4a-4c1e-9a57-2f1d3c4b5a69.delivery@vigil.invalid>"
        );
        assert_eq!(ids[0], ids[1]);
        assert_eq!(
            delivery_message_id("a b>"),
            format!("<{:016x}.delivery@vigil.invalid>", fnv1a64("a b>"))
        );
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
