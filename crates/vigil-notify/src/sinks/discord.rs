//! Discord webhook (`{"content": ...}`, mentions disabled).

use crate::destination::Channel;
use crate::notification::Notification;
use crate::render;
use crate::sinks::http::{HttpClient, HttpPayload};
use crate::sinks::{SendFuture, Sink};
use reqwest::Url;

pub struct DiscordSink<'a> {
    pub(crate) http: &'a HttpClient,
    pub(crate) url: Url,
}

impl Sink for DiscordSink<'_> {
    fn channel(&self) -> Channel {
        Channel::Discord
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        let payload = HttpPayload::json(&render::discord_json(notification));
        Box::pin(self.http.post(Channel::Discord, &self.url, payload))
    }
}
