//! Vigil's wire formats, shared by the server and the agent.
//!
//! * [`api`]: the JSON bodies of the REST API (`/api/v1`) used by `vigil ctl`.
//! * [`agent`]: the JSON bodies of the agent API (enroll, heartbeat, result
//!   upload), spoken over HTTPS with the server's pinned certificate.
//! * [`pin`]: the fingerprint of the server certificate that an agent pins
//!   at enrollment (`vigil agent enroll --pin sha256:…`), like an SSH host key.
//! * [`identify`]: the tiny TCP protocol an agent answers on its
//!   communication port, so a compliance sweep can tell which server manages
//!   an endpoint.
//!
//! * [`version`]: this build's version, from a stamp in the binary that a
//!   server reads in the agent builds it offers.
//!
//! Only types and parsing live here: no IO.

pub mod agent;
pub mod api;
pub mod identify;
pub mod pin;
pub mod version;

/// Errors of parsing wire data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("invalid certificate pin {0:?}: expected sha256: followed by 64 hex digits")]
    Pin(String),
    #[error("invalid identify reply: {0}")]
    Identify(String),
}

impl From<pin::PinError> for ProtoError {
    fn from(e: pin::PinError) -> Self {
        ProtoError::Pin(e.0)
    }
}
