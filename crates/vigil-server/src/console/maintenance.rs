//! Maintenance windows: the list (open now, next occurrence, agents
//! covered), a form to add one (one-off, weekly or cron, in a time zone;
//! for the account, chosen agents or a tag) and deleting one. The rules
//! are in [`crate::maintenance`], shared with the REST API.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, table_wrap, time, Page};
use super::session::Session;
use crate::app::App;
use crate::maintenance::{checked, view};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::compliance::schedule::WEEKDAYS;
use vigil_core::maintenance::{Occurrence, Schedule, Scope, Window};
use vigil_proto::api::MaintenanceView;
use vigil_store::{now_unix, Agent, MaintenanceId};

/// What the add form holds (echoed back when refused).
#[derive(Default)]
struct Draft {
    name: String,
    kind: String,
    time_zone: String,
    start: String,
    end: String,
    days: Vec<u8>,
    from: String,
    to: String,
    cron: String,
    duration: String,
    scope: String,
    tag: String,
    agents: Vec<String>,
    notify: bool,
}

impl Draft {
    fn of(f: &Form) -> Draft {
        let text = |n: &str| f.get(n).unwrap_or_default().trim().to_string();
        Draft {
            name: text("name"),
            kind: text("kind"),
            time_zone: text("time_zone"),
            start: text("start"),
            end: text("end"),
            days: f
                .all("days")
                .iter()
                .filter_map(|d| d.parse().ok())
                .collect(),
            from: text("from"),
            to: text("to"),
            cron: text("cron"),
            duration: text("duration"),
            scope: text("scope"),
            tag: text("tag"),
            agents: f.all("agents").iter().map(|a| a.to_string()).collect(),
            notify: f.get("notify").is_some(),
        }
    }

    fn window(&self) -> Result<Window, String> {
        let tz = self.time_zone.clone();
        let schedule = match self.kind.as_str() {
            "once" => Schedule::Once {
                start: self.start.clone(),
                end: self.end.clone(),
                time_zone: tz,
            },
            "weekly" => Schedule::Weekly {
                days: self.days.clone(),
                from: self.from.clone(),
                to: self.to.clone(),
                time_zone: tz,
            },
            "cron" => Schedule::Cron {
                expr: self.cron.clone(),
                duration_minutes: self.duration.parse().map_err(|_| {
                    format!(
                        "Duration {:?}: write a whole number of minutes.",
                        self.duration
                    )
                })?,
                time_zone: tz,
            },
            _ => return Err("Choose when: once, weekly or cron.".into()),
        };
        let scope = match self.scope.as_str() {
            "tag" => Scope::Tag {
                tag: self.tag.to_lowercase(),
            },
            "agents" => Scope::Agents {
                agents: self.agents.clone(),
            },
            _ => Scope::Account,
        };
        Ok(Window {
            name: self.name.clone(),
            schedule,
            scope,
            notify_start_end: self.notify,
        })
    }
}

fn when(s: &Schedule) -> String {
    match s {
        Schedule::Once {
            start,
            end,
            time_zone,
        } => format!(
            "{} to {} ({time_zone})",
            start.replace('T', " "),
            end.replace('T', " ")
        ),
        Schedule::Weekly {
            days,
            from,
            to,
            time_zone,
        } => {
            let names: Vec<&str> = days
                .iter()
                .filter_map(|d| WEEKDAYS.get(usize::from(*d)))
                .copied()
                .collect();
            format!("{} {from}–{to} ({time_zone})", names.join(", "))
        }
        Schedule::Cron {
            expr,
            duration_minutes,
            time_zone,
        } => format!("cron “{expr}” for {duration_minutes} min ({time_zone})"),
    }
}

fn scope_text(s: &Scope, agents: &[Agent]) -> String {
    match s {
        Scope::Account => "All agents".into(),
        Scope::Tag { tag } => format!("Agents tagged “{tag}”"),
        Scope::Agents { agents: ids } => {
            let names: Vec<&str> = agents
                .iter()
                .filter(|a| ids.contains(&a.id.to_string()))
                .map(|a| a.name.as_str())
                .collect();
            names.join(", ")
        }
    }
}

fn span(o: &Occurrence) -> String {
    format!("{} → {}", time(o.start), time(o.end))
}

