//! The account's outside-scan schedule: `GET /outside-schedule`, `PUT
//! /outside-schedule` (admins and owners), see [`vigil_core::outside`].

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use axum::extract::State;
use std::sync::Arc;
use vigil_core::outside::OutsideSchedule;

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<OutsideSchedule>, ApiError> {
    Ok(axum::Json(
        app.store.outside_schedule(caller.account.id).await?,
    ))
}

pub(crate) async fn set(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(schedule): Json<OutsideSchedule>,
) -> Result<axum::Json<OutsideSchedule>, ApiError> {
    caller.can_write()?;
    let account = caller.account.id;
    let schedule = app.store.set_outside_schedule(account, schedule).await?;
    let what = schedule.to_string();
    crate::audit::record(
        &app,
        account,
        &caller,
        "outside_schedule.update",
        Some(&what),
        serde_json::to_value(schedule).ok(),
    )
    .await;
    Ok(axum::Json(schedule))
}
