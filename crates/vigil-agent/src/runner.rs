//! The agent's main loop: heartbeat, hand the tasks it is given to the scan
//! worker, deliver the spool.
//!
//! Scans run in their own task, fed by a bounded queue, so the heartbeat
//! never waits for one: a full-range scan of a host whose ports are
//! filtered takes many minutes, and an agent that stops heartbeating for
//! that long would look gone to the server. Tasks run one at a time, since
//! a scan already keeps many sockets busy. When a scan finishes the worker
//! spools its results and wakes the loop, which delivers them at once
//! rather than at the next heartbeat.
//!
//! Order matters for "exactly once": a result is on disk before delivery
//! starts and leaves the disk only after the server acknowledged it (stored
//! or already stored). A crash between the two re-sends it, and the server
//! recognises the upload id.
//!
//! A replicated server has several URLs: a call that fails moves the agent
//! to the next one at once, and only when none answers does it back off
//! (see [`crate::failover`]); results stay spooled until one answers.
//!
//! A heartbeat answer may carry a move instruction (see [`crate::moving`]):
//! the runner enrolls with the new server, tells the old one, and ends with
//! [`RunEnd::Moved`] so the caller starts over with the new identity. It may
//! also name the server's replicas, which the agent then fails over to.

use crate::client::ClientError;
use crate::failover::{Failure, Retry, Servers};
use crate::identity::Identity;
use crate::moving;
use crate::spool::{Spool, Upload};
use crate::task;
use crate::update;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use vigil_proto::agent::{
    AgentFacts, Heartbeat, MoveInstruction, MovedNotice, ScanTask, UpdateOffer, UploadStatus,
};
use vigil_scan::ScanConfig;

/// Heartbeat interval bounds, whatever the server asks for.
const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);
/// Task ids remembered so a task handed out twice runs once. Far more than
/// [`QUEUE`] + 1, so a queued or running task is never forgotten.
const RECENT_TASKS: usize = 1024;
/// Tasks waiting for the scan worker. When it is full, further tasks are
/// left for the server to hand out again.
const QUEUE: usize = 64;

pub struct Runner {
    servers: Servers,
    pub facts: AgentFacts,
    pub scan: ScanConfig,
    /// The server's address, to find the address "self" means.
    pub server_addr: IpAddr,
    /// Shared with the scan worker, which pushes; the loop delivers.
    spool: Arc<Mutex<Spool>>,
    /// Signalled by the scan worker when it has spooled results.
    scanned: Arc<Notify>,
    /// Ids of tasks queued, running or done.
    recent: VecDeque<String>,
    /// Where the identity is stored: a move stores the new one, an
    /// announcement of replicas updates it. `None` ignores move
    /// instructions and keeps announcements in memory.
    state_dir: Option<PathBuf>,
    /// The token of the last move that failed for good, not tried again.
    refused_move: Option<String>,
    /// Self-update: the platform is sent, offers are followed, outcomes
    /// reported. `None`: offers are ignored.
    updates: Option<update::State>,
    /// A new build on trial: heartbeats say so and the run ends at the
    /// first answer.
    probe: bool,
}

/// Why [`Runner::run`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// `shutdown` turned true (or the scan worker ended).
    Stopped,
    /// The server moved this agent to another server: this is the new
    /// identity, already stored. Run again with it.
    Moved(Identity),
    /// The server offers a build this agent wants (see [`crate::update`]):
    /// install it, then run again (with the new binary, or with this one
    /// if it failed).
    Update(UpdateOffer),
    /// On trial ([`Runner::probe`]): the server answered a heartbeat.
    Reached,
}

/// What one heartbeat cycle leads to.
enum Next {
    Wait(Duration),
    End(RunEnd),
}

impl Runner {
    pub fn new(
        servers: Servers,
        spool: Spool,
        facts: AgentFacts,
        scan: ScanConfig,
        server_addr: IpAddr,
    ) -> Self {
        Runner {
            servers,
            facts,
            scan,
            server_addr,
            spool: Arc::new(Mutex::new(spool)),
            scanned: Arc::new(Notify::new()),
            recent: VecDeque::new(),
            state_dir: None,
            refused_move: None,
            updates: None,
            probe: false,
        }
    }

    /// Takes the server's update offers ([`RunEnd::Update`]), with what
    /// the agent remembers about updates (stored in the state directory).
    pub fn with_updates(mut self, state: update::State) -> Self {
        self.updates = Some(state);
        self
    }

