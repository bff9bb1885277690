//! Agent updates: the builds this server offers, automatic updates on or
//! off, a rollout (all agents, a tag, chosen agents), and where each
//! agent's update stands. The rules are in [`crate::updates`], shared with
//! the REST API.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, table_wrap, time, Page};
use super::session::Session;
use crate::app::App;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_proto::api::{RolloutRequest, UpdatesView};
use vigil_store::now_unix;

fn state_label(state: &str) -> &str {
    match state {
        "current" => "up to date",
        "outdated" => "older version",
        "requested" => "update requested",
        "offered" => "update offered",
        "installing" => "installing",
        "updated" => "updated",
        "failed" => "update failed",
        "no_build" => "no build for its platform",
        other => other,
    }
}

fn body(session: &Session, v: &UpdatesView, tags: &[String]) -> Markup {
    html! {
        h2 { "Builds this server offers" }
        @if v.builds.is_empty() {
            p { "None: this server has no agent build it could offer." }
        } @else {
            (table_wrap("Agent builds", html! {
                table {
                    thead { tr { th { "Platform" } th { "Version" } th { "Size" } th { "SHA-256" } } }
                    tbody {
                        @for b in &v.builds {
                            tr { td { (b.platform) } td { (b.version) } td { (b.size / (1 << 20)) " MiB" } td { code { (b.sha256) } } }
                        }
                    }
                }
            }))
        }
        @if session.can_write() {
            form.stack method="post" action="/updates/auto" {
                (session.csrf_field())
                @if v.auto_update {
                    p { "Automatic updates are " strong { "on" } ": every agent gets the build of its platform." }
                    input type="hidden" name="enabled" value="off";
                    button.secondary type="submit" { "Turn automatic updates off" }
                } @else {
                    p { "Automatic updates are " strong { "off" } ": agents are updated when you roll a build out." }
                    input type="hidden" name="enabled" value="on";
                    button.secondary type="submit" { "Turn automatic updates on" }
                }
            }
            h2 { "Roll out" }
            form.stack method="post" action="/updates/rollout" {
                (session.csrf_field())
                fieldset {
                    legend { "To" }
                    label { input type="radio" name="to" value="all" checked; " All agents" }
                    label { input type="radio" name="to" value="tag"; " Agents tagged" }
                    input #tag type="text" name="tag" list="known-tags" aria-label="Tag";
                    datalist #known-tags { @for t in tags { option value=(t) {} } }
                    label { input type="radio" name="to" value="agents"; " These agents" }
                    select #agents name="agents" multiple size="5" aria-label="Agents" {
                        @for a in &v.agents { option value=(a.agent_id) { (a.name) } }
                    }
                }
                p.hint { "Each agent downloads the build at its next heartbeat over its pinned connection, checks its SHA-256 and this server's signature, replaces itself, and keeps the new version only if it reaches the server within a minute; otherwise it goes back to the old one." }
                button type="submit" { "Roll out" }
            }
        } @else {
            p.hint { "Viewers may only read; ask an admin or owner to roll out updates." }
        }
        h2 { "Agents" }
        (table_wrap("Agent updates", html! {
            table {
                thead { tr { th { "Agent" } th { "Runs" } th { "Update" } th { "Version" } th { "Detail" } th { "Since" } } }
                tbody {
                    @for a in &v.agents {
                        tr {
                            td { a href=(format!("/agents/{}", a.agent_id)) { (a.name) } }
                            td { (a.version.as_deref().unwrap_or("—")) }
                            td { (layout::badge(state_label(&a.state))) }
                            td { (a.target_version.as_deref().unwrap_or("—")) }
                            td { (a.detail.as_deref().unwrap_or("")) }
                            td { @match a.updated_at { Some(t) => (time(t)), None => "—" } }
                        }
                    }
                }
            }
        }))
    }
}

async fn page(
    app: &App,
    session: &Session,
    message: Option<&str>,
    refused: bool,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let view = crate::updates::view(app, account).await?;
    let tags = app.store.agent_tags(account).await?;
    let content = html! {
        h1 { "Agent updates" }
        @if refused { (layout::error(message)) } @else { (layout::flash(message)) }
        (body(session, &view, &tags))
    };
    Ok(layout::page(
        session,
        Page {
            title: "Agent updates",
            nav: "/updates",
            refresh_secs: None,
        },
        content,
    ))
}

/// `GET /updates`.
pub(crate) async fn show(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("rollout") => Some("Rolled out: each agent updates at its next heartbeat."),
        Some("auto") => Some("Automatic updates changed."),
        _ => None,
    };
    page(&app, &session, done, false).await
}

/// `POST /updates/rollout`.
pub(crate) async fn rollout(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let req = match form.get("to").unwrap_or_default() {
        "tag" => RolloutRequest {
            tag: Some(form.get("tag").unwrap_or_default().to_string()),
            ..Default::default()
        },
        "agents" => RolloutRequest {
            agents: form.all("agents").iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        },
        _ => RolloutRequest {
            all: true,
            ..Default::default()
        },
    };
    let account = session.account.id;
    let outcome = match crate::api::updates::rollout_of(&req) {
        Ok(to) => app
            .store
            .request_updates(account, &to, now_unix())
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(_) => {
            let detail = serde_json::to_value(&req).ok();
            crate::audit::record(&app, account, &session, "updates.rollout", None, detail).await;
            Ok(Redirect::to("/updates?done=rollout").into_response())
        }
        Err(m) => Ok(page(&app, &session, Some(&m), true).await?.into_response()),
    }
}

/// `POST /updates/auto`.
pub(crate) async fn auto(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let on = form.get("enabled") == Some("on");
    app.store.set_auto_update(session.account.id, on).await?;
    let what = if on { "on" } else { "off" };
    crate::audit::record(
        &app,
        session.account.id,
        &session,
        "updates.auto",
        Some(what),
        None,
    )
    .await;
    Ok(Redirect::to("/updates?done=auto").into_response())
}
