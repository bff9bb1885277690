//! ntfy: the text POSTed to the topic URL, with `Title`, `Priority`, `Tags` (and `Click`) headers.

use crate::destination::Channel;
use crate::notification::Notification;
use crate::render;
use crate::sinks::http::{HttpClient, HttpPayload};
use crate::sinks::{SendFuture, Sink};
use reqwest::Url;

pub struct NtfySink<'a> {
    pub(crate) http: &'a HttpClient,
    pub(crate) url: Url,
    pub(crate) token: Option<String>,
}

impl Sink for NtfySink<'_> {
    fn channel(&self) -> Channel {
        Channel::Ntfy
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        let message = render::ntfy(notification);
        let payload = HttpPayload {
            content_type: "text/plain; charset=utf-8",
            headers: message.headers(),
            bearer_token: self.token.clone(),
            body: message.body.into_bytes(),
        };
        Box::pin(self.http.post(Channel::Ntfy, &self.url, payload))
    }
}
