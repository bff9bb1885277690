//! Names of IP-only endpoints from the network: a NetBIOS node-status reply
//! (any host a compliance sweep asks on UDP 137 sends any bytes) and the
//! name cleaning every discovered name goes through.
//!
//! Input: two bytes of transaction id, then the datagram.
//!
//! Properties:
//! - parsing never panics and refuses a reply to another transaction id;
//! - an accepted reply's names are at most 15 bytes without trailing
//!   spaces or NULs, and the computer name is one of them (suffix 0x00,
//!   unique);
//! - a cleaned name is non-empty, at most 253 bytes, only letters, digits,
//!   `-`, `_` and `.` without empty labels, and cleaning it again changes
//!   nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_core::compliance::{clean_host_name, parse_node_status};

fuzz_target!(|data: &[u8]| {
    let Some((id, reply)) = data.split_first_chunk::<2>() else {
        return;
    };
    let id = u16::from_be_bytes(*id);
    if let Ok(status) = parse_node_status(reply, id) {
        assert!(reply.len() >= 12 && u16::from_be_bytes([reply[0], reply[1]]) == id);
        assert!(parse_node_status(reply, id.wrapping_add(1)).is_err());
        for n in &status.names {
            assert!(n.name.len() <= 15 * 3, "{n:?}"); // lossy UTF-8: ≤ 3 bytes per byte
            assert!(!n.name.ends_with([' ', '\0']), "{n:?}");
        }
        if let Some(name) = status.computer_name() {
            assert!(status
                .names
                .iter()
                .any(|n| n.name == name && n.suffix == 0 && !n.group));
        }
        for n in &status.names {
            check_clean(&n.name);
        }
    }
    if let Ok(text) = std::str::from_utf8(reply) {
        check_clean(text);
    }
});

fn check_clean(raw: &str) {
    if let Some(name) = clean_host_name(raw) {
        assert!(!name.is_empty() && name.len() <= 253, "{name:?}");
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')));
        assert!(name.split('.').all(|l| !l.is_empty()), "{name:?}");
        assert_eq!(clean_host_name(&name).as_deref(), Some(name.as_str()));
    }
}
