//! Where a notification goes: one [`Destination`] per contact, as stored.
//!
//! A destination is a channel and its fields (`{"type": "slack", "url": "..."}`);
//! which fields a channel has, and how each is checked, comes from the
//! channel's description in [`crate::registry`].

pub use crate::registry::Channel;
use crate::registry::{FieldKind, FieldSpec};
use lettre::Address;
use reqwest::Url;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The longest value of one field, in bytes.
pub const MAX_FIELD_LEN: usize = 2048;

/// One delivery address of a contact: its channel and fields
/// (`{"type": "ntfy", "url": "https://ntfy.sh/x", "token": "..."}` as JSON).
///
/// Tokens and hook URLs are secrets, so `Debug` shows URLs as scheme and
/// host and leaves secrets out; use [`Destination::redacted`] in logs too.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    #[serde(rename = "type")]
    channel: Channel,
    #[serde(flatten)]
    fields: BTreeMap<String, String>,
}

/// Why a [`Destination`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("unknown channel {0:?}: use one of {names}", names = Channel::names())]
    UnknownChannel(String),
    #[error("invalid email address {address:?}: {reason}")]
    InvalidEmail { address: String, reason: String },
    #[error("invalid {channel} URL {url}: {reason}")]
    InvalidUrl {
        channel: Channel,
        /// The URL's scheme and host only (the rest may be a secret).
        url: String,
        reason: String,
    },
    #[error("{channel} needs {label} ({field})")]
    MissingField {
        channel: Channel,
        field: &'static str,
        label: &'static str,
    },
    #[error("invalid {channel} {label}: {reason}")]
    InvalidField {
        channel: Channel,
        label: &'static str,
        reason: String,
    },
    #[error("{channel} has no field {field:?}: its fields are {known}")]
    UnknownField {
        channel: Channel,
        field: String,
        known: String,
    },
    #[error("the stored {channel} address is not readable")]
    Unreadable { channel: Channel },
}

