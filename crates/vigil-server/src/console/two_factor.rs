//! Two-factor login (TOTP): each user sets it up for themselves here, and
//! an owner may require it of every user of the account.
//!
//! Setting up: a new secret is kept as *being enrolled* and shown as a QR
//! code (and as text) for the authenticator app; the app's first code
//! confirms it, which turns it on and shows ten recovery codes, once (the
//! store keeps only their hashes). Setting up again replaces the
//! authenticator and the recovery codes. The code math is
//! [`vigil_core::totp`]; logging in with a code is [`crate::login`].
//!
//! There is no "turn off": an owner who requires two factors would be
//! undone by it, and a user who lost the authenticator logs in with a
//! recovery code and sets up a new one.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::layout::{self, Page};
use super::session::Session;
use crate::app::App;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped};
use std::sync::Arc;
use vigil_core::totp;
use vigil_store::{now_unix, Role};

/// The page's path (where a user is sent when the account requires two
/// factors and they have none).
pub(crate) const PATH: &str = "/account/two-factor";

/// Recovery codes made at each set-up.
const RECOVERY_CODES: usize = 10;

/// Whether `path` may be used by a user who must set up two-factor login
/// first: this page, its forms, logging out and the stylesheet.
pub(crate) fn open_without_it(path: &str) -> bool {
    path == PATH
        || path.starts_with("/account/two-factor/")
        || path == "/logout"
        || path.starts_with("/static/")
}

fn shell(session: &Session, body: Markup) -> Markup {
    layout::page(
        session,
        Page {
            title: "Two-factor login",
            nav: PATH,
            refresh_secs: None,
        },
        html! { h1 { "Two-factor login" } (body) },
    )
}

