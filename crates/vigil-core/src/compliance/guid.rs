//! Decoding the Active Directory attributes an assessment reads.
//!
//! - `objectGUID` is 16 raw bytes in Microsoft's mixed-endian GUID layout:
//!   the first three fields (4, 2 and 2 bytes) little-endian, the last 8
//!   bytes as stored. So the raw bytes `6797e1e5ecb5154f960f865c28c015fa`
//!   are the GUID `e5e19767-b5ec-4f15-960f-865c28c015fa`. In a search
//!   filter the raw bytes are written escaped, `\67\97\e1…`.
//! - `lastLogonTimestamp` is a Windows FILETIME: 100-ns intervals since
//!   1601-01-01 UTC; 0 and `i64::MAX` mean "never". AD replicates it lazily,
//!   so it can lag the real last logon by about two weeks.
//! - `userAccountControl` bit 0x2 (ACCOUNTDISABLE) marks a disabled account.

use std::fmt::Write;
use uuid::Uuid;

/// `userAccountControl` flag of a disabled account.
pub const UAC_ACCOUNTDISABLE: u32 = 0x2;

/// Seconds from 1601-01-01 to 1970-01-01.
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;
const FILETIME_TICKS_PER_SEC: i64 = 10_000_000;

/// The GUID of a raw `objectGUID` value; `None` unless it is exactly 16 bytes.
pub fn ad_guid_from_bytes(raw: &[u8]) -> Option<Uuid> {
    let bytes: [u8; 16] = raw.try_into().ok()?;
    Some(Uuid::from_bytes_le(bytes))
}

/// The raw `objectGUID` bytes of a GUID (the inverse of [`ad_guid_from_bytes`]).
pub fn ad_guid_to_bytes(guid: &Uuid) -> [u8; 16] {
    guid.to_bytes_le()
}

/// Escapes every byte as `\xx` (lower-case hex) for an LDAP filter value.
pub fn ldap_filter_escape_bytes(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() * 3);
    for b in raw {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\{b:02x}");
    }
    out
}

/// A filter that finds the object with this GUID: `(objectGUID=\67\97…)`.
pub fn ad_guid_filter(guid: &Uuid) -> String {
    format!(
        "(objectGUID={})",
        ldap_filter_escape_bytes(&ad_guid_to_bytes(guid))
    )
}

/// Unix seconds of a FILETIME (rounded down); `None` for "never" (0,
/// `i64::MAX`) and for values before 1970, which no real logon has.
pub fn filetime_to_unix(filetime: i64) -> Option<i64> {
    if filetime <= 0 || filetime == i64::MAX {
        return None;
    }
    let unix = filetime / FILETIME_TICKS_PER_SEC - FILETIME_UNIX_OFFSET_SECS;
    (unix >= 0).then_some(unix)
}

/// Parses the decimal text LDAP returns for `lastLogonTimestamp` and
/// converts it with [`filetime_to_unix`].
pub fn parse_filetime(text: &str) -> Option<i64> {
    filetime_to_unix(text.trim().parse().ok()?)
}

/// Whether a `userAccountControl` value marks the account disabled.
pub fn uac_disabled(uac: u32) -> bool {
    uac & UAC_ACCOUNTDISABLE != 0
}

/// Parses the decimal text LDAP returns for `userAccountControl`. The
/// attribute is a signed 32-bit integer on the wire, so negative values are
/// taken as their two's-complement bits.
pub fn parse_uac(text: &str) -> Option<u32> {
    let text = text.trim();
    text.parse::<u32>()
        .ok()
        .or_else(|| text.parse::<i32>().ok().map(|v| v as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn guid_mixed_endian_both_ways() {
        let cases = [
            (
                "6797e1e5ecb5154f960f865c28c015fa",
                "e5e19767-b5ec-4f15-960f-865c28c015fa",
            ),
            (
                "00000000000000000000000000000000",
                "00000000-0000-0000-0000-000000000000",
            ),
            (
                "0102030405060708090a0b0c0d0e0f10",
                "04030201-0605-0807-090a-0b0c0d0e0f10",
            ),
        ];
        for (raw, text) in cases {
            let guid = ad_guid_from_bytes(&hex(raw)).expect(raw);
            assert_eq!(guid.to_string(), text);
            assert_eq!(ad_guid_to_bytes(&guid).to_vec(), hex(raw));
            assert_eq!(ad_guid_to_bytes(&text.parse().unwrap()).to_vec(), hex(raw));
        }
    }

    #[test]
    fn guid_needs_exactly_16_bytes() {
        for len in [0, 1, 15, 17, 36] {
            assert_eq!(ad_guid_from_bytes(&vec![0xab; len]), None, "{len} bytes");
        }
    }

    #[test]
    fn filter_escaping() {
        let cases: &[(&[u8], &str)] = &[
            (&[], ""),
            (&[0x00], "\\00"),
            (b"(*)\\", "\\28\\2a\\29\\5c"),
            (
                &hex("6797e1e5ecb5154f960f865c28c015fa"),
                "\\67\\97\\e1\\e5\\ec\\b5\\15\\4f\\96\\0f\\86\\5c\\28\\c0\\15\\fa",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(ldap_filter_escape_bytes(raw), *want);
        }
        let guid: Uuid = "e5e19767-b5ec-4f15-960f-865c28c015fa".parse().unwrap();
        assert_eq!(
            ad_guid_filter(&guid),
            "(objectGUID=\\67\\97\\e1\\e5\\ec\\b5\\15\\4f\\96\\0f\\86\\5c\\28\\c0\\15\\fa)"
        );
    }

    #[test]
    fn filetime_conversion() {
        let cases: &[(i64, Option<i64>)] = &[
            (0, None),
            (i64::MAX, None),
            (-1, None),
            (116_444_736_000_000_000, Some(0)),
            (116_444_736_009_999_999, Some(0)),
            (116_444_735_990_000_000, None),
            // 2024-01-01T00:00:00Z
            (133_485_408_000_000_000, Some(1_704_067_200)),
            (133_485_408_015_000_000, Some(1_704_067_201)),
        ];
        for (ft, want) in cases {
            assert_eq!(filetime_to_unix(*ft), *want, "{ft}");
        }
        assert_eq!(parse_filetime("133485408000000000"), Some(1_704_067_200));
        assert_eq!(parse_filetime(" 0 "), None);
        assert_eq!(parse_filetime("9223372036854775807"), None);
        assert_eq!(parse_filetime("soon"), None);
    }

    #[test]
    fn account_disabled_flag() {
        let cases: &[(u32, bool)] = &[
            (0x1000, false),  // WORKSTATION_TRUST_ACCOUNT
            (0x1002, true),   // … and ACCOUNTDISABLE
            (0x82000, false), // SERVER_TRUST_ACCOUNT | TRUSTED_FOR_DELEGATION
            (0x2, true),
            (0xffff_fffd, false),
            (u32::MAX, true),
        ];
        for (uac, disabled) in cases {
            assert_eq!(uac_disabled(*uac), *disabled, "{uac:#x}");
        }
        let parsed: &[(&str, Option<u32>)] = &[
            ("4098", Some(0x1002)),
            ("4096", Some(0x1000)),
            ("-2147483646", Some(0x8000_0002)),
            ("4294967295", Some(u32::MAX)),
            ("", None),
            ("0x2", None),
        ];
        for (text, want) in parsed {
            assert_eq!(parse_uac(text), *want, "{text:?}");
        }
    }
}
