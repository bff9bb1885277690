//! One device's page (`/agents/{id}/devices/{device}`): what the sweeps
//! know of it (addresses, MAC, vendor, name and where the name came from,
//! first and last seen, present or gone), its open ports each judged under
//! its policy (`crate::devices::Reviewer::review`, the rule the alerts
//! use), its
//! policy as a form (`POST …/policy`, applied by `crate::devices::decide`
//! like the REST API's PATCH), and its history: what the sweeps saw change
//! and the alerts on it.

use super::agent_history::{tabs, Tab};
use super::devices::device_label;
use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use crate::devices::Reviewer;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::lan::{device_target, Device, Review, UnreviewedDevices};
use vigil_core::{PortList, SecurityPolicy};
use vigil_store::{Agent, AgentId, DeviceId, DevicePatch, StoreError, DEVICE_EVENTS_KEPT};

/// At most this many of the device's alerts are listed (the newest).
const MAX_ALERTS: u32 = 50;

/// The policy form as typed: shown again with the error when refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Draft {
    approved: bool,
    kind: String,
    /// Its own list (`true`) or its kind's ports.
    own: bool,
    authorized: String,
    monitored: bool,
}

impl Draft {
    fn of(d: &Device) -> Draft {
        Draft {
            approved: d.approved,
            kind: d.kind.clone().unwrap_or_default(),
            own: d.authorized.is_some(),
            authorized: d
                .authorized
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            monitored: d.monitored,
        }
    }

    fn from_form(form: &Form) -> Draft {
        Draft {
            approved: form.get("approved") == Some("on"),
            kind: form.get("kind").unwrap_or_default().trim().to_string(),
            own: form.get("authorized_from") == Some("own"),
            authorized: form
                .get("authorized")
                .unwrap_or_default()
                .trim()
                .to_string(),
            monitored: form.get("monitored") == Some("on"),
        }
    }

    /// The patch the form asks for, or what is wrong with it.
    fn to_patch(&self, form: &Form) -> Result<DevicePatch, String> {
        let authorized = match form.get("authorized_from") {
            Some("kind") => None,
            Some("own") if self.authorized.is_empty() => Some(PortList::default()),
            Some("own") => Some(
                PortList::parse(&self.authorized).map_err(|e| format!("Authorized ports: {e}"))?,
            ),
            _ => {
                return Err("Choose where its authorized ports come from: \
                            its kind's ports or its own list."
                    .into())
            }
        };
        Ok(DevicePatch {
            approved: Some(self.approved),
            kind: Some((!self.kind.is_empty()).then(|| self.kind.clone())),
            authorized: Some(authorized),
            monitored: Some(self.monitored),
        })
    }
}

/// `GET /agents/{id}/devices/{device}`.
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    session: Session,
    Path((id, device)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let id = super::path_id::<AgentId>(&id)?;
    let device = super::path_id::<DeviceId>(&device)?;
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("saved") => Some("Device policy saved."),
        Some("approved") => Some("Device approved: its open ports are authorized now."),
        _ => None,
    };
    render(&app, &session, id, device, None, None, done).await
}

