//! Mapping an LDAP search entry (an AD computer object) to an
//! [`AdComputer`], with the DN handling and filter escaping that go with it.
//!
//! The input is an LDIF-like entry, so the seeds stay readable:
//!
//! ```text
//! dn: CN=WS1,OU=Workstations,DC=example,DC=test
//! objectGUID:: Z5fh5ey1FU+WD4ZcKMAV+g==
//! cn: WS1
//! lastLogonTimestamp: 133485408000000000
//! ```
//!
//! `name: text` is a value as written, `name:: base64` a value as bytes.
//! The attributes are split into text and binary maps the way the LDAP
//! client (ldap3's `SearchEntry::construct`) does: an attribute with any
//! value that is not UTF-8 goes to the binary map with all its values.
//! An entry holds each attribute once (names compare without case), so
//! later spellings of a name add values to the first.
//!
//! Properties:
//! - the entry is refused exactly when it has no `objectGUID` value, or
//!   the value used is not 16 bytes; otherwise the GUID's raw bytes are
//!   that value (binary preferred, as the client delivers it);
//! - text attributes come out trimmed and non-empty (or absent), the last
//!   logon is a non-negative Unix time matching the FILETIME, "disabled"
//!   only with the ACCOUNTDISABLE bit of a parsable userAccountControl;
//! - the result does not depend on the maps' iteration order, and survives
//!   a JSON round trip;
//! - a DN that parses re-parses to an equal DN, and so does each parent
//!   (the endpoint's container), which contains it;
//! - an escaped value always makes a filter that `validate_filter` accepts,
//!   and an accepted filter is parenthesized, balanced and within limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use vigil_core::compliance::filter::{MAX_DEPTH, MAX_FILTER_LEN};
use vigil_core::compliance::{
    ad_computer_from_entry, ad_guid_filter, ad_guid_to_bytes, ldap_filter_escape_bytes,
    names_to_resolve, validate_filter, AdComputer, Dn, EntryError,
};

fuzz_target!(|data: &[u8]| {
    let Ok(ldif) = std::str::from_utf8(data) else {
        return;
    };
    let entry = Entry::parse(ldif);
    check_mapping(&entry);
    check_dn(&entry.dn);
    for (_, values) in &entry.attrs {
        for v in values.iter().take(4) {
            check_escaping(v);
            if let Ok(text) = std::str::from_utf8(v) {
                check_filter(text);
            }
        }
    }
});

