//! The REST API (`/api/v1`), JSON in and out, tenant-scoped by the caller's
//! API token. Its OpenAPI document is served at `/api/v1/openapi.json`.

mod agents;
mod alerts;
mod audit;
mod compliance;
mod compliance_schedule;
mod contacts;
mod deployment_keys;
mod devices;
mod history;
mod install;
mod maintenance;
mod outside;
mod peers;
mod session;
mod trends;
pub(crate) mod updates;

use crate::app::App;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;

/// The OpenAPI 3.1 description of this API. Written by hand and kept
/// honest by a test that calls every documented operation on the real
/// router: deriving it (utoipa) would put documentation derives on the
/// domain and storage types, which must not depend on the web layer.
pub const OPENAPI: &str = include_str!("openapi.json");

/// [`OPENAPI`] with the notification channels filled in from the registry
/// in `vigil-notify`: the `ContactBody.channel` enum and a `ChannelFields`
/// schema (each channel's fields: kind, required, default, help).
pub fn openapi_document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: serde_json::Value = match serde_json::from_str(OPENAPI) {
            Ok(d) => d,
            Err(_) => return OPENAPI.to_owned(),
        };
        let channels = vigil_notify::Channel::ALL;
        let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
        let schemas = &mut doc["components"]["schemas"];
        schemas["ContactBody"]["properties"]["channel"]["enum"] = serde_json::json!(names);
        let mut per_channel = serde_json::Map::new();
        for c in channels {
            let mut props = serde_json::Map::new();
            for f in c.fields() {
                let mut p = serde_json::json!({
                    "type": "string",
                    "title": f.label,
                    "description": f.help,
                    "x-vigil-kind": f.kind.as_str(),
                });
                if f.kind.is_url() {
                    p["format"] = "uri".into();
                }
                if f.kind.is_secret() {
                    p["writeOnly"] = true.into();
                }
                if let Some(d) = f.default {
                    p["default"] = d.into();
                }
                props.insert(f.name.to_owned(), p);
            }
            let required: Vec<&str> = c
                .fields()
                .iter()
                .filter(|f| f.required)
                .map(|f| f.name)
                .collect();
            per_channel.insert(
                c.as_str().to_owned(),
                serde_json::json!({
                    "type": "object",
                    "title": c.label(),
                    "properties": props,
                    "required": required,
                    "additionalProperties": false,
                }),
            );
        }
        schemas["ChannelFields"] = serde_json::json!({
            "type": "object",
            "description": "each channel's fields: the first is a contact's address, \
                            the others go in ContactBody.fields",
            "properties": per_channel,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_else(|_| OPENAPI.to_owned())
    })
}

/// The routes under `/api/v1` (mounted by [`crate::http::router`]).
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/login", post(session::login))
        .route("/me", get(session::me))
        .route("/server", get(session::server))
        .route("/users", get(session::users).post(session::create_user))
        .route("/tokens", get(session::tokens).post(session::create_token))
        .route("/tokens/{id}", axum::routing::delete(session::revoke_token))
        .route("/audit", get(audit::list))
        .route("/audit.jsonl", get(audit::export))
        .route("/agents", get(agents::list))
        .route(
            "/agents/{id}",
            get(agents::get).patch(agents::patch).delete(agents::remove),
        )
        .route(
            "/agents/{id}/policy",
            get(agents::get_policy).put(agents::put_policy),
        )
        .route("/agents/{id}/results", get(agents::results))
        .route("/agents/{id}/scan", post(agents::scan_now))
        .route("/agents/{id}/devices", get(devices::list))
        .route(
            "/agents/{id}/devices/{device}",
            get(devices::get).patch(devices::patch),
        )
        .route(
            "/agents/{id}/devices/{device}/approve",
            post(devices::approve),
        )
        .route(
            "/agents/{id}/devices/{device}/history",
            get(devices::history),
        )
        .route("/agents/{id}/network", get(devices::network))
        .route("/agents/{id}/history", get(history::history))
        .route("/agents/{id}/timeline", get(history::timeline))
        .route("/agents/{id}/trends", get(trends::agent))
        .route("/trends", get(trends::account))
        .route("/enrollments", post(agents::enroll))
        .route(
            "/deployment-keys",
            get(deployment_keys::list).post(deployment_keys::create),
        )
        .route(
            "/deployment-keys/{id}",
            axum::routing::delete(deployment_keys::revoke),
        )
        .route("/deployment-keys/{id}/uses", get(deployment_keys::uses))
        .route("/updates", get(updates::get))
        .route("/updates/rollout", post(updates::rollout))
        .route("/updates/auto", put(updates::auto))
        .route("/outside-schedule", get(outside::get).put(outside::set))
        .route(
            "/maintenance",
            get(maintenance::list).post(maintenance::create),
        )
        .route(
            "/maintenance/{id}",
            get(maintenance::get)
                .put(maintenance::update)
                .delete(maintenance::remove),
        )
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::get))
        .route("/alerts/{id}/history", get(alerts::history))
        .route("/alerts/{id}/ack", post(alerts::ack))
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route(
            "/contacts/{id}",
            get(contacts::get)
                .put(contacts::update)
                .delete(contacts::delete),
        )
        .route("/contacts/{id}/test", post(contacts::test))
        .route("/rules", get(contacts::rules).post(contacts::create_rule))
        .route("/rules/{id}", axum::routing::delete(contacts::delete_rule))
        .route(
            "/compliance/scope",
            get(compliance::get_scope).put(compliance::put_scope),
        )
        .route(
            "/compliance/scope/certificate",
            post(compliance::certificate),
        )
        .route(
            "/compliance/assessments",
            get(compliance::get_assessment).post(compliance::create_assessment),
        )
        .route("/compliance/endpoints", get(compliance::endpoints))
        .route("/compliance/endpoints.csv", get(compliance::endpoints_csv))
        .route("/compliance/peers", get(peers::list).post(peers::create))
        .route(
            "/compliance/peers/{id}",
            axum::routing::delete(peers::delete),
        )
        .route(
            "/compliance/move",
            // Asks peer servers one agent at a time (up to 15 s each).
            post(peers::move_agents)
                .route_layer(axum::middleware::from_fn(crate::listen::long_request)),
        )
        .route(
            "/agents/{id}/move",
            get(peers::get_move).post(peers::order_move),
        )
        .route("/compliance/install", post(install::push))
        .route("/compliance/install/{id}", get(install::job))
        .route("/compliance/install-command", post(install::command))
        .route(
            "/compliance/schedule",
            get(compliance_schedule::get_schedule).put(compliance_schedule::put_schedule),
        )
        .route("/compliance/history", get(compliance_schedule::history))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_document(),
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(vigil_proto::api::ErrorBody {
            error: "this endpoint does not support that method; see /api/v1/openapi.json".into(),
        }),
    )
}

async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(vigil_proto::api::ErrorBody {
            error: "no such API endpoint; see /api/v1/openapi.json".into(),
        }),
    )
}
