//! Reading compliance results, for the REST API, the web console and the
//! CSV export ([`super::export`]): an assessment's view, the chosen
//! (default: latest) assessment, and the search of its endpoint list.

use crate::app::App;
use crate::http::error::ApiError;
use crate::ids;
use serde::Deserialize;
use vigil_core::compliance::{
    AdvancedQuery, Dn, Endpoint, EndpointStatus, IpRange, NamePattern, OsPattern,
};
use vigil_proto::api::AssessmentView;
use vigil_store::{AccountId, Assessment, AssessmentState, StoreError};

/// The assessment as people and scripts see it, with its status counts.
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

/// The chosen (default: latest) assessment of the account.
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
