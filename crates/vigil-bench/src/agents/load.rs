//! The simulated agents: each enrolls with its own token, keeps its own
//! TLS connection (its own [`ServerClient`], the agent's real client with
//! certificate pinning; see [`super::client`] past 20,000 agents on one
//! server address), heartbeats on a fixed schedule and uploads a
//! synthetic result for every task it is handed; a share of the uploads is
//! sent a second time, as an agent does when an acknowledgement is lost.
//! As in the real agent, the next heartbeat is due one interval after the
//! previous cycle ended, so the offered rate is slightly below
//! agents / interval, and falls when the server is slow.
//!
//! Every loop is bounded twice: by the deadline and by a shared budget of
//! requests. A semaphore caps the requests in flight across all agents;
//! latency is measured from the moment a request holds its permit, so it is
//! the server's answer time, not the bench's queue.

use super::client::{source_address, SimClient};
use super::stats::{Kind, Recorder};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
#[cfg(doc)]
use vigil_agent::client::ServerClient;
use vigil_core::{PortList, PortState};
use vigil_proto::agent::{
    AgentFacts, EnrollRequest, Heartbeat, PortObservation, ResultUpload, ScanTask, UploadStatus,
    SELF_TARGET,
};
use vigil_proto::pin::CertPin;

/// Ports every synthetic result reports open (the bench's policies
/// authorize 22 and monitor 80, so results raise no alert).
const OPEN_PORTS: [u16; 2] = [22, 80];

/// One enrolled simulated agent.
pub struct SimAgent {
    pub index: usize,
    pub agent_id: String,
    client: SimClient,
    facts: AgentFacts,
}

/// Enrolls one agent per (index, token), `concurrency` at a time, agent
/// `i` with the server at `urls[i % urls.len()]` (client-side round robin
/// over the replicas). Failed enrollments are recorded and left out.
pub async fn enroll_all(
    tokens: Vec<(usize, String)>,
    urls: &[String],
    pin: CertPin,
    concurrency: usize,
    reconnect: bool,
    rec: &Arc<Recorder>,
) -> anyhow::Result<Vec<SimAgent>> {
    anyhow::ensure!(!urls.is_empty(), "no server URL");
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for (index, token) in tokens {
        let url = &urls[index % urls.len()];
        let client = if reconnect {
            SimClient::reconnecting(url, pin)?
        } else {
            // The how-manieth agent on this server address.
            SimClient::new(url, pin, source_address(index / urls.len()))?
        };
        let (gate, rec) = (gate.clone(), rec.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            let facts = AgentFacts {
                hostname: format!("sim-{index:05}"),
                os: "vigil-bench".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            };
            let req = EnrollRequest {
                token,
                facts: facts.clone(),
            };
            let sent = std::time::Instant::now();
            let resp = client.enroll(&req).await;
            rec.record(Kind::Enroll, sent, &resp);
            let resp = resp.ok()?;
            Some(SimAgent {
                index,
                client: client.authenticated(&resp.agent_id, &resp.credential),
                agent_id: resp.agent_id,
                facts,
            })
        });
    }
    let mut agents: Vec<SimAgent> = set.join_all().await.into_iter().flatten().collect();
    agents.sort_by_key(|a| a.index);
    Ok(agents)
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadConfig {
    pub duration: Duration,
    pub heartbeat: Duration,
    pub concurrency: usize,
    pub resend_percent: u8,
    /// Share of the results that also report [`FLAP_PORT`] open (percent).
    #[serde(default)]
    pub flap_percent: u8,
    pub max_requests: u64,
}

/// What happened besides latencies and errors.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadOutcome {
    pub elapsed: Duration,
    pub tasks_received: u64,
    /// A task handed out again after its result was stored (a server bug).
    pub tasks_again: u64,
    /// Tasks received too close to the deadline to upload.
    pub tasks_left: u64,
    pub stored: u64,
    /// A first upload answered "duplicate" (a server bug).
    pub first_duplicate: u64,
    pub resend_duplicate: u64,
    /// A re-send answered "stored" (a server bug: stored twice).
    pub resend_stored: u64,
    pub budget_exhausted: bool,
}

impl LoadOutcome {
    /// Adds another worker's outcome.
    pub fn absorb(&mut self, o: LoadOutcome) {
        self.elapsed = self.elapsed.max(o.elapsed);
        self.tasks_received += o.tasks_received;
        self.tasks_again += o.tasks_again;
        self.tasks_left += o.tasks_left;
        self.stored += o.stored;
        self.first_duplicate += o.first_duplicate;
        self.resend_duplicate += o.resend_duplicate;
        self.resend_stored += o.resend_stored;
        self.budget_exhausted |= o.budget_exhausted;
    }
}

#[derive(Default)]
struct Counters {
    tasks_received: AtomicU64,
    tasks_again: AtomicU64,
    tasks_left: AtomicU64,
    stored: AtomicU64,
    first_duplicate: AtomicU64,
    resend_duplicate: AtomicU64,
    resend_stored: AtomicU64,
}

struct Shared {
    rec: Arc<Recorder>,
    gate: Semaphore,
    budget: AtomicU64,
    deadline: Instant,
    heartbeat: Duration,
    resend_percent: u8,
    flap_percent: u8,
    counters: Counters,
}

impl Shared {
    /// Takes one request from the budget; `false` when it is spent or the
    /// time is up.
    fn may_send(&self) -> bool {
        Instant::now() < self.deadline
            && self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
    }
}

