//! What a server is started with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vigil_core::{DampingConfig, LivenessConfig, PortList};
use vigil_notify::NotifierConfig;
use vigil_store::{PasswordWork, TokenExpiry};

/// Everything `vigil server` can be told. [`ServerConfig::new`] gives the
/// defaults of a real deployment; tests shorten the timings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the TLS identity lives (and the SQLite file by default).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`.
    pub db_url: String,
    /// The REST API (plain HTTP; put it behind a TLS proxy when exposed).
    pub api_listen: SocketAddr,
    /// The agent API (HTTPS with the self-signed, pinned certificate).
    pub agent_listen: SocketAddr,
    /// The URL agents are told to use; default `https://<agent_listen>`.
    pub agent_url: Option<String>,
    /// The agent URLs of the other replicas of this installation (same
    /// database, same TLS identity). With any given, agents are told this
    /// server's URL and these at enrollment and with every heartbeat, and
    /// fail over between them.
    pub peer_agent_urls: Vec<String>,
    /// Extra DNS names / addresses for the certificate.
    pub tls_names: Vec<String>,
    /// The web console's URL, put into notifications as a link.
    pub console_url: Option<String>,
    pub notifier: NotifierConfig,
    pub liveness: LivenessConfig,
    pub damping: DampingConfig,
    /// How often agents call in.
    pub heartbeat: Duration,
    /// How often the scheduler, liveness sweeper and outbox look for work.
    pub tick: Duration,
    /// Ports every security scan sweeps in addition to the policy's own.
    pub sweep_ports: PortList,
    /// The agent binary handed out by agent installs; default: this executable.
    pub agent_binary: Option<PathBuf>,
    /// The Windows agent (`vigil.exe`) handed out to Windows hosts; without
    /// it the server installs no Windows agents.
    pub agent_binary_windows: Option<PathBuf>,
    /// History older than this is pruned: scan results (the newest of each
    /// agent target stays), sent notifications, resolved alerts, devices
    /// gone long ago; the audit log and agents' histories after the longer
    /// of this and 400 days (see [`crate::retention`]). `None`: history is
    /// kept forever (work rows — old tasks, expired tokens, finished
    /// install jobs — still go).
    pub retention: Option<Duration>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// How long a web console session lasts, and may stay unused.
    pub session: TokenExpiry,
    /// How long a token from `POST /api/v1/login` lasts (tokens made with
    /// `POST /api/v1/tokens`, for automation, last until revoked).
    pub login_token: TokenExpiry,
    /// Reverse proxies whose `X-Forwarded-Proto` is believed (the console's
    /// cookies are `Secure` when they say https).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long this replica's claims on shared work last.
    pub leases: Leases,
    /// Sockets this replica's server-side scans and compliance assessments
    /// of all accounts may hold at once, shared fairly between accounts;
    /// `None`: from the open-file limit (half of what is left after 1024
    /// for everything else, at most 10,000).
    pub scan_sockets: Option<usize>,
    /// How server-side scans and assessments probe: `Auto` is SYN probes
    /// on one shared engine when the process has `CAP_NET_RAW`, else
    /// connects within `scan_sockets`.
    pub scan_probes: vigil_scan::Method,
    /// Probes a second of the shared SYN engine, all accounts together.
    pub scan_rate: f64,
    /// An account's cap on notifications waiting to be sent: past it, its
    /// oldest waiting one is dropped (kept as failed, with the reason).
    pub max_queued_notifications: u32,
    /// Connection caps and timeouts of both listeners.
    pub http: crate::listen::HttpLimits,
    /// How many password checks run at once and may wait (used by
    /// [`crate::start`], which opens the store).
    pub password_work: PasswordWork,
    /// The operator's network policy: where tenant-named destinations may
    /// connect (`--allow-targets` / `--deny-targets`).
    pub net_policy: std::sync::Arc<vigil_core::netpolicy::NetPolicy>,
    /// The accounts whose compliance scopes may bind to AD with GSSAPI,
    /// that is with this server's own Kerberos ticket (`--gssapi-account`).
    pub gssapi_accounts: GssapiAccounts,
    /// The key that seals secrets at rest (AD password, peer tokens).
    pub secrets_key: crate::SecretsKey,
}

/// Who may use the server's Kerberos ticket. Default: nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GssapiAccounts {
    #[default]
    None,
    /// These accounts.
    Some(Vec<vigil_store::AccountId>),
    /// Every account (a single-tenant installation).
    All,
}

/// How long a replica holds a piece of work it claimed (a lease in the
/// database) before another replica may take it over. A replica renews the
/// leases of long work while it runs, so these bound how long the work of a
/// replica that died waits, and must outlast one uninterrupted step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    /// Creating the scan tasks of a due security-scan policy.
    pub policy: Duration,
    /// A scan the server runs itself (renewed every third of it).
    pub scan: Duration,
    /// Sending one batch of notifications: longer than the slowest send
    /// (sends time out after 30 s).
    pub notification: Duration,
    /// A running compliance assessment (renewed every third of it).
    pub assessment: Duration,
    /// A running push-install job (renewed every third of it): a job whose
    /// server died is ended as interrupted this long after.
    pub install: Duration,
}

impl Default for Leases {
    fn default() -> Self {
        Leases {
            policy: Duration::from_secs(60),
            scan: Duration::from_secs(90),
            notification: Duration::from_secs(120),
            assessment: Duration::from_secs(60),
            install: Duration::from_secs(60),
        }
    }
}

impl Leases {
    /// The same lease for every kind of work (`vigil server --lease-secs`).
    pub fn uniform(lease: Duration) -> Self {
        Leases {
            policy: lease,
            scan: lease,
            notification: lease,
            assessment: lease,
            install: lease,
        }
    }
}

impl ServerConfig {
    pub fn new(data_dir: impl Into<PathBuf>, db_url: impl Into<String>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            db_url: db_url.into(),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            agent_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            agent_url: None,
            peer_agent_urls: Vec::new(),
            tls_names: Vec::new(),
            console_url: None,
            notifier: NotifierConfig::default(),
            liveness: LivenessConfig::default(),
            damping: DampingConfig::default(),
            heartbeat: Duration::from_secs(30),
            tick: Duration::from_secs(5),
            sweep_ports: PortList::all(),
            agent_binary: None,
            agent_binary_windows: None,
            retention: Some(Duration::from_secs(90 * 24 * 3600)),
            metrics_token: None,
            session: TokenExpiry {
                lifetime: Some(Duration::from_secs(12 * 3600)),
                idle: Some(Duration::from_secs(3600)),
            },
            login_token: TokenExpiry {
                lifetime: Some(Duration::from_secs(30 * 24 * 3600)),
                idle: None,
            },
            trusted_proxies: Vec::new(),
            leases: Leases::default(),
            scan_sockets: None,
            scan_probes: vigil_scan::Method::Auto,
            scan_rate: vigil_scan::SYN_DEFAULT_RATE,
            max_queued_notifications: vigil_store::MAX_QUEUED_NOTIFICATIONS,
            http: crate::listen::HttpLimits::default(),
            password_work: PasswordWork::default(),
            net_policy: Default::default(),
            gssapi_accounts: GssapiAccounts::None,
            secrets_key: Default::default(),
        }
    }

    /// Whether `account` may bind to AD with the server's Kerberos ticket.
    pub fn gssapi_allowed(&self, account: vigil_store::AccountId) -> bool {
        match &self.gssapi_accounts {
            GssapiAccounts::None => false,
            GssapiAccounts::Some(ids) => ids.contains(&account),
            GssapiAccounts::All => true,
        }
    }
}
