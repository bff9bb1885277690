//! The SYN engine's packets: the probe it sends and the answers it reads.
//!
//! Pure byte work, no I/O. Hand-written rather than with a packet crate
//! (`etherparse`, `pnet`): the engine builds one fixed 24-byte TCP header
//! and reads a handful of fields at fixed offsets of four reply shapes;
//! the code here is shorter than the glue a general crate would need, and
//! every read is bounds-checked (a scanned host is hostile input).

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the SYN the engine sends: a 20-byte TCP header and an MSS
/// option (what nmap's `-sS` sends; a SYN without options stands out).
pub(crate) const SYN_LEN: usize = 24;
const MSS: u16 = 1460;
const WINDOW: u16 = 1024;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// The probe's sequence number, a keyed hash of where it went: an answer
/// is ours when it acknowledges `cookie + 1` (or, in an ICMP error,
/// quotes `cookie`), without any record of the probe (masscan's and ZMap's
/// way). The key is random per scan, so nobody can forge answers.
pub(crate) struct Cookie(std::collections::hash_map::RandomState);

impl Cookie {
    pub(crate) fn new() -> Cookie {
        Cookie(std::collections::hash_map::RandomState::new())
    }

    pub(crate) fn of(&self, target: IpAddr, port: u16, our_port: u16) -> u32 {
        // The low 32 bits of SipHash-1-3 over the tuple.
        self.0.hash_one((target, port, our_port)) as u32
    }
}

