//! [`Notifier`]: the configured channels, and the one entry point the outbox worker calls.

use crate::config::NotifierConfig;
use crate::destination::Destination;
use crate::error::{ConfigError, SendError};
use crate::notification::Notification;
use crate::registry::{Build, SinkContext};
use crate::sinks::email::SmtpSender;
use crate::sinks::http::HttpClient;
use crate::sinks::{Delivery, HttpSink, Sink};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// Sends notifications to destinations. Cheap to clone; share one per server.
#[derive(Clone)]
pub struct Notifier {
    ctx: Arc<SinkContext>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("email", &self.ctx.smtp.is_some())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Checks the configuration and builds the clients (no connection is made).
    pub fn new(config: &NotifierConfig) -> Result<Self, ConfigError> {
        let smtp = match &config.smtp {
            Some(c) => Some(Arc::new(SmtpSender::new(c)?)),
            None => None,
        };
        Ok(Notifier {
            ctx: Arc::new(SinkContext {
                smtp,
                http: HttpClient::new(&config.http)?,
            }),
        })
    }

    /// Whether the email channel is configured.
    pub fn email_enabled(&self) -> bool {
        self.ctx.smtp.is_some()
    }

    /// The sink for one destination, after validating it.
    pub fn sink<'a>(&'a self, destination: &Destination) -> Result<Box<dyn Sink + 'a>, SendError> {
        destination.validate()?;
        match destination.channel().spec().build {
            Build::Custom(build) => build(&self.ctx, destination),
            Build::Http(request) => Ok(Box::new(HttpSink {
                http: &self.ctx.http,
                destination: destination.clone(),
                request,
            })),
        }
    }

    /// Delivers `notification` to `destination` once. On error, retry later when
    /// [`SendError::is_transient`] (see [`crate::retry_delay`]), else give up.
    pub async fn send(
        &self,
        destination: &Destination,
        notification: &Notification,
    ) -> Result<Delivery, SendError> {
        let sink = self.sink(destination)?;
        let result = sink.send(notification).await;
        match &result {
            Ok(d) => tracing::debug!(
                destination = %destination.redacted(),
                event = %notification.event,
                response = %d.response,
                elapsed_ms = d.elapsed.as_millis() as u64,
                "notification delivered"
            ),
            Err(e) => tracing::debug!(
                destination = %destination.redacted(),
                event = %notification.event,
                transient = e.is_transient(),
                error = %e,
                "notification not delivered"
            ),
        }
        result
    }
}

/// The certificates in a PEM text; at least one.
pub(crate) fn parse_ca_pem(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::RootCa {
            what,
            reason: format!("not PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(ConfigError::RootCa {
            what,
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HttpConfig;

    fn assert_send_sync<T: Send + Sync>(_: &T) {}

    #[tokio::test]
    async fn permanent_errors_before_any_io() {
        let notifier = Notifier::new(&NotifierConfig::default()).unwrap();
        assert!(!notifier.email_enabled());
        let n = crate::render::tests::sample();
        let email = Destination::with_address(crate::Channel::Email, "ops@example.com");
        let fut = notifier.send(&email, &n);
        fn assert_send<T: Send>(_: &T) {}
        assert_send(&fut);
        let err = fut.await.unwrap_err();
        assert!(matches!(
            err,
            SendError::NotConfigured(crate::Channel::Email)
        ));
        assert!(err.is_permanent());
        let bad = Destination::with_address(crate::Channel::Slack, "gopher://x");
        let err = notifier.send(&bad, &n).await.unwrap_err();
        assert!(matches!(err, SendError::InvalidDestination(_)));
        assert!(err.is_permanent());
        assert_send_sync(&notifier);
    }

    #[test]
    fn http_config_errors() {
        let mut c = NotifierConfig::default();
        c.http.timeout = std::time::Duration::ZERO;
        assert!(matches!(
            Notifier::new(&c).err(),
            Some(ConfigError::ZeroTimeout { what: "HTTP" })
        ));
        let c = NotifierConfig {
            smtp: None,
            http: HttpConfig {
                extra_root_ca_pem: Some(
                    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                ),
                ..HttpConfig::default()
            },
        };
        assert!(matches!(
            Notifier::new(&c).err(),
            Some(ConfigError::RootCa { what: "HTTP", .. })
        ));
    }
}
