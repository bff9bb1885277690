//! The scan loop: permute, pace, probe, retry, report.

use crate::pacing::Pacer;
use crate::permute::Permutation;
pub use crate::probe::BannerConfig;
use crate::probe::{self, Answer};
use crate::timing::{Timing, TimingConfig};
use crate::{auto_concurrency, ScanError, TargetSet};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use vigil_core::{PortList, PortState};

/// How a scan runs. `Default` sizes everything automatically.
#[derive(Debug, Clone, Default)]
pub struct ScanConfig {
    /// Connects in flight at once; `None` = from the open-file limit.
    pub concurrency: Option<usize>,
    /// Upper bound on connection attempts per second (retries included).
    pub max_rate: Option<f64>,
    pub timing: TimingConfig,
    /// Read the first bytes a service sends on open ports.
    pub banner: Option<BannerConfig>,
    /// Seed of the probe order; random when `None`.
    pub seed: Option<u64>,
}

/// One port's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortResult {
    pub addr: IpAddr,
    pub port: u16,
    pub state: PortState,
    /// nmap's name for why: `syn-ack`, `conn-refused`, `no-response`,
    /// `host-unreach`, `net-unreach`, `admin-prohibited`.
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

impl Scanner {
    pub fn new(cfg: ScanConfig) -> Result<Self, ScanError> {
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

    /// Starts scanning in the background of the current Tokio runtime.
    pub fn start(&self, targets: TargetSet, ports: PortList) -> Result<Scan, ScanError> {
        if targets.is_empty() {
            return Err(ScanError::NoTargets);
        }
        if ports.is_empty() {
            return Err(ScanError::NoPorts);
        }
        let total = targets.len() * ports.len() as u64;
        let cancel = CancellationToken::new();
        let timing = Arc::new(Timing::new(self.cfg.timing));
        let ctx = Arc::new(Ctx {
            timing: timing.clone(),
            pacer: self.cfg.max_rate.map(Pacer::new),
            banner: self.cfg.banner,
            cancel: cancel.clone(),
        });
        let (tx, rx) = mpsc::channel(4096);
        let seed = self.cfg.seed.unwrap_or_else(rand::random);
        let concurrency = self.concurrency;
        tokio::spawn(drive(ctx, targets, ports, seed, concurrency, tx));
        Ok(Scan {
            rx,
            cancel,
            total,
            timing,
        })
    }
}

struct Ctx {
    timing: Arc<Timing>,
    pacer: Option<Pacer>,
    banner: Option<BannerConfig>,
    cancel: CancellationToken,
}

async fn drive(
    ctx: Arc<Ctx>,
    targets: TargetSet,
    ports: PortList,
    seed: u64,
    concurrency: usize,
    tx: mpsc::Sender<PortResult>,
) {
    let nports = ports.len() as u64;
    let order = Permutation::new(targets.len() * nports, seed);
    let slots = Arc::new(Semaphore::new(concurrency));
    for i in order.iter() {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = ctx.cancel.cancelled() => return,
        };
        let (Some(ip), Some(&port)) = (
            targets.get(i / nports),
            ports.as_slice().get((i % nports) as usize),
        ) else {
            continue;
        };
        let ctx = ctx.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let result = probe_port(&ctx, SocketAddr::new(ip, port)).await;
            drop(permit);
            if let Some(r) = result {
                let _ = tx.send(r).await;
            }
        });
    }
}

/// Probes one port until it answers or its retries are spent.
async fn probe_port(ctx: &Ctx, addr: SocketAddr) -> Option<PortResult> {
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
        match probe::connect_once(addr, &ctx.timing, ctx.banner, &ctx.cancel).await {
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
    rx: mpsc::Receiver<PortResult>,
    cancel: CancellationToken,
    total: u64,
    timing: Arc<Timing>,
}

impl Scan {
    /// The next result; `None` when every probe is done (or the scan was cancelled).
    pub async fn next(&mut self) -> Option<PortResult> {
        self.rx.recv().await
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
        self.rx.poll_recv(cx)
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

    async fn scan_loopback(ports: &PortList, concurrency: usize, seed: u64) -> Vec<PortResult> {
        let targets = TargetSet::resolve(
            &["127.0.0.1".parse::<TargetSpec>().unwrap()],
            Default::default(),
        )
        .await
        .unwrap();
        let cfg = ScanConfig {
            concurrency: Some(concurrency),
            seed: Some(seed),
            ..Default::default()
        };
        let mut scan = Scanner::new(cfg)
            .unwrap()
            .start(targets, ports.clone())
            .unwrap();
        let mut out = Vec::new();
        while let Some(r) = scan.next().await {
            out.push(r);
        }
        out.sort_by_key(|r| r.port);
        out
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
        let targets = TargetSet::resolve(
            &["127.0.0.1".parse::<TargetSpec>().unwrap()],
            Default::default(),
        )
        .await
        .unwrap();
        let mut scan = Scanner::new(ScanConfig {
            concurrency: Some(1),
            max_rate: Some(50.0),
            ..Default::default()
        })
        .unwrap()
        .start(targets, PortList::all())
        .unwrap();
        scan.cancel();
        let mut n = 0;
        while scan.next().await.is_some() {
            n += 1;
        }
        assert!(n < 10, "{n} results after cancel");
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
