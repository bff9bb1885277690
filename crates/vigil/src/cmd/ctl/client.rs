//! One REST API call: a request, a JSON answer, and errors that say what to
//! do. A 4xx is the user's to fix (exit 2); an unreachable server, a 5xx or
//! an answer that is not from a Vigil server are failures (exit 1).

use crate::cmd::usage;
use anyhow::{anyhow, Result};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use vigil_proto::api::{ErrorBody, API_PREFIX};

/// What to run when the token is missing or refused.
pub const LOGIN_HINT: &str = "not logged in or token no longer valid; run `vigil ctl login`";

pub struct Client {
    http: reqwest::Client,
    /// The server URL as given, without a trailing slash.
    server: String,
    token: Option<String>,
}

impl Client {
    /// A client of the REST API at `server` (`http(s)://host:port`, optionally
    /// with the path prefix of a reverse proxy).
    pub fn new(server: &str, token: Option<String>) -> Result<Client> {
        let server = normalize_server(server)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("vigil-ctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow!("cannot set up the HTTP client: {e}"))?;
        Ok(Client {
            http,
            server,
            token,
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// GET, but a 404 is `None` (e.g. an agent without a policy).
    pub async fn get_optional(&self, path: &str) -> Result<Option<Value>> {
        let (status, body) = self.exchange(Method::GET, path, None).await?;
        if status == StatusCode::NOT_FOUND && is_error_body(&body) {
            return Ok(None);
        }
        self.answer(path, status, &body).map(Some)
    }

    /// GET of a non-JSON answer (a CSV export): the body as is.
    pub async fn get_raw(&self, path: &str) -> Result<Vec<u8>> {
        let (status, body) = self.exchange(Method::GET, path, None).await?;
        if status.is_success() {
            return Ok(body);
        }
        Err(self
            .answer(path, status, &body)
            .err()
            .unwrap_or_else(|| anyhow!("{API_PREFIX}{path} answered {status}")))
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> Result<Value> {
        self.call(Method::POST, path, Some(to_json(body)?)).await
    }

    pub async fn put(&self, path: &str, body: &impl Serialize) -> Result<Value> {
        self.call(Method::PUT, path, Some(to_json(body)?)).await
    }

    pub async fn patch(&self, path: &str, body: &impl Serialize) -> Result<Value> {
        self.call(Method::PATCH, path, Some(to_json(body)?)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    /// An empty-bodied POST (actions like "send a test notification").
    pub async fn post_empty(&self, path: &str) -> Result<Value> {
        self.call(Method::POST, path, None).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, bytes) = self.exchange(method, path, body).await?;
        self.answer(path, status, &bytes)
    }

    /// Sends the request; only transport failures are errors here.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let url = format!("{}{API_PREFIX}{path}", self.server);
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let unreachable = |e: reqwest::Error| {
            anyhow!(
                "cannot reach the Vigil server at {}: {}",
                self.server,
                root_cause(&e)
            )
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        Ok((status, bytes.to_vec()))
    }

    /// The JSON of a success (`null` for an empty one), or the error to report.
    fn answer(&self, path: &str, status: StatusCode, body: &[u8]) -> Result<Value> {
        if status.is_success() {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(body).map_err(|_| {
                anyhow!(
                    "{}{API_PREFIX}{path} did not answer JSON: is {} the REST API of a Vigil server?",
                    self.server,
                    self.server
                )
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(body).map(|b| b.error);
        Err(match (status, message) {
            (StatusCode::UNAUTHORIZED, Ok(_)) if self.token.is_none() => {
                usage("wrong email or password")
            }
            (StatusCode::UNAUTHORIZED, Ok(_)) => usage(LOGIN_HINT),
            (StatusCode::NOT_FOUND, Ok(message)) => usage(not_found(path, &message)),
            (s, Ok(message)) if s.is_client_error() => usage(message),
            (s, Ok(message)) => anyhow!("the Vigil server at {} failed ({s}): {message}", self.server),
            (s, Err(_)) => anyhow!(
                "{} answered {s} without a Vigil error message: is it the REST API of a Vigil server?",
                self.server
            ),
        })
    }
}

/// Decodes an answer into one of the API's types.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| anyhow!("unexpected answer from the server (another Vigil version?): {e}"))
}

fn to_json(body: &impl Serialize) -> Result<Value> {
    serde_json::to_value(body).map_err(|e| anyhow!("cannot encode the request: {e}"))
}

fn is_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorBody>(body).is_ok()
}

/// Checks the server URL and drops a trailing slash.
pub fn normalize_server(server: &str) -> Result<String> {
    let url = url::Url::parse(server.trim()).map_err(|e| {
        usage(format!(
            "--server {server:?}: {e} (expected e.g. http://127.0.0.1:8080)"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(usage(format!(
            "--server {server:?}: expected an http:// or https:// URL, e.g. http://127.0.0.1:8080"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage(format!(
            "--server {server:?}: give the server's base URL, without ?query or #fragment"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The server's plain "not found" for people: which kind of thing, by the
/// path asked for (another tenant's ids look the same as missing ones, on
/// purpose). Any other message (an unknown endpoint) is the server's.
fn not_found(path: &str, message: &str) -> String {
    let route = path.split('?').next().unwrap_or(path);
    let mut parts = route.trim_start_matches('/').split('/');
    let collection = parts.next().unwrap_or("");
    let id = parts.next().filter(|id| !id.is_empty());
    let kind = match collection {
        "agents" => "agent",
        "deployment-keys" => "deployment key",
        "contacts" => "contact",
        "rules" => "rule",
        "tokens" => "token",
        "users" => "user",
        _ => "",
    };
    // A device is asked for under its agent: either may be missing.
    let device = match (parts.next(), parts.next()) {
        (Some("devices"), Some(d)) if kind == "agent" && !d.is_empty() => Some(d),
        _ => None,
    };
    match (message, kind, id, device) {
        ("not found", "", _, _) => format!("{API_PREFIX}{path} was not found on the server"),
        ("not found", _, Some(id), Some(device)) => {
            format!("no device {device} of agent {id} in this account")
        }
        ("not found", _, Some(id), None) => format!("no {kind} {id} in this account"),
        // A creation that names another record (a rule's contact or agent).
        ("not found", _, None, _) => {
            format!("a {kind} refers to a contact or agent that is not in this account")
        }
        (other, _, _, _) => format!("{other} ({API_PREFIX}{path})"),
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which says
/// more than reqwest's "error sending request for url".
fn root_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_checked_and_normalized() {
        let ok: &[(&str, &str)] = &[
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("https://vigil.example/", "https://vigil.example"),
            ("https://example.org/vigil/", "https://example.org/vigil"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_server(input).unwrap(), *want, "{input}");
        }
        for bad in ["127.0.0.1:8080", "ftp://x", "not a url", "http://x/?a=1"] {
            let err = normalize_server(bad).unwrap_err();
            assert!(
                err.downcast_ref::<crate::cmd::UsageError>().is_some(),
                "{bad}"
            );
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn not_found_names_the_kind_of_thing() {
        let id = "0b7c6c1e-0000-4000-8000-000000000000";
        let cases: &[(String, String)] = &[
            (
                format!("/agents/{id}"),
                format!("no agent {id} in this account"),
            ),
            (
                format!("/agents/{id}/policy"),
                format!("no agent {id} in this account"),
            ),
            (
                format!("/agents/{id}/results?limit=3"),
                format!("no agent {id} in this account"),
            ),
            (
                format!("/contacts/{id}/test"),
                format!("no contact {id} in this account"),
            ),
            (
                format!("/rules/{id}"),
                format!("no rule {id} in this account"),
            ),
            (
                format!("/agents/{id}/devices/d-1/history?limit=2"),
                format!("no device d-1 of agent {id} in this account"),
            ),
            (
                format!("/agents/{id}/devices?new=true"),
                format!("no agent {id} in this account"),
            ),
            (
                "/bogus".into(),
                "/api/v1/bogus was not found on the server".into(),
            ),
            (
                "/rules".into(),
                "a rule refers to a contact or agent that is not in this account".into(),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(&not_found(path, "not found"), want);
        }
        assert_eq!(
            not_found(&format!("/agents/{id}/scan"), "no such API endpoint"),
            format!("no such API endpoint (/api/v1/agents/{id}/scan)")
        );
    }
}
