//! Moving agents between Vigil servers.
//!
//! On the destination ("this server"): trusted peers (other servers, with
//! an API token of theirs) and `POST /compliance/move`, which asks the peer
//! that manages each agent to hand it over, with a fresh single-use
//! enrollment token of this server ([`crate::peers::move_here`], shared
//! with the console).
//!
//! On the source (the peer): `POST /agents/{id}/move` stores the
//! instruction; the agent gets it with its next heartbeat (see
//! `agent_api`), enrolls with the destination and reports back, which
//! removes it here. `GET /agents/{id}/move` shows how far it got.

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids;
use crate::peers::{move_here, PeerClient, PeerError, MOVE_TTL_MINUTES};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_proto::api::{
    AgentMoveOrder, AgentMoveView, MoveRequest, MoveResponse, NewPeer, PeerView,
};
use vigil_proto::pin::CertPin;
use vigil_store::{now_unix, AgentId, AgentMove, MoveOrder, Peer, PeerId, StoreError};

/// Longest a move instruction may stand (an order's `ttl_minutes`).
const MAX_MOVE_TTL_MINUTES: u32 = 24 * 60;

fn peer_view(p: &Peer) -> PeerView {
    PeerView {
        id: p.id.to_string(),
        name: p.name.clone(),
        api_url: p.api_url.clone(),
        server_id: p.server_id.clone(),
        created_at: p.created_at,
    }
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<PeerView>>, ApiError> {
    let peers = app.store.peers(caller.account.id).await?;
    Ok(axum::Json(peers.iter().map(peer_view).collect()))
}

/// Trusts a peer after asking it who it is with the token.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<NewPeer>,
) -> Result<(StatusCode, axum::Json<PeerView>), ApiError> {
    caller.can_write()?;
    if req.name.trim().is_empty() {
        return Err(ApiError::Invalid("peer name must not be empty".into()));
    }
    if req.api_token.is_empty() {
        return Err(ApiError::Invalid("api_token must not be empty".into()));
    }
    let info = PeerClient::new(&req.api_url, &req.api_token, &app.cfg.net_policy)
        .map_err(peer_error)?
        .server_info()
        .await
        .map_err(peer_error)?;
    if info.server_id == app.server_id {
        return Err(ApiError::Invalid(format!(
            "{} is this server (server ID {}): a peer is another Vigil server",
            req.api_url, info.server_id
        )));
    }
    let peer = app
        .store
        .create_peer(
            caller.account.id,
            &vigil_store::NewPeer {
                name: &req.name,
                api_url: &req.api_url,
                api_token: &req.api_token,
                server_id: &info.server_id,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict(format!(
                "a peer for server {} is already trusted",
                info.server_id
            )),
            e => e.into(),
        })?;
    tracing::info!(peer = %peer.id, server_id = %peer.server_id, url = %peer.api_url, "peer trusted");
    let detail = serde_json::json!({"id": peer.id.to_string(), "api_url": peer.api_url, "server_id": peer.server_id});
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "peer.create",
        Some(&peer.name),
        Some(detail),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(peer_view(&peer))))
}

pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: PeerId = ids::parse("peer", &id)?;
    app.store.delete_peer(caller.account.id, id).await?;
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "peer.delete",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// How a failed call to a peer is answered: the token or URL the user gave
/// is a 422, an address the network policy refuses a 403, a peer that
/// fails or is away a 502.
fn peer_error(e: PeerError) -> ApiError {
    match e {
        PeerError::Policy(r) => r.into(),
        PeerError::Url(_) | PeerError::Token { .. } => ApiError::Invalid(e.to_string()),
        PeerError::Unreachable { .. } | PeerError::Refused { .. } | PeerError::Garbled { .. } => {
            ApiError::Upstream(e.to_string())
        }
    }
}

/// Asks the peers that manage the named agents to move them here.
pub(crate) async fn move_agents(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<MoveRequest>,
) -> Result<axum::Json<MoveResponse>, ApiError> {
    caller.can_write()?;
    Ok(axum::Json(
        move_here(&app, caller.account.id, &caller, &req).await?,
    ))
}

fn move_view(m: &AgentMove, now: i64) -> AgentMoveView {
    let state = if m.moved_at.is_some() {
        "moved"
    } else if m.is_pending(now) {
        "pending"
    } else {
        "expired"
    };
    AgentMoveView {
        agent_id: m.agent_id.to_string(),
        state: state.into(),
        agent_url: m.server_url.clone(),
        requested_at: m.requested_at,
        expires_at: m.expires_at,
        moved_at: m.moved_at,
        moved_to: m.moved_to.clone(),
    }
}

/// The source's side: the agent is told to re-enroll at its next heartbeat.
pub(crate) async fn order_move(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(order): Json<AgentMoveOrder>,
) -> Result<(StatusCode, axum::Json<AgentMoveView>), ApiError> {
    caller.can_write()?;
    let id: AgentId = ids::parse("agent", &id)?;
    let url = reqwest::Url::parse(&order.agent_url).ok();
    if !url.is_some_and(|u| u.scheme() == "https" && u.host_str().is_some()) {
        return Err(ApiError::Invalid(format!(
            "invalid agent_url {:?}: agents talk to servers over https://host:port only",
            order.agent_url
        )));
    }
    let pin: CertPin = order
        .pin
        .parse()
        .map_err(|e: vigil_proto::pin::PinError| ApiError::Invalid(e.to_string()))?;
    if order.enrollment_token.is_empty() {
        return Err(ApiError::Invalid(
            "enrollment_token must not be empty".into(),
        ));
    }
    let minutes = order.ttl_minutes.unwrap_or(MOVE_TTL_MINUTES);
    if !(1..=MAX_MOVE_TTL_MINUTES).contains(&minutes) {
        return Err(ApiError::Invalid(format!(
            "ttl_minutes {minutes} is out of range: use 1 to {MAX_MOVE_TTL_MINUTES}"
        )));
    }
    let agent = app.store.agent(caller.account.id, id).await?;
    if agent.is_removed() {
        return Err(ApiError::Conflict(
            "the agent was removed; only an enrolled agent can move".into(),
        ));
    }
    let now = now_unix();
    let pin = pin.to_string();
    let stored = app
        .store
        .request_agent_move(
            caller.account.id,
            id,
            &MoveOrder {
                server_url: &order.agent_url,
                pin: &pin,
                enrollment_token: &order.enrollment_token,
                expires_at: now + i64::from(minutes) * 60,
            },
        )
        .await?;
    tracing::info!(agent = %id, to = %stored.server_url, "agent move ordered");
    let detail = serde_json::json!({"to": stored.server_url});
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "agent.move_order",
        Some(&agent.name),
        Some(detail),
    )
    .await;
    Ok((StatusCode::ACCEPTED, axum::Json(move_view(&stored, now))))
}

pub(crate) async fn get_move(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentMoveView>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let m = app
        .store
        .agent_move(caller.account.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(move_view(&m, now_unix())))
}
