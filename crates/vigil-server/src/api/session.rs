//! Logging in, who am I, users and API tokens.

use super::auth::Caller;
use super::error::ApiError;
use super::extract::Json;
use super::ids;
use crate::app::App;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::sync::Arc;
use vigil_proto::api::{
    AccountView, LoginRequest, LoginResponse, Me, NewToken, NewUser, ServerInfo, TokenView,
    UserView,
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

pub(crate) async fn login(
    State(app): State<Arc<App>>,
    Json(req): Json<LoginRequest>,
) -> Result<(StatusCode, axum::Json<LoginResponse>), ApiError> {
    let user = app
        .store
        .verify_login(&req.email, &req.password)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let account = app.store.account(user.account_id).await?;
    let name = req.token_name.as_deref().unwrap_or("login");
    let (_, token) = app
        .store
        .create_api_token(user.account_id, user.id, name)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(LoginResponse {
            token,
            user: user_view(&user),
            account: account_view(&account),
        }),
    ))
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
    let user = app
        .store
        .create_user(caller.account.id, &req.email, &req.password, role)
        .await
        .map_err(|e| match e {
            vigil_store::StoreError::Conflict => ApiError::Conflict(format!(
                "a user with the email {:?} already exists",
                req.email
            )),
            e => e.into(),
        })?;
    Ok((StatusCode::CREATED, axum::Json(user_view(&user))))
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
    Ok(StatusCode::NO_CONTENT)
}
