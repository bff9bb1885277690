//! Host discovery on a directly connected IPv4 link by ARP, as nmap does
//! on a LAN: one request per address, broadcast, and every answer names a
//! host and its MAC.
//!
//! Why not let the connect sweep find the hosts: every address a TCP probe
//! goes to needs an entry in the kernel's neighbour table, which holds
//! 1,024 entries for the whole machine by default (Linux `gc_thresh3`).
//! A /22 sweep fills it; past it the kernel drops the probe's SYN and the
//! device is silently missing (see BENCHMARKS.md, "LAN sweep"). Requests
//! sent on a packet socket create no entries, and the kernel does not
//! learn from answers it did not ask for, so only the hosts found are
//! probed for ports afterwards. ARP also finds a host whose firewall drops
//! every port, and needs no settling: an answer is proof of presence now.
//!
//! The packet socket needs `CAP_NET_RAW` (the agent service runs as root)
//! and exists on Linux only ([`crate::sys::ArpSocket`]); without it the
//! sweep falls back to connect probes in address windows that fit the
//! table. Hand-rolled rather than `pnet`: an ARP request is 28 bytes and
//! the rest of `pnet` (its own socket layer, a C build on Windows) is not
//! needed.

use crate::sys::ArpSocket;
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use vigil_core::lan::MacAddr;

/// Length of an Ethernet/IPv4 ARP packet (without the Ethernet header).
pub const PACKET_LEN: usize = 28;

/// One interface's discovery: who asks, and whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpJob {
    pub interface: String,
    pub own_mac: MacAddr,
    pub own_ip: Ipv4Addr,
    pub targets: Vec<Ipv4Addr>,
}

/// How requests are paced and how long answers are awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpTiming {
    /// Requests sent back to back before answers are read.
    pub burst: usize,
    /// Pause after each burst, reading answers: the rate limit.
    pub gap: Duration,
    /// Waits after each round for late answers; one round per entry, each
    /// re-asking the addresses that have not answered.
    pub rounds: [Duration; 3],
}

impl Default for ArpTiming {
    /// 64 requests per 4 ms (~16,000 a second: a /22 in 64 ms, a /16 in
    /// 4 s), three rounds, so a request lost on a lossy link is asked
    /// again twice. A wired host answers in well under a millisecond; an
    /// access point holds broadcasts for a client in power save until its
    /// next DTIM beacon (100–300 ms), so the last wait covers that, and
    /// every request is awaited at least 0.7 s in all.
    fn default() -> Self {
        ArpTiming {
            burst: 64,
            gap: Duration::from_millis(4),
            rounds: [
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400),
            ],
        }
    }
}

/// An ARP request from `own` for `target`.
pub fn request(own_mac: MacAddr, own_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&own_mac.octets());
    p[14..18].copy_from_slice(&own_ip.octets());
    // Target hardware address unknown: zero.
    p[24..28].copy_from_slice(&target.octets());
    p
}

/// The sender of an Ethernet/IPv4 ARP packet (request or reply): a host
/// that is on the link now. `None` for anything else, a non-unicast MAC or
/// an unspecified sender address (an address-conflict probe).
pub fn sender(packet: &[u8]) -> Option<(Ipv4Addr, MacAddr)> {
    let p = packet.get(..PACKET_LEN)?;
    let be = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    if be(0) != 1 || be(2) != 0x0800 || p[4] != 6 || p[5] != 4 || !matches!(be(6), 1 | 2) {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&p[8..14]);
    let mac = MacAddr(mac);
    let ip = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
    (mac.is_unicast() && !ip.is_unspecified()).then_some((ip, mac))
}

/// Asks every target of `job` and returns the hosts that answered, by
/// address. Blocking (run it on a blocking thread). Fails only when the
/// packet socket cannot be opened or used; the caller then probes the
/// targets another way.
pub fn discover(job: &ArpJob, timing: ArpTiming) -> std::io::Result<BTreeMap<Ipv4Addr, MacAddr>> {
    let socket = ArpSocket::open(&job.interface)?;
    let wanted: HashSet<Ipv4Addr> = job
        .targets
        .iter()
        .copied()
        .filter(|ip| *ip != job.own_ip)
        .collect();
    let mut found: BTreeMap<Ipv4Addr, MacAddr> = BTreeMap::new();
    let mut buf = [0u8; 512];
    let mut read_until = |socket: &ArpSocket,
                          found: &mut BTreeMap<Ipv4Addr, MacAddr>,
                          until: Instant|
     -> std::io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if let Some(n) = socket.recv(&mut buf, until - now)? {
                if let Some((ip, mac)) = sender(&buf[..n]) {
                    if wanted.contains(&ip) {
                        found.entry(ip).or_insert(mac);
                    }
                }
            }
        }
    };
    for wait in timing.rounds {
        let ask: Vec<Ipv4Addr> = job
            .targets
            .iter()
            .copied()
            .filter(|ip| wanted.contains(ip) && !found.contains_key(ip))
            .collect();
        if ask.is_empty() {
            break;
        }
        for chunk in ask.chunks(timing.burst.max(1)) {
            for target in chunk {
                socket.send(&request(job.own_mac, job.own_ip, *target))?;
            }
            read_until(&socket, &mut found, Instant::now() + timing.gap)?;
        }
        read_until(&socket, &mut found, Instant::now() + wait)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0x5e, 0x10, 0, 0, 1]);

    #[test]
    fn a_request_reads_back_as_its_sender() {
        let own = Ipv4Addr::new(198, 51, 100, 1);
        let p = request(MAC, own, Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(&p[24..28], &[198, 51, 100, 7]);
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(sender(&p), Some((own, MAC)));
    }

    #[test]
    fn replies_count_and_everything_else_does_not() {
        let own = Ipv4Addr::new(198, 51, 100, 9);
        let mut reply = request(MAC, own, Ipv4Addr::new(198, 51, 100, 1));
        reply[7] = 2;
        assert_eq!(sender(&reply), Some((own, MAC)));
        // Trailing Ethernet padding is ignored.
        let mut padded = reply.to_vec();
        padded.extend_from_slice(&[0; 18]);
        assert_eq!(sender(&padded), Some((own, MAC)));

        let mut other_op = reply;
        other_op[7] = 3; // RARP request
        assert_eq!(sender(&other_op), None);
        let mut ipv6 = reply;
        ipv6[2] = 0x86;
        assert_eq!(sender(&ipv6), None);
        assert_eq!(sender(&reply[..27]), None);
        // An address-conflict probe says nothing of an address in use.
        let probe = request(MAC, Ipv4Addr::UNSPECIFIED, own);
        assert_eq!(sender(&probe), None);
        let multicast = request(MacAddr([1, 0, 0x5e, 0, 0, 1]), own, own);
        assert_eq!(sender(&multicast), None);
    }
}
