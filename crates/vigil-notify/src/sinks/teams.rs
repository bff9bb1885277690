//! Microsoft Teams incoming webhook (MessageCard).

use crate::destination::Channel;
use crate::notification::Notification;
use crate::render;
use crate::sinks::http::{HttpClient, HttpPayload};
use crate::sinks::{SendFuture, Sink};
use reqwest::Url;

pub struct TeamsSink<'a> {
    pub(crate) http: &'a HttpClient,
    pub(crate) url: Url,
}

impl Sink for TeamsSink<'_> {
    fn channel(&self) -> Channel {
        Channel::Teams
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        let payload = HttpPayload::json(&render::teams_json(notification));
        Box::pin(self.http.post(Channel::Teams, &self.url, payload))
    }
}
