//! Alerts of the account: the list, one alert, its history, and
//! acknowledging it ([`crate::alert::acknowledge`] holds the
//! acknowledgement rules for the REST API and the web console alike).

use crate::alert::{acknowledge, alert_title};
use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::{Json, Query};
use crate::ids;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::header;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use vigil_core::ConditionKind;
use vigil_proto::api::{AckRequest, AlertEventView, AlertView};
use vigil_store::{
    Agent, AgentId, Alert, AlertEvent, AlertFilter, AlertId, AlertStatus, StoreError,
};

#[derive(Debug, Deserialize)]
pub(crate) struct AlertsQuery {
    status: Option<String>,
    agent: Option<String>,
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    Query(q): Query<AlertsQuery>,
) -> Result<axum::Json<Vec<AlertView>>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(s) => Some(s.parse::<AlertStatus>().map_err(|_| {
            ApiError::Invalid(format!(
                "unknown alert status {s:?}: use open, resolved or all"
            ))
        })?),
    };
    let agent = q
        .agent
        .as_deref()
        .map(|a| ids::parse::<AgentId>("agent", a))
        .transpose()?;
    let filter = AlertFilter { status, agent };
    let alerts = app.store.alerts(caller.account.id, &filter).await?;
    let names: HashMap<AgentId, Agent> = app
        .store
        .agents(caller.account.id)
        .await?
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
    Ok(axum::Json(
        alerts
            .iter()
            .map(|a| alert_view(a, names.get(&a.agent_id)))
            .collect(),
    ))
}

/// `GET /alerts/{id}`.
pub(crate) async fn get(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AlertView>, ApiError> {
    let id: AlertId = ids::parse("alert", &id)?;
    let alert = app.store.alert(caller.account.id, id).await?;
    Ok(axum::Json(view(&app, &alert).await?))
}

/// `GET /alerts/{id}/history`: oldest first.
pub(crate) async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<AlertEventView>>, ApiError> {
    let id: AlertId = ids::parse("alert", &id)?;
    let events = app.store.alert_history(caller.account.id, id).await?;
    Ok(axum::Json(events.iter().map(event_view).collect()))
}

/// `POST /alerts/{id}/ack`: `{"note": "…"}`, `{}` or no body at all.
pub(crate) async fn ack(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    AckBody(req): AckBody,
) -> Result<axum::Json<AlertView>, ApiError> {
    let id: AlertId = ids::parse("alert", &id)?;
    let alert = acknowledge(&app, &caller.user, caller.from, id, req.note.as_deref()).await?;
    Ok(axum::Json(view(&app, &alert).await?))
}

/// The body of an acknowledgement: JSON ([`AckRequest`]), or nothing
/// (no `Content-Type` and no length) for no note.
pub(crate) struct AckBody(pub AckRequest);

impl<S: Send + Sync> FromRequest<S> for AckBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers();
        let no_body = headers.get(header::CONTENT_TYPE).is_none()
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|len| len.as_bytes() == b"0")
            && headers.get(header::TRANSFER_ENCODING).is_none();
        if no_body {
            return Ok(AckBody(AckRequest::default()));
        }
        let Json(body) = Json::<AckRequest>::from_request(req, state).await?;
        Ok(AckBody(body))
    }
}

/// The alert with its title (which names its agent).
pub(crate) async fn view(app: &App, alert: &Alert) -> Result<AlertView, ApiError> {
    let agent = match app.store.agent(alert.account_id, alert.agent_id).await {
        Ok(agent) => Some(agent),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let mut view = alert_view(alert, agent.as_ref());
    let says_what_listens = matches!(
        alert.condition.kind,
        ConditionKind::UnauthorizedOpen | ConditionKind::ProcessChanged
    );
    if let (Some(agent), Some(port), true, AlertStatus::Open) = (
        &agent,
        alert.condition.port,
        says_what_listens,
        alert.status,
    ) {
        let (listening, _) = app.listening(agent, &alert.target, port).await?;
        view.listening = listening.and_then(|d| d.summary());
    }
    Ok(view)
}

fn alert_view(a: &Alert, agent: Option<&Agent>) -> AlertView {
    AlertView {
        id: a.id.to_string(),
        agent_id: a.agent_id.to_string(),
        target: a.target.clone(),
        kind: serde_json::to_value(a.condition.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        port: a.condition.port,
        status: a.status.to_string(),
        flapping: a.flapping,
        raised_at: a.raised_at,
        resolved_at: a.resolved_at,
        resolution: a.resolution.map(|r| r.as_str().to_string()),
        resolved_by: a.resolved_by.clone(),
        title: alert_title(a, agent),
        listening: None,
        acknowledged_at: a.acknowledged_at,
        acknowledged_by: a.acknowledged_by.clone(),
        ack_note: a.ack_note.clone(),
    }
}

fn event_view(e: &AlertEvent) -> AlertEventView {
    AlertEventView {
        seq: e.seq,
        at: e.at,
        kind: e.kind.to_string(),
        actor: e.actor.clone(),
        detail: e.detail.clone(),
        contact_id: e.contact_id.map(|c| c.to_string()),
        contact_name: e.contact_name.clone(),
        channel: e.channel.map(|c| c.to_string()),
        attempt: e.attempt,
        error: e.error.clone(),
        retry_at: e.retry_at,
    }
}
