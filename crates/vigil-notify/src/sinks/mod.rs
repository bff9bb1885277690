//! One file per channel, each describing its fields and how it delivers
//! (a [`ChannelSpec`](crate::registry::ChannelSpec) named `SPEC`), and the
//! one list of channels, [`channels!`] below.
//!
//! Adding a channel: write `sinks/<name>.rs` with its `SPEC` (most channels
//! are one HTTP request: `Build::Http(request)`), and add `Variant => name,`
//! to the list. Validation, the stored form, the API, the console form and
//! `vigil ctl contacts` follow from the description.

pub(crate) mod http;

use crate::error::SendError;
use crate::notification::Notification;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Declares the channel modules and [`Channel`], one variant per module.
macro_rules! channels {
    ($($variant:ident => $module:ident,)*) => {
        $(pub(crate) mod $module;)*

        /// A kind of channel (its name is its sink module's name).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Channel {
            $($variant,)*
        }

        impl Channel {
            /// Every channel, in the order of the list.
            pub const ALL: &'static [Channel] = &[$(Channel::$variant,)*];

            /// The stored and serialized name (`email`, `pagerduty`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Channel::$variant => stringify!($module),)*
                }
            }

            /// What the channel is and how it delivers.
            pub fn spec(self) -> &'static crate::registry::ChannelSpec {
                match self {
                    $(Channel::$variant => &$module::SPEC,)*
                }
            }
        }
    };
}

channels! {
    Email => email,
    Webhook => webhook,
    Slack => slack,
    Teams => teams,
    Discord => discord,
    Ntfy => ntfy,
    Telegram => telegram,
    Pagerduty => pagerduty,
    Opsgenie => opsgenie,
    Pushover => pushover,
    Gotify => gotify,
    Matrix => matrix,
    Mattermost => mattermost,
    Sms => sms,
}

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

/// A channel that is one HTTP request per notification (see [`crate::registry::Build::Http`]).
pub(crate) struct HttpSink<'a> {
    pub(crate) http: &'a http::HttpClient,
    pub(crate) destination: crate::Destination,
    pub(crate) request: crate::registry::RequestFn,
}

impl Sink for HttpSink<'_> {
    fn channel(&self) -> Channel {
        self.destination.channel()
    }

    fn send<'a>(&'a self, notification: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let request = (self.request)(&self.destination, notification)?;
            self.http.send(self.channel(), request).await
        })
    }
}

/// The text most chat channels send: `[TAG] title`, details, facts, the console link.
pub(crate) fn chat_text(n: &Notification) -> String {
    let mut text = format!(
        "[{}] {}\n",
        n.severity.tag(),
        crate::render::one_line(&n.title)
    );
    let details = n.details.trim();
    if !details.is_empty() {
        text.push_str(details);
        text.push('\n');
    }
    for (name, value) in crate::render::facts(n) {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(url) = &n.console_url {
        text.push_str(url);
        text.push('\n');
    }
    text
}

/// A short key for the condition, the same for its alert and its recovery:
/// the notification's dedupe key, hashed when too long for the provider.
pub(crate) fn condition_key(n: &Notification, max: usize) -> String {
    if n.dedupe_key.len() <= max && !n.dedupe_key.is_empty() {
        n.dedupe_key.clone()
    } else {
        format!("vigil-{:016x}", email::fnv1a64(&n.dedupe_key))
    }
}
