//! The binary's platform code: how a long-running command is asked to
//! stop, how a file only its owner may read is created, how an updated
//! agent takes over its process (`exec_self`), and the agent's
//! Windows service (`service`). `unix.rs` and
//! `windows.rs` each provide the same functions; commands call these.

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

pub use imp::{exec_self, private_file_options, service, shutdown_signal};

/// What a Windows service runs (`vigil agent service-run`): the agent,
/// until the service control manager's Stop turns the receiver true.
pub type ServiceBody =
    Box<dyn FnOnce(tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> + Send>;
