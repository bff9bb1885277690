//! The operator's network policy ([`vigil_core::netpolicy`]) at connect
//! time, for HTTP clients that reach addresses a tenant wrote: webhooks
//! here, peer servers in `vigil-server`.
//!
//! reqwest asks [`PolicyResolver`] for every name it connects to, so the
//! address checked is the address connected to (no DNS-rebinding window).
//! reqwest does not resolve IP-literal hosts: [`check_url`] covers those
//! before the request is made. Redirects are never followed by these
//! clients, and proxies from the environment are not used (a proxy would
//! connect to the tenant's address unchecked).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use vigil_core::netpolicy::{Destination, NetPolicy, Refusal};

/// Resolves with the system resolver and keeps only the addresses the
/// policy allows for `kind`; none allowed is an error carrying the
/// [`Refusal`] of the first one.
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    policy: Arc<NetPolicy>,
    kind: Destination,
}

impl PolicyResolver {
    pub fn new(policy: Arc<NetPolicy>, kind: Destination) -> Self {
        PolicyResolver { policy, kind }
    }
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let kind = self.kind;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let addrs = allowed(&policy, kind, found)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `found` the policy allows for `kind`, in order; an
/// error when there are none (the refusal of the first address).
pub fn allowed(
    policy: &NetPolicy,
    kind: Destination,
    found: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, Refusal> {
    let mut ok = Vec::new();
    let mut refused = None;
    for addr in found {
        match policy.check(kind, addr.ip()) {
            Ok(()) => ok.push(addr),
            Err(r) => {
                refused.get_or_insert(r);
            }
        }
    }
    match (ok.is_empty(), refused) {
        (true, Some(r)) => Err(r),
        _ => Ok(ok),
    }
}

/// Checks a URL whose host is an IP address (names are checked when
/// resolved, by [`PolicyResolver`]).
pub fn check_url(policy: &NetPolicy, kind: Destination, url: &Url) -> Result<(), Refusal> {
    let literal = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    policy.check(kind, literal)
}

/// The policy refusal somewhere in an error's chain of sources (reqwest
/// wraps the resolver's error twice).
pub fn find_refusal<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refusal> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refusal>() {
            return Some(r);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_refused() {
        let policy = Arc::new(NetPolicy::default());
        let resolver = PolicyResolver::new(Arc::clone(&policy), Destination::Webhook);
        let name: Name = "localhost".parse().expect("a name");
        let err = match resolver.resolve(name).await {
            Ok(addrs) => panic!("localhost allowed: {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let refusal = find_refusal(err.as_ref()).expect("a policy refusal");
        assert!(refusal.addr.is_loopback(), "{refusal}");

        let mut open = NetPolicy::default();
        open.add(vigil_core::netpolicy::Verdict::Allow, "webhook=loopback")
            .expect("rule");
        let resolver = PolicyResolver::new(Arc::new(open), Destination::Webhook);
        let addrs: Vec<_> = resolver
            .resolve("localhost".parse().expect("a name"))
            .await
            .expect("allowed")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn literal_hosts_are_checked() {
        let policy = NetPolicy::default();
        for (url, ok) in [
            ("http://127.0.0.1:9/x", false),
            ("http://[::1]/x", false),
            ("http://[::ffff:127.0.0.1]/x", false),
            ("http://169.254.169.254/latest", false),
            ("http://10.0.0.1/hook", false),
            ("http://198.51.100.7/hook", true),
            ("https://hooks.example.com/x", true),
        ] {
            let url = Url::parse(url).expect("url");
            assert_eq!(
                check_url(&policy, Destination::Webhook, &url).is_ok(),
                ok,
                "{url}"
            );
        }
    }

    #[test]
    fn some_allowed_addresses_are_enough() {
        let policy = NetPolicy::default();
        let a: SocketAddr = "127.0.0.1:80".parse().expect("addr");
        let b: SocketAddr = "198.51.100.1:80".parse().expect("addr");
        assert_eq!(
            allowed(&policy, Destination::Webhook, [a, b]).expect("one allowed"),
            vec![b]
        );
        assert!(allowed(&policy, Destination::Webhook, [a]).is_err());
        assert_eq!(allowed(&policy, Destination::Webhook, []), Ok(vec![]));
    }
}
