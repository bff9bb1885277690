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
use crate::login::{self, ClientAddr, LoginError, TooManyAttempts};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::{html, Markup};
use std::sync::Arc;
use vigil_store::{now_unix, Account, AccountId, Role, StoreError, UnixTime, User, UserId};

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
    /// The client's address (for the audit log).
    pub from: Option<std::net::IpAddr>,
    secret: String,
    csrf: String,
}

impl From<&Session> for crate::audit::Actor {
    fn from(s: &Session) -> crate::audit::Actor {
        crate::audit::Actor {
            email: s.user.email.clone(),
            user_id: Some(s.user.id),
            from: s.from,
        }
    }
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
        // An account that requires two-factor login sends a user without
        // it to set it up before anything else.
        let (required, enabled) = app.store.two_factor_status(account, user.id).await?;
        if required && !enabled && !super::two_factor::open_without_it(parts.uri.path()) {
            return Err(ConsoleError::EnrolTwoFactor);
        }
        let account = app.store.account(account).await?;
        Ok(Session {
            user,
            account,
            from: crate::login::client_address(&parts.extensions),
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

/// Behind a TLS-terminating reverse proxy the console may be served over
/// plain HTTP to the proxy while browsers use HTTPS: when a proxy the
/// operator trusts (`--trusted-proxy`) says `X-Forwarded-Proto: https`,
/// the cookies are marked `Secure` too. The header of anyone else is
/// ignored (a client could send it).
pub(crate) async fn secure_behind_proxy(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let https = forwarded_https(&app.cfg.trusted_proxies, &request);
    let mut response = next.run(request).await;
    if https {
        mark_secure(response.headers_mut());
    }
    response
}

fn forwarded_https(trusted: &[ipnet::IpNet], request: &axum::extract::Request) -> bool {
    let from_proxy = crate::login::client_address(request.extensions())
        .is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer.to_canonical())));
    from_proxy
        && request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            // The first hop's scheme (a chain of proxies appends).
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

fn mark_secure(headers: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        let secured = match cookie.to_str() {
            Ok(text) if !text.contains("; Secure") => {
                HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie)
            }
            _ => cookie,
        };
        headers.append(header::SET_COOKIE, secured);
    }
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

/// "1 second", "42 seconds", "3 minutes".
fn seconds(secs: u64) -> String {
    match secs {
        1 => "1 second".into(),
        s if s < 120 => format!("{s} seconds"),
        s => format!("{} minutes", s.div_ceil(60)),
    }
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

/// `POST /login`: the password form, or (with a `ticket`) the code form
/// of a user with two-factor login. Both go through the login throttle
/// ([`crate::login`]); the password step of such a user stays counted until
/// the code is right too, so knowing the password buys no free code
/// guesses.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form = Form::parse(&body)?;
    let email = form.get("email").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let next = form.get("next");
    let token = form.get(csrf::FIELD).unwrap_or_default();
    let nonce = cookie(&headers, LOGIN_COOKIE)
        .filter(|nonce| csrf::verify(&app.console_key, &login_secret(nonce), token));
    let Some(nonce) = nonce else {
        let notice = LoginNotice {
            email,
            next,
            error: Some("This login form had expired or came from another site; please try again."),
            ..Default::default()
        };
        return login_form(&app, StatusCode::FORBIDDEN, notice);
    };
    if let Some(ticket) = form.get("ticket") {
        return second_step(&app, client, nonce, ticket, form.get("code"), next).await;
    }
    let (user, attempt) = match login::verify_password(&app, email, password, client).await {
        Ok(checked) => checked,
        Err(LoginError::TooMany(t)) => {
            let notice = LoginNotice {
                email,
                next,
                error: Some(&wait_message(&t)),
                ..Default::default()
            };
            let page = login_form(&app, StatusCode::TOO_MANY_REQUESTS, notice)?;
            return with_retry_after(page, &t);
        }
        Err(LoginError::Store(e)) => return Err(e.into()),
        Err(LoginError::Internal(m)) => return Err(ConsoleError::Internal(m)),
        Err(_) => {
            let notice = LoginNotice {
                email,
                next,
                error: Some("Wrong email or password."),
                ..Default::default()
            };
            return login_form(&app, StatusCode::UNAUTHORIZED, notice);
        }
    };
    if app.store.totp(user.account_id, user.id).await?.is_some() {
        // Counted until the code is right as well.
        drop(attempt);
        let ticket = ticket(&app, &user, nonce, now_unix());
        return code_form(&app, nonce, &ticket, next, None, StatusCode::OK);
    }
    start_session(&app, &user, attempt, client, next).await
}

