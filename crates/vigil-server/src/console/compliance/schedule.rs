//! When assessments run by themselves (`/compliance/schedule`), checked by
//! the same rule as `PUT /api/v1/compliance/schedule`, and the history of
//! the assessments that ran.

use super::super::error::ConsoleError;
use super::super::form::{Form, Post};
use super::super::layout::{self, Page};
use super::super::session::Session;
use super::subnav;
use crate::app::App;
use crate::compliance::schedule::HISTORY_KEEP;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_core::compliance::{ComplianceSchedule, EndpointStatus, WEEKDAYS};
use vigil_core::{AccountKind, MEMBER_INTERVALS};
use vigil_store::now_unix;

/// The form's values as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Draft {
    pub enabled: bool,
    /// `every`, `daily` or `weekly`.
    pub kind: String,
    pub every: String,
    pub time: String,
    pub weekday: String,
}

impl Draft {
    fn of(s: &ComplianceSchedule) -> Draft {
        Draft {
            enabled: s.enabled,
            kind: match (s.every_minutes, s.weekly_on) {
                (Some(_), _) => "every",
                (None, Some(_)) => "weekly",
                (None, None) if s.daily_at.is_some() => "daily",
                _ => "every",
            }
            .into(),
            every: s.every_minutes.unwrap_or(1440).to_string(),
            time: s.daily_at.clone().unwrap_or_else(|| "02:00".into()),
            weekday: s.weekly_on.unwrap_or(1).to_string(),
        }
    }

    pub(crate) fn from_form(f: &Form) -> Draft {
        let text = |name: &str| f.get(name).unwrap_or_default().trim().to_string();
        Draft {
            enabled: f.get("enabled").is_some(),
            kind: text("kind"),
            every: text("every"),
            time: text("time"),
            weekday: text("weekday"),
        }
    }

    /// The schedule, before [`ComplianceSchedule::validate_for`].
    pub(crate) fn to_schedule(&self) -> Result<ComplianceSchedule, String> {
        let mut s = ComplianceSchedule {
            enabled: self.enabled,
            ..Default::default()
        };
        match self.kind.as_str() {
            "daily" => s.daily_at = Some(self.time.clone()),
            "weekly" => {
                s.daily_at = Some(self.time.clone());
                s.weekly_on = Some(
                    self.weekday
                        .parse()
                        .map_err(|_| format!("weekday: {:?} is not 0 to 6", self.weekday))?,
                );
            }
            _ => {
                s.every_minutes = Some(self.every.parse().map_err(|_| {
                    format!("every: {:?} is not a whole number of minutes", self.every)
                })?)
            }
        }
        Ok(s)
    }
}

