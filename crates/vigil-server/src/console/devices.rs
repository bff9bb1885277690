//! An agent's "Devices" page (`/agents/{id}/devices`): the location's
//! inventory from its local-network sweeps, and the latest sweep (which
//! interfaces were swept or left out and why, networks left out, the
//! gateway's port forwards). Filters (query parameters, combined):
//! `show=present|gone`; `review=new|unreviewed|approved` (*new*: joined
//! after the location's first sweep and not approved yet, see
//! `vigil_core::lan::review`); `ports=unauthorized` (present with an open
//! port the device's policy does not authorize); `vendor=` (contains,
//! case-insensitive). Each device links to its own page ([`super::device`]).

use super::agent_history::{tabs, Tab};
use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use crate::devices::Location;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::lan::{Device, DeviceFilter, Review};
use vigil_store::{AgentId, DeviceId, StoredSweep};

/// `POST /agents/{id}/devices/{device}/approve` (from the list, or from
/// the device's page with `from=device`).
pub(crate) async fn approve(
    State(app): State<Arc<App>>,
    Path((id, device)): Path<(String, String)>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<AgentId>(&id)?;
    let device = super::path_id::<DeviceId>(&device)?;
    crate::devices::approve(&app, session.account.id, (&session).into(), id, device).await?;
    let to = if form.get("from") == Some("device") {
        format!("/agents/{id}/devices/{device}?done=approved")
    } else {
        format!("/agents/{id}/devices?done=approved")
    };
    Ok(Redirect::to(&to).into_response())
}

/// The list's filters as the query gives them (unknown values: no filter).
fn filter_of(query: &Form) -> DeviceFilter {
    DeviceFilter {
        present: match query.get("show") {
            Some("present") => Some(true),
            Some("gone") => Some(false),
            _ => None,
        },
        vendor: query
            .get("vendor")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        new: (query.get("review") == Some("new")).then_some(true),
        approved: match query.get("review") {
            Some("unreviewed") => Some(false),
            Some("approved") => Some(true),
            _ => None,
        },
        unauthorized: (query.get("ports") == Some("unauthorized")).then_some(true),
    }
}

/// `GET /agents/{id}/devices`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let id: AgentId = id.parse().map_err(|_| ConsoleError::NotFound)?;
    let account = session.account.id;
    let agent = app.store.agent(account, id).await?;
    let query = Form::query(query)?;
    let filter = filter_of(&query);
    let review = query.get("review").unwrap_or_default();
    let location = Location::load(&app, account, id).await?;
    let shown = location.shown(&filter);
    let counts = location.counts();
    let sweep = app.store.network_sweep(account, id).await?;
    let can_approve = session.can_write();
    let done = query.get("done") == Some("approved");
    let base = format!("/agents/{id}/devices");
    let quick = [
        ("review=new", "New", counts.new),
        ("review=unreviewed", "Unreviewed", counts.unreviewed),
        (
            "ports=unauthorized",
            "With unauthorized ports",
            counts.unauthorized,
        ),
        ("show=present", "Present", counts.present),
        ("show=gone", "Gone", counts.gone),
    ];
    let body = html! {
        p { a href="/agents" { "← Agents" } }
        h1 { "Agent " (agent.name) }
        (tabs(id, Tab::Devices))
        (layout::flash(done.then_some("Device approved: its open ports are authorized now.")))
        @match &sweep {
            None => p.hint {
                "No local-network sweep yet. Add the target “The local network” to the agent's "
                "security scan on its Overview tab; the agent sweeps at the scan's interval."
            },
            Some(sweep) => (sweep_section(sweep)),
        }
        section.section aria-labelledby="devices-h" {
            h2 #devices-h { "Devices (" (counts.all) ", " (counts.present) " present)" }
            nav.counts aria-label="Quick filters" {
                a href=(base) { "All (" (counts.all) ")" }
                @for (q, label, n) in quick {
                    " · " a href={ (base) "?" (q) } { (label) " (" (n) ")" }
                }
            }
            form.filters method="get" action=(base) {
                div {
                    label for="show" { "Show" }
                    select #show name="show" {
                        option value="" selected[filter.present.is_none()] { "all" }
                        option value="present" selected[filter.present == Some(true)] { "present" }
                        option value="gone" selected[filter.present == Some(false)] { "gone" }
                    }
                }
                div {
                    label for="review" { "Review" }
                    select #review name="review" aria-describedby="review-hint" {
                        option value="" selected[review.is_empty()] { "any" }
                        option value="new" selected[review == "new"] { "new" }
                        option value="unreviewed" selected[review == "unreviewed"] { "unreviewed" }
                        option value="approved" selected[review == "approved"] { "approved" }
                    }
                }
                div {
                    label.check for="ports" {
                        input #ports type="checkbox" name="ports" value="unauthorized"
                            checked[filter.unauthorized == Some(true)];
                        "With unauthorized ports"
                    }
                }
                div {
                    label for="vendor" { "Vendor contains" }
                    input #vendor type="search" name="vendor" value=(filter.vendor.clone().unwrap_or_default());
                }
                button type="submit" { "Filter" }
            }
            p.hint #review-hint {
                "New: joined after the location's first sweep and not approved yet. "
                "Unauthorized ports: present, with an open port its policy (its own list, its kind's, "
                "or the default for unreviewed devices) does not authorize."
            }
            @if shown.is_empty() {
                p.hint { "No devices." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Address" } th scope="col" { "MAC" } th scope="col" { "Vendor" }
                        th scope="col" { "Name" } th scope="col" { "Open ports" } th scope="col" { "Seen" }
                        th scope="col" { "Review" }
                    } }
                    tbody {
                        @for (d, r) in &shown { (device_row(&session, id, d, r, can_approve)) }
                    }
                }
            }
        }
    };
    Ok(layout::page(
        &session,
        Page {
            title: &format!("Devices of agent {}", agent.name),
            nav: "/agents",
            refresh_secs: None,
        },
        body,
    ))
}

