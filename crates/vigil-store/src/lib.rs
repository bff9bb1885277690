//! Storage for Vigil: the one repository layer of the server, over SQLite
//! (embedded default) and PostgreSQL, chosen at runtime by the URL.
//!
//! ```no_run
//! # async fn demo() -> vigil_store::Result<()> {
//! use vigil_store::Store;
//! use vigil_core::AccountKind;
//!
//! let store = Store::connect("sqlite://data/vigil.db").await?; // created if missing
//! let account = store.create_account("Home", AccountKind::Member).await?;
//! # let _ = account; Ok(()) }
//! ```
//!
//! # Tenancy
//!
//! Every method that reads or changes an account's data takes the
//! [`AccountId`] and filters by it: a row of another account is reported as
//! [`StoreError::NotFound`], exactly like a row that does not exist. The
//! schema backs this up with composite foreign keys `(id, account_id)`.
//! The few methods without an account are the server's own jobs
//! ([`Store::agents_all_accounts`], [`Store::due_policies`],
//! [`Store::due_compliance_schedules`],
//! [`Store::claim_due`], [`Store::server_id`], [`Store::agent_count`], ...)
//! and the authentication entry points that find the account
//! ([`Store::verify_login`], [`Store::authenticate_token`],
//! [`Store::authenticate_agent`], [`Store::redeem_enrollment`],
//! [`Store::redeem_deployment_key`]).
//!
//! # Schema versions
//!
//! Opening a store migrates its database to the newest schema this build
//! knows; a database a newer vigil migrated is refused
//! ([`StoreError::SchemaTooNew`]) and left as it is. [`sqlite_file`] has the
//! lock, backup and restore of a SQLite database file.
//!
//! # Time
//!
//! Timestamps are unix seconds ([`UnixTime`]). Methods whose behaviour depends
//! on the time take `now`; records created without a `now` parameter use the
//! system clock.

mod accounts;
mod agent_events;
mod agents;
mod alerts;
mod audit;
mod compliance;
mod deployment_keys;
mod device_events;
mod devices;
mod error;
mod ids;
mod install_jobs;
mod leases;
mod maintenance;
mod model;
mod moves;
mod notify;
mod outside;
mod peers;
mod policies;
mod results;
mod retention;
mod schema;
mod sealed;
mod secret;
mod server;
pub mod sqlite_file;
mod stats;
mod tasks;
mod trends;
mod two_factor;
mod updates;
mod validate;

pub use accounts::TokenExpiry;
pub use agent_events::{AgentEvent, AlertSpan, NewAgentEvent, SYSTEM_ACTOR};
pub use agents::{AgentQuery, ContactRange};
pub use alerts::MAX_ACK_NOTE_CHARS;
pub use audit::{AuditEntry, NewAuditEntry};
pub use compliance::{endpoint_key, AgentIdentifyKey};
pub use deployment_keys::{
    DeploymentKey, DeploymentKeyUse, KeyUse, NewDeploymentKey, MAX_DEPLOYMENT_KEY_TTL,
};
pub use device_events::DEVICE_EVENTS_KEPT;
pub use devices::{DevicePatch, NewNetworkSweep, StoredSweep, SweepIngest, MAX_SIGHTINGS};
pub use error::{Result, StoreError};
pub use ids::{
    AccountId, AgentId, AlertId, ApiTokenId, AssessmentId, ContactId, DeploymentKeyId, DeviceId,
    EnrollmentId, InstallJobId, MaintenanceId, OutboxId, PeerId, RuleId, ScanResultId, TaskId,
    UserId,
};
pub use install_jobs::{InstallHost, InstallJob, InstallJobLimits};
pub use leases::{DuePolicy, TaskClaim};
pub use maintenance::{HeldNotice, HeldPhase, MaintenanceWindow, MAX_WINDOWS};
pub use model::{
    now_unix, Account, Agent, Alert, AlertFilter, AlertStatus, ApiToken, Assessment,
    AssessmentState, AssessmentTrigger, Channel, Contact, Delivery, DeliveryState, Heartbeat,
    Ingested, InstallHostState, InstallJobState, NewScanResult, NotificationRule, OutboxItem,
    PortResult, Probed, Role, ScanResult, ScanTask, UnixTime, User,
};
pub use model::{AckFilter, AckOutcome, AlertEvent, AlertEventKind};
pub use moves::{AgentMove, MoveOrder};
pub use notify::{retry_delay, OutboxQueue, TestSends, MAX_QUEUED_NOTIFICATIONS, TEST_KEY_PREFIX};
pub use peers::{NewPeer, Peer};
pub use retention::OUTBOX_KEPT_PER_CONTACT;
pub use sealed::Keyring;
pub use secret::{
    PasswordCost, PasswordWork, AGENT_CREDENTIAL_PREFIX, API_TOKEN_PREFIX, DEPLOYMENT_KEY_PREFIX,
    ENROLLMENT_TOKEN_PREFIX,
};
pub use two_factor::{Totp, MAX_RECOVERY_CODES};
pub use updates::Rollout;
pub use validate::limits;

