//! How request errors are answered: a status and `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil_proto::api::ErrorBody;
use vigil_store::StoreError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Unreadable request: bad JSON, wrong content type, malformed id.
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body is too large")]
    TooLarge,
    /// Missing or wrong credentials.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// A destination (URL, host, range) the operator's network policy
    /// refuses; the message names the rule.
    #[error("{0}")]
    Refused(String),
    /// Missing, or another tenant's (indistinguishable on purpose).
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but refused by the rules (port out of range, interval not offered, ...).
    #[error("{0}")]
    Invalid(String),
    /// Another server this one called (a peer) failed or could not be reached.
    #[error("{0}")]
    Upstream(String),
    /// Too much work of this kind at once (password checks): retry soon.
    #[error("{0}")]
    Busy(String),
    /// Too many requests of this kind from this account lately: retry
    /// after `retry_after` seconds (429, with `Retry-After`).
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// Our fault; the details go to the log, not to the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Refused(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A destination the operator's network policy refuses: 403, naming the rule.
impl From<vigil_core::netpolicy::Refusal> for ApiError {
    fn from(r: vigil_core::netpolicy::Refusal) -> Self {
        ApiError::Refused(r.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict => {
                ApiError::Conflict("a record with the same unique value already exists".into())
            }
            StoreError::Invalid(msg) => ApiError::Invalid(msg),
            StoreError::Busy => ApiError::Busy(e.to_string()),
            e @ (StoreError::Database(_)
            | StoreError::Migrate(_)
            | StoreError::SchemaTooNew { .. }
            | StoreError::InUse { .. }
            | StoreError::File { .. }) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let retry = match &self {
            ApiError::Busy(_) => Some(1),
            ApiError::RateLimited { retry_after, .. } => Some((*retry_after).max(1)),
            _ => None,
        }
        .map(|secs| {
            [(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            )]
        });
        (
            status,
            retry,
            axum::Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response()
    }
}
