//! Acknowledging an alert from a notification, without logging in
//! ([`crate::ack_link`]): `GET /ack/{token}` shows the alert and a button
//! (opening a link must change nothing: mail scanners and chat previews
//! fetch links), `POST /ack/{token}` acknowledges it in the name of the
//! contact the notification went to. Reminders and escalation stop then.

use super::layout;
use crate::ack_link::{verify, AckClaim};
use crate::alert::{title, Stage};
use crate::app::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_store::{now_unix, AckOutcome, Alert, AlertStatus, StoreError};

fn page(status: StatusCode, body: Markup) -> Response {
    (
        status,
        layout::bare(
            "Acknowledge an alert",
            html! { h1 { "Acknowledge an alert" } (body) },
        ),
    )
        .into_response()
}

fn refused(status: StatusCode, message: &str) -> Response {
    page(status, html! { (layout::error(Some(message))) })
}

/// The claim of a link, its alert and the name it acknowledges in; or the page saying why not.
async fn claimed(app: &App, token: &str) -> Result<(AckClaim, Alert, String, String), Response> {
    let claim = verify(&app.console_key, token, now_unix())
        .map_err(|e| refused(StatusCode::BAD_REQUEST, &e.to_string()))?;
    let gone = || {
        refused(
            StatusCode::NOT_FOUND,
            "The alert or the contact of this link no longer exists.",
        )
    };
    let lookup = async {
        let alert = app.store.alert(claim.account, claim.alert).await?;
        let contact = app.store.contact(claim.account, claim.contact).await?;
        let agent = app.store.agent(claim.account, alert.agent_id).await?;
        let heading = title(&agent, &alert.target, alert.condition, Stage::of(&alert));
        Ok::<_, StoreError>((alert, contact.name, heading))
    };
    match lookup.await {
        Ok((alert, contact, heading)) => Ok((claim, alert, contact, heading)),
        Err(StoreError::NotFound) => Err(gone()),
        Err(e) => {
            tracing::error!(error = %e, "acknowledge link lookup failed");
            Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server cannot look the alert up right now; try again in a moment.",
            ))
        }
    }
}

fn state_of(alert: &Alert) -> Option<String> {
    if alert.status == AlertStatus::Resolved {
        return Some("This alert is over already: nothing to acknowledge.".into());
    }
    alert.acknowledged_by.as_ref().map(|by| {
        format!(
            "This alert was acknowledged already, by {by}{}.",
            alert
                .acknowledged_at
                .map(|at| format!(" at {}", layout::time(at)))
                .unwrap_or_default()
        )
    })
}

/// `GET /ack/{token}`: the alert and a button; changes nothing.
pub(crate) async fn show(State(app): State<Arc<App>>, Path(token): Path<String>) -> Response {
    let (_, alert, contact, heading) = match claimed(&app, &token).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let body = html! {
        p.lead { (heading) }
        p.hint { "Raised " (layout::time(alert.raised_at)) "." }
        @match state_of(&alert) {
            Some(done) => { p { (done) } }
            None => {
                form method="post" action={ "/ack/" (token) } {
                    button type="submit" { "Acknowledge as " (contact) }
                }
                p.hint { "Reminders and escalation of this alert stop once it is acknowledged. The link works once." }
            }
        }
    };
    page(StatusCode::OK, body)
}

/// `POST /ack/{token}`: acknowledges the alert for the link's contact.
pub(crate) async fn acknowledge(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
) -> Response {
    let (claim, _, contact, heading) = match claimed(&app, &token).await {
        Ok(c) => c,
        Err(page) => return page,
    };
    let actor = format!("{contact} (notification link)");
    let outcome = app
        .store
        .acknowledge_alert_as(claim.account, claim.alert, &actor, None, now_unix())
        .await;
    match outcome {
        Ok(AckOutcome::Acknowledged(_)) => {
            crate::audit::record(
                &app,
                claim.account,
                crate::audit::Actor {
                    email: actor.clone(),
                    user_id: None,
                    from: None,
                },
                "alert.ack",
                Some(&claim.alert.to_string()),
                Some(serde_json::json!({ "via": "notification link" })),
            )
            .await;
            page(
                StatusCode::OK,
                html! {
                    p.flash.ok role="status" { "Acknowledged as " (actor) "." }
                    p { (heading) }
                    p.hint { "Reminders and escalation stop; the alert stays open until its condition ends." }
                },
            )
        }
        Ok(AckOutcome::AlreadyAcknowledged(a) | AckOutcome::Resolved(a)) => refused(
            StatusCode::CONFLICT,
            &state_of(&a).unwrap_or_else(|| "Nothing to acknowledge.".into()),
        ),
        Err(StoreError::NotFound) => refused(
            StatusCode::NOT_FOUND,
            "The alert of this link no longer exists.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "acknowledge link failed");
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server cannot acknowledge right now; try again in a moment.",
            )
        }
    }
}
