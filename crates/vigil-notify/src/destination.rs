//! Where a notification goes: one [`Destination`] per contact channel, as stored.

use lettre::Address;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The kind of channel, without its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Webhook,
    Slack,
    Teams,
    Discord,
    Ntfy,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
            Channel::Discord => "discord",
            Channel::Ntfy => "ntfy",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivery address of a contact, as stored (`{"type": "slack", "url": "..."}`).
///
/// Webhook URLs are secrets (whoever knows a Slack or Discord hook URL can post to
/// the channel), so `Debug` shows only their scheme and host; use
/// [`Destination::redacted`] in logs too.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Destination {
    /// A plain-text email to one address (`ops@example.com`).
    Email { to: String },
    /// A generic JSON POST of the [`Notification`](crate::Notification) itself.
    Webhook { url: String },
    /// A Slack incoming webhook (`{"text": ...}`); Mattermost and Rocket.Chat accept it too.
    Slack { url: String },
    /// A Microsoft Teams incoming webhook (MessageCard).
    Teams { url: String },
    /// A Discord webhook (`{"content": ...}`).
    Discord { url: String },
    /// An ntfy topic URL (`https://ntfy.sh/my-topic`); `token` is sent as a bearer
    /// token for servers with access control. User and password in the URL work too.
    Ntfy {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
}

/// Why a [`Destination`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("invalid email address {address:?}: {reason}")]
    InvalidEmail { address: String, reason: String },
    #[error("invalid {channel} URL {url}: {reason}")]
    InvalidUrl {
        channel: Channel,
        /// The URL's scheme and host only (the rest may be a secret).
        url: String,
        reason: String,
    },
    #[error("invalid ntfy access token: {0}")]
    InvalidToken(String),
}

impl Destination {
    pub fn channel(&self) -> Channel {
        match self {
            Destination::Email { .. } => Channel::Email,
            Destination::Webhook { .. } => Channel::Webhook,
            Destination::Slack { .. } => Channel::Slack,
            Destination::Teams { .. } => Channel::Teams,
            Destination::Discord { .. } => Channel::Discord,
            Destination::Ntfy { .. } => Channel::Ntfy,
        }
    }

    /// Checks the address; the error says what is wrong, for the console.
    pub fn validate(&self) -> Result<(), DestinationError> {
        match self {
            Destination::Email { to } => parse_email(to).map(drop),
            Destination::Ntfy { url, token } => {
                let parsed = parse_url(Channel::Ntfy, url)?;
                if parsed.path().trim_matches('/').is_empty() {
                    return Err(DestinationError::InvalidUrl {
                        channel: Channel::Ntfy,
                        url: redact_url(url),
                        reason: "no topic: the URL must name one, like https://ntfy.sh/my-topic"
                            .into(),
                    });
                }
                if let Some(t) = token {
                    validate_token(t)?;
                }
                Ok(())
            }
            Destination::Webhook { url }
            | Destination::Slack { url }
            | Destination::Teams { url }
            | Destination::Discord { url } => parse_url(self.channel(), url).map(drop),
        }
    }

    /// `channel address` with secrets left out, for logs: `slack https://hooks.slack.com/…`.
    pub fn redacted(&self) -> String {
        match self {
            Destination::Email { to } => format!("email {to}"),
            Destination::Webhook { url }
            | Destination::Slack { url }
            | Destination::Teams { url }
            | Destination::Discord { url }
            | Destination::Ntfy { url, .. } => format!("{} {}", self.channel(), redact_url(url)),
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Email { to } => f.debug_struct("Email").field("to", to).finish(),
            Destination::Ntfy { url, token } => f
                .debug_struct("Ntfy")
                .field("url", &redact_url(url))
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish(),
            Destination::Webhook { url }
            | Destination::Slack { url }
            | Destination::Teams { url }
            | Destination::Discord { url } => {
                let name = match self.channel() {
                    Channel::Webhook => "Webhook",
                    Channel::Slack => "Slack",
                    Channel::Teams => "Teams",
                    _ => "Discord",
                };
                f.debug_struct(name).field("url", &redact_url(url)).finish()
            }
        }
    }
}

pub(crate) fn parse_email(to: &str) -> Result<Address, DestinationError> {
    let err = |reason: &str| DestinationError::InvalidEmail {
        address: to.to_owned(),
        reason: reason.to_owned(),
    };
    if to.len() > 254 {
        return Err(err("longer than 254 characters"));
    }
    if to.trim() != to || to.chars().any(char::is_whitespace) {
        return Err(err("contains white space"));
    }
    if to.contains('<') || to.contains('>') {
        return Err(err(
            "give the bare address (user@example.com), without a name or <>",
        ));
    }
    Address::from_str(to).map_err(|e| err(&e.to_string()))
}

