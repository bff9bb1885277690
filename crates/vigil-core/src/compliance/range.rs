//! IP ranges as users write them: a single address, a CIDR block
//! (`198.51.100.0/24`, `2001:db8::/112`) or a dash range
//! (`198.51.100.10-198.51.100.99`, `2001:db8::1-2001:db8::ff`).
//!
//! A range is written without spaces, has both ends in one family with the
//! start first, and holds at most [`MAX_RANGE_ADDRESSES`] (65,536: IPv4
//! /16, IPv6 /112), as in the original tool, whose IPv6 ranges cover at
//! most 16 bits. Host bits of a CIDR are ignored (`198.51.100.7/24` is
//! `198.51.100.0/24`), as in security-scan targets. Messages name the
//! range, the limit and the rule.

use super::error::ComplianceError;
use crate::targets::AddrRange;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Most addresses one IP range may hold (IPv4 /16, IPv6 /112).
pub const MAX_RANGE_ADDRESSES: u128 = 65_536;

/// How the user wrote a range; kept so it is shown back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Form {
    Single,
    Cidr(u8),
    Dash,
}

/// One IP range of the scope: `198.51.100.7`, `198.51.100.0/24`,
/// `2001:db8::/112`, `198.51.100.10-198.51.100.99`, `2001:db8::1-2001:db8::ff`.
///
/// Serialized as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpRange {
    range: AddrRange,
    form: Form,
}

impl IpRange {
    pub fn parse(input: &str) -> Result<IpRange, ComplianceError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(ComplianceError::EmptyRange);
        }
        let syntax = |reason| ComplianceError::RangeSyntax {
            range: text.to_owned(),
            reason,
        };
        if text.chars().any(char::is_whitespace) {
            return Err(ComplianceError::RangeWhitespace {
                range: text.to_owned(),
            });
        }
        let (range, form) = if let Ok(addr) = text.parse::<IpAddr>() {
            (AddrRange::single(addr), Form::Single)
        } else if let Some((addr, prefix)) = text.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| syntax("the part before '/' is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            // Digits only, no leading zero: `u8::from_str` would also take
            // `+24` and `024`, which scan targets (and `ipnet`) refuse.
            let plain = prefix.bytes().all(|b| b.is_ascii_digit())
                && (prefix == "0" || !prefix.starts_with('0'));
            let prefix = prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max && plain)
                .ok_or_else(|| {
                    syntax(if addr.is_ipv4() {
                        "the prefix length after '/' must be a number from 0 to 32 for IPv4"
                    } else {
                        "the prefix length after '/' must be a number from 0 to 128 for IPv6"
                    })
                })?;
            let net = IpNet::new(addr, prefix)
                .map_err(|_| syntax("the prefix length is too long for this address"))?;
            (AddrRange::from(net), Form::Cidr(prefix))
        } else if let Some((a, b)) = text.split_once('-') {
            let a: IpAddr = a
                .parse()
                .map_err(|_| syntax("the start of the range is not an IP address"))?;
            let b: IpAddr = b.parse().map_err(|_| {
                syntax("the end of the range is not an IP address (write both ends in full, e.g. 198.51.100.10-198.51.100.99)")
            })?;
            if a.is_ipv4() != b.is_ipv4() {
                return Err(ComplianceError::RangeMixedFamily {
                    range: text.to_owned(),
                });
            }
            let range = AddrRange::new(a, b).map_err(|_| ComplianceError::RangeReversed {
                range: text.to_owned(),
            })?;
            (range, Form::Dash)
        } else {
            return Err(syntax(
                "expected an address, a CIDR block or a dash range (e.g. 198.51.100.0/24, 2001:db8::/112, 198.51.100.10-198.51.100.99)",
            ));
        };
        if range.len() > MAX_RANGE_ADDRESSES {
            return Err(ComplianceError::RangeTooLarge {
                range: text.to_owned(),
                addresses: range.len(),
                ipv6: range.start().is_ipv6(),
            });
        }
        Ok(IpRange { range, form })
    }

    pub fn start(&self) -> IpAddr {
        self.range.start()
    }

    pub fn end(&self) -> IpAddr {
        self.range.end()
    }

    pub fn is_ipv6(&self) -> bool {
        self.range.start().is_ipv6()
    }

    /// Number of addresses, 1 to 65,536.
    pub fn len(&self) -> u32 {
        // Bounded by MAX_RANGE_ADDRESSES at construction.
        self.range.len() as u32
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.range.contains(addr)
    }

    /// The addresses of the range in ascending order.
    pub fn iter(&self) -> Addresses {
        Addresses::new(self.range)
    }

    /// The range as a plain start–end pair.
    pub fn addr_range(&self) -> AddrRange {
        self.range
    }
}

