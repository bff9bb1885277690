//! The address safety rule: test hosts and routes only ever use the
//! documentation / benchmarking ranges, never anything routable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::{TestNetError, SCANNER_V4, SCANNER_V6};

/// Ranges this crate may use for target-side hosts and routes:
/// TEST-NET-2 `198.51.100.0/24`, TEST-NET-3 `203.0.113.0/24`, the
/// benchmarking range `198.18.0.0/15` and IPv6 documentation `2001:db8::/32`.
pub const ALLOWED_RANGES: [IpNet; 4] = [
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24)),
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15)),
    IpNet::V6(Ipv6Net::new_assert(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
    )),
];

fn allowed() -> impl Iterator<Item = IpNet> {
    ALLOWED_RANGES.into_iter()
}

fn allowed_list() -> String {
    let list: Vec<String> = allowed().map(|n| n.to_string()).collect();
    list.join(", ")
}

fn forbidden(what: impl ToString, why: &str) -> TestNetError {
    TestNetError::ForbiddenAddress {
        what: what.to_string(),
        why: why.to_string(),
    }
}

fn is_scanner(addr: IpAddr) -> bool {
    addr == IpAddr::V4(SCANNER_V4) || addr == IpAddr::V6(SCANNER_V6)
}

/// A target-side address: inside the allowed ranges and not a scanner address.
pub(crate) fn check_addr(addr: IpAddr) -> Result<(), TestNetError> {
    if !allowed().any(|net| net.contains(&addr)) {
        return Err(forbidden(
            addr,
            &format!("outside the allowed ranges {}", allowed_list()),
        ));
    }
    if is_scanner(addr) {
        return Err(forbidden(addr, "it is the scanner's source address"));
    }
    Ok(())
}

/// A target-side network: inside one allowed range and not containing a
/// scanner address.
pub(crate) fn check_net(net: IpNet) -> Result<(), TestNetError> {
    if !allowed().any(|range| range.contains(&net)) {
        return Err(forbidden(
            net,
            &format!("not inside one of the allowed ranges {}", allowed_list()),
        ));
    }
    if net.contains(&IpAddr::V4(SCANNER_V4)) || net.contains(&IpAddr::V6(SCANNER_V6)) {
        return Err(forbidden(net, "it contains the scanner's source address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn addresses() {
        assert!(check_addr("198.51.100.2".parse().unwrap()).is_ok());
        assert!(check_addr("2001:db8:1::2".parse().unwrap()).is_ok());
        assert!(check_addr("198.19.255.1".parse().unwrap()).is_ok());
        assert!(check_addr("198.18.0.1".parse().unwrap()).is_err());
        assert!(check_addr("2001:db8:ffff::1".parse().unwrap()).is_err());
        assert!(check_addr("10.0.0.1".parse().unwrap()).is_err());
        assert!(check_addr("8.8.8.8".parse().unwrap()).is_err());
        assert!(check_addr("2001:4860::1".parse().unwrap()).is_err());
    }

    #[test]
    fn networks() {
        assert!(check_net(net("198.19.0.0/16")).is_ok());
        assert!(check_net(net("2001:db8:2::/112")).is_ok());
        assert!(check_net(net("203.0.113.0/24")).is_ok());
        assert!(check_net(net("198.18.0.0/16")).is_err());
        assert!(check_net(net("2001:db8::/32")).is_err());
        assert!(check_net(net("198.0.0.0/8")).is_err());
        assert!(check_net(net("0.0.0.0/0")).is_err());
        assert!(check_net(net("::/0")).is_err());
    }
}