/// The code step: `ticket` says whose password was right.
async fn second_step(
    app: &App,
    client: Option<std::net::IpAddr>,
    nonce: &str,
    ticket: &str,
    code: Option<&str>,
    next: Option<&str>,
) -> Result<Response, ConsoleError> {
    let Some(user) = ticket_user(app, ticket, nonce, now_unix()).await? else {
        let notice = LoginNotice {
            next,
            error: Some("Your login took too long; please enter your password again."),
            ..Default::default()
        };
        return login_form(app, StatusCode::FORBIDDEN, notice);
    };
    let attempt = match app.logins.attempt(&user.email, client) {
        Ok(attempt) => attempt,
        Err(t) => {
            let msg = wait_message(&t);
            let page = code_form(
                app,
                nonce,
                ticket,
                next,
                Some(&msg),
                StatusCode::TOO_MANY_REQUESTS,
            )?;
            return with_retry_after(page, &t);
        }
    };
    match login::verify_second_factor(app, &user, code).await {
        Ok(()) => start_session(app, &user, attempt, client, next).await,
        Err(LoginError::Store(e)) => Err(e.into()),
        Err(LoginError::Internal(m)) => Err(ConsoleError::Internal(m)),
        Err(_) => {
            login::audit_failure(app, &user.email, client, "code").await;
            code_form(
                app,
                nonce,
                ticket,
                next,
                Some("Wrong or already used code."),
                StatusCode::UNAUTHORIZED,
            )
        }
    }
}

/// Logs `user` in: a new session cookie, the login form's cookie cleared,
/// and on to `next` (where a user whose account requires two-factor login
/// and who has none is sent to set it up).
async fn start_session(
    app: &App,
    user: &User,
    attempt: login::Attempt,
    client: Option<std::net::IpAddr>,
    next: Option<&str>,
) -> Result<Response, ConsoleError> {
    if let Err(e) = app.store.prune_expired_tokens(now_unix()).await {
        tracing::warn!(error = %e, "could not delete expired console sessions");
    }
    let (token, secret) = app
        .store
        .create_token_expiring(user.account_id, user.id, TOKEN_NAME, app.cfg.session)
        .await?;
    app.logins.succeeded(attempt);
    login::audit_success(app, user, client, "console").await;
    tracing::info!(user = %user.email, expires_at = ?token.expires_at, "console login");
    let session = set_cookie(app, COOKIE, Some(&secret), "/", None);
    let login = set_cookie(app, LOGIN_COOKIE, None, "/login", None);
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

fn wait_message(t: &TooManyAttempts) -> String {
    format!(
        "Too many login attempts. Please wait {} before trying again.",
        seconds(t.retry_after_secs())
    )
}

fn with_retry_after(mut page: Response, t: &TooManyAttempts) -> Result<Response, ConsoleError> {
    page.headers_mut().insert(
        header::RETRY_AFTER,
        header_value(&t.retry_after_secs().to_string())?,
    );
    Ok(page)
}

/// How long a right password stays good for entering the code (seconds).
const TICKET_SECS: i64 = 300;

/// The code form's proof that `user`'s password was right, until
/// [`TICKET_SECS`] from `now`: `account.user.expiry.mac`, the MAC (the
/// console key's) bound to the login form's cookie, so it is of no use in
/// another browser.
fn ticket(app: &App, user: &User, nonce: &str, now: UnixTime) -> String {
    let body = format!(
        "{}.{}.{}",
        user.account_id,
        user.id,
        now.saturating_add(TICKET_SECS)
    );
    let mac = csrf::token(&app.console_key, &ticket_secret(&body, nonce));
    format!("{body}.{mac}")
}

fn ticket_secret(body: &str, nonce: &str) -> String {
    format!("two-factor ticket:{body}:{nonce}")
}

/// The user of a genuine, unexpired `ticket` made for this login form.
async fn ticket_user(
    app: &App,
    ticket: &str,
    nonce: &str,
    now: UnixTime,
) -> Result<Option<User>, ConsoleError> {
    let Some((body, mac)) = ticket.rsplit_once('.') else {
        return Ok(None);
    };
    if !csrf::verify(&app.console_key, &ticket_secret(body, nonce), mac) {
        return Ok(None);
    }
    let mut parts = body.split('.');
    let (Some(account), Some(user), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    let (Ok(account), Ok(user), Ok(expires)) = (
        account.parse::<AccountId>(),
        user.parse::<UserId>(),
        expires.parse::<UnixTime>(),
    ) else {
        return Ok(None);
    };
    if expires <= now {
        return Ok(None);
    }
    match app.store.user(account, user).await {
        Ok(user) => Ok(Some(user)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The code form of the two-factor step.
fn code_form(
    app: &App,
    nonce: &str,
    ticket: &str,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let token = csrf::token(&app.console_key, &login_secret(nonce));
    let next = local_path(next);
    let page = layout::bare(
        "Log in",
        html! {
            h1 { "Two-factor login" }
            @if let Some(e) = error {
                p.flash.error role="alert" { (e) }
            }
            form.stack method="post" action="/login" {
                input type="hidden" name=(csrf::FIELD) value=(token);
                input type="hidden" name="ticket" value=(ticket);
                @if next != "/" { input type="hidden" name="next" value=(next); }
                label for="code" { "Code from your authenticator app" }
                input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code"
                    aria-describedby="code-hint" required autofocus;
                p.hint #code-hint { "Lost your authenticator? Enter one of your recovery codes instead; each works once." }
                button type="submit" { "Log in" }
            }
            p { a href="/login" { "Start again" } }
        },
    );
    Ok((status, page).into_response())
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
