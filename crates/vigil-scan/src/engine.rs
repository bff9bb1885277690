//! The scan loop: permute, pace, probe, retry, report.

use crate::pacing::Pacer;
use crate::permits::{Permit, PermitFuture, Permits};
use crate::permute::Permutation;
pub use crate::probe::BannerConfig;
use crate::probe::{self, Answer, SocketPool};
use crate::timing::{Timing, TimingConfig};
use crate::{auto_concurrency, ScanError, TargetSet};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use vigil_core::{PortList, PortState};

/// How ports are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// A full TCP connect per port: works anywhere, needs no privilege.
    #[default]
    Connect,
    /// Half-open SYN probes on raw sockets (Linux, `CAP_NET_RAW`): no
    /// socket per port, so far more probes per second.
    Syn,
    /// SYN when this process may send it and no banner is wanted, else
    /// connect.
    Auto,
}

impl Method {
    /// The name reports use: `connect` or `syn`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Connect => "connect",
            Method::Syn => "syn",
            Method::Auto => "auto",
        }
    }
}

/// How a scan runs. `Default` sizes everything automatically.
#[derive(Debug, Clone, Default)]
pub struct ScanConfig {
    /// Connect or SYN probes (`Auto` is decided by [`Scanner::new`]).
    pub method: Method,
    /// Connects in flight at once; `None` = from the open-file limit
    /// (connect probes only).
    pub concurrency: Option<usize>,
    /// Upper bound on probes per second (retries included); SYN probes
    /// default to [`crate::syn::DEFAULT_RATE`].
    pub max_rate: Option<f64>,
    pub timing: TimingConfig,
    /// Read the first bytes a service sends on open ports.
    pub banner: Option<BannerConfig>,
    /// Seed of the probe order; random when `None`.
    pub seed: Option<u64>,
    /// A bound shared with other scans: a permit is taken before each
    /// port is probed (see [`Permits`]); `None`: only `concurrency` bounds
    /// this scan.
    pub permits: Option<Permits>,
    /// SYN probes go through this shared engine (its rate, this scan's
    /// group's fair share; `max_rate` is then the engine's, not the
    /// scan's) instead of an engine of the scan's own.
    pub service: Option<crate::syn::ServiceShare>,
}

/// One port's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortResult {
    pub addr: IpAddr,
    pub port: u16,
    pub state: PortState,
    /// nmap's name for why: `syn-ack`, `conn-refused` (connect) or `reset`
    /// (SYN), `no-response`, `host-unreach`, `net-unreach`,
    /// `admin-prohibited`, and with SYN probes the other ICMP reasons
    /// (`port-unreach`, `no-route`, …).
    pub reason: &'static str,
    /// Round trip of the answering attempt (open and closed ports).
    pub rtt: Option<Duration>,
    pub banner: Option<Vec<u8>>,
    /// Attempts made (1 = answered on the first try).
    pub tries: u8,
}

/// A configured scanner; cheap to create, reusable for many scans.
#[derive(Debug, Clone)]
pub struct Scanner {
    cfg: ScanConfig,
    concurrency: usize,
}

/// Why SYN probes cannot be used here, if they cannot.
fn syn_refusal(cfg: &ScanConfig) -> Option<String> {
    if cfg.banner.is_some() {
        return Some(
            "banners need connect probes (a SYN probe never completes the connection)".into(),
        );
    }
    if !cfg!(target_os = "linux") {
        return Some("SYN probes are only available on Linux".into());
    }
    // A share of a running engine has its raw sockets already; otherwise
    // opening one tells.
    if cfg.service.is_none() && !crate::syn::available() {
        return Some(
            "SYN probes need raw sockets: run as root or with CAP_NET_RAW \
             (setcap cap_net_raw+ep), or use connect probes"
                .into(),
        );
    }
    None
}

