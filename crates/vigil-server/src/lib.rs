//! The Vigil server, as a library the `vigil server` command drives.
//!
//! One process serves two listeners and runs background jobs:
//!
//! * the REST API ([`api`], plain HTTP, tenant-scoped by API token) and,
//!   on the same listener, the web console ([`console`], HTML pages);
//!   both call the same concept modules for what they change and show
//!   ([`agents`], [`alert`], [`audit`], [`compliance`], [`contacts`],
//!   [`history`], [`install`], [`peers`]), never each other;
//! * the agent API ([`agent_api`], HTTPS with the self-signed certificate
//!   of [`tls`], which agents pin at enrollment);
//! * the scheduler ([`scan`]): due security-scan policies become scan tasks;
//! * the liveness sweeper ([`liveness`]): silent agents raise alerts and
//!   suspend their scans;
//! * the compliance schedule runner ([`compliance::schedule`]): due
//!   schedules start assessments, whose status changes are notified;
//! * the alert clock ([`maintenance`]): maintenance windows start and end
//!   (notices held while they cover an agent are released), reminders and
//!   escalation steps fall due ([`followup`]);
//! * the outbox worker ([`outbox`]): queued notifications are delivered;
//! * the retention job ([`retention`]): old scan results are pruned.
//!
//! The REST listener ([`http`]: shared errors, extractors, auth and the
//! router's assembly) also serves `/metrics` ([`metrics`]), `/healthz` and
//! `/readyz` ([`health`]); both listeners serve through [`listen`]
//! (connection caps and timeouts).
//!
//! Results flow scan → [`evaluate`] → [`alert`] → [`outbox`] → notifier
//! (`vigil-notify`); every step writes to the store before the next one
//! starts, so a restart loses nothing. An alert that ends says why
//! ([`ending`]): its condition stopped, or a policy change (saved through
//! [`agents::save_policy`], which ends such alerts at once) made it none.

mod ack_link;
mod agent_api;
mod agents;
mod alert;
pub mod api;
mod app;
mod audit;
mod budget;
mod compliance;
mod config;
mod console;
mod contacts;
mod devices;
mod ending;
mod error;
mod evaluate;
mod followup;
mod health;
mod history;
mod http;
mod ids;
mod install;
mod listen;
mod liveness;
mod login;
mod maintenance;
mod metrics;
mod netguard;
mod outbox;
mod peers;
mod retention;
mod scan;
mod secrets_key;
#[cfg(test)]
mod testing;
pub mod tls;
mod trends;
mod updates;

pub use config::{GssapiAccounts, Leases, ServerConfig};
pub use error::ServerError;
pub use listen::HttpLimits;
pub use secrets_key::{load as load_secrets_key, SecretsKey, KEY_FILE as SECRETS_KEY_FILE};

use app::App;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use vigil_notify::Notifier;
use vigil_proto::pin::CertPin;
use vigil_store::Store;

/// A started server. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub api_addr: SocketAddr,
    pub agent_addr: SocketAddr,
    /// What agents pin (`sha256:…`).
    pub pin: CertPin,
    pub server_id: String,
    /// The agent API URL given out with enrollment tokens.
    pub agent_url: String,
    pub store: Store,
    stop: watch::Sender<bool>,
    jobs: JoinSet<()>,
    /// A SQLite database's lock, held while this server runs (see
    /// [`start`]); released after the store closes.
    _db_lock: Option<vigil_store::sqlite_file::DatabaseLock>,
}

