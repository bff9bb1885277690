//! Slack incoming webhook (`{"text": ...}`); Mattermost and Rocket.Chat take the same body.

use crate::destination::Channel;
use crate::notification::Notification;
use crate::render;
use crate::sinks::http::{HttpClient, HttpPayload};
use crate::sinks::{SendFuture, Sink};
use reqwest::Url;

pub struct SlackSink<'a> {
    pub(crate) http: &'a HttpClient,
    pub(crate) url: Url,
}

impl Sink for SlackSink<'_> {
    fn channel(&self) -> Channel {
        Channel::Slack
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        let payload = HttpPayload::json(&render::slack_json(notification));
        Box::pin(self.http.post(Channel::Slack, &self.url, payload))
    }
}
