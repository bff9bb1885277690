//! The account's audit log for owners and admins: the newest entries,
//! older ones page by page, and the whole log as JSON lines.

use super::error::ConsoleError;
use super::form::Form;
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{html, Markup};
use std::sync::Arc;
use vigil_store::Role;

/// Entries on one page.
const PAGE: u32 = 100;

fn may_read(session: &Session) -> Result<(), ConsoleError> {
    match session.user.role {
        Role::Owner | Role::Admin => Ok(()),
        Role::Viewer => Err(ConsoleError::Forbidden(
            "the audit log is for admins and owners of the account".into(),
        )),
    }
}

/// `GET /audit[?before=<id>]`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    may_read(&session)?;
    let query = Form::query(query)?;
    let before = query.get("before");
    let entries = app
        .store
        .audit_log(session.account.id, before, PAGE)
        .await?;
    let older = (entries.len() == PAGE as usize)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    let body = html! {
        h1 { "Audit log" }
        p.hint { "Every change the account's users made, and their logins, newest first. "
            a href="/audit.jsonl" download { "Download all (JSON lines)" } }
        (layout::table_wrap("Audit log", html! {
            table #audit {
                thead { tr {
                    th scope="col" { "When (UTC)" } th scope="col" { "Who" } th scope="col" { "From" }
                    th scope="col" { "What" } th scope="col" { "On" } th scope="col" { "Details" }
                } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (layout::time(e.at_ms.div_euclid(1000))) }
                            td { (e.actor) }
                            td { (e.source.as_deref().unwrap_or("")) }
                            td { code { (e.action) } }
                            td.wrap { (e.target.as_deref().unwrap_or("")) }
                            td.wrap { @if let Some(d) = &e.detail { code { (d.to_string()) } } }
                        }
                    }
                }
            }
        }))
        @if entries.is_empty() { p { "Nothing recorded yet." } }
        @if let Some(id) = older { p { a href={ "/audit?before=" (id) } { "Older entries" } } }
    };
    Ok(layout::page(
        &session,
        Page {
            title: "Audit log",
            nav: "/audit",
            ..Page::default()
        },
        body,
    ))
}

/// `GET /audit.jsonl`.
pub(crate) async fn export(
    State(app): State<Arc<App>>,
    session: Session,
) -> Result<Response, ConsoleError> {
    may_read(&session)?;
    Ok(crate::audit::jsonl(app, session.account.id))
}
