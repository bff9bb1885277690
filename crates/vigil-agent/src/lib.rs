//! The Vigil agent, as a library the `vigil agent` command drives.
//!
//! * [`spool`]: finished scan results wait on disk until the server has
//!   acknowledged them, so a server outage loses nothing; each carries an
//!   upload id, so a re-send after a lost acknowledgement is stored once.
//! * [`identify`]: answers compliance sweeps on the agent's communication
//!   port with its GUID and the ID of the server that manages it.
//! * [`pinning`]: TLS to the server trusting exactly the certificate pinned
//!   at enrollment.

mod error;
pub mod identify;
pub mod pinning;
pub mod spool;

pub use error::AgentError;
