//! Console sessions: the login form checks the same credentials as
//! `POST /api/v1/login` and creates the same kind of API token, which the
//! browser keeps in the `vigil_session` cookie (HttpOnly, SameSite=Strict;
//! Secure when the console URL is https). Logging out revokes it.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::{csrf, layout};
use crate::app::App;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_store::{Account, Role, User};

pub(crate) const COOKIE: &str = "vigil_session";
/// The name of the API tokens that back console sessions.
const TOKEN_NAME: &str = "console session";

/// A logged-in browser: its user, the account every page is scoped to,
/// and the session secret (the API token) its CSRF token derives from.
pub(crate) struct Session {
    pub user: User,
    pub account: Account,
    secret: String,
}

impl Session {
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// The token this session's forms carry.
    pub(crate) fn csrf(&self) -> String {
        csrf::token(&self.secret)
    }

    /// Whether the role may change things (owners and admins).
    pub(crate) fn can_write(&self) -> bool {
        matches!(self.user.role, Role::Owner | Role::Admin)
    }

    /// [`Session::can_write`] as a check of a forced request.
    pub(crate) fn require_write(&self) -> Result<(), ConsoleError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "viewers may only read; ask an admin or owner of the account".into(),
            ))
        }
    }

    /// The hidden CSRF field of a form.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(csrf::FIELD) value=(self.csrf()); }
    }
}

impl FromRequestParts<Arc<App>> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ConsoleError> {
        let secret = cookie(&parts.headers, COOKIE).ok_or(ConsoleError::LoginRequired)?;
        let (user, account) = app
            .store
            .authenticate_token(secret)
            .await?
            .ok_or(ConsoleError::LoginRequired)?;
        let account = app.store.account(account).await?;
        Ok(Session {
            user,
            account,
            secret: secret.to_string(),
        })
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value for a session (`None`: clear it).
fn set_cookie(app: &App, secret: Option<&str>) -> String {
    let secure = app
        .cfg
        .console_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    let mut c = match secret {
        Some(s) => format!("{COOKIE}={s}; HttpOnly; SameSite=Strict; Path=/"),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    };
    if secure {
        c.push_str("; Secure");
    }
    c
}

fn login_form(email: &str, error: Option<&str>) -> Markup {
    layout::bare(
        "Log in",
        html! {
            h1 { "Log in to Vigil" }
            @if let Some(e) = error {
                p.flash.error role="alert" { (e) }
            }
            form.stack method="post" action="/login" {
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        },
    )
}

pub(crate) async fn login_page() -> Markup {
    login_form("", None)
}

pub(crate) async fn login(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form = Form::parse(&body)?;
    let email = form.get("email").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let Some(user) = app.store.verify_login(email, password).await? else {
        let page = login_form(email, Some("Wrong email or password."));
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    let (_, secret) = app
        .store
        .create_api_token(user.account_id, user.id, TOKEN_NAME)
        .await?;
    let cookie = HeaderValue::from_str(&set_cookie(&app, Some(&secret)))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    post: Post,
) -> Result<Response, ConsoleError> {
    app.store.revoke_token_secret(post.session.secret()).await?;
    let cookie = HeaderValue::from_str(&set_cookie(&app, None))
        .map_err(|e| ConsoleError::Internal(e.to_string()))?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; vigil_session=vgl_x ;b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("vgl_x"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("vigil_session="));
        assert_eq!(cookie(&h, COOKIE), None);
        assert_eq!(cookie(&HeaderMap::new(), COOKIE), None);
    }
}
