//! Target specifications: an address, a CIDR block, a dash range or a hostname.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetSpecError {
    #[error("empty target")]
    Empty,
    #[error("invalid target {token:?}: {reason}")]
    Invalid { token: String, reason: String },
}

fn invalid(token: &str, reason: impl Into<String>) -> TargetSpecError {
    TargetSpecError::Invalid {
        token: token.into(),
        reason: reason.into(),
    }
}

/// One target as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// A contiguous block of addresses (single address, CIDR or dash range).
    Range(AddrRange),
    /// A DNS name, resolved by the IO layer.
    Name(String),
}

impl FromStr for TargetSpec {
    type Err = TargetSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let token = s.trim();
        if token.is_empty() {
            return Err(TargetSpecError::Empty);
        }
        if let Ok(addr) = token.parse::<IpAddr>() {
            return Ok(TargetSpec::Range(AddrRange::single(addr)));
        }
        if token.contains('/') {
            let net: IpNet = token.parse().map_err(|_| {
                invalid(
                    token,
                    "not a CIDR block (e.g. 198.51.100.0/24, 2001:db8::/112)",
                )
            })?;
            return Ok(TargetSpec::Range(AddrRange::from(net)));
        }
        if let Some((a, b)) = token.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
                return AddrRange::new(a, b)
                    .map(TargetSpec::Range)
                    .map_err(|reason| invalid(token, reason));
            }
            if a.trim().parse::<IpAddr>().is_ok() {
                return Err(invalid(
                    token,
                    "range end is not an address (write both ends in full, e.g. 198.51.100.10-198.51.100.99)",
                ));
            }
        }
        validate_hostname(token)?;
        Ok(TargetSpec::Name(token.to_ascii_lowercase()))
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Range(r) => r.fmt(f),
            TargetSpec::Name(n) => f.write_str(n),
        }
    }
}

fn validate_hostname(token: &str) -> Result<(), TargetSpecError> {
    let name = token.strip_suffix('.').unwrap_or(token);
    if name.len() > 253 {
        return Err(invalid(token, "hostname longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid(
                token,
                "not an address, CIDR, range or hostname (empty or over-long name label)",
            ));
        }
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(
                token,
                "not an address, CIDR, range or hostname (hostnames use letters, digits, '-' and '.')",
            ));
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid(token, "not a valid IPv4 address"));
    }
    Ok(())
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    start: IpAddr,
    end: IpAddr,
}

impl AddrRange {
    pub fn single(addr: IpAddr) -> Self {
        AddrRange {
            start: addr,
            end: addr,
        }
    }

    /// A range from `start` to `end` inclusive; both of one family, `start <= end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, String> {
        if start.is_ipv4() != end.is_ipv4() {
            return Err("range mixes IPv4 and IPv6".into());
        }
        if to_u128(start) > to_u128(end) {
            return Err("range start is after its end".into());
        }
        Ok(AddrRange { start, end })
    }

    pub fn start(&self) -> IpAddr {
        self.start
    }

    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// Number of addresses (a full IPv6 space saturates at `u128::MAX`).
    pub fn len(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// Always false: a range holds at least its start address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th address of the range, if `i < len()`.
    pub fn nth(&self, i: u128) -> Option<IpAddr> {
        if i >= self.len() {
            return None;
        }
        let v = to_u128(self.start) + i;
        Some(from_u128(v, self.start.is_ipv4()))
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(addr))
    }
}

impl From<IpNet> for AddrRange {
    fn from(net: IpNet) -> Self {
        AddrRange {
            start: net.network(),
            end: net.broadcast(),
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u32::from(v) as u128,
        IpAddr::V6(v) => u128::from(v),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        // Ranges are built from two IPv4 ends, so the value fits in 32 bits.
        IpAddr::V4(std::net::Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> AddrRange {
        match s.parse::<TargetSpec>().unwrap() {
            TargetSpec::Range(r) => r,
            other => panic!("expected a range, got {other:?}"),
        }
    }

    #[test]
    fn parses_addresses_cidrs_and_ranges() {
        let cases: &[(&str, &str, &str, u128)] = &[
            ("198.51.100.7", "198.51.100.7", "198.51.100.7", 1),
            ("198.51.100.0/24", "198.51.100.0", "198.51.100.255", 256),
            ("198.51.100.77/24", "198.51.100.0", "198.51.100.255", 256),
            (
                "198.51.100.10-198.51.100.99",
                "198.51.100.10",
                "198.51.100.99",
                90,
            ),
            ("2001:db8::/112", "2001:db8::", "2001:db8::ffff", 65536),
            (
                "2001:db8::1-2001:db8::ff",
                "2001:db8::1",
                "2001:db8::ff",
                255,
            ),
            ("::1", "::1", "::1", 1),
            ("198.18.0.0/15", "198.18.0.0", "198.19.255.255", 131072),
        ];
        for (spec, start, end, len) in cases {
            let r = range(spec);
            assert_eq!(r.start().to_string(), *start, "{spec}");
            assert_eq!(r.end().to_string(), *end, "{spec}");
            assert_eq!(r.len(), *len, "{spec}");
        }
    }

    #[test]
    fn parses_hostnames() {
        for name in ["localhost", "Web-1.Example.test", "a.b.c.", "_srv.example"] {
            assert!(
                matches!(name.parse::<TargetSpec>(), Ok(TargetSpec::Name(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn rejects_bad_targets_naming_them() {
        for bad in [
            "198.51.100.0/33",
            "2001:db8::/129",
            "198.51.100.9-198.51.100.1",
            "198.51.100.1-2001:db8::1",
            "198.51.100.1-99",
            "999.1.1.1",
            "host name",
            "-bad.example",
            "a..b",
            "exa$mple",
        ] {
            let err = bad.parse::<TargetSpec>().unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        assert_eq!("".parse::<TargetSpec>(), Err(TargetSpecError::Empty));
    }

    #[test]
    fn nth_walks_the_range() {
        let r = range("198.51.100.254-198.51.101.1");
        let all: Vec<String> = (0..r.len())
            .map(|i| r.nth(i).unwrap().to_string())
            .collect();
        assert_eq!(
            all,
            [
                "198.51.100.254",
                "198.51.100.255",
                "198.51.101.0",
                "198.51.101.1"
            ]
        );
        assert_eq!(r.nth(4), None);
        assert!(r.contains("198.51.100.255".parse().unwrap()));
        assert!(!r.contains("198.51.101.2".parse().unwrap()));
        assert!(!r.contains("::1".parse().unwrap()));
    }

    #[test]
    fn full_ipv6_space_saturates() {
        assert_eq!(range("::/0").len(), u128::MAX);
    }
}
