//! The login throttle's state in this process ([`Logins`], held by
//! [`crate::app::App`], knowing nothing of it): per email and per client
//! address, bounded tables of [`vigil_core::throttle`] attempt counts.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vigil_core::throttle::{Attempts, Throttle, Verdict};

/// Records kept per table (emails, addresses) at most: a few MB.
pub(crate) const MAX_KEYS: usize = 100_000;

/// The longest email remembered: the longest a valid address can be. Longer
/// input cannot log in anyway; it shares the key of its first characters.
const MAX_EMAIL_KEY: usize = 254;

/// The login throttle of this process.
pub(crate) struct Logins {
    accounts: Mutex<Table<String>>,
    addresses: Mutex<Table<IpAddr>>,
    /// The origin of the monotonic times [`Throttle`] is given.
    origin: Instant,
}

impl Default for Logins {
    fn default() -> Self {
        Logins::new(Throttle::ACCOUNT, Throttle::ADDRESS, MAX_KEYS)
    }
}

/// Why an attempt may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyAttempts {
    /// When the client may try again.
    pub retry_after: Duration,
}

impl TooManyAttempts {
    /// Whole seconds for `Retry-After` (rounded up, at least 1).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// An attempt that may go on: tell [`Logins::succeeded`] if it did.
#[must_use]
pub(crate) struct Attempt {
    account: String,
    address: Option<IpAddr>,
}

impl Logins {
    pub(crate) fn new(account: Throttle, address: Throttle, max_keys: usize) -> Self {
        Logins {
            accounts: Mutex::new(Table::new(account, max_keys)),
            addresses: Mutex::new(Table::new(address, max_keys)),
            origin: Instant::now(),
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Counts an attempt to log in as `email` from `client`, or says how
    /// long to wait (nothing counted then).
    pub(crate) fn attempt(
        &self,
        email: &str,
        client: Option<IpAddr>,
    ) -> Result<Attempt, TooManyAttempts> {
        self.attempt_at(email, client, self.now())
    }

    fn attempt_at(
        &self,
        email: &str,
        client: Option<IpAddr>,
        now: Duration,
    ) -> Result<Attempt, TooManyAttempts> {
        let account = email_key(email);
        let address = client.map(address_key);
        let mut accounts = lock(&self.accounts);
        let mut addresses = lock(&self.addresses);
        // Both must allow it before either counts it.
        let by_account = accounts.verdict(&account, now);
        let by_address = address.map(|a| addresses.verdict(&a, now));
        let wait = [Some(by_account), by_address]
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Verdict::Wait(d) => Some(d),
                Verdict::Go(_) => None,
            })
            .max();
        if let Some(retry_after) = wait {
            return Err(TooManyAttempts { retry_after });
        }
        if let Verdict::Go(r) = by_account {
            accounts.keep(account.clone(), r, now);
        }
        if let (Some(a), Some(Verdict::Go(r))) = (address, by_address) {
            addresses.keep(a, r, now);
        }
        Ok(Attempt { account, address })
    }

