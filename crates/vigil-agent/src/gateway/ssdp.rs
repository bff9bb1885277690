//! SSDP discovery of Internet gateway devices (UPnP Device Architecture
//! 1.1, section 1.3): M-SEARCH to 239.255.255.250:1900 (and, if the default
//! gateway is known, to it directly) and the unicast answers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Duration, Instant};

/// The SSDP multicast group and port.
pub(super) const MULTICAST: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);

/// What we search for: both IGD versions and the connection services the
/// port mappings live in (some devices answer only for those).
pub(super) const SEARCH_TARGETS: [&str; 5] = [
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// Seconds a device may wait before answering a multicast search.
const MX: u8 = 1;
/// Searches are sent twice, this far apart (UDP may drop the first).
const RESEND_AFTER: Duration = Duration::from_millis(300);
/// Receive buffer; SSDP answers are a few hundred bytes, longer ones are
/// truncated and then fail to parse.
const DATAGRAM: usize = 4096;
/// More answers than this (from a flood of hostile datagrams) are ignored.
const MAX_ANSWERS: usize = 256;
/// Receive errors tolerated before giving up on the socket.
const MAX_ERRORS: usize = 16;
/// Header values longer than this are refused.
const MAX_VALUE: usize = 1024;

/// A parsed search response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    /// Where the device description is (not yet checked, see
    /// `upnp::device_url`).
    pub location: String,
    /// The search target the device answered for.
    pub st: String,
    /// The `SERVER` header, for problem messages.
    pub server: Option<String>,
}

/// An M-SEARCH request for `st`. `multicast` adds the `MX` header (UDA 1.1
/// says a unicast search has none) and addresses the multicast group.
pub(super) fn msearch(st: &str, host: SocketAddr, multicast: bool) -> Vec<u8> {
    let mx = if multicast {
        format!("MX: {MX}\r\n")
    } else {
        String::new()
    };
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {host}\r\nMAN: \"ssdp:discover\"\r\n{mx}ST: {st}\r\n\
         USER-AGENT: vigil-agent/{} UPnP/1.1\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// Parses a search response: `HTTP/1.1 200 OK`, then headers (names in any
/// case) with `LOCATION` and one of our [`SEARCH_TARGETS`] as `ST`.
pub(super) fn parse_answer(datagram: &[u8]) -> Result<Answer, String> {
    let text = std::str::from_utf8(datagram).map_err(|_| "not UTF-8 text".to_string())?;
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split_whitespace();
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) || parts.next() != Some("200") {
        return Err(format!("not a search response: {:?}", clip(status)));
    }
    let (mut location, mut st, mut server) = (None, None, None);
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.len() > MAX_VALUE {
            return Err(format!("header {} is too long", clip(name)));
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "location" => location = Some(value.to_string()),
            "st" => st = Some(value.to_string()),
            "server" => server = Some(value.to_string()),
            _ => {}
        }
    }
    let location = location.ok_or("no LOCATION header")?;
    let st = st.ok_or("no ST header")?;
    if !SEARCH_TARGETS.iter().any(|t| t.eq_ignore_ascii_case(&st)) {
        return Err(format!(
            "answered for another search target {:?}",
            clip(&st)
        ));
    }
    Ok(Answer {
        location,
        st,
        server,
    })
}

/// At most 80 characters of `s`, for messages about hostile input.
pub(super) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.escape_debug().to_string()
}

/// Sends the searches (multicast, and unicast to `gateway` if known) and
/// collects answers until `until`. Returns the distinct answers with their
/// source addresses, in arrival order, and the problems met (unparseable
/// answers are not problems: any LAN device may chatter).
pub(super) async fn discover(
    gateway: Option<IpAddr>,
    until: Instant,
) -> (Vec<(IpAddr, Answer)>, Vec<String>) {
    let mut problems = Vec::new();
    let sock = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("UPnP: cannot open a UDP socket for SSDP: {e}"));
            return (Vec::new(), problems);
        }
    };
    // Stay on the local network (UDA 1.1 recommends TTL 2).
    let _ = sock.set_multicast_ttl_v4(2);
    let mut targets = vec![(MULTICAST, true)];
    if let Some(gw @ IpAddr::V4(_)) = gateway {
        targets.push((SocketAddr::new(gw, MULTICAST.port()), false));
    }
    if let Err(e) = send_all(&sock, &targets).await {
        // Nothing went out (e.g. no route to the multicast group): no
        // answer can come.
        problems.push(format!("UPnP: sending the SSDP search failed: {e}"));
        return (Vec::new(), problems);
    }
    let resend_at = Instant::now() + RESEND_AFTER;
    let mut resent = false;
    let mut answers: Vec<(IpAddr, Answer)> = Vec::new();
    let mut errors = 0usize;
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let wake = if resent { until } else { resend_at.min(until) };
        match timeout_at(wake, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                if let Ok(answer) = parse_answer(buf.get(..n).unwrap_or_default()) {
                    let seen = answers
                        .iter()
                        .any(|(ip, a)| *ip == from.ip() && a.location == answer.location);
                    if !seen && answers.len() < MAX_ANSWERS {
                        answers.push((from.ip(), answer));
                    }
                }
            }
            // ICMP errors for the unicast search, oversized datagrams (an
            // error on Windows), …: keep listening, within reason.
            Ok(Err(e)) => {
                errors += 1;
                if errors >= MAX_ERRORS {
                    problems.push(format!("UPnP: receiving SSDP answers failed: {e}"));
                    break;
                }
            }
            Err(_) => {}
        }
        let now = Instant::now();
        if now >= until {
            break;
        }
        if !resent && now >= resend_at {
            resent = true;
            // It worked once; a failure now changes nothing.
            let _ = send_all(&sock, &targets).await;
        }
    }
    (answers, problems)
}

