//! One SYN engine for many scans: one thread, one set of raw sockets, one
//! cookie key and one rate, however many scans of however many owners run.
//!
//! A server scanning the observed addresses of every tenant's agents (and
//! sweeping compliance scopes) would otherwise run an engine per scan, each
//! with its own sockets, thread and rate, and their sum would be bounded by
//! nothing. Here scans are *jobs* of one engine:
//!
//! - **One rate.** Every probe of every job spends a token of the engine's
//!   bucket, so the host sends at most `rate` probes a second in all.
//! - **Fair shares.** Each job belongs to a *group* (the server's account).
//!   Each batch's tokens are split evenly among the groups with something to
//!   send, what a group leaves unused goes to the others, and the order
//!   rotates every batch: a tenant with a thousand scans and a tenant with
//!   one progress at the same speed.
//! - **Bounded memory.** At most [`MAX_RUNNING`] jobs run at once (each with
//!   its window's per-probe arrays); the rest wait, and the next to start is
//!   always from the group with the fewest running.
//!
//! Answers carry no job id: the cookie proves a SYN of this engine asked
//! (the key and source port are the engine's), and the answer goes to every
//! running job with a try out to that (address, port) — two scans of one
//! address both get the verdict.

use super::packet::{self, Answer, Cookie, Verdict};
use super::{refused, route_of, Bucket, Route, BATCH, DONE, FLUSH_EVERY, MAX_WAIT, RECHECK_US};
use super::{RESULTS, SYN_LEN, WINDOW_HOSTS};
use crate::engine::{PortResult, Scan};
use crate::permute::Permutation;
use crate::sys::raw::RawSockets;
use crate::sys::{Received, SendError};
use crate::timing::Timing;
use crate::{ScanError, TargetSet};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use vigil_core::{PortList, PortState};

/// Jobs running at once; more wait their turn.
pub const MAX_RUNNING: usize = 64;
/// Probes a shared engine's job window holds at most (5 bytes each: 5 MiB),
/// so [`MAX_RUNNING`] large sweeps stay within a few hundred MiB.
const SHARED_WINDOW_PROBES: u64 = 1 << 20;

/// Engine threads of a shared service at most: sending is mostly the
/// kernel's work (routing, the raw socket's path out), which one core
/// bounds; a thread per core (up to this) lifts that bound.
const MAX_SHARDS: usize = 4;

/// A running SYN engine that many scans share. Cheap to clone; the engine
/// ends once every handle is dropped and its last job is done.
///
/// On a machine with several cores the engine runs as a few *shards*: a
/// thread each, with its own raw sockets (its own source port, so answers
/// reach the shard that asked) and an equal part of the rate. A scan runs
/// on the shard with the fewest scans; fair shares hold within a shard.
#[derive(Clone)]
pub struct ScanService {
    shards: Arc<Vec<Shard>>,
    rate: f64,
}

struct Shard {
    inbox: std_mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for ScanService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanService")
            .field("rate", &self.rate)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// What a [`ScanService`] has done and holds now (for metrics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceUse {
    /// Probes a second at most.
    pub rate: f64,
    /// Probes sent (tries, retries included) since it started.
    pub probes_sent: u64,
    /// Genuine answers received (SYN-ACK, RST, ICMP errors quoting a probe).
    pub answers: u64,
    /// Jobs running, and waiting for a turn.
    pub running: usize,
    pub waiting: usize,
    /// Engine threads.
    pub shards: usize,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    answers: AtomicU64,
    running: AtomicUsize,
    waiting: AtomicUsize,
    /// Jobs handed to the shard and jobs it let go: their difference is
    /// its load, up to date at once (unlike `running + waiting`).
    submitted: AtomicUsize,
    ended: AtomicUsize,
}

impl Stats {
    fn load(&self) -> usize {
        let ended = self.ended.load(Ordering::Relaxed);
        self.submitted.load(Ordering::Relaxed).saturating_sub(ended)
    }
}

/// A scan's place in a shared engine: the engine and the group (account)
/// whose fair share the scan's probes come from.
#[derive(Debug, Clone)]
pub struct ServiceShare {
    pub service: ScanService,
    pub group: u128,
}

