//! Port lists in nmap syntax (`22,80,1000-2000`, `-`, `-1024`, `60000-`)
//! and the nmap-services ranking used by `--top-ports`.
//!
//! Properties of an accepted list:
//! - its ports are 1–65535, strictly ascending (sorted, no duplicates);
//! - its compact rendering re-parses to the same list and is canonical
//!   (rendering the re-parsed list gives the same text);
//! - it is the union of its comma-separated entries parsed one by one.
//!
//! A rejected list names the offending text, which occurs in the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_core::ports::{top_ports_from_services, PortSpecError};
use vigil_core::PortList;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = std::str::from_utf8(data) else {
        return;
    };
    check_port_list(spec);
    check_top_ports(spec);
});

fn check_port_list(spec: &str) {
    let list = match PortList::parse(spec) {
        Ok(list) => list,
        Err(e) => {
            let named = match &e {
                PortSpecError::EmptyToken { spec: s } => Some(s),
                PortSpecError::NotAPort { token } | PortSpecError::Reversed { token } => {
                    Some(token)
                }
                PortSpecError::Empty | PortSpecError::ZeroTop => None,
            };
            if let Some(named) = named {
                assert!(spec.contains(named.as_str()), "{spec:?}: {e}");
            }
            return;
        }
    };
    let ports = list.as_slice();
    assert!(!ports.is_empty(), "{spec:?} parsed to an empty list");
    assert!(ports[0] >= 1, "{spec:?} holds port 0");
    assert!(
        ports.windows(2).all(|w| w[0] < w[1]),
        "{spec:?}: not strictly ascending"
    );
    assert_eq!(list.len(), ports.len());

    let shown = list.to_string();
    let again = PortList::parse(&shown)
        .unwrap_or_else(|e| panic!("{spec:?} renders as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, list, "{spec:?} -> {shown:?}");
    assert_eq!(
        again.to_string(),
        shown,
        "rendering of {spec:?} is not canonical"
    );

    // Entry by entry: the union of the parts is the whole. Each distinct
    // entry is one contiguous range; at most 128 of them are checked.
    let mut union = vec![false; 65_536];
    let mut entries: Vec<&str> = spec.split(',').map(str::trim).collect();
    entries.sort_unstable();
    entries.dedup();
    for token in entries.iter().take(128) {
        let part = PortList::parse(token)
            .unwrap_or_else(|e| panic!("{spec:?} parses but its entry {token:?} does not: {e}"));
        let (lo, hi) = (part.as_slice()[0], part.as_slice()[part.len() - 1]);
        assert_eq!(part.len(), usize::from(hi - lo) + 1, "{token:?} has holes");
        union[usize::from(lo)..=usize::from(hi)].fill(true);
    }
    if entries.len() <= 128 {
        let want: Vec<u16> = (1..=u16::MAX).filter(|&p| union[usize::from(p)]).collect();
        assert_eq!(ports, want, "{spec:?} is not the union of its entries");
    }
    for &p in ports.iter().take(64) {
        assert!(list.contains(p));
        if p < u16::MAX && !list.contains(p + 1) {
            assert!(ports.binary_search(&(p + 1)).is_err());
        }
    }
}

fn check_top_ports(table: &str) {
    for n in [0, 1, 10, usize::MAX] {
        let top = top_ports_from_services(table, n);
        assert!(top.len() <= n);
        assert!(!top.contains(&0), "{table:?}: port 0 ranked");
        let mut seen = top.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), top.len(), "{table:?}: a port ranked twice");
    }
}
