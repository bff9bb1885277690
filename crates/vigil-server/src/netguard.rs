//! The operator's network policy ([`vigil_core::netpolicy`]) where the
//! server connects to what a tenant named: peer servers (HTTP), the LDAP
//! server of a compliance scope, SSH install hosts, compliance and scan
//! addresses. Checks happen twice: when a destination is saved (a clear 4xx
//! naming the rule) and **at connect time** on the resolved address (the
//! policy may have changed, a name may resolve elsewhere now).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use vigil_core::netpolicy::{Destination, NetPolicy, Refusal};

/// How long a save-time lookup may take before the name is let through
/// (it is checked again at connect time anyway).
const SAVE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a guarded connection was not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GuardError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{host} did not resolve: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {host} timed out")]
    Timeout { host: String },
}

/// The addresses `host` (a name or an address) stands for that the policy
/// allows for `kind`, in resolver order.
pub(crate) async fn resolve(
    policy: &NetPolicy,
    kind: Destination,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, GuardError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|source| GuardError::Resolve {
                host: host.into(),
                source,
            })?
            .collect(),
    };
    let allowed = vigil_notify::guard::allowed(policy, kind, found)?;
    if allowed.is_empty() {
        return Err(GuardError::NoAddress { host: host.into() });
    }
    Ok(allowed)
}

/// A TCP connection to the first allowed address of `host` that answers.
pub(crate) async fn connect(
    policy: &NetPolicy,
    kind: Destination,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<TcpStream, GuardError> {
    let attempt = async {
        let mut last = None;
        for addr in resolve(policy, kind, host, port).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(source) => last = Some(GuardError::Connect { addr, source }),
            }
        }
        Err(last.unwrap_or(GuardError::NoAddress { host: host.into() }))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| GuardError::Timeout { host: host.into() })?
}

/// The save-time check of a host a tenant typed: an address is checked;
/// a name is resolved now and refused when every address it has is
/// refused. A name that does not resolve (yet) passes: it is checked again
/// when connecting.
pub(crate) async fn check_host(
    policy: &NetPolicy,
    kind: Destination,
    host: &str,
) -> Result<(), Refusal> {
    let lookup = tokio::time::timeout(SAVE_LOOKUP_TIMEOUT, resolve(policy, kind, host, 0)).await;
    match lookup {
        Ok(Err(GuardError::Refused(r))) => Err(r),
        _ => Ok(()),
    }
}

/// [`check_host`] for the host of a URL.
pub(crate) async fn check_url_host(
    policy: &NetPolicy,
    kind: Destination,
    url: &str,
) -> Result<(), Refusal> {
    match reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
    {
        Some(host) => check_host(policy, kind, &host).await,
        None => Ok(()),
    }
}

/// An HTTP client builder whose every connection goes through the policy
/// (names via the resolver, IP literals need [`vigil_notify::guard::check_url`]
/// before each request), without environment proxies or redirects.
pub(crate) fn http_client(policy: &Arc<NetPolicy>, kind: Destination) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(vigil_notify::guard::PolicyResolver::new(
            Arc::clone(policy),
            kind,
        )))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::netpolicy::Verdict;

    #[tokio::test]
    async fn connections_go_only_where_the_policy_allows() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let strict = NetPolicy::default();
        for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"] {
            let err = connect(
                &strict,
                Destination::Ldap,
                host,
                port,
                Duration::from_secs(2),
            )
            .await
            .expect_err("loopback refused");
            assert!(matches!(err, GuardError::Refused(_)), "{host}: {err}");
            assert!(check_host(&strict, Destination::Ldap, host).await.is_err());
        }
        let mut open = NetPolicy::default();
        open.add(Verdict::Allow, "ldap=127.0.0.1").expect("rule");
        connect(
            &open,
            Destination::Ldap,
            "localhost",
            port,
            Duration::from_secs(2),
        )
        .await
        .expect("allowed");
        // Allowed for LDAP only.
        assert!(check_host(&open, Destination::Peer, "127.0.0.1")
            .await
            .is_err());
        // A name that does not resolve passes the save-time check.
        assert!(check_host(&strict, Destination::Peer, "nothing.invalid")
            .await
            .is_ok());
    }
}
