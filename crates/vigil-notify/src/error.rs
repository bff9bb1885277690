//! Errors: [`SendError`] tells the outbox worker whether to retry.

use crate::destination::{Channel, DestinationError};
use std::error::Error as StdError;
use std::time::Duration;

/// Why a notification was not delivered.
///
/// [`SendError::is_transient`] decides between "reschedule with backoff" and
/// "give up and show the contact's address as broken". Endpoints in messages
/// are `host:port` or a URL's scheme and host only: hook paths are secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The stored address is unusable (permanent).
    #[error(transparent)]
    InvalidDestination(#[from] DestinationError),
    /// The channel needs server configuration that is missing, e.g. email without SMTP (permanent).
    #[error("the {0} channel is not configured on this server")]
    NotConfigured(Channel),
    /// The message could not be built (permanent).
    #[error("could not build the message: {0}")]
    Message(String),
    /// No connection could be made: refused, unreachable, name not resolved (transient).
    #[error("could not connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// No complete answer in time (transient).
    #[error("{endpoint} did not complete the delivery within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
    /// TLS failed: untrusted or mismatched certificate, no common protocol (permanent:
    /// it needs a configuration change, e.g. `extra_root_ca_pem`).
    #[error("TLS with {endpoint} failed: {reason}")]
    Tls { endpoint: String, reason: String },
    /// The SMTP server answered with a negative reply: 4xx transient, 5xx permanent.
    #[error("SMTP server {endpoint} replied {code}: {message}")]
    SmtpRejected {
        endpoint: String,
        code: u16,
        message: String,
    },
    /// The SMTP session failed otherwise: dropped connection, garbled reply
    /// (transient), or a missing capability such as STARTTLS or a usable AUTH
    /// mechanism (permanent).
    #[error("SMTP session with {endpoint} failed: {reason}")]
    Smtp {
        endpoint: String,
        reason: String,
        transient: bool,
    },
    /// The HTTP endpoint answered with a non-2xx status: 5xx, 408 and 429 transient,
    /// anything else permanent (redirects too: the stored URL needs updating).
    #[error("{endpoint} answered HTTP {status}{}", body_suffix(.body))]
    HttpStatus {
        endpoint: String,
        status: u16,
        /// The start of the response body, for the operator.
        body: String,
        /// The server's `Retry-After`, when it gave one in seconds.
        retry_after: Option<Duration>,
    },
    /// The operator's network policy refuses the address (permanent: the
    /// URL or the policy must change). The message names the rule.
    #[error("{endpoint}: {reason}")]
    Refused { endpoint: String, reason: String },
    /// The HTTP exchange failed after connecting (reset, malformed response) (transient).
    #[error("HTTP request to {endpoint} failed: {reason}")]
    Http { endpoint: String, reason: String },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl SendError {
    /// Whether trying again later may succeed (reschedule with [`crate::backoff`]);
    /// `false` means retrying cannot help until someone changes the configuration.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::InvalidDestination(_)
            | SendError::NotConfigured(_)
            | SendError::Message(_)
            | SendError::Tls { .. }
            | SendError::Refused { .. } => false,
            SendError::Connect { .. } | SendError::Timeout { .. } | SendError::Http { .. } => true,
            SendError::SmtpRejected { code, .. } => (400..500).contains(code),
            SendError::Smtp { transient, .. } => *transient,
            SendError::HttpStatus { status, .. } => http_status_is_transient(*status),
        }
    }

    /// `!is_transient()`.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// How long the server asked us to wait (HTTP `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::HttpStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// 5xx, 408 Request Timeout and 429 Too Many Requests are worth retrying.
pub fn http_status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Why a [`Notifier`](crate::Notifier) could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("SMTP host is empty")]
    SmtpHostEmpty,
    #[error("SMTP sender {from:?} is not a valid address: {reason}")]
    SmtpFrom { from: String, reason: String },
    #[error(
        "SMTP security \"none\" sends mail and passwords in clear text; it is only allowed \
         for a relay on this machine (localhost, 127.0.0.1, ::1), not {host:?}: use starttls or tls"
    )]
    SmtpPlaintextNotLocal { host: String },
    #[error("SMTP username and password must be given together")]
    SmtpCredentialsIncomplete,
    #[error("{what} timeout must be more than zero")]
    ZeroTimeout { what: &'static str },
    #[error("extra root CA for {what}: {reason}")]
    RootCa { what: &'static str, reason: String },
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

/// The `rustls::Error` somewhere in an error's chain, looking inside `io::Error`s
/// (whose `source()` skips the error they wrap).
pub(crate) fn find_rustls_error<'a>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(found) = find_rustls_error(inner) {
                    return Some(found);
                }
            }
        }
        cur = e.source();
    }
    None
}

/// An error and its sources, `: `-joined, skipping a source already quoted by its parent.
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> SendError {
        SendError::HttpStatus {
            endpoint: "https://hooks.example".into(),
            status,
            body: String::new(),
            retry_after: None,
        }
    }

    fn smtp(code: u16) -> SendError {
        SendError::SmtpRejected {
            endpoint: "mail.example:587".into(),
            code,
            message: "x".into(),
        }
    }

    #[test]
    fn classification() {
        for s in [500, 502, 503, 504, 599, 408, 429] {
            assert!(status(s).is_transient(), "{s}");
        }
        for s in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(status(s).is_permanent(), "{s}");
        }
        for c in [421, 450, 451, 452] {
            assert!(smtp(c).is_transient(), "{c}");
        }
        for c in [530, 535, 550, 553, 554] {
            assert!(smtp(c).is_permanent(), "{c}");
        }
        assert!(SendError::Connect {
            endpoint: "x".into(),
            reason: "refused".into()
        }
        .is_transient());
        assert!(SendError::Timeout {
            endpoint: "x".into(),
            timeout: Duration::from_secs(1)
        }
        .is_transient());
        assert!(SendError::Tls {
            endpoint: "x".into(),
            reason: "unknown issuer".into()
        }
        .is_permanent());
        assert!(SendError::NotConfigured(Channel::Email).is_permanent());
        assert!(
            SendError::InvalidDestination(DestinationError::UnknownChannel("x".into()))
                .is_permanent()
        );
    }

    #[test]
    fn messages_read_well() {
        let e = SendError::HttpStatus {
            endpoint: "https://hooks.slack.com/…".into(),
            status: 404,
            body: "no_team".into(),
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "https://hooks.slack.com/… answered HTTP 404: no_team"
        );
        assert_eq!(
            status(503).to_string(),
            "https://hooks.example answered HTTP 503"
        );
    }

    #[test]
    fn finds_rustls_error_inside_io_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        #[derive(Debug, thiserror::Error)]
        #[error("connect failed")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(io);
        assert!(matches!(
            find_rustls_error(&outer),
            Some(rustls::Error::InvalidCertificate(_))
        ));
        assert!(chain_text(&outer).starts_with("connect failed: "));
    }
}