impl ScanService {
    /// Opens raw sockets of both families (IPv6 if the host has it) and
    /// starts the engine at `rate` probes a second in all, with a shard
    /// per core (at most [`MAX_SHARDS`]).
    pub fn start(rate: f64) -> Result<ScanService, ScanError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ScanService::start_sharded(rate, cores.min(MAX_SHARDS))
    }

    /// [`ScanService::start`] with `shards` engine threads.
    pub fn start_sharded(rate: f64, shards: usize) -> Result<ScanService, ScanError> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ScanError::Config(format!(
                "scan rate must be a positive number of probes per second, got {rate}"
            )));
        }
        let shards = shards.max(1);
        let part = rate / shards as f64;
        let shards = (0..shards)
            .map(|_| {
                let sockets = match RawSockets::open(true, true) {
                    Ok(s) => s,
                    Err(both) => {
                        // A host without IPv6: IPv4 alone (IPv6 targets are
                        // then unreachable, as a connect would find them).
                        tracing::debug!("raw IPv6 sockets: {both}; IPv4 only");
                        RawSockets::open(true, false).map_err(refused)?
                    }
                };
                Shard::start(sockets, part, SHARED_WINDOW_PROBES)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ScanService {
            shards: Arc::new(shards),
            rate,
        })
    }

    /// One shard on `sockets` (`vigil scan`'s own engine).
    pub(crate) fn with_sockets(
        sockets: RawSockets,
        rate: f64,
        window_probes: u64,
    ) -> Result<ScanService, ScanError> {
        Ok(ScanService {
            shards: Arc::new(vec![Shard::start(sockets, rate, window_probes)?]),
            rate,
        })
    }

    /// This engine with `group`'s share, for [`crate::ScanConfig::service`].
    pub fn share(&self, group: u128) -> ServiceShare {
        ServiceShare {
            service: self.clone(),
            group,
        }
    }

    pub fn usage(&self) -> ServiceUse {
        let sum = |f: fn(&Stats) -> u64| self.shards.iter().map(|s| f(&s.stats)).sum::<u64>();
        ServiceUse {
            rate: self.rate,
            probes_sent: sum(|s| s.sent.load(Ordering::Relaxed)),
            answers: sum(|s| s.answers.load(Ordering::Relaxed)),
            running: sum(|s| s.running.load(Ordering::Relaxed) as u64) as usize,
            waiting: sum(|s| s.waiting.load(Ordering::Relaxed) as u64) as usize,
            shards: self.shards.len(),
        }
    }

    /// Queues a scan of `group` and returns its stream of results.
    pub(crate) fn submit(
        &self,
        group: u128,
        targets: TargetSet,
        ports: PortList,
        timing: Arc<Timing>,
        seed: Option<u64>,
    ) -> Result<Scan, ScanError> {
        let total = targets.len() * ports.len() as u64;
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(64);
        let job = Job {
            group,
            targets,
            ports,
            timing: timing.clone(),
            seed: seed.unwrap_or_else(rand::random),
            tx,
            cancel: cancel.clone(),
        };
        // The least loaded shard (the first of equals).
        let shard = self
            .shards
            .iter()
            .min_by_key(|s| s.stats.load())
            .ok_or_else(|| ScanError::Config("the SYN engine has no shard".into()))?;
        shard.stats.submitted.fetch_add(1, Ordering::Relaxed);
        shard
            .inbox
            .send(job)
            .map_err(|_| ScanError::Config("the SYN engine has stopped".into()))?;
        Ok(Scan::new(rx, cancel, total, timing))
    }
}

impl Shard {
    fn start(sockets: RawSockets, rate: f64, window_probes: u64) -> Result<Shard, ScanError> {
        let (inbox, jobs) = std_mpsc::channel();
        let stats = Arc::new(Stats::default());
        let engine = Engine {
            sockets,
            cookie: Cookie::new(),
            bucket: Bucket::new(rate),
            epoch: Instant::now(),
            inbox: jobs,
            waiting: VecDeque::new(),
            jobs: Vec::new(),
            cursor: 0,
            stats: stats.clone(),
            window_probes,
        };
        std::thread::Builder::new()
            .name("vigil-syn".into())
            .spawn(move || engine.run())
            .map_err(ScanError::Runtime)?;
        Ok(Shard { inbox, stats })
    }
}

