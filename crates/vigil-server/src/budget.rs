//! One scan budget for the whole server: how server-side scans and
//! compliance assessments of every tenant probe, and how much of it each
//! may use at once.
//!
//! **SYN probes (when the process has `CAP_NET_RAW`).** Every scan is a
//! job of one SYN engine ([`vigil_scan::ScanService`]: a thread per core,
//! at most 4, each with its own raw sockets), one rate (`--scan-rate`) for
//! all accounts together, split evenly between the accounts with probes to
//! send. A tenant with a thousand agents and a tenant with one scan at the
//! same speed.
//!
//! **Connect probes (the fallback, or `--scan-probes connect`).** Alone,
//! a scan keeps up to ten thousand connects in flight (vigil-scan's
//! default). A server running several tenants' scans at once would
//! multiply that and starve its own listeners and database connections
//! of descriptors. So every scan the server runs takes a permit per probed
//! port from this one budget (vigil-scan's [`Permits`] hook), sized from
//! the open-file limit (or `--scan-sockets`).
//!
//! The socket budget is shared fairly: while `n` accounts have a scan
//! running, each may hold at most `total / n` permits (`vigil_core::
//! fair_share::even_share`), however many scans it runs. An account alone
//! may use it all; when a second starts, the first gives permits back as
//! its probes end (each lasts at most a few timeouts) until both hold
//! half. Waiting is cheap: each scan shard waits for one permit at a time,
//! and a freed permit wakes the few waiters to look again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use vigil_core::fair_share::even_share;
use vigil_scan::{
    Method, Permit, PermitFuture, PermitSource, Permits, ScanConfig, ScanService, ServiceUse,
};
use vigil_store::AccountId;

/// Descriptors kept out of the budget for everything else: the listeners'
/// connections (agents, console, API clients), database connections,
/// files and the notifier.
const RESERVED_FDS: u64 = 1024;
/// The most the budget is sized to on its own: what one scan takes alone.
const MAX_AUTO: usize = 10_000;
/// The least, so scans progress even under a tiny open-file limit.
const MIN_AUTO: usize = 64;

/// The budget when the operator sets none: half of the open-file limit
/// left after [`RESERVED_FDS`] (the other half stays for agents and
/// clients), between [`MIN_AUTO`] and [`MAX_AUTO`]. Without a per-process
/// limit (Windows), what one scan would take alone.
pub(crate) fn auto_size(open_files: Option<u64>) -> usize {
    match open_files {
        Some(n) => usize::try_from(n.saturating_sub(RESERVED_FDS) / 2)
            .unwrap_or(MAX_AUTO)
            .clamp(MIN_AUTO, MAX_AUTO),
        None => vigil_scan::auto_concurrency().clamp(MIN_AUTO, MAX_AUTO),
    }
}

/// Server-side scans one replica runs at once with connect probes: each
/// is an engine of its own (a thread per core), so they are few; the
/// socket budget bounds their probes.
const CONNECT_SCANS: usize = 4;

/// The server's scan sockets and SYN engine; cheap to clone (one shared
/// budget).
#[derive(Clone)]
pub(crate) struct ScanBudget {
    shared: Arc<Shared>,
    /// The SYN engine every scan goes through, when SYN probes are used.
    syn: Option<ScanService>,
}

struct Shared {
    /// Permits in all.
    total: usize,
    state: Mutex<State>,
    /// Signalled when a permit is given back or an account's scans end
    /// (shares grow): waiters look again.
    freed: Notify,
}

#[derive(Default)]
struct State {
    /// Permits held now, and the most ever held at once.
    in_use: usize,
    peak: usize,
    /// Accounts with a scan running or permits held.
    accounts: HashMap<AccountId, Usage>,
}

#[derive(Default)]
struct Usage {
    /// Permits the account holds.
    in_use: usize,
    /// Its scans running (holding a [`Permits`] of [`ScanBudget::permits`]).
    scans: usize,
}

