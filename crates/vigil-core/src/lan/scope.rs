//! CIDR blocks and ranges a user adds to a local-network sweep, and how
//! many addresses one location may sweep.

use crate::plan::AccountKind;
use crate::targets::{AddrRange, TargetSpec};
use ipnet::IpNet;
use std::net::IpAddr;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScopeError {
    #[error("invalid network {given:?}: {reason}")]
    Invalid { given: String, reason: String },
    #[error(
        "the networks to sweep hold {addresses} addresses; {kind} accounts may sweep at most \
         {limit} per location (a /{prefix} in IPv4)"
    )]
    TooLarge {
        addresses: u128,
        limit: u128,
        kind: AccountKind,
        prefix: u8,
    },
}

/// The ports a local-network sweep probes besides the policy's own: the
/// services devices of a home or office network expose (remote access, web
/// consoles, printers, cameras, file sharing, MQTT, VNC). A LAN sweep is
/// hundreds of addresses, so it probes these rather than the full range an
/// observed-address scan sweeps.
pub const LAN_PORTS: &str = "21,22,23,53,80,139,443,445,554,631,1883,3389,5000,5900,8080,8443,9100";

/// [`LAN_PORTS`] as a port list.
pub fn lan_ports() -> crate::PortList {
    // A constant of this module, checked by a test below.
    crate::PortList::parse(LAN_PORTS).unwrap_or_default()
}

/// How many addresses one location's sweep may cover: a /22 (1,024) for
/// members, a /16 (65,536) for organizations. It bounds what the user adds
/// and each of the agent's own subnets (a larger one is left out, and said
/// so), so one location cannot turn its agent into a scanner of someone
/// else's network.
pub fn sweep_limit(kind: AccountKind) -> u128 {
    match kind {
        AccountKind::Member => 1 << 10,
        AccountKind::Organization => 1 << 16,
    }
}

/// The IPv4 prefix length of [`sweep_limit`], for messages.
pub fn limit_prefix(kind: AccountKind) -> u8 {
    // 2^(32 - prefix) = limit
    32 - sweep_limit(kind).trailing_zeros() as u8
}

/// Parses a network the user adds: a CIDR block (`198.51.100.0/24`,
/// `2001:db8::/120`), a dash range (`198.51.100.10-198.51.100.99`) or one
/// address. Returns its normal form (CIDR with the host bits cleared
/// refused rather than guessed: `198.51.100.7/24` is probably a typo) and
/// its addresses. Host names are not networks.
pub fn network_range(given: &str) -> Result<(String, AddrRange), ScopeError> {
    let invalid = |reason: &str| ScopeError::Invalid {
        given: given.into(),
        reason: reason.into(),
    };
    let token = given.trim();
    if token != given || token.is_empty() {
        return Err(invalid(
            "expected a CIDR block, a range or an address without spaces",
        ));
    }
    if token.contains('/') {
        let net: IpNet = token
            .parse()
            .map_err(|_| invalid("not a CIDR block (e.g. 198.51.100.0/24)"))?;
        if net.trunc() != net {
            return Err(invalid(&format!(
                "host bits are set: write it as {}",
                net.trunc()
            )));
        }
        return Ok((net.to_string(), AddrRange::from(net)));
    }
    match token.parse::<TargetSpec>() {
        Ok(TargetSpec::Range(r)) => {
            let normal = if r.len() == 1 {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            };
            Ok((normal, r))
        }
        Ok(TargetSpec::Name(_)) => Err(invalid(
            "a host name is not a network (add it as a host target instead)",
        )),
        Err(e) => Err(invalid(&e.to_string())),
    }
}

/// Checks that `ranges` together stay within the account's
/// [`sweep_limit`].
pub fn check_total<'a>(
    ranges: impl IntoIterator<Item = &'a AddrRange>,
    kind: AccountKind,
) -> Result<(), ScopeError> {
    let addresses = ranges
        .into_iter()
        .fold(0u128, |n, r| n.saturating_add(r.len()));
    let limit = sweep_limit(kind);
    if addresses > limit {
        return Err(ScopeError::TooLarge {
            addresses,
            limit,
            kind,
            prefix: limit_prefix(kind),
        });
    }
    Ok(())
}