impl Destination {
    /// A destination with `fields` (trimmed; empty ones left out), unchecked:
    /// see [`Destination::validate`].
    pub fn new<K: Into<String>, V: AsRef<str>>(
        channel: Channel,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Destination {
        let mut d = Destination {
            channel,
            fields: BTreeMap::new(),
        };
        for (k, v) in fields {
            d.insert(k, v.as_ref());
        }
        d
    }

    /// A destination given by its one address (an email address, a hook URL).
    pub fn with_address(channel: Channel, address: &str) -> Destination {
        Destination::new(channel, [(channel.spec().primary().name, address)])
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The fields as given (without defaults).
    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }

    /// Sets a field (trimmed); an empty value removes it.
    pub fn insert(&mut self, name: impl Into<String>, value: &str) {
        let name = name.into();
        let value = value.trim();
        if value.is_empty() {
            self.fields.remove(&name);
        } else {
            self.fields.insert(name, value.to_owned());
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.fields.remove(name)
    }

    /// A field's value, or its default.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .or_else(|| self.channel.spec().field(name).and_then(|f| f.default))
    }

    /// A field the channel requires (present once validated).
    pub(crate) fn require(&self, name: &'static str) -> Result<&str, DestinationError> {
        self.get(name).ok_or(DestinationError::MissingField {
            channel: self.channel,
            field: name,
            label: self.channel.spec().field(name).map_or(name, |f| f.label),
        })
    }

    /// A URL field, parsed (validated before).
    pub(crate) fn url(&self, name: &'static str) -> Result<Url, DestinationError> {
        parse_url(self.channel, self.require(name)?)
    }

    /// The one-line address: the first field's value.
    pub fn address(&self) -> Option<&str> {
        self.get(self.channel.spec().primary().name)
    }

    /// Checks every field against the channel's description; the error
    /// names the field and what is wrong, for the console.
    pub fn validate(&self) -> Result<(), DestinationError> {
        let spec = self.channel.spec();
        if let Some(name) = self.fields.keys().find(|k| spec.field(k).is_none()) {
            return Err(DestinationError::UnknownField {
                channel: self.channel,
                field: name.clone(),
                known: spec
                    .fields
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        for f in spec.fields {
            match self.get(f.name) {
                Some(v) => check_field(self.channel, f, v)?,
                None if f.required => {
                    return Err(DestinationError::MissingField {
                        channel: self.channel,
                        field: f.name,
                        label: f.label,
                    })
                }
                None => {}
            }
        }
        match spec.check {
            Some(check) => check(self),
            None => Ok(()),
        }
    }

    /// `channel address` with secrets left out, for logs: `slack https://hooks.slack.com/…`.
    pub fn redacted(&self) -> String {
        let spec = self.channel.spec();
        match self.address() {
            Some(a) => format!("{} {}", self.channel, shown(spec.primary(), a, false)),
            None => self.channel.to_string(),
        }
    }

    /// The form kept in a contact's `address` column: the bare address when
    /// the first field is the only one (as every contact was stored before
    /// channels had several fields), else a JSON object of the fields.
    pub fn to_address(&self) -> String {
        let primary = self.channel.spec().primary().name;
        match (self.fields.len(), self.fields.get(primary)) {
            (1, Some(v)) => v.clone(),
            _ => serde_json::to_string(&self.fields).unwrap_or_default(),
        }
    }

    /// Reads [`Destination::to_address`]'s form back (unchecked).
    pub fn from_address(channel: Channel, stored: &str) -> Result<Destination, DestinationError> {
        if stored.trim_start().starts_with('{') {
            let fields: BTreeMap<String, String> = serde_json::from_str(stored)
                .map_err(|_| DestinationError::Unreadable { channel })?;
            Ok(Destination::new(channel, fields))
        } else {
            Ok(Destination::with_address(channel, stored))
        }
    }

    /// The fields a user may see: secrets left out; URLs as scheme and
    /// host unless `in_full` (for those who may change the contact).
    pub fn shown_fields(&self, in_full: bool) -> BTreeMap<String, String> {
        let spec = self.channel.spec();
        self.fields
            .iter()
            .filter_map(|(k, v)| {
                let f = spec.field(k)?;
                (!f.kind.is_secret()).then(|| (k.clone(), shown(f, v, in_full)))
            })
            .collect()
    }

    /// The names of the secret fields that are set (their values are never shown).
    pub fn secrets_set(&self) -> Vec<String> {
        let spec = self.channel.spec();
        self.fields
            .keys()
            .filter(|k| spec.field(k).is_some_and(|f| f.kind.is_secret()))
            .cloned()
            .collect()
    }

    /// The address as a user may see it (see [`Destination::shown_fields`]);
    /// empty when it is a secret (a PagerDuty routing key), so that what is
    /// shown can be sent back unchanged.
    pub fn shown_address(&self, in_full: bool) -> String {
        let primary = self.channel.spec().primary();
        match self.address() {
            Some(a) if !primary.kind.is_secret() => shown(primary, a, in_full),
            _ => String::new(),
        }
    }

    /// Secret fields of `stored` that this one leaves out, taken over: an
    /// edit that does not retype a token keeps it (it is never shown).
    pub fn keep_secrets_of(&mut self, stored: &Destination) {
        if stored.channel != self.channel {
            return;
        }
        for name in stored.secrets_set() {
            if !self.fields.contains_key(&name) {
                self.fields
                    .insert(name.clone(), stored.fields[&name].clone());
            }
        }
    }
}

/// A value as shown: secrets hidden, URLs redacted unless `in_full`.
fn shown(f: &FieldSpec, value: &str, in_full: bool) -> String {
    match f.kind {
        FieldKind::Secret => "<secret>".into(),
        FieldKind::Url | FieldKind::SecretUrl if !in_full => redact_url(value),
        _ => value.to_owned(),
    }
}

fn check_field(channel: Channel, f: &FieldSpec, v: &str) -> Result<(), DestinationError> {
    let invalid = |reason: &str| DestinationError::InvalidField {
        channel,
        label: f.label,
        reason: reason.to_owned(),
    };
    if v.len() > MAX_FIELD_LEN {
        return Err(invalid("longer than 2048 bytes"));
    }
    match f.kind {
        FieldKind::Email => parse_email(v).map(drop),
        FieldKind::Url | FieldKind::SecretUrl => parse_url(channel, v).map(drop),
        FieldKind::Secret => {
            if v.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(())
            } else {
                Err(invalid("only printable ASCII without spaces is allowed"))
            }
        }
        FieldKind::Text => {
            if v.chars().any(char::is_control) {
                Err(invalid("contains control characters"))
            } else {
                Ok(())
            }
        }
        FieldKind::Phone => {
            let digits = v.strip_prefix('+').unwrap_or("");
            if (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
            {
                Ok(())
            } else {
                Err(invalid(
                    "give the number in international form, + and 8 to 15 digits (+14155550123)",
                ))
            }
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct(self.channel.label());
        let spec = self.channel.spec();
        for (k, v) in &self.fields {
            match spec.field(k) {
                Some(field) => s.field(k, &shown(field, v, false)),
                None => s.field(k, &"<unknown field>"),
            };
        }
        s.finish()
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
pub(crate) mod tests {
    use super::*;

    /// A valid destination of `channel`, with every required field.
    pub(crate) fn example(channel: Channel) -> Destination {
        let fields: Vec<(&str, &str)> = channel
            .fields()
            .iter()
            .filter(|f| f.required)
            .map(|f| {
                let v = match f.kind {
                    FieldKind::Email => "ops@example.com",
                    FieldKind::Url | FieldKind::SecretUrl => "https://hooks.example.com/topic",
                    FieldKind::Secret => "tk_SECRET123",
                    FieldKind::Text if f.name == "room_id" => "!room:example.org",
                    FieldKind::Text => "12345",
                    FieldKind::Phone => "+14155550123",
                };
                (f.name, v)
            })
            .collect();
        Destination::new(channel, fields)
    }

    fn url_reason(d: Destination) -> String {
        match d.validate() {
            Err(DestinationError::InvalidUrl { reason, .. }) => reason,
            other => panic!("expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn good_destinations_validate() {
        let ok = [
            Destination::with_address(Channel::Email, "ops@example.com"),
            Destination::with_address(Channel::Email, "first.last+vigil@sub.example.co.uk"),
            Destination::with_address(Channel::Webhook, "https://hooks.example.com/vigil?key=1"),
            Destination::with_address(
                Channel::Slack,
                "https://hooks.slack.com/services/T0/B0/XXXX",
            ),
            Destination::new(
                Channel::Ntfy,
                [
                    ("url", "http://127.0.0.1:8080/alerts"),
                    ("token", "tk_abc123"),
                ],
            ),
            Destination::new(
                Channel::Telegram,
                [("chat_id", "-1001234"), ("bot_token", "123:ABC")],
            ),
            Destination::new(
                Channel::Sms,
                [
                    ("to", "+14155550123"),
                    ("from", "+14155550100"),
                    ("account_sid", "AC123"),
                    ("auth_token", "tok"),
                ],
            ),
        ];
        for d in ok {
            assert_eq!(d.validate(), Ok(()), "{d:?}");
        }
    }

    #[test]
    fn bad_emails_are_named() {
        for bad in [
            "ops",
            "ops@",
            "@example.com",
            "ops @example.com",
            "Ops <ops@example.com>",
            "ops@example.com\r\nBcc: x@example.com",
            "a@b@example.com",
        ] {
            let d = Destination::with_address(Channel::Email, bad);
            match d.validate() {
                Err(DestinationError::InvalidEmail { address, .. }) => assert_eq!(address, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Destination::with_address(Channel::Email, &long)
            .validate()
            .is_err());
        let empty = Destination::with_address(Channel::Email, " ");
        assert!(matches!(
            empty.validate(),
            Err(DestinationError::MissingField { field: "to", .. })
        ));
    }

    #[test]
    fn bad_input_gives_a_clear_error() {
        let slack = |u: &str| Destination::with_address(Channel::Slack, u);
        assert!(url_reason(slack("ftp://example.com/x")).contains("http or https, not ftp"));
        assert!(url_reason(Destination::with_address(
            Channel::Webhook,
            "example.com/hook"
        ))
        .contains("not a URL"));
        assert!(url_reason(slack("https://example.com/x#frag")).contains("fragment"));
        assert!(
            url_reason(Destination::with_address(Channel::Ntfy, "https://ntfy.sh/"))
                .contains("topic")
        );
        assert!(url_reason(slack("file:///etc/passwd")).contains("not file"));
        let token = Destination::new(
            Channel::Ntfy,
            [("url", "https://ntfy.sh/t"), ("token", "tk abc")],
        );
        assert_eq!(
            token.validate().unwrap_err().to_string(),
            "invalid ntfy Access token: only printable ASCII without spaces is allowed"
        );
        let mut sms = example(Channel::Sms);
        sms.insert("to", "004915112345");
        assert!(sms
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("invalid sms To number: give the number in international form"));
        let tg = Destination::new(Channel::Telegram, [("chat_id", "ops team")]);
        assert_eq!(
            tg.validate().unwrap_err().to_string(),
            "telegram needs Bot token (bot_token)"
        );
        let mut tg = example(Channel::Telegram);
        tg.insert("chat_id", "ops team");
        assert!(tg.validate().unwrap_err().to_string().contains("Chat ID"));
        let mut m = example(Channel::Matrix);
        m.insert("room_id", "ops");
        assert!(m.validate().unwrap_err().to_string().contains("Room ID"));
        let unknown = Destination::new(
            Channel::Slack,
            [("url", "https://x.example/h"), ("to", "x")],
        );
        assert_eq!(
            unknown.validate().unwrap_err().to_string(),
            "slack has no field \"to\": its fields are url"
        );
        assert_eq!(
            "pager".parse::<Channel>().unwrap_err().to_string(),
            format!("unknown channel \"pager\": use one of {}", Channel::names())
        );
    }

    #[test]
    fn serde_shape_is_tagged() {
        let d = Destination::with_address(Channel::Slack, "https://hooks.slack.com/services/T/B/X");
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"})
        );
        let n: Destination =
            serde_json::from_str(r#"{"type":"ntfy","url":"https://ntfy.sh/x"}"#).unwrap();
        assert_eq!(
            n,
            Destination::with_address(Channel::Ntfy, "https://ntfy.sh/x")
        );
        let e: Destination =
            serde_json::from_str(r#"{"type":"email","to":"a@b.example"}"#).unwrap();
        assert_eq!(e.channel(), Channel::Email);
        assert!(serde_json::from_str::<Destination>(r#"{"type":"pager","to":"x"}"#).is_err());
    }

    #[test]
    fn stored_form_reads_old_rows() {
        // Rows stored before channels had several fields: the bare address.
        let old = Destination::from_address(Channel::Webhook, "https://hooks.example/x").unwrap();
        assert_eq!(old.get("url"), Some("https://hooks.example/x"));
        assert_eq!(old.to_address(), "https://hooks.example/x");
        let tg = example(Channel::Telegram);
        let stored = tg.to_address();
        assert!(stored.starts_with('{'), "{stored}");
        assert_eq!(
            Destination::from_address(Channel::Telegram, &stored).unwrap(),
            tg
        );
        assert!(matches!(
            Destination::from_address(Channel::Telegram, "{not json"),
            Err(DestinationError::Unreadable { .. })
        ));
        // Defaults are not stored; they are used.
        assert_eq!(tg.get("base_url"), Some("https://api.telegram.org"));
        assert!(!stored.contains("api.telegram.org"));
    }

    #[test]
    fn secrets_stay_out_of_debug_logs_and_views() {
        let d = Destination::with_address(
            Channel::Discord,
            "https://discord.com/api/webhooks/123/SECRET",
        );
        assert!(!format!("{d:?}").contains("SECRET"));
        assert_eq!(d.redacted(), "discord https://discord.com/…");
        let n = Destination::new(
            Channel::Ntfy,
            [
                ("url", "https://user:pw@ntfy.example:8443/topic"),
                ("token", "tk_SECRET"),
            ],
        );
        let dbg = format!("{n:?}");
        assert!(!dbg.contains("SECRET") && !dbg.contains("pw"), "{dbg}");
        assert_eq!(
            redact_url("https://ntfy.example:8443/"),
            "https://ntfy.example:8443"
        );
        let err = Destination::with_address(Channel::Slack, "ftp://hooks.example/SECRET")
            .validate()
            .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        for c in Channel::ALL {
            let d = example(*c);
            for in_full in [false, true] {
                let shown = format!("{:?} {}", d.shown_fields(in_full), d.shown_address(in_full));
                assert!(!shown.contains("SECRET"), "{c}: {shown}");
            }
            assert!(!format!("{d:?} {}", d.redacted()).contains("SECRET"), "{c}");
        }
        assert_eq!(example(Channel::Pagerduty).shown_address(true), "");
        let mut edited = Destination::new(Channel::Ntfy, [("url", "https://ntfy.sh/t")]);
        edited.keep_secrets_of(&n);
        assert_eq!(edited.get("token"), Some("tk_SECRET"));
        assert_eq!(n.secrets_set(), vec!["token".to_string()]);
    }
}
