//! ntfy: the text POSTed to the topic URL, with `Title`, `Priority`, `Tags` (and `Click`) headers.

use crate::destination::{redact_url, Destination, DestinationError};
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render;
use crate::sinks::http::HttpRequest;
use reqwest::Method;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "ntfy",
    fields: &[
        FieldSpec::new(
            "url",
            "Topic URL",
            FieldKind::Url,
            "The topic's URL on ntfy.sh or your own server (https://ntfy.sh/my-topic).",
        ),
        FieldSpec::new(
            "token",
            "Access token",
            FieldKind::Secret,
            "For servers with access control: sent as a bearer token.",
        )
        .optional(),
    ],
    check: Some(check),
    build: Build::Http(request),
};

fn check(d: &Destination) -> Result<(), DestinationError> {
    let url = d.url("url")?;
    if url.path().trim_matches('/').is_empty() {
        return Err(DestinationError::InvalidUrl {
            channel: d.channel(),
            url: redact_url(url.as_str()),
            reason: "no topic: the URL must name one, like https://ntfy.sh/my-topic".into(),
        });
    }
    Ok(())
}

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let message = render::ntfy(n);
    let mut r = HttpRequest {
        method: Method::POST,
        url: d.url("url")?,
        content_type: "text/plain; charset=utf-8",
        headers: message.headers(),
        authorization: None,
        body: message.body.into_bytes(),
    };
    if let Some(token) = d.get("token") {
        r = r.bearer(token);
    }
    Ok(r)
}
