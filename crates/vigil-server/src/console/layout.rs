//! The page shell: landmarks (header/nav, main, footer), the account and
//! user, logout, the stylesheet and script, and small shared pieces.

use super::assets;
use super::session::Session;
use maud::{html, Markup, DOCTYPE};
use vigil_store::UnixTime;

/// The main navigation, as (path, label).
const NAV: [(&str, &str); 8] = [
    ("/", "Dashboard"),
    ("/agents", "Agents"),
    ("/alerts", "Alerts"),
    ("/compliance", "Compliance"),
    ("/contacts", "Contacts"),
    ("/maintenance", "Maintenance"),
    ("/updates", "Updates"),
    ("/enroll", "Enroll an agent"),
];

fn head(title: &str, extra: Markup) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Vigil" }
            link rel="stylesheet" href=(assets::css_path());
            (extra)
        }
    }
}

/// A page without navigation (login, errors).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, html! {}))
            body.bare {
                main #main { (body) }
            }
        }
    }
}

/// Options of a full page.
#[derive(Default)]
pub(crate) struct Page<'a> {
    pub title: &'a str,
    /// Which navigation entry is current.
    pub nav: &'a str,
    /// Reload every this many seconds (script, or a meta refresh without it).
    pub refresh_secs: Option<u32>,
}

/// A page of a logged-in session.
pub(crate) fn page(session: &Session, p: Page<'_>, body: Markup) -> Markup {
    let refresh = html! {
        @if let Some(s) = p.refresh_secs {
            noscript { meta http-equiv="refresh" content=(s); }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(p.title, refresh))
            body data-refresh=[p.refresh_secs] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Vigil" }
                    nav aria-label="Main" {
                        ul {
                            @for (path, label) in NAV {
                                li {
                                    a href=(path) aria-current=[(path == p.nav).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    div.who {
                        // A user belongs to exactly one account (emails are
                        // unique server-wide), so there is no tenant switcher.
                        span.account title="Account" { (session.account.name) " (" (session.account.kind.as_str()) ")" }
                        span.user { (session.user.email) " · " (session.user.role.to_string()) }
                        @if session.user.role != vigil_store::Role::Viewer { a href="/audit" { "Audit log" } }
                        a href=(super::two_factor::PATH) { "Two-factor login" }
                        form.inline method="post" action="/logout" {
                            (session.csrf_field())
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main #main { (body) }
                footer { "Vigil " (env!("CARGO_PKG_VERSION")) }
                script src=(assets::js_path()) defer {}
            }
        }
    }
}

/// A unix time as `2026-11-23 15:57 UTC`.
pub(crate) fn time(t: UnixTime) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// An optional time, or a dash.
pub(crate) fn maybe_time(t: Option<UnixTime>) -> String {
    t.map(time).unwrap_or_else(|| "—".into())
}

/// A table that scrolls inside its own box on narrow screens.
/// "← Previous · Page n of m · Next →" under a paged list; nothing for one
/// page. `link` gives the URL of a page (1-based).
pub(crate) fn pager(page: u64, pages: u64, link: impl Fn(u64) -> String) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 2 { a href=(link(1)) { "« First" } }
                @if page > 1 { a href=(link(page - 1)) rel="prev" { "← Previous" } }
                span aria-current="page" { "Page " (page) " of " (pages) }
                @if page < pages { a href=(link(page + 1)) rel="next" { "Next →" } }
                @if page + 1 < pages { a href=(link(pages)) { "Last »" } }
            }
        }
    }
}

pub(crate) fn table_wrap(label: &str, table: Markup) -> Markup {
    html! {
        div.table-wrap role="region" aria-label=(label) tabindex="0" { (table) }
    }
}

/// A success message after a redirect (`?done=…`).
pub(crate) fn flash(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.flash.ok role="status" { (m) }
        }
    }
}

/// An error message shown above a form that was refused.
pub(crate) fn error(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            p.flash.error role="alert" { (m) }
        }
    }
}

/// A badge for an agent's health or a scan state.
pub(crate) fn badge(text: &str) -> Markup {
    let class = match text {
        "communicating" | "active" | "open port ok" | "resolved" | "done" | "managed here"
        | "authorized" | "present" => "badge good",
        "not communicating" | "suspended" | "open" | "running" | "managed elsewhere"
        | "unreachable" | "new" | "gone" | "in maintenance" => "badge warn",
        "abandoned" | "disabled" | "failed" | "interrupted" | "no agent" | "unresolved AD"
        | "unauthorized" => "badge bad",
        _ => "badge",
    };
    html! { span class=(class) { (text) } }
}
