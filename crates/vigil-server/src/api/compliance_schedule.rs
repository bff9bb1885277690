//! When compliance assessments run by themselves, and the assessments that
//! ran: the schedule (`/compliance/schedule`) and the history
//! (`/compliance/history`). The runner is `crate::compliance::schedule`.

use crate::app::App;
use crate::compliance::schedule::HISTORY_KEEP;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};
use axum::extract::State;
use serde::Deserialize;
use std::sync::Arc;
use vigil_core::compliance::ComplianceSchedule;
use vigil_proto::api::{AssessmentHistoryEntry, ComplianceScheduleUpdate, ComplianceScheduleView};
use vigil_store::{now_unix, AccountId};

/// History entries shown unless `limit` says otherwise.
const DEFAULT_HISTORY: u32 = 20;

pub(crate) async fn get_schedule(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<ComplianceScheduleView>, ApiError> {
    Ok(axum::Json(view(&app, caller.account.id).await?))
}

/// Saves the schedule and plans its next run (none while disabled).
pub(crate) async fn put_schedule(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(update): Json<ComplianceScheduleUpdate>,
) -> Result<axum::Json<ComplianceScheduleView>, ApiError> {
    caller.can_write()?;
    let schedule = ComplianceSchedule::from(update);
    schedule
        .validate_for(caller.account.kind)
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    app.store
        .put_compliance_schedule(caller.account.id, &schedule, now_unix())
        .await?;
    tracing::info!(account = %caller.account.id, ?schedule, "compliance schedule saved");
    let detail = serde_json::to_value(&schedule).ok();
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "schedule.update",
        None,
        detail,
    )
    .await;
    Ok(axum::Json(view(&app, caller.account.id).await?))
}

async fn view(app: &App, account: AccountId) -> Result<ComplianceScheduleView, ApiError> {
    let schedule = app
        .store
        .compliance_schedule(account)
        .await?
        .unwrap_or_default();
    let next_run_at = app.store.compliance_next_run(account).await?;
    Ok(ComplianceScheduleView {
        schedule,
        next_run_at,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryQuery {
    limit: Option<u32>,
}

/// The account's assessments, newest first (the server keeps the newest
/// [`HISTORY_KEEP`] finished ones).
pub(crate) async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<Vec<AssessmentHistoryEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_HISTORY);
    // One running assessment may come on top of the kept ones.
    let max = HISTORY_KEEP + 1;
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit {limit} is out of range: use 1 to {max} (the server keeps the newest \
             {HISTORY_KEEP} assessments)"
        )));
    }
    let account = caller.account.id;
    let mut out = Vec::new();
    for a in app.store.assessments(account, limit).await? {
        let counts = app.store.endpoint_counts(account, a.id).await?;
        out.push(AssessmentHistoryEntry {
            id: a.id.to_string(),
            state: a.state.to_string(),
            trigger: a.trigger.to_string(),
            on_demand: a.on_demand,
            started_at: a.started_at,
            finished_at: a.finished_at,
            done: a.done,
            total: a.total,
            error: a.error,
            counts,
        });
    }
    Ok(axum::Json(out))
}
