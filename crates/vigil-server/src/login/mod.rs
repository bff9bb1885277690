//! Logging in, for the REST API (`POST /api/v1/login`) and the console's
//! login form alike: the throttle in front of the password check, and the
//! client address it is keyed by.
//!
//! Every attempt is counted twice, for the account (its email, whether it
//! exists or not, so the throttle tells nothing about which emails have
//! users) and for the client's address (an IPv6 client by its /64, which a
//! single host usually has to itself), by the rules of
//! [`vigil_core::throttle`]. A refused attempt is answered at once, without
//! the argon2 verification, so a flood costs the server next to nothing
//! and the password hashing pool ([`vigil_store::PasswordWork`]) stays
//! free for real users. A login that succeeds forgets the account's
//! attempts and takes back its own attempt from the address.
//!
//! The counts live in this process's memory: with several replicas behind
//! a load balancer each replica counts on its own, so a guesser spread over
//! `n` replicas gets `n` times the attempts (still the same exponential
//! backoff on each). A restart forgets them. Both tables are bounded
//! ([`throttle::MAX_KEYS`]): when one is full, forgotten records go first,
//! then the oldest ones. The tables are [`throttle`]'s, held by
//! [`App`]; this module is the service in front of them.

mod throttle;

pub(crate) use throttle::{Attempt, Logins, TooManyAttempts};

use crate::app::App;
use std::net::{IpAddr, SocketAddr};
use vigil_core::totp;
use vigil_store::{now_unix, StoreError, User};

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoginError {
    /// Too many attempts: refused without checking anything.
    #[error("too many login attempts; try again in {} s", .0.retry_after_secs())]
    TooMany(TooManyAttempts),
    /// Unknown email or wrong password (never which).
    #[error("wrong email or password")]
    Wrong,
    /// The password was right; the user has two-factor login and gave no
    /// code.
    #[error(
        "this user logs in with two factors: give the authenticator app's code \
         (or a recovery code) as \"totp\""
    )]
    CodeNeeded,
    /// The code is wrong, or was used already.
    #[error("wrong or already used one-time code")]
    WrongCode,
    /// The account requires two-factor login and the user has none yet.
    #[error(
        "this account requires two-factor login: set it up in the web console \
         (Two-factor login) first"
    )]
    EnrolFirst,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Our fault (a corrupt stored secret); the details go to the log.
    #[error("internal error")]
    Internal(String),
}

/// Checks the second factor of `user`, whose password was right: with
/// two-factor login, `code` must be the authenticator's code of a step not
/// used before, or an unspent recovery code (spent by this).
pub(crate) async fn verify_second_factor(
    app: &App,
    user: &User,
    code: Option<&str>,
) -> Result<(), LoginError> {
    let Some(enabled) = app.store.totp(user.account_id, user.id).await? else {
        return Ok(());
    };
    let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
        return Err(LoginError::CodeNeeded);
    };
    if totp::is_recovery_code(code) {
        let normalized = totp::normalize_recovery_code(code);
        let spent = app
            .store
            .use_recovery_code(user.account_id, user.id, &normalized)
            .await?;
        if spent {
            tracing::info!(user = %user.email, "logged in with a recovery code");
        }
        return spent.then_some(()).ok_or(LoginError::WrongCode);
    }
    let secret = totp::from_base32(&enabled.secret).ok_or_else(|| {
        LoginError::Internal(format!(
            "the stored TOTP secret of {} is not base32",
            user.email
        ))
    })?;
    let now = u64::try_from(now_unix()).unwrap_or(0);
    let last = enabled.last_step.and_then(|s| u64::try_from(s).ok());
    let step = totp::verify(&secret, code, now, last).ok_or(LoginError::WrongCode)?;
    let step = i64::try_from(step).map_err(|_| LoginError::WrongCode)?;
    // A compare-and-set: two replicas given the same code accept it once.
    let fresh = app
        .store
        .use_totp_step(user.account_id, user.id, step)
        .await?;
    fresh.then_some(()).ok_or(LoginError::WrongCode)
}

/// Checks `email` and `password` of a client at `client`, behind the
/// throttle. On success the caller finishes the attempt
/// ([`Logins::succeeded`]) once the whole login succeeded (a second factor
/// may follow); a failure stays counted.
pub(crate) async fn verify_password(
    app: &App,
    email: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<(User, Attempt), LoginError> {
    let attempt = app.logins.attempt(email, client).map_err(|t| {
        tracing::info!(
            client = ?client,
            retry_after_secs = t.retry_after_secs(),
            "login refused: too many attempts"
        );
        LoginError::TooMany(t)
    })?;
    match app.store.verify_login(email, password).await? {
        Some(user) => Ok((user, attempt)),
        None => {
            audit_failure(app, email, client, "password").await;
            Err(LoginError::Wrong)
        }
    }
}

/// Records a failed login in the account of the user `email` names (an
/// email of no user is recorded nowhere: there is no account to tell).
/// Throttled attempts are not recorded: they check nothing, and would let
/// anyone grow the log at will.
pub(crate) async fn audit_failure(app: &App, email: &str, client: Option<IpAddr>, reason: &str) {
    match app.store.user_of_email(email).await {
        Ok(Some((account, _))) => {
            let actor = crate::audit::Actor::claimed(email, client);
            let detail = serde_json::json!({ "reason": reason });
            crate::audit::record(app, account, actor, "login.failed", None, Some(detail)).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot record a failed login"),
    }
}

/// Records a successful login of `user` (`via`: api or console).
pub(crate) async fn audit_success(app: &App, user: &User, client: Option<IpAddr>, via: &str) {
    let actor = crate::audit::Actor {
        email: user.email.clone(),
        user_id: Some(user.id),
        from: client,
    };
    let detail = serde_json::json!({ "via": via });
    crate::audit::record(app, user.account_id, actor, "login", None, Some(detail)).await;
}

/// The TCP peer of a request, which the listener records as axum's
/// `ConnectInfo` ([`crate::listen`]). Never a forwarded-for header: behind
/// a reverse proxy every client has the proxy's address, and the account
/// throttle is then what holds a guesser back.
pub(crate) fn client_address(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// [`client_address`] as an extractor (never fails).
pub(crate) struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_address(&parts.extensions)))
    }
}