/// One M-SEARCH per search target to each destination. Fails only if no
/// datagram at all could be sent (e.g. no route to the multicast group).
async fn send_all(sock: &UdpSocket, targets: &[(SocketAddr, bool)]) -> std::io::Result<()> {
    let mut last_err = None;
    let mut any = false;
    for (dest, multicast) in targets {
        for st in SEARCH_TARGETS {
            let host = if *multicast { MULTICAST } else { *dest };
            match sock.send_to(&msearch(st, host, *multicast), dest).await {
                Ok(_) => any = true,
                Err(e) => last_err = Some(e),
            }
        }
    }
    match last_err {
        Some(e) if !any => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What miniupnpd 2.3.1 answers.
    const MINIUPNPD: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n\
        ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        USN: uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
        EXT:\r\nSERVER: Debian/6.1 UPnP/1.1 MiniUPnPd/2.3.1\r\n\
        LOCATION: http://198.51.100.1:40119/rootDesc.xml\r\n\
        OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: 1796558623\r\n\
        BOOTID.UPNP.ORG: 1796558623\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n";

    #[test]
    fn miniupnpd_answer() {
        let a = parse_answer(MINIUPNPD).unwrap();
        assert_eq!(a.location, "http://198.51.100.1:40119/rootDesc.xml");
        assert_eq!(a.st, SEARCH_TARGETS[0]);
        assert_eq!(
            a.server.as_deref(),
            Some("Debian/6.1 UPnP/1.1 MiniUPnPd/2.3.1")
        );
    }

    #[test]
    fn lenient_about_case_and_line_ends() {
        let a = parse_answer(
            b"HTTP/1.1 200 OK\nlocation:http://198.51.100.1/d.xml\nst: URN:schemas-upnp-org:service:WANIPConnection:2\n\n",
        )
        .unwrap();
        assert_eq!(a.location, "http://198.51.100.1/d.xml");
        assert_eq!(a.server, None);
    }

    #[test]
    fn refuses_other_datagrams() {
        let long = format!(
            "HTTP/1.1 200 OK\r\nST: {}\r\nLOCATION: http://x/{}\r\n\r\n",
            SEARCH_TARGETS[0],
            "a".repeat(5000)
        );
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"NOTIFY * HTTP/1.1\r\nLOCATION: http://198.51.100.1/\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nLOCATION: http://198.51.100.1/\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:Printer:1\r\nLOCATION: http://198.51.100.1/\r\n\r\n",
            long.as_bytes(),
        ] {
            assert!(parse_answer(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn search_requests() {
        let m = String::from_utf8(msearch(SEARCH_TARGETS[1], MULTICAST, true)).unwrap();
        assert!(m.starts_with("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"));
        assert!(m.contains("MAN: \"ssdp:discover\"\r\nMX: 1\r\n"));
        assert!(m.contains("ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n"));
        assert!(m.ends_with("\r\n\r\n"));
        let host: SocketAddr = "198.51.100.1:1900".parse().unwrap();
        let u = String::from_utf8(msearch(SEARCH_TARGETS[0], host, false)).unwrap();
        assert!(u.contains("HOST: 198.51.100.1:1900\r\n") && !u.contains("MX:"));
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("abc"), "abc");
        assert_eq!(clip(&"x".repeat(100)).chars().count(), 81);
        assert_eq!(clip("a\r\nb"), "a\\r\\nb");
    }
}
