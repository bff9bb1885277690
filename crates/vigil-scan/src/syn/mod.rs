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
//! windows of hosts so the per-probe arrays stay bounded. One engine can
//! run many scans at once with one rate and fair shares ([`ScanService`],
//! the server's); `vigil scan` runs its scan on an engine of its own.

pub(crate) mod packet;
mod service;

use crate::engine::{Scan, ScanConfig};
use crate::sys::raw::{self, RawSockets};
use crate::sys::SendError;
use crate::timing::Timing;
use crate::{ScanError, TargetSet};
pub(crate) use packet::SYN_LEN;
pub use service::{ScanService, ServiceShare, ServiceUse, MAX_RUNNING};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// Starts a SYN scan on an engine of its own (one thread, raw sockets of
/// the families the targets need, `cfg.max_rate`).
pub(crate) fn start(
    cfg: &ScanConfig,
    targets: TargetSet,
    ports: PortList,
    timing: Arc<Timing>,
) -> Result<Scan, ScanError> {
    let v4 = targets.iter().any(|a| a.is_ipv4());
    let v6 = targets.iter().any(|a| a.is_ipv6());
    let sockets = RawSockets::open(v4, v6).map_err(refused)?;
    let service =
        ScanService::with_sockets(sockets, cfg.max_rate.unwrap_or(DEFAULT_RATE), WINDOW_PROBES)?;
    // The engine ends with its last scan once this handle is gone.
    service.submit(0, targets, ports, timing, cfg.seed)
}

/// The error of a SYN scan without raw sockets.
fn refused(e: std::io::Error) -> ScanError {
    ScanError::Config(format!(
        "SYN probes need raw sockets ({e}): run as root or with CAP_NET_RAW, or use connect probes"
    ))
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
