//! The agent's side of the agent API: enroll, heartbeat, upload results.

use crate::pinning;
use serde::{de::DeserializeOwned, Serialize};
use std::time::Duration;
use vigil_proto::agent::{
    EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, MovedNotice, NetworkUpload,
    ResultUpload, UploadAck, ENROLL_PATH, HEARTBEAT_PATH, MOVED_PATH, NETWORK_PATH, RESULTS_PATH,
};
use vigil_proto::pin::CertPin;

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an agent build's download may take (tens of MB on a slow link).
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or did not answer in time: try later.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server refused our credential: re-enroll.
    #[error("server rejected the agent's credential (removed or re-enrolled elsewhere?)")]
    Unauthorized,
    /// The server refused an enrollment token or deployment key (unknown,
    /// used, expired, revoked): its own words.
    #[error("the server refused the enrollment: {0}")]
    EnrollmentRefused(String),
    /// The server refused the request itself (a bug or a version mismatch).
    #[error("server refused the request ({status}): {body}")]
    Rejected { status: u16, body: String },
    /// Any other server error (5xx): try later.
    #[error("server error ({status}): {body}")]
    Server { status: u16, body: String },
    #[error("invalid server URL {0:?}")]
    Url(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl ClientError {
    /// Worth retrying later with the same request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable(_) | ClientError::Server { .. }
        )
    }

    /// Another replica of the server may do better: this one is away,
    /// failing, or presents another certificate than the pinned one (which
    /// is refused all the same). A refusal of the request itself would be
    /// the same from every replica.
    pub fn fails_over(&self) -> bool {
        self.is_transient() || matches!(self, ClientError::Tls(_))
    }
}

/// A connection to one server, trusting only its pinned certificate.
#[derive(Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl ServerClient {
    /// `base` is the server's agent URL, e.g. `https://vigil.example:8443`.
    pub fn new(base: &str, pin: CertPin) -> Result<Self, ClientError> {
        let url = reqwest::Url::parse(base).map_err(|_| ClientError::Url(base.into()))?;
        if url.scheme() != "https" {
            return Err(ClientError::Url(format!(
                "{base} (agents talk to the server over https only)"
            )));
        }
        let tls = pinning::client_config(pin).map_err(|e| ClientError::Tls(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(ServerClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth: None,
        })
    }

    /// The same connection, authenticated as an enrolled agent.
    pub fn authenticated(mut self, agent_id: &str, credential: &str) -> Self {
        self.auth = Some(format!("Bearer {agent_id}:{credential}"));
        self
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        self.post(ENROLL_PATH, req).await
    }

    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatResponse, ClientError> {
        self.post(HEARTBEAT_PATH, hb).await
    }

    pub async fn upload(&self, result: &ResultUpload) -> Result<UploadAck, ClientError> {
        self.post(RESULTS_PATH, result).await
    }

    /// Delivers a finished local-network sweep.
    pub async fn network(&self, sweep: &NetworkUpload) -> Result<UploadAck, ClientError> {
        self.post(NETWORK_PATH, sweep).await
    }

    /// Tells this (the old) server that the agent moved to another one.
    pub async fn moved(&self, notice: &MovedNotice) -> Result<(), ClientError> {
        self.post::<_, serde_json::Value>(MOVED_PATH, notice)
            .await
            .map(|_| ())
    }

    /// Downloads the agent API file at `path` (on this server: the path
    /// must be one of the agent API's) into `dest`, at most `max` bytes.
    /// Returns the lowercase hex SHA-256 and the size of what was written.
    pub async fn download(
        &self,
        path: &str,
        dest: &std::path::Path,
        max: u64,
    ) -> Result<(String, u64), ClientError> {
        use tokio::io::AsyncWriteExt;
        if !path.starts_with(vigil_proto::agent::PREFIX)
            || path.contains("..")
            || path.contains("//")
        {
            return Err(ClientError::Url(format!("{path} (not an agent API path)")));
        }
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(DOWNLOAD_TIMEOUT);
        if let Some(auth) = &self.auth {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable(describe(&e));
        let mut resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        if !status.is_success() {
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(500)
                .collect();
            return Err(ClientError::Server {
                status: status.as_u16(),
                body,
            });
        }
        let io = |e: std::io::Error| {
            ClientError::Unreachable(format!("writing {}: {e}", dest.display()))
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            size += chunk.len() as u64;
            if size > max {
                return Err(ClientError::Rejected {
                    status: status.as_u16(),
                    body: format!("the download is larger than {max} bytes"),
                });
            }
            digest.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        let sha256 = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((sha256, size))
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(auth) = &self.auth {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        let resp = req.send().await.map_err(|e| {
            if is_tls_rejection(&e) {
                ClientError::Tls(describe(&e))
            } else {
                ClientError::Unreachable(describe(&e))
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json()
                .await
                .map_err(|e| ClientError::Unreachable(describe(&e)));
        }
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        let code = status.as_u16();
        Err(match code {
            // At enrollment a refusal is about the token, not a credential.
            401 | 403 if path == ENROLL_PATH => {
                ClientError::EnrollmentRefused(server_message(&body))
            }
            401 | 403 => ClientError::Unauthorized,
            408 | 429 => ClientError::Server { status: code, body },
            400..=499 => ClientError::Rejected { status: code, body },
            _ => ClientError::Server { status: code, body },
        })
    }
}

/// The `error` of a JSON error body, or the body itself.
fn server_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

/// The full error chain: reqwest's top-level message alone hides the cause.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A certificate that does not match the pin is not an outage.
fn is_tls_rejection(e: &reqwest::Error) -> bool {
    describe(e).contains("does not match the pinned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_are_retried_and_which_fail_over() {
        let body = || String::from("x");
        let cases: &[(ClientError, bool, bool)] = &[
            (ClientError::Unreachable("refused".into()), true, true),
            (
                ClientError::Server {
                    status: 503,
                    body: body(),
                },
                true,
                true,
            ),
            (
                ClientError::Tls("does not match the pinned".into()),
                false,
                true,
            ),
            (ClientError::Unauthorized, false, false),
            (
                ClientError::Rejected {
                    status: 400,
                    body: body(),
                },
                false,
                false,
            ),
            (ClientError::Url("x".into()), false, false),
        ];
        for (e, transient, fails_over) in cases {
            assert_eq!(e.is_transient(), *transient, "{e}");
            assert_eq!(e.fails_over(), *fails_over, "{e}");
        }
    }
}
