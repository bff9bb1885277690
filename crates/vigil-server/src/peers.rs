//! Trusted peers: calls to a peer's REST API (another Vigil server,
//! reached with an API token of that server, asked who it is and told to
//! move one of its agents here), and moving agents here ([`move_here`],
//! for the REST API and the web console alike).

use crate::app::App;
use crate::http::error::ApiError;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::netpolicy::{Destination, NetPolicy, Refusal};
use vigil_core::Plan;
use vigil_notify::guard::{check_url, find_refusal};
use vigil_proto::api::{
    AgentMoveOrder, AgentMoveView, AgentView, ErrorBody, MoveOutcome, MoveRequest, MoveResponse,
    ServerInfo, API_PREFIX,
};
use vigil_store::{AccountId, AgentId, StoreError};

/// How long one call to a peer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error text of a peer kept in a message.
const MAX_ERROR_CHARS: usize = 300;
/// Most agents one move request names (each is a call to a peer).
const MAX_MOVE_AGENTS: usize = 100;
/// How long a move instruction (and the enrollment token in it) stands.
pub(crate) const MOVE_TTL_MINUTES: u32 = 60;
/// Longest agent name the store takes, in characters.
const MAX_AGENT_NAME_CHARS: usize = 200;

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

/// Asks the peers that manage the named agents of `account` to move them
/// here (`POST /compliance/move` and the console's "Move here"; the
/// caller checks the write right first).
pub(crate) async fn move_here(
    app: &App,
    account: AccountId,
    actor: impl Into<crate::audit::Actor>,
    req: &MoveRequest,
) -> Result<MoveResponse, ApiError> {
    if req.agent_ids.is_empty() || req.agent_ids.len() > MAX_MOVE_AGENTS {
        return Err(ApiError::Invalid(format!(
            "agent_ids must name 1 to {MAX_MOVE_AGENTS} agents"
        )));
    }
    let assessment = app.store.latest_assessment(account).await?.ok_or_else(|| {
        ApiError::Conflict(
            "no assessment has run yet: assess the scope to find agents of other servers".into(),
        )
    })?;
    let plan = req.plan.unwrap_or(Plan::Community);
    let mut results = Vec::with_capacity(req.agent_ids.len());
    for agent_id in &req.agent_ids {
        let outcome = match move_one(app, account, assessment.id, agent_id, plan).await {
            Ok(server_id) => MoveOutcome {
                agent_id: agent_id.clone(),
                status: "requested".into(),
                server_id: Some(server_id),
                error: None,
            },
            Err(MoveFailure { server_id, error }) => MoveOutcome {
                agent_id: agent_id.clone(),
                status: "error".into(),
                server_id,
                error: Some(error),
            },
        };
        results.push(outcome);
    }
    let detail = serde_json::to_value(&results).ok();
    crate::audit::record(app, account, actor, "agent.move_here", None, detail).await;
    Ok(MoveResponse { results })
}

/// Why one agent could not be moved, and which server manages it if known.
struct MoveFailure {
    server_id: Option<String>,
    error: String,
}

impl MoveFailure {
    fn new(server_id: Option<&str>, error: impl Into<String>) -> Self {
        MoveFailure {
            server_id: server_id.map(str::to_string),
            error: error.into(),
        }
    }
}

/// Moves one agent; returns the ID of the server that manages it now.
async fn move_one(
    app: &App,
    account: AccountId,
    assessment: vigil_store::AssessmentId,
    agent_id: &str,
    plan: Plan,
) -> Result<String, MoveFailure> {
    let internal = |e: StoreError| {
        tracing::error!(error = %e, "move request failed");
        MoveFailure::new(None, "internal error")
    };
    if agent_id.parse::<AgentId>().is_err() {
        return Err(MoveFailure::new(
            None,
            format!("invalid agent id {agent_id:?}: expected a UUID"),
        ));
    }
    let (name, server_id) = app
        .store
        .managed_elsewhere(account, assessment, agent_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            MoveFailure::new(
                None,
                format!(
                    "agent {agent_id} is not managed by another server in the latest assessment"
                ),
            )
        })?;
    let known = Some(server_id.as_str());
    let peer = app
        .store
        .peer_by_server(account, &server_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            MoveFailure::new(
                known,
                format!("no trusted peer for server {server_id}: add it under /compliance/peers"),
            )
        })?;
    let client = PeerClient::new(&peer.api_url, &peer.api_token, &app.cfg.net_policy)
        .map_err(|e| MoveFailure::new(known, e.to_string()))?;
    // The agent keeps its name; the peer also confirms it knows the agent
    // before a token is made for it.
    let remote = client
        .agent(agent_id)
        .await
        .map_err(|e| MoveFailure::new(known, e.to_string()))?;
    if remote.removed_at.is_some() {
        return Err(MoveFailure::new(
            known,
            format!("agent {agent_id} was removed on server {server_id}"),
        ));
    }
    let name = [remote.name.as_str(), name.as_str(), agent_id]
        .into_iter()
        .map(|n| {
            n.trim()
                .chars()
                .take(MAX_AGENT_NAME_CHARS)
                .collect::<String>()
        })
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| agent_id.to_string());
    let ttl = Duration::from_secs(u64::from(MOVE_TTL_MINUTES) * 60);
    let token = app
        .store
        .create_enrollment(account, &name, plan, ttl)
        .await
        .map_err(internal)?;
    let order = AgentMoveOrder {
        agent_url: app.agent_url.clone(),
        pin: app.pin.to_string(),
        enrollment_token: token,
        ttl_minutes: Some(MOVE_TTL_MINUTES),
    };
    client
        .order_move(agent_id, &order)
        .await
        .map_err(|e| MoveFailure::new(known, e.to_string()))?;
    tracing::info!(agent = %agent_id, peer = %peer.id, %server_id, "agent move requested");
    Ok(server_id)
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