fn table(session: &Session, windows: &[MaintenanceView], agents: &[Agent]) -> Markup {
    if windows.is_empty() {
        return html! { p { "No maintenance window yet." } };
    }
    table_wrap(
        "Maintenance windows",
        html! {
            table {
                thead { tr { th { "Name" } th { "When" } th { "For" } th { "Agents" } th { "Now" } th { "Next" } th { span.sr-only { "Actions" } } } }
                tbody {
                    @for w in windows {
                        tr {
                            td { (w.window.name) @if w.window.notify_start_end { " " span.hint { "(start and end notified)" } } }
                            td { (when(&w.window.schedule)) }
                            td { (scope_text(&w.window.scope, agents)) }
                            td { (w.agents) }
                            td { @match &w.open { Some(o) => { (layout::badge("in maintenance")) " until " (time(o.end)) }, None => "—" } }
                            td { @match &w.next { Some(o) => (span(o)), None => "—" } }
                            td {
                                @if session.can_write() {
                                    form method="post" action=(format!("/maintenance/{}/delete", w.id)) {
                                        (session.csrf_field())
                                        button.secondary type="submit" aria-label=(format!("Delete {}", w.window.name)) { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn form(session: &Session, d: &Draft, agents: &[Agent], tags: &[String]) -> Markup {
    if !session.can_write() {
        return html! { p.hint { "Viewers may only read; ask an admin or owner to plan maintenance." } };
    }
    let kind = if d.kind.is_empty() {
        "weekly"
    } else {
        d.kind.as_str()
    };
    let scope = if d.scope.is_empty() {
        "account"
    } else {
        d.scope.as_str()
    };
    let tz = if d.time_zone.is_empty() {
        "UTC"
    } else {
        d.time_zone.as_str()
    };
    html! {
        form.stack method="post" action="/maintenance" {
            (session.csrf_field())
            label for="name" { "Name" }
            input #name type="text" name="name" value=(d.name) required maxlength="100";
            label for="time_zone" { "Time zone" }
            input #time_zone type="text" name="time_zone" value=(tz) required aria-describedby="tz-hint";
            p.hint #tz-hint { "An IANA name such as Europe/Paris or America/New_York; times below are local to it, daylight saving included." }
            fieldset {
                legend { "When" }
                label { input type="radio" name="kind" value="once" checked[kind == "once"]; " Once" }
                label for="start" { "Start" }
                input #start type="datetime-local" name="start" value=(d.start);
                label for="end" { "End" }
                input #end type="datetime-local" name="end" value=(d.end);
                label { input type="radio" name="kind" value="weekly" checked[kind == "weekly"]; " Every week" }
                div role="group" aria-label="Weekdays" {
                    @for (i, day) in WEEKDAYS.iter().enumerate() {
                        @let n = u8::try_from(i).unwrap_or_default();
                        label { input type="checkbox" name="days" value=(n) checked[d.days.contains(&n)]; " " (day) }
                    }
                }
                label for="from" { "From" }
                input #from type="time" name="from" value=(d.from);
                label for="to" { "To" }
                input #to type="time" name="to" value=(d.to) aria-describedby="to-hint";
                p.hint #to-hint { "Earlier than From: the window ends the next day." }
                label { input type="radio" name="kind" value="cron" checked[kind == "cron"]; " Cron expression" }
                label for="cron" { "Cron (minute hour day month weekday)" }
                input #cron type="text" name="cron" value=(d.cron) placeholder="0 2 * * 0";
                label for="duration" { "Lasting (minutes)" }
                input #duration type="number" name="duration" min="1" value=(d.duration);
            }
            fieldset {
                legend { "For" }
                label { input type="radio" name="scope" value="account" checked[scope == "account"]; " All agents" }
                label { input type="radio" name="scope" value="tag" checked[scope == "tag"]; " Agents tagged" }
                input #tag type="text" name="tag" value=(d.tag) list="known-tags" aria-label="Tag";
                datalist #known-tags { @for t in tags { option value=(t) {} } }
                label { input type="radio" name="scope" value="agents" checked[scope == "agents"]; " These agents" }
                select #agents name="agents" multiple size="5" aria-label="Agents" {
                    @for a in agents {
                        @let id = a.id.to_string();
                        option value=(id) selected[d.agents.contains(&id)] { (a.name) }
                    }
                }
            }
            label { input type="checkbox" name="notify" checked[d.notify]; " Tell the contacts when it starts and ends" }
            p.hint { "During a window scans run and alerts show as usual; nobody is notified. When it ends, what is still wrong is notified once. Start and end notices go to contacts whose rules include the maintenance events." }
            button type="submit" { "Add window" }
        }
    }
}

async fn page(
    app: &App,
    session: &Session,
    draft: &Draft,
    message: Option<&str>,
    refused: bool,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let agents = app.store.agents(account).await?;
    let tags = app.store.agent_tags(account).await?;
    let now = now_unix();
    let windows: Vec<MaintenanceView> = app
        .store
        .windows(account)
        .await?
        .iter()
        .map(|w| view(w, &agents, now))
        .collect();
    let body = html! {
        h1 { "Maintenance" }
        @if refused { (layout::error(message)) } @else { (layout::flash(message)) }
        (table(session, &windows, &agents))
        h2 { "Plan a window" }
        (form(session, draft, &agents, &tags))
    };
    Ok(layout::page(
        session,
        Page {
            title: "Maintenance",
            nav: "/maintenance",
            refresh_secs: None,
        },
        body,
    ))
}

/// `GET /maintenance`.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("added") => Some("Maintenance window added."),
        Some("deleted") => Some("Maintenance window deleted."),
        _ => None,
    };
    page(&app, &session, &Draft::default(), done, false).await
}

/// `POST /maintenance`: adds a window, or shows the form again with why not.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let draft = Draft::of(&form);
    let account = session.account.id;
    let saved = match draft.window() {
        Err(m) => Err(m),
        Ok(w) => match checked(&app, account, &w).await {
            Err(e) => Err(e.to_string()),
            Ok(()) => app
                .store
                .create_window(account, &w, Some(&session.user.email), now_unix())
                .await
                .map_err(|e| match e {
                    vigil_store::StoreError::Invalid(m) => m,
                    e => e.to_string(),
                }),
        },
    };
    match saved {
        Ok(w) => {
            crate::audit::record(
                &app,
                account,
                &session,
                "maintenance.create",
                Some(&w.window.name),
                serde_json::to_value(&w.window).ok(),
            )
            .await;
            Ok(Redirect::to("/maintenance?done=added").into_response())
        }
        Err(message) => {
            let body = page(&app, &session, &draft, Some(&message), true).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, body).into_response())
        }
    }
}

/// `POST /maintenance/{id}/delete`.
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, .. }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id: MaintenanceId = id
        .parse()
        .map_err(|_| ConsoleError::BadRequest(format!("invalid maintenance window id {id:?}")))?;
    app.store.delete_window(session.account.id, id).await?;
    crate::audit::record(
        &app,
        session.account.id,
        &session,
        "maintenance.delete",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(Redirect::to("/maintenance?done=deleted").into_response())
}