impl IntoIterator for &IpRange {
    type Item = IpAddr;
    type IntoIter = Addresses;

    fn into_iter(self) -> Addresses {
        self.iter()
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.form {
            Form::Single => write!(f, "{}", self.start()),
            Form::Cidr(prefix) => write!(f, "{}/{prefix}", self.start()),
            Form::Dash => write!(f, "{}-{}", self.start(), self.end()),
        }
    }
}

impl FromStr for IpRange {
    type Err = ComplianceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpRange::parse(s)
    }
}

impl TryFrom<String> for IpRange {
    type Error = ComplianceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        IpRange::parse(&s)
    }
}

impl From<IpRange> for String {
    fn from(r: IpRange) -> String {
        r.to_string()
    }
}

/// The addresses of one contiguous range, ascending.
#[derive(Debug, Clone)]
pub struct Addresses {
    range: AddrRange,
    next: u128,
    len: u128,
}

impl Addresses {
    pub(super) fn new(range: AddrRange) -> Self {
        Addresses {
            range,
            next: 0,
            len: range.len(),
        }
    }
}

impl Iterator for Addresses {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        if self.next >= self.len {
            return None;
        }
        let addr = self.range.nth(self.next);
        self.next += 1;
        addr
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.len - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Addresses {}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        IpRange::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_ranges_and_shows_them_as_written() {
        // input, display, start, end, len
        let cases: &[(&str, &str, &str, &str, u32)] = &[
            (
                "198.51.100.7",
                "198.51.100.7",
                "198.51.100.7",
                "198.51.100.7",
                1,
            ),
            (
                " 198.51.100.7 ",
                "198.51.100.7",
                "198.51.100.7",
                "198.51.100.7",
                1,
            ),
            (
                "198.51.100.0/24",
                "198.51.100.0/24",
                "198.51.100.0",
                "198.51.100.255",
                256,
            ),
            (
                "198.51.100.77/24",
                "198.51.100.0/24",
                "198.51.100.0",
                "198.51.100.255",
                256,
            ),
            (
                "10.1.0.0/16",
                "10.1.0.0/16",
                "10.1.0.0",
                "10.1.255.255",
                65_536,
            ),
            (
                "198.51.100.9/32",
                "198.51.100.9/32",
                "198.51.100.9",
                "198.51.100.9",
                1,
            ),
            (
                "198.51.100.10-198.51.100.99",
                "198.51.100.10-198.51.100.99",
                "198.51.100.10",
                "198.51.100.99",
                90,
            ),
            (
                "10.0.0.0-10.0.255.255",
                "10.0.0.0-10.0.255.255",
                "10.0.0.0",
                "10.0.255.255",
                65_536,
            ),
            (
                "2001:db8::/112",
                "2001:db8::/112",
                "2001:db8::",
                "2001:db8::ffff",
                65_536,
            ),
            (
                "2001:db8::/120",
                "2001:db8::/120",
                "2001:db8::",
                "2001:db8::ff",
                256,
            ),
            (
                "2001:db8::/124",
                "2001:db8::/124",
                "2001:db8::",
                "2001:db8::f",
                16,
            ),
            (
                "2001:DB8:0::1/128",
                "2001:db8::1/128",
                "2001:db8::1",
                "2001:db8::1",
                1,
            ),
            (
                "2001:db8::1-2001:db8::ff",
                "2001:db8::1-2001:db8::ff",
                "2001:db8::1",
                "2001:db8::ff",
                255,
            ),
            ("::1", "::1", "::1", "::1", 1),
        ];
        for (input, display, start, end, len) in cases {
            let r = range(input);
            assert_eq!(r.to_string(), *display, "{input}");
            assert_eq!(r.start().to_string(), *start, "{input}");
            assert_eq!(r.end().to_string(), *end, "{input}");
            assert_eq!(r.len(), *len, "{input}");
            assert_eq!(r.iter().count(), *len as usize, "{input}");
            assert_eq!(range(display), r, "{input} round-trips");
        }
    }

