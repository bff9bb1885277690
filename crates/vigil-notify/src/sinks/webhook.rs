//! Generic webhook: a JSON POST of the [`Notification`] itself, with `X-Vigil-Event` and `X-Vigil-Severity` headers for routing,
//! and `Idempotency-Key` (the delivery id, the same on every retry) so a receiver can drop a repeat.

use crate::destination::Destination;
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render;
use crate::sinks::http::HttpRequest;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Webhook (JSON POST)",
    fields: &[FieldSpec::new(
        "url",
        "Webhook URL",
        FieldKind::SecretUrl,
        "The http(s):// URL the notification is POSTed to as JSON.",
    )],
    check: None,
    build: Build::Http(request),
};

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let mut r = HttpRequest::json(d.url("url")?, &render::webhook_json(n))
        .header("X-Vigil-Event", n.event.as_str())
        .header("X-Vigil-Severity", n.severity.as_str());
    if let Some(id) = &n.delivery_id {
        r = r.header("Idempotency-Key", id.clone());
    }
    Ok(r)
}
