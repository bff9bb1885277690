//! The agent API: enroll, heartbeat and result upload, over HTTPS with the
//! server's self-signed certificate (agents pin it at enrollment).
//!
//! Agents authenticate with `Authorization: Bearer <agent id>:<credential>`.
//! Connections are served (TLS, caps, timeouts) by [`crate::listen`].

use crate::app::App;
use crate::evaluate::IngestError;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Extension, Router};
use std::sync::Arc;
use vigil_proto::agent::{
    EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, MoveInstruction, MovedNotice,
    NetworkUpload, ResultUpload, ScanTask, UploadAck, ENROLL_PATH, HEARTBEAT_PATH, MAX_BODY_BYTES,
    MAX_NETWORK_BODY_BYTES, MOVED_PATH, NETWORK_PATH, RESULTS_PATH,
};
use vigil_store::{now_unix, Agent, AgentId, KeyUse, StoreError, DEPLOYMENT_KEY_PREFIX};

pub(crate) use crate::listen::Peer;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(ENROLL_PATH, post(enroll))
        .route(HEARTBEAT_PATH, post(heartbeat))
        .route(RESULTS_PATH, post(results))
        .route(MOVED_PATH, post(moved))
        .route(
            NETWORK_PATH,
            post(network).layer(DefaultBodyLimit::max(MAX_NETWORK_BODY_BYTES)),
        )
        .route(
            crate::install::SCRIPT_PATH,
            axum::routing::get(crate::install::serve::install_script),
        )
        .route(
            crate::install::DOWNLOAD_PATH,
            axum::routing::get(crate::install::serve::download),
        )
        .route(
            crate::install::PS1_PATH,
            axum::routing::get(crate::install::serve::install_ps1),
        )
        .route(
            crate::install::DOWNLOAD_EXE_PATH,
            axum::routing::get(crate::install::serve::download_exe),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            crate::http::metrics::track_agent,
        ))
        .with_state(app)
}

/// An authenticated agent.
pub(crate) struct AuthedAgent(pub Agent);

impl FromRequestParts<Arc<App>> for AuthedAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let header = crate::http::auth::bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let (id, credential) = header.split_once(':').ok_or(ApiError::Unauthorized)?;
        let id: AgentId = id.parse().map_err(|_| ApiError::Unauthorized)?;
        match app.store.authenticate_agent(id, credential).await? {
            Some(agent) => Ok(AuthedAgent(agent)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

fn facts_heartbeat<'a>(
    facts: &'a vigil_proto::agent::AgentFacts,
    peer: &'a str,
    now: i64,
) -> vigil_store::Heartbeat<'a> {
    let some = |s: &'a str| (!s.is_empty()).then_some(s);
    vigil_store::Heartbeat {
        now,
        public_addr: Some(peer),
        version: some(&facts.version),
        os: some(&facts.os),
        hostname: some(&facts.hostname),
    }
}

async fn enroll(
    State(app): State<Arc<App>>,
    Extension(Peer(peer)): Extension<Peer>,
    Json(req): Json<EnrollRequest>,
) -> Result<axum::Json<EnrollResponse>, ApiError> {
    let now = now_unix();
    let peer = peer.ip().to_canonical().to_string();
    // Refuse bad facts before the single-use token is spent.
    facts_heartbeat(&req.facts, &peer, now).validate()?;
    // The one `token` field takes a single-use token or a deployment key.
    let (redeemed, unknown) = if req.token.starts_with(DEPLOYMENT_KEY_PREFIX) {
        let used = KeyUse {
            now,
            peer_addr: &peer,
            hostname: &req.facts.hostname,
        };
        let redeemed = app.store.redeem_deployment_key(&req.token, &used).await;
        (redeemed, "unknown deployment key")
    } else {
        let redeemed = app.store.redeem_enrollment(&req.token, now).await;
        (redeemed, "unknown enrollment token")
    };
    let (agent, credential) = match redeemed {
        Ok(x) => x,
        Err(StoreError::NotFound) => return Err(ApiError::Forbidden(unknown.into())),
        // "already used" / "expired" / "revoked" / "used up"
        Err(StoreError::Invalid(msg)) => return Err(ApiError::Forbidden(msg)),
        Err(e) => return Err(e.into()),
    };
    app.store
        .record_heartbeat(
            agent.account_id,
            agent.id,
            &facts_heartbeat(&req.facts, &peer, now),
        )
        .await?;
    tracing::info!(agent = %agent.id, name = %agent.name, %peer, "agent enrolled");
    Ok(axum::Json(EnrollResponse {
        agent_id: agent.id.to_string(),
        credential,
        server_id: app.server_id.clone(),
        heartbeat_secs: app.cfg.heartbeat.as_secs().max(1),
        server_urls: replica_urls(&app.agent_url, &app.cfg.peer_agent_urls),
    }))
}

