//! `vigil server` (run the server) and `vigil admin` (offline account setup).

use super::usage;
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vigil_core::netpolicy::{NetPolicy, Verdict};
use vigil_core::{AccountKind, LivenessConfig, PortList};
use vigil_notify::{NotifierConfig, SmtpConfig, SmtpSecurity};
use vigil_server::HttpLimits;
use vigil_server::{GssapiAccounts, Leases, SecretsKey, ServerConfig};
use vigil_store::{Role, Store, TokenExpiry};

/// Options of a server, shared by `vigil server` and `vigil up`.
#[derive(Debug, Args)]
pub struct ServerOpts {
    /// A TOML file of these options: each flag is a key (`smtp_host`, or
    /// `host` in an `[smtp]` table); flags and VIGIL_… variables win over it.
    #[arg(long = "config", env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Where the server keeps its TLS identity (and the SQLite database by default).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "vigil-data")]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH (embedded default: <data-dir>/vigil.db) or postgres://USER@HOST/DB.
    #[arg(long, env = "VIGIL_DB")]
    pub db: Option<String>,
    /// REST API address (plain HTTP: keep it local or put a TLS proxy in front).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Agent API address (HTTPS, self-signed certificate that agents pin).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub agent_listen: SocketAddr,
    /// The URL agents use to reach the agent API (default https://<agent-listen>).
    #[arg(long)]
    pub agent_url: Option<String>,
    /// The agent URL of another replica of this server (same --db, same
    /// tls/ files in its data dir); repeatable. Agents learn this server's
    /// --agent-url and these, and fail over between them.
    #[arg(long = "peer-agent-url", value_name = "URL")]
    pub peer_agent_urls: Vec<String>,
    /// The web console URL, linked from notifications.
    #[arg(long)]
    pub console_url: Option<String>,
    /// How often agents call in, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_secs: u64,
    /// An agent silent for longer is "not communicating" and its scan suspended (seconds).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub silent_after_secs: u64,
    /// An agent silent for longer is abandoned and its scan disabled (seconds; default 30 days).
    #[arg(long, default_value_t = 30 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub abandoned_after_secs: u64,
    /// Web console sessions end this long after logging in (seconds; default 12 hours).
    #[arg(long, default_value_t = 12 * 3600, value_parser = clap::value_parser!(u64).range(1..=366 * 24 * 3600))]
    pub session_lifetime_secs: u64,
    /// Web console sessions end after this long without a page request
    /// (seconds, kept to within a minute; default 1 hour).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=366 * 24 * 3600))]
    pub session_idle_secs: u64,
    /// Tokens from `vigil ctl login` / `POST /api/v1/login` end this many
    /// days after logging in (0: never). Tokens made with `POST /tokens`
    /// (automation) last until revoked.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3650))]
    pub login_token_days: u64,
    /// A reverse proxy (address or CIDR) whose `X-Forwarded-Proto: https`
    /// is believed: the console's cookies are then `Secure` although the
    /// console is served over plain HTTP to the proxy. Repeatable.
    #[arg(
        long = "trusted-proxy",
        env = "VIGIL_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<String>,
    /// How often the scheduler, liveness sweeper and outbox look for work (milliseconds).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub tick_ms: u64,
    /// Ports every security scan checks besides the policy's own (nmap syntax).
    #[arg(long, default_value = "1-65535")]
    pub sweep_ports: String,
    /// The agent binary that agent installs copy to hosts (default: this executable;
    /// set it when the hosts run another platform).
    #[arg(long)]
    pub agent_binary: Option<PathBuf>,
    /// The Windows agent (vigil.exe) that installs on Windows hosts use
    /// (served at /agent/v1/download/vigil.exe; without it no Windows installs).
    #[arg(long)]
    pub agent_binary_windows: Option<PathBuf>,
    /// History older than this many days is deleted: scan results (the
    /// newest of each agent target is kept), sent notifications, resolved
    /// alerts, gone devices nobody reviewed; the audit log and agents'
    /// histories after 400 days or this, the longer. 0 keeps them forever.
    /// Below 30 the console's 30-day timeline knows less.
    #[arg(long, env = "VIGIL_RETENTION_DAYS", default_value_t = 90)]
    pub retention_days: u32,
    /// Require `Authorization: Bearer <token>` for GET /metrics (which is
    /// open otherwise, like most exporters: keep the REST listener private).
    #[arg(long, env = "VIGIL_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Let tenant-named destinations reach these networks: KINDS=NETWORKS,
    /// repeatable (or `;`-separated in the variable). Kinds: all, scan,
    /// compliance, ssh, ldap, webhook, peer; networks: CIDRs, addresses or
    /// the sets loopback, link-local, metadata, private, multicast. The most
    /// specific rule wins; these come before the defaults (loopback,
    /// link-local, metadata and multicast refused everywhere, private
    /// ranges refused for webhook and peer). Example: webhook=10.20.0.0/16.
    #[arg(
        long = "allow-targets",
        env = "VIGIL_ALLOW_TARGETS",
        value_delimiter = ';',
        value_name = "KINDS=NETWORKS"
    )]
    pub allow_targets: Vec<String>,
    /// Refuse tenant-named destinations in these networks (same form as
    /// --allow-targets). A hosted multi-tenant server: all=private.
    #[arg(
        long = "deny-targets",
        env = "VIGIL_DENY_TARGETS",
        value_delimiter = ';',
        value_name = "KINDS=NETWORKS"
    )]
    pub deny_targets: Vec<String>,
    /// An account (ID) whose compliance scope may bind to Active Directory
    /// with GSSAPI, i.e. with this server's own Kerberos ticket;
    /// repeatable, or `all` (single-tenant servers). Default: none.
    #[arg(
        long = "gssapi-account",
        env = "VIGIL_GSSAPI_ACCOUNTS",
        value_delimiter = ',',
        value_name = "ACCOUNT_ID|all"
    )]
    pub gssapi_accounts: Vec<String>,
    /// The key file that seals secrets at rest (AD bind password, peer
    /// tokens): one key per line, the first seals, later ones (old keys)
    /// only open. Default: <data-dir>/secrets.key, created on first start.
    #[arg(long, value_name = "PATH")]
    pub secrets_key_file: Option<PathBuf>,
    /// The key file's text instead of a file (keys separated by commas).
    #[arg(long, env = "VIGIL_SECRETS_KEY", hide_env_values = true, hide = true)]
    pub secrets_key: Option<String>,
    /// With replicas: how long a replica holds work it claimed (a due scan,
    /// a server-side scan, a notification, an assessment) before another
    /// one takes it over if it died (seconds). Default: 60 to 120 by kind.
    /// Keep it well above the slowest notification send (up to 30 s), or a
    /// slow send may be repeated by another replica.
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_secs: Option<u64>,
    /// Sockets the server's own scans and compliance sweeps of all
    /// accounts may hold at once, shared fairly between the accounts
    /// scanning. Default: half the open-file limit left after 1024, at
    /// most 10000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub scan_sockets: Option<u64>,
    /// How the server's own scans (agents' observed addresses) and
    /// compliance sweeps probe: `syn` (half-open SYN probes, every scan of
    /// every account on one engine with one rate; needs CAP_NET_RAW),
    /// `connect` (TCP connects within --scan-sockets; no privilege), or
    /// `auto` (SYN when permitted, else connect).
    #[arg(long, value_enum, default_value_t = ScanProbes::Auto)]
    pub scan_probes: ScanProbes,
    /// Probes a second the SYN engine sends at most, all accounts together
    /// (split evenly between the accounts scanning).
    #[arg(long, default_value_t = vigil_scan::SYN_DEFAULT_RATE, value_parser = probe_rate)]
    pub scan_rate: f64,
    /// Notifications an account may have waiting to be sent (its channels
    /// failing); past it the oldest waiting one is dropped, kept in its
    /// contact's and alert's history as failed with the reason, and counted
    /// in /metrics (vigil_outbox_dropped).
    #[arg(long, default_value_t = vigil_store::MAX_QUEUED_NOTIFICATIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queued_notifications: u32,
    /// How many password checks (argon2, 19 MiB each) run at once; default:
    /// one per CPU. Eight times as many may wait; more logins at once are
    /// answered 503 "busy, retry".
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub password_workers: Option<u64>,
    /// Connections the REST listener (API, console, /metrics) serves at
    /// once; more are closed at once.
    #[arg(long, default_value_t = HttpLimits::default().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Connections the agent listener serves at once (an agent holds about
    /// one: keep it above the number of agents); more are closed at once.
    #[arg(long, default_value_t = HttpLimits::default().agent_max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub agent_max_connections: u64,
    /// A new connection is closed unless its first request head arrives
    /// within this many seconds (after the TLS handshake).
    #[arg(long, default_value_t = HttpLimits::default().header_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,
    /// A request whose response has not started after this many seconds
    /// (its upload included) is answered 503; streamed downloads may last longer.
    #[arg(long, default_value_t = HttpLimits::default().request_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub request_timeout_secs: u64,
    /// A connection idle this many seconds between requests (or whose
    /// client stopped reading a response) is closed.
    #[arg(long, default_value_t = HttpLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout_secs: u64,
    /// SMTP server for email notifications.
    #[arg(long, env = "VIGIL_SMTP_HOST")]
    pub smtp_host: Option<String>,
    #[arg(long, env = "VIGIL_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    #[arg(long, value_enum, default_value_t = SmtpMode::Starttls)]
    pub smtp_security: SmtpMode,
    #[arg(long, env = "VIGIL_SMTP_USER")]
    pub smtp_user: Option<String>,
    #[arg(long, env = "VIGIL_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Sender address of notification emails.
    #[arg(long, env = "VIGIL_SMTP_FROM", default_value = "vigil@localhost")]
    pub smtp_from: String,
    /// A PEM file of a private CA the SMTP server's certificate is signed by.
    #[arg(long)]
    pub smtp_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScanProbes {
    Auto,
    Syn,
    Connect,
}

