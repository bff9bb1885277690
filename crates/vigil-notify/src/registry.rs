//! What a channel is, described once: its name, label, fields and how to
//! build its sink. The list of channels is the `channels!` invocation in
//! [`crate::sinks`]; validation, the stored form, the API, the console form
//! and the CLI all follow from these descriptions.

use crate::destination::{Destination, DestinationError};
use crate::error::SendError;
use crate::notification::Notification;
use crate::sinks::email::SmtpSender;
use crate::sinks::http::{HttpClient, HttpRequest};
pub use crate::sinks::Channel;
use crate::sinks::Sink;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// What a field holds, which decides how it is checked and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// An email address.
    Email,
    /// An `http(s)://` URL that is no secret (a server's base URL): shown to everyone
    /// as scheme and host, in full to those who may change the contact.
    Url,
    /// An `http(s)://` URL that is itself the credential (Slack, Teams, Discord hooks):
    /// shown like [`FieldKind::Url`].
    SecretUrl,
    /// A token or key: printable ASCII without spaces; never shown back.
    Secret,
    /// Free text on one line (an id, a room, a user key).
    Text,
    /// A phone number in E.164 form (`+14155550123`).
    Phone,
}

impl FieldKind {
    /// The wire name (`url`, `secret`, ...), as the API and OpenAPI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Email => "email",
            FieldKind::Url => "url",
            FieldKind::SecretUrl => "secret_url",
            FieldKind::Secret => "secret",
            FieldKind::Text => "text",
            FieldKind::Phone => "phone",
        }
    }

    /// Whether the value is a URL (checked against the network policy).
    pub fn is_url(self) -> bool {
        matches!(self, FieldKind::Url | FieldKind::SecretUrl)
    }

    /// Whether the value must never come back out of the API.
    pub fn is_secret(self) -> bool {
        matches!(self, FieldKind::Secret)
    }
}

/// One field of a channel's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The key in the stored JSON and the API (`bot_token`).
    pub name: &'static str,
    /// For people (`Bot token`).
    pub label: &'static str,
    pub kind: FieldKind,
    pub required: bool,
    /// Used when the field is not given (a provider's public API URL).
    pub default: Option<&'static str>,
    /// One sentence: where to find the value.
    pub help: &'static str,
}

impl FieldSpec {
    pub const fn new(
        name: &'static str,
        label: &'static str,
        kind: FieldKind,
        help: &'static str,
    ) -> FieldSpec {
        FieldSpec {
            name,
            label,
            kind,
            required: true,
            default: None,
            help,
        }
    }

    /// Optional, with no default.
    pub const fn optional(mut self) -> FieldSpec {
        self.required = false;
        self
    }

    /// A base URL the contact may override (self-hosted servers, tests).
    pub const fn base_url(default: &'static str, help: &'static str) -> FieldSpec {
        FieldSpec {
            name: "base_url",
            label: "API base URL",
            kind: FieldKind::Url,
            required: false,
            default: Some(default),
            help,
        }
    }
}

/// Renders one notification as the provider's HTTP request.
pub type RequestFn = fn(&Destination, &Notification) -> Result<HttpRequest, SendError>;

/// Checks beyond each field's kind.
pub type CheckFn = fn(&Destination) -> Result<(), DestinationError>;

/// Builds a sink that is not a single HTTP request (email).
pub type CustomFn =
    for<'a> fn(&'a SinkContext, &Destination) -> Result<Box<dyn Sink + 'a>, SendError>;

/// How a channel delivers.
#[derive(Clone, Copy)]
pub enum Build {
    /// One HTTP request through the shared, policy-checked client.
    Http(RequestFn),
    Custom(CustomFn),
}

/// Everything about one channel but its name (the module's name, see `channels!`).
#[derive(Clone, Copy)]
pub struct ChannelSpec {
    /// For people (`Microsoft Teams`).
    pub label: &'static str,
    /// The fields; the first is the contact's "address" (what lists show).
    pub fields: &'static [FieldSpec],
    /// Checks beyond each field's kind (an ntfy URL names a topic, ...).
    pub check: Option<CheckFn>,
    pub build: Build,
}

impl fmt::Debug for ChannelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSpec")
            .field("label", &self.label)
            .field("fields", &self.fields)
            .finish_non_exhaustive()
    }
}

