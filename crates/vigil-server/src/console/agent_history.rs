//! An agent's "History and reachability" page (`/agents/{id}/history`),
//! a tab next to its overview: the reachability timeline of the last
//! 24 h, 7 d or 30 d (`?window=`), drawn as inline SVG with a text list of
//! the outages beside it, and the history of changes in pages, newest
//! first (`?page=`).
//!
//! Each timeline row is one SVG (`role="img"`, its summary as the label,
//! a `<title>` tooltip per outage) stretched to the width of the page
//! (`viewBox` and `width="100%"`), so it fits a phone without scrolling.
//! States differ by shape as well as colour: up is a thin green band,
//! down a full-height red block, unknown a grey line.

use super::error::ConsoleError;
use super::form::Form;
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use crate::history::{timeline_rows, Row};
use axum::extract::{Path, RawQuery, State};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::timeline::{duration_text, percent_text, Segment, State as SegmentState, Window};
use vigil_store::{now_unix, Agent, AgentEvent, AgentId, UnixTime};

/// History entries per page.
const PAGE_SIZE: u32 = 25;
/// At most this many outages in the text list.
const MAX_LISTED_OUTAGES: usize = 100;
/// The SVG's user units: the window is 1000 wide, a row 20 high.
const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 20.0;
/// The narrowest drawn outage (user units), so a short one stays visible.
const MIN_DOWN_WIDTH: f64 = 3.0;

/// Which tab of an agent's pages is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Overview,
    History,
    Devices,
}

/// The tabs above an agent's pages.
pub(crate) fn tabs(agent: AgentId, current: Tab) -> Markup {
    let tab = |t: Tab, href: String, label: &str| {
        html! {
            a href=(href) aria-current=[(t == current).then_some("page")] {
                @if t == current { strong { (label) } } @else { (label) }
            }
        }
    };
    html! {
        nav.pager aria-label="Agent pages" {
            (tab(Tab::Overview, format!("/agents/{agent}"), "Overview"))
            (tab(Tab::History, format!("/agents/{agent}/history"), "History and reachability"))
            (tab(Tab::Devices, format!("/agents/{agent}/devices"), "Devices"))
        }
    }
}

/// `GET /agents/{id}/history?window=24h|7d|30d&page=n`.
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
    // A bookmarked or mistyped window is the default one, not an error page.
    let window = query
        .get("window")
        .and_then(Window::parse)
        .unwrap_or_default();
    let page = super::page_number(query.get("page"));
    let now = now_unix();
    let (rows, hidden) = timeline_rows(&app, &agent, window, now).await?;
    let offset = (page - 1) * u64::from(PAGE_SIZE);
    let (events, total) = app
        .store
        .agent_events(account, id, offset, PAGE_SIZE)
        .await?;
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let body = html! {
        p { a href="/agents" { "← Agents" } }
        h1 { "Agent " (agent.name) }
        (tabs(id, Tab::History))
        section.section aria-labelledby="reach-h" {
            h2 #reach-h { "Reachability" }
            (window_switcher(id, window))
            (timeline(&rows, window, now))
            @if hidden > 0 {
                p.hint { (hidden) " more rows (targets and monitored ports) are not shown." }
            }
            (outage_list(&rows, window))
        }
        section.section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            (history_list(&agent, &events, total))
            (layout::pager(page, pages, |p| {
                format!("/agents/{id}/history?window={window}&page={p}")
            }))
        }
    };
    Ok(layout::page(
        &session,
        Page {
            title: &format!("History of agent {}", agent.name),
            nav: "/agents",
            refresh_secs: None,
        },
        body,
    ))
}

fn window_switcher(agent: AgentId, current: Window) -> Markup {
    html! {
        nav.pager aria-label="Time window" {
            span { "Show the last" }
            @for w in Window::ALL {
                a href={ "/agents/" (agent) "/history?window=" (w) }
                    aria-current=[(w == current).then_some("page")] {
                    @if w == current { strong { (w.label()) } } @else { (w.label()) }
                }
            }
        }
    }
}

