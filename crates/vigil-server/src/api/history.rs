//! An agent's history (`GET /api/v1/agents/{id}/history`) and reachability
//! timeline (`GET /api/v1/agents/{id}/timeline`); the timeline's rows are
//! made in [`crate::history`], which the web console draws from too.

use crate::app::App;
use crate::history::{timeline_rows, Row};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Query;
use crate::ids;
use axum::extract::{Path, State};
use serde::Deserialize;
use std::sync::Arc;
use vigil_core::timeline::{State as SegmentState, Window};
use vigil_proto::api::{
    AgentEventView, AgentHistoryPage, SegmentView, TimelineRowView, TimelineView,
};
use vigil_store::{now_unix, AgentId};

/// History entries per page unless the caller says otherwise.
pub(crate) const DEFAULT_HISTORY_LIMIT: u32 = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryQuery {
    offset: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/v1/agents/{id}/history?offset&limit`: newest first.
pub(crate) async fn history(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<AgentHistoryPage>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let limit = q.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit {limit} is out of range: use 1 to 1000"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    let (events, total) = app
        .store
        .agent_events(caller.account.id, id, offset, limit)
        .await?;
    Ok(axum::Json(AgentHistoryPage {
        events: events
            .into_iter()
            .map(|e| AgentEventView {
                at: e.at,
                kind: e.kind,
                actor: e.actor,
                detail: e.detail,
            })
            .collect(),
        total,
        offset,
        limit,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TimelineQuery {
    window: Option<String>,
}

/// The window a query names (default 24 h).
pub(crate) fn window_of(raw: Option<&str>) -> Result<Window, ApiError> {
    match raw {
        None => Ok(Window::default()),
        Some(w) => Window::parse(w)
            .ok_or_else(|| ApiError::Invalid(format!("unknown window {w:?}: use 24h, 7d or 30d"))),
    }
}

/// `GET /api/v1/agents/{id}/timeline?window=24h|7d|30d`.
pub(crate) async fn timeline(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Result<axum::Json<TimelineView>, ApiError> {
    let id: AgentId = ids::parse("agent", &id)?;
    let window = window_of(q.window.as_deref())?;
    let agent = app.store.agent(caller.account.id, id).await?;
    let now = now_unix();
    let (rows, hidden_rows) = timeline_rows(&app, &agent, window, now).await?;
    Ok(axum::Json(TimelineView {
        window,
        from: now - window.secs(),
        to: now,
        rows: rows.iter().map(row_view).collect(),
        hidden_rows: u64::try_from(hidden_rows).unwrap_or(u64::MAX),
    }))
}

fn row_view(row: &Row) -> TimelineRowView {
    let t = &row.timeline;
    TimelineRowView {
        kind: row.kind.as_str().into(),
        label: row.label.clone(),
        target: row.target.clone(),
        port: row.port,
        up_percent: t.up_fraction().map(|f| (f * 1000.0).floor() / 10.0),
        down_secs: t.secs_in(SegmentState::Down),
        segments: t
            .segments
            .iter()
            .map(|s| SegmentView {
                start: s.start,
                end: s.end,
                state: s.state,
                open: s.open,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_from_queries() {
        assert_eq!(window_of(None).unwrap(), Window::Day);
        assert_eq!(window_of(Some("7d")).unwrap(), Window::Week);
        let e = window_of(Some("1y")).unwrap_err();
        assert!(
            matches!(&e, ApiError::Invalid(m) if m.contains("24h, 7d or 30d")),
            "{e}"
        );
    }
}