use secret::{PasswordGate, PasswordHashing};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a URL selects: `sqlite:` or `postgres://` / `postgresql://`.
    pub fn for_url(url: &str) -> Result<Backend> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::invalid(
                "unsupported database URL: use sqlite://PATH (e.g. sqlite://data/vigil.db) \
                 or postgres://USER@HOST/DATABASE",
            ))
        }
    }
}

/// Tuning for [`Store::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Pool size (default 8 for SQLite, 16 for PostgreSQL).
    pub max_connections: Option<u32>,
    /// How long to wait for a free connection (default 30 s).
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the database lock (default 10 s).
    pub busy_timeout: Duration,
    /// Cost of new password hashes (default [`PasswordCost::RECOMMENDED`]).
    pub password_cost: PasswordCost,
    /// How many password hashes run at once and may wait (a flood of
    /// logins fails fast with [`StoreError::Busy`] instead of queuing).
    pub password_work: PasswordWork,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: None,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(10),
            password_cost: PasswordCost::RECOMMENDED,
            password_work: PasswordWork::default(),
        }
    }
}

pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

struct Inner {
    pool: Pool,
    /// Seals the secrets the server reads back; unset: stored as given.
    keyring: std::sync::OnceLock<sealed::Keyring>,
    passwords: PasswordHashing,
    /// Bounds the blocking threads hashing passwords at any one time.
    password_gate: PasswordGate,
    /// The cap on an account's waiting notifications (see `Store::enqueue`).
    max_queued_notifications: std::sync::atomic::AtomicU32,
}

/// The repository. Cheap to clone (one shared connection pool).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool of the store. The
/// body is compiled once per backend, so it may use any sqlx API generic over
/// the database (queries use `$1` placeholders, which both backends accept).
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.inner.pool {
            $crate::Pool::Sqlite($pool) => $body,
            $crate::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Runs `$body` in a transaction that holds the account `$account`
/// against concurrent writers of its compliance rows, commits, and
/// evaluates to `$body`'s value (`?` inside returns from the caller):
/// SQLite's `BEGIN IMMEDIATE` takes the write lock; on PostgreSQL the
/// account row is locked in a mode that still lets other rows reference it.
/// `$tx` names the transaction inside `$body`, which is expanded once per
/// backend.
macro_rules! in_account_tx {
    ($store:expr, $account:expr, |$tx:ident| $body:block) => {
        match &$store.inner.pool {
            $crate::Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
                    .bind($account.db())
                    .fetch_optional(&mut *$tx)
                    .await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}
pub(crate) use in_account_tx;

impl Store {
    /// Connects to `url` (`sqlite://path/vigil.db` or `postgres://…`) and
    /// applies pending migrations. A SQLite file (and its directory) is
    /// created if missing and opened in WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit options.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store> {
        Store::connect_migrated_to(url, options, i64::MAX).await
    }

    /// A store whose schema is migrated up to version `last` only: for
    /// tests of a migration on data written by the schema before it.
    #[doc(hidden)]
    pub async fn connect_migrated_to(url: &str, options: StoreOptions, last: i64) -> Result<Store> {
        let passwords = PasswordHashing::new(options.password_cost)?;
        let password_gate = PasswordGate::new(options.password_work)?;
        let pool = match Backend::for_url(url)? {
            Backend::Sqlite => Pool::Sqlite(connect_sqlite(url, &options).await?),
            Backend::Postgres => Pool::Postgres(connect_postgres(url, &options).await?),
        };
        schema::migrate(&pool, last).await?;
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                keyring: std::sync::OnceLock::new(),
                passwords,
                password_gate,
                max_queued_notifications: notify::MAX_QUEUED_NOTIFICATIONS.into(),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Seals the secrets the server reads back (see [`Keyring`]) from now
    /// on; set once, before serving. Without it they are stored as given.
    /// Setting the same current key again (a server restarted on the same
    /// store) is fine.
    pub fn use_keyring(&self, keyring: Keyring) -> Result<()> {
        let id = keyring.current_id().to_string();
        match self.inner.keyring.set(keyring) {
            Ok(()) => Ok(()),
            Err(_)
                if self
                    .inner
                    .keyring
                    .get()
                    .is_some_and(|k| k.current_id() == id) =>
            {
                Ok(())
            }
            Err(_) => Err(StoreError::invalid("another secrets key is in use already")),
        }
    }

    /// `plain` as stored for `context` (column and owner).
    pub(crate) fn seal(&self, context: &str, plain: &str) -> Result<String> {
        match self.inner.keyring.get() {
            Some(ring) => ring.seal(context, plain),
            None => Ok(plain.to_string()),
        }
    }

    /// What [`seal`](Self::seal) stored, readable again.
    pub(crate) fn open(&self, context: &str, stored: &str) -> Result<String> {
        match self.inner.keyring.get() {
            Some(ring) => ring.open(context, stored),
            None if stored.starts_with("vgs1:") => Err(StoreError::invalid(format!(
                "a secret ({context}) is sealed, and no secrets key is configured"
            ))),
            None => Ok(stored.to_string()),
        }
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    /// Runs `f` on a blocking thread (password hashing is CPU-heavy and
    /// takes its memory), once [`StoreOptions::password_work`] lets it:
    /// [`StoreError::Busy`] when too many wait already.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&PasswordHashing) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.inner.password_gate.turn().await?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&inner.passwords)
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic())
            }
            StoreError::Database(sqlx::Error::WorkerCrashed)
        })
    }
}

