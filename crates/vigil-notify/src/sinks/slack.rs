//! Slack incoming webhook (`{"text": ...}`).

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render;
use crate::sinks::http::HttpRequest;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Slack",
    fields: &[FieldSpec::new(
        "url",
        "Webhook URL",
        FieldKind::SecretUrl,
        "The incoming webhook URL Slack gives you (https://hooks.slack.com/services/...).",
    )],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    Ok(HttpRequest::json(d.url("url")?, &render::slack_json(n)))
}
