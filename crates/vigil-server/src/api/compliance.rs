//! The compliance scope, assessments and the endpoints they found.

use super::ids;
use crate::app::App;
use crate::compliance::StartError;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use vigil_core::compliance::{
    AdvancedQuery, Dn, Endpoint, EndpointStatus, IpRange, NamePattern, OsPattern,
};
use vigil_core::netpolicy::Destination;
use vigil_proto::api::{AssessmentView, ComplianceScopeUpdate, ComplianceScopeView, EndpointPage};
use vigil_store::{
    AccountId, Assessment, AssessmentId, AssessmentState, AssessmentTrigger, StoreError,
};

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

/// The checks of a scope before it is saved: the domain's rules, GSSAPI
/// support in this build and the operator's leave for this account, the AD
/// CA certificate, and the operator's network policy for the ranges and
/// the directory's host.
pub(crate) async fn check_scope(
    app: &App,
    account: AccountId,
    scope: &vigil_core::compliance::ComplianceScope,
) -> Result<(), ApiError> {
    scope
        .validate()
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let gssapi = scope
        .ad
        .as_ref()
        .is_some_and(|ad| ad.bind == vigil_core::compliance::AdBind::Gssapi);
    if gssapi && !app.cfg.gssapi_allowed(account) {
        return Err(ApiError::Forbidden(
            crate::compliance::ad::AdError::GssapiNotAllowed.to_string(),
        ));
    }
    if gssapi && !crate::compliance::ad::GSSAPI_AVAILABLE {
        return Err(ApiError::Invalid(
            crate::compliance::ad::AdError::GssapiUnavailable.to_string(),
        ));
    }
    if let Some(pem) = scope.ad.as_ref().and_then(|ad| ad.ca_cert.as_deref()) {
        crate::compliance::ad::parse_ca_pem(pem).map_err(|e| ApiError::Invalid(e.to_string()))?;
    }
    let policy = &app.cfg.net_policy;
    for range in scope.ip.ranges.iter().map(|r| r.addr_range()) {
        policy.check_range(Destination::Compliance, range.start(), range.end())?;
    }
    if let Some(ad) = &scope.ad {
        crate::netguard::check_url_host(policy, Destination::Ldap, &ad.url).await?;
    }
    Ok(())
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

pub(crate) async fn start(
    app: &Arc<App>,
    account: AccountId,
    actor: impl Into<crate::audit::Actor>,
    trigger: AssessmentTrigger,
) -> Result<AssessmentId, ApiError> {
    let id = app
        .start_assessment(account, trigger)
        .await
        .map_err(|e| match e {
            StartError::NoScope => ApiError::Conflict(e.to_string()),
            StartError::Empty => ApiError::Invalid(e.to_string()),
            StartError::Store(e) => e.into(),
        })?;
    let target = id.to_string();
    crate::audit::record(app, account, actor, "assessment.start", Some(&target), None).await;
    Ok(id)
}

/// Records a saved scope (never the password, only whether one was given).
pub(crate) async fn audit_scope(
    app: &App,
    account: AccountId,
    actor: impl Into<crate::audit::Actor>,
    scope: &vigil_core::compliance::ComplianceScope,
    password_given: bool,
) {
    let mut detail = serde_json::to_value(scope).unwrap_or_default();
    if let Some(map) = detail.as_object_mut() {
        map.insert("ad_password_given".into(), password_given.into());
    }
    crate::audit::record(app, account, actor, "scope.update", None, Some(detail)).await;
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

pub(crate) async fn view(app: &App, a: &Assessment) -> Result<AssessmentView, ApiError> {
    // While running: what is classified so far; after: the stored endpoints.
    let counts = match (a.state, a.live_counts) {
        (AssessmentState::Running, Some(live)) => live,
        _ => app.store.endpoint_counts(a.account_id, a.id).await?,
    };
    Ok(AssessmentView {
        id: a.id.to_string(),
        state: a.state.to_string(),
        on_demand: a.on_demand,
        started_at: a.started_at,
        finished_at: a.finished_at,
        done: a.done,
        total: a.total,
        error: a.error.clone(),
        counts,
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssessmentQuery {
    /// An assessment id; default the latest.
    assessment: Option<String>,
}

/// The chosen (default: latest) assessment of the caller's account.
pub(crate) async fn chosen(
    app: &App,
    account: AccountId,
    id: Option<&str>,
) -> Result<Assessment, ApiError> {
    match id {
        Some(id) => Ok(app
            .store
            .assessment(account, ids::parse("assessment", id)?)
            .await?),
        None => app
            .store
            .latest_assessment(account)
            .await?
            .ok_or_else(|| ApiError::Conflict("no assessment has run yet".into())),
    }
}

pub(crate) async fn get_assessment(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<AssessmentQuery>,
) -> Result<axum::Json<AssessmentView>, ApiError> {
    let a = chosen(&app, caller.account.id, q.assessment.as_deref()).await?;
    Ok(axum::Json(view(&app, &a).await?))
}

/// The search of the endpoint list: `name` (exact, or with `*`
/// wildcards), `status` (comma-separated), `ip` (a range), `os`,
/// `container` (an AD DN), `seen_after` / `seen_before` (unix seconds).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EndpointQuery {
    pub assessment: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub ip: Option<String>,
    pub os: Option<String>,
    pub container: Option<String>,
    pub seen_after: Option<i64>,
    pub seen_before: Option<i64>,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
}

impl EndpointQuery {
    pub(crate) fn advanced(&self) -> Result<AdvancedQuery, ApiError> {
        let invalid =
            |what: &str, e: &dyn std::fmt::Display| ApiError::Invalid(format!("{what}: {e}"));
        let mut q = AdvancedQuery::default();
        if let Some(n) = self.name.as_deref().filter(|n| !n.is_empty()) {
            q.name = Some(NamePattern::parse(n).map_err(|e| invalid("name", &e))?);
        }
        if let Some(s) = self.status.as_deref().filter(|s| !s.is_empty()) {
            for part in s.split(',') {
                let status: EndpointStatus =
                    part.trim().parse().map_err(|e| invalid("status", &e))?;
                q.statuses.push(status);
            }
        }
        if let Some(ip) = self.ip.as_deref().filter(|s| !s.is_empty()) {
            q.ip_range = Some(IpRange::parse(ip).map_err(|e| invalid("ip", &e))?);
        }
        if let Some(os) = self.os.as_deref().filter(|s| !s.is_empty()) {
            q.os = Some(OsPattern::parse(os).map_err(|e| invalid("os", &e))?);
        }
        if let Some(c) = self.container.as_deref().filter(|s| !s.is_empty()) {
            q.container = Some(Dn::parse(c).map_err(|e| invalid("container", &e))?);
        }
        q.last_seen_after = self.seen_after;
        q.last_seen_before = self.seen_before;
        q.validate().map_err(|e| ApiError::Invalid(e.to_string()))?;
        Ok(q)
    }
}

/// One page of the account's endpoints that match `q`, of the chosen
/// assessment: (assessment, page, total matches, offset).
pub(crate) async fn search(
    app: &App,
    account: AccountId,
    q: &EndpointQuery,
    max: u64,
    default_limit: u64,
) -> Result<(Assessment, Vec<Endpoint>, u64, u64), ApiError> {
    let query = q.advanced()?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(default_limit);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit {limit} is out of range: use 1 to {max}"
        )));
    }
    let a = chosen(app, account, q.assessment.as_deref()).await?;
    let (endpoints, total) = app
        .store
        .endpoints(account, a.id, &query, offset, limit)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) => ApiError::Invalid(m),
            e => e.into(),
        })?;
    Ok((a, endpoints, total, offset))
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
