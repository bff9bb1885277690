//! Pushover: `POST /1/messages.json` (form-encoded) with the application's token and the user's key.

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::{Notification, Severity};
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::{email_body, one_line, truncate_chars};
use crate::sinks::http::{join, HttpRequest};

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Pushover",
    fields: &[
        FieldSpec::new(
            "user_key",
            "User key",
            FieldKind::Text,
            "The user (or group) key shown on your Pushover dashboard.",
        ),
        FieldSpec::new(
            "app_token",
            "Application token",
            FieldKind::Secret,
            "The API token of an application you created in Pushover.",
        ),
        FieldSpec::base_url("https://api.pushover.net", "The Pushover API server."),
    ],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let url = join(&d.url("base_url")?, &["1", "messages.json"])?;
    let title = truncate_chars(
        &format!("[{}] {}", n.severity.tag(), one_line(&n.title)),
        250,
    );
    let message = truncate_chars(&email_body(n), 1024);
    let priority = match n.severity {
        Severity::Critical => "1",
        Severity::Warning => "0",
        _ => "-1",
    };
    let mut pairs = vec![
        ("token", d.require("app_token")?),
        ("user", d.require("user_key")?),
        ("title", &title),
        ("message", &message),
        ("priority", priority),
    ];
    if let Some(url) = &n.console_url {
        pairs.push(("url", url));
        pairs.push(("url_title", "Open in the Vigil console"));
    }
    Ok(HttpRequest::form(url, &pairs))
}
