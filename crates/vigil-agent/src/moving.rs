//! Enrolling, and moving to another server.
//!
//! A move starts with a [`MoveInstruction`] in a heartbeat answer of the
//! agent's current server: it arrives only over the pinned, authenticated
//! channel to that server, so no one else can move an agent (the identify
//! listener only ever answers, it takes no instructions). The agent then
//! enrolls with the new server and replaces `identity.json` only after that
//! enrollment succeeded (atomically: a rename), so a refused token, a wrong
//! pin or an unreachable server leave the agent as it was.

use crate::client::{ClientError, ServerClient};
use crate::identity::Identity;
use crate::AgentError;
use std::path::Path;
use vigil_proto::agent::{AgentFacts, EnrollRequest, MoveInstruction};
use vigil_proto::pin::CertPin;

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("invalid pin: {0}")]
    Pin(#[source] vigil_proto::ProtoError),
    #[error("enrollment failed: {0}")]
    Client(#[from] ClientError),
    #[error("enrolled, but the identity could not be stored: {0}")]
    Save(#[source] AgentError),
}

impl EnrollError {
    /// Worth trying again later with the same token (the server was away).
    pub fn is_transient(&self) -> bool {
        matches!(self, EnrollError::Client(e) if e.is_transient())
    }
}

/// Enrolls with the server at `server_url` (pinned to `pin`) using a
/// single-use `token`, and stores the new identity in `state_dir`. The
/// stored identity changes only if the enrollment succeeded.
pub async fn enroll(
    state_dir: &Path,
    server_url: &str,
    pin: &str,
    token: &str,
    facts: AgentFacts,
) -> Result<Identity, EnrollError> {
    enroll_any(state_dir, &[server_url.to_string()], pin, token, facts).await
}

/// [`enroll`] with a replicated server: `server_urls` are its URLs,
/// preferred first, all presenting the certificate `pin` names. All are
/// checked first; then they are tried in order until one answers (a
/// replica that is away, failing or presents another certificate is
/// skipped). All are stored, with the replicas the server names.
pub async fn enroll_any(
    state_dir: &Path,
    server_urls: &[String],
    pin: &str,
    token: &str,
    facts: AgentFacts,
) -> Result<Identity, EnrollError> {
    let pin: CertPin = pin
        .parse()
        .map_err(|e: vigil_proto::pin::PinError| EnrollError::Pin(e.into()))?;
    let urls: Vec<String> = server_urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    let clients = urls
        .iter()
        .map(|u| ServerClient::new(u, pin))
        .collect::<Result<Vec<_>, _>>()?;
    let req = EnrollRequest {
        token: token.to_string(),
        facts,
    };
    let mut failed: Option<ClientError> = None;
    for (url, client) in urls.iter().zip(&clients) {
        let resp = match client.enroll(&req).await {
            Ok(resp) => resp,
            Err(e) if e.fails_over() => {
                tracing::warn!(server = %url, error = %e, "enrollment: trying the next server URL");
                // A certificate that does not match says more than an outage.
                if !matches!(failed, Some(ClientError::Tls(_))) {
                    failed = Some(e);
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let identity = Identity {
            server_url: urls[0].clone(),
            fallback_urls: urls[1..].to_vec(),
            // Checked and sorted as a heartbeat's announcement is.
            announced_urls: crate::failover::announced(&resp.server_urls),
            pin: pin.to_string(),
            agent_id: resp.agent_id,
            credential: resp.credential,
            server_id: resp.server_id,
        };
        identity.save(state_dir).map_err(EnrollError::Save)?;
        return Ok(identity);
    }
    Err(failed
        .unwrap_or_else(|| ClientError::Url("no server URL given".into()))
        .into())
}

/// Follows a move instruction of the current server: enrolls with the new
/// server and makes it this agent's server. Returns the new identity.
pub async fn switch(
    state_dir: &Path,
    to: &MoveInstruction,
    facts: AgentFacts,
) -> Result<Identity, EnrollError> {
    enroll(
        state_dir,
        &to.server_url,
        &to.pin,
        &to.enrollment_token,
        facts,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeServer, Script};
    use vigil_proto::agent::EnrollResponse;

    fn facts() -> AgentFacts {
        AgentFacts {
            hostname: "web1".into(),
            os: "test".into(),
            version: "0".into(),
        }
    }

    fn old_identity() -> Identity {
        Identity {
            server_url: "https://127.0.0.1:1".into(),
            fallback_urls: Vec::new(),
            announced_urls: Vec::new(),
            pin: format!("sha256:{}", "ab".repeat(32)),
            agent_id: "old-agent".into(),
            credential: "vga_old".into(),
            server_id: "server-a".into(),
        }
    }

    fn instruction(server: &FakeServer, token: &str) -> MoveInstruction {
        MoveInstruction {
            server_url: server.url.clone(),
            pin: server.pin.to_string(),
            enrollment_token: token.into(),
        }
    }

    #[tokio::test]
    async fn a_failed_enrollment_leaves_the_old_identity_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        old_identity().save(dir.path()).expect("save");
        // The new server refuses the token (no enrollment scripted).
        let refusing = FakeServer::start(Script::default()).await;
        let err = switch(dir.path(), &instruction(&refusing, "vge_bad"), facts())
            .await
            .expect_err("refused token");
        assert!(
            matches!(err, EnrollError::Client(ClientError::EnrollmentRefused(_))),
            "{err}"
        );
        assert!(!err.is_transient());
        assert_eq!(refusing.log.borrow().enrolls.len(), 1);
        assert_eq!(
            Identity::load(dir.path()).expect("load"),
            Some(old_identity())
        );

        // A certificate that does not match the pin: never enrolled.
        let mut wrong_pin = instruction(&refusing, "vge_x");
        wrong_pin.pin = format!("sha256:{}", "cd".repeat(32));
        let err = switch(dir.path(), &wrong_pin, facts())
            .await
            .expect_err("pin");
        assert!(!err.is_transient(), "{err}");
        assert_eq!(refusing.log.borrow().enrolls.len(), 1);

        // A malformed pin or URL, and a server that is not there.
        let mut bad = instruction(&refusing, "vge_x");
        bad.pin = "sha256:nope".into();
        assert!(matches!(
            switch(dir.path(), &bad, facts()).await,
            Err(EnrollError::Pin(_))
        ));
        let mut plain = instruction(&refusing, "vge_x");
        plain.server_url = plain.server_url.replace("https://", "http://");
        assert!(switch(dir.path(), &plain, facts()).await.is_err());
        let gone = MoveInstruction {
            server_url: "https://127.0.0.1:1".into(),
            ..instruction(&refusing, "vge_x")
        };
        let err = switch(dir.path(), &gone, facts()).await.expect_err("gone");
        assert!(err.is_transient(), "{err}");
        assert_eq!(
            Identity::load(dir.path()).expect("load"),
            Some(old_identity())
        );
    }

    #[tokio::test]
    async fn a_successful_enrollment_replaces_the_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        old_identity().save(dir.path()).expect("save");
        let accepting = FakeServer::start(Script {
            enroll: Some(EnrollResponse {
                agent_id: "new-agent".into(),
                credential: "vga_new".into(),
                server_id: "server-b".into(),
                heartbeat_secs: 1,
                server_urls: Vec::new(),
            }),
            ..Script::default()
        })
        .await;
        let to = instruction(&accepting, "vge_good");
        let new = switch(dir.path(), &to, facts()).await.expect("switch");
        assert_eq!(new.server_id, "server-b");
        assert_eq!(new.server_url, accepting.url);
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(new));
        let log = accepting.log.borrow();
        assert_eq!(log.enrolls[0].token, "vge_good");
        assert_eq!(log.enrolls[0].facts, facts());
    }

    #[tokio::test]
    async fn a_replicated_server_is_enrolled_with_at_the_first_url_that_answers() {
        let cert = crate::testing::TestCert::new();
        let accepting = FakeServer::start_with(
            Script {
                enroll: Some(EnrollResponse {
                    agent_id: "agent".into(),
                    credential: "vga_x".into(),
                    server_id: "server".into(),
                    heartbeat_secs: 1,
                    server_urls: vec!["https://10.0.0.2:8443/".into(), "http://x".into()],
                }),
                ..Script::default()
            },
            &cert,
        )
        .await;
        let refusing = FakeServer::start_with(Script::default(), &cert).await;
        let impostor = FakeServer::start(Script::default()).await;
        let gone = "https://127.0.0.1:1".to_string();
        let pin = cert.pin().to_string();
        let dir = tempfile::tempdir().expect("tempdir");

        let urls = [gone.clone(), impostor.url.clone(), accepting.url.clone()];
        let id = enroll_any(dir.path(), &urls, &pin, "vge_1", facts())
            .await
            .expect("enrolled via the third URL");
        assert_eq!(id.server_url, gone, "the preferred URL stays first");
        assert_eq!(
            id.fallback_urls,
            [impostor.url.clone(), accepting.url.clone()]
        );
        assert_eq!(id.announced_urls, ["https://10.0.0.2:8443"]);
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(id));
        assert!(impostor.log.borrow().enrolls.is_empty());

        // A refused token is not offered to the next URL; a bad URL
        // anywhere in the list is refused before any is tried.
        let dir = tempfile::tempdir().expect("tempdir");
        let urls = [refusing.url.clone(), accepting.url.clone()];
        let err = enroll_any(dir.path(), &urls, &pin, "vge_2", facts())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, EnrollError::Client(ClientError::EnrollmentRefused(_))),
            "{err}"
        );
        let urls = [accepting.url.clone(), "http://127.0.0.1:1".into()];
        let err = enroll_any(dir.path(), &urls, &pin, "vge_3", facts())
            .await
            .expect_err("plain http");
        assert!(
            matches!(err, EnrollError::Client(ClientError::Url(_))),
            "{err}"
        );
        assert_eq!(accepting.log.borrow().enrolls.len(), 1);

        // Only an impostor and a server that is away: the certificate is
        // what the user must hear about.
        let urls = [gone, impostor.url.clone()];
        let err = enroll_any(dir.path(), &urls, &pin, "vge_4", facts())
            .await
            .expect_err("nobody");
        assert!(
            matches!(err, EnrollError::Client(ClientError::Tls(_))),
            "{err}"
        );
        assert_eq!(Identity::load(dir.path()).expect("load"), None);
    }
}
