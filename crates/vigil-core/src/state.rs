//! The outcome of probing one TCP port.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a TCP connect probe learned about one port.
///
/// The first three mirror nmap's connect-scan states. `Unreachable` is kept
/// apart from `Filtered` because the network itself said the host cannot be
/// reached (EHOSTUNREACH / ENETUNREACH); nmap reports such ports as
/// `filtered` with reason `host-unreach` / `net-unreach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    /// The handshake completed: something accepts connections.
    Open,
    /// The host answered with a reset: reachable, nothing listening.
    Closed,
    /// No answer at all, even after retries (dropped by a firewall or host down).
    Filtered,
    /// The network reported the host or network unreachable.
    Unreachable,
}

impl PortState {
    /// All states, in display order.
    pub const ALL: [PortState; 4] = [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::Unreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::Unreachable => "unreachable",
        }
    }

    /// The state nmap would print for the same port (`-sT`).
    pub fn nmap_state(self) -> &'static str {
        match self {
            PortState::Unreachable => "filtered",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
