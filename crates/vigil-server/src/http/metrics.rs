//! `GET /metrics` and the middleware that counts and times every request
//! of both listeners: the HTTP side of [`crate::metrics`], which itself
//! only keeps the registry (and so does not depend on [`App`]).

use crate::app::App;
use crate::metrics::{authorized, wants_openmetrics, OPENMETRICS_TYPE, TEXT_TYPE};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

/// `GET /metrics`.
pub(crate) async fn serve(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !authorized(&headers, app.cfg.metrics_token.as_deref()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "metrics need the metrics token: Authorization: Bearer <token>\n",
        )
            .into_response();
    }
    app.metrics.refresh(&app.store, &app.cfg.liveness).await;
    app.metrics.scan_budget(app.scan_budget.usage());
    if let Some(usage) = app.scan_budget.syn_usage() {
        app.metrics.scan_engine(usage);
    }
    let openmetrics = wants_openmetrics(&headers);
    let content_type = if openmetrics {
        OPENMETRICS_TYPE
    } else {
        TEXT_TYPE
    };
    (
        [(header::CONTENT_TYPE, content_type)],
        app.metrics.encode(openmetrics),
    )
        .into_response()
}

/// Middleware of the REST listener: counts and times each request.
pub(crate) async fn track_rest(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    track(&app, "rest", req, next).await
}

/// Middleware of the agent listener: counts and times each request.
pub(crate) async fn track_agent(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    track(&app, "agent", req, next).await
}

async fn track(app: &App, api: &'static str, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The route pattern (`/api/v1/agents/{id}`), never the URL itself.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(req).await;
    let took = started.elapsed().as_secs_f64();
    app.metrics
        .request(api, &method, route, response.status().as_u16(), took);
    response
}
