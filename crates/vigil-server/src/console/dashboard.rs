//! The dashboard: agents by health, open alerts and recent scans at a
//! glance; it reloads itself every 30 seconds.

use super::agents::health_key;
use super::error::ConsoleError;
use super::layout::{self, Page};
use super::session::Session;
use crate::alert::{target_label, title};
use crate::app::{agents_by_health, App};
use axum::extract::State;
use maud::{html, Markup};
use std::collections::HashMap;
use std::sync::Arc;
use vigil_core::AgentHealth;
use vigil_store::{now_unix, AckFilter, AgentId, AlertFilter, AlertStatus};

const REFRESH_SECS: u32 = 30;
const RECENT: u32 = 10;

pub(crate) async fn page(
    State(app): State<Arc<App>>,
    session: Session,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    // Counted in the database: thousands of agents are not loaded for this.
    let by_health =
        agents_by_health(&app.store, Some(account), &app.cfg.liveness, now_unix()).await?;
    let total: u64 = by_health.iter().map(|(_, n)| n).sum();
    // The newest open alerts and how many there are, paged in the database.
    let (open, open_total) = app
        .store
        .alerts_page(
            account,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                agent: None,
            },
            AckFilter::Any,
            0,
            RECENT,
        )
        .await?;
    let scans = app.store.recent_results(account, RECENT).await?;
    // The agents named on this page only (removed ones included).
    let mut by_id: HashMap<AgentId, vigil_store::Agent> = HashMap::new();
    let shown = open.iter().map(|a| a.agent_id);
    for id in shown.chain(scans.iter().map(|r| r.agent_id)) {
        if let std::collections::hash_map::Entry::Vacant(slot) = by_id.entry(id) {
            match app.store.agent(account, id).await {
                Ok(agent) => {
                    slot.insert(agent);
                }
                Err(vigil_store::StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let name_of = |id: &AgentId| {
        by_id
            .get(id)
            .map(|a| a.name.clone())
            .unwrap_or_else(|| "(removed agent)".into())
    };
    let trend = crate::trends::trend(
        &app,
        account,
        None,
        vigil_core::trend::TrendWindow::Month,
        now_unix(),
    )
    .await?;
    let body = html! {
        h1 { "Dashboard" }
        section aria-labelledby="agents-h" {
            h2 #agents-h { "Agents (" (total) ")" }
            div.cards {
                @for (health, n) in &by_health {
                    a.card.(card_class(*health)) href={ "/agents?health=" (health_key(*health)) } {
                        span.n { (n) } (card_label(*health))
                    }
                }
                a.card.(if open.is_empty() { "good" } else { "bad" }) href="/alerts?status=open" {
                    span.n { (open_total) } "open alerts"
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
                            @for a in &open {
                                tr {
                                    td { (layout::time(a.raised_at)) }
                                    td.wrap {
                                        @match by_id.get(&a.agent_id) {
                                            Some(agent) => (title(agent, &a.target, a.condition, crate::alert::Stage::Open)),
                                            None => (a.condition.to_string()),
                                        }
                                    }
                                }
                            }
                        }
                    }
                }))
                @if open_total > u64::from(RECENT) {
                    p { a href="/alerts?status=open" { "All " (open_total) " open alerts" } }
                }
            }
        }
        section aria-labelledby="trend-h" {
            h2 #trend-h { "Exposure, last 30 days" }
            (super::trend_chart::exposure("All agents", &trend))
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

fn card_label(h: AgentHealth) -> &'static str {
    match h {
        AgentHealth::Communicating => "online",
        AgentHealth::NotCommunicating => "not communicating",
        AgentHealth::Abandoned => "abandoned",
    }
}

fn card_class(h: AgentHealth) -> &'static str {
    match h {
        AgentHealth::Communicating => "good",
        AgentHealth::NotCommunicating => "warn",
        AgentHealth::Abandoned => "bad",
    }
}