fn config_error(e: sqlx::Error) -> StoreError {
    StoreError::invalid(format!("bad database URL: {e}"))
}

async fn connect_sqlite(url: &str, o: &StoreOptions) -> Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(config_error)?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(o.busy_timeout);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory {
        let file = opts.get_filename();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", dir.display()),
                )))
            })?;
        }
    }
    let mut pool = SqlitePoolOptions::new().acquire_timeout(o.acquire_timeout);
    pool = if in_memory {
        // One connection that never closes: each in-memory connection would
        // otherwise be its own empty database.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(o.max_connections.unwrap_or(8))
    };
    Ok(pool.connect_with(opts).await?)
}

async fn connect_postgres(url: &str, o: &StoreOptions) -> Result<PgPool> {
    let opts = PgConnectOptions::from_str(url).map_err(config_error)?;
    Ok(PgPoolOptions::new()
        .max_connections(o.max_connections.unwrap_or(16))
        .acquire_timeout(o.acquire_timeout)
        .connect_with(opts)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::for_url("sqlite://data/vigil.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::for_url("sqlite::memory:").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::for_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::for_url("PostgreSQL://u@h/db").unwrap(),
            Backend::Postgres
        );
        for bad in ["", "mysql://u@h/db", "vigil.db", "http://x"] {
            assert!(
                matches!(Backend::for_url(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }

    /// Password work never runs more than `workers` at once; past `queue`
    /// waiters a caller is told at once that the server is busy, and a
    /// waiter that gives up frees its place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn password_work_is_bounded_and_overflow_is_busy() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let options = StoreOptions {
            password_cost: PasswordCost::INSECURE_FAST_FOR_TESTS,
            password_work: PasswordWork {
                workers: 2,
                queue: 3,
            },
            ..StoreOptions::default()
        };
        let store = Store::connect_with("sqlite::memory:", options)
            .await
            .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|_| {
            let (running, peak, store) = (running.clone(), peak.clone(), store.clone());
            async move {
                store
                    .blocking(move |_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }
        });
        let started = std::time::Instant::now();
        let results = futures_join_all(calls).await;
        let busy = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Busy)))
            .count();
        assert_eq!(busy, 15, "2 run, 3 wait, the rest are refused");
        assert_eq!(results.len() - busy, 5);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // 5 ran two at a time: three rounds of 200 ms.
        assert!(started.elapsed() >= Duration::from_millis(600));

        // Waiters that give up leave the queue.
        let hold = (0..2)
            .map(|_| {
                let store = store.clone();
                async move {
                    store
                        .blocking(|_| std::thread::sleep(Duration::from_millis(300)))
                        .await
                }
            })
            .collect::<Vec<_>>();
        let holding = tokio::spawn(futures_join_all(hold));
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..10 {
            let gave_up =
                tokio::time::timeout(Duration::from_millis(5), store.blocking(|_| ())).await;
            assert!(gave_up.is_err(), "it waited");
        }
        holding.await.unwrap();
        store.blocking(|_| ()).await.unwrap();
        // And real password checks go through the same gate.
        assert!(store
            .verify_login("nobody@x.test", "pw")
            .await
            .unwrap()
            .is_none());
    }

    /// Runs every future to completion together (`futures` is not a
    /// dependency of the store).
    async fn futures_join_all<F>(fs: impl IntoIterator<Item = F>) -> Vec<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn in_memory_sqlite_works_and_bad_urls_are_invalid() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        let a = store
            .create_account("Mem", vigil_core::AccountKind::Member)
            .await
            .unwrap();
        assert_eq!(store.account(a.id).await.unwrap(), a);
        assert!(matches!(
            Store::connect("redis://localhost").await,
            Err(StoreError::Invalid(_))
        ));
        let bad_cost = StoreOptions {
            password_cost: PasswordCost {
                memory_kib: 0,
                iterations: 0,
                parallelism: 0,
            },
            ..StoreOptions::default()
        };
        assert!(matches!(
            Store::connect_with("sqlite::memory:", bad_cost).await,
            Err(StoreError::Invalid(_))
        ));
    }
}
