//! Mattermost incoming webhook (`{"text": ...}` in Markdown).

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::{facts, one_line};
use crate::sinks::http::HttpRequest;
use serde_json::json;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Mattermost",
    fields: &[FieldSpec::new(
        "url",
        "Webhook URL",
        FieldKind::SecretUrl,
        "The incoming webhook URL from your Mattermost server's integrations.",
    )],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let mut text = format!("**[{}] {}**\n", n.severity.tag(), one_line(&n.title));
    let details = n.details.trim();
    if !details.is_empty() {
        text.push_str(details);
        text.push('\n');
    }
    for (name, value) in facts(n) {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(url) = &n.console_url {
        text.push_str(&format!("[Open in the Vigil console]({url})\n"));
    }
    Ok(HttpRequest::json(
        d.url("url")?,
        &json!({"text": text, "username": "Vigil"}),
    ))
}
