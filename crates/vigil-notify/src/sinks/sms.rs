//! SMS through Twilio: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! (form-encoded `To`, `From`, `Body`; HTTP Basic with the account SID and auth token).

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::{one_line, truncate_chars};
use crate::sinks::http::{join, HttpRequest};

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "SMS (Twilio)",
    fields: &[
        FieldSpec::new(
            "to",
            "To number",
            FieldKind::Phone,
            "The phone to text, in international form (+14155550123).",
        ),
        FieldSpec::new(
            "from",
            "From number",
            FieldKind::Phone,
            "A Twilio number of your account, in international form.",
        ),
        FieldSpec::new(
            "account_sid",
            "Account SID",
            FieldKind::Text,
            "Your Twilio Account SID (AC...), on the Twilio console.",
        ),
        FieldSpec::new(
            "auth_token",
            "Auth token",
            FieldKind::Secret,
            "The auth token that goes with the Account SID.",
        ),
        FieldSpec::base_url("https://api.twilio.com", "The Twilio API server."),
    ],
    check: None,
    build: Build::Http(request),
};

/// Two SMS segments at most.
const MAX_CHARS: usize = 300;

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let sid = d.require("account_sid")?;
    let path = ["2010-04-01", "Accounts", sid, "Messages.json"];
    let url = join(&d.url("base_url")?, &path)?;
    let mut text = format!("Vigil [{}] {}", n.severity.tag(), one_line(&n.title));
    if let Some(url) = &n.console_url {
        text.push(' ');
        text.push_str(url);
    }
    let body = truncate_chars(&text, MAX_CHARS);
    let pairs = [
        ("To", d.require("to")?),
        ("From", d.require("from")?),
        ("Body", body.as_str()),
    ];
    Ok(HttpRequest::form(url, &pairs).basic(sid, d.require("auth_token")?))
}
