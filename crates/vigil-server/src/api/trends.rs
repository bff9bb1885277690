//! `GET /api/v1/trends` (the account) and `GET /api/v1/agents/{id}/trends`:
//! open ports and unauthorized-port alerts per day ([`crate::trends`]).

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Query;
use crate::ids;
use axum::extract::{Path, State};
use serde::Deserialize;
use std::sync::Arc;
use vigil_core::trend::TrendWindow;
use vigil_proto::api::TrendView;
use vigil_store::{now_unix, AgentId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrendQuery {
    window: Option<String>,
}

/// The window a query names (default 30 days).
fn window_of(raw: Option<&str>) -> Result<TrendWindow, ApiError> {
    match raw {
        None => Ok(TrendWindow::default()),
        Some(w) => TrendWindow::parse(w)
            .ok_or_else(|| ApiError::Invalid(format!("unknown window {w:?}: use 7d, 30d or 90d"))),
    }
}

/// `GET /api/v1/trends?window=7d|30d|90d`: the whole account.
pub(crate) async fn account(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<TrendQuery>,
) -> Result<axum::Json<TrendView>, ApiError> {
    let window = window_of(q.window.as_deref())?;
    let days = crate::trends::trend(&app, caller.account.id, None, window, now_unix()).await?;
    Ok(axum::Json(TrendView { window, days }))
}

/// `GET /api/v1/agents/{id}/trends?window=7d|30d|90d`: one agent.
pub(crate) async fn agent(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TrendQuery>,
) -> Result<axum::Json<TrendView>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let window = window_of(q.window.as_deref())?;
    // Another tenant's agent is not found, not an empty trend.
    let agent = app.store.agent(caller.account.id, id).await?;
    let days =
        crate::trends::trend(&app, caller.account.id, Some(agent.id), window, now_unix()).await?;
    Ok(axum::Json(TrendView { window, days }))
}
