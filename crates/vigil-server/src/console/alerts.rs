//! Alerts: open, resolved or all, newest first, in pages of 50.
//! (Acknowledging needs a store/API operation that does not exist yet.)

use super::error::ConsoleError;
use super::form::Form;
use super::layout::{self, Page};
use super::session::Session;
use crate::alert::title;
use crate::app::App;
use axum::extract::{RawQuery, State};
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_store::{AgentId, AlertFilter, AlertStatus};

const PAGE_SIZE: usize = 50;
const FILTERS: [(&str, &str); 3] = [("open", "Open"), ("resolved", "Resolved"), ("all", "All")];

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::parse(query.unwrap_or_default().as_bytes())?;
    let (filter_key, status) = match query.get("status").unwrap_or("open") {
        "resolved" => ("resolved", Some(AlertStatus::Resolved)),
        "all" => ("all", None),
        _ => ("open", Some(AlertStatus::Open)),
    };
    let page = super::page_number(query.get("page"));
    let account = session.account.id;
    let mut alerts = app
        .store
        .alerts(
            account,
            &AlertFilter {
                status,
                agent: None,
            },
        )
        .await?;
    alerts.sort_by_key(|a| std::cmp::Reverse(a.raised_at));
    let total = alerts.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1) as u64;
    let page = page.min(pages);
    let start = usize::try_from(page - 1).unwrap_or(0) * PAGE_SIZE;
    let shown = &alerts[start.min(total)..(start + PAGE_SIZE).min(total)];
    // The agents of this page only (removed ones included: their alerts stay).
    let mut agents: HashMap<AgentId, vigil_store::Agent> = HashMap::new();
    for a in shown {
        if let std::collections::hash_map::Entry::Vacant(slot) = agents.entry(a.agent_id) {
            slot.insert(app.store.agent(account, a.agent_id).await?);
        }
    }
    let link = |p: u64| format!("/alerts?status={filter_key}&page={p}");
    let body = html! {
        h1 { "Alerts" }
        nav aria-label="Alert status" {
            ul.pager {
                @for (key, label) in FILTERS {
                    li { a href={ "/alerts?status=" (key) } aria-current=[(key == filter_key).then_some("page")] { (label) } }
                }
            }
        }
        p { (total) " alert" (if total == 1 { "" } else { "s" }) "." }
        @if !shown.is_empty() {
            (layout::table_wrap("Alerts", html! {
                table {
                    thead { tr {
                        th scope="col" { "Status" } th scope="col" { "Alert" } th scope="col" { "Agent" }
                        th scope="col" { "Raised" } th scope="col" { "Resolved" }
                    } }
                    tbody {
                        @for a in shown {
                            @let agent = agents.get(&a.agent_id);
                            tr {
                                td { (layout::badge(&a.status.to_string())) @if a.flapping { " " span.badge.warn { "flapping" } } }
                                td.wrap {
                                    @match agent {
                                        Some(agent) => (title(agent, &a.target, a.condition, a.status == AlertStatus::Open)),
                                        None => (a.condition.to_string()),
                                    }
                                }
                                td { @if let Some(agent) = agent { a href={ "/agents/" (agent.id) } { (agent.name) } } }
                                td { (layout::time(a.raised_at)) }
                                td { (layout::maybe_time(a.resolved_at)) }
                            }
                        }
                    }
                }
            }))
        }
        (layout::pager(page, pages, link))
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
