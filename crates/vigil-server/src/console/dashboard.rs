//! The dashboard: agents by health, open alerts and recent scans at a
//! glance; it reloads itself every 30 seconds.

use super::error::ConsoleError;
use super::layout::{self, Page};
use super::session::Session;
use crate::alert::{target_label, title};
use crate::app::App;
use axum::extract::State;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_core::AgentHealth;
use vigil_store::{now_unix, AgentId, AlertFilter, AlertStatus};

const REFRESH_SECS: u32 = 30;
const RECENT: u32 = 10;

pub(crate) async fn page(
    State(app): State<Arc<App>>,
    session: Session,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let now = now_unix();
    // Counting needs every agent's last contact; the rows are small, and
    // only the counts are rendered.
    let agents = app.store.agents(account).await?;
    let (mut online, mut silent, mut abandoned) = (0usize, 0usize, 0usize);
    for a in &agents {
        match app.health_of(a, now) {
            AgentHealth::Communicating => online += 1,
            AgentHealth::NotCommunicating => silent += 1,
            AgentHealth::Abandoned => abandoned += 1,
        }
    }
    let by_id: HashMap<AgentId, &vigil_store::Agent> = agents.iter().map(|a| (a.id, a)).collect();
    let open = app
        .store
        .alerts(
            account,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                agent: None,
            },
        )
        .await?;
    let scans = app.store.recent_results(account, RECENT).await?;
    let name_of = |id: &AgentId| {
        by_id
            .get(id)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| "(removed agent)".into())
    };
    let body = html! {
        h1 { "Dashboard" }
        section aria-labelledby="agents-h" {
            h2 #agents-h { "Agents (" (agents.len()) ")" }
            div.cards {
                div.card.good { span.n { (online) } "online" }
                div.card.warn { span.n { (silent) } "not communicating" }
                div.card.bad { span.n { (abandoned) } "abandoned" }
                div.card.(if open.is_empty() { "good" } else { "bad" }) {
                    span.n { (open.len()) } a href="/alerts" { "open alerts" }
                }
            }
        }
        section aria-labelledby="alerts-h" {
            h2 #alerts-h { "Open alerts" }
            @if open.is_empty() {
                p.muted { "No open alerts." }
            } @else {
                (layout::table_wrap("Table of open alerts", html! {
                    table {
                        thead { tr { th scope="col" { "Raised" } th scope="col" { "Alert" } } }
                        tbody {
                            @for a in open.iter().take(RECENT as usize) {
                                tr {
                                    td { (layout::time(a.raised_at)) }
                                    td.wrap {
                                        @match by_id.get(&a.agent_id) {
                                            Some(agent) => (title(agent, &a.target, a.condition, true)),
                                            None => (a.condition.to_string()),
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
                @if open.len() > RECENT as usize {
                    p { a href="/alerts" { "All " (open.len()) " open alerts" } }
                }
            }
        }
        section aria-labelledby="scans-h" {
            h2 #scans-h { "Recent scans" }
            @if scans.is_empty() {
                p.muted { "No scan results yet." }
            } @else {
                (layout::table_wrap("Table of recent scans", html! {
                    table {
                        thead { tr {
                            th scope="col" { "Finished" } th scope="col" { "Agent" }
                            th scope="col" { "Target" } th scope="col" { "Open ports" }
                        } }
                        tbody {
                            @for r in &scans {
                                tr {
                                    td { (layout::time(r.finished_at)) }
                                    td { a href={ "/agents/" (r.agent_id) } { (name_of(&r.agent_id)) } }
                                    td { (target_label(&r.target)) @if let Some(addr) = &r.addr { " (" (addr) ")" } }
                                    td { (r.ports.iter().filter(|p| p.state == vigil_core::PortState::Open).count()) }
                                }
                            }
                        }
                    }
                }))
            }
        }
        p.hint { "This page refreshes every " (REFRESH_SECS) " seconds." }
    };
    Ok(layout::page(
        &session,
        Page {
            title: "Dashboard",
            nav: "/",
            refresh_secs: Some(REFRESH_SECS),
        },
        body,
    ))
}
