//! Matrix: an `m.room.message` sent to a room through the client-server API
//! (`PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`).
//! The transaction id is the delivery's, so a retried send is not repeated.

use crate::destination::{Destination, DestinationError};
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::sinks::chat_text;
use crate::sinks::email::fnv1a64;
use crate::sinks::http::{join, HttpRequest};
use reqwest::Method;
use serde_json::json;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Matrix",
    fields: &[
        FieldSpec::new(
            "room_id",
            "Room ID",
            FieldKind::Text,
            "The room's internal id (!abc123:example.org), under the room's advanced settings.",
        ),
        FieldSpec::new(
            "access_token",
            "Access token",
            FieldKind::Secret,
            "The access token of the account that posts (a bot user), which must be in the room.",
        ),
        FieldSpec::base_url("https://matrix.org", "Your homeserver's client API URL."),
    ],
    check: Some(check),
    build: Build::Http(request),
};

fn check(d: &Destination) -> Result<(), DestinationError> {
    let room = d.require("room_id")?;
    if room.starts_with('!') && room.contains(':') {
        Ok(())
    } else {
        Err(DestinationError::InvalidField {
            channel: d.channel(),
            label: "Room ID",
            reason: "give the room's id, like !abc123:example.org".into(),
        })
    }
}

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let txn = match &n.delivery_id {
        Some(id) => format!("vigil-{id}"),
        None => format!(
            "vigil-{:016x}",
            fnv1a64(&format!("{}\n{}", n.dedupe_key, n.occurred_at))
        ),
    };
    let path = [
        "_matrix",
        "client",
        "v3",
        "rooms",
        d.require("room_id")?,
        "send",
        "m.room.message",
        &txn,
    ];
    let url = join(&d.url("base_url")?, &path)?;
    let body = json!({"msgtype": "m.text", "body": chat_text(n)});
    let mut r = HttpRequest::json(url, &body).bearer(d.require("access_token")?);
    r.method = Method::PUT;
    Ok(r)
}
