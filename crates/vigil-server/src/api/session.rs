//! Logging in, who am I, users and API tokens.

use crate::app::App;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::extract::Json;
use crate::ids;
use crate::login::{self, ClientAddr, LoginError};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use vigil_proto::api::{
    AccountView, ErrorBody, LoginRequest, LoginResponse, Me, NewToken, NewUser, ServerInfo,
    TokenView, UserView,
};
use vigil_store::{Account, ApiToken, ApiTokenId, Role, User};

pub(crate) fn account_view(a: &Account) -> AccountView {
    AccountView {
        id: a.id.to_string(),
        name: a.name.clone(),
        kind: a.kind,
    }
}

pub(crate) fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id.to_string(),
        email: u.email.clone(),
        role: u.role.to_string(),
    }
}

fn token_view(t: &ApiToken, plaintext: Option<String>) -> TokenView {
    TokenView {
        id: t.id.to_string(),
        name: t.name.clone(),
        created_at: t.created_at,
        last_used_at: t.last_used_at,
        revoked_at: t.revoked_at,
        token: plaintext,
    }
}

/// `POST /login`, behind the login throttle ([`crate::login`]): too many
/// attempts for the email or from the address are answered 429 with
/// `Retry-After`, at once and without checking the password. A user with
/// two-factor login also gives `totp`; a user whose account requires it
/// and who has none is sent to the console to set it up.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    ClientAddr(client): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let (user, attempt) =
        match login::verify_password(&app, &req.email, &req.password, client).await {
            Ok(checked) => checked,
            Err(e) => return refused(e),
        };
    if let Err(e) = login::verify_second_factor(&app, &user, req.totp.as_deref()).await {
        if matches!(e, LoginError::WrongCode) {
            login::audit_failure(&app, &user.email, client, "code").await;
        }
        return refused(e);
    }
    if app
        .store
        .two_factor_status(user.account_id, user.id)
        .await?
        == (true, false)
    {
        return refused(LoginError::EnrolFirst);
    }
    let account = app.store.account(user.account_id).await?;
    let name = req.token_name.as_deref().unwrap_or("login");
    let (_, token) = app
        .store
        .create_token_expiring(user.account_id, user.id, name, app.cfg.login_token)
        .await?;
    app.logins.succeeded(attempt);
    login::audit_success(&app, &user, client, "api").await;
    Ok((
        StatusCode::CREATED,
        axum::Json(LoginResponse {
            token,
            user: user_view(&user),
            account: account_view(&account),
        }),
    )
        .into_response())
}

/// How a failed login is answered: 429 with `Retry-After` (whole seconds)
/// when throttled, 401 for wrong credentials (saying when a code is
/// missing or wrong, since the password was right then).
fn refused(e: LoginError) -> Result<Response, ApiError> {
    let status = match e {
        LoginError::TooMany(t) => {
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, t.retry_after_secs().to_string())],
                axum::Json(ErrorBody {
                    error: e.to_string(),
                }),
            )
                .into_response())
        }
        LoginError::Wrong => return Err(ApiError::Unauthorized),
        LoginError::CodeNeeded | LoginError::WrongCode => StatusCode::UNAUTHORIZED,
        LoginError::EnrolFirst => return Err(ApiError::Forbidden(e.to_string())),
        LoginError::Store(e) => return Err(e.into()),
        LoginError::Internal(m) => return Err(ApiError::Internal(m)),
    };
    Ok((
        status,
        axum::Json(ErrorBody {
            error: e.to_string(),
        }),
    )
        .into_response())
}

pub(crate) async fn me(caller: Caller) -> axum::Json<Me> {
    axum::Json(Me {
        user: user_view(&caller.user),
        account: account_view(&caller.account),
    })
}

pub(crate) async fn server(State(app): State<Arc<App>>, _caller: Caller) -> axum::Json<ServerInfo> {
    axum::Json(ServerInfo {
        server_id: app.server_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        agent_url: app.agent_url.clone(),
        pin: app.pin.to_string(),
    })
}

pub(crate) async fn users(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<UserView>>, ApiError> {
    let users = app.store.users(caller.account.id).await?;
    Ok(axum::Json(users.iter().map(user_view).collect()))
}

pub(crate) async fn create_user(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<NewUser>,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    let role: Role = req.role.parse().map_err(|_| {
        ApiError::Invalid(format!(
            "unknown role {:?}: use owner, admin or viewer",
            req.role
        ))
    })?;
    caller.can_grant(role)?;
    let created = app
        .store
        .create_user(caller.account.id, &req.email, &req.password, role)
        .await;
    let user = match created {
        Err(vigil_store::StoreError::Conflict) => {
            return Err(email_taken(&app, caller.account.id, &req.email).await)
        }
        other => other?,
    };
    let detail = serde_json::json!({"role": role.as_str()});
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "user.create",
        Some(&user.email),
        Some(detail),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(user_view(&user))))
}

/// Emails are unique across the server (they log in). Whether an address
/// belongs to a user of *another* account is not this caller's business:
/// only a user of the caller's own account is named as such.
async fn email_taken(app: &App, account: vigil_store::AccountId, email: &str) -> ApiError {
    let ours = app.store.users(account).await.is_ok_and(|users| {
        users
            .iter()
            .any(|u| u.email.eq_ignore_ascii_case(email.trim()))
    });
    if ours {
        ApiError::Conflict(format!("{email:?} is already a user of this account"))
    } else {
        ApiError::Invalid(format!(
            "{email:?} cannot be used for a new user; choose another address"
        ))
    }
}

pub(crate) async fn tokens(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<axum::Json<Vec<TokenView>>, ApiError> {
    let tokens = app.store.api_tokens(caller.account.id).await?;
    // Viewers see their own tokens only.
    let visible = tokens
        .iter()
        .filter(|t| caller.user.role != Role::Viewer || t.user_id == caller.user.id)
        .map(|t| token_view(t, None))
        .collect();
    Ok(axum::Json(visible))
}

pub(crate) async fn create_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Json(req): Json<NewToken>,
) -> Result<(StatusCode, axum::Json<TokenView>), ApiError> {
    // Any user may create tokens for themselves, with their own role.
    let (token, plaintext) = app
        .store
        .create_api_token(caller.account.id, caller.user.id, &req.name)
        .await?;
    let detail = serde_json::json!({"id": token.id.to_string()});
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "token.create",
        Some(&token.name),
        Some(detail),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        axum::Json(token_view(&token, Some(plaintext))),
    ))
}

pub(crate) async fn revoke_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: ApiTokenId = ids::parse("token", &id)?;
    if caller.user.role == Role::Viewer {
        let own = app
            .store
            .api_tokens(caller.account.id)
            .await?
            .iter()
            .any(|t| t.id == id && t.user_id == caller.user.id);
        if !own {
            return Err(ApiError::Forbidden(
                "viewers may only revoke their own tokens".into(),
            ));
        }
    }
    app.store.revoke_token(caller.account.id, id).await?;
    crate::audit::record(
        &app,
        caller.account.id,
        &caller,
        "token.revoke",
        Some(&id.to_string()),
        None,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
