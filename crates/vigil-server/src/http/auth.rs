//! Who is calling the REST API, and what their role allows.

use super::error::ApiError;
use crate::app::App;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;
use vigil_store::{Account, Role, User};

/// An authenticated user (API token in `Authorization: Bearer vgl_…`) and
/// the account every query of the request is scoped to.
pub(crate) struct Caller {
    pub user: User,
    pub account: Account,
    /// The client's address (for the audit log).
    pub from: Option<std::net::IpAddr>,
}

impl Caller {
    /// Admins and owners change things; viewers only read.
    pub(crate) fn can_write(&self) -> Result<(), ApiError> {
        match self.user.role {
            Role::Owner | Role::Admin => Ok(()),
            Role::Viewer => Err(ApiError::Forbidden(
                "viewers may only read; ask an admin or owner of the account".into(),
            )),
        }
    }

    /// Only owners manage owners.
    pub(crate) fn can_grant(&self, role: Role) -> Result<(), ApiError> {
        self.can_write()?;
        if role == Role::Owner && self.user.role != Role::Owner {
            return Err(ApiError::Forbidden("only owners may create owners".into()));
        }
        Ok(())
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized)?;
        let (user, account) = app
            .store
            .authenticate_token(token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let account = app.store.account(account).await?;
        Ok(Caller {
            user,
            account,
            from: crate::login::client_address(&parts.extensions),
        })
    }
}

/// The credentials of `Authorization: Bearer …` (the scheme is
/// case-insensitive, RFC 9110 §11.1).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}