/// `POST /agents/{id}/devices/{device}/policy`: the policy form.
pub(crate) async fn save(
    State(app): State<Arc<App>>,
    Path((id, device)): Path<(String, String)>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let id = super::path_id::<AgentId>(&id)?;
    let device = super::path_id::<DeviceId>(&device)?;
    let draft = Draft::from_form(&form);
    let refused = match draft.to_patch(&form) {
        Err(message) => message,
        Ok(patch) => {
            let account = session.account.id;
            match crate::devices::decide(&app, account, (&session).into(), id, device, &patch).await
            {
                Ok(_) => {
                    let to = format!("/agents/{id}/devices/{device}?done=saved");
                    return Ok(Redirect::to(&to).into_response());
                }
                Err(StoreError::Invalid(message)) => message,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let page = render(
        &app,
        &session,
        id,
        device,
        Some(draft),
        Some(&refused),
        None,
    )
    .await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn render(
    app: &App,
    session: &Session,
    id: AgentId,
    device: DeviceId,
    draft: Option<Draft>,
    error: Option<&str>,
    done: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let agent = app.store.agent(account, id).await?;
    let d = app.store.device(account, id, device).await?;
    let reviewer = Reviewer::load(app, account, id).await?;
    let review = reviewer.review(&d);
    let policy = reviewer.policy.as_ref();
    let history_limit = u32::try_from(DEVICE_EVENTS_KEPT).unwrap_or(100);
    let events = app
        .store
        .device_history(account, id, device, history_limit)
        .await?;
    let alerts = match device_target(&d) {
        Some(target) => {
            app.store
                .target_alerts(account, id, &target, MAX_ALERTS)
                .await?
        }
        None => Vec::new(),
    };
    let draft = draft.unwrap_or_else(|| Draft::of(&d));
    let label = device_label(&d);
    let body = html! {
        p { a href={ "/agents/" (id) "/devices" } { "← Devices of agent " (agent.name) } }
        h1 { "Device " (label) }
        (tabs(id, Tab::Devices))
        (layout::flash(done))
        section.section aria-labelledby="facts-h" {
            h2 #facts-h { "What the sweeps found" }
            (facts(&d, &review))
        }
        section.section aria-labelledby="ports-h" {
            h2 #ports-h { "Open ports" }
            (ports(&d, &review, policy))
        }
        section.section aria-labelledby="policy-h" {
            h2 #policy-h { "Device policy" }
            (policy_form(session, &agent, &d, &draft, policy, error))
        }
        section.section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            @if events.is_empty() {
                p.hint { "No changes recorded." }
            } @else {
                (layout::table_wrap("History of the device", html! {
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Event" } th scope="col" { "Detail" } } }
                        tbody {
                            @for e in &events {
                                tr {
                                    td { (layout::time(e.at)) }
                                    td { (e.kind.label()) }
                                    td { (e.summary()) }
                                }
                            }
                        }
                    }
                }))
                p.hint { "The newest " (DEVICE_EVENTS_KEPT) " changes are kept." }
            }
            h3 { "Alerts on this device" }
            @if alerts.is_empty() {
                p.hint { "No alerts." }
            } @else {
                (layout::table_wrap("Alerts on the device", html! {
                    table {
                        thead { tr { th scope="col" { "Raised" } th scope="col" { "Alert" } th scope="col" { "Status" } } }
                        tbody {
                            @for a in &alerts {
                                tr {
                                    td { (layout::time(a.raised_at)) }
                                    td { a href={ "/alerts/" (a.id) } { (crate::alert::alert_title(a, Some(&agent))) } }
                                    td {
                                        (layout::badge(&a.status.to_string()))
                                        @if let Some(t) = a.resolved_at { br; span.hint { "resolved " (layout::time(t)) } }
                                    }
                                }
                            }
                        }
                    }
                }))
            }
        }
    };
    Ok(layout::page(
        session,
        Page {
            title: &format!("Device {label} of agent {}", agent.name),
            nav: "/agents",
            refresh_secs: None,
        },
        body,
    ))
}

fn facts(d: &Device, review: &Review) -> Markup {
    let dash = || "–".to_string();
    html! {
        dl.facts {
            dt { "Addresses" }
            dd { (d.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
            dt { "MAC" }
            dd { code { (d.mac.map(|m| m.to_string()).unwrap_or_else(dash)) } }
            dt { "Vendor" }
            dd { (d.vendor.clone().unwrap_or_else(dash)) }
            dt { "Name" }
            dd {
                (d.name.clone().unwrap_or_else(dash))
                @if let Some(src) = d.name_source { " " span.hint { "(from " (src.label()) ")" } }
            }
            dt { "First seen" }
            dd { (layout::time(d.first_seen)) @if review.new { " " (layout::badge("new")) } }
            dt { "Last seen" }
            dd { (layout::time(d.last_seen)) }
            dt { "Now" }
            dd {
                @if d.present { (layout::badge("present")) " seen by the latest sweep" }
                @else { (layout::badge("gone")) " missed by the latest sweep" }
            }
        }
    }
}

/// Where the device's authorized ports come from, for people.
fn source(d: &Device, policy: Option<&SecurityPolicy>) -> String {
    let kinds = policy
        .map(|p| p.device_kinds.as_slice())
        .unwrap_or_default();
    let unreviewed = policy.map(|p| p.unreviewed_devices).unwrap_or_default();
    if let Some(own) = &d.authorized {
        return if own.is_empty() {
            "Its own list: no port.".into()
        } else {
            format!("Its own list: {own}.")
        };
    }
    let kind = d.kind.as_deref();
    if let Some(k) = kind.and_then(|k| kinds.iter().find(|x| x.name.eq_ignore_ascii_case(k))) {
        return format!("Its kind “{}”: {}.", k.name, k.authorized);
    }
    let unknown = kind
        .map(|k| format!("The kind “{k}” is not among the policy's device kinds. "))
        .unwrap_or_default();
    match (d.approved, unreviewed) {
        (true, _) => format!("{unknown}Approved without a list of its own: no port."),
        (false, UnreviewedDevices::OpenPortsAlert) => {
            format!(
                "{unknown}Not reviewed: every open port is unauthorized (the policy's default)."
            )
        }
        (false, UnreviewedDevices::ReportOnly) => {
            format!("{unknown}Not reviewed, and the policy only reports unreviewed devices: its ports are not judged.")
        }
    }
}

fn ports(d: &Device, review: &Review, policy: Option<&SecurityPolicy>) -> Markup {
    html! {
        p { (source(d, policy)) }
        @if policy.is_none() {
            p.hint { "The agent has no security-scan policy yet: judged by a new policy's defaults, and nothing alerts." }
        }
        @if d.open_ports.is_empty() {
            p { "No open ports." }
        } @else {
            @if !d.present { p.hint { "As the latest sweep that saw it found them." } }
            (layout::table_wrap("Open ports of the device", html! {
                table {
                    thead { tr { th scope="col" { "Port" } th scope="col" { "Under its policy" } } }
                    tbody {
                        @for p in &d.open_ports {
                            tr {
                                td { (p) "/tcp" }
                                td { @match review.allows(*p) {
                                    Some(true) => (layout::badge("authorized")),
                                    Some(false) => (layout::badge("unauthorized")),
                                    None => span.hint { "not judged (report only)" },
                                } }
                            }
                        }
                    }
                }
            }))
        }
    }
}

fn policy_form(
    session: &Session,
    agent: &Agent,
    d: &Device,
    draft: &Draft,
    policy: Option<&SecurityPolicy>,
    error: Option<&str>,
) -> Markup {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    if !session.can_write() {
        return html! {
            p.hint { "Viewers may only read; ask an admin or owner of the account to change it." }
            dl.facts {
                dt { "Approved" } dd { (yes_no(d.approved)) }
                dt { "Kind" } dd { (d.kind.clone().unwrap_or_else(|| "–".into())) }
                dt { "Authorized ports" } dd { @match &d.authorized {
                    None => "its kind's",
                    Some(a) if a.is_empty() => "none",
                    Some(a) => (a.to_string()),
                } }
                dt { "Monitored" } dd { (yes_no(d.monitored)) }
            }
        };
    }
    let kinds = policy
        .map(|p| p.device_kinds.as_slice())
        .unwrap_or_default();
    let action = format!("/agents/{}/devices/{}", agent.id, d.id);
    html! {
        (layout::error(error))
        @if !d.approved {
            form method="post" action={ (action) "/approve" } {
                (session.csrf_field())
                input type="hidden" name="from" value="device";
                button type="submit" { "Approve device" }
                " " span.hint { "Reviewed, and what it has open now becomes its own list (unless it has one, or a kind)." }
            }
        }
        form.stack method="post" action={ (action) "/policy" } {
            (session.csrf_field())
            label.check for="approved" {
                input #approved type="checkbox" name="approved" value="on" checked[draft.approved];
                "Approved (reviewed)"
            }
            label for="kind" { "Kind" }
            input #kind type="text" name="kind" value=(draft.kind) list="kinds"
                placeholder="printer" aria-describedby="kind-hint";
            datalist #kinds { @for k in kinds { option value=(k.name) {} } }
            p.hint #kind-hint { "What it is; the policy's device kinds authorize ports by kind. Empty: none." }
            fieldset {
                legend { "Authorized ports" }
                label.check for="from-kind" {
                    input #from-kind type="radio" name="authorized_from" value="kind" checked[!draft.own];
                    "Its kind's ports (or the policy's default for its review)"
                }
                label.check for="from-own" {
                    input #from-own type="radio" name="authorized_from" value="own" checked[draft.own];
                    "Its own list:"
                }
                input #authorized type="text" name="authorized" value=(draft.authorized)
                    placeholder="80,443,631" aria-label="Its own authorized ports" aria-describedby="authorized-hint";
                p.hint #authorized-hint { "Comma-separated ports and ranges, e.g. 80,8000-8100; empty: no port." }
            }
            label.check for="monitored" {
                input #monitored type="checkbox" name="monitored" value="on" checked[draft.monitored];
                "Monitored: alert when it is gone"
            }
            button type="submit" { "Save device policy" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        let body = serde_urlencoded::to_string(pairs).unwrap();
        Form::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn the_form_becomes_a_patch_or_says_what_is_wrong() {
        let ok = form(&[
            ("approved", "on"),
            ("kind", " printer "),
            ("authorized_from", "own"),
            ("authorized", "631, 80"),
        ]);
        let patch = Draft::from_form(&ok).to_patch(&ok).unwrap();
        assert_eq!(patch.approved, Some(true));
        assert_eq!(patch.kind, Some(Some("printer".into())));
        assert_eq!(
            patch.authorized,
            Some(Some(PortList::parse("80,631").unwrap()))
        );
        assert_eq!(patch.monitored, Some(false));

        let by_kind = form(&[
            ("kind", ""),
            ("authorized_from", "kind"),
            ("authorized", "x"),
        ]);
        let patch = Draft::from_form(&by_kind).to_patch(&by_kind).unwrap();
        assert_eq!((patch.kind, patch.authorized), (Some(None), Some(None)));
        let none = form(&[("authorized_from", "own"), ("authorized", "")]);
        let patch = Draft::from_form(&none).to_patch(&none).unwrap();
        assert_eq!(patch.authorized, Some(Some(PortList::default())));

        for (bad, needle) in [
            (
                form(&[("authorized_from", "own"), ("authorized", "99999")]),
                "Authorized ports",
            ),
            (form(&[("authorized", "80")]), "Choose where"),
            (form(&[("authorized_from", "everything")]), "Choose where"),
        ] {
            let err = Draft::from_form(&bad).to_patch(&bad).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