/// A TCP SYN from `our_port` to `port` with sequence number `seq`. For
/// IPv4 the checksum over the pseudo-header of `src` → `dst` is filled in;
/// for IPv6 (`None`) the kernel computes it (`IPV6_CHECKSUM`).
pub(crate) fn syn(
    our_port: u16,
    port: u16,
    seq: u32,
    v4: Option<(Ipv4Addr, Ipv4Addr)>,
) -> [u8; SYN_LEN] {
    let mut p = [0u8; SYN_LEN];
    p[0..2].copy_from_slice(&our_port.to_be_bytes());
    p[2..4].copy_from_slice(&port.to_be_bytes());
    p[4..8].copy_from_slice(&seq.to_be_bytes());
    // ack 0; data offset 6 words; flags SYN.
    p[12] = 6 << 4;
    p[13] = SYN;
    p[14..16].copy_from_slice(&WINDOW.to_be_bytes());
    // checksum 16..18, urgent 18..20: zero for now.
    p[20] = 2; // MSS
    p[21] = 4;
    p[22..24].copy_from_slice(&MSS.to_be_bytes());
    if let Some((src, dst)) = v4 {
        let sum = checksum_v4(src, dst, &p);
        p[16..18].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The internet checksum of a TCP segment over IPv4 (RFC 793's
/// pseudo-header: source, destination, zero, protocol, length).
fn checksum_v4(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&[0, 6]);
    add(&(segment.len() as u16).to_be_bytes());
    add(segment);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What an answer says about the port it answers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// SYN-ACK.
    Open,
    /// RST.
    Closed,
    /// ICMP: the host or its network cannot be reached (nmap's reason).
    Unreachable(&'static str),
    /// ICMP: something refused the probe on the way (nmap's reason).
    Filtered(&'static str),
}

/// An answer to one of our probes, not yet checked against its cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The scanned address and port the answer is about.
    pub target: IpAddr,
    pub port: u16,
    /// Our source port it names.
    pub our_port: u16,
    /// The cookie it carries (already less one for an acknowledgement).
    pub cookie: u32,
    pub verdict: Verdict,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A TCP segment from `from`: SYN-ACK → open, RST → closed, both only when
/// they acknowledge a SYN (anything else: `None`).
pub(crate) fn tcp_answer(from: IpAddr, segment: &[u8]) -> Option<Answer> {
    let port = u16_at(segment, 0)?;
    let our_port = u16_at(segment, 2)?;
    let ack = u32_at(segment, 8)?;
    let flags = *segment.get(13)?;
    let verdict = if flags & (SYN | ACK | RST | FIN) == SYN | ACK {
        Verdict::Open
    } else if flags & RST != 0 && flags & ACK != 0 {
        Verdict::Closed
    } else {
        return None;
    };
    Some(Answer {
        target: from,
        port,
        our_port,
        cookie: ack.wrapping_sub(1),
        verdict,
    })
}

/// The TCP segment of an IPv4 packet (what a raw IPv4 socket reads) and
/// its source, if the packet is TCP.
pub(crate) fn tcp_of_ipv4(packet: &[u8]) -> Option<(IpAddr, &[u8])> {
    let (header, proto) = ipv4_header(packet)?;
    if proto != 6 {
        return None;
    }
    let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    Some((IpAddr::from(src), packet.get(header..)?))
}

/// Header length and protocol of an IPv4 packet.
fn ipv4_header(packet: &[u8]) -> Option<(usize, u8)> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let len = usize::from(first & 0x0f) * 4;
    if len < 20 || packet.len() < len {
        return None;
    }
    Some((len, *packet.get(9)?))
}

/// An ICMPv4 "destination unreachable" (what a raw ICMP socket reads: the
/// IPv4 header, then ICMP) about a TCP probe: the probe's header it quotes
/// names the target, the ports and the cookie.
pub(crate) fn icmp4_answer(packet: &[u8]) -> Option<Answer> {
    let (outer, proto) = ipv4_header(packet)?;
    if proto != 1 {
        return None;
    }
    let icmp = packet.get(outer..)?;
    if *icmp.first()? != 3 {
        return None;
    }
    let verdict = match *icmp.get(1)? {
        0 => Verdict::Unreachable("net-unreach"),
        1 => Verdict::Unreachable("host-unreach"),
        2 => Verdict::Filtered("proto-unreach"),
        3 => Verdict::Filtered("port-unreach"),
        9 => Verdict::Filtered("net-prohibited"),
        10 => Verdict::Filtered("host-prohibited"),
        13 => Verdict::Filtered("admin-prohibited"),
        _ => return None,
    };
    let quoted = icmp.get(8..)?;
    let (inner, inner_proto) = ipv4_header(quoted)?;
    if inner_proto != 6 {
        return None;
    }
    let dst: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
    quoted_probe(IpAddr::from(dst), quoted.get(inner..)?, verdict)
}

/// An ICMPv6 "destination unreachable" (a raw ICMPv6 socket reads from the
/// ICMPv6 header on) about a TCP probe.
pub(crate) fn icmp6_answer(message: &[u8]) -> Option<Answer> {
    if *message.first()? != 1 {
        return None;
    }
    let verdict = match *message.get(1)? {
        0 => Verdict::Unreachable("no-route"),
        1 | 5 | 6 => Verdict::Filtered("admin-prohibited"),
        2 => Verdict::Filtered("beyond-scope"),
        3 => Verdict::Unreachable("host-unreach"),
        4 => Verdict::Filtered("port-unreach"),
        _ => return None,
    };
    let quoted = message.get(8..)?;
    // The quoted IPv6 header: version 6, next header TCP (a probe of ours
    // carries no extension headers).
    if *quoted.first()? >> 4 != 6 || *quoted.get(6)? != 6 {
        return None;
    }
    let dst: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
    quoted_probe(
        IpAddr::from(Ipv6Addr::from(dst)),
        quoted.get(40..)?,
        verdict,
    )
}

/// The first 8 bytes of a quoted probe: our port, the target port, the
/// cookie (RFC 792 guarantees at least these 8 bytes are quoted).
fn quoted_probe(target: IpAddr, tcp: &[u8], verdict: Verdict) -> Option<Answer> {
    Some(Answer {
        target,
        our_port: u16_at(tcp, 0)?,
        port: u16_at(tcp, 2)?,
        cookie: u32_at(tcp, 4)?,
        verdict,
    })
}

#[cfg(test)]
mod tests;
