//! The compliance scope, assessments and the endpoints they found (the
//! checks and searches are in [`crate::compliance::service`] and
//! [`crate::compliance::query`], shared with the console).

use crate::app::App;
use crate::compliance::query::{chosen, search, view, EndpointQuery};
use crate::compliance::service::{audit_scope, check_certificate, check_scope, start};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use vigil_proto::api::{
    AdCertificateView, AssessmentView, ComplianceScopeUpdate, ComplianceScopeView, EndpointPage,
};
use vigil_store::AssessmentTrigger;

/// Largest page of endpoints.
const MAX_PAGE: u64 = 1000;

pub(crate) async fn get_scope(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<ComplianceScopeView>, ApiError> {
    let (scope, has_ad_password) = app
        .store
        .compliance_scope(caller.account.id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(ComplianceScopeView {
        scope,
        has_ad_password,
    }))
}

/// The certificate the saved AD scope's directory presents (to pin it).
pub(crate) async fn certificate(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<AdCertificateView>, ApiError> {
    caller.can_write()?;
    Ok(axum::Json(
        check_certificate(&app, caller.account.id).await?,
    ))
}

/// "Save only" or "Save and re-assess".
pub(crate) async fn put_scope(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(update): Json<ComplianceScopeUpdate>,
) -> Result<(StatusCode, axum::Json<serde_json::Value>), ApiError> {
    caller.can_write()?;
    check_scope(&app, caller.account.id, &update.scope).await?;
    app.store
        .put_compliance_scope(
            caller.account.id,
            &update.scope,
            update.ad_password.as_deref(),
        )
        .await?;
    audit_scope(
        &app,
        caller.account.id,
        &caller,
        &update.scope,
        update.ad_password.is_some(),
    )
    .await;
    if !update.reassess {
        return Ok((
            StatusCode::OK,
            axum::Json(serde_json::json!({"saved": true})),
        ));
    }
    let id = start(
        &app,
        caller.account.id,
        &caller,
        AssessmentTrigger::ScopeSaved,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"saved": true, "assessment_id": id.to_string()})),
    ))
}

/// Starts an assessment now (cancelling a running one).
pub(crate) async fn create_assessment(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<(StatusCode, axum::Json<AssessmentView>), ApiError> {
    caller.can_write()?;
    let id = start(&app, caller.account.id, &caller, AssessmentTrigger::Manual).await?;
    let a = app.store.assessment(caller.account.id, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(view(&app, &a).await?)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssessmentQuery {
    /// An assessment id; default the latest.
    assessment: Option<String>,
}

pub(crate) async fn get_assessment(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<AssessmentQuery>,
) -> Result<axum::Json<AssessmentView>, ApiError> {
    let a = chosen(&app, caller.account.id, q.assessment.as_deref()).await?;
    Ok(axum::Json(view(&app, &a).await?))
}

pub(crate) async fn endpoints(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<EndpointQuery>,
) -> Result<axum::Json<EndpointPage>, ApiError> {
    let (a, endpoints, total, offset) = search(&app, caller.account.id, &q, MAX_PAGE, 100).await?;
    Ok(axum::Json(EndpointPage {
        assessment_id: a.id.to_string(),
        total,
        offset,
        endpoints,
    }))
}

/// The current list (same search as the JSON list, every page) as CSV,
/// streamed (`crate::compliance::export`).
pub(crate) async fn endpoints_csv(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<EndpointQuery>,
) -> Result<axum::response::Response, ApiError> {
    crate::compliance::export::endpoints_csv(app, caller.account.id, &q).await
}