pub(crate) async fn page(
    State(app): State<Arc<App>>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Markup, ConsoleError> {
    let query = Form::query(query)?;
    let done = match query.get("done") {
        Some("required") => Some("Every user of the account now needs two-factor login."),
        Some("optional") => Some("Two-factor login is now each user's choice."),
        _ => None,
    };
    let (account, user) = (session.account.id, session.user.id);
    let (required, enabled) = app.store.two_factor_status(account, user).await?;
    let left = if enabled {
        app.store.recovery_codes_left(account, user).await?
    } else {
        0
    };
    let body = html! {
        (layout::flash(done))
        @if enabled {
            p { "Two-factor login is on: after your password you enter the code of your authenticator app. "
                "You have " (left) " unused recovery codes." }
        } @else if required {
            p.flash.error role="alert" { "This account requires two-factor login: set it up to go on." }
        } @else {
            p { "With two-factor login, logging in needs the code of an authenticator app on your phone as well as your password." }
        }
        form.stack method="post" action="/account/two-factor/start" {
            (session.csrf_field())
            button type="submit" {
                @if enabled { "Set up a new authenticator (new recovery codes)" } @else { "Set up two-factor login" }
            }
        }
        @if session.user.role == Role::Owner {
            h2 { "For the whole account" }
            form.stack method="post" action="/account/two-factor/require" {
                (session.csrf_field())
                label {
                    input type="checkbox" name="required" value="1" checked[required];
                    " Require two-factor login of every user of this account"
                }
                p.hint { "Users without it are asked to set it up when they next log in." }
                button type="submit" { "Save" }
            }
        } @else if required {
            p.hint { "The account's owner requires two-factor login of every user." }
        }
    };
    Ok(shell(&session, body))
}

/// The QR code and the text of a secret being set up, and the form its
/// first code confirms it with.
fn enrol_page(
    session: &Session,
    secret: &[u8],
    error: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let uri = totp::uri(secret, "Vigil", &session.user.email);
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| ConsoleError::Internal(format!("QR code: {e}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in HTML: without the XML prolog.
    let qr = qr
        .find("<svg")
        .map_or(qr.as_str(), |at| &qr[at..])
        .to_string();
    let text = totp::base32(secret);
    Ok(shell(
        session,
        html! {
            (layout::error(error))
            ol {
                li { "Scan this QR code with your authenticator app (or type the key below into it)." }
                li { "Enter the 6-digit code it shows." }
            }
            figure.qr aria-label="QR code for your authenticator app" { (PreEscaped(qr)) }
            p { "Key: " code #totp-secret { (text) } }
            form.stack method="post" action="/account/two-factor/confirm" {
                (session.csrf_field())
                label for="code" { "Code from the app" }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus;
                button type="submit" { "Turn on two-factor login" }
            }
        },
    ))
}

pub(crate) async fn start(
    State(app): State<Arc<App>>,
    Post { session, .. }: Post,
) -> Result<Markup, ConsoleError> {
    let secret: [u8; totp::SECRET_BYTES] = rand::random();
    app.store
        .start_totp(session.account.id, session.user.id, &totp::base32(&secret))
        .await?;
    enrol_page(&session, &secret, None)
}

pub(crate) async fn confirm(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    let (account, user) = (session.account.id, session.user.id);
    let Some(pending) = app.store.pending_totp(account, user).await? else {
        return Ok(Redirect::to(PATH).into_response());
    };
    let secret = totp::from_base32(&pending)
        .ok_or_else(|| ConsoleError::Internal("a stored TOTP secret is not base32".into()))?;
    let typed = form.get("code").unwrap_or_default();
    let now = u64::try_from(now_unix()).unwrap_or(0);
    let Some(step) = totp::verify(&secret, typed, now, None).and_then(|s| i64::try_from(s).ok())
    else {
        let page = enrol_page(
            &session,
            &secret,
            Some("That is not the app's current code; check the phone's clock and try again."),
        )?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| totp::recovery_code(&rand::random()))
        .collect();
    let stored: Vec<String> = codes
        .iter()
        .map(|c| totp::normalize_recovery_code(c))
        .collect();
    app.store
        .activate_totp(account, user, &pending, step, &stored)
        .await?;
    tracing::info!(user = %session.user.email, "two-factor login turned on");
    crate::audit::record(&app, account, &session, "two_factor.enable", None, None).await;
    let page = shell(
        &session,
        html! {
            p.flash.ok role="status" { "Two-factor login is on." }
            h2 { "Your recovery codes" }
            p { "Keep them somewhere safe: each logs you in once in place of a code, if you lose your phone. "
                "They are shown only now." }
            ul #recovery-codes { @for c in &codes { li { code { (c) } } } }
            p { a href="/" { "Go to the dashboard" } }
        },
    );
    Ok(page.into_response())
}

pub(crate) async fn require(
    State(app): State<Arc<App>>,
    Post { session, form }: Post,
) -> Result<Response, ConsoleError> {
    if session.user.role != Role::Owner {
        return Err(ConsoleError::Forbidden(
            "only an owner of the account may require two-factor login".into(),
        ));
    }
    let required = form.get("required") == Some("1");
    app.store
        .set_totp_required(session.account.id, required)
        .await?;
    tracing::info!(user = %session.user.email, required, "two-factor login requirement changed");
    let detail = serde_json::json!({ "required": required });
    crate::audit::record(
        &app,
        session.account.id,
        &session,
        "two_factor.require",
        None,
        Some(detail),
    )
    .await;
    let done = if required { "required" } else { "optional" };
    Ok(Redirect::to(&format!("{PATH}?done={done}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_set_up_pages_are_open_without_it() {
        for open in [
            PATH,
            "/account/two-factor/start",
            "/logout",
            "/static/app.css",
        ] {
            assert!(open_without_it(open), "{open}");
        }
        for closed in [
            "/",
            "/agents",
            "/account/two-factorx",
            "/login/x",
            "/contacts",
        ] {
            assert!(!open_without_it(closed), "{closed}");
        }
    }
}