async fn page(
    app: &App,
    session: &Session,
    draft: Option<Draft>,
    error: Option<&str>,
    done: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let account = session.account.id;
    let stored = app
        .store
        .compliance_schedule(account)
        .await?
        .unwrap_or_default();
    let next = app.store.compliance_next_run(account).await?;
    let d = draft.unwrap_or_else(|| Draft::of(&stored));
    let mut history = Vec::new();
    for a in app.store.assessments(account, HISTORY_KEEP).await? {
        let counts = app.store.endpoint_counts(account, a.id).await?;
        history.push((a, counts));
    }
    let write = session.can_write();
    let body = html! {
        h1 { "Compliance schedule" }
        (subnav())
        (layout::flash(done))
        (layout::error(error))
        p { "Next run: " (layout::maybe_time(next)) }
        @if !write { p.hint { "Viewers may only read; ask an admin or owner of the account to change the schedule." } }
        form.stack method=[write.then_some("post")] action="/compliance/schedule" {
            @if write { (session.csrf_field()) }
            fieldset disabled[!write] {
                legend { "Run assessments by themselves" }
                label.check for="enabled" {
                    input #enabled type="checkbox" name="enabled" value="on" checked[d.enabled];
                    "Scheduled assessments enabled"
                }
                label.check for="kind-every" {
                    input #kind-every type="radio" name="kind" value="every" checked[d.kind == "every"];
                    "Every N minutes"
                }
                label for="every" { "Interval" }
                @match session.account.kind {
                    AccountKind::Member => {
                        select #every name="every" {
                            @for m in MEMBER_INTERVALS {
                                option value=(m) selected[d.every == m.to_string()] { (m) " minutes" }
                            }
                        }
                    }
                    AccountKind::Organization => {
                        input #every type="number" name="every" min="1" max="525600" value=(d.every) aria-describedby="every-hint";
                        p.hint #every-hint { "Minutes (organizations: 1 to 525600)." }
                    }
                }
                label.check for="kind-daily" {
                    input #kind-daily type="radio" name="kind" value="daily" checked[d.kind == "daily"];
                    "Daily"
                }
                label.check for="kind-weekly" {
                    input #kind-weekly type="radio" name="kind" value="weekly" checked[d.kind == "weekly"];
                    "Weekly"
                }
                label for="time" { "Time of day (UTC)" }
                input #time type="time" name="time" value=(d.time);
                label for="weekday" { "Weekday (weekly)" }
                select #weekday name="weekday" {
                    @for (i, day) in WEEKDAYS.iter().enumerate() {
                        option value=(i) selected[d.weekday == i.to_string()] { (day) }
                    }
                }
                @if write { button type="submit" { "Save schedule" } }
            }
        }
        section.section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            @if history.is_empty() { p.muted { "No assessment has run yet." } }
            @else {
                (layout::table_wrap("Assessment history", html! {
                    table {
                        thead { tr {
                            th scope="col" { "Started" } th scope="col" { "Trigger" } th scope="col" { "State" }
                            th scope="col" { "Progress" }
                            @for s in EndpointStatus::ALL { th scope="col" { (super::status_label(s)) } }
                        } }
                        tbody {
                            @for (a, c) in &history {
                                tr {
                                    td { (layout::time(a.started_at)) }
                                    td { (a.trigger.to_string()) }
                                    td { (layout::badge(&a.state.to_string())) @if let Some(e) = &a.error { br; span.hint { (e) } } }
                                    td { (a.done) " / " (a.total) }
                                    @for s in EndpointStatus::ALL { td { (c.get(s)) } }
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
            title: "Compliance schedule",
            nav: "/compliance",
            refresh_secs: None,
        },
        body,
    ))
}

pub(crate) async fn show(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = (query.get("done") == Some("saved")).then_some("Schedule saved.");
    page(&app, &session, None, None, done).await
}

pub(crate) async fn save(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let draft = Draft::from_form(&form);
    let checked = draft.to_schedule().and_then(|s| {
        s.validate_for(session.account.kind)
            .map(|()| s)
            .map_err(|e| e.to_string())
    });
    match checked {
        Ok(schedule) => {
            app.store
                .put_compliance_schedule(session.account.id, &schedule, now_unix())
                .await?;
            let detail = serde_json::to_value(&schedule).ok();
            crate::audit::record(
                &app,
                session.account.id,
                &session,
                "schedule.update",
                None,
                detail,
            )
            .await;
            Ok(Redirect::to("/compliance/schedule?done=saved").into_response())
        }
        Err(m) => {
            let page = page(&app, &session, Some(draft), Some(&m), None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_become_schedules() {
        let s = |body: &[u8]| Draft::from_form(&Form::parse(body).unwrap()).to_schedule();
        let every = s(b"enabled=on&kind=every&every=45&time=02%3A00&weekday=1").unwrap();
        assert_eq!(every.every_minutes, Some(45));
        assert_eq!((every.daily_at, every.weekly_on), (None, None));
        let weekly = s(b"kind=weekly&every=45&time=03%3A30&weekday=5").unwrap();
        assert_eq!(weekly.daily_at.as_deref(), Some("03:30"));
        assert_eq!(weekly.weekly_on, Some(5));
        assert_eq!(Draft::of(&weekly).to_schedule().unwrap(), weekly);
        assert!(s(b"kind=every&every=soon")
            .unwrap_err()
            .starts_with("every:"));
        let member = s(b"kind=every&every=5").unwrap();
        assert!(member.validate_for(AccountKind::Member).is_err());
        assert!(member.validate_for(AccountKind::Organization).is_ok());
    }
}