/// Opens the store, loads (or creates) the TLS identity, binds both
/// listeners and starts the background jobs.
///
/// A SQLite database is locked first, for as long as the server runs
/// ([`vigil_store::sqlite_file::DatabaseLock`]): a second server on the
/// same file, or a restore, is refused while this one runs.
pub async fn start(cfg: ServerConfig) -> Result<Running, ServerError> {
    let options = vigil_store::StoreOptions {
        password_work: cfg.password_work,
        ..Default::default()
    };
    let lock = match vigil_store::sqlite_file::database_path(&cfg.db_url)? {
        Some(file) => Some(vigil_store::sqlite_file::DatabaseLock::acquire(&file)?),
        None => None,
    };
    let store = Store::connect_with(&cfg.db_url, options).await?;
    let mut running = start_with_store(cfg, store).await?;
    running._db_lock = lock;
    Ok(running)
}

/// [`start`] with a store the caller opened (tests, `vigil up`).
pub async fn start_with_store(cfg: ServerConfig, store: Store) -> Result<Running, ServerError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServerError::io("creating the data directory", &cfg.data_dir, e))?;
    let keyring = secrets_key::load(&cfg.secrets_key, &cfg.data_dir)?;
    tracing::info!(key = %keyring.current_id(), source = %cfg.secrets_key, "secrets at rest are sealed");
    store
        .use_keyring(keyring)
        .map_err(|e| ServerError::Config(e.to_string()))?;
    let mut notifier_cfg = cfg.notifier.clone();
    notifier_cfg.http.policy = cfg.net_policy.clone();
    let notifier = Notifier::new(&notifier_cfg).map_err(|e| ServerError::Config(e.to_string()))?;
    let rules = cfg.net_policy.operator_rules();
    tracing::info!(rules = ?rules, "network policy for tenant destinations (besides the defaults)");
    let server_id = store.server_id().await?.to_string();
    // Each connected agent holds a socket: the usual soft limit (1024)
    // would refuse agents past about a thousand.
    let open_files = vigil_scan::raise_nofile_limit();
    let mut limits = cfg.http;
    if limits.fit_to_open_files(open_files) {
        tracing::warn!(
            rest = limits.max_connections,
            agent = limits.agent_max_connections,
            "connection caps lowered to half the open-file limit"
        );
    }
    let open_files = open_files.map_or_else(|| "none".to_string(), |n| n.to_string());
    tracing::info!(%open_files, "open-file limit (one per connected agent)");
    let api_listener = TcpListener::bind(cfg.api_listen)
        .await
        .map_err(|e| ServerError::Bind(cfg.api_listen, e))?;
    let agent_listener = TcpListener::bind(cfg.agent_listen)
        .await
        .map_err(|e| ServerError::Bind(cfg.agent_listen, e))?;
    let api_addr = local_addr(&api_listener, cfg.api_listen)?;
    let agent_addr = local_addr(&agent_listener, cfg.agent_listen)?;

    let mut names = cfg.tls_names.clone();
    names.push("localhost".into());
    names.push(agent_addr.ip().to_string());
    let identity = tls::TlsIdentity::load_or_create(&cfg.data_dir, &names)?;
    let pin = identity.pin();
    let tls_config = identity.server_config()?;
    let agent_url = cfg
        .agent_url
        .clone()
        .unwrap_or_else(|| default_agent_url(agent_addr));

    if let Some(path) = cfg.agent_binary.as_ref().filter(|p| !p.is_file()) {
        return Err(ServerError::Config(format!(
            "the agent binary {} is not a file",
            path.display()
        )));
    }
    let windows = match &cfg.agent_binary_windows {
        Some(path) => Some(install::WindowsBinary::load(path).map_err(ServerError::Config)?),
        None => None,
    };
    let installer = install::Installer::new(
        install::curl_pin(identity.certificate()).map_err(ServerError::Tls)?,
        cfg.agent_binary.clone(),
        windows,
    );
    // Self-update offers: the Linux binary installs hand out (built for
    // this server's architecture unless --agent-binary names another
    // build of the same), and the Windows one if given.
    let mut sources = vec![updates::Source {
        platform: format!("linux-{}", std::env::consts::ARCH),
        file: installer.binary(),
        path: install::DOWNLOAD_PATH,
    }];
    if let Some(file) = &cfg.agent_binary_windows {
        sources.push(updates::Source {
            platform: "windows-x86_64".into(),
            file: file.clone(),
            path: install::DOWNLOAD_EXE_PATH,
        });
    }
    let agent_updates = updates::Updates::load(&cfg.data_dir, sources)?;
    let console_key = store.console_key().await?;
    store.set_max_queued_notifications(cfg.max_queued_notifications);
    let scan_budget =
        budget::ScanBudget::from_config(cfg.scan_sockets, cfg.scan_probes, cfg.scan_rate)
            .map_err(ServerError::Config)?;
    let app = Arc::new(App::new(
        store.clone(),
        cfg,
        server_id.clone(),
        pin,
        agent_url.clone(),
        installer,
        console_key,
        agent_updates,
        scan_budget,
    ));
    let (stop, stopped) = watch::channel(false);
    let mut jobs = JoinSet::new();
    // Both listeners: connection caps and timeouts ([`listen`]). Every
    // request carries its peer as `ConnectInfo<SocketAddr>` (the login
    // throttle counts attempts per client address).
    let listener = |name, cap, tls| listen::Listener {
        name,
        cap,
        tls,
        limits,
        metrics: app.metrics.connections.listener(name),
    };
    jobs.spawn(listen::serve(
        api_listener,
        listener("rest", limits.max_connections, None),
        http::router(app.clone()),
        stopped.clone(),
    ));
    jobs.spawn(listen::serve(
        agent_listener,
        listener("agent", limits.agent_max_connections, Some(tls_config)),
        agent_api::router(app.clone()),
        stopped.clone(),
    ));
    jobs.spawn(scan::scheduler(app.clone(), stopped.clone()));
    jobs.spawn(scan::server_scans(app.clone(), stopped.clone()));
    jobs.spawn(liveness::sweeper(app.clone(), stopped.clone()));
    jobs.spawn(maintenance::clock(app.clone(), stopped.clone()));
    jobs.spawn(compliance::schedule::runner(app.clone(), stopped.clone()));
    jobs.spawn(retention::pruner(
        app.clone(),
        retention::Trigger::new(),
        stopped.clone(),
    ));
    jobs.spawn(install::keeper(app.clone(), stopped.clone()));
    jobs.spawn(outbox::worker(app, notifier, stopped));
    tracing::info!(%api_addr, %agent_addr, %server_id, %pin, "server started");
    Ok(Running {
        api_addr,
        agent_addr,
        pin,
        server_id,
        agent_url,
        store,
        stop,
        jobs,
        _db_lock: None,
    })
}

