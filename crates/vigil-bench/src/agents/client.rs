//! A simulated agent's connection to the server.
//!
//! Normally the agent's own client ([`ServerClient`]). Loopback has a
//! limit, though: every connection from 127.0.0.1 to one server address
//! needs its own source port, and Linux hands out ~28,000 of them
//! (`net.ipv4.ip_local_port_range` 32768–60999 by default). Past
//! [`PER_SOURCE_ADDRESS`] agents on one server address, the next agents
//! connect from 127.0.0.2, 127.0.0.3, … (still loopback) through
//! [`BoundClient`]: the same HTTP and TLS stack, configured as
//! [`ServerClient`] is (pinned certificate, timeouts, user agent), plus the
//! source address, which `ServerClient` has no setting for. The server sees
//! the same requests either way.
//!
//! With `--reconnect` every agent uses a [`BoundClient`] that keeps no idle
//! connection: each request opens (and closes) its own TLS connection, so
//! the server holds only the connections in flight, not one per agent.

use serde::{de::DeserializeOwned, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use vigil_agent::client::{ClientError, ServerClient};
use vigil_proto::agent::{
    EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, ResultUpload, UploadAck,
    ENROLL_PATH, HEARTBEAT_PATH, RESULTS_PATH,
};
use vigil_proto::pin::CertPin;

/// Agents connecting from one source address to one server address (below
/// the ~28,000 ephemeral ports, with room for the set-up's connections).
pub const PER_SOURCE_ADDRESS: usize = 20_000;
/// As in `vigil_agent::client`.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The source address of the `k`th agent on one server address: `None`
/// (the kernel's choice, 127.0.0.1) for the first [`PER_SOURCE_ADDRESS`],
/// then 127.0.0.2, 127.0.0.3, …
pub fn source_address(k: usize) -> Option<Ipv4Addr> {
    let group = k / PER_SOURCE_ADDRESS;
    let last = u8::try_from(group + 1).ok()?;
    (group > 0).then_some(Ipv4Addr::new(127, 0, 0, last))
}

pub enum SimClient {
    Agent(ServerClient),
    Bound(BoundClient),
}

impl SimClient {
    pub fn new(base: &str, pin: CertPin, source: Option<Ipv4Addr>) -> anyhow::Result<SimClient> {
        Ok(match source {
            None => SimClient::Agent(ServerClient::new(base, pin)?),
            Some(addr) => SimClient::Bound(BoundClient::new(base, pin, Some(addr), true)?),
        })
    }

    /// A client whose connections come from `source`, an address of a
    /// test network's namespace (the fleet bench: the server sees each
    /// agent at its own address, which it then scans).
    pub fn from_test_address(
        base: &str,
        pin: CertPin,
        source: IpAddr,
    ) -> anyhow::Result<SimClient> {
        anyhow::ensure!(
            vigil_testnet::ALLOWED_RANGES
                .iter()
                .any(|r| r.contains(&source)),
            "source address {source} is not in a test network's ranges"
        );
        Ok(SimClient::Bound(BoundClient::with_source(
            base,
            pin,
            Some(source),
            true,
        )?))
    }

    /// A client that opens a new connection for every request.
    pub fn reconnecting(base: &str, pin: CertPin) -> anyhow::Result<SimClient> {
        Ok(SimClient::Bound(BoundClient::new(base, pin, None, false)?))
    }

    pub fn authenticated(self, agent_id: &str, credential: &str) -> SimClient {
        match self {
            SimClient::Agent(c) => SimClient::Agent(c.authenticated(agent_id, credential)),
            SimClient::Bound(mut c) => {
                c.auth = Some(format!("Bearer {agent_id}:{credential}"));
                SimClient::Bound(c)
            }
        }
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        match self {
            SimClient::Agent(c) => c.enroll(req).await,
            SimClient::Bound(c) => c.post(ENROLL_PATH, req).await,
        }
    }

    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatResponse, ClientError> {
        match self {
            SimClient::Agent(c) => c.heartbeat(hb).await,
            SimClient::Bound(c) => c.post(HEARTBEAT_PATH, hb).await,
        }
    }

    pub async fn upload(&self, result: &ResultUpload) -> Result<UploadAck, ClientError> {
        match self {
            SimClient::Agent(c) => c.upload(result).await,
            SimClient::Bound(c) => c.post(RESULTS_PATH, result).await,
        }
    }
}

/// [`ServerClient`]'s configuration and error mapping, from a given
/// loopback source address or without keeping connections.
pub struct BoundClient {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl BoundClient {
    fn new(
        base: &str,
        pin: CertPin,
        source: Option<Ipv4Addr>,
        keep_alive: bool,
    ) -> anyhow::Result<BoundClient> {
        if let Some(source) = source {
            anyhow::ensure!(
                source.is_loopback(),
                "source address {source} is not loopback"
            );
        }
        BoundClient::with_source(base, pin, source.map(IpAddr::V4), keep_alive)
    }

    fn with_source(
        base: &str,
        pin: CertPin,
        source: Option<IpAddr>,
        keep_alive: bool,
    ) -> anyhow::Result<BoundClient> {
        let tls = vigil_agent::pinning::client_config(pin)
            .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")))
            .local_address(source);
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        let http = builder.build()?;
        Ok(BoundClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth: None,
        })
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
            let msg = describe(&e);
            if msg.contains("does not match the pinned") {
                ClientError::Tls(msg)
            } else {
                ClientError::Unreachable(msg)
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
            401 | 403 => ClientError::Unauthorized,
            408 | 429 => ClientError::Server { status: code, body },
            400..=499 => ClientError::Rejected { status: code, body },
            _ => ClientError::Server { status: code, body },
        })
    }
}

/// The full error chain.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses() {
        assert_eq!(source_address(0), None);
        assert_eq!(source_address(PER_SOURCE_ADDRESS - 1), None);
        assert_eq!(
            source_address(PER_SOURCE_ADDRESS),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(
            source_address(2 * PER_SOURCE_ADDRESS + 5),
            Some(Ipv4Addr::new(127, 0, 0, 3))
        );
    }
}
