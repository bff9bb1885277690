//! Maintenance windows: `GET/POST /maintenance`, `GET/PUT/DELETE
//! /maintenance/{id}` (the rules are in [`crate::maintenance`]).

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids;
use crate::maintenance::{checked, view};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_core::maintenance::Window;
use vigil_proto::api::MaintenanceView;
use vigil_store::{now_unix, MaintenanceId};

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<MaintenanceView>>, ApiError> {
    let account = caller.account.id;
    let agents = app.store.agents(account).await?;
    let now = now_unix();
    let windows = app.store.windows(account).await?;
    Ok(axum::Json(
        windows.iter().map(|w| view(w, &agents, now)).collect(),
    ))
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<MaintenanceView>, ApiError> {
    let id: MaintenanceId = ids::parse("maintenance window", &id)?;
    let account = caller.account.id;
    let w = app.store.window(account, id).await?;
    let agents = app.store.agents(account).await?;
    Ok(axum::Json(view(&w, &agents, now_unix())))
}

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<Window>,
) -> Result<(StatusCode, axum::Json<MaintenanceView>), ApiError> {
    caller.can_write()?;
    let account = caller.account.id;
    checked(&app, account, &req).await?;
    let now = now_unix();
    let w = app
        .store
        .create_window(account, &req, Some(&caller.user.email), now)
        .await?;
    crate::audit::record(
        &app,
        account,
        &caller,
        "maintenance.create",
        Some(&w.window.name),
        serde_json::to_value(&w.window).ok(),
    )
    .await;
    let agents = app.store.agents(account).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&w, &agents, now))))
}

pub(crate) async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Window>,
) -> Result<axum::Json<MaintenanceView>, ApiError> {
    caller.can_write()?;
    let id: MaintenanceId = ids::parse("maintenance window", &id)?;
    let account = caller.account.id;
    checked(&app, account, &req).await?;
    let w = app.store.update_window(account, id, &req).await?;
    crate::audit::record(
        &app,
        account,
        &caller,
        "maintenance.update",
        Some(&w.window.name),
        serde_json::to_value(&w.window).ok(),
    )
    .await;
    let agents = app.store.agents(account).await?;
    Ok(axum::Json(view(&w, &agents, now_unix())))
}

pub(crate) async fn remove(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: MaintenanceId = ids::parse("maintenance window", &id)?;
    app.store.delete_window(caller.account.id, id).await?;
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "maintenance.delete",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
