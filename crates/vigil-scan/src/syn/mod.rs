//! The SYN engine (Linux, `CAP_NET_RAW`): half-open probes on raw sockets.
//!
//! Stateless probing, as masscan and ZMap do it: each SYN's sequence number
//! is a keyed hash of where it went ([`packet::Cookie`]), so an answer is
//! recognised — and a forged one refused — from the answer alone. What is
//! kept per probe is only what a verdict needs: how many tries were sent
//! (one byte) and when the last one went (four bytes, for RTT samples), in
//! flat arrays of the scan's (host, port) pairs.
//!
//! A SYN-ACK says open, a RST closed, an ICMP unreachable names its reason
//! (host/net unreachable, admin-prohibited, …), and silence after the
//! retries is filtered. Timeouts and retries adapt exactly as the connect
//! engine's do ([`Timing`]): each retry is due one timeout (per host, as it
//! is when the try is looked at, not when it went) after its try; answers
//! give RTT samples.
//!
//! No socket of ours owns the source port, so the kernel answers a SYN-ACK
//! with a RST of its own. That is fine and is all the clean-up needed: the
//! RST tears down the target's half-open connection, exactly like nmap's
//! `-sS` (which lets the kernel do the same). Nothing else needs undoing,
//! because nothing was ever set up on our side.
//!
//! Probes go out in batches (`sendmmsg`) at `--max-rate` (a token bucket),
//! on one thread; answers are read between batches. Large scans run in
//! windows of hosts so the per-probe arrays stay bounded.

pub(crate) mod packet;

use crate::engine::{PortResult, Scan, ScanConfig};
use crate::permute::Permutation;
use crate::sys::raw::{self, RawSockets};
use crate::sys::{Received, SendError};
use crate::timing::Timing;
use crate::{ScanError, TargetSet};
pub(crate) use packet::SYN_LEN;
use packet::{Answer, Cookie, Verdict};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_core::{PortList, PortState};

/// Probes per second when the scan names no `max_rate`.
pub const DEFAULT_RATE: f64 = 100_000.0;
/// Probes a window holds at most (5 bytes each: ≤ 80 MiB).
const WINDOW_PROBES: u64 = 1 << 24;
/// Hosts a window holds at most.
const WINDOW_HOSTS: u64 = 1 << 16;
/// Probes per `sendmmsg`.
const BATCH: usize = 256;
/// Results are handed over in batches of this size or after this long.
const RESULTS: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Longest sleep between looks at the clock (cancellation, flushes).
const MAX_WAIT: Duration = Duration::from_millis(20);
/// A try waiting longer than this is looked at again after it: its host's
/// timeout may have shrunk meanwhile (µs; the default minimum timeout).
const RECHECK_US: u64 = 100_000;
/// Set in a probe's tries byte once it has its verdict.
const DONE: u8 = 0x80;

/// Whether this process can send SYN probes (Linux with `CAP_NET_RAW`).
pub fn available() -> bool {
    raw::permitted()
}

/// Starts a SYN scan on its own thread.
pub(crate) fn start(
    cfg: &ScanConfig,
    targets: TargetSet,
    ports: PortList,
    timing: Arc<Timing>,
) -> Result<Scan, ScanError> {
    let v4 = targets.iter().any(|a| a.is_ipv4());
    let v6 = targets.iter().any(|a| a.is_ipv6());
    let sockets = RawSockets::open(v4, v6).map_err(|e| {
        ScanError::Config(format!(
            "SYN probes need raw sockets ({e}): run as root or with CAP_NET_RAW, or use connect probes"
        ))
    })?;
    let total = targets.len() * ports.len() as u64;
    let cancel = CancellationToken::new();
    let (tx, rx) = mpsc::channel(64);
    let mut port_slot = vec![u32::MAX; 1 << 16];
    for (i, p) in ports.as_slice().iter().enumerate() {
        port_slot[usize::from(*p)] = i as u32;
    }
    let engine = Engine {
        sockets,
        cookie: Cookie::new(),
        timing: timing.clone(),
        ports,
        port_slot,
        bucket: Bucket::new(cfg.max_rate.unwrap_or(DEFAULT_RATE)),
        cancel: cancel.clone(),
        tx,
        epoch: Instant::now(),
        out: Vec::with_capacity(RESULTS),
        flush_at: None,
    };
    let seed = cfg.seed.unwrap_or_else(rand::random);
    std::thread::Builder::new()
        .name("vigil-syn".into())
        .spawn(move || engine.run(&targets, seed))
        .map_err(ScanError::Runtime)?;
    Ok(Scan::new(rx, cancel, total, timing))
}

