//! The sweep's side of the identify protocol ([`vigil_proto::identify`]):
//! challenge an agent port with a fresh nonce, read the reply, and check
//! its MAC with the key of the agent it names.
//!
//! The keys are those of the assessed account's agents only
//! ([`AgentKeys::of_account`]): an agent of another tenant of this server
//! proves nothing about this tenant's machines. The verdict (managed here,
//! forged, …) is `vigil_core::compliance`'s: this module only reports the
//! [`Proof`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_core::compliance::{Identified, Proof};
use vigil_proto::identify::{
    IdentifyKey, IdentifyReply, Nonce, Request, MAX_REPLY_BYTES, NONCE_BYTES,
};
use vigil_store::{AccountId, AgentIdentifyKey, Store, StoreError};

/// Why an endpoint gave no identify reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentifyError {
    #[error("no answer in time")]
    Timeout,
    #[error("connection failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("{0}")]
    NotAnAgent(#[source] vigil_proto::ProtoError),
}

/// A fresh challenge from the thread's CSPRNG.
pub(crate) fn new_nonce() -> Nonce {
    Nonce::from_bytes(rand::random::<[u8; NONCE_BYTES]>())
}

/// Asks `addr` who it is, challenging it with `nonce`.
pub(crate) async fn ask(
    addr: SocketAddr,
    nonce: &Nonce,
    timeout: Duration,
) -> Result<IdentifyReply, IdentifyError> {
    let request = Request::V2(*nonce).to_line();
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        // A service that is not an agent may talk first and hang up, so
        // neither a failed write nor a reset after some bytes is final:
        // whatever arrived is judged by its content.
        let _ = stream.write_all(&request).await;
        let mut reply = Vec::new();
        let limit = MAX_REPLY_BYTES as u64 + 1;
        match (&mut stream).take(limit).read_to_end(&mut reply).await {
            Err(e) if reply.is_empty() => Err(e),
            _ => Ok(reply),
        }
    };
    let reply = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| IdentifyError::Timeout)?
        .map_err(IdentifyError::Io)?;
    IdentifyReply::parse(&reply).map_err(IdentifyError::NotAnAgent)
}

/// The identify keys of one account's agents, by agent id.
#[derive(Debug, Default)]
pub(crate) struct AgentKeys {
    keys: HashMap<String, (IdentifyKey, bool)>,
}

impl AgentKeys {
    /// The keys of every agent of `account` (removed ones marked), read once
    /// before a sweep.
    pub(crate) async fn of_account(store: &Store, account: AccountId) -> Result<Self, StoreError> {
        Ok(Self::from_rows(store.agent_identify_keys(account).await?))
    }

    fn from_rows(rows: Vec<AgentIdentifyKey>) -> Self {
        let keys = rows
            .into_iter()
            .filter_map(|r| {
                let key = IdentifyKey::from_credential_digest_hex(&r.credential_digest)?;
                Some((r.agent_id, (key, r.removed)))
            })
            .collect();
        AgentKeys { keys }
    }

    /// What `reply` to the challenge `nonce` proves at the server
    /// `our_server_id`. Replies naming another server are not checked
    /// (their server alone could).
    pub(crate) fn proof(&self, reply: &IdentifyReply, nonce: &Nonce, our_server_id: &str) -> Proof {
        if reply.server_id != our_server_id {
            return Proof::Unproven;
        }
        match self.keys.get(&reply.agent_id) {
            Some((key, removed)) if key.verify(nonce, reply) => {
                if *removed {
                    Proof::RemovedAgent
                } else {
                    Proof::Valid
                }
            }
            _ => Proof::Unproven,
        }
    }

    /// `reply` as the classification takes it, with its proof.
    pub(crate) fn identified(
        &self,
        reply: IdentifyReply,
        nonce: &Nonce,
        our_server_id: &str,
    ) -> Identified {
        let proof = self.proof(&reply, nonce, our_server_id);
        Identified {
            agent_id: reply.agent_id,
            server_id: reply.server_id,
            version: reply.version,
            proof,
            hostname: reply.hostname,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio::sync::watch;
    use vigil_proto::identify::Responder;

    const OURS: &str = "server-1";
    /// A credential as the store issues them (base64url of bytes 0..32);
    /// its stored digest is hex SHA-256 of those bytes.
    const CREDENTIAL: &str = "vga_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const DIGEST: &str = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd";

    fn keys(removed: bool) -> AgentKeys {
        AgentKeys::from_rows(vec![
            AgentIdentifyKey {
                agent_id: "agent-1".into(),
                credential_digest: DIGEST.into(),
                removed,
            },
            AgentIdentifyKey {
                agent_id: "agent-bad-row".into(),
                credential_digest: "not hex".into(),
                removed: false,
            },
        ])
    }

    /// A real identify listener answering as `me`.
    async fn agent(me: Responder) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_set, responder) = watch::channel(me);
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            let _keep = _set;
            vigil_agent::identify::serve(listener, responder, shutdown).await
        });
        (addr, stop)
    }

    #[test]
    fn the_test_digest_is_the_credentials() {
        assert_eq!(
            IdentifyKey::from_credential_digest_hex(DIGEST),
            IdentifyKey::from_credential(CREDENTIAL)
        );
    }

    #[tokio::test]
    async fn a_real_agent_proves_itself_and_a_replay_does_not() {
        let me = Responder::new("agent-1", OURS, "0.1.0", CREDENTIAL);
        let (addr, _stop) = agent(me.clone()).await;
        let timeout = Duration::from_secs(2);

        let a = new_nonce();
        let reply = ask(addr, &a, timeout).await.expect("identify");
        assert!(reply.mac.is_some(), "{reply:?}");
        assert_eq!(keys(false).proof(&reply, &a, OURS), Proof::Valid);
        assert_eq!(keys(true).proof(&reply, &a, OURS), Proof::RemovedAgent);
        // The same reply replayed to another challenge proves nothing.
        let b = new_nonce();
        assert_ne!(a, b);
        assert_eq!(keys(false).proof(&reply, &b, OURS), Proof::Unproven);
        // Nor does it for an account without that agent (another tenant).
        assert_eq!(
            AgentKeys::default().proof(&reply, &a, OURS),
            Proof::Unproven
        );
        // A reply without its MAC (version 1's format) proves nothing.
        let old = IdentifyReply {
            mac: None,
            ..reply.clone()
        };
        assert_eq!(keys(false).proof(&old, &a, OURS), Proof::Unproven);
        // A bad key row in the store matches nothing.
        let other = IdentifyReply {
            agent_id: "agent-bad-row".into(),
            ..reply.clone()
        };
        assert_eq!(keys(false).proof(&other, &a, OURS), Proof::Unproven);

        // Another server's agent is never checked here.
        let theirs = Responder::new("agent-1", "server-2", "0.1.0", CREDENTIAL);
        let (addr, _stop2) = agent(theirs).await;
        let reply = ask(addr, &a, timeout).await.expect("identify");
        let id = keys(false).identified(reply, &a, OURS);
        assert_eq!(
            (id.server_id.as_str(), id.proof),
            ("server-2", Proof::Unproven)
        );
    }

    #[tokio::test]
    async fn a_non_agent_port_is_not_an_agent() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                // Like sshd: greet, read the peer's line, hang up.
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
                let mut line = [0u8; 64];
                let _ = s.read(&mut line).await;
            }
        });
        assert!(matches!(
            ask(addr, &new_nonce(), Duration::from_secs(2)).await,
            Err(IdentifyError::NotAnAgent(_))
        ));
    }
}
