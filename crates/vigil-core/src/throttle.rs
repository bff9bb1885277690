//! Login throttling: when a client must wait before its next password is
//! checked.
//!
//! One [`Attempts`] record per key (an account's email, a client's
//! address). An attempt is counted when it **starts**, before the password
//! is checked, so a burst of parallel guesses cannot all slip in before the
//! first failure is recorded; a successful login then takes its own attempt
//! back ([`Throttle::succeeded`]). The first [`Throttle::free`] attempts go
//! through at once; each one after that is allowed only after a delay that
//! doubles with every attempt (from [`Throttle::base`] up to
//! [`Throttle::max`]). Attempts refused while waiting are not counted, so
//! hammering does not lengthen the wait of the real owner for ever; a key
//! with no attempt for [`Throttle::forget_after`] starts afresh.
//!
//! Times are a monotonic clock's reading passed in by the caller, as a
//! [`Duration`] since any fixed origin; nothing here reads a clock.

use std::time::Duration;

/// The rule of one kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Attempts allowed without any delay.
    pub free: u32,
    /// The wait after the first attempt past the free ones; it doubles with
    /// each further attempt.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A key with no attempt for this long is forgotten (its count starts
    /// again from zero).
    pub forget_after: Duration,
}

impl Throttle {
    /// Per account (email): a person mistyping a few times is not slowed
    /// down; a guesser gets one try after 1 s, 2 s, 4 s … then one every
    /// 15 minutes: about a hundred guesses a day.
    pub const ACCOUNT: Throttle = Throttle {
        free: 5,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };

    /// Per client address: more room, since an office behind one NAT
    /// address shares it, but one address cannot try one password on many
    /// accounts (password spraying) faster than the same backoff.
    pub const ADDRESS: Throttle = Throttle {
        free: 20,
        base: Duration::from_secs(1),
        max: Duration::from_secs(15 * 60),
        forget_after: Duration::from_secs(60 * 60),
    };

    /// The wait imposed after `attempts` counted attempts: none until the
    /// free ones are used, then `base`, doubling, up to `max`.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        if attempts < self.free {
            return Duration::ZERO;
        }
        // 2^n overflows long before `max` matters; cap the exponent.
        let doublings = (attempts - self.free).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// Whether an attempt may start at `now`: [`Verdict::Go`] with the
    /// record to keep (the attempt counted), or [`Verdict::Wait`] with how
    /// long (the record unchanged).
    pub fn attempt(&self, record: Option<Attempts>, now: Duration) -> Verdict {
        let record = record.filter(|r| !self.forgotten(r, now));
        let Some(r) = record else {
            return Verdict::Go(Attempts {
                count: 1,
                last: now,
            });
        };
        let allowed_at = r.last.saturating_add(self.delay_after(r.count));
        if now < allowed_at {
            return Verdict::Wait(allowed_at - now);
        }
        Verdict::Go(Attempts {
            count: r.count.saturating_add(1),
            last: now,
        })
    }

    /// The record after an attempt that succeeded: that attempt is taken
    /// back (for an account the caller rather forgets the record). `None`:
    /// nothing left to remember.
    pub fn succeeded(&self, record: Attempts) -> Option<Attempts> {
        let count = record.count.saturating_sub(1);
        (count > 0).then_some(Attempts { count, ..record })
    }

    /// Whether `record` is so old that it no longer counts.
    pub fn forgotten(&self, record: &Attempts, now: Duration) -> bool {
        now.saturating_sub(record.last) >= self.forget_after
    }
}

/// What is remembered of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts counted (not taken back, not forgotten).
    pub count: u32,
    /// When the last one started.
    pub last: Duration,
}

/// The answer of [`Throttle::attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password; keep this record.
    Go(Attempts),
    /// Refuse without checking; the client may try again after this long.
    Wait(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Throttle = Throttle {
        free: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(10),
        forget_after: Duration::from_secs(100),
    };

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn at(count: u32, last: u64) -> Option<Attempts> {
        Some(Attempts {
            count,
            last: s(last),
        })
    }

    #[test]
    fn delay_doubles_after_the_free_attempts_up_to_the_max() {
        let cases = [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 1),
            (4, 2),
            (5, 4),
            (6, 8),
            (7, 10),
            (40, 10),
            (u32::MAX, 10),
        ];
        for (attempts, secs) in cases {
            assert_eq!(T.delay_after(attempts), s(secs), "{attempts}");
        }
    }

    #[test]
    fn attempts_go_or_wait() {
        use Verdict::{Go, Wait};
        let go = |count, last| Go(at(count, last).unwrap());
        let cases = [
            // (record, now, verdict)
            (None, 50, go(1, 50)),
            (at(1, 50), 50, go(2, 50)),
            (at(2, 50), 50, go(3, 50)),
            // the free ones used: one second
            (at(3, 50), 50, Wait(s(1))),
            (at(3, 50), 51, go(4, 51)),
            // then two seconds
            (at(4, 51), 52, Wait(s(1))),
            (at(4, 51), 53, go(5, 53)),
            // capped at max
            (at(30, 100), 105, Wait(s(5))),
            (at(30, 100), 110, go(31, 110)),
            // forgotten after `forget_after` without attempts
            (at(30, 100), 199, go(31, 199)),
            (at(30, 100), 200, go(1, 200)),
            (at(u32::MAX, 0), 50, go(u32::MAX, 50)),
        ];
        for (record, now, want) in cases {
            assert_eq!(T.attempt(record, s(now)), want, "{record:?} at {now}");
        }
    }

    #[test]
    fn a_burst_gets_only_the_free_attempts() {
        let mut record = None;
        let mut went = 0;
        for _ in 0..50 {
            match T.attempt(record, s(7)) {
                Verdict::Go(r) => {
                    went += 1;
                    record = Some(r);
                }
                Verdict::Wait(d) => assert_eq!(d, s(1)),
            }
        }
        assert_eq!(went, T.free);
    }

    #[test]
    fn success_takes_its_attempt_back() {
        assert_eq!(T.succeeded(at(1, 5).unwrap()), None);
        assert_eq!(T.succeeded(at(4, 5).unwrap()), at(3, 5));
        // A guesser who also owns an account cannot wipe the count by
        // logging in between guesses: each success returns one attempt.
        let mut record = None;
        for n in 0..10u64 {
            let Verdict::Go(r) = T.attempt(record, s(n * 20)) else {
                panic!("waits are short here")
            };
            let Verdict::Go(r) = T.attempt(Some(r), s(n * 20 + 10)) else {
                panic!("waits are short here")
            };
            record = T.succeeded(r);
        }
        assert_eq!(record.map(|r| r.count), Some(10));
    }

    #[test]
    fn forgetting() {
        let r = at(9, 10).unwrap();
        assert!(!T.forgotten(&r, s(109)));
        assert!(T.forgotten(&r, s(110)));
        // A clock reading before the record is no reason to forget it.
        assert!(!T.forgotten(&r, s(0)));
    }
}
