//! Reverse DNS (PTR) through a recursive resolver: the system's (resolv.conf,
//! or the network adapters' settings on Windows) or given servers.
//!
//! Lookups run [`PTR_CONCURRENCY`] at a time, one attempt each, and stop
//! early when the resolver does not answer at all (no DNS reachable:
//! [`PTR_GIVE_UP_AFTER`] timeouts before any answer).

use futures::stream::{self, StreamExt};
use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::error::ResolveErrorKind;
use hickory_resolver::TokioAsyncResolver;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use vigil_core::compliance::clean_host_name;

/// PTR lookups in flight at once (each holds a UDP socket). The lookups
/// of a sparse /16 are mostly waiting: 256 at once left a third of the
/// machine idle, 1,024 took 1.5 s off the /16's 8.9 s (BENCHMARKS.md).
const PTR_CONCURRENCY: usize = 512;
/// Timeouts, before any answer, after which the resolver is taken as
/// unreachable and the remaining lookups are skipped.
const PTR_GIVE_UP_AFTER: usize = 2 * PTR_CONCURRENCY;

/// The PTR name of each address that has a usable one (the first of its
/// PTR records that [`clean_host_name`] accepts), asking `servers`, or
/// the system's resolvers if it is empty; `timeout` per lookup, one
/// attempt (a name server on the LAN answers in milliseconds, and an
/// address without a record gets NXDOMAIN at once).
pub async fn reverse_dns(
    addrs: &[IpAddr],
    timeout: Duration,
    servers: &[SocketAddr],
) -> HashMap<IpAddr, String> {
    let addrs = super::unique(addrs.iter().copied());
    if addrs.is_empty() {
        return HashMap::new();
    }
    let Some(resolver) = resolver(timeout, servers) else {
        return HashMap::new();
    };
    let answered = AtomicUsize::new(0);
    let timeouts = AtomicUsize::new(0);
    let found = stream::iter(addrs)
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
                        let name = found.iter().find_map(|n| clean_host_name(&n.to_utf8()))?;
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
        .collect::<HashMap<_, _>>()
        .await;
    if answered.load(Ordering::Relaxed) == 0 && timeouts.load(Ordering::Relaxed) > 0 {
        tracing::warn!(
            "the DNS resolver did not answer reverse lookups: addresses get no reverse-DNS names"
        );
    }
    found
}

/// A resolver without a cache, one attempt per lookup; `None` (logged)
/// when the system has none configured.
fn resolver(timeout: Duration, servers: &[SocketAddr]) -> Option<TokioAsyncResolver> {
    let (config, mut opts) = if servers.is_empty() {
        match hickory_resolver::system_conf::read_system_conf() {
            Ok(conf) => conf,
            Err(e) => {
                tracing::warn!(error = %e, "no DNS resolver configured: addresses get no reverse-DNS names");
                return None;
            }
        }
    } else {
        let group: Vec<NameServerConfig> = servers
            .iter()
            .map(|s| NameServerConfig {
                trust_negative_responses: true,
                ..NameServerConfig::new(*s, Protocol::Udp)
            })
            .collect();
        (
            ResolverConfig::from_parts(None, Vec::new(), group),
            ResolverOpts::default(),
        )
    };
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.cache_size = 0;
    Some(TokioAsyncResolver::tokio(config, opts))
}