/// What `/metrics` shows of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetUse {
    pub total: usize,
    pub in_use: usize,
    pub peak: usize,
    /// Accounts with a scan running.
    pub accounts: usize,
}

impl ScanBudget {
    /// A budget of `total` sockets (at least 1).
    pub(crate) fn new(total: usize) -> Self {
        ScanBudget {
            shared: Arc::new(Shared {
                total: total.max(1),
                state: Mutex::new(State::default()),
                freed: Notify::new(),
            }),
            syn: None,
        }
    }

    /// The budget of `--scan-sockets` (else [`auto_size`] from this
    /// process's open-file limit) and, with `probes` SYN (or auto and
    /// permitted), the SYN engine at `rate` probes a second.
    pub(crate) fn from_config(
        configured: Option<usize>,
        probes: Method,
        rate: f64,
    ) -> Result<Self, String> {
        let total = configured.unwrap_or_else(|| auto_size(vigil_scan::raise_nofile_limit()));
        let mut budget = ScanBudget::new(total);
        budget.syn = match probes {
            Method::Connect => None,
            Method::Syn => {
                Some(ScanService::start(rate).map_err(|e| format!("--scan-probes syn: {e}"))?)
            }
            Method::Auto if vigil_scan::syn_available() => match ScanService::start(rate) {
                Ok(service) => Some(service),
                Err(e) => {
                    tracing::warn!(error = %e, "SYN engine not started; scans use connect probes");
                    None
                }
            },
            Method::Auto => None,
        };
        match &budget.syn {
            Some(_) => tracing::info!(
                rate,
                "server-side scans and assessments of all accounts: SYN probes on one engine"
            ),
            None if probes == Method::Connect => tracing::info!(
                sockets = total,
                "server-side scans and assessments of all accounts: connect probes \
                 (--scan-probes connect), one socket budget"
            ),
            None => tracing::info!(
                sockets = total,
                "server-side scans and assessments of all accounts: connect probes \
                 (SYN needs CAP_NET_RAW), one socket budget"
            ),
        }
        Ok(budget)
    }

    /// The SYN engine's use, when scans go through it.
    pub(crate) fn syn_usage(&self) -> Option<ServiceUse> {
        self.syn.as_ref().map(ScanService::usage)
    }

    /// Server-side scans a replica should hold at once: with the SYN
    /// engine, twice what its shards run at once (the rest wait in their
    /// queues, so a finished scan is replaced without a claim round trip);
    /// with connect probes, [`CONNECT_SCANS`].
    pub(crate) fn scans_at_once(&self) -> usize {
        match &self.syn {
            Some(service) => 2 * vigil_scan::SERVICE_MAX_RUNNING * service.usage().shards,
            None => CONNECT_SCANS,
        }
    }

    pub(crate) fn usage(&self) -> BudgetUse {
        let st = self.shared.lock();
        BudgetUse {
            total: self.shared.total,
            in_use: st.in_use,
            peak: st.peak,
            accounts: st.active(),
        }
    }

    /// The permits of one scan of `account`: the account counts as
    /// scanning (and gets its share) until the last clone is dropped.
    pub(crate) fn permits(&self, account: AccountId) -> Permits {
        self.shared
            .lock()
            .accounts
            .entry(account)
            .or_default()
            .scans += 1;
        Permits::new(AccountScan {
            shared: self.shared.clone(),
            account,
        })
    }

