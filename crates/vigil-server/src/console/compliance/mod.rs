//! Compliance: the overview of the latest assessment (`/compliance`), the
//! scope editor ([`scope`]), the endpoint list with its CSV export
//! ([`endpoints`]), moving and installing agents ([`actions`]) and the
//! schedule ([`schedule`]). The pages use the same store calls and checks
//! as the REST handlers ([`crate::compliance::service`],
//! [`crate::compliance::query`]).

pub(crate) mod actions;
pub(crate) mod endpoints;
pub(crate) mod schedule;
pub(crate) mod scope;

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use crate::compliance::query::view;
use crate::compliance::service::start;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::compliance::EndpointStatus;
use vigil_store::AssessmentTrigger;

/// Reload the overview this often while an assessment runs.
const RUNNING_REFRESH_SECS: u32 = 2;

/// A status as people read it.
pub(crate) fn status_label(s: EndpointStatus) -> &'static str {
    match s {
        EndpointStatus::ManagedHere => "managed here",
        EndpointStatus::ManagedElsewhere => "managed elsewhere (unverified)",
        EndpointStatus::NoAgent => "no agent",
        EndpointStatus::Unreachable => "unreachable",
        EndpointStatus::UnresolvedAd => "unresolved AD",
        EndpointStatus::NoHost => "no host at address",
    }
}

fn card_class(s: EndpointStatus) -> &'static str {
    match s {
        EndpointStatus::ManagedHere => "card good",
        EndpointStatus::ManagedElsewhere | EndpointStatus::Unreachable => "card warn",
        EndpointStatus::NoAgent | EndpointStatus::UnresolvedAd => "card bad",
        EndpointStatus::NoHost => "card",
    }
}

/// Links between the compliance pages.
fn subnav() -> Markup {
    html! {
        nav aria-label="Compliance" {
            p {
                a href="/compliance" { "Overview" } " · "
                a href="/compliance/endpoints" { "Endpoints" } " · "
                a href="/compliance/scope" { "Scope" } " · "
                a href="/compliance/schedule" { "Schedule" }
            }
        }
    }
}

pub(crate) async fn overview(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("started") => Some("Assessment started."),
        _ => None,
    };
    let account = session.account.id;
    let latest = app.store.latest_assessment(account).await?;
    let latest = match latest {
        Some(a) => Some(view(&app, &a).await?),
        None => None,
    };
    let has_scope = app.store.compliance_scope(account).await?.is_some();
    let trend = status_trend(&app, account).await?;
    let running = latest.as_ref().is_some_and(|a| a.state == "running");
    let body = html! {
        h1 { "Compliance" }
        (subnav())
        (layout::flash(done))
        section.section aria-labelledby="latest-h" {
            h2 #latest-h { "Latest assessment" }
            @match &latest {
                None => p { "No assessment has run yet." @if !has_scope { " " a href="/compliance/scope" { "Set the scope" } " first." } }
                Some(a) => {
                    dl.facts {
                        dt { "State" } dd #assessment-state { (layout::badge(&a.state)) }
                        dt { "Progress" } dd {
                            progress #progress max=(a.total.max(1)) value=(a.done.min(a.total)) aria-label="Progress" {}
                            " " span #progress-text { (a.done) " of " (a.total) }
                        }
                        dt { "Mode" } dd { (if a.on_demand { "on demand" } else { "database only" }) }
                        dt { "Started" } dd { (layout::time(a.started_at)) }
                        dt { "Finished" } dd { (layout::maybe_time(a.finished_at)) }
                        @if let Some(e) = &a.error { dt { "Error" } dd { (e) } }
                    }
                    h3 { "Endpoints per status" @if running { " (so far)" } }
                    div.cards {
                        @for s in EndpointStatus::ALL {
                            a class=(card_class(s)) href={ "/compliance/endpoints?status=" (s.as_str()) }
                                aria-label={ (a.counts.get(s)) " " (status_label(s)) } {
                                span.n { (a.counts.get(s)) } (status_label(s))
                            }
                        }
                    }
                }
            }
            @if let Some(chart) = &trend {
                h3 { "Endpoints per status over the last assessments" }
                (chart)
                p.hint { "The numbers are also in " code { "GET /api/v1/compliance/history" } "." }
            }
            @if session.can_write() && has_scope {
                div.actions {
                    form.inline method="post" action="/compliance/assessments" {
                        (session.csrf_field())
                        button type="submit" { "Run assessment now" }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &session,
        Page {
            title: "Compliance",
            nav: "/compliance",
            refresh_secs: running.then_some(RUNNING_REFRESH_SECS),
        },
        body,
    ))
}

/// Assessments the overview's chart shows at most.
const TREND_ASSESSMENTS: u32 = 20;

/// Endpoints per status over the last finished assessments, oldest first,
/// as a chart; `None` until two have finished.
async fn status_trend(
    app: &App,
    account: vigil_store::AccountId,
) -> Result<Option<maud::Markup>, ConsoleError> {
    let mut done: Vec<_> = app
        .store
        .assessments(account, TREND_ASSESSMENTS)
        .await?
        .into_iter()
        .filter(|a| a.state == vigil_store::AssessmentState::Done)
        .collect();
    if done.len() < 2 {
        return Ok(None);
    }
    done.reverse();
    let mut counts = Vec::with_capacity(done.len());
    for a in &done {
        counts.push(app.store.endpoint_counts(account, a.id).await?);
    }
    let columns: Vec<String> = done.iter().map(|a| layout::time(a.started_at)).collect();
    let series: Vec<super::trend_chart::Series<'_>> = EndpointStatus::ALL
        .into_iter()
        .map(|s| super::trend_chart::Series {
            label: status_label(s),
            color: status_color(s),
            values: counts.iter().map(|c| Some(c.get(s))).collect(),
        })
        .collect();
    let last = counts.last().copied().unwrap_or_default();
    let summary = format!(
        "Endpoints per status over the last {} assessments; the latest: {}",
        done.len(),
        EndpointStatus::ALL
            .into_iter()
            .map(|s| format!("{} {}", last.get(s), status_label(s)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Some(super::trend_chart::lines(&summary, &columns, &series)))
}

fn status_color(s: EndpointStatus) -> &'static str {
    match s {
        EndpointStatus::ManagedHere => "#1e7b34",
        EndpointStatus::ManagedElsewhere => "#8a6d00",
        EndpointStatus::NoAgent => "#b3261e",
        EndpointStatus::Unreachable => "#c25e00",
        EndpointStatus::UnresolvedAd => "#6a3fa0",
        EndpointStatus::NoHost => "#5f6b76",
    }
}

pub(crate) async fn run(
    State(app): State<Arc<App>>,
    Post { session, .. }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    start(
        &app,
        session.account.id,
        &session,
        AssessmentTrigger::Manual,
    )
    .await?;
    Ok(Redirect::to("/compliance?done=started").into_response())
}
