//! Finding names for the addresses of a sweep: reverse DNS (PTR) through
//! the resolvers of the system's resolv.conf, of every address, and
//! NetBIOS node status (UDP 137) of the addresses that answered. The
//! lookups themselves are `vigil_scan::names` (shared with the agent);
//! which name an endpoint gets is decided by
//! `vigil_core::compliance::pick_name`.
//!
//! Both are bounded (see `vigil_scan::names`): PTR lookups run 512 at a
//! time with a [`PTR_TIMEOUT`], and stop early when the resolver does not
//! answer at all; node-status requests go out from one socket, and replies
//! are awaited [`NBSTAT_WAIT`] after the last one.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vigil_core::compliance::SeenNames;
use vigil_scan::names;

/// Per PTR lookup, one attempt: a name server on the LAN answers in
/// milliseconds, and an address without a record gets NXDOMAIN at once.
const PTR_TIMEOUT: Duration = Duration::from_secs(2);
/// How long replies to node status are awaited after the last request.
const NBSTAT_WAIT: Duration = Duration::from_millis(1000);

/// What the network calls each address: the PTR names and the NetBIOS
/// names found, together.
pub(crate) fn merge(
    ptr: HashMap<IpAddr, String>,
    netbios: HashMap<IpAddr, String>,
) -> HashMap<IpAddr, SeenNames> {
    let mut out: HashMap<IpAddr, SeenNames> = HashMap::new();
    for (addr, name) in ptr {
        out.entry(addr).or_default().dns = Some(name);
    }
    for (addr, name) in netbios {
        out.entry(addr).or_default().netbios = Some(name);
    }
    out
}

/// The PTR name of each address that has one, from the system's
/// resolvers. `None` if cancelled.
pub(crate) async fn reverse_dns(
    addrs: &[IpAddr],
    cancel: &CancellationToken,
) -> Option<HashMap<IpAddr, String>> {
    until_cancelled(cancel, names::reverse_dns(addrs, PTR_TIMEOUT, &[])).await
}

/// The NetBIOS computer name of each IPv4 address that answered node
/// status. `None` if cancelled.
pub(crate) async fn node_status(
    addrs: &[IpAddr],
    cancel: &CancellationToken,
) -> Option<HashMap<IpAddr, String>> {
    until_cancelled(cancel, names::node_status(addrs, NBSTAT_WAIT)).await
}

/// `lookup`'s result, or `None` as soon as `cancel` is (the lookup is
/// dropped, its sockets closed).
async fn until_cancelled<T>(
    cancel: &CancellationToken,
    lookup: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        found = lookup => Some(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The exchanges themselves are tested in network namespaces, against
    // dnsmasq and a node-status responder (crates/vigil-scan/tests/names.rs,
    // and a whole sweep in crates/vigil/tests/compliance_names.rs).
    #[tokio::test]
    async fn nothing_to_look_up_is_no_names() {
        let cancel = CancellationToken::new();
        assert!(reverse_dns(&[], &cancel)
            .await
            .expect("not cancelled")
            .is_empty());
        assert!(node_status(&[], &cancel)
            .await
            .expect("not cancelled")
            .is_empty());
    }

    #[tokio::test]
    async fn cancellation_stops_the_lookups() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let addrs: Vec<IpAddr> = vec!["198.51.100.1".parse().unwrap()];
        assert!(reverse_dns(&addrs, &cancel).await.is_none());
        assert!(node_status(&addrs, &cancel).await.is_none());
    }

    #[test]
    fn names_of_both_kinds_merge_per_address() {
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let merged = merge(
            HashMap::from([(a, "web01.acme.test".to_string())]),
            HashMap::from([(a, "WEB01".to_string()), (b, "FILES".to_string())]),
        );
        assert_eq!(merged[&a].dns.as_deref(), Some("web01.acme.test"));
        assert_eq!(merged[&a].netbios.as_deref(), Some("WEB01"));
        assert_eq!(
            (merged[&b].dns.as_deref(), merged[&b].netbios.as_deref()),
            (None, Some("FILES"))
        );
    }
}
