//! Alerts: the list (open, unacknowledged, acknowledged, resolved or all;
//! newest first, paged in the database, so it stays fast with any number
//! of alerts), an alert's page with its facts and history, and
//! acknowledging (`POST /alerts/{id}/ack`, the rules of
//! `POST /api/v1/alerts/{id}/ack`).

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::alert::target_label;
use crate::alert::{acknowledge as ack_rules, alert_title};
use crate::app::App;
use crate::http::error::ApiError;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_store::{
    AckFilter, Agent, AgentId, Alert, AlertEvent, AlertEventKind, AlertFilter, AlertId,
    AlertStatus, MAX_ACK_NOTE_CHARS,
};

const PAGE_SIZE: u32 = 50;

/// The list's views, as (query value, label).
const VIEWS: [(&str, &str); 5] = [
    ("open", "Open"),
    ("unacknowledged", "Unacknowledged"),
    ("acknowledged", "Acknowledged"),
    ("resolved", "Resolved"),
    ("all", "All"),
];

/// What a view of the list shows: its key (unknown keys show open
/// alerts), and the status and acknowledgement it filters on.
/// "Acknowledged" and "unacknowledged" are about open alerts: what is
/// being taken care of, and what still needs someone.
fn view(key: Option<&str>) -> (&'static str, Option<AlertStatus>, AckFilter) {
    match key {
        Some("unacknowledged") => (
            "unacknowledged",
            Some(AlertStatus::Open),
            AckFilter::Unacknowledged,
        ),
        Some("acknowledged") => (
            "acknowledged",
            Some(AlertStatus::Open),
            AckFilter::Acknowledged,
        ),
        Some("resolved") => ("resolved", Some(AlertStatus::Resolved), AckFilter::Any),
        Some("all") => ("all", None, AckFilter::Any),
        _ => ("open", Some(AlertStatus::Open), AckFilter::Any),
    }
}

fn list_url(view: &str, page: u64, done: Option<&str>) -> String {
    let page = page.to_string();
    let mut q = vec![("status", view), ("page", page.as_str())];
    if let Some(d) = done {
        q.push(("done", d));
    }
    format!(
        "/alerts?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

/// The success message of `?done=…`.
fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("acked") => Some("Alert acknowledged."),
        _ => None,
    }
}

/// The agents of these alerts (removed ones included: their alerts stay).
async fn agents_of(
    app: &App,
    session: &Session,
    alerts: &[Alert],
) -> Result<HashMap<AgentId, Agent>, ConsoleError> {
    let mut agents = HashMap::new();
    for a in alerts {
        if let std::collections::hash_map::Entry::Vacant(slot) = agents.entry(a.agent_id) {
            slot.insert(app.store.agent(session.account.id, a.agent_id).await?);
        }
    }
    Ok(agents)
}

fn status_badges(a: &Alert) -> Markup {
    html! {
        (layout::badge(&a.status.to_string()))
        @if a.flapping { " " span.badge.warn { "flapping" } }
        @if a.is_acknowledged() { " " span.badge { "acknowledged" } }
    }
}