    /// A new build on trial: heartbeat (as a probe, which gets no work)
    /// until the server answers once, then end with [`RunEnd::Reached`].
    pub fn probe(mut self) -> Self {
        self.probe = true;
        self
    }

    /// Follows move instructions of the server and remembers the replicas
    /// it announces, storing the identity in `state_dir`.
    pub fn with_state_dir(mut self, state_dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(state_dir.into());
        self
    }

    /// Runs until `shutdown` turns true. A scan still running then is
    /// abandoned; the server hands its task out again.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> RunEnd {
        let (queue, tasks) = mpsc::channel(QUEUE);
        let mut worker = tokio::spawn(scan_worker(
            tasks,
            self.spool.clone(),
            self.scanned.clone(),
            self.scan.clone(),
            self.server_addr,
        ));
        let (worker_ended, end) = tokio::select! {
            end = self.serve(&queue) => (None, end),
            ended = &mut worker => (Some(ended), RunEnd::Stopped),
            _ = shutdown.wait_for(|stop| *stop) => (None, RunEnd::Stopped),
        };
        match worker_ended {
            // A bug in a scan: fail as loudly as if the scan ran inline.
            Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Some(_) => {}
            None => {
                // Dropping the scan cancels it (a scan for the old server
                // after a move: that server gave the agent away).
                worker.abort();
                let _ = worker.await;
            }
        }
        end
    }

    /// Heartbeats, delivering results as the worker finishes them, until
    /// the server moves the agent, offers an update, or (on trial) answers.
    async fn serve(&mut self, queue: &mpsc::Sender<ScanTask>) -> RunEnd {
        let mut interval = Duration::from_secs(30);
        // The URL that answered last, to tell when that changes.
        let mut in_use: Option<String> = None;
        loop {
            let url = self.servers.url().to_string();
            let (wait, answering) = match self.cycle(queue).await {
                Ok(Next::Wait(next)) => {
                    self.servers.answered();
                    if in_use.as_deref() != Some(url.as_str()) {
                        tracing::info!(server = %url, "heartbeating via this server");
                        in_use = Some(url);
                    }
                    interval = next;
                    (next, true)
                }
                Ok(Next::End(end)) => return end,
                Err(e) => {
                    if matches!(e, ClientError::Tls(_)) {
                        tracing::error!(error = %e, server = %url, "this server presents another certificate than the one pinned at enrollment: not used (replicas must share the tls/ files of one server)");
                    } else {
                        tracing::warn!(error = %e, server = %url, "server call failed");
                    }
                    match self.servers.failed(Failure::of(&e), interval) {
                        Retry::Now => {
                            tracing::info!(server = %self.servers.url(), "trying the next server");
                            continue;
                        }
                        Retry::After(wait) => {
                            tracing::warn!(retry_in = ?wait, "no server answers; results stay spooled");
                            (jitter(wait), false)
                        }
                    }
                }
            };
            let next_heartbeat = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(next_heartbeat) => break,
                    // While the servers are away, the next cycle delivers.
                    () = self.scanned.notified(), if answering => {
                        if let Err(e) = self.flush().await {
                            tracing::warn!(error = %e, "cannot deliver results; they stay spooled");
                        }
                    }
                }
            }
        }
    }

    /// One heartbeat, its tasks queued for the worker, its move instruction
    /// followed. Returns the next heartbeat interval, or the new identity.
    async fn cycle(&mut self, queue: &mpsc::Sender<ScanTask>) -> Result<Next, ClientError> {
        // Deliver first: a spool filled during an outage goes out as soon
        // as the server is back, before new work is added. (A build on
        // trial leaves the spool to the agent in charge.)
        if !self.probe {
            self.flush().await?;
        }
        let hb = Heartbeat {
            facts: self.facts.clone(),
            spooled: self.spool().len().unwrap_or(0) as u64,
            platform: (self.updates.is_some() || self.probe).then(update::platform),
            probe: self.probe,
            update: self.updates.as_ref().and_then(|u| u.report.clone()),
        };
        let resp = self.servers.client().heartbeat(&hb).await?;
        if self.probe {
            return Ok(Next::End(RunEnd::Reached));
        }
        if let Some(offer) = self.take_update(&resp, hb.update.is_some()) {
            return Ok(Next::End(RunEnd::Update(offer)));
        }
        if self.servers.announce(&resp.server_urls) {
            tracing::info!(servers = ?self.servers.urls(), "the server named its replicas");
            if let Some(dir) = &self.state_dir {
                if let Err(e) = self.servers.identity().save(dir) {
                    tracing::warn!(error = %e, "cannot store the server URLs; known until a restart");
                }
            }
        }
        if let Some(to) = resp.move_to {
            if let Some(identity) = self.follow(&to).await {
                return Ok(Next::End(RunEnd::Moved(identity)));
            }
        }
        for t in resp.tasks {
            self.enqueue(t, queue);
        }
        let interval = Duration::from_secs(resp.heartbeat_secs).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT);
        Ok(Next::Wait(interval))
    }

    /// After a heartbeat: the server has the report that went with it; its
    /// key is learnt; its offer is returned if this agent takes it.
    fn take_update(
        &mut self,
        resp: &vigil_proto::agent::HeartbeatResponse,
        reported: bool,
    ) -> Option<UpdateOffer> {
        let state_dir = self.state_dir.clone()?;
        let state = self.updates.as_mut()?;
        let mut changed = reported;
        if reported {
            state.report = None;
        }
        if let Some(key) = &resp.update_key {
            match state.learn_key(key) {
                Ok(new) => changed |= new,
                Err(e) => tracing::error!(error = %e, "update offers of this server are refused"),
            }
        }
        if changed {
            if let Err(e) = state.save(&state_dir) {
                tracing::warn!(error = %e, "cannot store the update state");
            }
        }
        let offer = resp.update.as_ref()?;
        if !state.wants(offer, &self.facts.version) {
            return None;
        }
        tracing::info!(version = %offer.version, "the server offers another agent build");
        Some(offer.clone())
    }

    /// Enrolls with the server the current one moves this agent to; on
    /// success tells the current server (best effort) and returns the new
    /// identity. A failure keeps the agent here: a refused token or a wrong
    /// pin is not tried again, an unreachable server at the next heartbeat.
    async fn follow(&mut self, to: &MoveInstruction) -> Option<Identity> {
        let Some(state_dir) = self.state_dir.clone() else {
            tracing::warn!(server = %to.server_url, "move instruction ignored: this runner cannot store an identity");
            return None;
        };
        if self.refused_move.as_deref() == Some(to.enrollment_token.as_str()) {
            return None;
        }
        tracing::info!(server = %to.server_url, "the server moves this agent; enrolling with the new server");
        match moving::switch(&state_dir, to, self.facts.clone()).await {
            Ok(identity) => {
                let notice = MovedNotice {
                    server_id: identity.server_id.clone(),
                };
                if let Err(e) = self.servers.client().moved(&notice).await {
                    tracing::warn!(error = %e, "moved, but could not tell the old server (it will see the agent go silent)");
                }
                tracing::info!(agent = %identity.agent_id, server = %identity.server_url, server_id = %identity.server_id, "moved to the new server");
                Some(identity)
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, server = %to.server_url, "cannot move yet; trying again at the next heartbeat");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, server = %to.server_url, "move refused; staying with the current server");
                self.refused_move = Some(to.enrollment_token.clone());
                None
            }
        }
    }

    /// Queues a task unless it is queued, running or done already.
    fn enqueue(&mut self, t: ScanTask, queue: &mpsc::Sender<ScanTask>) {
        if self.recent.contains(&t.task_id) {
            return;
        }
        let id = t.task_id.clone();
        match queue.try_send(t) {
            Ok(()) => self.remember(id),
            // Not remembered: taken when the server hands it out again.
            Err(TrySendError::Full(t)) => {
                tracing::warn!(task = %t.task_id, "scan queue full; task left for later");
            }
            Err(TrySendError::Closed(t)) => {
                tracing::error!(task = %t.task_id, "scan worker stopped; task dropped");
            }
        }
    }

    /// Delivers spooled results in order; stops at the first transient error.
    async fn flush(&self) -> Result<usize, ClientError> {
        let pending = self.spool().pending();
        let (entries, bad) = match pending {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                return Ok(0);
            }
        };
        for e in bad {
            tracing::error!(error = %e, "quarantined an unreadable spooled result");
        }
        let mut delivered = 0;
        for entry in entries {
            let client = self.servers.client();
            let sent = match &entry.upload {
                Upload::Result(r) => client.upload(r).await,
                Upload::Network { network } => client.network(network).await,
            };
            match sent {
                Ok(ack) => {
                    if ack.status == UploadStatus::Duplicate {
                        tracing::info!(upload = %entry.upload.upload_id(), "server already had this result");
                    }
                    delivered += 1;
                }
                Err(ClientError::Rejected { status, body }) => {
                    // Retrying cannot help; keep it for inspection instead.
                    tracing::error!(status, %body, upload = %entry.upload.upload_id(), "server refused a result");
                    if let Err(e) = self.spool().quarantine_entry(&entry) {
                        tracing::error!(error = %e, "cannot quarantine");
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            if let Err(e) = self.spool().ack(&entry) {
                tracing::error!(error = %e, "cannot remove a delivered result");
            }
        }
        Ok(delivered)
    }

    fn spool(&self) -> MutexGuard<'_, Spool> {
        lock(&self.spool)
    }

    fn remember(&mut self, task_id: String) {
        if self.recent.len() >= RECENT_TASKS {
            self.recent.pop_front();
        }
        self.recent.push_back(task_id);
    }
}

