//! Agents, their security-scan policies and results, and enrollment tokens
//! (the policy rules and the enroll command are in [`crate::agents`],
//! shared with the console).

use crate::agents::{checked_policy, enroll_command, DEFAULT_TTL_MINUTES, MAX_TTL_MINUTES};
use crate::app::{status_view, App};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::http::extract::Query;
use crate::ids;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use vigil_core::SecurityPolicy;
use vigil_proto::api::{
    AgentPatch, AgentView, EnrollmentView, NewEnrollment, PolicyView, PortView, ResultView,
};
use vigil_store::{now_unix, Agent, AgentId, ScanResult};

/// `GET /agents` filters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only agents carrying this tag.
    tag: Option<String>,
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Vec<AgentView>>, ApiError> {
    let now = now_unix();
    let account = caller.account.id;
    let tag = q.tag.map(|t| t.trim().to_lowercase());
    if let Some(t) = &tag {
        vigil_core::maintenance::check_tag(t).map_err(|e| ApiError::Invalid(e.to_string()))?;
    }
    let windows = app.store.windows(account).await?;
    let mut out = Vec::new();
    for agent in app.store.agents(account).await? {
        if tag.as_ref().is_some_and(|t| !agent.tags.contains(t)) {
            continue;
        }
        let policy = app.store.policy(account, agent.id).await?;
        let mut view = app.agent_view(&agent, policy.as_ref(), now);
        view.maintenance = crate::maintenance::covering(&windows, &agent, now);
        out.push(view);
    }
    Ok(axum::Json(out))
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentView>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let agent = app.store.agent(caller.account.id, id).await?;
    view(&app, &agent).await
}

/// The agent with its scan status (which needs its policy).
async fn view(app: &App, agent: &Agent) -> Result<axum::Json<AgentView>, ApiError> {
    let policy = app.store.policy(agent.account_id, agent.id).await?;
    let now = now_unix();
    let mut view = app.agent_view(agent, policy.as_ref(), now);
    view.maintenance = app.maintenance_of(agent, now).await?;
    Ok(axum::Json(view))
}

pub(crate) async fn patch(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<AgentPatch>,
) -> Result<axum::Json<AgentView>, ApiError> {
    caller.can_write()?;
    let id: AgentId = ids::parse("agent", &id)?;
    let mut agent = app.store.agent(caller.account.id, id).await?;
    if let Some(plan) = req.plan {
        agent = app
            .store
            .set_plan_by(caller.account.id, id, plan, &caller.user.email)
            .await?;
        app.scheduler_wake.notify_one();
        let detail = serde_json::json!({"plan": plan});
        crate::audit::record(
            &app,
            caller.account.id,
            &caller,
            "agent.plan",
            Some(&agent.name),
            Some(detail),
        )
        .await;
    }
    if let Some(tags) = req.tags {
        let tags = vigil_core::maintenance::normalize_tags(&tags)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        agent = app.store.set_tags(caller.account.id, id, &tags).await?;
        let detail = serde_json::json!({"tags": tags});
        crate::audit::record(
            &app,
            caller.account.id,
            &caller,
            "agent.tags",
            Some(&agent.name),
            Some(detail),
        )
        .await;
    }
    view(&app, &agent).await
}

pub(crate) async fn remove(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: AgentId = ids::parse("agent", &id)?;
    app.store
        .remove_agent_by(caller.account.id, id, now_unix(), &caller.user.email)
        .await?;
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "agent.remove",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs the security scan now instead of at its next scheduled time.
pub(crate) async fn scan_now(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.can_write()?;
    let id: AgentId = ids::parse("agent", &id)?;
    let agent = app.store.agent(caller.account.id, id).await?;
    let policy = app
        .store
        .policy(caller.account.id, id)
        .await?
        .ok_or_else(|| ApiError::Conflict("the agent has no security scan policy".into()))?;
    let now = now_unix();
    let status = vigil_core::scan_status(
        agent.plan,
        policy.enabled,
        agent.is_removed(),
        app.health_of(&agent, now),
    );
    if status != vigil_core::ScanStatus::Active {
        return Err(ApiError::Conflict(format!(
            "the security scan cannot run now: {status}"
        )));
    }
    app.store.set_next_run(caller.account.id, id, now).await?;
    app.scheduler_wake.notify_one();
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "agent.scan_now",
        Some(&agent.name),
        None,
    )
    .await;
    Ok(StatusCode::ACCEPTED)
}

