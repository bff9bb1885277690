//! Gotify: `POST /message` on your server with the application token in `X-Gotify-Key`.

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::{Notification, Severity};
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::{one_line, truncate_chars};
use crate::sinks::chat_text;
use crate::sinks::http::{join, HttpRequest};
use serde_json::json;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Gotify",
    fields: &[
        FieldSpec::new(
            "base_url",
            "Server URL",
            FieldKind::Url,
            "Your Gotify server (https://gotify.example.com).",
        ),
        FieldSpec::new(
            "app_token",
            "Application token",
            FieldKind::Secret,
            "The token of an application created in Gotify.",
        ),
    ],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let url = join(&d.url("base_url")?, &["message"])?;
    let mut body = json!({
        "title": truncate_chars(&format!("[{}] {}", n.severity.tag(), one_line(&n.title)), 250),
        "message": chat_text(n),
        "priority": match n.severity {
            Severity::Critical => 8,
            Severity::Warning => 5,
            _ => 2,
        },
    });
    if let Some(url) = &n.console_url {
        body["extras"] = json!({"client::notification": {"click": {"url": url}}});
    }
    Ok(HttpRequest::json(url, &body).header("X-Gotify-Key", d.require("app_token")?))
}