/// One scan submitted to the engine.
struct Job {
    group: u128,
    targets: TargetSet,
    ports: PortList,
    timing: Arc<Timing>,
    seed: u64,
    tx: mpsc::Sender<Vec<PortResult>>,
    cancel: CancellationToken,
}

impl Job {
    /// Its [`Scan`] was dropped or cancelled.
    fn abandoned(&self) -> bool {
        self.cancel.is_cancelled() || self.tx.is_closed()
    }
}

struct Engine {
    sockets: RawSockets,
    cookie: Cookie,
    bucket: Bucket,
    epoch: Instant,
    inbox: std_mpsc::Receiver<Job>,
    waiting: VecDeque<Job>,
    jobs: Vec<Running>,
    /// Where the next batch starts taking probes (rotates).
    cursor: usize,
    stats: Arc<Stats>,
    window_probes: u64,
}

/// A job being scanned: its current window of hosts, and its results not
/// handed over yet.
struct Running {
    job: Job,
    /// First host of the next window.
    next_host: u64,
    w: Window,
    out: Vec<PortResult>,
    flush_at: Option<Instant>,
    /// Every window scanned: ends once `out` is handed over.
    done: bool,
    /// (timing version, host, timeout µs) last looked up.
    timeout_cache: Option<(u64, usize, u64)>,
    /// The timing version the waiting tries were last scheduled by, and
    /// when (µs).
    due_version: u64,
    rescheduled_at: u64,
}

/// The hosts being scanned now, and their probes' state.
struct Window {
    hosts: Vec<IpAddr>,
    host_of: HashMap<IpAddr, u32>,
    routes: Vec<Option<Route>>,
    order: Permutation,
    next: u64,
    /// Per probe (host × port): tries sent, `DONE` once judged.
    tries: Vec<u8>,
    /// Per probe: µs since the engine's epoch when its last try went.
    sent_at: Vec<u32>,
    /// (µs when to look at it, probe) of every try awaiting its answer.
    due: BinaryHeap<Reverse<(u64, u32)>>,
    /// Probes whose timeout passed with retries left.
    resend: VecDeque<u32>,
    /// Probes without a verdict.
    open: u64,
}

impl Window {
    fn new(hosts: Vec<IpAddr>, nports: u64, seed: u64) -> Window {
        let probes = hosts.len() as u64 * nports;
        Window {
            host_of: hosts
                .iter()
                .enumerate()
                .map(|(i, a)| (*a, i as u32))
                .collect(),
            routes: vec![None; hosts.len()],
            hosts,
            order: Permutation::new(probes, seed),
            next: 0,
            tries: vec![0; probes as usize],
            sent_at: vec![0; probes as usize],
            due: BinaryHeap::new(),
            resend: VecDeque::new(),
            open: probes,
        }
    }

    fn has_more(&self) -> bool {
        !self.resend.is_empty() || self.next < self.order.len()
    }
}

impl Engine {
    fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        let mut batch: Vec<(IpAddr, [u8; SYN_LEN])> = Vec::with_capacity(BATCH);
        let mut owners: Vec<(usize, u32)> = Vec::with_capacity(BATCH);
        while self.take_jobs() {
            self.read_answers(&mut buf);
            let now = self.now_us();
            for r in &mut self.jobs {
                r.expire(now);
            }
            self.fill(&mut batch, &mut owners);
            if batch.is_empty() {
                self.idle();
            } else {
                self.send(&batch, &owners);
            }
            self.settle();
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Takes the jobs submitted and starts those whose turn it is; false
    /// when there is nothing left to do, ever (every handle is gone).
    fn take_jobs(&mut self) -> bool {
        if self.jobs.is_empty() && self.waiting.is_empty() {
            self.publish();
            match self.inbox.recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(_) => return false,
            }
        }
        while let Ok(job) = self.inbox.try_recv() {
            self.waiting.push_back(job);
        }
        let before = self.waiting.len();
        self.waiting.retain(|j| !j.abandoned());
        self.stats
            .ended
            .fetch_add(before - self.waiting.len(), Ordering::Relaxed);
        while self.jobs.len() < MAX_RUNNING && !self.waiting.is_empty() {
            let i = self.next_to_start();
            if let Some(job) = self.waiting.remove(i) {
                let running = self.begin(job);
                self.jobs.push(running);
            }
        }
        self.publish();
        true
    }