pub(crate) async fn get_policy(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let agent = app.store.agent(caller.account.id, id).await?;
    let policy = app
        .store
        .policy(caller.account.id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let scan = status_view(app.scan_status(&agent, Some(&policy), now_unix()));
    let next_run_at = app.store.next_run(caller.account.id, id).await?;
    Ok(axum::Json(PolicyView {
        policy,
        scan,
        next_run_at,
    }))
}

pub(crate) async fn put_policy(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(policy): Json<SecurityPolicy>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    caller.can_write()?;
    let id: AgentId = ids::parse("agent", &id)?;
    let agent = app.store.agent(caller.account.id, id).await?;
    let policy = checked_policy(&agent, caller.account.kind, policy)?;
    crate::agents::save_policy(&app, &agent, &policy, (&caller).into()).await?;
    let scan = status_view(app.scan_status(&agent, Some(&policy), now_unix()));
    Ok(axum::Json(PolicyView {
        policy,
        scan,
        next_run_at: None,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResultsQuery {
    limit: Option<u32>,
}

pub(crate) fn result_view(r: &ScanResult) -> ResultView {
    ResultView {
        id: r.id.to_string(),
        agent_id: r.agent_id.to_string(),
        target: r.target.clone(),
        addr: r.addr.clone(),
        started_at: r.started_at,
        finished_at: r.finished_at,
        received_at: r.received_at,
        ports: r
            .ports
            .iter()
            .map(|p| PortView {
                port: p.port,
                state: p.state,
                details: p.details.as_deref().cloned(),
            })
            .collect(),
        probed_count: r.probed_count,
        probed_ports: r.probed_ports.clone(),
        filtered_not_listed: r.not_listed.filtered,
        unreachable_not_listed: r.not_listed.unreachable,
    }
}

pub(crate) async fn results(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Result<axum::Json<Vec<ResultView>>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit {limit} is out of range: use 1 to 1000"
        )));
    }
    let results = app.store.results(caller.account.id, id, limit).await?;
    Ok(axum::Json(results.iter().map(result_view).collect()))
}

pub(crate) async fn enroll(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<NewEnrollment>,
) -> Result<(StatusCode, axum::Json<EnrollmentView>), ApiError> {
    caller.can_write()?;
    let minutes = req.ttl_minutes.unwrap_or(DEFAULT_TTL_MINUTES);
    if !(1..=MAX_TTL_MINUTES).contains(&minutes) {
        return Err(ApiError::Invalid(format!(
            "ttl_minutes {minutes} is out of range: use 1 to {MAX_TTL_MINUTES} (30 days)"
        )));
    }
    let ttl = Duration::from_secs(u64::from(minutes) * 60);
    let token = app
        .store
        .create_enrollment(caller.account.id, &req.name, req.plan, ttl)
        .await?;
    let detail = serde_json::json!({"plan": req.plan, "ttl_minutes": minutes});
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "enrollment.create",
        Some(&req.name),
        Some(detail),
    )
    .await;
    let pin = app.pin.to_string();
    let command = enroll_command(&app, &token);
    Ok((
        StatusCode::CREATED,
        axum::Json(EnrollmentView {
            token,
            expires_at: now_unix() + i64::from(minutes) * 60,
            server_url: app.agent_url.clone(),
            pin,
            command,
        }),
    ))
}
