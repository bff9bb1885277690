//! One module per subcommand.

pub mod admin_backup;
pub mod agent;
pub mod agent_service;
pub mod agent_sweep;
pub mod agent_update;
pub mod ctl;
pub mod docs;
pub mod scan;
pub mod server;
pub mod up;

/// Input the user must change (exit code 2), as opposed to a runtime failure (exit 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand: an `anyhow::Error` carrying a [`UsageError`].
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// The multi-threaded runtime of the long-running commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub use crate::sys::shutdown_signal;