/// Runs queued tasks one at a time, spools their results and signals
/// `scanned`. Ends when the queue is closed.
async fn scan_worker(
    mut tasks: mpsc::Receiver<ScanTask>,
    spool: Arc<Mutex<Spool>>,
    scanned: Arc<Notify>,
    cfg: ScanConfig,
    server_addr: IpAddr,
) {
    while let Some(t) = tasks.recv().await {
        // Looked up per task: the route to the server may have changed.
        let self_addr = task::own_address(server_addr).unwrap_or(server_addr);
        tracing::info!(task = %t.task_id, target = %t.target, ports = %t.ports, "scan started");
        let uploads: Vec<Upload> = match &t.network {
            Some(sweep) => {
                vec![
                    crate::network::run(&t, sweep, cfg.clone(), crate::network::Discovery::Arp)
                        .await
                        .into(),
                ]
            }
            None => match task::run(&t, self_addr, cfg.clone()).await {
                Ok(uploads) => uploads.into_iter().map(Upload::from).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "task refused");
                    continue;
                }
            },
        };
        {
            let mut spool = lock(&spool);
            for u in &uploads {
                if let Err(e) = spool.push(u) {
                    tracing::error!(error = %e, "cannot spool a result");
                }
            }
        }
        tracing::info!(task = %t.task_id, results = uploads.len(), "scan finished");
        scanned.notify_one();
    }
}