/// Every row: its label and share up, then its bar; the window's ends below.
fn timeline(rows: &[Row], window: Window, now: UnixTime) -> Markup {
    let from = now - window.secs();
    html! {
        @for row in rows {
            div.timeline-row {
                p.hint {
                    strong { (row.label) }
                    " · "
                    @match row.timeline.up_fraction() {
                        Some(f) => { (percent_text(f)) " % up" }
                        None => { "nothing known yet" }
                    }
                }
                (bar(row, window))
            }
        }
        p.hint { (time_secs(from)) " – now (" (time_secs(now)) ")" }
    }
}

/// One row as an SVG bar.
fn bar(row: &Row, window: Window) -> Markup {
    let t = &row.timeline;
    let summary = row.summary(window);
    let up = t.up_fraction().map(percent_text);
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(summary)
            data-kind=(row.kind.as_str()) data-up-percent=[up]
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } preserveAspectRatio="none"
            width="100%" height=(HEIGHT) {
            @for s in &t.segments {
                @let (x, w) = span_of(t.position(s.start), t.position(s.end), s.state);
                @match s.state {
                    SegmentState::Up => {
                        rect data-state="up" x=(x) y="6" width=(w) height="8" fill="#1e7b34" {}
                    }
                    SegmentState::Unknown => {
                        rect data-state="unknown" x=(x) y="9" width=(w) height="2" fill="#8a949e" {}
                    }
                    SegmentState::Down => {
                        rect.down data-state="down" x=(x) y="0" width=(w) height=(HEIGHT) fill="#b3261e" {
                            title { (row.label) " down " (outage_text(s)) }
                        }
                    }
                }
            }
        }
    }
}

/// x and width in user units of a segment from `start` to `end` (0 to 1);
/// down segments are widened to stay visible, within the bar.
fn span_of(start: f64, end: f64, state: SegmentState) -> (String, String) {
    let mut x = start * WIDTH;
    let mut w = (end - start) * WIDTH;
    if state == SegmentState::Down && w < MIN_DOWN_WIDTH {
        w = MIN_DOWN_WIDTH;
        x = x.min(WIDTH - MIN_DOWN_WIDTH);
    }
    (format!("{x:.2}"), format!("{w:.2}"))
}

/// A unix time to the second: `2026-11-23 15:57:08 UTC` (history entries
/// and outages are often seconds apart).
fn time_secs(t: UnixTime) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The machine-readable form for `<time datetime>`.
fn time_iso(t: UnixTime) -> Option<String> {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339())
}

/// "from 2026-11-23 10:00:00 UTC to 10:05:00 UTC (5 min)" (the date once
/// when both are on the same day), "since … (ongoing, 5 min so far)".
fn outage_text(s: &Segment) -> String {
    let start = time_secs(s.start);
    let length = duration_text(s.secs());
    if s.open {
        return format!("since {start} (ongoing, {length} so far)");
    }
    let end = time_secs(s.end);
    let end = match (start.split_once(' '), end.split_once(' ')) {
        (Some((day, _)), Some((end_day, rest))) if day == end_day => rest.to_string(),
        _ => end,
    };
    format!("from {start} to {end} ({length})")
}

/// The outages of every row as text, newest first: what the bars show.
fn outage_list(rows: &[Row], window: Window) -> Markup {
    let mut outages: Vec<(&Row, &Segment)> = rows
        .iter()
        .flat_map(|r| r.timeline.outages().map(move |s| (r, s)))
        .collect();
    outages.sort_by_key(|(_, s)| std::cmp::Reverse(s.start));
    let more = outages.len().saturating_sub(MAX_LISTED_OUTAGES);
    html! {
        h3 #outages-h { "Outages in the last " (window.label()) }
        @if outages.is_empty() {
            p { "None: everything known was up." }
        } @else {
            ul aria-labelledby="outages-h" {
                @for (row, s) in outages.iter().take(MAX_LISTED_OUTAGES) {
                    li { strong { (row.label) } " down " (outage_text(s)) }
                }
            }
            @if more > 0 { p.hint { "… and " (more) " older ones." } }
        }
    }
}