/// One entry as the directory sent it: a DN and attributes in order.
struct Entry {
    dn: String,
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    fn parse(ldif: &str) -> Entry {
        let mut dn = String::new();
        let mut attrs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        for line in ldif.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let value = match rest.strip_prefix(':') {
                Some(b64) => match base64(b64.trim()) {
                    Some(bytes) => bytes,
                    None => continue,
                },
                None => rest.strip_prefix(' ').unwrap_or(rest).as_bytes().to_vec(),
            };
            if name == "dn" {
                dn = String::from_utf8_lossy(&value).into_owned();
                continue;
            }
            match attrs.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, values)) => values.push(value),
                None => attrs.push((name.to_owned(), vec![value])),
            }
        }
        Entry { dn, attrs }
    }

    /// The text and binary maps, as ldap3 builds them, inserted in the
    /// given order.
    #[allow(clippy::type_complexity)]
    fn maps(
        &self,
        reversed: bool,
    ) -> (HashMap<String, Vec<String>>, HashMap<String, Vec<Vec<u8>>>) {
        let mut text = HashMap::new();
        let mut binary = HashMap::new();
        let mut order: Vec<_> = self.attrs.iter().collect();
        if reversed {
            order.reverse();
        }
        for (name, values) in order {
            if values.iter().all(|v| std::str::from_utf8(v).is_ok()) {
                let values = values
                    .iter()
                    .map(|v| String::from_utf8(v.clone()).expect("checked"))
                    .collect();
                text.insert(name.clone(), values);
            } else {
                // Binary values first, then the text ones, like ldap3.
                let (bin, txt): (Vec<_>, Vec<_>) = values
                    .iter()
                    .cloned()
                    .partition(|v| std::str::from_utf8(v).is_err());
                binary.insert(name.clone(), bin.into_iter().chain(txt).collect());
            }
        }
        (text, binary)
    }

    fn first(&self, name: &str) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, values)| {
                // The value the client delivers first (binary ones lead).
                values
                    .iter()
                    .find(|v| std::str::from_utf8(v).is_err())
                    .or(values.first())
            })
            .map(Vec::as_slice)
    }

    fn first_text(&self, name: &str) -> Option<&str> {
        self.first(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

fn base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn check_mapping(entry: &Entry) {
    let (text, binary) = entry.maps(false);
    let got = ad_computer_from_entry(&entry.dn, &text, &binary);

    let (text2, binary2) = entry.maps(true);
    let again = ad_computer_from_entry(&entry.dn, &text2, &binary2);
    assert_eq!(got, again, "the mapping depends on the maps' order");

    let raw = entry.first("objectGUID");
    let c = match (got, raw) {
        (Err(EntryError::NoGuid { dn }), None) => {
            assert_eq!(dn, entry.dn);
            return;
        }
        (Err(EntryError::BadGuid { dn, len }), Some(raw)) => {
            assert_eq!(dn, entry.dn);
            assert_eq!(len, raw.len());
            assert_ne!(len, 16);
            return;
        }
        (Ok(c), Some(raw)) => {
            assert_eq!(&ad_guid_to_bytes(&c.guid)[..], raw, "GUID bytes");
            c
        }
        (got, raw) => panic!("{got:?} for objectGUID {raw:?}"),
    };
    assert_eq!(c.dn, entry.dn);

    let trimmed = |name: &str| {
        entry
            .first_text(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    assert_eq!(Some(c.cn.clone()).filter(|s| !s.is_empty()), trimmed("cn"));
    assert_eq!(c.dns_host_name, trimmed("dNSHostName"));
    assert_eq!(c.os, trimmed("operatingSystem"));

    let filetime = entry
        .first_text("lastLogonTimestamp")
        .and_then(|t| t.trim().parse::<i64>().ok());
    match c.last_logon {
        Some(t) => {
            let ft = filetime.expect("a last logon without a FILETIME");
            assert!(t >= 0);
            assert_eq!(t, ft / 10_000_000 - 11_644_473_600);
        }
        None => {
            assert!(filetime
                .is_none_or(|ft| ft <= 0 || ft == i64::MAX || ft / 10_000_000 < 11_644_473_600))
        }
    }

    let uac = entry.first_text("userAccountControl").map(str::trim);
    if c.disabled {
        let uac = uac.expect("disabled without userAccountControl");
        let bits = uac
            .parse::<u32>()
            .ok()
            .or_else(|| uac.parse::<i32>().ok().map(|v| v as u32))
            .expect("disabled by an unparsable userAccountControl");
        assert_ne!(bits & 2, 0);
    }

    let json = serde_json::to_string(&c).expect("encode");
    let back: AdComputer = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, c);

    for name in names_to_resolve(std::slice::from_ref(&c)) {
        assert!(!name.is_empty() && !name.ends_with('.'), "{name:?}");
        assert_eq!(name, name.to_ascii_lowercase());
    }
    let filter = ad_guid_filter(&c.guid);
    assert_eq!(validate_filter(&filter), Ok(()), "{filter}");
}

fn hash_of(dn: &Dn) -> u64 {
    let mut h = DefaultHasher::new();
    dn.hash(&mut h);
    h.finish()
}

fn check_dn(text: &str) {
    let Ok(dn) = Dn::parse(text) else {
        return;
    };
    assert!(dn.depth() >= 1);
    let mut node = dn.clone();
    loop {
        let shown = node.to_string();
        let again = Dn::parse(&shown)
            .unwrap_or_else(|e| panic!("{text:?}: {shown:?} does not parse again: {e}"));
        assert_eq!(again, node, "{text:?}: {shown:?}");
        assert_eq!(again.depth(), node.depth());
        assert_eq!(hash_of(&again), hash_of(&node));
        assert!(dn.is_within(&node), "{text:?} is not within {shown:?}");
        assert!(node.is_within(&node));
        match node.parent() {
            Some(parent) => {
                assert_eq!(parent.depth() + 1, node.depth());
                assert!(!parent.is_within(&node), "{shown:?} within its child");
                node = parent;
            }
            None => {
                assert_eq!(node.depth(), 1);
                break;
            }
        }
    }
    let json = serde_json::to_string(&dn).expect("encode");
    let back: Dn = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, dn);
    assert_eq!(back.as_str(), dn.as_str());
}

fn check_escaping(value: &[u8]) {
    let escaped = ldap_filter_escape_bytes(value);
    assert_eq!(escaped.len(), value.len() * 3);
    if value.is_empty() || escaped.len() + 5 > MAX_FILTER_LEN {
        return;
    }
    let filter = format!("(cn={escaped})");
    assert_eq!(validate_filter(&filter), Ok(()), "{filter}");
}

fn check_filter(filter: &str) {
    if validate_filter(filter).is_err() {
        return;
    }
    let f = filter.trim();
    assert!(f.len() <= MAX_FILTER_LEN);
    assert!(f.starts_with('(') && f.ends_with(')'), "{filter:?}");
    let mut depth = 0usize;
    for c in f.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).expect("unbalanced but accepted"),
            _ => {}
        }
        assert!(depth <= MAX_DEPTH);
        assert!(!c.is_control());
    }
    assert_eq!(depth, 0);
}