impl Scanner {
    pub fn new(mut cfg: ScanConfig) -> Result<Self, ScanError> {
        cfg.method = match (cfg.method, syn_refusal(&cfg)) {
            (Method::Syn, Some(why)) => return Err(ScanError::Config(why)),
            (Method::Auto, None) => Method::Syn,
            (Method::Auto, Some(_)) => Method::Connect,
            (m, _) => m,
        };
        if let Some(rate) = cfg.max_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(ScanError::Config(format!(
                    "max rate must be a positive number of probes per second, got {rate}"
                )));
            }
        }
        let t = &cfg.timing;
        if t.min_timeout.is_zero() || t.min_timeout > t.max_timeout {
            return Err(ScanError::Config(
                "timeouts must satisfy 0 < min ≤ max".into(),
            ));
        }
        let concurrency = match cfg.concurrency {
            Some(0) => return Err(ScanError::Config("concurrency must be at least 1".into())),
            Some(n) => {
                // Make sure the fd limit can hold what the user asked for.
                crate::raise_nofile_limit();
                n
            }
            None => auto_concurrency(),
        };
        Ok(Scanner { cfg, concurrency })
    }

    /// Connects kept in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// How this scanner probes (never `Auto`: decided when it was made).
    pub fn method(&self) -> Method {
        self.cfg.method
    }

    /// Starts scanning on the scanner's own threads (one single-threaded
    /// Tokio runtime per shard) and returns the stream of results. It may
    /// be called from any context, inside a Tokio runtime or not.
    pub fn start(&self, targets: TargetSet, ports: PortList) -> Result<Scan, ScanError> {
        if targets.is_empty() {
            return Err(ScanError::NoTargets);
        }
        if ports.is_empty() {
            return Err(ScanError::NoPorts);
        }
        let timing = Arc::new(Timing::new(self.cfg.timing));
        if self.cfg.method == Method::Syn {
            return match &self.cfg.service {
                Some(share) => {
                    share
                        .service
                        .submit(share.group, targets, ports, timing, self.cfg.seed)
                }
                None => crate::syn::start(&self.cfg, targets, ports, timing),
            };
        }
        let total = targets.len() * ports.len() as u64;
        let cancel = CancellationToken::new();
        let ctx = Arc::new(Ctx {
            timing: timing.clone(),
            pacer: self.cfg.max_rate.map(Pacer::new),
            banner: self.cfg.banner,
            cancel: cancel.clone(),
            permits: self.cfg.permits.clone(),
        });
        let shards = shard_count(total, self.concurrency);
        let plan = Arc::new(Plan {
            order: Permutation::new(total, self.cfg.seed.unwrap_or_else(rand::random)),
            targets,
            ports,
            shards,
            slots: self.concurrency.div_ceil(shards),
        });
        // Build every runtime first so a failure is an error, not a shard
        // that silently never reports.
        let runtimes = (0..shards)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(ScanError::Runtime)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel(64);
        for (shard, runtime) in runtimes.into_iter().enumerate() {
            let (ctx, plan, tx) = (ctx.clone(), plan.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("vigil-scan-{shard}"))
                .spawn(move || runtime.block_on(drive(ctx, plan, shard, tx)))
                .map_err(|e| {
                    cancel.cancel();
                    ScanError::Runtime(e)
                })?;
        }
        Ok(Scan::new(rx, cancel, total, timing))
    }
}

/// Shards (threads) for a scan: one per core up to [`MAX_SHARDS`], fewer for
/// small scans, never more than there are connection slots.
fn shard_count(total: u64, concurrency: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_size = usize::try_from(total / 1024).unwrap_or(usize::MAX).max(1);
    cores.min(MAX_SHARDS).min(by_size).min(concurrency).max(1)
}

const MAX_SHARDS: usize = 8;
/// Results are handed to the consumer in batches of this size …
const BATCH: usize = 256;
/// … or after this long, whichever comes first.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

struct Ctx {
    timing: Arc<Timing>,
    pacer: Option<Pacer>,
    banner: Option<BannerConfig>,
    cancel: CancellationToken,
    permits: Option<Permits>,
}

/// What every shard needs to know about the whole scan.
struct Plan {
    order: Permutation,
    targets: TargetSet,
    ports: PortList,
    shards: usize,
    /// Connects in flight per shard.
    slots: usize,
}

impl Plan {
    /// The `pos`-th probe of the randomized order.
    fn probe(&self, pos: u64) -> Option<SocketAddr> {
        let nports = self.ports.len() as u64;
        let i = self.order.get(pos);
        let ip = self.targets.get(i / nports)?;
        let port = *self.ports.as_slice().get((i % nports) as usize)?;
        Some(SocketAddr::new(ip, port))
    }
}

