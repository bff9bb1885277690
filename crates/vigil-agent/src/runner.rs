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

use crate::client::{ClientError, ServerClient};
use crate::spool::Spool;
use crate::task;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use vigil_proto::agent::{AgentFacts, Heartbeat, ScanTask, UploadStatus};
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
    pub client: ServerClient,
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
}

impl Runner {
    pub fn new(
        client: ServerClient,
        spool: Spool,
        facts: AgentFacts,
        scan: ScanConfig,
        server_addr: IpAddr,
    ) -> Self {
        Runner {
            client,
            facts,
            scan,
            server_addr,
            spool: Arc::new(Mutex::new(spool)),
            scanned: Arc::new(Notify::new()),
            recent: VecDeque::new(),
        }
    }

    /// Runs until `shutdown` turns true. A scan still running then is
    /// abandoned; the server hands its task out again.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let (queue, tasks) = mpsc::channel(QUEUE);
        let mut worker = tokio::spawn(scan_worker(
            tasks,
            self.spool.clone(),
            self.scanned.clone(),
            self.scan.clone(),
            self.server_addr,
        ));
        let worker_ended = tokio::select! {
            () = self.serve(&queue) => None,
            ended = &mut worker => Some(ended),
            _ = shutdown.wait_for(|stop| *stop) => None,
        };
        match worker_ended {
            // A bug in a scan: fail as loudly as if the scan ran inline.
            Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Some(_) => {}
            None => {
                // Dropping the scan cancels it.
                worker.abort();
                let _ = worker.await;
            }
        }
    }

    /// Heartbeats forever, delivering results as the worker finishes them.
    async fn serve(&mut self, queue: &mpsc::Sender<ScanTask>) {
        let mut interval = Duration::from_secs(30);
        let mut failures: u32 = 0;
        loop {
            match self.cycle(queue).await {
                Ok(next) => {
                    interval = next;
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "cannot reach the server; results stay spooled");
                }
            }
            // Back off while the server is away, but never beyond the
            // normal interval × 4, so recovery is noticed soon.
            let wait = if failures == 0 {
                interval
            } else {
                (MIN_HEARTBEAT * 2u32.saturating_pow(failures.min(10))).min(interval * 4)
            };
            let next_heartbeat = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(next_heartbeat) => break,
                    // While the server is away, the next cycle delivers.
                    () = self.scanned.notified(), if failures == 0 => {
                        if let Err(e) = self.flush().await {
                            tracing::warn!(error = %e, "cannot deliver results; they stay spooled");
                        }
                    }
                }
            }
        }
    }

    /// One heartbeat, its tasks queued for the worker. Returns the next
    /// heartbeat interval.
    async fn cycle(&mut self, queue: &mpsc::Sender<ScanTask>) -> Result<Duration, ClientError> {
        // Deliver first: a spool filled during an outage goes out as soon
        // as the server is back, before new work is added.
        self.flush().await?;
        let hb = Heartbeat {
            facts: self.facts.clone(),
            spooled: self.spool().len().unwrap_or(0) as u64,
        };
        let resp = self.client.heartbeat(&hb).await?;
        for t in resp.tasks {
            self.enqueue(t, queue);
        }
        Ok(Duration::from_secs(resp.heartbeat_secs).clamp(MIN_HEARTBEAT, MAX_HEARTBEAT))
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
            match self.client.upload(&entry.upload).await {
                Ok(ack) => {
                    if ack.status == UploadStatus::Duplicate {
                        tracing::info!(upload = %entry.upload.upload_id, "server already had this result");
                    }
                    delivered += 1;
                }
                Err(ClientError::Rejected { status, body }) => {
                    // Retrying cannot help; keep it for inspection instead.
                    tracing::error!(status, %body, upload = %entry.upload.upload_id, "server refused a result");
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
        let uploads = match task::run(&t, self_addr, cfg.clone()).await {
            Ok(uploads) => uploads,
            Err(e) => {
                tracing::warn!(error = %e, "task refused");
                continue;
            }
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

/// The spool stays usable after a panic elsewhere: its state is on disk.
fn lock(spool: &Mutex<Spool>) -> MutexGuard<'_, Spool> {
    spool.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FakeServer, Log, Script};

    /// Probes per second of the test scans: slow enough that a few dozen
    /// loopback ports make a scan of seconds.
    const RATE: f64 = 8.0;

    /// A scan of `ports` on 127.0.0.1 only.
    fn loopback_task(id: &str, ports: &str) -> ScanTask {
        ScanTask {
            task_id: id.into(),
            target: "127.0.0.1".into(),
            ports: ports.into(),
        }
    }

    /// Starts a real runner against `server`; returns the shutdown switch
    /// and the running loop.
    fn start_runner(
        server: &FakeServer,
        spool_dir: &std::path::Path,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let client = ServerClient::new(&server.url, server.pin)
            .expect("client")
            .authenticated("agent-1", "secret");
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
        let runner = Runner::new(client, spool, facts, scan, loopback);
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
}