/// Runs every agent until the deadline or the request budget is spent
/// (again for each round of a soak: the agents stay enrolled).
pub async fn run(agents: &[Arc<SimAgent>], cfg: &LoadConfig, rec: Arc<Recorder>) -> LoadOutcome {
    let start = Instant::now();
    let shared = Arc::new(Shared {
        rec,
        gate: Semaphore::new(cfg.concurrency),
        budget: AtomicU64::new(cfg.max_requests),
        deadline: start + cfg.duration,
        heartbeat: cfg.heartbeat,
        resend_percent: cfg.resend_percent,
        flap_percent: cfg.flap_percent,
        counters: Counters::default(),
    });
    let n = agents.len().max(1) as u32;
    let mut set = JoinSet::new();
    for (i, agent) in agents.iter().enumerate() {
        // Spread the first heartbeats evenly over one interval.
        let first = start + cfg.heartbeat * i as u32 / n;
        set.spawn(agent_loop(agent.clone(), first, shared.clone()));
    }
    while set.join_next().await.is_some() {}
    let c = &shared.counters;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    LoadOutcome {
        elapsed: start.elapsed(),
        tasks_received: get(&c.tasks_received),
        tasks_again: get(&c.tasks_again),
        tasks_left: get(&c.tasks_left),
        stored: get(&c.stored),
        first_duplicate: get(&c.first_duplicate),
        resend_duplicate: get(&c.resend_duplicate),
        resend_stored: get(&c.resend_stored),
        budget_exhausted: shared.budget.load(Ordering::Relaxed) == 0,
    }
}

async fn agent_loop(agent: Arc<SimAgent>, first: Instant, s: Arc<Shared>) {
    let c = &s.counters;
    let mut next = first;
    // Tasks whose result the server stored: never handed out again.
    let mut done: HashSet<String> = HashSet::new();
    let hb = Heartbeat {
        facts: agent.facts.clone(),
        spooled: 0,
        platform: None,
        probe: false,
        update: None,
    };
    loop {
        tokio::time::sleep_until(next.min(s.deadline)).await;
        let resp = {
            let Ok(_permit) = s.gate.acquire().await else {
                return;
            };
            // Checked once the permit is held, so a request that queued
            // for one is not sent after the deadline.
            if !s.may_send() {
                return;
            }
            let sent = std::time::Instant::now();
            let resp = agent.client.heartbeat(&hb).await;
            s.rec.record(Kind::Heartbeat, sent, &resp);
            resp
        };
        for task in resp.map(|r| r.tasks).unwrap_or_default() {
            c.tasks_received.fetch_add(1, Ordering::Relaxed);
            if done.contains(&task.task_id) {
                c.tasks_again.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let flap = rand::random_range(0..100) < s.flap_percent;
            let upload = synthetic_result(&task, flap);
            match send(&agent, &s, Kind::Upload, &upload).await {
                Sent::Answered(UploadStatus::Stored) => {
                    c.stored.fetch_add(1, Ordering::Relaxed);
                    done.insert(task.task_id.clone());
                }
                Sent::Answered(UploadStatus::Duplicate) => {
                    c.first_duplicate.fetch_add(1, Ordering::Relaxed);
                }
                Sent::Failed => continue,
                Sent::TimeUp => {
                    c.tasks_left.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            if rand::random_range(0..100) < s.resend_percent {
                match send(&agent, &s, Kind::Resend, &upload).await {
                    Sent::Answered(UploadStatus::Duplicate) => {
                        c.resend_duplicate.fetch_add(1, Ordering::Relaxed);
                    }
                    Sent::Answered(UploadStatus::Stored) => {
                        c.resend_stored.fetch_add(1, Ordering::Relaxed);
                    }
                    Sent::Failed | Sent::TimeUp => {}
                }
            }
        }
        // Like the real agent: the interval starts when the cycle (heartbeat
        // and deliveries) ends, so a slow server sees fewer requests.
        next = Instant::now() + s.heartbeat;
    }
}

enum Sent {
    Answered(UploadStatus),
    /// An error, recorded by kind.
    Failed,
    /// Not sent: the deadline has passed or the request budget is spent.
    TimeUp,
}

async fn send(agent: &SimAgent, s: &Shared, kind: Kind, upload: &ResultUpload) -> Sent {
    let Ok(_permit) = s.gate.acquire().await else {
        return Sent::TimeUp;
    };
    if !s.may_send() {
        return Sent::TimeUp;
    }
    let sent = std::time::Instant::now();
    let resp = agent.client.upload(upload).await;
    s.rec.record(kind, sent, &resp);
    match resp {
        Ok(ack) => Sent::Answered(ack.status),
        Err(_) => Sent::Failed,
    }
}

/// A port no policy of the bench authorizes, reported open by a share of
/// the results (`--flap-percent`): its alert opens and ends over the run,
/// so raising and ending alerts (and their notices) is part of the load.
pub const FLAP_PORT: u16 = 23;

/// What a real agent would upload for `task`: every port of the task, all
/// closed but [`OPEN_PORTS`] (and [`FLAP_PORT`] when `flap`), under a
/// fresh upload id.
fn synthetic_result(task: &ScanTask, flap: bool) -> ResultUpload {
    let ports = PortList::parse(&task.ports).unwrap_or_else(|_| PortList::from_ports([]));
    let now = vigil_agent::task::unix_now();
    ResultUpload {
        upload_id: format!("{:032x}", rand::random::<u128>()),
        task_id: task.task_id.clone(),
        target: task.target.clone(),
        addr: if task.target == SELF_TARGET {
            "127.0.0.1".into()
        } else {
            task.target.clone()
        },
        started_at: now - 1,
        finished_at: now,
        ports: ports
            .iter()
            .map(|port| PortObservation {
                port,
                state: if OPEN_PORTS.contains(&port) || (flap && port == FLAP_PORT) {
                    PortState::Open
                } else {
                    PortState::Closed
                },
                details: None,
            })
            .collect(),
    }
}
