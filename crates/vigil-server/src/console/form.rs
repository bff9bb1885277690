//! `application/x-www-form-urlencoded` bodies of console forms, read as
//! name/value pairs (checkbox groups repeat a name), and the extractor
//! every state-changing handler takes: a session whose CSRF token the
//! form carries.

use super::csrf;
use super::error::ConsoleError;
use super::session::Session;
use crate::app::App;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use std::sync::Arc;

/// A parsed form body.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Result<Form, ConsoleError> {
        let pairs = serde_urlencoded::from_bytes(body)
            .map_err(|e| ConsoleError::BadRequest(format!("unreadable form: {e}")))?;
        Ok(Form { pairs })
    }

    /// A page's query string (none is an empty form).
    pub(crate) fn query(raw: Option<String>) -> Result<Form, ConsoleError> {
        Form::parse(raw.unwrap_or_default().as_bytes())
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A POST from a logged-in session with a valid CSRF token; anything else
/// is refused before the handler runs (403, or the login page).
pub(crate) struct Post {
    pub session: Session,
    pub form: Form,
}

impl FromRequest<Arc<App>> for Post {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, app).await?;
        let req = Request::from_parts(parts, body);
        let body = Bytes::from_request(req, app)
            .await
            .map_err(|e| ConsoleError::BadRequest(e.body_text()))?;
        let form = Form::parse(&body)?;
        let token = form.get(csrf::FIELD).unwrap_or_default();
        if !csrf::verify(&app.console_key, session.secret(), token) {
            return Err(ConsoleError::Csrf);
        }
        Ok(Post { session, form })
    }
}

#[cfg(test)]
mod tests {
    use super::Form;

    #[test]
    fn repeated_names_and_escapes() {
        let f = Form::parse(b"target=agent_host&target=observed_address&hosts=a%20b&x=").unwrap();
        assert_eq!(f.all("target"), ["agent_host", "observed_address"]);
        assert_eq!(f.get("hosts"), Some("a b"));
        assert_eq!(f.get("x"), Some(""));
        assert_eq!(f.get("missing"), None);
    }
}
