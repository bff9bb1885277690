//! Console sessions: the login form checks the same credentials as
//! `POST /api/v1/login` and creates the same kind of API token, which the
//! browser keeps in the `vigil_session` cookie (HttpOnly, SameSite=Strict;
//! Secure when the console URL is https). The token expires (the server's
//! session lifetime and idle limit); logging out revokes it. The login
//! form itself carries a CSRF token bound to a cookie of its own, so no
//! other site can log a browser in to an account of its choosing.

use super::error::ConsoleError;
use super::form::{Form, Post};
use super::{csrf, layout};
use crate::app::App;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_store::{now_unix, Account, Role, User};

pub(crate) const COOKIE: &str = "vigil_session";
/// The login form's own cookie: a random value its CSRF token is bound to.
const LOGIN_COOKIE: &str = "vigil_login";
/// The name of the API tokens that back console sessions.
const TOKEN_NAME: &str = "console session";

/// A logged-in browser: its user, the account every page is scoped to,
/// and the session secret (the API token) its CSRF token derives from.
pub(crate) struct Session {
    pub user: User,
    pub account: Account,
    secret: String,
    csrf: String,
}

impl Session {
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// The token this session's forms carry.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
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
        // After logging in, a page asked for by GET is shown again.
        let next = (parts.method == Method::GET)
            .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string()))
            .flatten();
        let Some(secret) = cookie(&parts.headers, COOKIE) else {
            return Err(ConsoleError::LoginRequired {
                next,
                expired: false,
            });
        };
        let Some((user, account)) = app.store.authenticate_token(secret).await? else {
            return Err(ConsoleError::LoginRequired {
                next,
                expired: true,
            });
        };
        let account = app.store.account(account).await?;
        Ok(Session {
            user,
            account,
            csrf: csrf::token(&app.console_key, secret),
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

/// The `Set-Cookie` value of cookie `name` (`value` `None`: clear it).
fn set_cookie(
    app: &App,
    name: &str,
    value: Option<&str>,
    path: &str,
    max_age: Option<u64>,
) -> String {
    let secure = app
        .cfg
        .console_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    let mut c = format!(
        "{name}={}; HttpOnly; SameSite=Strict; Path={path}",
        value.unwrap_or_default()
    );
    match (value, max_age) {
        (None, _) => c.push_str("; Max-Age=0"),
        (Some(_), Some(age)) => c.push_str(&format!("; Max-Age={age}")),
        (Some(_), None) => {}
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

fn header_value(text: &str) -> Result<HeaderValue, ConsoleError> {
    HeaderValue::from_str(text).map_err(|e| ConsoleError::Internal(e.to_string()))
}

/// Where to go after logging in: a path on this site, else the dashboard.
///
/// Never another site: browsers read `//host` and `/\host` as another
/// host, and they delete tabs and newlines from a URL before reading it, so
/// `/%09/host` (a tab once decoded) would become `//host`. So the path must
/// start with one `/` and hold no backslash and no control character at all.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

/// How long the login form's cookie (and so the form) stays valid.
const LOGIN_FORM_SECS: u64 = 3600;

/// What the login page shows besides the form.
#[derive(Default)]
struct LoginNotice<'a> {
    email: &'a str,
    next: Option<&'a str>,
    error: Option<&'a str>,
    info: Option<&'a str>,
}

/// The login form with a fresh login cookie and the token bound to it.
fn login_form(
    app: &App,
    status: StatusCode,
    notice: LoginNotice<'_>,
) -> Result<Response, ConsoleError> {
    let nonce: [u8; 16] = rand::random();
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let token = csrf::token(&app.console_key, &login_secret(&nonce));
    let next = local_path(notice.next);
    let page = layout::bare(
        "Log in",
        html! {
            h1 { "Log in to Vigil" }
            @if let Some(i) = notice.info {
                p.flash role="status" { (i) }
            }
            @if let Some(e) = notice.error {
                p.flash.error role="alert" { (e) }
            }
            form.stack method="post" action="/login" {
                input type="hidden" name=(csrf::FIELD) value=(token);
                @if next != "/" { input type="hidden" name="next" value=(next); }
                label for="email" { "Email" }
                input #email type="email" name="email" value=(notice.email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        },
    );
    let cookie = set_cookie(
        app,
        LOGIN_COOKIE,
        Some(&nonce),
        "/login",
        Some(LOGIN_FORM_SECS),
    );
    Ok((status, [(header::SET_COOKIE, header_value(&cookie)?)], page).into_response())
}

/// What a login form's CSRF token is bound to (never a session secret,
/// which starts with `vgl_`).
fn login_secret(nonce: &str) -> String {
    format!("login:{nonce}")
}

pub(crate) async fn login_page(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let query = Form::query(query)?;
    let expired = query.get("expired") == Some("1");
    login_form(
        &app,
        StatusCode::OK,
        LoginNotice {
            next: query.get("next"),
            info: expired.then_some("Your session has ended; please log in again."),
            ..Default::default()
        },
    )
}

pub(crate) async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form = Form::parse(&body)?;
    let email = form.get("email").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let next = form.get("next");
    let token = form.get(csrf::FIELD).unwrap_or_default();
    let bound = cookie(&headers, LOGIN_COOKIE)
        .is_some_and(|nonce| csrf::verify(&app.console_key, &login_secret(nonce), token));
    if !bound {
        let notice = LoginNotice {
            email,
            next,
            error: Some("This login form had expired or came from another site; please try again."),
            ..Default::default()
        };
        return login_form(&app, StatusCode::FORBIDDEN, notice);
    }
    let Some(user) = app.store.verify_login(email, password).await? else {
        let notice = LoginNotice {
            email,
            next,
            error: Some("Wrong email or password."),
            ..Default::default()
        };
        return login_form(&app, StatusCode::UNAUTHORIZED, notice);
    };
    if let Err(e) = app.store.prune_expired_tokens(now_unix()).await {
        tracing::warn!(error = %e, "could not delete expired console sessions");
    }
    let (token, secret) = app
        .store
        .create_token_expiring(user.account_id, user.id, TOKEN_NAME, app.cfg.session)
        .await?;
    tracing::info!(user = %user.email, expires_at = ?token.expires_at, "console login");
    let session = set_cookie(&app, COOKIE, Some(&secret), "/", None);
    let login = set_cookie(&app, LOGIN_COOKIE, None, "/login", None);
    Ok((
        // Two cookies: `AppendHeaders` keeps both (a plain array would
        // keep only the last).
        AppendHeaders([
            (header::SET_COOKIE, header_value(&session)?),
            (header::SET_COOKIE, header_value(&login)?),
        ]),
        Redirect::to(local_path(next)),
    )
        .into_response())
}

pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    post: Post,
) -> Result<Response, ConsoleError> {
    app.store.revoke_token_secret(post.session.secret()).await?;
    let cookie = set_cookie(&app, COOKIE, None, "/", None);
    Ok((
        [(header::SET_COOKIE, header_value(&cookie)?)],
        Redirect::to("/login"),
    )
        .into_response())
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

    #[test]
    fn only_local_paths_are_followed_after_login() {
        let cases = [
            (None, "/"),
            (Some("/agents?q=web&page=2"), "/agents?q=web&page=2"),
            (Some("/"), "/"),
            (Some("//evil.example/x"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("agents"), "/"),
            (Some(""), "/"),
            // Tabs and newlines vanish in the browser: `//evil.example`.
            (Some("/\t/evil.example"), "/"),
            (Some("/\n/evil.example"), "/"),
            (Some("/\r\n/evil.example"), "/"),
            (Some("/agents\u{7f}"), "/"),
            (Some("/x\\y"), "/"),
            (Some("/compliance?name=web*"), "/compliance?name=web*"),
        ];
        for (next, want) in cases {
            assert_eq!(local_path(next), want, "{next:?}");
        }
    }
}
