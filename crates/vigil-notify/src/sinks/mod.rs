//! One file per channel, each a [`Sink`]: render with [`crate::render`], then deliver.

pub(crate) mod discord;
pub(crate) mod email;
pub(crate) mod http;
pub(crate) mod ntfy;
pub(crate) mod slack;
pub(crate) mod teams;
pub(crate) mod webhook;

pub use discord::DiscordSink;
pub use email::EmailSink;
pub use ntfy::NtfySink;
pub use slack::SlackSink;
pub use teams::TeamsSink;
pub use webhook::WebhookSink;

use crate::destination::Channel;
use crate::error::SendError;
use crate::notification::Notification;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What a successful delivery returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub channel: Channel,
    /// What the other side said: `250 2.0.0 Ok: queued as ...` or `HTTP 200 OK`.
    pub response: String,
    pub elapsed: Duration,
}

/// The future a [`Sink`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivery, SendError>> + Send + 'a>>;

/// One channel bound to one address, ready to deliver notifications.
///
/// Get one from [`Notifier::sink`](crate::Notifier::sink), which validates the
/// [`Destination`](crate::Destination) first.
pub trait Sink: Send + Sync {
    fn channel(&self) -> Channel;
    /// Delivers once, without retrying: the outbox worker retries on
    /// [`SendError::is_transient`].
    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a>;
}