    /// Shows how many jobs run and wait ([`ScanService::usage`]).
    fn publish(&self) {
        let stats = &self.stats;
        stats.running.store(self.jobs.len(), Ordering::Relaxed);
        stats.waiting.store(self.waiting.len(), Ordering::Relaxed);
    }

    fn next_to_start(&self) -> usize {
        next_to_start(
            self.waiting.iter().map(|j| j.group),
            &self.jobs.iter().map(|r| r.job.group).collect::<Vec<_>>(),
        )
    }

    fn begin(&self, job: Job) -> Running {
        let mut r = Running {
            job,
            next_host: 0,
            w: Window::new(Vec::new(), 1, 0),
            out: Vec::with_capacity(RESULTS),
            flush_at: None,
            done: false,
            timeout_cache: None,
            due_version: 0,
            rescheduled_at: 0,
        };
        r.next_window(self.window_probes);
        r
    }

    /// Fills `batch` with as many probes as the bucket allows, splitting
    /// them evenly among the groups with probes to send.
    fn fill(&mut self, batch: &mut Vec<(IpAddr, [u8; SYN_LEN])>, owners: &mut Vec<(usize, u32)>) {
        batch.clear();
        owners.clear();
        let n = self.jobs.len();
        if n == 0 {
            return;
        }
        let budget = self.bucket.available(Instant::now());
        if budget == 0 {
            return;
        }
        let mut taken: Vec<(u128, usize)> = Vec::new();
        for r in self.jobs.iter().filter(|r| r.w.has_more()) {
            if !taken.iter().any(|(g, _)| *g == r.job.group) {
                taken.push((r.job.group, 0));
            }
        }
        let quota = budget.div_ceil(taken.len().max(1));
        // First each group up to its share, then whoever has more to send.
        for first_pass in [true, false] {
            for k in 0..n {
                let left = budget - batch.len();
                if left == 0 {
                    break;
                }
                let j = (self.cursor + k) % n;
                let group = self.jobs[j].job.group;
                let Some(slot) = taken.iter_mut().find(|(g, _)| *g == group) else {
                    continue;
                };
                let limit = if first_pass {
                    quota.saturating_sub(slot.1).min(left)
                } else {
                    left
                };
                slot.1 += self.take_probes(j, limit, batch, owners);
            }
        }
        self.cursor = (self.cursor + 1) % n;
    }

    /// Adds up to `limit` probes of job `j` to the batch; how many.
    fn take_probes(
        &mut self,
        j: usize,
        limit: usize,
        batch: &mut Vec<(IpAddr, [u8; SYN_LEN])>,
        owners: &mut Vec<(usize, u32)>,
    ) -> usize {
        let (sockets, cookie) = (&self.sockets, &self.cookie);
        let r = &mut self.jobs[j];
        let nports = r.job.ports.len() as u64;
        let mut got = 0;
        while got < limit {
            let Some(id) = r.next_probe() else { break };
            let host = (u64::from(id) / nports) as usize;
            let ip = r.w.hosts[host];
            let route = *r.w.routes[host].get_or_insert_with(|| {
                if sockets.our_port(ip.is_ipv4()) == 0 {
                    // No raw socket of this family here.
                    Route::Fails(PortState::Unreachable, "net-unreach")
                } else {
                    route_of(ip)
                }
            });
            let src = match route {
                Route::Via(src) => src,
                Route::Fails(state, reason) => {
                    r.judge(id, state, reason, None);
                    continue;
                }
            };
            let port = r.job.ports.as_slice()[(u64::from(id) % nports) as usize];
            let our_port = sockets.our_port(ip.is_ipv4());
            let seq = cookie.of(ip, port, our_port);
            let v4 = match (src, ip) {
                (Some(s), IpAddr::V4(d)) => Some((s, d)),
                _ => None,
            };
            batch.push((ip, packet::syn(our_port, port, seq, v4)));
            owners.push((j, id));
            got += 1;
        }
        got
    }