    #[test]
    fn refuses_bad_ranges_naming_range_limit_and_rule() {
        let cases: &[(&str, &str)] = &[
            (
                "2001:db8::/104",
                "range \"2001:db8::/104\" has 16,777,216 addresses; a range may hold at most 65,536 (IPv6: prefix /112 to /128)",
            ),
            (
                "2001:db8::/111",
                "range \"2001:db8::/111\" has 131,072 addresses; a range may hold at most 65,536 (IPv6: prefix /112 to /128)",
            ),
            (
                "10.0.0.0/15",
                "range \"10.0.0.0/15\" has 131,072 addresses; a range may hold at most 65,536 (IPv4: prefix /16 to /32)",
            ),
            (
                "10.0.0.0-10.1.0.0",
                "range \"10.0.0.0-10.1.0.0\" has 65,537 addresses; a range may hold at most 65,536 (IPv4: prefix /16 to /32)",
            ),
            (
                "2001:db8::-2001:db8::1:0",
                "range \"2001:db8::-2001:db8::1:0\" has 65,537 addresses; a range may hold at most 65,536 (IPv6: prefix /112 to /128)",
            ),
            (
                "::/0",
                "range \"::/0\" has 340,282,366,920,938,463,463,374,607,431,768,211,455 addresses; a range may hold at most 65,536 (IPv6: prefix /112 to /128)",
            ),
            (
                "198.51.100.99-198.51.100.10",
                "range \"198.51.100.99-198.51.100.10\" starts after it ends; write the lower address first",
            ),
            (
                "198.51.100.1-2001:db8::1",
                "range \"198.51.100.1-2001:db8::1\" mixes IPv4 and IPv6; both ends must be of one family",
            ),
            (
                "198.51.100.10 - 198.51.100.99",
                "range \"198.51.100.10 - 198.51.100.99\" contains whitespace; write it without spaces (e.g. 198.51.100.10-198.51.100.99)",
            ),
            (
                "198.51.100.0/ 24",
                "range \"198.51.100.0/ 24\" contains whitespace; write it without spaces (e.g. 198.51.100.10-198.51.100.99)",
            ),
            ("", "an IP range is empty; write an address, a CIDR block (198.51.100.0/24) or a dash range (198.51.100.10-198.51.100.99)"),
            ("  ", "an IP range is empty; write an address, a CIDR block (198.51.100.0/24) or a dash range (198.51.100.10-198.51.100.99)"),
        ];
        for (input, want) in cases {
            let got = IpRange::parse(input).expect_err(input).to_string();
            assert_eq!(got, *want, "{input}");
        }
    }

    #[test]
    fn refuses_malformed_ranges_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("198.51.100.0/33", "0 to 32 for IPv4"),
            ("2001:db8::/129", "0 to 128 for IPv6"),
            ("198.51.100.0/", "0 to 32 for IPv4"),
            ("198.51.100.0/+24", "0 to 32 for IPv4"),
            // Found by fuzzing: accepted here, refused as a scan target.
            ("10.16.0.0/016", "0 to 32 for IPv4"),
            ("10.16.0.0/00", "0 to 32 for IPv4"),
            ("2001:db8::/0112", "0 to 128 for IPv6"),
            ("198.51.100.0/24/24", "0 to 32 for IPv4"),
            ("198.51.100/24", "before '/' is not an IP address"),
            ("198.51.100.10-99", "end of the range is not an IP address"),
            ("198.51.100.10-", "end of the range is not an IP address"),
            ("-198.51.100.10", "start of the range is not an IP address"),
            (
                "1.2.3.4-5.6.7.8-9.9.9.9",
                "end of the range is not an IP address",
            ),
            (
                "fe80::1%eth0",
                "expected an address, a CIDR block or a dash range",
            ),
            (
                "web01.example.test",
                "expected an address, a CIDR block or a dash range",
            ),
            (
                "198.51.100.256",
                "expected an address, a CIDR block or a dash range",
            ),
        ];
        for (input, reason) in cases {
            let msg = IpRange::parse(input).expect_err(input).to_string();
            assert!(
                msg.starts_with(&format!("range {input:?} is not valid: ")),
                "{msg}"
            );
            assert!(msg.contains(reason), "{input:?}: {msg}");
        }
    }

    #[test]
    fn range_contains_and_iterates() {
        let r = range("2001:db8::fe-2001:db8::101");
        let all: Vec<String> = r.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            all,
            [
                "2001:db8::fe",
                "2001:db8::ff",
                "2001:db8::100",
                "2001:db8::101"
            ]
        );
        assert_eq!(r.iter().len(), 4);
        let cases: &[(&str, bool)] = &[
            ("2001:db8::fd", false),
            ("2001:db8::fe", true),
            ("2001:db8::100", true),
            ("2001:db8::101", true),
            ("2001:db8::102", false),
            ("0.0.0.254", false),
        ];
        for (addr, inside) in cases {
            let addr: IpAddr = addr.parse().unwrap();
            assert_eq!(r.contains(addr), *inside, "{addr}");
        }
        assert_eq!((&range("198.51.100.0/30")).into_iter().count(), 4);
    }
}