    /// A scan configuration that draws on the budget for `account`.
    pub(crate) fn scan_config(&self, account: AccountId) -> ScanConfig {
        if let Some(service) = &self.syn {
            return ScanConfig {
                method: Method::Syn,
                service: Some(service.share(account.as_uuid().as_u128())),
                ..ScanConfig::default()
            };
        }
        ScanConfig {
            method: Method::Connect,
            // The budget bounds the sockets; a scan never needs more slots.
            concurrency: Some(self.shared.total),
            permits: Some(self.permits(account)),
            ..ScanConfig::default()
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a permit for `account` if the budget and its share allow.
    fn try_take(&self, account: AccountId) -> bool {
        let mut st = self.lock();
        let share = even_share(self.total, st.active());
        if st.in_use >= self.total {
            return false;
        }
        let usage = st.accounts.entry(account).or_default();
        if usage.in_use >= share {
            return false;
        }
        usage.in_use += 1;
        st.in_use += 1;
        st.peak = st.peak.max(st.in_use);
        true
    }

    /// Updates the account's usage with `f`, forgets it once idle, and
    /// wakes the waiters.
    fn update(&self, account: AccountId, f: impl FnOnce(&mut Usage, &mut usize)) {
        {
            let mut st = self.lock();
            let State {
                in_use, accounts, ..
            } = &mut *st;
            if let Some(usage) = accounts.get_mut(&account) {
                f(usage, in_use);
                if usage.in_use == 0 && usage.scans == 0 {
                    accounts.remove(&account);
                }
            }
        }
        self.freed.notify_waiters();
    }
}

impl State {
    /// Accounts with a scan running (an account whose scans ended but
    /// still holds permits does not count: its share is going away).
    fn active(&self) -> usize {
        self.accounts.values().filter(|u| u.scans > 0).count()
    }
}

/// One scan's claim on the budget, for one account.
struct AccountScan {
    shared: Arc<Shared>,
    account: AccountId,
}

impl Drop for AccountScan {
    fn drop(&mut self) {
        self.shared.update(self.account, |usage, _| {
            usage.scans = usage.scans.saturating_sub(1)
        });
    }
}

impl PermitSource for AccountScan {
    fn acquire(&self) -> PermitFuture {
        let (shared, account) = (self.shared.clone(), self.account);
        Box::pin(async move {
            loop {
                // Registered before looking, so a permit freed in between
                // is not missed.
                let freed = shared.freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if shared.try_take(account) {
                    let shared = shared.clone();
                    return Some(Permit::new(Held { shared, account }));
                }
                freed.await;
            }
        })
    }
}

/// A permit held; given back on drop.
struct Held {
    shared: Arc<Shared>,
    account: AccountId,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.shared.update(self.account, |usage, in_use| {
            usage.in_use = usage.in_use.saturating_sub(1);
            *in_use = in_use.saturating_sub(1);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use vigil_core::{PortList, TargetSpec};
    use vigil_scan::{Scanner, TargetSet};

    #[test]
    fn sized_from_the_open_file_limit() {
        for (limit, want) in [
            (Some(1024), MIN_AUTO),
            (Some(4096), 1536),
            (Some(65_536), 10_000),
            (Some(1 << 20), 10_000),
            (Some(0), MIN_AUTO),
        ] {
            assert_eq!(auto_size(limit), want, "{limit:?}");
        }
        assert!((MIN_AUTO..=MAX_AUTO).contains(&auto_size(None)));
    }

    /// Takes one permit of `permits` if one is free now.
    fn take_now(permits: &Permits) -> Option<Permit> {
        use futures::FutureExt;
        acquire(permits).now_or_never().flatten()
    }

    fn acquire(permits: &Permits) -> PermitFuture {
        permits.acquire()
    }

    #[tokio::test]
    async fn an_account_alone_takes_all_and_shares_when_another_scans() {
        let budget = ScanBudget::new(10);
        let (a, b) = (AccountId::random(), AccountId::random());
        let a_scan = budget.permits(a);
        let mut a_held: Vec<Permit> = std::iter::from_fn(|| take_now(&a_scan)).collect();
        assert_eq!(a_held.len(), 10, "alone, the whole budget");
        assert_eq!(budget.usage().in_use, 10);

        // B starts scanning: it waits for a permit A gives back, and A
        // cannot take it again (its share is now half).
        let b_scan = budget.permits(b);
        assert!(take_now(&b_scan).is_none(), "nothing free yet");
        let b_waits = tokio::spawn(acquire(&b_scan));
        tokio::task::yield_now().await;
        a_held.pop();
        let b_got = tokio::time::timeout(Duration::from_secs(5), b_waits)
            .await
            .expect("B gets the freed permit")
            .unwrap();
        assert!(b_got.is_some());
        assert!(take_now(&a_scan).is_none(), "A is over its share");
        // A gives back down to its half; B takes its half, no more.
        a_held.truncate(5);
        let mut b_held: Vec<Permit> = std::iter::from_fn(|| take_now(&b_scan)).collect();
        assert_eq!(b_held.len(), 4, "B's share is 5 (one taken before)");
        assert!(take_now(&a_scan).is_none());
        assert_eq!(
            budget.usage(),
            BudgetUse {
                total: 10,
                in_use: 10,
                peak: 10,
                accounts: 2
            }
        );

        // A's scan ends: B may grow to the whole budget.
        drop(a_scan);
        a_held.clear();
        b_held.extend(std::iter::from_fn(|| take_now(&b_scan)));
        assert_eq!(b_held.len() + 1, 10);
        drop((b_held, b_got, b_scan));
        assert_eq!(budget.usage().in_use, 0);
        assert_eq!(budget.usage().accounts, 0);
        assert!(
            budget.shared.lock().accounts.is_empty(),
            "idle accounts forgotten"
        );
    }

    #[tokio::test]
    async fn many_accounts_still_progress() {
        let budget = ScanBudget::new(2);
        let scans: Vec<_> = (0..5)
            .map(|_| budget.permits(AccountId::random()))
            .collect();
        // Five accounts, two sockets: a share of one each, two at a time.
        let held: Vec<_> = scans.iter().filter_map(take_now).collect();
        assert_eq!(held.len(), 2);
        let waiting = tokio::spawn(acquire(&scans[4]));
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(got, Ok(Ok(Some(_)))));
    }

    /// Two accounts scan loopback at once through a budget of 16: both
    /// progress side by side, and never are more than 16 ports probed at
    /// once (the budget's peak, which `/metrics` shows).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_tenants_scans_share_the_budget() {
        let budget = ScanBudget::new(16);
        let ports = PortList::parse("1-20000").unwrap();
        let run = |account: AccountId| {
            let (budget, ports) = (budget.clone(), ports.clone());
            async move {
                let targets = TargetSet::resolve(
                    &["127.0.0.1".parse::<TargetSpec>().unwrap()],
                    Default::default(),
                )
                .await
                .unwrap();
                let mut scan = Scanner::new(budget.scan_config(account))
                    .unwrap()
                    .start(targets, ports)
                    .unwrap();
                let (mut n, mut first, mut last) = (0, None, Instant::now());
                while scan.next().await.is_some() {
                    n += 1;
                    first.get_or_insert_with(Instant::now);
                    last = Instant::now();
                }
                (n, first.unwrap(), last)
            }
        };
        let (a, b) = tokio::join!(
            tokio::spawn(run(AccountId::random())),
            tokio::spawn(run(AccountId::random()))
        );
        let ((na, a_first, a_last), (nb, b_first, b_last)) = (a.unwrap(), b.unwrap());
        assert_eq!((na, nb), (20_000, 20_000), "every port reported");
        // Each had results before the other finished: they ran side by side.
        assert!(
            a_first < b_last && b_first < a_last,
            "one scan waited for the other"
        );
        let usage = budget.usage();
        assert!(usage.peak <= 16 && usage.peak > 0, "peak {}", usage.peak);
        // The scans' shard threads let go of their share as they exit.
        let released = async {
            while budget.usage().accounts > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), released)
            .await
            .expect("the ended scans give their share back");
        assert_eq!(budget.usage().in_use, 0);
    }
}