pub(crate) fn parse_url(channel: Channel, url: &str) -> Result<Url, DestinationError> {
    let err = |reason: String| DestinationError::InvalidUrl {
        channel,
        url: redact_url(url),
        reason,
    };
    if url.trim() != url || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("contains white space or control characters".into()));
    }
    let parsed = Url::parse(url).map_err(|e| err(format!("not a URL ({e})")))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => {
            return Err(err(format!(
                "the scheme must be http or https, not {other}"
            )))
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(err("no host".into()));
    }
    if parsed.fragment().is_some() {
        return Err(err("a #fragment is never sent; remove it".into()));
    }
    Ok(parsed)
}

fn validate_token(token: &str) -> Result<(), DestinationError> {
    if token.is_empty() {
        return Err(DestinationError::InvalidToken("empty".into()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DestinationError::InvalidToken(
            "only printable ASCII without spaces is allowed".into(),
        ));
    }
    Ok(())
}

/// `scheme://host[:port]/…`: a URL without its path, query and user info.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) if u.host_str().is_some() => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().trim_matches('/').is_empty() && u.query().is_none() {
                ""
            } else {
                "/…"
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        _ => "<unparsable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_reason(d: Destination) -> String {
        match d.validate() {
            Err(DestinationError::InvalidUrl { reason, .. }) => reason,
            other => panic!("expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn good_destinations_validate() {
        let ok = [
            Destination::Email {
                to: "ops@example.com".into(),
            },
            Destination::Email {
                to: "first.last+vigil@sub.example.co.uk".into(),
            },
            Destination::Webhook {
                url: "https://hooks.example.com/vigil?key=1".into(),
            },
            Destination::Slack {
                url: "https://hooks.slack.com/services/T0/B0/XXXX".into(),
            },
            Destination::Teams {
                url: "https://example.webhook.office.com/webhookb2/abc".into(),
            },
            Destination::Discord {
                url: "https://discord.com/api/webhooks/1/abc".into(),
            },
            Destination::Ntfy {
                url: "http://127.0.0.1:8080/alerts".into(),
                token: Some("tk_abc123".into()),
            },
        ];
        for d in ok {
            assert_eq!(d.validate(), Ok(()), "{d:?}");
        }
    }

    #[test]
    fn bad_emails_are_named() {
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "ops @example.com",
            " ops@example.com",
            "Ops <ops@example.com>",
            "ops@example.com\r\nBcc: x@example.com",
            "a@b@example.com",
        ] {
            let d = Destination::Email { to: bad.into() };
            match d.validate() {
                Err(DestinationError::InvalidEmail { address, .. }) => assert_eq!(address, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Destination::Email { to: long }.validate().is_err());
    }

    #[test]
    fn bad_urls_are_named() {
        assert!(url_reason(Destination::Slack {
            url: "ftp://example.com/x".into()
        })
        .contains("http or https, not ftp"));
        assert!(url_reason(Destination::Webhook {
            url: "example.com/hook".into()
        })
        .contains("not a URL"));
        assert!(url_reason(Destination::Discord {
            url: "https://discord.com/a b".into()
        })
        .contains("white space"));
        assert!(url_reason(Destination::Teams {
            url: "https://example.com/x#frag".into()
        })
        .contains("fragment"));
        assert!(url_reason(Destination::Ntfy {
            url: "https://ntfy.sh/".into(),
            token: None
        })
        .contains("topic"));
        assert!(url_reason(Destination::Webhook {
            url: "file:///etc/passwd".into()
        })
        .contains("not file"));
        let d = Destination::Ntfy {
            url: "https://ntfy.sh/t".into(),
            token: Some("tk abc".into()),
        };
        assert!(matches!(
            d.validate(),
            Err(DestinationError::InvalidToken(_))
        ));
    }

    #[test]
    fn serde_shape_is_tagged() {
        let d = Destination::Slack {
            url: "https://hooks.slack.com/services/T/B/X".into(),
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"})
        );
        let n: Destination =
            serde_json::from_str(r#"{"type":"ntfy","url":"https://ntfy.sh/x"}"#).unwrap();
        assert_eq!(
            n,
            Destination::Ntfy {
                url: "https://ntfy.sh/x".into(),
                token: None
            }
        );
        let e: Destination =
            serde_json::from_str(r#"{"type":"email","to":"a@b.example"}"#).unwrap();
        assert_eq!(e.channel(), Channel::Email);
    }

    #[test]
    fn secrets_stay_out_of_debug_and_logs() {
        let d = Destination::Discord {
            url: "https://discord.com/api/webhooks/123/SECRET".into(),
        };
        assert!(!format!("{d:?}").contains("SECRET"));
        assert_eq!(d.redacted(), "discord https://discord.com/…");
        let n = Destination::Ntfy {
            url: "https://user:pw@ntfy.example:8443/topic".into(),
            token: Some("tk_SECRET".into()),
        };
        let dbg = format!("{n:?}");
        assert!(!dbg.contains("SECRET") && !dbg.contains("pw"), "{dbg}");
        assert_eq!(
            redact_url("https://ntfy.example:8443/"),
            "https://ntfy.example:8443"
        );
        let err = Destination::Slack {
            url: "ftp://hooks.example/SECRET".into(),
        }
        .validate()
        .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}
