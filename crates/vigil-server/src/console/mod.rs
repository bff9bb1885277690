//! The web console: server-rendered HTML pages on the REST API's listener
//! (`/`, `/login`, `/agents`, …), for people rather than scripts.
//!
//! Plain HTML forms with POST-redirect-GET, templates compiled with
//! `maud` (every interpolated value is escaped), one embedded stylesheet
//! and a tiny optional script: the pages work without JavaScript and need
//! nothing at run time beyond this binary. The pages read the store and
//! apply the same domain rules as the REST API: both call the modules
//! that hold them (e.g. [`crate::agents`], [`crate::contacts`],
//! [`crate::compliance::service`]); the console neither calls the API over
//! HTTP nor uses its handlers.
//!
//! * [`session`]: login (with [`two_factor`] codes), logout, the session
//!   cookie; [`csrf`] and [`form`]:
//!   every state-changing POST carries a token bound to the session;
//! * [`layout`]: the page shell; [`assets`]: stylesheet and script;
//! * one module per page area: [`dashboard`], [`agents`], [`alerts`],
//!   [`enroll`], [`compliance`], [`contacts`], [`devices`] (an agent's
//!   inventory) and [`device`] (one device).

mod ack;
mod agent_history;
mod agents;
mod alerts;
mod assets;
mod audit;
mod compliance;
mod contacts;
pub(crate) mod csrf;
mod dashboard;
mod device;
mod devices;
mod enroll;
mod error;
mod form;
mod layout;
mod maintenance;
mod outside;
mod session;
mod trend_chart;
mod two_factor;
mod updates;

use crate::app::App;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The console's routes, merged into the REST API's router.
pub(crate) fn router(app: &Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(session::login_page).post(session::login))
        .route("/ack/{token}", get(ack::show).post(ack::acknowledge))
        .route("/logout", post(session::logout))
        .route("/agents", get(agents::list))
        .route("/agents/{id}", get(agents::detail))
        .route("/agents/{id}/policy", post(agents::save_policy))
        .route("/agents/{id}/tags", post(agents::save_tags))
        .route("/agents/{id}/history", get(agent_history::page))
        .route("/agents/{id}/devices", get(devices::page))
        .route("/agents/{id}/devices/{device}", get(device::page))
        .route(
            "/agents/{id}/devices/{device}/approve",
            post(devices::approve),
        )
        .route("/agents/{id}/devices/{device}/policy", post(device::save))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::detail))
        .route("/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/enroll", get(enroll::page).post(enroll::create))
        .route("/compliance", get(compliance::overview))
        .route("/compliance/assessments", post(compliance::run))
        .route(
            "/compliance/scope",
            get(compliance::scope::show).post(compliance::scope::save),
        )
        .route(
            "/compliance/scope/certificate",
            post(compliance::scope::certificate),
        )
        .route("/compliance/scope/pin", post(compliance::scope::pin))
        .route("/compliance/endpoints", get(compliance::endpoints::list))
        .route("/compliance/endpoints.csv", get(compliance::endpoints::csv))
        .route(
            "/compliance/move",
            // Asks peer servers one agent at a time (up to 15 s each).
            post(compliance::actions::move_agents)
                .route_layer(axum::middleware::from_fn(crate::listen::long_request)),
        )
        .route(
            "/compliance/install",
            get(compliance::actions::install_form).post(compliance::actions::push),
        )
        .route(
            "/compliance/install-command",
            post(compliance::actions::command),
        )
        .route("/compliance/install/{id}", get(compliance::actions::job))
        .route(
            "/compliance/schedule",
            get(compliance::schedule::show).post(compliance::schedule::save),
        )
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route(
            "/contacts/rules",
            get(contacts::rules).post(contacts::create_rule),
        )
        .route("/contacts/rules/{id}/delete", post(contacts::delete_rule))
        .route("/contacts/{id}", get(contacts::detail))
        .route(
            "/contacts/{id}/edit",
            get(contacts::edit_form).post(contacts::save),
        )
        .route("/contacts/{id}/test", post(contacts::test))
        .route("/contacts/{id}/delete", post(contacts::delete))
        .route(
            "/maintenance",
            get(maintenance::list).post(maintenance::create),
        )
        .route("/maintenance/{id}/delete", post(maintenance::delete))
        .route("/outside-schedule", get(outside::show).post(outside::save))
        .route("/updates", get(updates::show))
        .route("/updates/rollout", post(updates::rollout))
        .route("/updates/auto", post(updates::auto))
        .route("/audit", get(audit::page))
        .route("/audit.jsonl", get(audit::export))
        .route(two_factor::PATH, get(two_factor::page))
        .route("/account/two-factor/start", post(two_factor::start))
        .route("/account/two-factor/confirm", post(two_factor::confirm))
        .route("/account/two-factor/require", post(two_factor::require))
        .route("/static/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            session::secure_behind_proxy,
        ))
}

/// Pages are private and must not be framed (clickjacking) or run anything
/// but our own script; the hashed assets keep their long cache header.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A page number from the query (1-based; anything unreadable is page 1).
pub(crate) fn page_number(raw: Option<&str>) -> u64 {
    raw.and_then(|p| p.parse::<u64>().ok())
        .filter(|p| (1..=1_000_000).contains(p))
        .unwrap_or(1)
}

/// The id in a page's path: anything unreadable is a page that does not
/// exist (404), like another tenant's.
pub(crate) fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, error::ConsoleError> {
    raw.parse().map_err(|_| error::ConsoleError::NotFound)
}
