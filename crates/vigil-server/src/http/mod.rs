//! The HTTP plumbing the REST API ([`crate::api`]) and the web console
//! ([`crate::console`]) share: how errors are answered ([`error`]), body
//! and query extractors with JSON errors ([`extract`]), who is calling
//! ([`auth`]), and the assembly of the REST listener's router (API,
//! console, `/metrics`, probes, body limit, request metrics). Connection
//! limits and timeouts live with the listeners ([`crate::listen`]).

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod metrics;

use crate::app::App;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use vigil_proto::api::MAX_API_BODY_BYTES;

/// Everything the REST listener serves.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .nest(vigil_proto::api::API_PREFIX, crate::api::routes())
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .route("/metrics", get(metrics::serve))
        .merge(crate::console::router(&app))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::track_rest,
        ))
        .with_state(app)
}
