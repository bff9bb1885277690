//! Enrollment: create a single-use token and show the command that
//! enrolls an agent with it, with a copy button. The token is shown once,
//! in the answer to the POST (it is not stored in plain text, so there is
//! nothing to redirect to).

use super::error::ConsoleError;
use super::form::Post;
use super::layout::{self, Page};
use super::session::Session;
use crate::agents::{enroll_command, DEFAULT_TTL_MINUTES, MAX_TTL_MINUTES};
use crate::app::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use std::sync::Arc;
use std::time::Duration;
use vigil_core::Plan;

struct Draft<'a> {
    name: &'a str,
    plan: Plan,
    ttl: &'a str,
}

fn form(session: &Session, d: &Draft<'_>) -> Markup {
    if !session.can_write() {
        return html! {
            p.hint { "Viewers may only read; ask an admin or owner of the account to enroll agents." }
        };
    }
    html! {
        form.stack method="post" action="/enroll" {
            (session.csrf_field())
            label for="name" { "Agent name" }
            input #name type="text" name="name" value=(d.name) required maxlength="200";
            label for="plan" { "Plan" }
            select #plan name="plan" aria-describedby="plan-hint" {
                @for p in [Plan::Extended, Plan::Community] {
                    option value=(p.as_str()) selected[p == d.plan] { (p) }
                }
            }
            p.hint #plan-hint { "Security scans need the extended plan." }
            label for="ttl" { "Token valid for (minutes)" }
            input #ttl type="number" name="ttl" min="1" max=(MAX_TTL_MINUTES) value=(d.ttl);
            button type="submit" { "Create enrollment token" }
        }
    }
}

fn shell(session: &Session, body: Markup) -> Markup {
    layout::page(
        session,
        Page {
            title: "Enroll an agent",
            nav: "/enroll",
            refresh_secs: None,
        },
        html! { h1 { "Enroll an agent" } (body) },
    )
}

pub(crate) async fn page(session: Session) -> Markup {
    let ttl = DEFAULT_TTL_MINUTES.to_string();
    let draft = Draft {
        name: "",
        plan: Plan::Extended,
        ttl: &ttl,
    };
    shell(&session, form(&session, &draft))
}

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    Post { session, form: f }: Post,
) -> Result<Response, ConsoleError> {
    session.require_write()?;
    let draft = Draft {
        name: f.get("name").unwrap_or_default().trim(),
        plan: match f.get("plan") {
            Some("community") => Plan::Community,
            _ => Plan::Extended,
        },
        ttl: f.get("ttl").unwrap_or_default().trim(),
    };
    let minutes = draft
        .ttl
        .parse::<u32>()
        .ok()
        .filter(|m| (1..=MAX_TTL_MINUTES).contains(m));
    let created = match minutes {
        None => Err(format!(
            "Token validity: use 1 to {MAX_TTL_MINUTES} minutes (30 days)."
        )),
        Some(m) => app
            .store
            .create_enrollment(
                session.account.id,
                draft.name,
                draft.plan,
                Duration::from_secs(u64::from(m) * 60),
            )
            .await
            .map_err(|e| match e {
                vigil_store::StoreError::Invalid(m) => m,
                e => e.to_string(),
            }),
    };
    let token = match created {
        Ok(t) => t,
        Err(message) => {
            let body = html! { (layout::error(Some(&message))) (form(&session, &draft)) };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, shell(&session, body)).into_response());
        }
    };
    let detail = serde_json::json!({"plan": draft.plan, "ttl_minutes": minutes});
    crate::audit::record(
        &app,
        session.account.id,
        &session,
        "enrollment.create",
        Some(draft.name),
        Some(detail),
    )
    .await;
    let command = enroll_command(&app, &token);
    let body = html! {
        p.flash.ok role="status" { "Enrollment token for “" (draft.name) "” created. It works once; it is not shown again." }
        h2 { "Run on the agent's machine" }
        pre.command #command { (command) }
        button type="button" data-copy="command" hidden { "Copy command" }
        p.hint { "Then start it with " code { "vigil agent run" } "." }
        p { a href="/enroll" { "Enroll another agent" } " · " a href="/agents" { "Agents" } }
    };
    Ok(shell(&session, body).into_response())
}