    fn send(&mut self, batch: &[(IpAddr, [u8; SYN_LEN])], owners: &[(usize, u32)]) {
        let (handled, failed) = self.sockets.send(batch);
        self.bucket.spend(handled);
        self.stats.sent.fetch_add(handled as u64, Ordering::Relaxed);
        let sent_us = self.now_us();
        let mut failed = failed.into_iter().peekable();
        for (i, &(j, id)) in owners.iter().enumerate().take(handled) {
            let r = &mut self.jobs[j];
            match failed.next_if(|(at, _)| *at == i) {
                Some((_, SendError::HostUnreachable)) => {
                    r.judge(id, PortState::Unreachable, "host-unreach", None)
                }
                Some((_, SendError::NetUnreachable)) => {
                    r.judge(id, PortState::Unreachable, "net-unreach", None)
                }
                Some((_, SendError::Prohibited)) => {
                    r.judge(id, PortState::Filtered, "admin-prohibited", None)
                }
                // Failed for a reason that says nothing about the target:
                // counts as a try (retried, then filtered).
                Some((_, SendError::Other(e))) => {
                    tracing::debug!("SYN probe to {}: {e}", batch[i].0);
                    r.sent(id, sent_us)
                }
                Some((_, SendError::Busy)) | None => r.sent(id, sent_us),
            }
        }
        // Buffers full: the rest go first next time.
        for &(j, id) in owners[handled..].iter().rev() {
            self.jobs[j].w.resend.push_front(id);
        }
        if handled < batch.len() {
            self.sockets.wait(Duration::from_millis(1));
        }
    }

    /// Sleeps until something can happen: a retry falls due, a token
    /// arrives, an answer comes in, results are due to be handed over.
    fn idle(&self) {
        let now = self.now_us();
        let mut wait = MAX_WAIT;
        for r in &self.jobs {
            if let Some(Reverse((due, _))) = r.w.due.peek() {
                wait = wait.min(Duration::from_micros(due.saturating_sub(now)));
            }
            if r.w.has_more() {
                wait = wait.min(self.bucket.wait());
            }
            if let Some(at) = r.flush_at {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
        }
        self.sockets.wait(wait);
    }

    fn read_answers(&mut self, buf: &mut [u8]) {
        let mut answers = Vec::new();
        self.sockets.drain(buf, 4096, |got| {
            let answer = match got {
                Received::Tcp4(p) => {
                    packet::tcp_of_ipv4(p).and_then(|(from, tcp)| packet::tcp_answer(from, tcp))
                }
                Received::Tcp6(from, tcp) => packet::tcp_answer(IpAddr::V6(from), tcp),
                Received::Icmp4(p) => packet::icmp4_answer(p),
                Received::Icmp6(m) => packet::icmp6_answer(m),
            };
            answers.extend(answer);
        });
        let now = self.now_us();
        for a in answers {
            // Only answers to a SYN of this engine (forged ones fail here).
            if a.our_port != self.sockets.our_port(a.target.is_ipv4())
                || a.cookie != self.cookie.of(a.target, a.port, a.our_port)
            {
                continue;
            }
            self.stats.answers.fetch_add(1, Ordering::Relaxed);
            for r in &mut self.jobs {
                r.answer(&a, now);
            }
        }
    }

    /// Moves finished windows on, hands results over, and lets go of the
    /// jobs that are done or abandoned.
    fn settle(&mut self) {
        let mut i = 0;
        while i < self.jobs.len() {
            let r = &mut self.jobs[i];
            let mut gone = r.job.abandoned();
            if !gone && r.w.open == 0 && !r.done {
                r.next_window(self.window_probes);
            }
            if !gone && (r.done || r.flush_due()) {
                gone = !r.flush();
            }
            if gone || (r.done && r.out.is_empty()) {
                // Dropping the job closes its stream: the scan has ended.
                self.jobs.swap_remove(i);
                self.stats.ended.fetch_add(1, Ordering::Relaxed);
            } else {
                i += 1;
            }
        }
    }
}

/// Which waiting job to start next (index into `waiting`, their groups in
/// arrival order): the longest-waiting one of the group with the fewest
/// jobs `running`.
fn next_to_start(waiting: impl Iterator<Item = u128>, running: &[u128]) -> usize {
    let mut best = (usize::MAX, 0);
    for (i, group) in waiting.enumerate() {
        let n = running.iter().filter(|g| **g == group).count();
        if n < best.0 {
            best = (n, i);
            if n == 0 {
                break;
            }
        }
    }
    best.1
}

impl Running {
    /// Starts the next window of hosts, or marks the job done.
    fn next_window(&mut self, window_probes: u64) {
        let total = self.job.targets.len();
        if self.next_host >= total {
            self.done = true;
            return;
        }
        let nports = self.job.ports.len() as u64;
        let per_window = (window_probes / nports).clamp(1, WINDOW_HOSTS);
        let end = total.min(self.next_host + per_window);
        let hosts: Vec<IpAddr> = (self.next_host..end)
            .filter_map(|i| self.job.targets.get(i))
            .collect();
        self.next_host = end;
        let seed = self.job.seed ^ self.next_host;
        self.w = Window::new(hosts, nports, seed);
        // Host indices are the new window's.
        self.timeout_cache = None;
    }