/// A rate of probes a second: a positive number up to ten million.
fn probe_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e7 => Ok(r),
        Ok(_) => Err("a number of probes per second, above 0 and at most 10000000".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SmtpMode {
    Starttls,
    Tls,
    /// Plain SMTP (a relay on the same machine only).
    None,
}

impl ServerOpts {
    pub fn db_url(&self) -> String {
        self.db
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("vigil.db").display()))
    }

    pub fn config(&self) -> Result<ServerConfig> {
        let mut cfg = ServerConfig::new(&self.data_dir, self.db_url());
        cfg.api_listen = self.listen;
        cfg.agent_listen = self.agent_listen;
        cfg.agent_url = self.agent_url.clone();
        for peer in &self.peer_agent_urls {
            let https = url::Url::parse(peer).is_ok_and(|u| u.scheme() == "https");
            if !https {
                return Err(usage(format!(
                    "--peer-agent-url {peer:?}: give the replica's agent URL, https://host:port"
                )));
            }
        }
        if !self.peer_agent_urls.is_empty() && self.agent_url.is_none() {
            return Err(usage(
                "--peer-agent-url needs --agent-url: agents are told this server's URL too",
            ));
        }
        cfg.peer_agent_urls = self.peer_agent_urls.clone();
        cfg.console_url = self.console_url.clone();
        cfg.heartbeat = Duration::from_secs(self.heartbeat_secs);
        cfg.tick = Duration::from_millis(self.tick_ms);
        cfg.session = TokenExpiry {
            lifetime: Some(Duration::from_secs(self.session_lifetime_secs)),
            idle: Some(Duration::from_secs(self.session_idle_secs)),
        };
        for proxy in self
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
        {
            let net = proxy
                .parse::<ipnet::IpNet>()
                .or_else(|_| proxy.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    usage(format!(
                        "--trusted-proxy {proxy:?}: give an address or a CIDR"
                    ))
                })?;
            cfg.trusted_proxies.push(net);
        }
        cfg.login_token = TokenExpiry {
            lifetime: (self.login_token_days > 0)
                .then(|| Duration::from_secs(self.login_token_days * 24 * 3600)),
            idle: None,
        };
        if self.abandoned_after_secs <= self.silent_after_secs {
            return Err(usage(
                "--abandoned-after-secs must be longer than --silent-after-secs",
            ));
        }
        cfg.liveness = LivenessConfig {
            silent_after: Duration::from_secs(self.silent_after_secs),
            abandoned_after: Duration::from_secs(self.abandoned_after_secs),
        };
        cfg.sweep_ports = PortList::parse(&self.sweep_ports)
            .map_err(|e| usage(format!("--sweep-ports {:?}: {e}", self.sweep_ports)))?;
        cfg.agent_binary = self.agent_binary.clone();
        cfg.agent_binary_windows = self.agent_binary_windows.clone();
        cfg.retention = (self.retention_days > 0)
            .then(|| Duration::from_secs(u64::from(self.retention_days) * 24 * 3600));
        cfg.metrics_token = self.metrics_token.clone().filter(|t| !t.is_empty());
        if let Some(n) = self.password_workers.and_then(|n| usize::try_from(n).ok()) {
            cfg.password_work = vigil_store::PasswordWork {
                workers: n,
                queue: n.saturating_mul(8),
            };
        }
        cfg.http = HttpLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            agent_max_connections: usize::try_from(self.agent_max_connections)
                .unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            ..HttpLimits::default()
        };
        if let Some(secs) = self.lease_secs {
            cfg.leases = Leases::uniform(Duration::from_secs(secs));
        }
        cfg.scan_sockets = self
            .scan_sockets
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        cfg.scan_probes = match self.scan_probes {
            ScanProbes::Auto => vigil_scan::Method::Auto,
            ScanProbes::Syn => vigil_scan::Method::Syn,
            ScanProbes::Connect => vigil_scan::Method::Connect,
        };
        cfg.scan_rate = self.scan_rate;
        cfg.max_queued_notifications = self.max_queued_notifications;
        cfg.notifier = self.notifier()?;
        cfg.net_policy = std::sync::Arc::new(self.net_policy()?);
        cfg.gssapi_accounts = self.gssapi_accounts()?;
        cfg.secrets_key = secrets_key(self.secrets_key_file.as_ref(), self.secrets_key.as_ref());
        Ok(cfg)
    }

    fn net_policy(&self) -> Result<NetPolicy> {
        let mut policy = NetPolicy::default();
        let rules = (self.allow_targets.iter().map(|s| (Verdict::Allow, s)))
            .chain(self.deny_targets.iter().map(|s| (Verdict::Deny, s)));
        for (verdict, spec) in rules.filter(|(_, s)| !s.trim().is_empty()) {
            policy.add(verdict, spec.trim()).map_err(|e| {
                let flag = match verdict {
                    Verdict::Allow => "--allow-targets",
                    Verdict::Deny => "--deny-targets",
                };
                usage(format!("{flag} {e}"))
            })?;
        }
        Ok(policy)
    }

    fn gssapi_accounts(&self) -> Result<GssapiAccounts> {
        let given: Vec<&str> = self
            .gssapi_accounts
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if given.is_empty() {
            return Ok(GssapiAccounts::None);
        }
        if given.contains(&"all") {
            return Ok(GssapiAccounts::All);
        }
        let ids = given
            .iter()
            .map(|s| {
                s.parse().map_err(|_| {
                    usage(format!("--gssapi-account {s:?}: give an account ID or all"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(GssapiAccounts::Some(ids))
    }

    fn notifier(&self) -> Result<NotifierConfig> {
        let mut n = NotifierConfig::default();
        if let Some(host) = &self.smtp_host {
            let security = match self.smtp_security {
                SmtpMode::Starttls => SmtpSecurity::StartTls,
                SmtpMode::Tls => SmtpSecurity::Tls,
                SmtpMode::None => SmtpSecurity::None,
            };
            let mut smtp = SmtpConfig::new(host.clone(), security, self.smtp_from.clone());
            if let Some(port) = self.smtp_port {
                smtp.port = port;
            }
            smtp.username = self.smtp_user.clone();
            smtp.password = self.smtp_password.clone();
            if let Some(path) = &self.smtp_ca_file {
                smtp.extra_root_ca_pem = Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading --smtp-ca-file {}", path.display()))?,
                );
            }
            n.smtp = Some(smtp);
        }
        Ok(n)
    }
}

/// `vigil server`: run until Ctrl-C / SIGTERM.
pub fn run(opts: ServerOpts) -> Result<ExitCode> {
    let cfg = opts.config()?;
    super::runtime()?.block_on(async move {
        let running = vigil_server::start(cfg).await?;
        println!("Vigil server {}", running.server_id);
        println!(
            "  REST API:  http://{}/api/v1 (OpenAPI: /api/v1/openapi.json)",
            running.api_addr
        );
        println!(
            "  agent API: {} (certificate pin {})",
            running.agent_url, running.pin
        );
        running.run_until(super::shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Database URL (as for `vigil server --db`).
    #[arg(long, env = "VIGIL_DB")]
    db: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an account (tenant) and its first owner; prints the password.
    CreateAccount {
        /// The account's name.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = Kind::Member)]
        kind: Kind,
        /// The owner's email address (the login).
        #[arg(long)]
        email: String,
        /// The owner's password (default: a random one, printed). Prefer the environment.
        #[arg(long, env = "VIGIL_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Seal every stored secret with the current (first) key of the
    /// secrets key file: after adding a new key first (key rotation), or to
    /// seal secrets stored before sealing existed. Prints how many changed.
    ResealSecrets {
        /// The server's data directory (for <data-dir>/secrets.key).
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = "vigil-data")]
        data_dir: PathBuf,
        /// As for `vigil server --secrets-key-file`.
        #[arg(long, value_name = "PATH")]
        secrets_key_file: Option<PathBuf>,
        #[arg(long, env = "VIGIL_SECRETS_KEY", hide_env_values = true, hide = true)]
        secrets_key: Option<String>,
    },
    /// Copy a SQLite database into a new file while servers use it (a consistent
    /// snapshot, checked). PostgreSQL: use pg_dump (this says how).
    Backup(super::admin_backup::BackupArgs),
    /// Replace a SQLite database with a backup (refused while a server uses it); the
    /// replaced database is kept as <database>.before-restore. PostgreSQL: use pg_restore.
    Restore(super::admin_backup::RestoreArgs),
}

/// Where the secrets key comes from: the variable, a file, or the data dir.
fn secrets_key(file: Option<&PathBuf>, inline: Option<&String>) -> SecretsKey {
    match (inline.filter(|s| !s.trim().is_empty()), file) {
        (Some(text), _) => SecretsKey::Inline(text.clone()),
        (None, Some(path)) => SecretsKey::File(path.clone()),
        (None, None) => SecretsKey::DataDir,
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// A person or family: scan intervals from a fixed list.
    Member,
    /// A company: any scan interval in minutes.
    Organization,
}

pub fn admin(args: AdminArgs) -> Result<ExitCode> {
    // These copy the database file as it is: no store opened (which would
    // upgrade its schema first).
    match args.command {
        AdminCommand::Backup(b) => return super::admin_backup::backup(&args.db, b),
        AdminCommand::Restore(r) => return super::admin_backup::restore(&args.db, r),
        _ => {}
    }
    super::runtime()?.block_on(async move {
        let store = Store::connect(&args.db).await.map_err(|e| match e {
            vigil_store::StoreError::Invalid(msg) => usage(format!("--db: {msg}")),
            e @ vigil_store::StoreError::SchemaTooNew { .. } => usage(e.to_string()),
            e => anyhow::Error::new(e).context("opening the database"),
        })?;
        match args.command {
            AdminCommand::CreateAccount {
                name,
                kind,
                email,
                password,
            } => {
                let kind = match kind {
                    Kind::Member => AccountKind::Member,
                    Kind::Organization => AccountKind::Organization,
                };
                let (password, generated) = match password {
                    Some(p) => (p, false),
                    None => (random_password(), true),
                };
                let (account, user) =
                    create_account(&store, &name, kind, &email, &password).await?;
                println!(
                    "account {} ({}) id {}",
                    account.name,
                    account.kind.as_str(),
                    account.id
                );
                println!("owner   {}", user.email);
                if generated {
                    println!("password {password}");
                }
            }
            AdminCommand::ResealSecrets {
                data_dir,
                secrets_key_file,
                secrets_key: inline,
            } => {
                let source = secrets_key(secrets_key_file.as_ref(), inline.as_ref());
                if source == SecretsKey::DataDir
                    && !data_dir.join(vigil_server::SECRETS_KEY_FILE).exists()
                {
                    return Err(usage(format!(
                        "no secrets key in {}: give --data-dir of the server, or --secrets-key-file",
                        data_dir.display()
                    )));
                }
                let keyring = vigil_server::load_secrets_key(&source, &data_dir)?;
                let current = keyring.current_id().to_string();
                store.use_keyring(keyring)?;
                let changed = store.reseal_secrets().await?;
                println!("{changed} secrets sealed with key {current}");
            }
            // Answered above, without a store.
            AdminCommand::Backup(_) | AdminCommand::Restore(_) => {}
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Creates an account and its owner; input errors are usage errors.
pub async fn create_account(
    store: &Store,
    name: &str,
    kind: AccountKind,
    email: &str,
    password: &str,
) -> Result<(vigil_store::Account, vigil_store::User)> {
    let input = |e: vigil_store::StoreError| match e {
        vigil_store::StoreError::Invalid(msg) => usage(msg),
        vigil_store::StoreError::Conflict => usage(format!("a user {email:?} already exists")),
        e => anyhow::Error::new(e),
    };
    let account = store.create_account(name, kind).await.map_err(input)?;
    let user = store
        .create_user(account.id, email, password, Role::Owner)
        .await
        .map_err(input)?;
    Ok((account, user))
}

/// 20 characters from a 56-letter alphabet without look-alikes (~116 bits).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
