//! Alerts of the account.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Query;
use super::ids;
use crate::alert::title;
use crate::app::App;
use axum::extract::State;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use vigil_proto::api::AlertView;
use vigil_store::{AgentId, Alert, AlertFilter, AlertStatus};

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
    let names: HashMap<AgentId, vigil_store::Agent> = app
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

fn alert_view(a: &Alert, agent: Option<&vigil_store::Agent>) -> AlertView {
    let raised = a.status == AlertStatus::Open;
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
        title: match agent {
            Some(agent) => title(agent, &a.target, a.condition, raised),
            None => a.condition.to_string(),
        },
    }
}