/// The history as a list (a table would not fit a phone): what happened
/// and the detail, then when and by whom.
fn history_list(agent: &Agent, events: &[AgentEvent], total: u64) -> Markup {
    html! {
        p { (total) " entr" (if total == 1 { "y" } else { "ies" }) ", newest first." }
        @if !events.is_empty() {
            ul.history aria-label={ "History of agent " (agent.name) } {
                @for e in events {
                    li data-kind=(e.kind.as_str()) {
                        div {
                            strong.event { (e.kind.label()) }
                            @if !e.detail.is_empty() { ": " span.detail { (e.detail) } }
                        }
                        div.hint {
                            time datetime=[time_iso(e.at)] { (time_secs(e.at)) }
                            " · by " span.actor { (e.actor) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::RowKind;
    use vigil_core::history::AgentEventKind;
    use vigil_core::timeline::{Outage, Timeline};

    fn row(outages: &[Outage]) -> Row {
        Row {
            kind: RowKind::Agent,
            label: "Agent".into(),
            target: None,
            port: None,
            timeline: Timeline::new(0, 86_400, 0, outages),
        }
    }

    #[test]
    fn a_bar_has_its_summary_and_a_tooltip_per_outage() {
        let r = row(&[
            Outage {
                start: 3600,
                end: Some(3660),
            },
            Outage {
                start: 80_000,
                end: None,
            },
        ]);
        let svg = bar(&r, Window::Day).into_string();
        assert!(
            svg.contains(r#"aria-label="Agent reachable 92.5 % of the last 24 h""#),
            "{svg}"
        );
        assert!(svg.contains(r#"role="img""#), "{svg}");
        assert!(svg.contains(r#"viewBox="0 0 1000 20""#), "{svg}");
        assert!(svg.contains(r#"width="100%""#), "{svg}");
        assert_eq!(svg.matches(r#"data-state="down""#).count(), 2, "{svg}");
        assert!(
            svg.contains(
                "<title>Agent down from 1970-01-01 01:00:00 UTC to 01:01:00 UTC (1 min)</title>"
            ),
            "{svg}"
        );
        assert!(svg.contains("(ongoing, 1 h 46 min so far)"), "{svg}");
        // The one-minute outage is widened to stay visible.
        assert!(svg.contains(r#"x="41.67" y="0" width="3.00""#), "{svg}");
    }

    #[test]
    fn outages_in_words() {
        let seg = |start, end, open| Segment {
            start,
            end,
            state: SegmentState::Down,
            open,
        };
        let cases = [
            (
                seg(3600, 3608, false),
                "from 1970-01-01 01:00:00 UTC to 01:00:08 UTC (8 s)",
            ),
            (
                seg(86_000, 90_000, false),
                "from 1970-01-01 23:53:20 UTC to 1970-01-02 01:00:00 UTC (1 h 6 min)",
            ),
            (
                seg(60, 200, true),
                "since 1970-01-01 00:01:00 UTC (ongoing, 2 min so far)",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(outage_text(&s), want);
        }
    }

    #[test]
    fn widened_outages_stay_inside_the_bar() {
        assert_eq!(
            span_of(0.9999, 1.0, SegmentState::Down),
            ("997.00".to_string(), "3.00".to_string())
        );
        assert_eq!(
            span_of(0.5, 0.75, SegmentState::Up),
            ("500.00".to_string(), "250.00".to_string())
        );
        assert_eq!(
            span_of(0.5, 0.5001, SegmentState::Unknown),
            ("500.00".to_string(), "0.10".to_string())
        );
    }

    #[test]
    fn outages_are_listed_newest_first_or_none() {
        let html = outage_list(&[row(&[])], Window::Week).into_string();
        assert!(html.contains("Outages in the last 7 d"), "{html}");
        assert!(html.contains("None: everything known was up."), "{html}");
        let r = row(&[
            Outage {
                start: 100,
                end: Some(200),
            },
            Outage {
                start: 5000,
                end: None,
            },
        ]);
        let html = outage_list(&[r], Window::Day).into_string();
        let ongoing = html.find("ongoing").expect("ongoing outage");
        let old = html.find("(1 min)").expect("ended outage");
        assert!(ongoing < old, "{html}");
    }

    #[test]
    fn history_text_is_escaped() {
        let agent = crate::testing::agent("<b>x</b>", 0);
        let events = [AgentEvent {
            agent_id: agent.id,
            at: 0,
            kind: AgentEventKind::PolicyChanged,
            actor: "<script>".into(),
            detail: "targets added \"<img src=x>\"".into(),
        }];
        let html = history_list(&agent, &events, 1).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("Policy changed"), "{html}");
        assert!(html.contains("1 entry, newest first."), "{html}");
    }
}
