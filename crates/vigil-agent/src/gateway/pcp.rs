//! PCP (RFC 6887), NAT-PMP's successor on the same port: whether the
//! gateway speaks it, asked with an ANNOUNCE request. Like NAT-PMP, PCP
//! lets any LAN device open ports on the gateway and has no request that
//! lists them, so the audit can only say that the gateway offers it.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Duration, Instant};

use super::natpmp::PORT;

const VERSION: u8 = 2;
const OP_ANNOUNCE: u8 = 0;
const RESPONSE: u8 = 0x80;
/// A request or response header without options.
const HEADER_LEN: usize = 24;
/// RFC 6887 section 8.1.1: retransmit after 3 s at first; the audit's
/// budget is shorter, so a faster start (as for NAT-PMP), doubling.
const FIRST_WAIT: Duration = Duration::from_millis(250);

/// An ANNOUNCE request from `client` (the address the gateway sees us at):
/// version 2, opcode 0, lifetime 0, the client address IPv4-mapped.
pub(super) fn announce_request(client: Ipv4Addr) -> [u8; HEADER_LEN] {
    let mut p = [0u8; HEADER_LEN];
    p[0] = VERSION;
    p[1] = OP_ANNOUNCE;
    p[8..24].copy_from_slice(&client.to_ipv6_mapped().octets());
    p
}

/// Whether `packet` is a successful answer to an ANNOUNCE: version 2, the
/// response bit with opcode 0, result code 0. A NAT-PMP-only gateway
/// answers version 0 with "unsupported version".
pub(super) fn is_announce_answer(packet: &[u8]) -> bool {
    packet.len() >= HEADER_LEN
        && packet[0] == VERSION
        && packet[1] == RESPONSE | OP_ANNOUNCE
        && packet[3] == 0
}

/// Whether `gateway` answers PCP before `deadline`. Anything else (no
/// answer, a refusal, a NAT-PMP-only answer) is `false`.
pub(super) async fn speaks_pcp(gateway: Ipv4Addr, deadline: Instant) -> bool {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
        return false;
    };
    // Connected: only the gateway's port 5351 is heard.
    if sock
        .connect(SocketAddr::from((gateway, PORT)))
        .await
        .is_err()
    {
        return false;
    }
    let client = match sock.local_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) => ip,
        _ => return false,
    };
    let request = announce_request(client);
    let mut buf = [0u8; 1100];
    let mut wait = FIRST_WAIT;
    while Instant::now() < deadline {
        if sock.send(&request).await.is_err() {
            return false;
        }
        let until = (Instant::now() + wait).min(deadline);
        loop {
            match timeout_at(until, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let answer = buf.get(..n).unwrap_or_default();
                    if is_announce_answer(answer) {
                        return true;
                    }
                    // A NAT-PMP server's "unsupported version": no PCP.
                    if answer.first() == Some(&0) {
                        return false;
                    }
                }
                Ok(Err(e))
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                    ) =>
                {
                    return false
                }
                Ok(Err(_)) => return false,
                Err(_) => break,
            }
        }
        wait *= 2;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announce_carries_the_client_mapped() {
        let r = announce_request(Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(&r[..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[8..20], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&r[20..], &[198, 51, 100, 2]);
    }

    #[test]
    fn only_a_successful_announce_answer_counts() {
        let mut ok = [0u8; HEADER_LEN];
        ok[0] = 2;
        ok[1] = 0x80;
        assert!(is_announce_answer(&ok));
        let mut longer = ok.to_vec();
        longer.extend_from_slice(&[0; 8]);
        assert!(is_announce_answer(&longer));
        assert!(!is_announce_answer(&ok[..23]));
        let mut refused = ok;
        refused[3] = 2;
        assert!(!is_announce_answer(&refused));
        let mut map = ok;
        map[1] = 0x81;
        assert!(!is_announce_answer(&map));
        // Our own request, echoed.
        assert!(!is_announce_answer(&announce_request(Ipv4Addr::LOCALHOST)));
        // NAT-PMP's "unsupported version".
        assert!(!is_announce_answer(&[0, 0x80, 0, 1, 0, 0, 0, 0]));
    }
}
