//! Generic webhook: a JSON POST of the [`Notification`](crate::Notification) itself, with `X-Vigil-Event` and `X-Vigil-Severity` headers for routing,
//! and `Idempotency-Key` (the delivery id, the same on every retry) so a receiver can drop a repeat.

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
        if let Some(id) = &notification.delivery_id {
            payload.headers.push(("Idempotency-Key", id.clone()));
        }
        Box::pin(self.http.post(Channel::Webhook, &self.url, payload))
    }
}
