//! Microsoft Teams incoming webhook (MessageCard).

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render;
use crate::sinks::http::HttpRequest;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Microsoft Teams",
    fields: &[FieldSpec::new(
        "url",
        "Webhook URL",
        FieldKind::SecretUrl,
        "The incoming webhook URL of the Teams channel's connector.",
    )],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    Ok(HttpRequest::json(d.url("url")?, &render::teams_json(n)))
}