/// How long a shutdown waits for running requests and rounds of work.
/// Work cut short is safe: what was claimed is taken over when its lease
/// ends, and a notification cut mid-send is sent again (at least once).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Running {
    /// Stops accepting work, lets running requests and the current rounds of
    /// work finish (for up to [`SHUTDOWN_GRACE`]: a round waiting on a
    /// database that is away would take the pool's acquire timeout, longer
    /// than service managers wait), and closes the store.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "work still running at shutdown was cut short"
            );
            self.jobs.shutdown().await;
        }
        self.store.close().await;
    }

    /// Waits until a job ends on its own (it should not) or `signal` fires,
    /// then shuts down.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) {
        tokio::select! {
            _ = signal => {}
            _ = self.jobs.join_next() => tracing::error!("a server job ended unexpectedly"),
        }
        self.shutdown().await;
    }
}

fn local_addr(l: &TcpListener, requested: SocketAddr) -> Result<SocketAddr, ServerError> {
    l.local_addr().map_err(|e| ServerError::Bind(requested, e))
}

/// `https://<addr>`; an unspecified bind address is given as the loopback
/// address, which is right for `vigil up` and wrong for remote agents
/// (set `--agent-url` then).
fn default_agent_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
        }
        ip => ip,
    };
    format!("https://{}", SocketAddr::new(ip, addr.port()))
}
