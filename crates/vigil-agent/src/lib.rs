//! The Vigil agent, as a library the `vigil agent` command drives.
//!
//! * [`runner`]: the main loop (heartbeat, spool delivery) and the scan
//!   worker that runs tasks beside it.
//! * [`spool`]: finished scan results wait on disk until the server has
//!   acknowledged them, so a server outage loses nothing; each carries an
//!   upload id, so a re-send after a lost acknowledgement is stored once.
//! * [`task`]: running a scan task with `vigil-scan`.
//! * [`identify`]: answers compliance sweeps on the agent's communication
//!   port with its GUID and the ID of the server that manages it.
//! * [`describe`] and [`listeners`]: what listens on an open port (what
//!   the service announces; the process, on the agent's own host).
//! * [`client`]: the agent API calls, with errors that say whether to retry.
//! * [`identity`]: the enrolled agent's GUID, credential and pinned server.
//! * [`failover`]: which of a replicated server's URLs to call, and when to
//!   go back to the preferred one.
//! * [`moving`]: enrolling, and moving to another server when the current
//!   one says so.
//! * [`pinning`]: TLS to the server trusting exactly the certificate pinned
//!   at enrollment.
//! * [`update`]: self-update to the build the server offers: download,
//!   signature check, atomic replacement, roll-back.
//! * [`sys`]: what the agent asks of Linux or Windows (state directory,
//!   private files, OS facts, listening sockets); nothing else has a `cfg`.

pub mod arp;
pub mod client;
pub mod describe;
mod error;
pub mod failover;
pub mod gateway;
pub mod identify;
pub mod identity;
pub mod lan;
pub mod listeners;
pub mod moving;
pub mod network;
pub mod pinning;
pub mod runner;
pub mod spool;
pub mod sys;
pub mod task;
#[cfg(test)]
mod testing;
pub mod update;

pub use error::AgentError;
