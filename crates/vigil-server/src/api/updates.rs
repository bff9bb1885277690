//! Agent self-update: `GET /updates` (builds offered, auto-update, each
//! agent's progress), `POST /updates/rollout` (all agents, a tag, or some
//! agents), `PUT /updates/auto` (see [`crate::updates`]).

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_proto::api::{AutoUpdateRequest, RolloutRequest, RolloutView, UpdatesView};
use vigil_store::{now_unix, AgentId, Rollout};

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<UpdatesView>, ApiError> {
    Ok(axum::Json(
        crate::updates::view(&app, caller.account.id).await?,
    ))
}

/// Which agents a rollout request names; exactly one way.
pub(crate) fn rollout_of(req: &RolloutRequest) -> Result<Rollout, ApiError> {
    let tag = req.tag.as_deref().map(str::trim).filter(|t| !t.is_empty());
    match (req.all, tag, req.agents.is_empty()) {
        (true, None, true) => Ok(Rollout::All),
        (false, Some(tag), true) => Ok(Rollout::Tag(tag.to_string())),
        (false, None, false) => {
            let ids = req
                .agents
                .iter()
                .map(|a| ids::parse::<AgentId>("agent", a))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Rollout::Agents(ids))
        }
        _ => Err(ApiError::Invalid(
            "give exactly one of all: true, a tag, or agents: [ids]".into(),
        )),
    }
}

pub(crate) async fn rollout(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<RolloutRequest>,
) -> Result<(StatusCode, axum::Json<RolloutView>), ApiError> {
    caller.can_write()?;
    let to = rollout_of(&req)?;
    let account = caller.account.id;
    let agents = app.store.request_updates(account, &to, now_unix()).await?;
    let what = match &to {
        Rollout::All => "all agents".to_string(),
        Rollout::Tag(t) => format!("tag {t}"),
        Rollout::Agents(ids) => format!("{} agents", ids.len()),
    };
    crate::audit::record(
        &app,
        account,
        &caller,
        "updates.rollout",
        Some(&what),
        serde_json::to_value(&req).ok(),
    )
    .await;
    Ok((StatusCode::ACCEPTED, axum::Json(RolloutView { agents })))
}

pub(crate) async fn auto(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<AutoUpdateRequest>,
) -> Result<axum::Json<UpdatesView>, ApiError> {
    caller.can_write()?;
    let account = caller.account.id;
    app.store.set_auto_update(account, req.enabled).await?;
    let what = if req.enabled { "on" } else { "off" };
    crate::audit::record(&app, account, &caller, "updates.auto", Some(what), None).await;
    Ok(axum::Json(crate::updates::view(&app, account).await?))
}
