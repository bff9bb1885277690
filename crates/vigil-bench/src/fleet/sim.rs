//! The fleet's simulated agents, in the target namespace: each enrolls
//! from its own address (which the server records as its observed
//! address) and heartbeats from it until the bench ends. They get no
//! tasks: their policies name only the observed address, which the server
//! scans itself.

use crate::agents::client::SimClient;
use anyhow::{Context, Result};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use vigil_proto::agent::{AgentFacts, EnrollRequest, Heartbeat};
use vigil_proto::pin::CertPin;

/// Enrollments and heartbeats in flight at once.
const IN_FLIGHT: usize = 32;

/// What the coordinator hands over once the servers run.
pub struct Orders {
    /// Agent `i` talks to `urls[i % len]`.
    pub urls: Vec<String>,
    pub pin: String,
    /// (source address, enrollment token) per agent, in index order.
    pub agents: Vec<(IpAddr, String)>,
    pub heartbeat: Duration,
}

struct Agent {
    client: SimClient,
    facts: AgentFacts,
}

/// Waits for the orders, enrolls every agent, answers with their
/// (index, id), then heartbeats until `stop`.
pub fn run(
    orders: mpsc::Receiver<Orders>,
    ids: mpsc::Sender<Result<Vec<(usize, String)>>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let Ok(orders) = orders.recv() else {
        return Ok(()); // the coordinator failed before the agents' turn
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let agents = match enroll(&orders).await {
            Ok(a) => a,
            Err(e) => {
                let _ = ids.send(Err(anyhow::anyhow!("{e:#}")));
                return Err(e);
            }
        };
        let _ = ids.send(Ok(agents
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (i, id.clone()))
            .collect()));
        let agents: Arc<Vec<Agent>> = Arc::new(agents.into_iter().map(|(_, a)| a).collect());
        let stopped = || stop.load(Ordering::Relaxed);
        while !stopped() {
            let next = tokio::time::Instant::now() + orders.heartbeat;
            heartbeat_all(&agents).await;
            // Looks at the flag every second while waiting.
            while !stopped() && tokio::time::Instant::now() < next {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok(())
    })
}

async fn enroll(orders: &Orders) -> Result<Vec<(String, Agent)>> {
    let pin: CertPin = orders
        .pin
        .parse()
        .map_err(|e| anyhow::anyhow!("server pin: {e}"))?;
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set = JoinSet::new();
    for (index, (addr, token)) in orders.agents.iter().enumerate() {
        let url = &orders.urls[index % orders.urls.len()];
        let client = SimClient::from_test_address(url, pin, *addr)?;
        let (gate, token) = (gate.clone(), token.clone());
        let addr = *addr;
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let facts = AgentFacts {
                hostname: format!("fleet-{index:05}"),
                os: "vigil-bench".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            };
            let req = EnrollRequest {
                token,
                facts: facts.clone(),
            };
            let resp = client
                .enroll(&req)
                .await
                .with_context(|| format!("enrolling the agent at {addr}"))?;
            let client = client.authenticated(&resp.agent_id, &resp.credential);
            anyhow::Ok((index, resp.agent_id, Agent { client, facts }))
        });
    }
    let mut out: Vec<(usize, String, Agent)> =
        set.join_all().await.into_iter().collect::<Result<_>>()?;
    out.sort_by_key(|(i, _, _)| *i);
    Ok(out.into_iter().map(|(_, id, a)| (id, a)).collect())
}

/// One heartbeat of every agent, [`IN_FLIGHT`] at a time; failures are
/// counted, not fatal (a heartbeat missed is what the server tolerates).
async fn heartbeat_all(agents: &Arc<Vec<Agent>>) {
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut set = JoinSet::new();
    for i in 0..agents.len() {
        let (agents, gate) = (agents.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let a = &agents[i];
            let hb = Heartbeat {
                facts: a.facts.clone(),
                spooled: 0,
                platform: None,
                probe: false,
                update: None,
            };
            a.client.heartbeat(&hb).await.err()
        });
    }
    let failed = set.join_all().await.into_iter().flatten().count();
    if failed > 0 {
        eprintln!("{failed} heartbeats failed this round");
    }
}