    /// The next try to send: a due retry first, then a fresh probe.
    fn next_probe(&mut self) -> Option<u32> {
        let w = &mut self.w;
        while let Some(id) = w.resend.pop_front() {
            if w.tries[id as usize] & DONE == 0 {
                return Some(id);
            }
        }
        while w.next < w.order.len() {
            let id = w.order.get(w.next) as u32;
            w.next += 1;
            if w.tries[id as usize] & DONE == 0 {
                return Some(id);
            }
        }
        None
    }

    fn host_index(&self, id: u32) -> usize {
        (u64::from(id) / self.job.ports.len() as u64) as usize
    }

    fn host_of(&self, id: u32) -> IpAddr {
        self.w.hosts[self.host_index(id)]
    }

    /// The timeout of the window's `host`th host now (µs), cached while
    /// the scan's timing has recorded no new answer.
    fn timeout_us(&mut self, host: usize) -> u64 {
        let version = self.job.timing.version();
        if let Some((v, h, t)) = self.timeout_cache {
            if v == version && h == host {
                return t;
            }
        }
        let t = self.job.timing.timeout(self.w.hosts[host]).as_micros() as u64;
        self.timeout_cache = Some((version, host, t));
        t
    }

    fn sent(&mut self, id: u32, at_us: u64) {
        let i = id as usize;
        // The try count stays below the DONE bit (retries are far fewer).
        self.w.tries[i] = (self.w.tries[i] + 1).min(DONE - 1);
        self.w.sent_at[i] = at_us as u32;
        let timeout = self.timeout_us(self.host_index(id));
        self.w.due.push(Reverse((at_us + timeout, id)));
    }

    /// Tries whose timeout passed: retried while retries are left, else
    /// filtered. A try is judged by its host's timeout as it is *now*, not
    /// when it went: the first answers shrink the timeout from the initial
    /// guess to the path's RTT, so when the timing has changed (at most
    /// every [`RECHECK_US`]) every waiting try is rescheduled by it.
    fn expire(&mut self, now: u64) {
        let version = self.job.timing.version();
        if version != self.due_version && now >= self.rescheduled_at + RECHECK_US {
            self.reschedule(now);
            (self.due_version, self.rescheduled_at) = (version, now);
        }
        while let Some(&Reverse((due, id))) = self.w.due.peek() {
            if due > now {
                break;
            }
            self.w.due.pop();
            let tries = self.w.tries[id as usize];
            if tries & DONE != 0 {
                continue;
            }
            let host = self.host_index(id);
            let timeout = self.timeout_us(host);
            let waited = self.waited(id, now);
            if waited < timeout {
                // The timeout grew since the try went.
                self.w.due.push(Reverse((now + (timeout - waited), id)));
                continue;
            }
            if tries > self.job.timing.retries(self.w.hosts[host]) {
                self.judge(id, PortState::Filtered, "no-response", None);
            } else {
                self.w.resend.push_back(id);
            }
        }
    }

