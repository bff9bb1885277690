//! NetBIOS node status (NBSTAT), the question `nbtstat -A` and
//! `nmblookup -A` ask a Windows host on UDP 137 to learn its computer name
//! (RFC 1002, 4.2.17–4.2.18). Pure: the request's bytes and the parse of a
//! reply; the sweep sends and receives them.
//!
//! Hand-written: no maintained Rust crate speaks NetBIOS name service, and
//! the two messages needed are fixed layouts of a few dozen bytes.

/// The UDP port of the NetBIOS name service.
pub const NETBIOS_NAME_PORT: u16 = 137;

/// The question's name: `*` padded with NULs to 16 bytes, first-level
/// encoded (each nibble plus `'A'`).
const WILDCARD_ENCODED: &[u8; 32] = b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/// QTYPE / RR_TYPE NBSTAT.
const NBSTAT: u16 = 0x0021;
/// QCLASS IN.
const CLASS_IN: u16 = 0x0001;
/// One entry of a node-status answer: 15-byte name, suffix, 2 flag bytes.
const ENTRY_LEN: usize = 18;
/// The group bit of an entry's flags.
const GROUP: u16 = 0x8000;

/// The node-status request with transaction id `id` (50 bytes).
pub fn node_status_request(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(50);
    out.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (a query, no recursion), one question, no records.
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.push(32);
    out.extend_from_slice(WILDCARD_ENCODED);
    out.push(0);
    out.extend_from_slice(&NBSTAT.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// One name a host registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetbiosName {
    /// Up to 15 characters, trailing spaces removed.
    pub name: String,
    /// The 16th byte: 0x00 workstation / domain, 0x20 file server, ….
    pub suffix: u8,
    pub group: bool,
}

/// What a node-status reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub names: Vec<NetbiosName>,
}

impl NodeStatus {
    /// The computer name: the first unique name with suffix 0x00.
    pub fn computer_name(&self) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.suffix == 0 && !n.group && !n.name.is_empty())
            .map(|n| n.name.as_str())
    }
}

/// Why a datagram is not a node-status reply to our request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NbstatError {
    #[error("the reply is cut short")]
    Truncated,
    #[error("not a reply to our request")]
    NotOurs,
    #[error("the reply has no node-status answer")]
    NoAnswer,
}

/// Parses a reply to [`node_status_request`]`(id)`. Any bytes a host
/// sends are accepted or refused here without panicking.
pub fn parse_node_status(reply: &[u8], id: u16) -> Result<NodeStatus, NbstatError> {
    let header = reply.get(..12).ok_or(NbstatError::Truncated)?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    if word(0) != id || word(2) & 0x8000 == 0 {
        return Err(NbstatError::NotOurs);
    }
    let (questions, answers) = (word(4), word(6));
    if answers == 0 {
        return Err(NbstatError::NoAnswer);
    }
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(reply, at)? + 4;
    }
    at = skip_name(reply, at)?;
    let fixed = reply.get(at..at + 10).ok_or(NbstatError::Truncated)?;
    if u16::from_be_bytes([fixed[0], fixed[1]]) != NBSTAT {
        return Err(NbstatError::NoAnswer);
    }
    let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata = reply
        .get(at + 10..at + 10 + rdlength)
        .ok_or(NbstatError::Truncated)?;
    let (&count, entries) = rdata.split_first().ok_or(NbstatError::Truncated)?;
    let entries = entries
        .get(..usize::from(count) * ENTRY_LEN)
        .ok_or(NbstatError::Truncated)?;
    let names = entries
        .chunks_exact(ENTRY_LEN)
        .map(|e| NetbiosName {
            name: String::from_utf8_lossy(&e[..15])
                .trim_end_matches([' ', '\0'])
                .to_owned(),
            suffix: e[15],
            group: u16::from_be_bytes([e[16], e[17]]) & GROUP != 0,
        })
        .collect();
    Ok(NodeStatus { names })
}

/// The offset after a (possibly compressed) name starting at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Result<usize, NbstatError> {
    loop {
        let len = *msg.get(at).ok_or(NbstatError::Truncated)?;
        match len {
            0 => return Ok(at + 1),
            // A pointer ends the name (2 bytes).
            l if l & 0xC0 == 0xC0 => return Ok(at + 2),
            l => at += 1 + usize::from(l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as Windows and nmbd send it: no question, the name echoed.
    fn reply(id: u16, names: &[(&str, u8, bool)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&[0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0]);
        out.push(32);
        out.extend_from_slice(WILDCARD_ENCODED);
        out.push(0);
        out.extend_from_slice(&NBSTAT.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        let rdlength = 1 + names.len() * ENTRY_LEN + 6;
        out.extend_from_slice(&(rdlength as u16).to_be_bytes());
        out.push(names.len() as u8);
        for (name, suffix, group) in names {
            let mut field = format!("{name:<15}").into_bytes();
            field.truncate(15);
            out.extend_from_slice(&field);
            out.push(*suffix);
            out.extend_from_slice(&(if *group { 0x8400u16 } else { 0x0400 }).to_be_bytes());
        }
        out.extend_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        out
    }

    #[test]
    fn the_request_is_the_wildcard_nbstat_question() {
        let q = node_status_request(0xBEEF);
        assert_eq!(q.len(), 50);
        assert_eq!(&q[..2], &[0xBE, 0xEF]);
        assert_eq!(&q[13..45], WILDCARD_ENCODED);
        assert_eq!(&q[46..], &[0, 0x21, 0, 1]);
    }

    #[test]
    fn finds_the_computer_name_among_the_registered_names() {
        let r = reply(
            7,
            &[
                ("ACME", 0x00, true),
                ("WEB01", 0x00, false),
                ("WEB01", 0x20, false),
            ],
        );
        let status = parse_node_status(&r, 7).unwrap();
        assert_eq!(status.names.len(), 3);
        assert_eq!(status.computer_name(), Some("WEB01"));
        let only_group = parse_node_status(&reply(7, &[("ACME", 0, true)]), 7).unwrap();
        assert_eq!(only_group.computer_name(), None);
    }

    #[test]
    fn refuses_what_is_not_our_reply() {
        let r = reply(7, &[("WEB01", 0, false)]);
        assert_eq!(parse_node_status(&r, 8), Err(NbstatError::NotOurs));
        assert_eq!(
            parse_node_status(&node_status_request(7), 7),
            Err(NbstatError::NotOurs)
        );
        for cut in 0..r.len() - 6 {
            assert!(parse_node_status(&r[..cut], 7).is_err(), "cut at {cut}");
        }
        // A count of names larger than the data.
        let mut lying = r.clone();
        let count_at = 12 + 34 + 10;
        lying[count_at] = 200;
        assert_eq!(parse_node_status(&lying, 7), Err(NbstatError::Truncated));
    }
}