/// The small form of an "Acknowledge" button; `back` fields say where to
/// return to.
fn ack_button(session: &Session, a: &Alert, label: &str, back: Markup) -> Markup {
    html! {
        form.inline method="post" action={ "/alerts/" (a.id) "/ack" } {
            (session.csrf_field())
            (back)
            button type="submit" aria-label={ "Acknowledge: " (label) } { "Acknowledge" }
        }
    }
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let (key, status, ack) = view(query.get("status"));
    let filter = AlertFilter {
        status,
        agent: None,
    };
    let account = session.account.id;
    let mut page = super::page_number(query.get("page"));
    let offset = |page: u64| (page - 1) * u64::from(PAGE_SIZE);
    let (mut shown, total) = app
        .store
        .alerts_page(account, &filter, ack, offset(page), PAGE_SIZE)
        .await?;
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    if page > pages {
        // Past the end (the list shrank): the last page.
        page = pages;
        shown = app
            .store
            .alerts_page(account, &filter, ack, offset(page), PAGE_SIZE)
            .await?
            .0;
    }
    let agents = agents_of(&app, &session, &shown).await?;
    let writer = session.can_write();
    let body = html! {
        h1 { "Alerts" }
        (layout::flash(done_message(query.get("done"))))
        nav aria-label="Alert status" {
            ul.pager {
                @for (k, label) in VIEWS {
                    li { a href={ "/alerts?status=" (k) } aria-current=[(k == key).then_some("page")] { (label) } }
                }
            }
        }
        p aria-live="polite" { (total) " alert" (if total == 1 { "" } else { "s" }) "." }
        @if !shown.is_empty() {
            (layout::table_wrap("Table of alerts", html! {
                table {
                    thead { tr {
                        th scope="col" { "Status" } th scope="col" { "Alert" } th scope="col" { "Agent" }
                        th scope="col" { "Raised" } th scope="col" { "Acknowledged" } th scope="col" { "Resolved" }
                        @if writer { th scope="col" { "Action" } }
                    } }
                    tbody {
                        @for a in &shown {
                            @let agent = agents.get(&a.agent_id);
                            @let title = alert_title(a, agent);
                            tr {
                                td { (status_badges(a)) }
                                td.wrap { a href={ "/alerts/" (a.id) } { (title) } }
                                td { @if let Some(agent) = agent { a href={ "/agents/" (agent.id) } { (agent.name) } } }
                                td { (layout::time(a.raised_at)) }
                                td.wrap {
                                    @match &a.acknowledged_by {
                                        Some(by) => { (by) br; span.hint { (layout::maybe_time(a.acknowledged_at)) } }
                                        None => "—",
                                    }
                                }
                                td { (layout::maybe_time(a.resolved_at)) }
                                @if writer {
                                    td {
                                        @if a.status == AlertStatus::Open && !a.is_acknowledged() {
                                            (ack_button(&session, a, &title, html! {
                                                input type="hidden" name="back" value="list";
                                                input type="hidden" name="status" value=(key);
                                                input type="hidden" name="page" value=(page);
                                            }))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }))
        }
        (layout::pager(page, pages, |p| list_url(key, p, None)))
    };
    Ok(layout::page(
        &session,
        Page {
            title: "Alerts",
            nav: "/alerts",
            refresh_secs: None,
        },
        body,
    ))
}

/// One history entry for people: what happened, who did it (or whom it
/// was sent to; nobody for what the scans did), and the details.
fn event_line(e: &AlertEvent) -> (&'static str, String, String) {
    let contact = || match (&e.contact_name, e.channel) {
        (Some(name), Some(channel)) => format!("{name} ({channel})"),
        (Some(name), None) => name.clone(),
        _ => "—".into(),
    };
    let attempt = e
        .attempt
        .map(|n| format!("attempt {n}"))
        .unwrap_or_default();
    match e.kind {
        AlertEventKind::Raised => ("Raised", String::new(), String::new()),
        AlertEventKind::Resolved => (
            "Resolved",
            e.actor.clone().unwrap_or_default(),
            crate::ending::history_line(e.detail.as_deref()).into(),
        ),
        AlertEventKind::FlappingStarted => (
            "Flapping started",
            String::new(),
            "The condition keeps coming and going.".into(),
        ),
        AlertEventKind::FlappingStopped => ("Flapping stopped", String::new(), String::new()),
        AlertEventKind::Acknowledged => (
            "Acknowledged",
            e.actor.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
        ),
        AlertEventKind::NotificationQueued => (
            "Notification queued",
            contact(),
            e.detail.clone().unwrap_or_default(),
        ),
        AlertEventKind::NotificationDelivered => ("Notification delivered", contact(), attempt),
        AlertEventKind::NotificationFailed => {
            let then = match e.retry_at {
                Some(t) => format!("retried at {}", layout::time(t)),
                None => "given up".into(),
            };
            let error = e.error.as_deref().unwrap_or("unknown error");
            (
                "Notification failed",
                contact(),
                format!("{attempt}: {error}; {then}"),
            )
        }
    }
}

/// A machine-readable time for `<time datetime>`.
fn iso(t: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339())
}

/// Text with its line breaks kept.
fn lines(text: &str) -> Markup {
    html! {
        @for (i, line) in text.lines().enumerate() {
            @if i > 0 { br; }
            (line)
        }
    }
}

/// The history as a timeline: the time, then what happened, who did it
/// or whom it was sent to, and the details on their own line(s).
fn history_list(events: &[AlertEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "No history recorded." }
        } @else {
            dl.facts {
                @for e in events {
                    @let (what, who, details) = event_line(e);
                    dt { time datetime=[iso(e.at)] { (layout::time(e.at)) } }
                    dd {
                        strong { (what) }
                        @if !who.is_empty() { " · " span { (who) } }
                        @if !details.is_empty() { br; span { (lines(&details)) } }
                    }
                }
            }
        }
    }
}

fn ack_section(session: &Session, a: &Alert, note: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(by) = &a.acknowledged_by {
            p { "Acknowledged by " strong { (by) } " at " (layout::maybe_time(a.acknowledged_at)) "." }
            @if let Some(n) = &a.ack_note { blockquote { (lines(n)) } }
        } @else if a.status == AlertStatus::Resolved {
            p.muted { "Resolved without acknowledgement; only open alerts can be acknowledged." }
        } @else if !session.can_write() {
            p.hint { "Not acknowledged yet. Viewers may only read; ask an admin or owner of the account to acknowledge it." }
        } @else {
            (layout::error(error))
            p.hint #ack-hint {
                "Tell the team you are on it. The alert stays open until the scans find the condition over."
            }
            form.stack method="post" action={ "/alerts/" (a.id) "/ack" } {
                (session.csrf_field())
                input type="hidden" name="back" value="alert";
                label for="note" { "Note (optional)" }
                textarea #note name="note" rows="3" maxlength=(MAX_ACK_NOTE_CHARS)
                    aria-describedby="ack-hint" { (note) }
                button type="submit" { "Acknowledge" }
            }
        }
    }
}

async fn detail_page(
    app: &App,
    session: &Session,
    alert: &Alert,
    note: &str,
    error: Option<&str>,
    done: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let agents = agents_of(app, session, std::slice::from_ref(alert)).await?;
    let agent = agents.get(&alert.agent_id);
    let events = app.store.alert_history(account, alert.id).await?;
    let title = alert_title(alert, agent);
    // What listens on the port of an open port alert, from the latest result.
    let says_what_listens = matches!(
        alert.condition.kind,
        vigil_core::ConditionKind::UnauthorizedOpen | vigil_core::ConditionKind::ProcessChanged
    );
    let listening = match (agent, alert.condition.port, says_what_listens, alert.status) {
        (Some(agent), Some(port), true, AlertStatus::Open) => {
            let (details, _) = app.listening(agent, &alert.target, port).await?;
            details.map(|d| d.facts()).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let body = html! {
        p { a href="/alerts" { "← Alerts" } }
        h1 { (title) }
        (layout::flash(done_message(done)))
        section.section aria-labelledby="facts-h" {
            h2 #facts-h { "Overview" }
            dl.facts {
                dt { "Status" } dd { (status_badges(alert)) }
                dt { "Agent" } dd {
                    @match agent {
                        Some(agent) => a href={ "/agents/" (agent.id) } { (agent.name) },
                        None => "—",
                    }
                }
                dt { "Target" } dd { (target_label(&alert.target)) }
                dt { "Condition" } dd { (alert.condition) }
                @for (label, value) in &listening {
                    dt { (label) } dd { (value) }
                }
                dt { "Raised" } dd { (layout::time(alert.raised_at)) }
                dt { "Resolved" } dd { (layout::maybe_time(alert.resolved_at)) }
                @if let Some(why) = alert.resolution {
                    dt { "Why it ended" } dd {
                        (crate::ending::history_line(Some(why.as_str())))
                        @if let Some(by) = &alert.resolved_by { " By " (by) "." }
                    }
                }
                dt { "Acknowledged" } dd {
                    @match &alert.acknowledged_by {
                        Some(by) => { (by) " at " (layout::maybe_time(alert.acknowledged_at)) }
                        None => "not yet",
                    }
                }
                dt { "ID" } dd { code { (alert.id) } }
            }
        }
        section.section aria-labelledby="ack-h" {
            h2 #ack-h { "Acknowledgement" }
            (ack_section(session, alert, note, error))
        }
        section.section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            (history_list(&events))
        }
    };
    Ok(layout::page(
        session,
        Page {
            title: &title,
            nav: "/alerts",
            refresh_secs: None,
        },
        body,
    ))
}

pub(crate) async fn detail(
    State(app): State<Arc<App>>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let alert = app
        .store
        .alert(session.account.id, super::path_id::<AlertId>(&id)?)
        .await?;
    let query = Form::query(query)?;
    detail_page(&app, &session, &alert, "", None, query.get("done")).await
}

/// `POST /alerts/{id}/ack`: back to the list (`back=list`, with its
/// `status` and `page`) or the alert's page; a refused acknowledgement
/// shows the alert's page with the reason and the note as typed.
pub(crate) async fn acknowledge(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    let id = super::path_id::<AlertId>(&id)?;
    let note = form.get("note").unwrap_or_default();
    match ack_rules(&app, &session.user, session.from, id, Some(note)).await {
        Ok(_) => {
            let to = match form.get("back") {
                Some("list") => {
                    let (key, _, _) = view(form.get("status"));
                    list_url(key, super::page_number(form.get("page")), Some("acked"))
                }
                _ => format!("/alerts/{id}?done=acked"),
            };
            Ok(Redirect::to(&to).into_response())
        }
        Err(e @ (ApiError::Conflict(_) | ApiError::Invalid(_))) => {
            let status = e.status();
            let alert = app.store.alert(session.account.id, id).await?;
            let message = format!("Not acknowledged: {e}.");
            let page = detail_page(&app, &session, &alert, note, Some(&message), None).await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_store::{Channel, ContactId};

    #[test]
    fn views_filter_status_and_acknowledgement() {
        use AlertStatus::*;
        for (key, want) in [
            (None, ("open", Some(Open), AckFilter::Any)),
            (Some("open"), ("open", Some(Open), AckFilter::Any)),
            (
                Some("unacknowledged"),
                ("unacknowledged", Some(Open), AckFilter::Unacknowledged),
            ),
            (
                Some("acknowledged"),
                ("acknowledged", Some(Open), AckFilter::Acknowledged),
            ),
            (
                Some("resolved"),
                ("resolved", Some(Resolved), AckFilter::Any),
            ),
            (Some("all"), ("all", None, AckFilter::Any)),
            (Some("<script>"), ("open", Some(Open), AckFilter::Any)),
        ] {
            assert_eq!(view(key), want, "{key:?}");
        }
        assert!(VIEWS.iter().all(|(k, _)| view(Some(k)).0 == *k));
        assert_eq!(
            list_url("resolved", 3, Some("acked")),
            "/alerts?status=resolved&page=3&done=acked"
        );
    }

    fn event(kind: AlertEventKind) -> AlertEvent {
        AlertEvent {
            alert_id: AlertId::random(),
            seq: 1,
            at: 0,
            kind,
            actor: None,
            detail: None,
            contact_id: None,
            contact_name: None,
            channel: None,
            attempt: None,
            error: None,
            retry_at: None,
        }
    }

    #[test]
    fn history_lines() {
        let to_hook = |kind| AlertEvent {
            contact_id: Some(ContactId::random()),
            contact_name: Some("Ops hook".into()),
            channel: Some(Channel::Webhook),
            attempt: Some(2),
            ..event(kind)
        };
        let acked = AlertEvent {
            actor: Some("owner@acme.test".into()),
            detail: Some("on it".into()),
            ..event(AlertEventKind::Acknowledged)
        };
        let failed = AlertEvent {
            error: Some("HTTP 503".into()),
            retry_at: Some(60),
            ..to_hook(AlertEventKind::NotificationFailed)
        };
        let gave_up = AlertEvent {
            retry_at: None,
            ..failed.clone()
        };
        let queued = AlertEvent {
            detail: Some("Port 23 open".into()),
            ..to_hook(AlertEventKind::NotificationQueued)
        };
        let authorized = AlertEvent {
            actor: Some("alice@acme.test".into()),
            detail: Some("policy_changed".into()),
            ..event(AlertEventKind::Resolved)
        };
        let closed = AlertEvent {
            detail: Some("cleared".into()),
            ..event(AlertEventKind::Resolved)
        };
        for (e, want) in [
            (event(AlertEventKind::Raised), ("Raised", "", "")),
            (
                authorized,
                (
                    "Resolved",
                    "alice@acme.test",
                    "The policy changed: it no longer makes this an alert.",
                ),
            ),
            (closed, ("Resolved", "", "The condition is over.")),
            // Resolved before Vigil recorded why: no reason claimed.
            (event(AlertEventKind::Resolved), ("Resolved", "", "")),
            (acked, ("Acknowledged", "owner@acme.test", "on it")),
            (
                queued,
                ("Notification queued", "Ops hook (webhook)", "Port 23 open"),
            ),
            (
                to_hook(AlertEventKind::NotificationDelivered),
                ("Notification delivered", "Ops hook (webhook)", "attempt 2"),
            ),
            (
                failed,
                (
                    "Notification failed",
                    "Ops hook (webhook)",
                    "attempt 2: HTTP 503; retried at 1970-01-01 00:01 UTC",
                ),
            ),
            (
                gave_up,
                (
                    "Notification failed",
                    "Ops hook (webhook)",
                    "attempt 2: HTTP 503; given up",
                ),
            ),
        ] {
            let (what, who, details) = event_line(&e);
            assert_eq!((what, who.as_str(), details.as_str()), want);
        }
        assert_eq!(
            event_line(&event(AlertEventKind::NotificationDelivered)).1,
            "—"
        );
    }

    #[test]
    fn notes_and_errors_are_escaped() {
        let e = AlertEvent {
            actor: Some("a@b.example".into()),
            detail: Some("first line\n<img src=x onerror=alert(1)>".into()),
            ..event(AlertEventKind::Acknowledged)
        };
        let html = history_list(&[e]).into_string();
        assert!(html.contains("first line<br>&lt;img src=x"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(r#"<time datetime="1970-01-01T00:00:00+00:00">"#),
            "{html}"
        );
    }
}
