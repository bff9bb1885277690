//! Generic webhook: a JSON POST of the [`Notification`](crate::Notification) itself, with `X-Vigil-Event` and `X-Vigil-Severity` headers for routing.

use crate::destination::Channel;
use crate::notification::Notification;
use crate::render;
use crate::sinks::http::{HttpClient, HttpPayload};
use crate::sinks::{SendFuture, Sink};
use reqwest::Url;

pub struct WebhookSink<'a> {
    pub(crate) http: &'a HttpClient,
    pub(crate) url: Url,
}

impl Sink for WebhookSink<'_> {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        let mut payload = HttpPayload::json(&render::webhook_json(notification));
        payload.headers = vec![
            ("X-Vigil-Event", notification.event.as_str().to_owned()),
            (
                "X-Vigil-Severity",
                notification.severity.as_str().to_owned(),
            ),
        ];
        Box::pin(self.http.post(Channel::Webhook, &self.url, payload))
    }
}
