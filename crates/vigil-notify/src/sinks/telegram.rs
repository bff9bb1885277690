//! Telegram: the Bot API's `sendMessage` (`POST /bot<token>/sendMessage`) to one chat.

use crate::destination::{Destination, DestinationError};
use crate::error::SendError;
use crate::notification::Notification;
use crate::registry::{Build, ChannelSpec, FieldKind, FieldSpec};
use crate::render::truncate_chars;
use crate::sinks::chat_text;
use crate::sinks::http::{join, HttpRequest};
use serde_json::json;

pub(crate) const SPEC: ChannelSpec = ChannelSpec {
    label: "Telegram",
    fields: &[
        FieldSpec::new(
            "chat_id",
            "Chat ID",
            FieldKind::Text,
            "The chat's numeric id (-1001234567890) or a public channel's @username.",
        ),
        FieldSpec::new(
            "bot_token",
            "Bot token",
            FieldKind::Secret,
            "The token @BotFather gave for your bot (123456:ABC-DEF...).",
        ),
        FieldSpec::base_url("https://api.telegram.org", "The Bot API server."),
    ],
    check: Some(check),
    build: Build::Http(request),
};

/// Telegram refuses longer messages.
const MAX_CHARS: usize = 4096;

fn check(d: &Destination) -> Result<(), DestinationError> {
    let id = d.require("chat_id")?;
    let numeric = id
        .strip_prefix('-')
        .unwrap_or(id)
        .bytes()
        .all(|b| b.is_ascii_digit());
    let username = id.len() > 1
        && id.starts_with('@')
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if (numeric && !id.trim_start_matches('-').is_empty()) || username {
        Ok(())
    } else {
        Err(DestinationError::InvalidField {
            channel: d.channel(),
            label: "Chat ID",
            reason: "give a numeric id (-1001234567890) or @channelusername".into(),
        })
    }
}

fn request(d: &Destination, n: &Notification) -> Result<HttpRequest, SendError> {
    let bot = format!("bot{}", d.require("bot_token")?);
    let url = join(&d.url("base_url")?, &[&bot, "sendMessage"])?;
    let body = json!({
        "chat_id": d.require("chat_id")?,
        "text": truncate_chars(&chat_text(n), MAX_CHARS),
        "disable_web_page_preview": true,
    });
    Ok(HttpRequest::json(url, &body))
}
