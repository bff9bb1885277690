//! The identify protocol an agent answers on its communication port.
//!
//! A compliance sweep connects, sends [`REQUEST`] and reads one JSON line
//! ([`IdentifyReply`]) before the agent closes the connection. A line
//! protocol rather than HTTP: a sweep asks thousands of endpoints, and the
//! exchange must stay a couple of packets each way. Replies are bounded by
//! [`MAX_REPLY_BYTES`]; anything else on the port (another service) fails
//! to parse and is reported as "no agent".

use crate::ProtoError;
use serde::{Deserialize, Serialize};

/// Default TCP port agents listen on.
pub const DEFAULT_PORT: u16 = 47_760;
/// What the asking side sends.
pub const REQUEST: &[u8] = b"VIGIL-IDENTIFY 1\n";
/// Longest reply line accepted.
pub const MAX_REPLY_BYTES: usize = 1024;

/// Who this agent is and which server manages it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentifyReply {
    pub agent_id: String,
    /// The managing server's ID; empty if the agent is not enrolled.
    pub server_id: String,
    pub version: String,
}

impl IdentifyReply {
    /// The reply line, newline-terminated.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Parses what an endpoint answered (one line, at most
    /// [`MAX_REPLY_BYTES`]).
    pub fn parse(reply: &[u8]) -> Result<Self, ProtoError> {
        if reply.len() > MAX_REPLY_BYTES {
            return Err(ProtoError::Identify(format!(
                "{} bytes, more than {MAX_REPLY_BYTES}",
                reply.len()
            )));
        }
        let line = reply.split(|&b| b == b'\n').next().unwrap_or_default();
        let parsed: IdentifyReply = serde_json::from_slice(line)
            .map_err(|e| ProtoError::Identify(format!("not an agent reply: {e}")))?;
        if parsed.agent_id.is_empty() {
            return Err(ProtoError::Identify("empty agent id".into()));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let r = IdentifyReply {
            agent_id: "a".into(),
            server_id: "s".into(),
            version: "0.1.0".into(),
        };
        assert_eq!(IdentifyReply::parse(&r.to_line()), Ok(r));
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"",
            b"{\"agent_id\":\"\",\"server_id\":\"\",\"version\":\"\"}\n",
            &[b'{'; 2000][..],
        ] {
            assert!(IdentifyReply::parse(bad).is_err());
        }
    }
}