async fn heartbeat(
    State(app): State<Arc<App>>,
    Extension(Peer(peer)): Extension<Peer>,
    AuthedAgent(agent): AuthedAgent,
    Json(hb): Json<Heartbeat>,
) -> Result<axum::Json<HeartbeatResponse>, ApiError> {
    let now = now_unix();
    let peer = peer.ip().to_canonical().to_string();
    app.store
        .record_heartbeat(
            agent.account_id,
            agent.id,
            &facts_heartbeat(&hb.facts, &peer, now),
        )
        .await?;
    let update_key = Some(app.updates.public_key.clone());
    // A new agent build on trial: it proves it reaches the server; the
    // build in charge keeps the work.
    if hb.probe {
        return Ok(axum::Json(HeartbeatResponse {
            tasks: Vec::new(),
            heartbeat_secs: app.cfg.heartbeat.as_secs().max(1),
            observed_addr: peer,
            move_to: None,
            server_urls: replica_urls(&app.agent_url, &app.cfg.peer_agent_urls),
            update_key,
            update: None,
        }));
    }
    let update = crate::updates::on_heartbeat(&app, &agent, &hb, now).await?;
    // The server scans observed addresses itself.
    let server_side = vigil_core::PolicyTarget::ObservedAddress.key();
    let open: Vec<vigil_store::ScanTask> = app
        .store
        .open_tasks(agent.account_id, agent.id, now)
        .await?
        .into_iter()
        .filter(|t| t.target_key != server_side)
        .collect();
    // A network sweep carries what it covers, from the policy as it is now.
    let sweep = if open
        .iter()
        .any(|t| t.target_key == vigil_core::policy::NETWORK_TASK_KEY)
    {
        let kind = app.store.account(agent.account_id).await?.kind;
        app.store
            .policy(agent.account_id, agent.id)
            .await?
            .map(|p| crate::devices::sweep_of(&p, kind))
    } else {
        None
    };
    let tasks = open
        .into_iter()
        .filter_map(|t| {
            let network = if t.target_key == vigil_core::policy::NETWORK_TASK_KEY {
                // No policy any more: nothing to sweep.
                Some(sweep.clone()?)
            } else {
                None
            };
            Some(ScanTask {
                task_id: t.id.to_string(),
                target: t.target,
                ports: t.ports,
                network,
            })
        })
        .collect();
    // A move ordered through the REST API (by the destination server).
    let move_to = app
        .store
        .pending_agent_move(agent.account_id, agent.id, now)
        .await?
        .map(|m| MoveInstruction {
            server_url: m.server_url,
            pin: m.pin,
            enrollment_token: m.enrollment_token,
        });
    Ok(axum::Json(HeartbeatResponse {
        tasks,
        heartbeat_secs: app.cfg.heartbeat.as_secs().max(1),
        observed_addr: peer,
        move_to,
        server_urls: replica_urls(&app.agent_url, &app.cfg.peer_agent_urls),
        update_key,
        update,
    }))
}

/// What agents are told about the replicas: this server's agent URL and
/// its peers', once each; nothing without peers (a single server).
fn replica_urls(own: &str, peers: &[String]) -> Vec<String> {
    if peers.is_empty() {
        return Vec::new();
    }
    let mut urls: Vec<String> = Vec::with_capacity(peers.len() + 1);
    for url in std::iter::once(own).chain(peers.iter().map(String::as_str)) {
        let url = url.trim_end_matches('/');
        if !urls.iter().any(|u| u == url) {
            urls.push(url.to_string());
        }
    }
    urls
}

/// The agent followed its move instruction and is enrolled with another
/// server now: it is removed here, the move recorded as done.
async fn moved(
    State(app): State<Arc<App>>,
    AuthedAgent(agent): AuthedAgent,
    Json(notice): Json<MovedNotice>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    app.store
        .complete_agent_move(agent.account_id, agent.id, &notice.server_id, now_unix())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::Conflict("this agent was not told to move".into()),
            e => e.into(),
        })?;
    tracing::info!(agent = %agent.id, name = %agent.name, to = %notice.server_id, "agent moved to another server; removed here");
    Ok(axum::Json(serde_json::json!({"removed": true})))
}

async fn results(
    State(app): State<Arc<App>>,
    AuthedAgent(agent): AuthedAgent,
    Json(upload): Json<ResultUpload>,
) -> Result<axum::Json<UploadAck>, ApiError> {
    match app.ingest(&agent, &upload, now_unix()).await {
        Ok(status) => Ok(axum::Json(UploadAck { status })),
        Err(IngestError::Rejected(msg)) => Err(ApiError::Invalid(msg)),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

async fn network(
    State(app): State<Arc<App>>,
    AuthedAgent(agent): AuthedAgent,
    Json(upload): Json<NetworkUpload>,
) -> Result<axum::Json<UploadAck>, ApiError> {
    match app.ingest_network(&agent, &upload, now_unix()).await {
        Ok(status) => Ok(axum::Json(UploadAck { status })),
        Err(IngestError::Rejected(msg)) => Err(ApiError::Invalid(msg)),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::replica_urls;

    #[test]
    fn replica_urls_are_announced_only_with_peers() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("https://a:8443", &[], &[]),
            (
                "https://a:8443",
                &["https://b:8443"],
                &["https://a:8443", "https://b:8443"],
            ),
            (
                "https://a:8443/",
                &["https://b:8443/", "https://a:8443", "https://b:8443"],
                &["https://a:8443", "https://b:8443"],
            ),
        ];
        for (own, peers, want) in cases {
            let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            assert_eq!(replica_urls(own, &peers), *want, "{own} {peers:?}");
        }
    }
}