/// How people name a device: its first address, else its MAC, else its id.
pub(crate) fn device_label(d: &Device) -> String {
    d.address()
        .map(|a| a.to_string())
        .or_else(|| d.mac.map(|m| m.to_string()))
        .unwrap_or_else(|| d.id.clone())
}

fn device_row(
    session: &Session,
    agent: AgentId,
    d: &Device,
    r: &Review,
    can_approve: bool,
) -> Markup {
    let dash = || "–".to_string();
    html! {
        tr {
            td {
                a href={ "/agents/" (agent) "/devices/" (d.id) } { (d.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                @if r.new { " " (layout::badge("new")) }
            }
            td { code { (d.mac.map(|m| m.to_string()).unwrap_or_else(dash)) } }
            td { (d.vendor.clone().unwrap_or_else(dash)) }
            td {
                (d.name.clone().unwrap_or_else(dash))
                @if let Some(src) = d.name_source { " " span.hint { "(" (src.label()) ")" } }
            }
            td {
                @if d.open_ports.is_empty() { (dash()) }
                @for (i, p) in d.open_ports.iter().enumerate() {
                    @if i > 0 { ", " }
                    @if r.allows(*p) == Some(false) {
                        strong title="not authorized" { (p) " (unauthorized)" }
                    } @else { (p) }
                }
            }
            td {
                @if d.present { "now" } @else {
                    "gone; last seen " (layout::time(d.last_seen))
                }
                br; span.hint { "first seen " (layout::time(d.first_seen)) }
            }
            td {
                @if d.approved {
                    "approved"
                    @if let Some(kind) = &d.kind { br; span.hint { (kind) } }
                    @if d.monitored { br; span.hint { "monitored" } }
                } @else if can_approve {
                    form method="post" action={ "/agents/" (agent) "/devices/" (d.id) "/approve" } {
                        (session.csrf_field())
                        button type="submit" aria-label={ "Approve device " (device_label(d)) } { "Approve device" }
                    }
                } @else {
                    "not reviewed"
                }
            }
        }
    }
}

fn sweep_section(sweep: &StoredSweep) -> Markup {
    let report = crate::devices::StoredReport::of(sweep).unwrap_or_default();
    html! {
        section.section aria-labelledby="sweep-h" {
            h2 #sweep-h { "Latest sweep" }
            p {
                "Swept " (if report.swept.is_empty() { "nothing".to_string() } else { report.swept.join(", ") })
                " in " (sweep.finished_at - sweep.started_at) " s."
            }
            @if let Some(why) = &report.incomplete {
                p.flash.error role="alert" { "Incomplete sweep: " (why) ". Devices it did not see are still shown as present." }
            }
            table {
                caption { "The agent's interfaces" }
                thead { tr { th scope="col" { "Interface" } th scope="col" { "Kind" } th scope="col" { "Subnets" } th scope="col" { "Swept" } } }
                tbody {
                    @for i in &report.interfaces {
                        tr {
                            td { (i.name) }
                            td { (i.kind) }
                            td { (i.subnets.join(", ")) }
                            td { @match &i.excluded {
                                None => "yes",
                                Some(why) => { "no: " (why) " (include it in the scan settings to sweep it)" }
                            } }
                        }
                    }
                }
            }
            @for s in &report.skipped {
                p.hint { "Left out: " (s.network) " — " (s.reason) }
            }
            @if let Some(g) = &report.gateway {
                h3 { "The gateway's port forwards" }
                (gateway_forwards(g))
            }
        }
    }
}

/// What the gateway said of its port forwards (the sweep's audit), shown
/// with the sweep and beside the outside scan's results.
pub(crate) fn gateway_forwards(g: &vigil_proto::agent::GatewayReport) -> Markup {
    html! {
        @if g.answered.is_empty() {
            p.hint { "The gateway did not answer UPnP, NAT-PMP or PCP." }
        } @else {
            p { "Answered: " (g.answered.join(", "))
                @if let Some(ext) = &g.external_address { "; external address " (ext) } }
            @if g.forwards.is_empty() {
                p { "No port forwards." }
            } @else {
                ul {
                    @for f in &g.forwards {
                        li { "Forwards " (f.protocol.to_uppercase()) " " (f.external_port)
                             " from outside to " (f.internal_client) ":" (f.internal_port)
                             @if !f.description.is_empty() { " — “" (f.description) "”" }
                             " (added by " (if f.source == "upnp" { "UPnP" } else { f.source.as_str() }) ")"
                             @if !f.enabled { " (disabled)" } }
                    }
                }
            }
        }
        @for p in &g.problems { p.hint { (p) } }
    }
}