    /// The attempt logged in: the account starts afresh, the address gets
    /// this attempt back.
    pub(crate) fn succeeded(&self, attempt: Attempt) {
        lock(&self.accounts).map.remove(&attempt.account);
        if let Some(a) = attempt.address {
            let mut addresses = lock(&self.addresses);
            let rule = addresses.rule;
            if let Some(r) = addresses.map.remove(&a) {
                if let Some(r) = rule.succeeded(r) {
                    addresses.map.insert(a, r);
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The email as counted: trimmed, lower-cased, at most [`MAX_EMAIL_KEY`]
/// characters.
fn email_key(email: &str) -> String {
    email
        .trim()
        .chars()
        .take(MAX_EMAIL_KEY)
        .flat_map(char::to_lowercase)
        .collect()
}

/// The address as counted: IPv4 (also when mapped into IPv6) as is, IPv6
/// by its /64 network.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The records of one kind of key, bounded.
struct Table<K> {
    rule: Throttle,
    map: HashMap<K, Attempts>,
    max: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(rule: Throttle, max: usize) -> Self {
        Table {
            rule,
            map: HashMap::new(),
            max: max.max(1),
        }
    }

    fn verdict(&self, key: &K, now: Duration) -> Verdict {
        self.rule.attempt(self.map.get(key).copied(), now)
    }

    fn keep(&mut self, key: K, record: Attempts, now: Duration) {
        if self.map.len() >= self.max && !self.map.contains_key(&key) {
            self.make_room(now);
        }
        self.map.insert(key, record);
    }

    /// Drops forgotten records, and if that is not enough the oldest
    /// eighth: one pass over the table buys room for many inserts.
    fn make_room(&mut self, now: Duration) {
        let rule = self.rule;
        self.map.retain(|_, r| !rule.forgotten(r, now));
        if self.map.len() < self.max {
            return;
        }
        let mut lasts: Vec<Duration> = self.map.values().map(|r| r.last).collect();
        let n = (lasts.len() / 8).max(1);
        let (_, cut, _) = lasts.select_nth_unstable(n - 1);
        let cut = *cut;
        // Fewer than `n` are older than the cut: all go; then as many of
        // those at the cut as it takes.
        let before = self.map.len();
        self.map.retain(|_, r| r.last >= cut);
        let mut more = n.saturating_sub(before - self.map.len());
        self.map.retain(|_, r| {
            let drop = r.last == cut && more > 0;
            more -= usize::from(drop);
            !drop
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Throttle = Throttle {
        free: 2,
        base: Duration::from_secs(10),
        max: Duration::from_secs(100),
        forget_after: Duration::from_secs(1000),
    };

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn keys() {
        assert_eq!(email_key("  Owner@ACME.test "), "owner@acme.test");
        assert_eq!(email_key(&"x".repeat(10_000)).len(), MAX_EMAIL_KEY);
        assert_eq!(
            address_key("10.0.0.1".parse().unwrap()),
            ip("10.0.0.1").unwrap()
        );
        assert_eq!(
            address_key("::ffff:10.0.0.1".parse().unwrap()),
            ip("10.0.0.1").unwrap()
        );
        assert_eq!(
            address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap()),
            ip("2001:db8:1:2::").unwrap()
        );
    }

    #[test]
    fn an_account_waits_after_its_free_attempts_whatever_the_address() {
        let logins = Logins::new(RULE, Throttle { free: 100, ..RULE }, 100);
        for n in 0..2 {
            let a = logins.attempt_at("v@x.test", ip(&format!("10.0.0.{n}")), s(1));
            assert!(a.is_ok());
        }
        let refused = logins.attempt_at("V@x.test", ip("10.0.0.9"), s(1)).err();
        assert_eq!(refused.map(|r| r.retry_after), Some(s(10)));
        // The right password is no way around the wait, and another
        // account is not affected.
        assert!(logins
            .attempt_at("other@x.test", ip("10.0.0.9"), s(1))
            .is_ok());
        let later = logins
            .attempt_at("v@x.test", ip("10.0.0.9"), s(11))
            .unwrap();
        logins.succeeded(later);
        // Success: the account starts afresh.
        assert!(logins.attempt_at("v@x.test", None, s(11)).is_ok());
        assert!(logins.attempt_at("v@x.test", None, s(11)).is_ok());
        assert!(logins.attempt_at("v@x.test", None, s(11)).is_err());
    }

    #[test]
    fn an_address_waits_after_its_free_attempts_whatever_the_account() {
        let logins = Logins::new(Throttle { free: 100, ..RULE }, RULE, 100);
        assert!(logins
            .attempt_at("a@x.test", ip("2001:db8::1"), s(0))
            .is_ok());
        assert!(logins
            .attempt_at("b@x.test", ip("2001:db8::2"), s(0))
            .is_ok());
        let refused = logins.attempt_at("c@x.test", ip("2001:db8::3"), s(5));
        assert_eq!(refused.err().map(|r| r.retry_after), Some(s(5)));
        // A refusal counts for nothing: `c` is not held back elsewhere.
        assert!(logins.attempt_at("c@x.test", ip("10.1.1.1"), s(5)).is_ok());
        // Logging in gives the address its attempt back, not more.
        let ok = logins
            .attempt_at("d@x.test", ip("2001:db8::4"), s(10))
            .unwrap();
        logins.succeeded(ok);
        assert!(logins
            .attempt_at("e@x.test", ip("2001:db8::5"), s(10))
            .is_err());
        assert!(logins
            .attempt_at("e@x.test", ip("2001:db8::5"), s(30))
            .is_ok());
    }

    #[test]
    fn tables_stay_bounded_and_evict_the_oldest() {
        let logins = Logins::new(RULE, RULE, 16);
        // The victim's account is under attack early on.
        for _ in 0..2 {
            let _ = logins.attempt_at("victim@x.test", None, s(0));
        }
        for n in 0..1000u64 {
            let _ = logins.attempt_at(&format!("junk{n}@x.test"), None, s(1 + n / 100));
            assert!(lock(&logins.accounts).map.len() <= 16);
        }
        // The oldest go first; fresh ones stay.
        assert!(lock(&logins.accounts).map.contains_key("junk999@x.test"));
        assert!(!lock(&logins.accounts).map.contains_key("junk0@x.test"));
    }

    #[test]
    fn retry_after_rounds_up() {
        let t = |ms| TooManyAttempts {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(t(0).retry_after_secs(), 1);
        assert_eq!(t(1).retry_after_secs(), 1);
        assert_eq!(t(1000).retry_after_secs(), 1);
        assert_eq!(t(1001).retry_after_secs(), 2);
    }
}
