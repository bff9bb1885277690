//! Discord webhook (`{"content": ...}`, mentions disabled).

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render;
use crate::sinks::http::HttpRequest;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Discord",
    fields: &[FieldSpec::new(
        "url",
        "Webhook URL",
        FieldKind::SecretUrl,
        "The webhook URL from the Discord channel's integrations.",
    )],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    Ok(HttpRequest::json(d.url("url")?, &render::discord_json(n)))
}