/// `rate` tokens a second, at most one batch saved up.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            rate,
            tokens: 0.0,
            at: Instant::now(),
        }
    }

    /// Whole tokens available now (at most a batch).
    fn available(&mut self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(BATCH as f64);
        self.tokens as usize
    }

    fn spend(&mut self, n: usize) {
        self.tokens -= n as f64;
    }

    /// How long until one token is there.
    fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
    }
}

/// How a host's probes end before any is sent: its route's error.
#[derive(Clone, Copy)]
enum Route {
    Via(Option<Ipv4Addr>),
    Fails(PortState, &'static str),
}

struct Engine {
    sockets: RawSockets,
    cookie: Cookie,
    timing: Arc<Timing>,
    ports: PortList,
    /// Port → its index in `ports` (`u32::MAX`: not scanned).
    port_slot: Vec<u32>,
    bucket: Bucket,
    cancel: CancellationToken,
    tx: mpsc::Sender<Vec<PortResult>>,
    epoch: Instant,
    out: Vec<PortResult>,
    flush_at: Option<Instant>,
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
    /// Per probe: µs since `epoch` when its last try went.
    sent_at: Vec<u32>,
    /// (µs when to look at it, probe) of every try awaiting its answer.
    due: BinaryHeap<Reverse<(u64, u32)>>,
    /// Probes whose timeout passed with retries left.
    resend: VecDeque<u32>,
    /// Probes without a verdict.
    open: u64,
}

impl Engine {
    fn run(mut self, targets: &TargetSet, seed: u64) {
        let nports = self.ports.len() as u64;
        let per_window = (WINDOW_PROBES / nports).clamp(1, WINDOW_HOSTS);
        let mut first = 0;
        while first < targets.len() {
            let hosts: Vec<IpAddr> = (first..targets.len().min(first + per_window))
                .filter_map(|i| targets.get(i))
                .collect();
            first += per_window;
            if !self.window(hosts, seed) {
                return;
            }
        }
        self.flush();
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Scans one window to the last verdict; false when cancelled or the
    /// consumer is gone.
    fn window(&mut self, hosts: Vec<IpAddr>, seed: u64) -> bool {
        let nports = self.ports.len() as u64;
        let probes = hosts.len() as u64 * nports;
        let mut w = Window {
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
        };
        let mut buf = vec![0u8; 2048];
        let mut batch: Vec<(IpAddr, [u8; SYN_LEN])> = Vec::with_capacity(BATCH);
        let mut batch_ids: Vec<u32> = Vec::with_capacity(BATCH);
        while w.open > 0 {
            if self.cancel.is_cancelled() {
                return false;
            }
            self.read_answers(&mut w, &mut buf);
            self.expire(&mut w);
            let now = Instant::now();
            let budget = self.bucket.available(now);
            batch.clear();
            batch_ids.clear();
            while batch.len() < budget {
                let Some(id) = self.next_probe(&mut w) else {
                    break;
                };
                let host = (u64::from(id) / nports) as usize;
                let ip = w.hosts[host];
                let route = *w.routes[host].get_or_insert_with(|| route_of(ip));
                let src = match route {
                    Route::Via(src) => src,
                    Route::Fails(state, reason) => {
                        self.judge(&mut w, id, state, reason, None);
                        continue;
                    }
                };
                let port = self.ports.as_slice()[(u64::from(id) % nports) as usize];
                let our_port = self.sockets.our_port(ip.is_ipv4());
                let seq = self.cookie.of(ip, port, our_port);
                let v4 = match (src, ip) {
                    (Some(s), IpAddr::V4(d)) => Some((s, d)),
                    _ => None,
                };
                batch.push((ip, packet::syn(our_port, port, seq, v4)));
                batch_ids.push(id);
            }
            if !batch.is_empty() {
                let (handled, failed) = self.sockets.send(&batch);
                self.bucket.spend(handled);
                let sent_us = self.now_us();
                let mut failed = failed.into_iter().peekable();
                for (i, &id) in batch_ids.iter().enumerate().take(handled) {
                    match failed.next_if(|(at, _)| *at == i) {
                        Some((_, SendError::HostUnreachable)) => {
                            self.judge(&mut w, id, PortState::Unreachable, "host-unreach", None)
                        }
                        Some((_, SendError::NetUnreachable)) => {
                            self.judge(&mut w, id, PortState::Unreachable, "net-unreach", None)
                        }
                        Some((_, SendError::Prohibited)) => {
                            self.judge(&mut w, id, PortState::Filtered, "admin-prohibited", None)
                        }
                        // Failed for a reason that says nothing about the
                        // target: counts as a try (retried, then filtered).
                        Some((_, SendError::Other(e))) => {
                            tracing::debug!("SYN probe to {}: {e}", batch[i].0);
                            self.sent(&mut w, id, sent_us)
                        }
                        Some((_, SendError::Busy)) | None => self.sent(&mut w, id, sent_us),
                    }
                }
                // Buffers full: the rest go first next time.
                for &id in batch_ids[handled..].iter().rev() {
                    w.resend.push_front(id);
                }
                if handled < batch.len() {
                    self.sockets.wait(Duration::from_millis(1));
                }
            } else {
                self.idle(&w);
            }
            if self.flush_due() && !self.flush() {
                return false;
            }
        }
        true
    }

    /// The next try to send: a due retry first, then a fresh probe.
    fn next_probe(&self, w: &mut Window) -> Option<u32> {
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

    fn sent(&self, w: &mut Window, id: u32, at_us: u64) {
        let i = id as usize;
        // The try count stays below the DONE bit (retries are far fewer).
        w.tries[i] = (w.tries[i] + 1).min(DONE - 1);
        w.sent_at[i] = at_us as u32;
        let host = w.hosts[(u64::from(id) / self.ports.len() as u64) as usize];
        let timeout = self.timing.timeout(host).as_micros() as u64;
        w.due.push(Reverse((at_us + timeout.min(RECHECK_US), id)));
    }

    /// Tries whose timeout passed: retried while retries are left, else
    /// filtered.
    fn expire(&mut self, w: &mut Window) {
        let now = self.now_us();
        let nports = self.ports.len() as u64;
        while let Some(&Reverse((due, id))) = w.due.peek() {
            if due > now {
                break;
            }
            w.due.pop();
            let tries = w.tries[id as usize];
            if tries & DONE != 0 {
                continue;
            }
            let host = w.hosts[(u64::from(id) / nports) as usize];
            // The host's timeout now, not when the try went: the first
            // answers shrink it from the initial guess to the path's RTT.
            let timeout = self.timing.timeout(host).as_micros() as u64;
            let waited = u64::from((now as u32).wrapping_sub(w.sent_at[id as usize]));
            if waited < timeout {
                w.due
                    .push(Reverse((now + (timeout - waited).min(RECHECK_US), id)));
                continue;
            }
            if tries > self.timing.retries(host) {
                self.judge(w, id, PortState::Filtered, "no-response", None);
            } else {
                w.resend.push_back(id);
            }
        }
    }

    /// Sleeps until something can happen: a retry falls due, a token
    /// arrives, an answer comes in, results are due to be handed over.
    fn idle(&self, w: &Window) {
        let mut wait = MAX_WAIT;
        if let Some(Reverse((due, _))) = w.due.peek() {
            wait = wait.min(Duration::from_micros(due.saturating_sub(self.now_us())));
        }
        if !w.resend.is_empty() || w.next < w.order.len() {
            wait = wait.min(self.bucket.wait());
        }
        if let Some(at) = self.flush_at {
            wait = wait.min(at.saturating_duration_since(Instant::now()));
        }
        self.sockets.wait(wait);
    }

    fn read_answers(&mut self, w: &mut Window, buf: &mut [u8]) {
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
        for a in answers {
            self.answer(w, a);
        }
    }

    /// Judges the probe an answer is for, if it is a genuine answer to a
    /// probe still waiting.
    fn answer(&mut self, w: &mut Window, a: Answer) {
        if a.our_port != self.sockets.our_port(a.target.is_ipv4())
            || a.cookie != self.cookie.of(a.target, a.port, a.our_port)
        {
            return;
        }
        let Some(&host) = w.host_of.get(&a.target) else {
            return;
        };
        let slot = self.port_slot[usize::from(a.port)];
        if slot == u32::MAX {
            return;
        }
        let id = host * self.ports.len() as u32 + slot;
        let tries = w.tries[id as usize];
        if tries == 0 || tries & DONE != 0 {
            return;
        }
        let rtt_us = (self.now_us() as u32).wrapping_sub(w.sent_at[id as usize]);
        let rtt = Duration::from_micros(u64::from(rtt_us));
        let (state, reason, rtt) = match a.verdict {
            Verdict::Open => (PortState::Open, "syn-ack", Some(rtt)),
            Verdict::Closed => (PortState::Closed, "reset", Some(rtt)),
            Verdict::Unreachable(r) => (PortState::Unreachable, r, None),
            Verdict::Filtered(r) => (PortState::Filtered, r, None),
        };
        if let Some(rtt) = rtt {
            self.timing.answered(a.target, rtt, tries - 1);
        }
        self.judge(w, id, state, reason, rtt);
    }

    fn judge(
        &mut self,
        w: &mut Window,
        id: u32,
        state: PortState,
        reason: &'static str,
        rtt: Option<Duration>,
    ) {
        let nports = self.ports.len() as u64;
        let i = id as usize;
        let tries = w.tries[i];
        w.tries[i] = tries | DONE;
        w.open -= 1;
        self.out.push(PortResult {
            addr: w.hosts[(u64::from(id) / nports) as usize],
            port: self.ports.as_slice()[(u64::from(id) % nports) as usize],
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

    /// Hands the results over; false when the consumer is gone.
    fn flush(&mut self) -> bool {
        self.flush_at = None;
        if self.out.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.out, Vec::with_capacity(RESULTS));
        self.tx.blocking_send(batch).is_ok()
    }
}

/// A host's route: its source address (IPv4 needs it for the checksum),
/// or the routing error every probe to it would get — the error a
/// connect gets too, with the connect engine's reason.
fn route_of(ip: IpAddr) -> Route {
    match raw::route(ip) {
        Ok(IpAddr::V4(src)) => Route::Via(Some(src)),
        Ok(IpAddr::V6(_)) => Route::Via(None),
        Err(SendError::HostUnreachable) => Route::Fails(PortState::Unreachable, "host-unreach"),
        Err(SendError::NetUnreachable) => Route::Fails(PortState::Unreachable, "net-unreach"),
        Err(SendError::Prohibited) => Route::Fails(PortState::Filtered, "admin-prohibited"),
        // No source to compute a checksum with: probes would be dropped.
        Err(SendError::Busy | SendError::Other(_)) => {
            Route::Fails(PortState::Unreachable, "net-unreach")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_paces_and_saves_at_most_a_batch() {
        let mut b = Bucket::new(1000.0);
        let t0 = b.at;
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.available(t0 + Duration::from_millis(10)), 10);
        b.spend(10);
        assert!(b.wait() > Duration::ZERO);
        assert_eq!(b.available(t0 + Duration::from_secs(60)), BATCH, "capped");
    }
}
