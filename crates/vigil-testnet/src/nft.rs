//! Firewall rules in the target namespace: one nftables table
//! `inet vigiltest` with an `input` chain that silently drops TCP.

use std::net::IpAddr;

use crate::ns::{run_with_stdin, Namespace};
use crate::TestNetError;

/// `add` is idempotent for tables and chains, so every script starts with it.
const PREAMBLE: &str = "add table inet vigiltest\n\
     add chain inet vigiltest input { type filter hook input priority 0; policy accept; }\n";

/// The rule that drops TCP to `addr` (and `port`, if given).
fn drop_rule(addr: IpAddr, port: Option<u16>) -> String {
    let family = match addr {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    };
    let proto = match port {
        Some(p) => format!("tcp dport {p}"),
        None => "meta l4proto tcp".to_string(),
    };
    format!("add rule inet vigiltest input {family} daddr {addr} {proto} drop\n")
}

/// Install a drop rule for TCP to `addr` (and `port`) in namespace `ns`.
pub(crate) fn drop_tcp(
    ns: &Namespace,
    addr: IpAddr,
    port: Option<u16>,
) -> Result<(), TestNetError> {
    let script = format!("{PREAMBLE}{}", drop_rule(addr, port));
    run_with_stdin(ns.exec("nft").args(["-f", "-"]), Some(script.as_bytes())).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(
            drop_rule("198.51.100.2".parse().unwrap(), Some(82)),
            "add rule inet vigiltest input ip daddr 198.51.100.2 tcp dport 82 drop\n"
        );
        assert_eq!(
            drop_rule("2001:db8:1::2".parse().unwrap(), None),
            "add rule inet vigiltest input ip6 daddr 2001:db8:1::2 meta l4proto tcp drop\n"
        );
    }
}
