//! How a console request fails: a redirect to the login page, or a short
//! HTML page with the status and what to do.

use super::layout;
use crate::http::error::ApiError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vigil_store::StoreError;

/// Every way a console request can fail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsoleError {
    /// No session cookie, or one whose session ended (`expired`): the
    /// browser is sent to the login page, and afterwards back to `next`.
    #[error("please log in")]
    LoginRequired { next: Option<String>, expired: bool },
    /// The account requires two-factor login and the user has none yet:
    /// the browser is sent to set it up.
    #[error("this account requires two-factor login; set it up first")]
    EnrolTwoFactor,
    /// A state-changing form without the session's CSRF token.
    #[error(
        "this form did not come from your current session (it may have expired): \
         reload the page and try again"
    )]
    Csrf,
    /// Logged in, but the role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Missing, or another tenant's (indistinguishable on purpose).
    #[error("this page does not exist, or belongs to another account")]
    NotFound,
    /// An unreadable request (malformed id, form body).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// Too much work of this kind at once (password checks): retry soon.
    #[error("{0}")]
    Busy(String),
    /// Our fault; the details go to the log, not to the browser.
    #[error("internal error; the server log has the details")]
    Internal(String),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::LoginRequired { .. } | ConsoleError::EnrolTwoFactor => {
                StatusCode::SEE_OTHER
            }
            ConsoleError::Csrf | ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

/// The REST API's rules (shared domain checks) answer in its error type.
impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => ConsoleError::LoginRequired {
                next: None,
                expired: false,
            },
            ApiError::Forbidden(m) | ApiError::Refused(m) => ConsoleError::Forbidden(m),
            ApiError::NotFound => ConsoleError::NotFound,
            ApiError::Conflict(m) => ConsoleError::Conflict(m),
            ApiError::BadRequest(m) | ApiError::Invalid(m) | ApiError::Upstream(m) => {
                ConsoleError::BadRequest(m)
            }
            ApiError::TooLarge | ApiError::RateLimited { .. } => {
                ConsoleError::BadRequest(e.to_string())
            }
            ApiError::Busy(m) => ConsoleError::Busy(m),
            ApiError::Internal(m) => ConsoleError::Internal(m),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::LoginRequired { next, expired } = &self {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(next) = next.as_deref().filter(|n| *n != "/") {
                query.push(("next", next));
            }
            if *expired {
                query.push(("expired", "1"));
            }
            let mut location = String::from("/login");
            if let Ok(q) = serde_urlencoded::to_string(&query) {
                if !q.is_empty() {
                    location = format!("/login?{q}");
                }
            }
            return match HeaderValue::from_str(&location) {
                Ok(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
                Err(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response(),
            };
        }
        if let ConsoleError::EnrolTwoFactor = &self {
            let to = HeaderValue::from_static(super::two_factor::PATH);
            return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
        }
        if let ConsoleError::Internal(detail) = &self {
            tracing::error!(error = %detail, "console request failed");
        }
        let status = self.status();
        let page = layout::bare(
            status.canonical_reason().unwrap_or("Error"),
            maud::html! {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                p role="alert" { (self.to_string()) }
                p { a href="/" { "Back to the dashboard" } }
            },
        );
        (status, page).into_response()
    }
}
