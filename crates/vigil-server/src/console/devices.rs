//! An agent's "Devices" page (`/agents/{id}/devices`): the location's
//! inventory from its local-network sweeps, and the latest sweep (which
//! interfaces were swept or left out and why, networks left out, the
//! gateway's port forwards). Filters: `?show=present|gone`, `?vendor=`.

use super::agent_history::{tabs, Tab};
use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::lan::Device;
use vigil_store::{AgentId, DeviceId, StoredSweep};

/// `POST /agents/{id}/devices/{device}/approve`.
pub(crate) async fn approve(
    State(app): State<Arc<App>>,
    Path((id, device)): Path<(String, String)>,
    Post { session, form: _ }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<AgentId>(&id)?;
    let device = super::path_id::<DeviceId>(&device)?;
    crate::devices::approve(&app, session.account.id, (&session).into(), id, device).await?;
    Ok(Redirect::to(&format!("/agents/{id}/devices?done=approved")).into_response())
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
    let present = match query.get("show") {
        Some("present") => Some(true),
        Some("gone") => Some(false),
        _ => None,
    };
    let vendor = query.get("vendor").map(str::trim).filter(|v| !v.is_empty());
    let devices = app.store.devices(account, id).await?;
    let shown: Vec<&Device> = crate::devices::matching(&devices, present, vendor).collect();
    let sweep = app.store.network_sweep(account, id).await?;
    let can_approve = session.can_write();
    let done = query.get("done") == Some("approved");
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
            h2 #devices-h { "Devices (" (devices.len()) ", " (devices.iter().filter(|d| d.present).count()) " present)" }
            form.filters method="get" action={ "/agents/" (id) "/devices" } {
                label for="show" { "Show" }
                select #show name="show" {
                    option value="" selected[present.is_none()] { "all" }
                    option value="present" selected[present == Some(true)] { "present" }
                    option value="gone" selected[present == Some(false)] { "gone" }
                }
                label for="vendor" { "Vendor contains" }
                input #vendor type="search" name="vendor" value=(vendor.unwrap_or_default());
                button type="submit" { "Filter" }
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
                        @for d in &shown { (device_row(&session, id, d, can_approve)) }
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

fn device_row(session: &Session, agent: AgentId, d: &Device, can_approve: bool) -> Markup {
    let dash = || "–".to_string();
    let ports: Vec<String> = d.open_ports.iter().map(u16::to_string).collect();
    html! {
        tr {
            td { (d.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
            td { code { (d.mac.map(|m| m.to_string()).unwrap_or_else(dash)) } }
            td { (d.vendor.clone().unwrap_or_else(dash)) }
            td {
                (d.name.clone().unwrap_or_else(dash))
                @if let Some(src) = d.name_source { " " span.hint { "(" (src.label()) ")" } }
            }
            td { (if ports.is_empty() { dash() } else { ports.join(", ") }) }
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
                        button type="submit" aria-label={ "Approve device " (d.address().map(|a| a.to_string()).unwrap_or_default()) } { "Approve device" }
                    }
                } @else {
                    "not reviewed"
                }
            }
        }
    }
}

fn sweep_section(sweep: &StoredSweep) -> Markup {
    // Written by this server (devices.rs): unreadable only if tampered with.
    let report: crate::devices::StoredReport =
        serde_json::from_str(&sweep.report).unwrap_or_default();
    html! {
        section.section aria-labelledby="sweep-h" {
            h2 #sweep-h { "Latest sweep" }
            p {
                "Swept " (if report.swept.is_empty() { "nothing".to_string() } else { report.swept.join(", ") })
                " in " (sweep.finished_at - sweep.started_at) " s."
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
                @if g.answered.is_empty() {
                    p.hint { "The gateway did not answer UPnP or NAT-PMP." }
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
                                     " (added by " (f.source) ")"
                                     @if !f.enabled { " (disabled)" } }
                            }
                        }
                    }
                }
                @for p in &g.problems { p.hint { (p) } }
            }
        }
    }
}
