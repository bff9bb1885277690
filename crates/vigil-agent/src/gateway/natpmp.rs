//! NAT-PMP (RFC 6886): asking the default gateway for its external address.
//!
//! NAT-PMP — and PCP, its successor — can create and delete mappings but
//! has no request that lists them, so it cannot show what LAN devices have
//! opened. The audit uses it only to learn whether the gateway offers it
//! (any LAN device may then open ports on it, just like with UPnP) and what
//! its external address is.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Duration, Instant};

/// The NAT-PMP server port on the gateway.
pub(super) const PORT: u16 = 5351;
/// RFC 6886 section 3.1: the first retransmission comes after 250 ms, each
/// next one after twice as long as the one before, at most 9 sends.
const FIRST_WAIT: Duration = Duration::from_millis(250);
const MAX_SENDS: u32 = 9;
/// Opcode 0, external address request; answers set the high bit.
const OP_EXTERNAL_ADDRESS: u8 = 0;
const RESPONSE: u8 = 128;

/// The request: version 0, opcode 0.
pub(super) fn external_address_request() -> [u8; 2] {
    [0, OP_EXTERNAL_ADDRESS]
}

/// Why an answer is not a usable external address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// Too short, wrong version or opcode: not an answer to our request.
    Malformed(String),
    /// A well-formed answer with a non-zero result code.
    Refused(u16),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed answer: {why}"),
            DecodeError::Refused(code) => write!(f, "result code {code} ({})", result_name(*code)),
        }
    }
}

/// RFC 6886 section 3.5.
fn result_name(code: u16) -> &'static str {
    match code {
        1 => "unsupported version",
        2 => "not authorized/refused",
        3 => "network failure",
        4 => "out of resources",
        5 => "unsupported opcode",
        _ => "unknown",
    }
}

/// Reads the answer to [`external_address_request`]: version 0, opcode
/// 128, result code 0, then the seconds since the mapping table was
/// (re)started and the address. Trailing bytes are ignored.
pub(super) fn parse_external_address(packet: &[u8]) -> Result<Ipv4Addr, DecodeError> {
    let malformed = |why: &str| DecodeError::Malformed(why.to_string());
    let [version, opcode, rest @ ..] = packet else {
        return Err(malformed("shorter than 2 bytes"));
    };
    if *version != 0 {
        return Err(DecodeError::Malformed(format!("version {version}, not 0")));
    }
    if *opcode != RESPONSE | OP_EXTERNAL_ADDRESS {
        return Err(DecodeError::Malformed(format!("opcode {opcode}, not 128")));
    }
    let [r0, r1, rest @ ..] = rest else {
        return Err(malformed("no result code"));
    };
    let result = u16::from_be_bytes([*r0, *r1]);
    if result != 0 {
        return Err(DecodeError::Refused(result));
    }
    match rest {
        [_, _, _, _, a, b, c, d, ..] => Ok(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => Err(malformed("shorter than 12 bytes")),
    }
}

/// What the gateway said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It speaks NAT-PMP; its external address, unless it has none yet
    /// (0.0.0.0).
    Answered(Option<Ipv4Addr>),
    /// Nothing listens (ICMP port unreachable) or no answer in time.
    Silent,
    /// Something went wrong; the message says what.
    Problem(String),
}

/// Asks `gateway` for its external address, retrying per RFC 6886 until an
/// answer or `deadline`.
pub(super) async fn external_address(gateway: Ipv4Addr, deadline: Instant) -> Outcome {
    let sock = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Problem(format!("NAT-PMP: cannot open a UDP socket: {e}")),
    };
    // Connected: the kernel drops datagrams from anyone but the gateway's
    // port 5351, as RFC 6886 section 3.1 asks of clients.
    if let Err(e) = sock.connect(SocketAddr::from((gateway, PORT))).await {
        return Outcome::Problem(format!("NAT-PMP: cannot reach {gateway}: {e}"));
    }
    let mut wait = FIRST_WAIT;
    let mut last_error: Option<DecodeError> = None;
    let mut buf = [0u8; 64];
    for _ in 0..MAX_SENDS {
        if let Err(e) = sock.send(&external_address_request()).await {
            return refused_or(e, format!("NAT-PMP: sending to {gateway} failed"));
        }
        let until = (Instant::now() + wait).min(deadline);
        loop {
            match timeout_at(until, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => match parse_external_address(buf.get(..n).unwrap_or_default()) {
                    Ok(addr) => return Outcome::Answered((!addr.is_unspecified()).then_some(addr)),
                    Err(e @ DecodeError::Refused(_)) => {
                        return Outcome::Problem(format!("NAT-PMP: {gateway} answered {e}"));
                    }
                    // Keep waiting for a proper answer.
                    Err(e) => last_error = Some(e),
                },
                Ok(Err(e)) => {
                    return refused_or(e, format!("NAT-PMP: receiving from {gateway} failed"))
                }
                Err(_) => break,
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        wait *= 2;
    }
    match last_error {
        Some(e) => Outcome::Problem(format!("NAT-PMP: {gateway} sent a {e}")),
        None => Outcome::Silent,
    }
}

/// An ICMP port unreachable shows up as a refused (Linux) or reset
/// (Windows) connection: no NAT-PMP there, which is not a problem.
fn refused_or(e: std::io::Error, what: String) -> Outcome {
    match e.kind() {
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => Outcome::Silent,
        _ => Outcome::Problem(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request() {
        assert_eq!(external_address_request(), [0, 0]);
    }

    #[test]
    fn miniupnpd_answer() {
        // Captured from miniupnpd 2.3.1: epoch 27, address 203.0.113.2.
        let packet = [0, 0x80, 0, 0, 0, 0, 0, 0x1b, 203, 0, 113, 2];
        assert_eq!(
            parse_external_address(&packet),
            Ok(Ipv4Addr::new(203, 0, 113, 2))
        );
        let mut longer = packet.to_vec();
        longer.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse_external_address(&longer),
            Ok(Ipv4Addr::new(203, 0, 113, 2))
        );
    }

    #[test]
    fn bad_answers() {
        let malformed =
            |p: &[u8]| matches!(parse_external_address(p), Err(DecodeError::Malformed(_)));
        assert!(malformed(&[]));
        assert!(malformed(&[0]));
        assert!(malformed(&[0, 0x80]));
        assert!(malformed(&[0, 0x80, 0]));
        assert!(malformed(&[0, 0x80, 0, 0, 0, 0, 0, 1, 203, 0, 113]));
        // PCP (version 2), a mapping answer, our own request echoed back.
        assert!(malformed(&[2, 0x80, 0, 0, 0, 0, 0, 1, 203, 0, 113, 2]));
        assert!(malformed(&[0, 0x81, 0, 0, 0, 0, 0, 1, 203, 0, 113, 2]));
        assert!(malformed(&[0, 0]));
        assert_eq!(
            parse_external_address(&[0, 0x80, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(DecodeError::Refused(2))
        );
        assert_eq!(
            parse_external_address(&[0, 0x80, 0, 3]),
            Err(DecodeError::Refused(3))
        );
        assert_eq!(
            DecodeError::Refused(2).to_string(),
            "result code 2 (not authorized/refused)"
        );
    }
}
