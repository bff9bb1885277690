//! Resolving the dNSHostNames of AD computers with the system resolver
//! (`getaddrinfo`: /etc/hosts, then the DNS servers of resolv.conf, which
//! in an AD network are the domain controllers). A name that does not
//! resolve in time is simply absent from the answer: its computer is
//! assessed from what else is known.

use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Lookups in flight at once (each holds a blocking-pool thread).
const CONCURRENCY: usize = 64;
/// Per name.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves each name to its addresses (distinct, in resolver order).
/// `None` if cancelled.
pub(crate) async fn resolve_all(
    names: Vec<String>,
    cancel: &CancellationToken,
) -> Option<HashMap<String, Vec<IpAddr>>> {
    let lookups = stream::iter(names)
        .map(|name| async move {
            let addrs = lookup(&name).await;
            (name, addrs)
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|(name, addrs)| async move { (!addrs.is_empty()).then_some((name, addrs)) })
        .collect::<HashMap<_, _>>();
    tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        resolved = lookups => Some(resolved),
    }
}

async fn lookup(name: &str) -> Vec<IpAddr> {
    match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Ok(Ok(found)) => {
            let mut addrs: Vec<IpAddr> = Vec::new();
            for a in found.map(|sa| sa.ip()) {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
            addrs
        }
        Ok(Err(e)) => {
            tracing::debug!(name, error = %e, "name did not resolve");
            Vec::new()
        }
        Err(_) => {
            tracing::debug!(name, "name resolution timed out");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_what_resolves_and_leaves_out_the_rest() {
        let names = vec!["localhost".to_string(), "no-such-host.invalid".to_string()];
        let got = resolve_all(names, &CancellationToken::new())
            .await
            .expect("not cancelled");
        assert!(got["localhost"].iter().all(|a| a.is_loopback()), "{got:?}");
        assert!(!got.contains_key("no-such-host.invalid"));
    }

    #[tokio::test]
    async fn cancellation_stops_resolution() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let names = (0..10).map(|i| format!("h{i}.invalid")).collect();
        assert!(resolve_all(names, &cancel).await.is_none());
    }
}
