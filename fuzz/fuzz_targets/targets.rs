//! Scan targets: `vigil scan` target specifications (address, CIDR, dash
//! range, hostname; IPv4 and IPv6), the policy's explicit hosts, and the
//! merged [`TargetSet`] a scan walks. One target per input line.
//!
//! Properties:
//! - a parsed range is non-empty, of one family, start ≤ end, and its
//!   rendering re-parses to the same range; `nth`/`contains` agree with its
//!   ends;
//! - a parsed name is lower case, a valid hostname, and re-parses to itself;
//! - the set built from all ranges either holds at most [`MAX_HOSTS`]
//!   addresses or is refused as too large (exactly when the distinct
//!   addresses exceed the limit); its ranges are sorted and disjoint, its
//!   index (`get`) agrees with its iteration and covers every input range;
//! - a policy host is normalized idempotently, its key parses back, and the
//!   agent can parse it as a scan target (a single address or a name).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::net::IpAddr;
use vigil_core::targets::AddrRange;
use vigil_core::{PolicyTarget, TargetSpec, TargetSpecError};
use vigil_scan::{ScanError, TargetSet, MAX_HOSTS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut ranges = Vec::new();
    for line in text.lines().take(64) {
        if let Some(r) = check_spec(line) {
            ranges.push(r);
        }
        check_policy_host(line);
    }
    check_set(ranges);
});

fn value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v).into(),
        IpAddr::V6(v) => u128::from(v),
    }
}

fn check_spec(line: &str) -> Option<AddrRange> {
    let spec = match line.parse::<TargetSpec>() {
        Ok(spec) => spec,
        Err(TargetSpecError::Empty) => {
            assert!(line.trim().is_empty(), "{line:?} called empty");
            return None;
        }
        Err(TargetSpecError::Invalid { token, .. }) => {
            assert_eq!(token, line.trim(), "the error names another text");
            return None;
        }
    };
    let shown = spec.to_string();
    let again: TargetSpec = shown
        .parse()
        .unwrap_or_else(|e| panic!("{line:?} renders as {shown:?}, which does not parse: {e}"));
    assert_eq!(again, spec, "{line:?} -> {shown:?}");
    match spec {
        TargetSpec::Range(r) => {
            let (start, end) = (r.start(), r.end());
            assert_eq!(start.is_ipv4(), end.is_ipv4(), "{line:?} mixes families");
            assert!(value(start) <= value(end), "{line:?} is reversed");
            let span = value(end) - value(start);
            assert_eq!(r.len(), span.saturating_add(1), "{line:?}");
            assert_eq!(r.nth(0), Some(start));
            if span < u128::MAX {
                assert_eq!(r.nth(span), Some(end), "{line:?}");
                assert_eq!(r.nth(span + 1), None, "{line:?}");
            }
            assert!(r.contains(start) && r.contains(end));
            if start.is_ipv4() {
                assert!(span <= u32::MAX as u128);
            }
            Some(r)
        }
        TargetSpec::Name(name) => {
            assert_eq!(name, name.to_ascii_lowercase());
            let bare = name.strip_suffix('.').unwrap_or(&name);
            assert!(!bare.is_empty() && bare.len() <= 253, "{name:?}");
            assert!(name.parse::<IpAddr>().is_err(), "{name:?} is an address");
            for label in bare.split('.') {
                assert!((1..=63).contains(&label.len()), "{name:?}");
                assert!(
                    label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{name:?}"
                );
            }
            None
        }
    }
}

fn check_set(ranges: Vec<AddrRange>) {
    // The reference: the distinct addresses of the input, per family.
    let mut sorted: Vec<(bool, u128, u128)> = ranges
        .iter()
        .map(|r| (r.start().is_ipv6(), value(r.start()), value(r.end())))
        .collect();
    sorted.sort_unstable();
    let mut distinct: Vec<(bool, u128, u128)> = Vec::new();
    for (v6, lo, hi) in sorted {
        if let Some(last) = distinct.last_mut() {
            if last.0 == v6 && lo <= last.2.saturating_add(1) {
                last.2 = last.2.max(hi);
                continue;
            }
        }
        distinct.push((v6, lo, hi));
    }
    let total = distinct
        .iter()
        .map(|&(_, lo, hi)| (hi - lo).saturating_add(1))
        .fold(0u128, u128::saturating_add);

    let set = match TargetSet::from_ranges(ranges.clone(), BTreeMap::new()) {
        Ok(set) => set,
        Err(ScanError::TooManyHosts { count, limit }) => {
            assert_eq!(limit, MAX_HOSTS);
            assert!(count > MAX_HOSTS, "refused {count} addresses");
            assert!(total > MAX_HOSTS, "refused {total} distinct addresses");
            return;
        }
        Err(e) => panic!("{ranges:?}: unexpected error {e}"),
    };
    assert!(total <= MAX_HOSTS, "accepted {total} addresses");
    assert_eq!(u128::from(set.len()), total, "{ranges:?}");
    assert_eq!(set.is_empty(), ranges.is_empty());
    assert_eq!(set.get(set.len()), None);
    if set.is_empty() {
        return;
    }
    // Every input range's ends are in the set; the first and last
    // addresses are the smallest and largest.
    let first = set.get(0).expect("first");
    let last = set.get(set.len() - 1).expect("last");
    let (fv6, flo, _) = distinct[0];
    let (lv6, _, lhi) = *distinct.last().expect("non-empty");
    assert_eq!((first.is_ipv6(), value(first)), (fv6, flo));
    assert_eq!((last.is_ipv6(), value(last)), (lv6, lhi));
    if set.len() <= 4096 {
        let all: Vec<IpAddr> = set.iter().collect();
        assert_eq!(all.len() as u64, set.len());
        for (i, a) in all.iter().enumerate() {
            assert_eq!(set.get(i as u64), Some(*a), "index {i}");
        }
        assert!(
            all.windows(2)
                .all(|w| (w[0].is_ipv6(), value(w[0])) < (w[1].is_ipv6(), value(w[1]))),
            "not ascending and distinct"
        );
        for r in &ranges {
            assert!(all
                .binary_search_by_key(&(r.start().is_ipv6(), value(r.start())), |a| (
                    a.is_ipv6(),
                    value(*a)
                ))
                .is_ok());
            assert!(all
                .binary_search_by_key(&(r.end().is_ipv6(), value(r.end())), |a| (
                    a.is_ipv6(),
                    value(*a)
                ))
                .is_ok());
        }
    }
}

fn check_policy_host(line: &str) {
    let Ok(target) = PolicyTarget::host(line) else {
        return;
    };
    let PolicyTarget::Host(host) = &target else {
        panic!("{line:?} became {target:?}");
    };
    let again = PolicyTarget::host(host)
        .unwrap_or_else(|e| panic!("{line:?} normalizes to {host:?}, which is refused: {e}"));
    assert_eq!(again, target, "normalizing {line:?} is not idempotent");
    let key = target.key();
    assert_eq!(
        PolicyTarget::from_key(&key).as_ref(),
        Ok(&target),
        "key {key:?}"
    );
    match host.parse::<TargetSpec>() {
        Ok(TargetSpec::Name(_)) => {}
        Ok(TargetSpec::Range(r)) => assert_eq!(r.len(), 1, "{host:?} is a range"),
        Err(e) => panic!("policy host {host:?} (from {line:?}) is not a scan target: {e}"),
    }
}
