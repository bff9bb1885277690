//! Server-side configuration of the channels: the SMTP relay and the HTTP client.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which is required (submission, port 587).
    #[serde(rename = "starttls", alias = "start_tls")]
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    #[serde(rename = "tls")]
    Tls,
    /// No encryption: only for a relay on this machine (localhost, 127.0.0.1, ::1).
    #[serde(rename = "none")]
    None,
}

impl SmtpSecurity {
    /// 587, 465 or 25.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// The SMTP relay that sends Vigil's email.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The sender: `vigil@example.com` or `Vigil <vigil@example.com>`.
    pub from: String,
    /// PEM certificate(s) to trust besides the public roots, for a relay whose
    /// certificate comes from a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_root_ca_pem: Option<String>,
    /// The limit for one whole delivery (connect, TLS, AUTH, the message), in seconds.
    #[serde(default = "default_smtp_timeout", with = "duration_secs")]
    pub timeout: Duration,
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SmtpConfig {
    /// A relay with the port matching `security`, no credentials, a 30 s timeout.
    pub fn new(host: impl Into<String>, security: SmtpSecurity, from: impl Into<String>) -> Self {
        SmtpConfig {
            host: host.into(),
            port: security.default_port(),
            security,
            username: None,
            password: None,
            from: from.into(),
            extra_root_ca_pem: None,
            timeout: default_smtp_timeout(),
        }
    }

    /// `host:port`, as errors name the relay.
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("extra_root_ca_pem", &self.extra_root_ca_pem.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The HTTP client used by the webhook channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// The limit for one whole request (connect, TLS, sending, the response), in seconds.
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
    pub user_agent: String,
    /// PEM certificate(s) to trust besides the public roots (self-hosted ntfy or
    /// webhook receivers behind a private CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_root_ca_pem: Option<String>,
    /// The operator's network policy: the addresses webhook URLs may reach
    /// (checked on every connection). Default: no loopback, link-local,
    /// metadata or private addresses.
    #[serde(skip)]
    pub policy: std::sync::Arc<vigil_core::netpolicy::NetPolicy>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(10),
            user_agent: concat!("vigil/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_root_ca_pem: None,
            policy: Default::default(),
        }
    }
}

/// Everything a [`Notifier`](crate::Notifier) needs. Email is off without `smtp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifierConfig {
    pub smtp: Option<SmtpConfig>,
    pub http: HttpConfig,
}

/// Whether `host` names this machine: `localhost` or a loopback address.
pub(crate) fn is_local_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `Duration` as (possibly fractional) seconds.
mod duration_secs {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_nanos() == 0 {
            s.serialize_u64(d.as_secs())
        } else {
            s.serialize_f64(d.as_secs_f64())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_local_host(h), "{h}");
        }
        for h in [
            "mail.example.com",
            "10.0.0.1",
            "localhost.example.com",
            "0.0.0.0",
        ] {
            assert!(!is_local_host(h), "{h}");
        }
    }

    #[test]
    fn smtp_config_serde_and_debug() {
        let c: SmtpConfig = serde_json::from_str(
            r#"{"host":"mail.example.com","port":587,"security":"starttls",
                "username":"vigil","password":"hunter2","from":"Vigil <vigil@example.com>"}"#,
        )
        .unwrap();
        assert_eq!(c.security, SmtpSecurity::StartTls);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(!format!("{c:?}").contains("hunter2"));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["security"], "starttls");
        assert_eq!(v["timeout"], 30);
        let h: HttpConfig = serde_json::from_str(r#"{"timeout":2.5}"#).unwrap();
        assert_eq!(h.timeout, Duration::from_millis(2500));
        assert!(h.user_agent.starts_with("vigil/"));
        assert_eq!(SmtpConfig::new("m", SmtpSecurity::Tls, "a@b.c").port, 465);
        assert_eq!(
            SmtpConfig::new("::1", SmtpSecurity::None, "a@b.c").endpoint(),
            "[::1]:25"
        );
    }
}
