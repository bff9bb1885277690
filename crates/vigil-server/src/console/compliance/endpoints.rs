//! The endpoint list (`/compliance/endpoints`): the API's search done on
//! the server, in pages of 50 (one page is read from the store, however
//! many endpoints match), and the same search as a CSV download.

use super::super::error::ConsoleError;
use super::super::form::Form;
use super::super::layout::{self, Page};
use super::super::session::Session;
use super::{status_label, subnav};
use crate::app::App;
use crate::compliance::export::endpoints_csv;
use crate::compliance::query::{search, EndpointQuery};
use crate::http::error::ApiError;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::compliance::{Endpoint, EndpointStatus};

const PAGE_SIZE: u64 = 50;

/// The search form's values, as typed (dates as `YYYY-MM-DD`, UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    pub name: String,
    pub status: String,
    pub ip: String,
    pub os: String,
    pub container: String,
    pub after: String,
    pub before: String,
}

impl Filters {
    pub(crate) fn from_form(f: &Form) -> Filters {
        let text = |name: &str| f.get(name).unwrap_or_default().trim().to_string();
        Filters {
            name: text("name"),
            status: text("status"),
            ip: text("ip"),
            os: text("os"),
            container: text("container"),
            after: text("after"),
            before: text("before"),
        }
    }

    /// The API's query; a date that does not read is named.
    pub(crate) fn query(&self, offset: u64, limit: u64) -> Result<EndpointQuery, String> {
        let some = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Ok(EndpointQuery {
            assessment: None,
            name: some(&self.name),
            status: some(&self.status),
            ip: some(&self.ip),
            os: some(&self.os),
            container: some(&self.container),
            seen_after: date("last seen after", &self.after)?,
            seen_before: date("last seen before", &self.before)?,
            offset: Some(offset),
            limit: Some(limit),
        })
    }

    /// The filters as a query string (for page links and the export).
    pub(crate) fn to_query_string(&self) -> String {
        let pairs = [
            ("name", &self.name),
            ("status", &self.status),
            ("ip", &self.ip),
            ("os", &self.os),
            ("container", &self.container),
            ("after", &self.after),
            ("before", &self.before),
        ];
        let set: Vec<(&str, &String)> = pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        serde_urlencoded::to_string(set).unwrap_or_default()
    }
}

/// `YYYY-MM-DD` as unix seconds at 00:00 UTC; empty is no bound.
fn date(what: &str, text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc().timestamp()))
        .ok_or_else(|| format!("{what}: {text:?} is not a date (YYYY-MM-DD)"))
}

/// What a writer can do about an endpoint: move its agent here, or
/// install one.
fn actions(e: &Endpoint, session: &Session) -> Markup {
    html! {
        @match (e.status, &e.agent_id) {
            (EndpointStatus::ManagedElsewhere, Some(id)) => {
                form.inline method="post" action="/compliance/move" {
                    (session.csrf_field())
                    input type="hidden" name="agent_id" value=(id);
                    button type="submit" aria-label={ "Move agent of " (e.name) " here" } { "Move agent here" }
                }
            }
            (EndpointStatus::NoAgent, _) if !e.addrs.is_empty() => {
                a href={ "/compliance/install?" (install_query(e)) } aria-label={ "Install agent on " (e.name) } { "Install agent" }
            }
            _ => {}
        }
    }
}

/// The install page's query: the addresses, and the platform the OS
/// points to (left out when unknown: the page offers both commands).
fn install_query(e: &Endpoint) -> String {
    let mut pairs: Vec<(&str, String)> = e.addrs.iter().map(|a| ("addr", a.to_string())).collect();
    let platform = super::actions::platform_of_os(e.os.as_deref());
    if !platform.is_empty() {
        pairs.push(("platform", platform.to_string()));
    }
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

fn table(endpoints: &[Endpoint], session: &Session) -> Markup {
    let write = session.can_write();
    layout::table_wrap(
        "Endpoints",
        html! {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Name from" }
                    th scope="col" { "Addresses" } th scope="col" { "Status" }
                    th scope="col" { "OS" } th scope="col" { "Container" } th scope="col" { "Agent / server" }
                    th scope="col" { "Last seen" } th scope="col" { "Disabled" }
                    @if write { th scope="col" { "Action" } }
                } }
                tbody {
                    @for e in endpoints {
                        tr {
                            td { (e.name) @if let Some(d) = &e.dns_name { br; span.hint { (d) } } }
                            td { (e.name_source.map(|s| s.label()).unwrap_or("address")) }
                            td.wrap { (e.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ")) }
                            td { (layout::badge(status_label(e.status))) }
                            td { (e.os.as_deref().unwrap_or("—")) }
                            td.wrap { (e.container.as_ref().map(|c| c.to_string()).unwrap_or_else(|| "—".into())) }
                            td.wrap {
                                @match (&e.agent_id, e.status) {
                                    (Some(id), EndpointStatus::ManagedHere) => { a href={ "/agents/" (id) } { code { (id) } } }
                                    (Some(id), _) => { code { (id) } }
                                    (None, _) => { "—" }
                                }
                                @if let (Some(s), EndpointStatus::ManagedElsewhere) = (&e.server_id, e.status) {
                                    br; span.hint { "server " (s) " (unverified)" }
                                }
                                @if let Some(check) = e.identify.filter(|_| !e.identify_trusted()) {
                                    br; strong.identify-flag data-identify=(check.as_str()) { (check.label()) }
                                }
                            }
                            td { (layout::maybe_time(e.last_seen)) }
                            td { (if e.disabled { "yes" } else { "no" }) }
                            @if write { td { (actions(e, session)) } }
                        }
                    }
                }
            }
        },
    )
}

