//! Compliance IP ranges ([`IpRange`]) and the IP scope built from them, one
//! range per input line as in the console's scope editor.
//!
//! Properties:
//! - an accepted range holds 1 to [`MAX_RANGE_ADDRESSES`] addresses of one
//!   family, start ≤ end; its rendering and its JSON form parse back to the
//!   same range; its iterator yields exactly its addresses, ascending;
//! - the same text read as a `vigil scan` target covers the same addresses;
//! - the scope's merged ranges are sorted, disjoint, not adjacent, and cover
//!   exactly the listed ranges; validation refuses a scope exactly when they
//!   hold more than [`MAX_SCOPE_ADDRESSES`] addresses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use vigil_core::compliance::{IpRange, IpScope, MAX_RANGE_ADDRESSES, MAX_SCOPE_ADDRESSES};
use vigil_core::TargetSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ranges: Vec<IpRange> = text.lines().take(64).filter_map(check_range).collect();
    check_scope(ranges);
});

fn value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v).into(),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn check_range(line: &str) -> Option<IpRange> {
    let r = IpRange::parse(line).ok()?;
    let (start, end) = (r.start(), r.end());
    assert_eq!(start.is_ipv4(), end.is_ipv4(), "{line:?} mixes families");
    assert_eq!(r.is_ipv6(), start.is_ipv6());
    assert!(value(start) <= value(end), "{line:?} is reversed");
    let len = value(end) - value(start) + 1;
    assert!(len <= MAX_RANGE_ADDRESSES, "{line:?} holds {len} addresses");
    assert_eq!(u128::from(r.len()), len, "{line:?}");

    let shown = r.to_string();
    assert_eq!(IpRange::parse(&shown), Ok(r), "{line:?} -> {shown:?}");
    let json = serde_json::to_string(&r).expect("serialize");
    let back: IpRange = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{line:?} -> {json}, which does not parse: {e}"));
    assert_eq!(back, r, "{line:?} -> {json}");

    match line.parse::<TargetSpec>() {
        Ok(TargetSpec::Range(t)) => assert_eq!(t, r.addr_range(), "{line:?}"),
        other => panic!("{line:?} is a compliance range but as a scan target {other:?}"),
    }

    let mut iter = r.iter();
    assert_eq!(iter.len() as u128, len);
    assert_eq!(iter.next(), Some(start));
    if len <= 1024 {
        let rest: Vec<IpAddr> = iter.collect();
        assert_eq!(rest.len() as u128, len - 1);
        assert!(rest.iter().all(|a| r.contains(*a)));
        let mut prev = value(start);
        for a in &rest {
            assert_eq!(value(*a), prev + 1, "{line:?} skips an address");
            prev = value(*a);
        }
    }
    assert!(r.contains(end));
    Some(r)
}

fn check_scope(ranges: Vec<IpRange>) {
    let scope = IpScope {
        enabled: true,
        ranges,
    };
    let merged = scope.merged_ranges();
    for w in merged.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.start().is_ipv6() == b.start().is_ipv6() {
            assert!(
                value(a.end()).saturating_add(1) < value(b.start()),
                "{a} and {b} overlap or touch"
            );
        } else {
            assert!(a.start().is_ipv4(), "IPv6 before IPv4");
        }
    }
    for r in &scope.ranges {
        let inside = merged
            .iter()
            .any(|m| m.contains(r.start()) && m.contains(r.end()));
        assert!(inside, "{r} is not covered by the merged ranges");
    }
    for m in &merged {
        for a in [m.start(), m.end()] {
            assert!(scope.contains(a), "{a} is merged in but not in the scope");
        }
    }
    let count: u128 = merged.iter().map(|m| m.len()).sum();
    assert_eq!(scope.address_count(), count);
    match scope.validate() {
        Ok(()) => assert!(count <= MAX_SCOPE_ADDRESSES && !scope.ranges.is_empty()),
        Err(e) => assert!(
            count > MAX_SCOPE_ADDRESSES || scope.ranges.is_empty(),
            "{count} addresses refused: {e}"
        ),
    }
    if count <= 4096 {
        let all: Vec<IpAddr> = scope.addresses().collect();
        assert_eq!(all.len() as u128, count);
        assert!(all
            .windows(2)
            .all(|w| (w[0].is_ipv6(), value(w[0])) < (w[1].is_ipv6(), value(w[1]))));
    }
}
