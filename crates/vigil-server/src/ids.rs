//! Ids in URL paths and queries: malformed is a 400 that names the kind of
//! id; an id of another tenant is a 404 later, like one that does not
//! exist.

use crate::http::error::ApiError;
use std::str::FromStr;

pub(crate) fn parse<T: FromStr>(kind: &str, text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid {kind} id {text:?}: expected a UUID")))
}