impl ChannelSpec {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field a one-line "address" stands for.
    pub fn primary(&self) -> &'static FieldSpec {
        &self.fields[0]
    }
}

/// The clients sinks are built on.
pub struct SinkContext {
    pub(crate) smtp: Option<Arc<SmtpSender>>,
    pub(crate) http: HttpClient,
}

impl Channel {
    pub fn label(self) -> &'static str {
        self.spec().label
    }

    pub fn fields(self) -> &'static [FieldSpec] {
        self.spec().fields
    }

    /// The channel names, `, `-joined (for error messages).
    pub fn names() -> String {
        Channel::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = DestinationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| DestinationError::UnknownChannel(s.to_owned()))
    }
}

impl Serialize for Channel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The registry as JSON, for the API document and clients:
/// `[{"name", "label", "fields": [{"name", "label", "kind", "required", "default", "help"}]}]`.
pub fn registry_json() -> serde_json::Value {
    Channel::ALL
        .iter()
        .map(|c| {
            let fields: Vec<serde_json::Value> = c
                .fields()
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "name": f.name,
                        "label": f.label,
                        "kind": f.kind.as_str(),
                        "required": f.required,
                        "default": f.default,
                        "help": f.help,
                    })
                })
                .collect();
            serde_json::json!({"name": c.as_str(), "label": c.label(), "fields": fields})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_channel_is_described() {
        let mut names = HashSet::new();
        for c in Channel::ALL {
            assert!(names.insert(c.as_str()), "{c} twice");
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            let spec = c.spec();
            assert!(!spec.label.is_empty(), "{c}");
            assert!(!spec.fields.is_empty(), "{c} has no fields");
            assert!(spec.primary().required, "{c}: the address is required");
            let mut fields = HashSet::new();
            for f in spec.fields {
                assert!(fields.insert(f.name), "{c}.{} twice", f.name);
                assert!(
                    f.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{c}.{}",
                    f.name
                );
                assert!(!f.label.is_empty() && !f.help.is_empty(), "{c}.{}", f.name);
                assert!(
                    !f.label.to_ascii_lowercase().contains("address")
                        && !f.label.to_ascii_lowercase().contains("channel"),
                    "{c}.{}: the console labels Address and Channel itself",
                    f.name
                );
                if let Some(d) = f.default {
                    assert!(!f.required, "{c}.{}: a default makes it optional", f.name);
                    assert!(f.kind.is_url(), "{c}.{}", f.name);
                    assert!(d.starts_with("https://"), "{c}.{}: {d}", f.name);
                }
            }
        }
        assert!(Channel::ALL.len() >= 14);
        assert!(matches!(
            "pager".parse::<Channel>(),
            Err(DestinationError::UnknownChannel(_))
        ));
        let json = registry_json();
        assert_eq!(json.as_array().unwrap().len(), Channel::ALL.len());
        assert_eq!(json[0]["name"], "email");
    }

    /// Every channel builds a sink from a destination with its required
    /// fields, and refuses one without them with an error naming the field.
    #[tokio::test]
    async fn every_channel_has_a_sink() {
        let config = crate::NotifierConfig {
            smtp: Some(crate::SmtpConfig::new(
                "localhost",
                crate::SmtpSecurity::None,
                "vigil@example.com",
            )),
            ..Default::default()
        };
        let notifier = crate::Notifier::new(&config).unwrap();
        for c in Channel::ALL {
            let d = crate::destination::tests::example(*c);
            assert_eq!(d.validate(), Ok(()), "{c}: {d:?}");
            let sink = notifier.sink(&d).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(sink.channel(), *c);
            for f in c.fields().iter().filter(|f| f.required) {
                let mut missing = d.clone();
                missing.remove(f.name);
                let err = missing.validate().unwrap_err();
                assert!(
                    matches!(&err, DestinationError::MissingField { field, .. } if *field == f.name),
                    "{c}.{}: {err:?}",
                    f.name
                );
                assert!(err.to_string().contains(f.label), "{err}");
            }
            let mut extra = d.clone();
            extra.insert("colour", "red");
            let err = extra.validate().unwrap_err();
            assert!(err.to_string().contains("colour"), "{err}");
        }
    }
}
