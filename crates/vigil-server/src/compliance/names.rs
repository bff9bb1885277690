//! Finding names for the addresses of a sweep (IO): reverse DNS (PTR)
//! through the resolvers of the system's resolv.conf, of every address,
//! and NetBIOS node status (UDP 137) of the addresses that answered. Which
//! name an endpoint gets is decided by `vigil_core::compliance::pick_name`.
//!
//! Both are bounded: PTR lookups run [`PTR_CONCURRENCY`] at a time with a
//! short timeout, and stop early when the resolver does not answer at all
//! (no DNS reachable: [`PTR_GIVE_UP_AFTER`] timeouts before any answer);
//! node-status requests go out from one socket, and replies are awaited
//! [`NBSTAT_WAIT`] after the last one.

use futures::stream::{self, StreamExt};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::TokioAsyncResolver;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use vigil_core::compliance::{
    node_status_request, parse_node_status, SeenNames, NETBIOS_NAME_PORT,
};

/// PTR lookups in flight at once (each holds a UDP socket). The lookups
/// of a sparse /16 are mostly waiting: 256 at once left a third of the
/// machine idle, 1,024 took 1.5 s off the /16's 8.9 s (BENCHMARKS.md).
const PTR_CONCURRENCY: usize = 512;
/// Per PTR lookup, one attempt: a name server on the LAN answers in
/// milliseconds, and an address without a record gets NXDOMAIN at once.
const PTR_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeouts, before any answer, after which the resolver is taken as
/// unreachable and the remaining lookups are skipped.
const PTR_GIVE_UP_AFTER: usize = 2 * PTR_CONCURRENCY;
/// How long replies to node status are awaited after the last request.
const NBSTAT_WAIT: Duration = Duration::from_millis(1000);
/// Pause between node-status requests (about 20,000 a second at most).
const NBSTAT_PACE: Duration = Duration::from_micros(50);

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

/// The PTR name of each address that has one. `None` if cancelled.
pub(crate) async fn reverse_dns(
    addrs: &[IpAddr],
    cancel: &CancellationToken,
) -> Option<HashMap<IpAddr, String>> {
    if addrs.is_empty() {
        return Some(HashMap::new());
    }
    let resolver = match hickory_resolver::system_conf::read_system_conf() {
        Ok((config, mut opts)) => {
            opts.timeout = PTR_TIMEOUT;
            opts.attempts = 1;
            opts.cache_size = 0;
            TokioAsyncResolver::tokio(config, opts)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no DNS resolver configured: endpoints get no reverse-DNS names");
            return Some(HashMap::new());
        }
    };
    let answered = AtomicUsize::new(0);
    let timeouts = AtomicUsize::new(0);
    let lookups = stream::iter(addrs.iter().copied())
        .map(|addr| {
            let (resolver, answered, timeouts) = (&resolver, &answered, &timeouts);
            async move {
                if answered.load(Ordering::Relaxed) == 0
                    && timeouts.load(Ordering::Relaxed) >= PTR_GIVE_UP_AFTER
                {
                    return None;
                }
                match resolver.reverse_lookup(addr).await {
                    Ok(found) => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        let name = found.iter().next()?.to_utf8();
                        Some((addr, name))
                    }
                    Err(e) => {
                        match e.kind() {
                            ResolveErrorKind::NoRecordsFound { .. } => {
                                answered.fetch_add(1, Ordering::Relaxed);
                            }
                            ResolveErrorKind::Timeout => {
                                timeouts.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                        None
                    }
                }
            }
        })
        .buffer_unordered(PTR_CONCURRENCY)
        .filter_map(|found| async move { found })
        .collect::<HashMap<_, _>>();
    let found = tokio::select! {
        biased;
        _ = cancel.cancelled() => return None,
        found = lookups => found,
    };
    if answered.load(Ordering::Relaxed) == 0 && timeouts.load(Ordering::Relaxed) > 0 {
        tracing::warn!(
            "the DNS resolver did not answer reverse lookups: endpoints get no reverse-DNS names"
        );
    }
    Some(found)
}

/// The NetBIOS computer name of each IPv4 address that answered node
/// status. `None` if cancelled.
pub(crate) async fn node_status(
    addrs: &[IpAddr],
    cancel: &CancellationToken,
) -> Option<HashMap<IpAddr, String>> {
    let targets: Vec<Ipv4Addr> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    if targets.is_empty() {
        return Some(HashMap::new());
    }
    let socket = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open a UDP socket: endpoints get no NetBIOS names");
            return Some(HashMap::new());
        }
    };
    // One transaction id per address (its index, wrapping), checked on
    // the reply together with the address it came from.
    let base: u16 = rand::random();
    let ids: HashMap<Ipv4Addr, u16> = targets
        .iter()
        .enumerate()
        .map(|(i, a)| (*a, base.wrapping_add(i as u16)))
        .collect();
    let send = async {
        for (addr, id) in &ids {
            let to = SocketAddr::from((*addr, NETBIOS_NAME_PORT));
            if let Err(e) = socket.send_to(&node_status_request(*id), to).await {
                tracing::debug!(%addr, error = %e, "node status not sent");
            }
            tokio::time::sleep(NBSTAT_PACE).await;
        }
    };
    let mut found = HashMap::new();
    let mut buf = vec![0u8; 1500];
    let receive = async {
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    // e.g. an ICMP error reported on the socket: not a reply.
                    tracing::debug!(error = %e, "node-status receive failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let IpAddr::V4(from_v4) = from.ip() else {
                continue;
            };
            let Some(&id) = ids.get(&from_v4) else {
                continue;
            };
            match parse_node_status(&buf[..n], id) {
                Ok(status) => {
                    if let Some(name) = status.computer_name() {
                        found.insert(from.ip(), name.to_owned());
                    }
                }
                Err(e) => tracing::debug!(%from, error = %e, "not a node-status reply"),
            }
            if found.len() == ids.len() {
                break;
            }
        }
    };
    let exchange = async {
        tokio::pin!(receive);
        tokio::select! {
            _ = &mut receive => {}
            _ = async { send.await; tokio::time::sleep(NBSTAT_WAIT).await } => {}
        }
    };
    tokio::select! {
        biased;
        _ = cancel.cancelled() => return None,
        _ = exchange => {}
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The exchanges themselves are tested in network namespaces, against
    // dnsmasq and a node-status responder (crates/vigil/tests/compliance_names.rs).
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
