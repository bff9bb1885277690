//! Adaptive probe timeouts and retry budget (the rules nmap uses).
//!
//! Each answered probe gives a round-trip sample. Per host, and for the whole
//! scan as a fallback for hosts that have not answered yet, we keep a
//! smoothed RTT and its variance (RFC 6298 / nmap): `timeout = srtt + 4 ×
//! rttvar`, clamped. Retries are adaptive too: a probe that is only answered
//! on its n-th try proves the path drops packets, so up to n+1 tries are
//! allowed afterwards, within `[min_retries, max_retries]`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Timing knobs. Defaults are close to nmap's `-T4`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingConfig {
    /// Timeout before any answer was seen.
    pub initial_timeout: Duration,
    pub min_timeout: Duration,
    pub max_timeout: Duration,
    /// Retries every unanswered probe gets, even on a path that looks lossless.
    pub min_retries: u8,
    /// Upper bound once loss has been observed.
    pub max_retries: u8,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            initial_timeout: Duration::from_millis(1000),
            min_timeout: Duration::from_millis(100),
            max_timeout: Duration::from_millis(3000),
            min_retries: 2,
            max_retries: 6,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Rtt {
    srtt: f64,
    rttvar: f64,
    samples: u32,
    /// Highest try number (0 = first) that received an answer.
    max_answered_try: u8,
}

impl Rtt {
    fn add(&mut self, sample: f64, tryno: u8) {
        if self.samples == 0 {
            self.srtt = sample;
            self.rttvar = sample / 2.0;
        } else {
            let delta = sample - self.srtt;
            self.srtt += delta / 8.0;
            self.rttvar += (delta.abs() - self.rttvar) / 4.0;
        }
        self.samples = self.samples.saturating_add(1);
        self.max_answered_try = self.max_answered_try.max(tryno);
    }
}

/// Shared timing state of one scan.
pub struct Timing {
    cfg: TimingConfig,
    global: Mutex<Rtt>,
    hosts: Mutex<HashMap<IpAddr, Rtt>>,
    /// Answers recorded: timeouts and retries change only when it does.
    answers: AtomicU64,
}

impl Timing {
    pub fn new(cfg: TimingConfig) -> Self {
        Timing {
            cfg,
            global: Mutex::new(Rtt::default()),
            hosts: Mutex::new(HashMap::new()),
            answers: AtomicU64::new(0),
        }
    }

    /// Records an answer from `host` after `rtt` on try `tryno`.
    pub fn answered(&self, host: IpAddr, rtt: Duration, tryno: u8) {
        let s = rtt.as_secs_f64();
        lock(&self.hosts).entry(host).or_default().add(s, tryno);
        lock(&self.global).add(s, tryno);
        self.answers.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever an answer is recorded: while it stays the same, so
    /// do every host's timeout and retries (the SYN engine caches them).
    pub(crate) fn version(&self) -> u64 {
        self.answers.load(Ordering::Acquire)
    }

    fn stats(&self, host: IpAddr) -> Rtt {
        match lock(&self.hosts).get(&host) {
            Some(r) if r.samples > 0 => *r,
            _ => *lock(&self.global),
        }
    }

    /// How long to wait for an answer from `host` right now.
    pub fn timeout(&self, host: IpAddr) -> Duration {
        let r = self.stats(host);
        if r.samples == 0 {
            return self.cfg.initial_timeout;
        }
        let t = Duration::from_secs_f64(r.srtt + 4.0 * r.rttvar);
        t.clamp(self.cfg.min_timeout, self.cfg.max_timeout)
    }

    /// How many retries an unanswered probe to `host` may get.
    pub fn retries(&self, host: IpAddr) -> u8 {
        let seen = self
            .stats(host)
            .max_answered_try
            .max(lock(&self.global).max_answered_try);
        seen.saturating_add(1).clamp(
            self.cfg.min_retries,
            self.cfg.max_retries.max(self.cfg.min_retries),
        )
    }

    pub fn config(&self) -> &TimingConfig {
        &self.cfg
    }

    /// Smoothed RTT and variance of a host, if it answered (for reports).
    pub fn host_rtt(&self, host: IpAddr) -> Option<(Duration, Duration)> {
        lock(&self.hosts)
            .get(&host)
            .filter(|r| r.samples > 0)
            .map(|r| {
                (
                    Duration::from_secs_f64(r.srtt),
                    Duration::from_secs_f64(r.rttvar),
                )
            })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the numbers inconsistent
    // in a way that matters, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn starts_with_the_initial_timeout() {
        let t = Timing::new(TimingConfig::default());
        assert_eq!(t.timeout("198.51.100.1".parse().unwrap()), ms(1000));
    }

    #[test]
    fn converges_to_srtt_plus_four_rttvar_and_clamps() {
        let t = Timing::new(TimingConfig::default());
        let h: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..200 {
            t.answered(h, ms(300), 0);
        }
        let to = t.timeout(h);
        assert!(to >= ms(300) && to < ms(320), "{to:?}");
        let fast: IpAddr = "198.51.100.2".parse().unwrap();
        t.answered(fast, Duration::from_micros(50), 0);
        assert_eq!(t.timeout(fast), ms(100), "clamped to the minimum");
    }

    #[test]
    fn hosts_without_samples_use_the_global_estimate() {
        let t = Timing::new(TimingConfig::default());
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        t.answered(a, ms(400), 0);
        assert_eq!(t.timeout(b), t.timeout(a));
    }

    #[test]
    fn retries_grow_after_late_answers() {
        let t = Timing::new(TimingConfig::default());
        let h: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(t.retries(h), 2);
        t.answered(h, ms(1), 3);
        assert_eq!(t.retries(h), 4);
        t.answered(h, ms(1), 9);
        assert_eq!(t.retries(h), 6);
    }
}