/// Up to a quarter more than `wait`, so agents that lost their servers at
/// the same moment do not all come back at the same moment.
fn jitter(wait: Duration) -> Duration {
    wait + wait.mul_f64(rand::random::<f64>() / 4.0)
}

/// The spool stays usable after a panic elsewhere: its state is on disk.
fn lock(spool: &Mutex<Spool>) -> MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeServer, Log, Script, TestCert};
    use vigil_proto::agent::ResultUpload;
    use vigil_proto::pin::CertPin;

    /// Probes per second of the test scans: slow enough that a few dozen
    /// loopback ports make a scan of seconds.
    const RATE: f64 = 8.0;

    /// A scan of `ports` on 127.0.0.1 only.
    fn loopback_task(id: &str, ports: &str) -> ScanTask {
        ScanTask {
            task_id: id.into(),
            target: "127.0.0.1".into(),
            ports: ports.into(),
            network: None,
        }
    }

    /// Starts a real runner against `server`; returns the shutdown switch
    /// and the running loop.
    fn start_runner(
        server: &FakeServer,
        spool_dir: &std::path::Path,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<RunEnd>) {
        start_runner_with(server, spool_dir, None)
    }

    /// [`start_runner`], following move instructions if `state_dir` is given.
    fn start_runner_with(
        server: &FakeServer,
        spool_dir: &std::path::Path,
        state_dir: Option<&std::path::Path>,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<RunEnd>) {
        start_runner_for(
            identity_of(server, "agent-1", "server-1"),
            spool_dir,
            state_dir,
        )
    }

    /// A runner for `identity` (its URLs and pin).
    fn start_runner_for(
        identity: Identity,
        spool_dir: &std::path::Path,
        state_dir: Option<&std::path::Path>,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<RunEnd>) {
        let servers = Servers::new(identity).expect("servers");
        let spool = Spool::open(spool_dir, 100).expect("spool");
        let facts = AgentFacts {
            hostname: "test".into(),
            os: "test".into(),
            version: "0".into(),
        };
        // One connect at a time, paced: slow, gentle, and loopback only.
        let scan = ScanConfig {
            concurrency: Some(1),
            max_rate: Some(RATE),
            ..ScanConfig::default()
        };
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let mut runner = Runner::new(servers, spool, facts, scan, loopback);
        if let Some(dir) = state_dir {
            runner = runner.with_state_dir(dir);
        }
        let (stop, shutdown) = watch::channel(false);
        (stop, tokio::spawn(runner.run(shutdown)))
    }

    fn upload_time(log: &Log, task_id: &str) -> Instant {
        log.uploads
            .iter()
            .find(|(_, u)| u.task_id == task_id)
            .map(|(at, _)| *at)
            .expect("upload")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heartbeats_go_on_during_a_long_scan_that_runs_once() {
        // 40 ports at 8 per second: about 5 s of scanning.
        let server = FakeServer::start(Script {
            tasks: vec![loopback_task("long", "1-40")],
            heartbeat_secs: 1,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (stop, runner) = start_runner(&server, dir.path());

        let log = server
            .wait_for(Duration::from_secs(15), "the scan's result", |l| {
                l.uploads_of("long") > 0
            })
            .await;
        let done = upload_time(&log, "long");
        let (first, ..) = log.heartbeats[0];
        assert!(
            done - first >= Duration::from_secs(3),
            "too quick a scan to prove anything"
        );
        let during = log
            .heartbeats
            .iter()
            .filter(|(at, ..)| *at > first && *at < done)
            .count();
        assert!(during >= 3, "{during} heartbeats while scanning");

        // The server keeps handing the task out (as if its result were
        // still in flight); it ran once, whether queued, running or done.
        let seen = log.heartbeats.len();
        let log = server
            .wait_for(Duration::from_secs(5), "two more heartbeats", |l| {
                l.heartbeats.len() >= seen + 2
            })
            .await;
        assert!(log.heartbeats.iter().all(|(_, _, tasks)| tasks.len() == 1));
        assert_eq!(log.uploads_of("long"), 1, "{:#?}", log.uploads);
        let (_, up) = &log.uploads[0];
        assert_eq!(up.addr, "127.0.0.1");
        assert_eq!(up.ports.len(), 40);

        stop.send(true).expect("stop");
        runner.await.expect("runner");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_are_delivered_when_the_scan_ends_not_at_the_next_heartbeat() {
        let server = FakeServer::start(Script {
            tasks: vec![loopback_task("quick", "1-8")],
            heartbeat_secs: 3600,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (stop, runner) = start_runner(&server, dir.path());

        let log = server
            .wait_for(Duration::from_secs(10), "the scan's result", |l| {
                l.uploads_of("quick") > 0
            })
            .await;
        assert_eq!(
            log.heartbeats.len(),
            1,
            "delivered with a heartbeat, not before"
        );
        assert_eq!(log.uploads_of("quick"), 1);

        stop.send(true).expect("stop");
        runner.await.expect("runner");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_does_not_wait_for_a_running_scan() {
        // 2000 ports at 8 per second: minutes of scanning.
        let server = FakeServer::start(Script {
            tasks: vec![loopback_task("endless", "1-2000")],
            heartbeat_secs: 1,
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (stop, runner) = start_runner(&server, dir.path());
        server
            .wait_for(Duration::from_secs(5), "a heartbeat", |l| {
                !l.heartbeats.is_empty()
            })
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;

        stop.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(2), runner)
            .await
            .expect("the runner stops promptly")
            .expect("runner");
        assert!(server.log.borrow().uploads.is_empty());
        assert!(Spool::open(dir.path(), 100)
            .expect("spool")
            .is_empty()
            .expect("len"));
    }

    fn identity_of(server: &FakeServer, agent_id: &str, server_id: &str) -> Identity {
        Identity {
            server_url: server.url.clone(),
            fallback_urls: Vec::new(),
            announced_urls: Vec::new(),
            pin: server.pin.to_string(),
            agent_id: agent_id.into(),
            credential: "vga_secret".into(),
            server_id: server_id.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_move_instruction_of_the_server_moves_the_agent() {
        let new = FakeServer::start(Script {
            enroll: Some(vigil_proto::agent::EnrollResponse {
                agent_id: "agent-b".into(),
                credential: "vga_b".into(),
                server_id: "server-b".into(),
                heartbeat_secs: 1,
                server_urls: Vec::new(),
            }),
            ..Script::default()
        })
        .await;
        let old = FakeServer::start(Script {
            heartbeat_secs: 1,
            move_to: Some(MoveInstruction {
                server_url: new.url.clone(),
                pin: new.pin.to_string(),
                enrollment_token: "vge_move".into(),
            }),
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        identity_of(&old, "agent-a", "server-a")
            .save(dir.path())
            .expect("save");
        let (_stop, runner) = start_runner_with(&old, &dir.path().join("spool"), Some(dir.path()));
        let end = tokio::time::timeout(Duration::from_secs(10), runner)
            .await
            .expect("the runner ends after the move")
            .expect("runner");
        let moved = identity_of(&new, "agent-b", "server-b");
        let moved = Identity {
            credential: "vga_b".into(),
            ..moved
        };
        assert_eq!(end, RunEnd::Moved(moved.clone()));
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(moved));
        assert_eq!(new.log.borrow().enrolls[0].token, "vge_move");
        let told = old.log.borrow().moved.clone();
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].server_id, "server-b");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_move_keeps_the_agent_with_its_server() {
        let refusing = FakeServer::start(Script::default()).await;
        let old = FakeServer::start(Script {
            heartbeat_secs: 1,
            move_to: Some(MoveInstruction {
                server_url: refusing.url.clone(),
                pin: refusing.pin.to_string(),
                enrollment_token: "vge_bad".into(),
            }),
            ..Script::default()
        })
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let before = identity_of(&old, "agent-a", "server-a");
        before.save(dir.path()).expect("save");
        let (stop, runner) = start_runner_with(&old, &dir.path().join("spool"), Some(dir.path()));
        old.wait_for(Duration::from_secs(10), "three heartbeats", |l| {
            l.heartbeats.len() >= 3
        })
        .await;
        // Tried once: the refused token is not tried again.
        assert_eq!(refusing.log.borrow().enrolls.len(), 1);
        assert!(old.log.borrow().moved.is_empty());
        assert_eq!(Identity::load(dir.path()).expect("load"), Some(before));
        stop.send(true).expect("stop");
        assert_eq!(runner.await.expect("runner"), RunEnd::Stopped);
    }

    /// Two replicas of one server (one certificate), heartbeats every second.
    async fn replicas(script: Script) -> (FakeServer, FakeServer) {
        let cert = TestCert::new();
        let script = Script {
            heartbeat_secs: 1,
            ..script
        };
        let a = FakeServer::start_with(script.clone(), &cert).await;
        let b = FakeServer::start_with(script, &cert).await;
        (a, b)
    }

    /// An identity with `urls`, preferred first, pinned to `pin`.
    fn identity_with(urls: &[&FakeServer], pin: CertPin) -> Identity {
        Identity {
            server_url: urls[0].url.clone(),
            fallback_urls: urls[1..].iter().map(|s| s.url.clone()).collect(),
            announced_urls: Vec::new(),
            pin: pin.to_string(),
            agent_id: "agent-1".into(),
            credential: "vga_secret".into(),
            server_id: "server-1".into(),
        }
    }

    /// A result waiting in the spool in `dir`, as if scanned during an outage.
    fn spool_result(dir: &std::path::Path, upload_id: &str) {
        let upload = ResultUpload {
            upload_id: upload_id.into(),
            task_id: "offline".into(),
            target: "127.0.0.1".into(),
            addr: "127.0.0.1".into(),
            started_at: 1,
            finished_at: 2,
            ports: Vec::new(),
        };
        Spool::open(dir, 100)
            .expect("spool")
            .push(&upload.into())
            .expect("push");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_is_down_is_left_for_the_next_with_the_pinned_certificate() {
        let (a, b) = replicas(Script::default()).await;
        // Up, but with a certificate of its own: never trusted.
        let impostor = FakeServer::start(Script {
            heartbeat_secs: 1,
            ..Script::default()
        })
        .await;
        a.down().await;
        let dir = tempfile::tempdir().expect("tempdir");
        spool_result(dir.path(), "u-offline");
        let (stop, runner) =
            start_runner_for(identity_with(&[&a, &impostor, &b], a.pin), dir.path(), None);
        let log = b
            .wait_for(Duration::from_secs(10), "heartbeats via B", |l| {
                l.heartbeats.len() >= 3
            })
            .await;
        assert_eq!(log.uploads_of("offline"), 1, "the spool went to B");
        let (first_upload, _) = log.uploads[0];
        let (first_heartbeat, ..) = log.heartbeats[0];
        assert!(first_upload <= first_heartbeat, "the spool goes out first");
        // Tried once on the way to B; B is kept since.
        assert_eq!(impostor.connections(), 1);
        b.wait_for(Duration::from_secs(10), "more heartbeats via B", |l| {
            l.heartbeats.len() >= 5
        })
        .await;
        assert_eq!(impostor.connections(), 1, "sticky to B");
        let seen = impostor.log.borrow().clone();
        assert!(
            seen.heartbeats.is_empty() && seen.uploads.is_empty(),
            "{seen:?}"
        );
        stop.send(true).expect("stop");
        runner.await.expect("runner");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_every_server_fails_results_wait_for_the_first_one_back() {
        let (a, b) = replicas(Script::default()).await;
        a.down().await;
        b.fail(true);
        let dir = tempfile::tempdir().expect("tempdir");
        spool_result(dir.path(), "u-offline");
        let (stop, runner) = start_runner_for(identity_with(&[&a, &b], a.pin), dir.path(), None);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(b.log.borrow().uploads.is_empty());
        assert_eq!(
            Spool::open(dir.path(), 100)
                .expect("spool")
                .len()
                .expect("len"),
            1
        );

        // B answers 503 no more: within a back-off step or two, the spool
        // goes there.
        b.fail(false);
        let log = b
            .wait_for(Duration::from_secs(15), "the spooled result", |l| {
                l.uploads_of("offline") > 0 && !l.heartbeats.is_empty()
            })
            .await;
        assert_eq!(log.uploads_of("offline"), 1);
        assert!(Spool::open(dir.path(), 100)
            .expect("spool")
            .is_empty()
            .expect("len"));
        assert!(a.log.borrow().heartbeats.is_empty());
        stop.send(true).expect("stop");
        runner.await.expect("runner");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_preferred_server_is_tried_again_and_kept_once_back() {
        let (a, b) = replicas(Script::default()).await;
        a.down().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (stop, runner) = start_runner_for(identity_with(&[&a, &b], a.pin), dir.path(), None);
        b.wait_for(Duration::from_secs(10), "a heartbeat via B", |l| {
            !l.heartbeats.is_empty()
        })
        .await;
        a.up().await;
        // Every PREFERRED_RETRY heartbeats (1 s each) A is tried again.
        a.wait_for(Duration::from_secs(20), "a heartbeat via A", |l| {
            !l.heartbeats.is_empty()
        })
        .await;
        let on_b = b.log.borrow().heartbeats.len();
        assert!(on_b >= crate::failover::PREFERRED_RETRY as usize, "{on_b}");
        a.wait_for(Duration::from_secs(10), "more heartbeats via A", |l| {
            l.heartbeats.len() >= 3
        })
        .await;
        assert_eq!(b.log.borrow().heartbeats.len(), on_b, "back with A");
        stop.send(true).expect("stop");
        runner.await.expect("runner");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_the_server_names_are_remembered_and_used() {
        let cert = TestCert::new();
        let b = FakeServer::start_with(
            Script {
                heartbeat_secs: 1,
                ..Script::default()
            },
            &cert,
        )
        .await;
        let a = FakeServer::start_with(
            Script {
                heartbeat_secs: 1,
                server_urls: vec![b.url.clone(), "http://plain.invalid".into()],
                ..Script::default()
            },
            &cert,
        )
        .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let enrolled = identity_with(&[&a], a.pin);
        enrolled.save(dir.path()).expect("save");
        let (stop, runner) =
            start_runner_for(enrolled, &dir.path().join("spool"), Some(dir.path()));
        a.wait_for(Duration::from_secs(10), "two heartbeats via A", |l| {
            l.heartbeats.len() >= 2
        })
        .await;
        let stored = Identity::load(dir.path()).expect("load").expect("identity");
        assert_eq!(stored.announced_urls, std::slice::from_ref(&b.url));
        assert_eq!(stored.server_urls(), [a.url.clone(), b.url.clone()]);

        a.down().await;
        b.wait_for(Duration::from_secs(10), "a heartbeat via B", |l| {
            !l.heartbeats.is_empty()
        })
        .await;
        stop.send(true).expect("stop");
        runner.await.expect("runner");
    }
}
