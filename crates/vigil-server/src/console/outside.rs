//! The account's outside-scan schedule ([`vigil_core::outside`]): which
//! ports the server's scans of agents' observed addresses probe at each
//! run. `GET /outside-schedule` shows it, `POST` sets it (the REST API's
//! `PUT /outside-schedule`).

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::outside::{OutsideSchedule, MAX_FULL_RANGE_HOURS, MIN_SLICE_PORTS};

async fn page(
    app: &App,
    session: &Session,
    message: Option<&str>,
    refused: bool,
) -> Result<Markup, ConsoleError> {
    let s = app.store.outside_schedule(session.account.id).await?;
    let content = html! {
        h1 { "Outside scans" }
        @if refused { (layout::error(message)) } @else { (layout::flash(message)) }
        p {
            "The server scans each agent's observed address — what the internet sees of the location. Beside the policy's ports, every run probes "
            (s) "."
        }
        p.hint {
            "Every run also probes the ports with an alert raised or pending, so an alert ends when its port closes. "
            "The rest of the range (" (app.cfg.sweep_ports.len()) " ports) is probed a slice per run, at least "
            (MIN_SLICE_PORTS) " ports a slice; 0 hours probes the whole range at every run. "
            "Agents scan their own hosts and networks in full at every run."
        }
        @if session.can_write() {
            form.stack method="post" action="/outside-schedule" {
                (session.csrf_field())
                label for="top_ports" { "Most common ports at every run" }
                input #top_ports type="number" name="top_ports" min="0" max="65535" value=(s.top_ports) required;
                label for="full_range_hours" { "The rest of the range over (hours)" }
                input #full_range_hours type="number" name="full_range_hours" min="0" max=(MAX_FULL_RANGE_HOURS) value=(s.full_range_hours) required;
                button type="submit" { "Save" }
            }
        } @else {
            p.hint { "Viewers may only read; ask an admin or owner to change it." }
        }
    };
    Ok(layout::page(
        session,
        Page {
            title: "Outside scans",
            nav: "/agents",
            refresh_secs: None,
        },
        content,
    ))
}

/// `GET /outside-schedule`.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = (query.get("done") == Some("saved")).then_some("Outside scans changed.");
    page(&app, &session, done, false).await
}

/// `POST /outside-schedule`.
pub(crate) async fn save(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let number = |name: &str, what: &str| {
        let text = form.get(name).unwrap_or_default().trim();
        text.parse::<u16>()
            .map_err(|_| format!("{what} must be a whole number from 0 to 65535, not {text:?}"))
    };
    let schedule = number("top_ports", "The most common ports").and_then(|top_ports| {
        Ok(OutsideSchedule {
            top_ports,
            full_range_hours: number("full_range_hours", "The hours")?,
        })
    });
    let account = session.account.id;
    let saved = match schedule {
        Ok(s) => app
            .store
            .set_outside_schedule(account, s)
            .await
            .map_err(|e| e.to_string()),
        Err(m) => Err(m),
    };
    match saved {
        Ok(s) => {
            let detail = serde_json::to_value(s).ok();
            let what = s.to_string();
            crate::audit::record(
                &app,
                account,
                &session,
                "outside_schedule.update",
                Some(&what),
                detail,
            )
            .await;
            Ok(Redirect::to("/outside-schedule?done=saved").into_response())
        }
        Err(m) => Ok(page(&app, &session, Some(&m), true).await?.into_response()),
    }
}