    /// µs since probe `id`'s last try went.
    fn waited(&self, id: u32, now: u64) -> u64 {
        u64::from((now as u32).wrapping_sub(self.w.sent_at[id as usize]))
    }

    /// Recomputes when every waiting try is due, by its host's timeout now
    /// (and forgets the tries judged meanwhile).
    fn reschedule(&mut self, now: u64) {
        let waiting = std::mem::take(&mut self.w.due).into_vec();
        let mut due = Vec::with_capacity(waiting.len());
        for Reverse((_, id)) in waiting {
            if self.w.tries[id as usize] & DONE != 0 {
                continue;
            }
            let timeout = self.timeout_us(self.host_index(id));
            due.push(Reverse((
                now + timeout.saturating_sub(self.waited(id, now)),
                id,
            )));
        }
        self.w.due = BinaryHeap::from(due);
    }

    /// Judges the probe `a` answers, if this job has a try out to it.
    fn answer(&mut self, a: &Answer, now: u64) {
        let Some(&host) = self.w.host_of.get(&a.target) else {
            return;
        };
        let Ok(slot) = self.job.ports.as_slice().binary_search(&a.port) else {
            return;
        };
        let id = host * self.job.ports.len() as u32 + slot as u32;
        let tries = self.w.tries[id as usize];
        if tries == 0 || tries & DONE != 0 {
            return;
        }
        let rtt_us = (now as u32).wrapping_sub(self.w.sent_at[id as usize]);
        let rtt = Duration::from_micros(u64::from(rtt_us));
        let (state, reason, rtt) = match a.verdict {
            Verdict::Open => (PortState::Open, "syn-ack", Some(rtt)),
            Verdict::Closed => (PortState::Closed, "reset", Some(rtt)),
            Verdict::Unreachable(r) => (PortState::Unreachable, r, None),
            Verdict::Filtered(r) => (PortState::Filtered, r, None),
        };
        if let Some(rtt) = rtt {
            self.job.timing.answered(a.target, rtt, tries - 1);
        }
        self.judge(id, state, reason, rtt);
    }

    fn judge(&mut self, id: u32, state: PortState, reason: &'static str, rtt: Option<Duration>) {
        let nports = self.job.ports.len() as u64;
        let i = id as usize;
        let tries = self.w.tries[i];
        self.w.tries[i] = tries | DONE;
        self.w.open -= 1;
        self.out.push(PortResult {
            addr: self.host_of(id),
            port: self.job.ports.as_slice()[(u64::from(id) % nports) as usize],
            state,
            reason,
            rtt,
            banner: None,
            tries: tries.max(1),
        });
        self.flush_at
            .get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
    }

    fn flush_due(&self) -> bool {
        self.out.len() >= RESULTS || self.flush_at.is_some_and(|t| Instant::now() >= t)
    }

    /// Hands the results over without waiting (a slow reader of one scan
    /// must not stall the others: what does not fit waits for the next
    /// look); false when the reader is gone.
    fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            self.flush_at = None;
            return true;
        }
        let batch = std::mem::replace(&mut self.out, Vec::with_capacity(RESULTS));
        match self.job.tx.try_send(batch) {
            Ok(()) => {
                self.flush_at = None;
                true
            }
            Err(TrySendError::Full(batch)) => {
                self.out = batch;
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_with_the_fewest_running_starts_next() {
        // Arrival order wins among equals.
        assert_eq!(next_to_start([1, 1, 2].into_iter(), &[]), 0);
        // Group 1 runs three, group 2 one: group 2's first waiting job.
        assert_eq!(next_to_start([1, 1, 2, 2].into_iter(), &[1, 1, 1, 2]), 2);
        // A group with nothing running goes first, however late it came.
        assert_eq!(next_to_start([1, 2, 3].into_iter(), &[1, 2]), 2);
        assert_eq!(next_to_start([5].into_iter(), &[5, 5]), 0);
    }
}