/// Whether an address is never swept, whatever the user adds: loopback,
/// link-local, multicast, unspecified and broadcast addresses are not
/// devices of a location's network.
pub fn never_swept(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_link_local()
                || a.is_multicast()
                || a.is_unspecified()
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_multicast()
                || a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Whether any address of `range` is never swept ([`never_swept`]): a
/// range may start and end on ordinary addresses and still hold loopback
/// or multicast ones (`126.255.255.0-127.0.0.255`).
pub fn touches_never_swept(range: &AddrRange) -> bool {
    const V4: [(u32, u32); 5] = [
        (0, 0),                     // 0.0.0.0
        (0x7f00_0000, 0x7fff_ffff), // 127.0.0.0/8
        (0xa9fe_0000, 0xa9fe_ffff), // 169.254.0.0/16
        (0xe000_0000, 0xefff_ffff), // 224.0.0.0/4
        (0xffff_ffff, 0xffff_ffff), // 255.255.255.255
    ];
    const V6: [(u128, u128); 3] = [
        (0, 1),                               // :: and ::1
        (0xfe80 << 112, (0xfec0 << 112) - 1), // fe80::/10
        (0xff00 << 112, u128::MAX),           // ff00::/8
    ];
    match (range.start(), range.end()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let (a, b) = (u32::from(a), u32::from(b));
            V4.iter().any(|&(lo, hi)| a <= hi && lo <= b)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a), u128::from(b));
            V6.iter().any(|&(lo, hi)| a <= hi && lo <= b)
        }
        // An AddrRange is of one family.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_around_special_addresses_touches_them() {
        let r = |s: &str| network_range(s).expect(s).1;
        for s in [
            "126.255.255.0-127.0.0.255",
            "169.253.255.250-169.254.0.5",
            "223.255.255.0-224.0.0.10",
            "0.0.0.0/30",
            "127.0.0.1",
            "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ff00-fe80::10",
            "::/127",
            "ff02::1",
        ] {
            assert!(touches_never_swept(&r(s)), "{s}");
        }
        for s in [
            "198.51.100.0/24",
            "2001:db8::/112",
            "126.0.0.0/30",
            "fec0::/120",
        ] {
            assert!(!touches_never_swept(&r(s)), "{s}");
        }
        // One address: the same verdict as never_swept.
        for a in [
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.251",
            "fe80::1",
            "::1",
            "198.51.100.7",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(
                touches_never_swept(&AddrRange::single(ip)),
                never_swept(ip),
                "{a}"
            );
        }
    }

    #[test]
    fn accepts_blocks_ranges_and_addresses_in_normal_form() {
        let cases = [
            ("198.51.100.0/24", "198.51.100.0/24", 256),
            (
                "198.51.100.10-198.51.100.19",
                "198.51.100.10-198.51.100.19",
                10,
            ),
            ("198.51.100.7", "198.51.100.7", 1),
            ("2001:db8::/120", "2001:db8::/120", 256),
            ("2001:DB8::1", "2001:db8::1", 1),
        ];
        for (given, normal, len) in cases {
            let (n, r) = network_range(given).expect(given);
            assert_eq!((n.as_str(), r.len()), (normal, len), "{given}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_network_saying_why() {
        for (given, why) in [
            ("198.51.100.7/24", "write it as 198.51.100.0/24"),
            ("nas.lan", "host name is not a network"),
            ("198.51.100.0/33", "not a CIDR block"),
            (" 198.51.100.0/24", "without spaces"),
            ("", "without spaces"),
            ("198.51.100.9-198.51.100.1", "after its end"),
        ] {
            let err = network_range(given).expect_err(given).to_string();
            assert!(err.contains(why), "{given}: {err}");
        }
    }

    #[test]
    fn members_sweep_a_22_organizations_a_16() {
        let r = |s: &str| network_range(s).expect(s).1;
        let member = AccountKind::Member;
        assert_eq!(limit_prefix(member), 22);
        assert_eq!(limit_prefix(AccountKind::Organization), 16);
        assert!(check_total(&[r("198.18.0.0/22")], member).is_ok());
        let err = check_total(&[r("198.18.0.0/22"), r("198.51.100.1")], member)
            .expect_err("one too many");
        assert!(err.to_string().contains("1025 addresses"), "{err}");
        assert!(err.to_string().contains("/22"), "{err}");
        assert!(check_total(&[r("198.18.0.0/16")], AccountKind::Organization).is_ok());
        assert!(check_total(&[r("198.18.0.0/15")], AccountKind::Organization).is_err());
        assert!(check_total(&[r("2001:db8::/64")], AccountKind::Organization).is_err());
    }

    #[test]
    fn the_lan_ports_parse() {
        assert!(crate::PortList::parse(LAN_PORTS).is_ok());
        assert!(lan_ports().contains(9100) && lan_ports().contains(22));
    }

    #[test]
    fn special_addresses_are_never_swept() {
        for a in [
            "127.0.0.1",
            "169.254.1.1",
            "224.0.0.251",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(never_swept(a.parse().expect(a)), "{a}");
        }
        for a in ["198.51.100.1", "2001:db8::1"] {
            assert!(!never_swept(a.parse().expect(a)), "{a}");
        }
    }
}
