//! The single error type of this crate.

use std::io;

use vigil_testnet::TestNetError;

/// Everything that can go wrong while starting or filling a [`crate::SambaDc`].
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Samba AD DC cannot run on this machine (binaries missing, not root)
    /// and `VIGIL_REQUIRE_SAMBA` is not `1`: tests should print `SKIPPED`.
    #[error("Samba AD DC unavailable: {0} (set VIGIL_REQUIRE_SAMBA=1 to make this a failure)")]
    Unavailable(String),
    /// Like [`DirError::Unavailable`], but `VIGIL_REQUIRE_SAMBA=1` is set,
    /// so tests must fail.
    #[error("VIGIL_REQUIRE_SAMBA=1 but Samba AD DC cannot run: {0}")]
    Required(String),
    /// The test network refused an operation.
    #[error(transparent)]
    Net(#[from] TestNetError),
    /// An external command (`samba-tool`, the sam.ldb helper, `cp`) ran but
    /// failed.
    #[error("command `{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line that failed.
        cmd: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed, last lines only).
        stderr: String,
    },
    /// `samba` exited or did not answer LDAP in time.
    #[error("samba did not start: {reason}; last lines of {log}:\n{tail}")]
    Startup {
        /// What went wrong.
        reason: String,
        /// Path of samba's log file (kept only while the DC exists).
        log: String,
        /// The end of that log.
        tail: String,
    },
    /// No computer object with this name (sAMAccountName without `$`).
    #[error("no computer named {0:?} in the directory")]
    NoSuchComputer(String),
    /// A name, OU path or attribute value this crate does not accept.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Generating the TLS certificate failed.
    #[error("generating the DC's TLS certificate: {0}")]
    Tls(#[from] rcgen::Error),
    /// Some other I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl DirError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        DirError::Io {
            what: what.into(),
            source,
        }
    }

    /// True for [`DirError::Unavailable`]: the caller should skip, not fail.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DirError::Unavailable(_))
    }
}
