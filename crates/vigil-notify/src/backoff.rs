//! Retry delays for the outbox worker: exponential, capped, with deterministic jitter.

use crate::error::SendError;
use std::time::Duration;

/// The delay after the first failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// The longest delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// Up to this fraction of the delay is taken off at random, so that notifications
/// failing together do not retry together.
pub const BACKOFF_JITTER: f64 = 0.2;

/// The delay before the next try, after try number `attempt` (0-based) failed:
/// `30 s × 2^attempt`, at most 1 h, minus up to 20 % jitter.
///
/// Pure: the jitter comes from `seed` (e.g. the outbox row id), so the same
/// (attempt, seed) always gives the same delay. The result lies in
/// `[0.8 × nominal, nominal]` and never exceeds [`BACKOFF_CAP`].
pub fn backoff(attempt: u32, seed: u64) -> Duration {
    let nominal = nominal_ms(attempt);
    let u = unit_interval(splitmix64(
        seed ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    ));
    let jitter = (nominal as f64 * BACKOFF_JITTER * u) as u64;
    Duration::from_millis(nominal - jitter)
}

/// When to try again after `err`, or `None` when retrying cannot help: the
/// larger of [`backoff`] and the server's `Retry-After` (itself capped at 1 h).
pub fn retry_delay(err: &SendError, attempt: u32, seed: u64) -> Option<Duration> {
    if !err.is_transient() {
        return None;
    }
    let delay = backoff(attempt, seed);
    Some(match err.retry_after() {
        Some(asked) => delay.max(asked.min(BACKOFF_CAP)),
        None => delay,
    })
}

fn nominal_ms(attempt: u32) -> u64 {
    let base = BACKOFF_BASE.as_millis() as u64;
    let cap = BACKOFF_CAP.as_millis() as u64;
    match 1u64.checked_shl(attempt.min(63)) {
        Some(factor) => base.saturating_mul(factor).min(cap),
        None => cap,
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A float in [0, 1) from the top 53 bits.
fn unit_interval(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Channel;

    #[test]
    fn doubles_from_thirty_seconds_up_to_an_hour() {
        let nominal: Vec<u64> = (0..10).map(|a| nominal_ms(a) / 1000).collect();
        assert_eq!(
            nominal,
            [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
        );
        assert_eq!(nominal_ms(63), 3_600_000);
        assert_eq!(nominal_ms(u32::MAX), 3_600_000);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        for attempt in [0, 1, 2, 5, 7, 8, 40, u32::MAX] {
            let nominal = Duration::from_millis(nominal_ms(attempt));
            for seed in 0..500u64 {
                let d = backoff(attempt, seed);
                assert!(d <= nominal && d <= BACKOFF_CAP, "{attempt} {seed} {d:?}");
                assert!(
                    d >= nominal.mul_f64(1.0 - BACKOFF_JITTER),
                    "{attempt} {seed} {d:?}"
                );
            }
        }
    }

    #[test]
    fn deterministic_but_spread() {
        assert_eq!(backoff(3, 42), backoff(3, 42));
        let distinct: std::collections::HashSet<Duration> =
            (0..100).map(|seed| backoff(3, seed)).collect();
        assert!(distinct.len() > 90, "{}", distinct.len());
        // Spread over the whole jitter range, not bunched at one end.
        let min = distinct.iter().min().unwrap().as_secs_f64();
        let max = distinct.iter().max().unwrap().as_secs_f64();
        assert!(min < 240.0 * 0.85 && max > 240.0 * 0.95, "{min} {max}");
    }

    #[test]
    fn retry_delay_respects_permanence_and_retry_after() {
        let permanent = SendError::NotConfigured(Channel::Email);
        assert_eq!(retry_delay(&permanent, 0, 1), None);
        let limited = SendError::HttpStatus {
            endpoint: "x".into(),
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(600)),
        };
        assert_eq!(retry_delay(&limited, 0, 1), Some(Duration::from_secs(600)));
        assert_eq!(retry_delay(&limited, 9, 1), Some(backoff(9, 1)));
        let greedy = SendError::HttpStatus {
            endpoint: "x".into(),
            status: 503,
            body: String::new(),
            retry_after: Some(Duration::from_secs(86_400)),
        };
        assert_eq!(retry_delay(&greedy, 0, 1), Some(BACKOFF_CAP));
        let refused = SendError::Connect {
            endpoint: "x".into(),
            reason: "refused".into(),
        };
        assert_eq!(retry_delay(&refused, 2, 7), Some(backoff(2, 7)));
    }
}
