//! Mapping one LDAP search entry (a computer object) to an [`AdComputer`].
//!
//! The IO layer hands over the entry as the LDAP client decoded it: the DN,
//! the attributes whose values are text, and those whose values are not
//! valid UTF-8 (binary). Attribute names are matched without regard to
//! case, as LDAP does. `objectGUID` is binary, but a GUID whose 16 bytes
//! happen to be valid UTF-8 arrives as text, so both maps are looked at.
//!
//! Only a usable `objectGUID` is required: without it the computer cannot
//! be told apart from the others, so the entry is rejected. Everything else
//! is optional and a malformed value reads as absent (an unparsable
//! `userAccountControl` does not mark the account disabled).

use super::guid::{ad_guid_from_bytes, parse_filetime, parse_uac, uac_disabled};
use super::join::AdComputer;
use std::collections::HashMap;
use thiserror::Error;

/// Why an entry is not a usable computer object.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    #[error("{dn:?} has no objectGUID")]
    NoGuid { dn: String },
    #[error("{dn:?} has an objectGUID of {len} bytes, not 16")]
    BadGuid { dn: String, len: usize },
}

/// Builds the computer of one search entry.
pub fn ad_computer_from_entry(
    dn: &str,
    text: &HashMap<String, Vec<String>>,
    binary: &HashMap<String, Vec<Vec<u8>>>,
) -> Result<AdComputer, EntryError> {
    let first_text = |name: &str| -> Option<&str> {
        text.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    };
    let raw_guid: &[u8] = binary
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("objectGUID"))
        .and_then(|(_, v)| v.first())
        .map(Vec::as_slice)
        .or_else(|| first_text("objectGUID").map(str::as_bytes))
        .ok_or_else(|| EntryError::NoGuid { dn: dn.to_owned() })?;
    let guid = ad_guid_from_bytes(raw_guid).ok_or_else(|| EntryError::BadGuid {
        dn: dn.to_owned(),
        len: raw_guid.len(),
    })?;
    let non_empty = |name: &str| {
        first_text(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Ok(AdComputer {
        guid,
        dn: dn.to_owned(),
        cn: non_empty("cn").unwrap_or_default(),
        dns_host_name: non_empty("dNSHostName"),
        os: non_empty("operatingSystem"),
        last_logon: first_text("lastLogonTimestamp").and_then(parse_filetime),
        disabled: first_text("userAccountControl")
            .and_then(parse_uac)
            .is_some_and(uac_disabled),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const DN: &str = "CN=WS1,OU=Workstations,DC=example,DC=test";
    /// Raw bytes of e5e19767-b5ec-4f15-960f-865c28c015fa (mixed-endian).
    const RAW: [u8; 16] = [
        0x67, 0x97, 0xe1, 0xe5, 0xec, 0xb5, 0x15, 0x4f, 0x96, 0x0f, 0x86, 0x5c, 0x28, 0xc0, 0x15,
        0xfa,
    ];

    fn text(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    fn guid_bin(raw: &[u8]) -> HashMap<String, Vec<Vec<u8>>> {
        HashMap::from([("objectGUID".to_string(), vec![raw.to_vec()])])
    }

    #[test]
    fn a_full_entry_maps_every_attribute() {
        let attrs = text(&[
            ("cn", "WS1"),
            ("dNSHostName", "ws1.example.test"),
            ("operatingSystem", "Windows 11 Pro"),
            // 2024-01-01T00:00:00Z as a FILETIME.
            ("lastLogonTimestamp", "133485408000000000"),
            ("userAccountControl", "4098"),
        ]);
        let c = ad_computer_from_entry(DN, &attrs, &guid_bin(&RAW)).unwrap();
        assert_eq!(
            c.guid,
            Uuid::parse_str("e5e19767-b5ec-4f15-960f-865c28c015fa").unwrap()
        );
        assert_eq!(c.dn, DN);
        assert_eq!(c.cn, "WS1");
        assert_eq!(c.dns_host_name.as_deref(), Some("ws1.example.test"));
        assert_eq!(c.os.as_deref(), Some("Windows 11 Pro"));
        assert_eq!(c.last_logon, Some(1_704_067_200));
        assert!(
            c.disabled,
            "4098 = WORKSTATION_TRUST_ACCOUNT | ACCOUNTDISABLE"
        );
    }

    #[test]
    fn names_are_case_insensitive_and_bad_values_read_as_absent() {
        let attrs = text(&[
            ("CN", "ws2"),
            ("dnshostname", "  "),
            ("OPERATINGSYSTEM", ""),
            ("lastlogontimestamp", "yesterday"),
            ("useraccountcontrol", "-"),
        ]);
        let c = ad_computer_from_entry(DN, &attrs, &guid_bin(&RAW)).unwrap();
        assert_eq!(c.cn, "ws2");
        assert_eq!((c.dns_host_name, c.os, c.last_logon), (None, None, None));
        assert!(!c.disabled);
    }

    #[test]
    fn a_utf8_guid_arrives_as_text_and_still_counts() {
        let raw = *b"ABCDEFGHIJKLMNOP";
        let attrs: HashMap<String, Vec<String>> = HashMap::from([(
            "objectGUID".to_string(),
            vec![String::from_utf8(raw.to_vec()).unwrap()],
        )]);
        let c = ad_computer_from_entry(DN, &attrs, &HashMap::new()).unwrap();
        assert_eq!(c.guid, Uuid::from_bytes_le(raw));
        assert_eq!(c.cn, "");
    }

    #[test]
    fn entries_without_a_usable_guid_are_rejected() {
        assert_eq!(
            ad_computer_from_entry(DN, &text(&[("cn", "WS1")]), &HashMap::new()),
            Err(EntryError::NoGuid { dn: DN.into() })
        );
        assert_eq!(
            ad_computer_from_entry(DN, &HashMap::new(), &guid_bin(&RAW[..15])),
            Err(EntryError::BadGuid {
                dn: DN.into(),
                len: 15
            })
        );
    }
}
