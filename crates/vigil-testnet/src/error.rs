//! The single error type of this crate.

use std::io;

/// Everything that can go wrong while building or using a [`crate::TestNet`].
#[derive(Debug, thiserror::Error)]
pub enum TestNetError {
    /// An external command (`ip`, `nft`, …) ran but exited unsuccessfully.
    #[error("command `{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line that failed.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// An external command could not be started at all.
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// nmap-format XML that could not be read.
    #[error("unreadable nmap XML: {0}")]
    NmapXml(String),
    /// The `vigil-netem` relay binary could not be located.
    #[error(
        "vigil-netem relay binary not found (looked at: {searched}); \
         run `cargo build -p vigil-testnet --bins` (with the same profile) \
         or set VIGIL_NETEM=/path/to/vigil-netem"
    )]
    RelayNotFound {
        /// The paths that were tried.
        searched: String,
    },
    /// The relay started but did not become ready.
    #[error("vigil-netem relay failed: {reason}; its stderr: {stderr}")]
    Relay {
        /// What went wrong.
        reason: String,
        /// What the relay printed on stderr so far.
        stderr: String,
    },
    /// Entering a network namespace with `setns` failed.
    #[error("cannot enter network namespace {ns}: {source}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Some other I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A [`crate::NetSpec`] that makes no sense.
    #[error("invalid NetSpec: {0}")]
    InvalidSpec(String),
    /// An address or network outside the documentation/benchmark ranges this
    /// crate is allowed to use, or one that collides with the scanner side.
    #[error("refusing to use {what}: {why}")]
    ForbiddenAddress {
        /// The offending address or network.
        what: String,
        /// Why it is refused.
        why: String,
    },
}

impl TestNetError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        TestNetError::Io {
            what: what.into(),
            source,
        }
    }
}