/// One shard: probes positions `shard, shard + shards, …` of the order,
/// keeping up to `slots` connects in flight, and sends results in batches.
///
/// Everything of a shard lives on one thread, so probes cost no cross-thread
/// wake-ups; at 0 ms RTT those cost more than the connects themselves.
async fn drive(ctx: Arc<Ctx>, plan: Arc<Plan>, shard: usize, tx: mpsc::Sender<Vec<PortResult>>) {
    let total = plan.order.len();
    let mut positions = (shard as u64..total).step_by(plan.shards);
    let pool = SocketPool::default();
    let mut inflight = FuturesUnordered::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut flush_at: Option<Instant> = None;
    // With outside permits: the next probe, waiting for its permit.
    let mut waiting: Option<(SocketAddr, PermitFuture)> = None;
    loop {
        while inflight.len() < plan.slots {
            let (addr, pending) = match waiting.take() {
                Some((addr, permit)) => (addr, Some(permit)),
                None => {
                    let Some(pos) = positions.next() else { break };
                    let Some(addr) = plan.probe(pos) else {
                        continue;
                    };
                    (addr, None)
                }
            };
            let Some(permits) = &ctx.permits else {
                inflight.push(probe_port(&ctx, &pool, addr, None));
                continue;
            };
            let mut permit = pending.unwrap_or_else(|| permits.acquire());
            match futures::FutureExt::now_or_never(&mut permit) {
                Some(Some(p)) => inflight.push(probe_port(&ctx, &pool, addr, Some(p))),
                Some(None) => return, // the source closed: no more probes
                None => {
                    waiting = Some((addr, permit));
                    break;
                }
            }
        }
        if inflight.is_empty() && waiting.is_none() {
            break;
        }
        let flush_timer = sleep_until(flush_at.unwrap_or_else(Instant::now));
        let has_waiting = waiting.is_some();
        let permit_ready = async {
            match waiting.as_mut() {
                Some((_, permit)) => permit.await,
                None => std::future::pending::<Option<Permit>>().await,
            }
        };
        tokio::select! {
            done = inflight.next(), if !inflight.is_empty() => {
                if let Some(Some(r)) = done {
                    batch.push(r);
                    flush_at.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
                }
            }
            permit = permit_ready, if has_waiting => {
                let Some((addr, _)) = waiting.take() else { continue };
                match permit {
                    Some(p) => inflight.push(probe_port(&ctx, &pool, addr, Some(p))),
                    None => return,
                }
            }
            _ = flush_timer, if flush_at.is_some() => {}
            _ = ctx.cancel.cancelled() => return,
        }
        let due = flush_at.is_some_and(|t| Instant::now() >= t);
        if batch.len() >= BATCH || due {
            flush_at = None;
            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                return; // The consumer is gone.
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
}

/// Probes one port until it answers or its retries are spent, holding
/// `_permit` (if the scan has outside permits) until then.
async fn probe_port(
    ctx: &Ctx,
    pool: &SocketPool,
    addr: SocketAddr,
    _permit: Option<Permit>,
) -> Option<PortResult> {
    let ip = addr.ip();
    let mut tryno: u8 = 0;
    let mut backoff = Duration::from_millis(2);
    let mut self_connects = 0;
    let verdict = |state, reason, rtt, banner, tryno: u8| PortResult {
        addr: ip,
        port: addr.port(),
        state,
        reason,
        rtt,
        banner,
        tries: tryno + 1,
    };
    loop {
        if let Some(pacer) = &ctx.pacer {
            pacer.wait().await;
        }
        match probe::connect_once(addr, &ctx.timing, ctx.banner, &ctx.cancel, pool).await {
            Answer::Open { rtt, banner } => {
                ctx.timing.answered(ip, rtt, tryno);
                return Some(verdict(
                    PortState::Open,
                    "syn-ack",
                    Some(rtt),
                    banner,
                    tryno,
                ));
            }
            Answer::Closed { rtt } => {
                ctx.timing.answered(ip, rtt, tryno);
                return Some(verdict(
                    PortState::Closed,
                    "conn-refused",
                    Some(rtt),
                    None,
                    tryno,
                ));
            }
            Answer::Unreachable(reason) => {
                return Some(verdict(PortState::Unreachable, reason, None, None, tryno));
            }
            Answer::Prohibited => {
                return Some(verdict(
                    PortState::Filtered,
                    "admin-prohibited",
                    None,
                    None,
                    tryno,
                ));
            }
            Answer::NoResponse => {
                if tryno >= ctx.timing.retries(ip) {
                    return Some(verdict(
                        PortState::Filtered,
                        "no-response",
                        None,
                        None,
                        tryno,
                    ));
                }
                tryno += 1;
            }
            Answer::LocalExhausted => {
                // Our own limits, not the target's answer: wait and try again
                // without spending a retry (RustScan reports these as closed).
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = ctx.cancel.cancelled() => return None,
                }
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            Answer::SelfConnect => {
                self_connects += 1;
                if self_connects > 8 {
                    return Some(verdict(
                        PortState::Closed,
                        "conn-refused",
                        None,
                        None,
                        tryno,
                    ));
                }
            }
            Answer::Cancelled => return None,
        }
    }
}

/// A running scan: a stream of [`PortResult`]s in completion order.
/// Dropping it cancels the scan.
pub struct Scan {
    rx: mpsc::Receiver<Vec<PortResult>>,
    batch: std::vec::IntoIter<PortResult>,
    cancel: CancellationToken,
    total: u64,
    timing: Arc<Timing>,
}

impl Scan {
    /// A scan whose engine sends its results on `rx`.
    pub(crate) fn new(
        rx: mpsc::Receiver<Vec<PortResult>>,
        cancel: CancellationToken,
        total: u64,
        timing: Arc<Timing>,
    ) -> Scan {
        Scan {
            rx,
            batch: Vec::new().into_iter(),
            cancel,
            total,
            timing,
        }
    }

    /// The next result; `None` when every probe is done (or the scan was cancelled).
    pub async fn next(&mut self) -> Option<PortResult> {
        loop {
            if let Some(r) = self.batch.next() {
                return Some(r);
            }
            self.batch = self.rx.recv().await?.into_iter();
        }
    }

    /// Number of (address, port) pairs this scan will report.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Stops the scan: probes in flight are abandoned, no more results arrive.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels this scan when triggered (e.g. from a signal handler).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Smoothed RTT and its variance for a host that answered.
    pub fn host_rtt(&self, addr: IpAddr) -> Option<(Duration, Duration)> {
        self.timing.host_rtt(addr)
    }

    /// The host's current probe timeout.
    pub fn host_timeout(&self, addr: IpAddr) -> Duration {
        self.timing.timeout(addr)
    }
}

impl futures::Stream for Scan {
    type Item = PortResult;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PortResult>> {
        loop {
            if let Some(r) = self.batch.next() {
                return Poll::Ready(Some(r));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.batch = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Counts of a finished (or partial) scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub ports: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub unreachable: u64,
    /// Per host: answered (open or closed), or unreachable.
    hosts: HashMap<IpAddr, HostSeen>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct HostSeen {
    answered: bool,
    unreachable: bool,
}

impl ScanSummary {
    pub fn add(&mut self, r: &PortResult) {
        self.ports += 1;
        let h = self.hosts.entry(r.addr).or_default();
        match r.state {
            PortState::Open => {
                self.open += 1;
                h.answered = true;
            }
            PortState::Closed => {
                self.closed += 1;
                h.answered = true;
            }
            PortState::Filtered => self.filtered += 1,
            PortState::Unreachable => {
                self.unreachable += 1;
                h.unreachable = true;
            }
        }
    }

    /// Hosts that answered on at least one port.
    pub fn hosts_up(&self) -> usize {
        self.hosts.values().filter(|h| h.answered).count()
    }

    /// Hosts the network reported unreachable (and that never answered).
    pub fn hosts_unreachable(&self) -> usize {
        self.hosts
            .values()
            .filter(|h| h.unreachable && !h.answered)
            .count()
    }

    pub fn hosts_seen(&self) -> usize {
        self.hosts.len()
    }

    /// Whether `addr` answered on any port.
    pub fn is_up(&self, addr: &IpAddr) -> bool {
        self.hosts.get(addr).is_some_and(|h| h.answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::TargetSpec;

    async fn loopback() -> TargetSet {
        TargetSet::resolve(
            &["127.0.0.1".parse::<TargetSpec>().unwrap()],
            Default::default(),
        )
        .await
        .unwrap()
    }

    /// Every result of a scan of `ports` on 127.0.0.1 with `cfg`, by port.
    async fn scan_loopback_with(ports: &PortList, cfg: ScanConfig) -> Vec<PortResult> {
        let mut scan = Scanner::new(cfg)
            .unwrap()
            .start(loopback().await, ports.clone())
            .unwrap();
        let mut out = Vec::new();
        while let Some(r) = scan.next().await {
            out.push(r);
        }
        out.sort_by_key(|r| r.port);
        out
    }

    async fn scan_loopback(ports: &PortList, concurrency: usize, seed: u64) -> Vec<PortResult> {
        let cfg = ScanConfig {
            concurrency: Some(concurrency),
            seed: Some(seed),
            ..Default::default()
        };
        scan_loopback_with(ports, cfg).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finds_listeners_on_loopback_regardless_of_concurrency() {
        let listeners: Vec<_> = (0..5)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let open: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let mut ports: Vec<u16> = open.clone();
        ports.extend(1..=200);
        let ports = PortList::from_ports(ports);
        let a = scan_loopback(&ports, 1, 1).await;
        let b = scan_loopback(&ports, 500, 2).await;
        assert_eq!(a.len(), ports.len());
        let states = |v: &[PortResult]| v.iter().map(|r| (r.port, r.state)).collect::<Vec<_>>();
        assert_eq!(states(&a), states(&b));
        for p in &open {
            let r = a.iter().find(|r| r.port == *p).unwrap();
            assert_eq!(r.state, PortState::Open, "port {p}");
        }
    }

    #[tokio::test]
    async fn cancel_stops_the_stream() {
        let mut scan = Scanner::new(ScanConfig {
            concurrency: Some(1),
            max_rate: Some(50.0),
            ..Default::default()
        })
        .unwrap()
        .start(loopback().await, PortList::all())
        .unwrap();
        scan.cancel();
        let mut n = 0;
        while scan.next().await.is_some() {
            n += 1;
        }
        assert!(n < 10, "{n} results after cancel");
    }

    /// A source of `limit` permits that records the most ever held at once.
    struct Counted {
        slots: Arc<tokio::sync::Semaphore>,
        held: Arc<std::sync::atomic::AtomicUsize>,
        peak: Arc<std::sync::atomic::AtomicUsize>,
    }

    struct Held(Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl crate::PermitSource for Counted {
        fn acquire(&self) -> PermitFuture {
            let (slots, held, peak) = (self.slots.clone(), self.held.clone(), self.peak.clone());
            Box::pin(async move {
                let permit = slots.acquire_owned().await.ok()?;
                let now = held.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Counted down before the slot is given back (fields drop in order).
                Some(Permit::new((Held(held), permit)))
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outside_permits_bound_the_connects_in_flight() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let mut ports: Vec<u16> = (1..=3000).collect();
        ports.push(open);
        let ports = PortList::from_ports(ports);
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = Counted {
            slots: Arc::new(tokio::sync::Semaphore::new(3)),
            held: Default::default(),
            peak: peak.clone(),
        };
        let cfg = ScanConfig {
            concurrency: Some(500),
            permits: Some(crate::Permits::new(source)),
            ..Default::default()
        };
        let out = scan_loopback_with(&ports, cfg).await;
        assert_eq!(out.len(), ports.len(), "every port reported");
        let r = out.iter().find(|r| r.port == open).unwrap();
        assert_eq!(r.state, PortState::Open);
        let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "{peak} permits held at once");
    }

    #[tokio::test]
    async fn a_closed_permit_source_ends_the_scan() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        slots.close();
        let source = Counted {
            slots,
            held: Default::default(),
            peak: Default::default(),
        };
        let cfg = ScanConfig {
            permits: Some(crate::Permits::new(source)),
            ..Default::default()
        };
        let mut scan = Scanner::new(cfg)
            .unwrap()
            .start(loopback().await, PortList::all())
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), scan.next()).await;
        assert!(matches!(ended, Ok(None)), "no results, and the stream ends");
    }

    #[test]
    fn rejects_bad_settings() {
        for cfg in [
            ScanConfig {
                concurrency: Some(0),
                ..Default::default()
            },
            ScanConfig {
                max_rate: Some(0.0),
                ..Default::default()
            },
            ScanConfig {
                max_rate: Some(f64::NAN),
                ..Default::default()
            },
        ] {
            assert!(matches!(Scanner::new(cfg), Err(ScanError::Config(_))));
        }
    }
}
