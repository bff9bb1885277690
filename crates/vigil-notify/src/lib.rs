//! Vigil's notifier sinks: the last step of scan → evaluate → alert → outbox → channel.
//!
//! The server's outbox worker claims a queued [`Notification`], calls
//! [`Notifier::send`] for the contact's [`Destination`], and on error asks
//! [`SendError::is_transient`]: transient failures (connection refused, timeout,
//! HTTP 5xx/408/429, SMTP 4xx) are rescheduled after [`retry_delay`]; permanent
//! ones (SMTP 5xx, other HTTP 4xx, TLS trust failures, invalid destinations) are not.
//!
//! Channels: email (SMTP via lettre with rustls), a generic JSON webhook, Slack,
//! Microsoft Teams, Discord, ntfy, Telegram, PagerDuty, Opsgenie, Pushover,
//! Gotify, Matrix, Mattermost and SMS through Twilio (HTTP via reqwest with
//! rustls). Each is one file in [`sinks`], listed once there; [`registry`]
//! describes their fields.

pub mod backoff;
pub mod config;
pub mod destination;
pub mod error;
pub mod guard;
pub mod notification;
mod notifier;
pub mod registry;
pub mod render;
pub mod sinks;

pub use backoff::{backoff, retry_delay};
pub use config::{HttpConfig, NotifierConfig, SmtpConfig, SmtpSecurity};
pub use destination::{Channel, Destination, DestinationError};
pub use error::{ConfigError, SendError};
pub use notification::{EventKind, Notification, OccurredAt, Severity};
pub use notifier::Notifier;
pub use registry::{ChannelSpec, FieldKind, FieldSpec};
pub use sinks::{Delivery, Sink};