fn search_form(f: &Filters) -> Markup {
    html! {
        form.filters method="get" action="/compliance/endpoints" role="search" aria-label="Search endpoints" {
            div { label for="name" { "Name" } input #name type="search" name="name" value=(f.name) placeholder="pc-*"; }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" selected[f.status.is_empty()] { "Any but no host at address" }
                    @for s in EndpointStatus::ALL {
                        option value=(s.as_str()) selected[f.status == s.as_str()] { (status_label(s)) }
                    }
                }
            }
            div { label for="ip" { "IP range" } input #ip type="text" name="ip" value=(f.ip) placeholder="10.0.0.0/24"; }
            div { label for="os" { "OS" } input #os type="text" name="os" value=(f.os) placeholder="Windows*"; }
            div { label for="container" { "AD container" } input #container type="text" name="container" value=(f.container) placeholder="OU=PCs,DC=example,DC=test"; }
            div { label for="after" { "Last seen after" } input #after type="date" name="after" value=(f.after); }
            div { label for="before" { "Last seen before" } input #before type="date" name="before" value=(f.before); }
            button type="submit" { "Search" }
        }
        p.hint { "Names match exactly (any case) or with * wildcards. Addresses where no machine seems to be (silent now and before, no name, not in AD) are left out unless you pick \"no host at address\"." }
    }
}

pub(crate) async fn list(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let form = Form::query(query)?;
    let filters = Filters::from_form(&form);
    let page = super::super::page_number(form.get("page"));
    let offset = (page - 1) * PAGE_SIZE;
    let result = match filters.query(offset, PAGE_SIZE) {
        Ok(q) => search(&app, session.account.id, &q, PAGE_SIZE, PAGE_SIZE).await,
        Err(m) => Err(ApiError::Invalid(m)),
    };
    let (status, found, message) = match result {
        Ok((_, endpoints, total, _)) => (StatusCode::OK, Some((endpoints, total)), None),
        Err(ApiError::Invalid(m)) => (StatusCode::UNPROCESSABLE_ENTITY, None, Some(m)),
        Err(ApiError::Conflict(_)) => (
            StatusCode::OK,
            None,
            Some("No assessment has run yet: run one from the overview.".to_string()),
        ),
        Err(e) => return Err(e.into()),
    };
    let qs = filters.to_query_string();
    let link = |p: u64| {
        let sep = if qs.is_empty() { "" } else { "&" };
        format!("/compliance/endpoints?{qs}{sep}page={p}")
    };
    let body = html! {
        h1 { "Compliance endpoints" }
        (subnav())
        (search_form(&filters))
        (layout::error(message.as_deref()))
        @if let Some((endpoints, total)) = &found {
            @let pages = total.div_ceil(PAGE_SIZE).max(1);
            p aria-live="polite" #endpoint-count {
                (total) " endpoint" (if *total == 1 { "" } else { "s" }) "."
                " " a href={ "/compliance/endpoints.csv" @if !qs.is_empty() { "?" (qs) } } download { "Export CSV" }
            }
            @if !endpoints.is_empty() { (table(endpoints, &session)) }
            (layout::pager(page, pages, link))
        }
    };
    let page = layout::page(
        &session,
        Page {
            title: "Compliance endpoints",
            nav: "/compliance",
            refresh_secs: None,
        },
        body,
    );
    Ok((status, page).into_response())
}

/// `/compliance/endpoints.csv`: the list's search, every match, as CSV
/// streamed (the export of `GET /api/v1/compliance/endpoints.csv`).
pub(crate) async fn csv(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let form = Form::query(query)?;
    let mut q = Filters::from_form(&form)
        .query(0, 1)
        .map_err(ConsoleError::BadRequest)?;
    q.offset = None;
    q.limit = None;
    Ok(endpoints_csv(app, session.account.id, &q).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_round_trip_and_become_the_api_query() {
        let form = Form::parse(
            b"name=pc-*&status=no_agent&ip=198.51.100.0%2F24&os=&after=2026-01-02&before=&page=3",
        )
        .unwrap();
        let f = Filters::from_form(&form);
        assert_eq!(
            f.to_query_string(),
            "name=pc-*&status=no_agent&ip=198.51.100.0%2F24&after=2026-01-02"
        );
        assert_eq!(
            Filters::from_form(&Form::parse(f.to_query_string().as_bytes()).unwrap()),
            f
        );
        let q = f.query(100, 50).unwrap();
        assert_eq!(q.name.as_deref(), Some("pc-*"));
        assert_eq!(q.os, None);
        assert_eq!(q.seen_after, Some(1_767_312_000));
        assert_eq!(q.seen_before, None);
        assert_eq!((q.offset, q.limit), (Some(100), Some(50)));
        let bad = Filters {
            before: "yesterday".into(),
            ..Default::default()
        };
        assert!(bad
            .query(0, 1)
            .unwrap_err()
            .starts_with("last seen before:"));
    }
}
