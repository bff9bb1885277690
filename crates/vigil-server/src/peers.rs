//! Calls to a trusted peer's REST API: another Vigil server, reached with
//! an API token of that server, asked who it is and told to move one of
//! its agents here.

use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::netpolicy::{Destination, NetPolicy, Refusal};
use vigil_notify::guard::{check_url, find_refusal};
use vigil_proto::api::{
    AgentMoveOrder, AgentMoveView, AgentView, ErrorBody, ServerInfo, API_PREFIX,
};

/// How long one call to a peer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error text of a peer kept in a message.
const MAX_ERROR_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("invalid peer URL {0:?}: use http(s)://host[:port] of its REST API")]
    Url(String),
    #[error("cannot reach the peer at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the peer at {url} refused the API token ({status}): use a token of an admin or owner there")]
    Token { url: String, status: u16 },
    #[error("the peer at {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the peer at {url} sent an unexpected answer: {reason}")]
    Garbled { url: String, reason: String },
    #[error(transparent)]
    Policy(#[from] Refusal),
}

/// The REST API of one peer.
pub(crate) struct PeerClient {
    http: reqwest::Client,
    /// Checked before each call for IP-literal URLs (names are checked by
    /// the client's resolver).
    policy: Arc<NetPolicy>,
    /// `…/api/v1`.
    base: String,
    token: String,
}

impl PeerClient {
    /// `api_url` is the peer's REST API base URL (without `/api/v1`).
    pub(crate) fn new(
        api_url: &str,
        token: &str,
        policy: &Arc<NetPolicy>,
    ) -> Result<Self, PeerError> {
        let url = reqwest::Url::parse(api_url).map_err(|_| PeerError::Url(api_url.into()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(PeerError::Url(api_url.into()));
        }
        // No redirects: the token goes to this URL and nowhere else.
        let http = crate::netguard::http_client(policy, Destination::Peer)
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("vigil-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PeerError::Unreachable {
                url: api_url.into(),
                reason: e.to_string(),
            })?;
        Ok(PeerClient {
            http,
            policy: Arc::clone(policy),
            base: format!("{}{API_PREFIX}", api_url.trim_end_matches('/')),
            token: token.to_string(),
        })
    }

    /// `GET /api/v1/server`: the peer's server ID (and that the token works).
    pub(crate) async fn server_info(&self) -> Result<ServerInfo, PeerError> {
        self.call(self.http.get(format!("{}/server", self.base)))
            .await
    }

    /// `GET /api/v1/agents/{id}`: one of the peer's agents.
    pub(crate) async fn agent(&self, agent_id: &str) -> Result<AgentView, PeerError> {
        let url = self.agent_url(agent_id, &[])?;
        self.call(self.http.get(url)).await
    }

    /// `POST /api/v1/agents/{id}/move`: the peer tells its agent at the
    /// next heartbeat to re-enroll as `order` says.
    pub(crate) async fn order_move(
        &self,
        agent_id: &str,
        order: &AgentMoveOrder,
    ) -> Result<AgentMoveView, PeerError> {
        let url = self.agent_url(agent_id, &["move"])?;
        self.call(self.http.post(url).json(order)).await
    }

    /// `…/agents/{agent_id}/{rest…}`, each segment percent-encoded (agent
    /// ids come from identify answers of arbitrary hosts).
    fn agent_url(&self, agent_id: &str, rest: &[&str]) -> Result<reqwest::Url, PeerError> {
        let bad = || PeerError::Url(self.base.clone());
        let mut url = reqwest::Url::parse(&self.base).map_err(|_| bad())?;
        url.path_segments_mut()
            .map_err(|_| bad())?
            .extend(["agents", agent_id])
            .extend(rest);
        Ok(url)
    }

    async fn call<R: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<R, PeerError> {
        let url = self.base.clone();
        if let Ok(parsed) = reqwest::Url::parse(&url) {
            check_url(&self.policy, Destination::Peer, &parsed)?;
        }
        let resp =
            req.bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| match find_refusal(&e) {
                    Some(r) => PeerError::Policy(r.clone()),
                    None => PeerError::Unreachable {
                        url: url.clone(),
                        reason: describe(&e),
                    },
                })?;
        let status = resp.status();
        if status.is_success() {
            return resp.json().await.map_err(|e| PeerError::Garbled {
                url,
                reason: describe(&e),
            });
        }
        let code = status.as_u16();
        if code == 401 || code == 403 {
            return Err(PeerError::Token { url, status: code });
        }
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text)
            .chars()
            .take(MAX_ERROR_CHARS)
            .collect();
        Err(PeerError::Refused {
            url,
            status: code,
            message,
        })
    }
}

/// The full error chain: reqwest's top-level message alone hides the cause.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_allowed() -> Arc<NetPolicy> {
        let mut p = NetPolicy::default();
        p.add(vigil_core::netpolicy::Verdict::Allow, "peer=loopback")
            .expect("rule");
        Arc::new(p)
    }

    /// With the default policy a peer on loopback is refused, by address
    /// and by a name resolving to it, and the message names the rule.
    #[tokio::test]
    async fn the_default_policy_refuses_a_loopback_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let strict = Arc::new(NetPolicy::default());
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{port}");
            let err = PeerClient::new(&url, "t", &strict)
                .expect("client")
                .server_info()
                .await
                .expect_err("refused");
            assert!(matches!(err, PeerError::Policy(_)), "{url}: {err}");
            assert!(err.to_string().contains("loopback"), "{err}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host() {
        for bad in [
            "",
            "ftp://x",
            "vigil.example",
            "http://",
            "unix:/run/vigil.sock",
        ] {
            assert!(
                matches!(
                    PeerClient::new(bad, "t", &loopback_allowed()),
                    Err(PeerError::Url(_))
                ),
                "{bad}"
            );
        }
        let c =
            PeerClient::new("http://127.0.0.1:18080/", "t", &loopback_allowed()).expect("client");
        assert_eq!(c.base, "http://127.0.0.1:18080/api/v1");
        let url = c.agent_url("../../x?y#z", &["move"]).expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:18080/api/v1/agents/..%2F..%2Fx%3Fy%23z/move"
        );
    }

    #[tokio::test]
    async fn an_absent_peer_is_unreachable_and_the_message_names_it() {
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = PeerClient::new(&url, "t", &loopback_allowed())
            .expect("client")
            .server_info()
            .await
            .expect_err("nobody there");
        assert!(matches!(err, PeerError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains(&url), "{err}");
    }
}
