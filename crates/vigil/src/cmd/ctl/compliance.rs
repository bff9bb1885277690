//! `vigil ctl compliance`: the scope, assessments and their progress, the
//! endpoints found, the schedule and the history.

use super::compliance_agents::{
    InstallArgs, InstallCommandArgs, MoveArgs, PeersCommand, PEER_TOKEN_ENV,
};
use super::table::{fields, now, or_dash, time, Table};
use super::{decode, print_json, query, usage, Ctl};
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_core::compliance::{
    AdBind, AdScope, AgentPorts, ComplianceScope, Dn, EndpointStatus, IpRange, StatusCounts,
    WEEKDAYS,
};
use vigil_proto::api::{
    AdCertificateView, AssessmentHistoryEntry, AssessmentView, ComplianceScheduleUpdate,
    ComplianceScheduleView, ComplianceScopeUpdate, ComplianceScopeView, EndpointPage,
};

/// Where `scope set` reads the AD bind password from unless `--ad-password-stdin`.
pub(super) const AD_PASSWORD_ENV: &str = "VIGIL_AD_PASSWORD";
/// How often `assess --wait` asks for progress.
const POLL: Duration = Duration::from_millis(500);
/// Without a terminal, a progress line at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Subcommand)]
pub(super) enum ComplianceCommand {
    /// Show or change what is assessed (IP ranges, Active Directory, ports).
    #[command(subcommand)]
    Scope(ScopeCommand),
    /// Start an assessment now (a running one is cancelled).
    Assess {
        /// Wait until it ends, showing progress, then print the counts per status.
        #[arg(long)]
        wait: bool,
    },
    /// The latest assessment: progress and counts per status.
    Status,
    /// The endpoints of the latest assessment (or --assessment), searched.
    Endpoints(EndpointArgs),
    /// When assessments run by themselves.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Past assessments, newest first.
    History {
        /// How many (server default: 20).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Trusted peer servers whose agents can be moved here.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Move agents managed by a trusted peer server to this server.
    Move(MoveArgs),
    /// Push-install agents over SSH on hosts without one.
    Install(Box<InstallArgs>),
    /// An install job's progress, host by host.
    InstallStatus { id: String },
    /// The one-line manual install command (with a fresh enrollment token).
    InstallCommand(InstallCommandArgs),
}

#[derive(Debug, Subcommand)]
pub(super) enum ScopeCommand {
    /// The saved scope: AD, IP ranges, ports (never the bind password).
    Show,
    /// Change the saved scope (flags change the current one; --file replaces it).
    /// The AD bind password comes from VIGIL_AD_PASSWORD or --ad-password-stdin,
    /// never from the command line.
    Set(Box<ScopeArgs>),
    /// The TLS certificate the saved scope's directory presents (a handshake,
    /// no bind): its SHA-256 fingerprint, to pin with `scope set --ad-tls-pin`
    /// once checked against the domain controller's.
    Certificate,
}

#[derive(Debug, Args)]
pub(super) struct ScopeArgs {
    /// A whole scope as JSON or TOML (by extension; else JSON), as
    /// `GET /api/v1/compliance/scope` shows it under "scope".
    #[arg(long)]
    file: Option<PathBuf>,
    /// Assess the IP ranges.
    #[arg(long, conflicts_with = "disable_ip")]
    enable_ip: bool,
    /// Do not assess the IP ranges (they are kept).
    #[arg(long)]
    disable_ip: bool,
    /// An IP range (198.51.100.0/24, 198.51.100.10-198.51.100.99, 2001:db8::/112);
    /// repeat for more. Replaces the ranges and enables the IP scope.
    #[arg(long = "range")]
    ranges: Vec<String>,
    /// A port Vigil agents listen on; repeat for more. Replaces the list.
    #[arg(long = "agent-port")]
    agent_ports: Vec<u16>,
    /// Declare an endpoint unreachable when this port does not connect (default 135).
    #[arg(long, conflicts_with = "no_unreachable_check")]
    unreachable_port: Option<u16>,
    /// Do not check a port before the others.
    #[arg(long)]
    no_unreachable_check: bool,
    /// Contact every endpoint live (accurate).
    #[arg(long, conflicts_with = "database_only")]
    on_demand: bool,
    /// Answer from what the server already knows (fast).
    #[arg(long)]
    database_only: bool,
    /// Do not look up names for addresses (no reverse DNS, no NetBIOS; like nmap -n).
    #[arg(long, conflicts_with = "resolve_names")]
    no_resolve_names: bool,
    /// Look up names for addresses (reverse DNS, NetBIOS node status): the default.
    #[arg(long)]
    resolve_names: bool,
    /// The directory: ldap://host[:port] or ldaps://host[:port].
    #[arg(long)]
    ad_url: Option<String>,
    /// Upgrade an ldap:// connection with StartTLS.
    #[arg(long)]
    ad_start_tls: bool,
    /// Simple bind as this DN, user@domain or DOMAIN\user (password: VIGIL_AD_PASSWORD or --ad-password-stdin).
    #[arg(long, conflicts_with = "ad_gssapi")]
    ad_bind_dn: Option<String>,
    /// Bind with the server's Kerberos ticket (SASL GSSAPI).
    #[arg(long)]
    ad_gssapi: bool,
    /// Where computer objects are searched; repeat for more. Replaces the list.
    #[arg(long = "ad-base-dn")]
    ad_base_dns: Vec<String>,
    /// An extra LDAP filter ANDed with (objectCategory=computer).
    #[arg(long)]
    ad_filter: Option<String>,
    /// A PEM file with the CA certificate(s) of the directory's TLS certificate.
    #[arg(long)]
    ad_ca_cert: Option<PathBuf>,
    /// Trust the directory's certificate with this SHA-256 fingerprint, and
    /// only it, whatever its names (see `scope certificate`); "" removes the pin.
    #[arg(long)]
    ad_tls_pin: Option<String>,
    /// Read the AD bind password from standard input.
    #[arg(long)]
    ad_password_stdin: bool,
    /// Remove the Active Directory part of the scope.
    #[arg(long, conflicts_with_all = ["ad_url", "ad_bind_dn", "ad_gssapi", "ad_base_dns"])]
    no_ad: bool,
    /// Save and re-assess (default: save only).
    #[arg(long)]
    reassess: bool,
}

#[derive(Debug, Args)]
pub(super) struct EndpointArgs {
    /// The assessment (default: the latest).
    #[arg(long)]
    assessment: Option<String>,
    /// Exact name, or with * wildcards (web*): an incomplete name finds nothing.
    #[arg(long)]
    name: Option<String>,
    /// managed_here, managed_elsewhere, no_agent, unreachable, unresolved_ad; repeat or comma-separate.
    #[arg(long = "status", value_delimiter = ',')]
    statuses: Vec<String>,
    /// Addresses in this range (198.51.100.0/24, a-b).
    #[arg(long)]
    ip: Option<String>,
    /// Operating system (with * wildcards).
    #[arg(long)]
    os: Option<String>,
    /// AD container (OU), a DN.
    #[arg(long)]
    container: Option<String>,
    /// Seen at or after: unix seconds, YYYY-MM-DD (UTC) or RFC 3339.
    #[arg(long)]
    seen_after: Option<String>,
    /// Seen at or before: unix seconds, YYYY-MM-DD (UTC) or RFC 3339.
    #[arg(long)]
    seen_before: Option<String>,
    /// Skip this many matches.
    #[arg(long)]
    offset: Option<u64>,
    /// Show at most this many (server default 100, at most 1000).
    #[arg(long)]
    limit: Option<u64>,
    /// Write every match as CSV to this file ("-" = standard output) instead of a table.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(super) enum ScheduleCommand {
    /// The schedule of assessments and when the next one runs.
    Show,
    /// Run every N minutes, daily or weekly (times in UTC); or switch it off.
    Set {
        /// Run every N minutes (organizations: from 1; members: from 15).
        #[arg(long, conflicts_with_all = ["daily", "weekly", "at"])]
        every: Option<u32>,
        /// Run every day at HH:MM (UTC).
        #[arg(long, conflicts_with = "weekly")]
        daily: Option<String>,
        /// Run once a week on this day (sun, mon, … or 0-6 with 0 = Sunday).
        #[arg(long)]
        weekly: Option<String>,
        /// With --weekly: at HH:MM (UTC) [default: 00:00].
        #[arg(long, requires = "weekly")]
        at: Option<String>,
        /// Keep the settings but stop running.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Run again with the saved settings.
        #[arg(long)]
        enable: bool,
    },
}

impl Ctl {
    pub(super) async fn compliance(
        &self,
        cmd: ComplianceCommand,
        ad_password: Option<String>,
    ) -> Result<()> {
        match cmd {
            ComplianceCommand::Scope(ScopeCommand::Show) => self.scope_show().await,
            ComplianceCommand::Scope(ScopeCommand::Set(args)) => {
                self.scope_set(*args, ad_password).await
            }
            ComplianceCommand::Scope(ScopeCommand::Certificate) => {
                let answer = self.api.post_empty("/compliance/scope/certificate").await?;
                self.show(answer, |c: AdCertificateView| certificate_text(&c))
            }
            ComplianceCommand::Assess { wait } => self.assess(wait).await,
            ComplianceCommand::Status => {
                let answer = self.api.get("/compliance/assessments").await?;
                self.show(answer, |a: AssessmentView| assessment_text(&a))
            }
            ComplianceCommand::Endpoints(args) => self.endpoints(args).await,
            ComplianceCommand::Schedule(ScheduleCommand::Show) => {
                let answer = self.api.get("/compliance/schedule").await?;
                self.show(answer, |v: ComplianceScheduleView| schedule_text(&v))
            }
            ComplianceCommand::Schedule(ScheduleCommand::Set {
                every,
                daily,
                weekly,
                at,
                disable,
                enable,
            }) => {
                let current: ComplianceScheduleView =
                    decode(self.api.get("/compliance/schedule").await?)?;
                let update = schedule_update(
                    current.schedule.into(),
                    every,
                    daily,
                    weekly.as_deref(),
                    at,
                    disable,
                    enable,
                )?;
                let answer = self.api.put("/compliance/schedule", &update).await?;
                self.show(answer, |v: ComplianceScheduleView| {
                    format!("schedule saved\n{}", schedule_text(&v))
                })
            }
            ComplianceCommand::History { limit } => {
                let q = query(
                    &limit
                        .map(|l| ("limit", l.to_string()))
                        .into_iter()
                        .collect::<Vec<_>>(),
                );
                let answer = self.api.get(&format!("/compliance/history{q}")).await?;
                self.show(answer, |h: Vec<AssessmentHistoryEntry>| history_table(&h))
            }
            ComplianceCommand::Peers(cmd) => self.peers(cmd, ad_password).await,
            ComplianceCommand::Move(args) => self.move_agents(args).await,
            ComplianceCommand::Install(args) => self.install(*args).await,
            ComplianceCommand::InstallStatus { id } => self.install_status(&id).await,
            ComplianceCommand::InstallCommand(args) => self.install_command(args).await,
        }
    }

    async fn scope_show(&self) -> Result<()> {
        let Some(answer) = self.api.get_optional("/compliance/scope").await? else {
            return Err(usage(
                "no compliance scope saved yet: set one with `vigil ctl compliance scope set`",
            ));
        };
        self.show(answer, |v: ComplianceScopeView| scope_text(&v))
    }

    async fn scope_set(&self, args: ScopeArgs, ad_password: Option<String>) -> Result<()> {
        let current = match self.api.get_optional("/compliance/scope").await? {
            Some(v) => decode::<ComplianceScopeView>(v)?.scope,
            None => ComplianceScope::default(),
        };
        let scope = apply_scope_args(current, &args)?;
        // VIGIL_AD_PASSWORD may be set for other commands: it only goes
        // with a simple bind (a password on standard input always goes, so
        // the server can say it is not used).
        let simple_bind = scope
            .ad
            .as_ref()
            .is_some_and(|ad| matches!(ad.bind, AdBind::Simple { .. }));
        let ad_password = ad_password.filter(|_| simple_bind || args.ad_password_stdin);
        let update = ComplianceScopeUpdate {
            scope,
            ad_password,
            reassess: args.reassess,
        };
        let answer = self.api.put("/compliance/scope", &update).await?;
        if self.json {
            print_json(&answer);
            return Ok(());
        }
        match answer["assessment_id"].as_str() {
            Some(id) => println!(
                "scope saved; assessment {id} started (follow it with `vigil ctl compliance status`)"
            ),
            None => println!("scope saved"),
        }
        Ok(())
    }

    async fn assess(&self, wait: bool) -> Result<()> {
        let started: AssessmentView =
            decode(self.api.post_empty("/compliance/assessments").await?)?;
        if !wait {
            if self.json {
                print_json(&serde_json::to_value(&started)?);
            } else {
                println!(
                    "assessment {} started (follow it with `vigil ctl compliance status`)",
                    started.id
                );
            }
            return Ok(());
        }
        let path = format!(
            "/compliance/assessments{}",
            query(&[("assessment", started.id.clone())])
        );
        let mut progress = Progress::new(!self.json && std::io::stdout().is_terminal());
        let (answer, last) = loop {
            let answer = self.api.get(&path).await?;
            let a: AssessmentView = decode(answer.clone())?;
            if a.state != "running" {
                break (answer, a);
            }
            if !self.json {
                progress.update(&a);
            }
            tokio::time::sleep(POLL).await;
        };
        progress.finish();
        if self.json {
            print_json(&answer);
        } else {
            print!("{}", assessment_text(&last));
        }
        match last.state.as_str() {
            "done" => Ok(()),
            "cancelled" => Err(anyhow!(
                "assessment {} was cancelled (a newer assessment started)",
                last.id
            )),
            _ => Err(anyhow!(
                "assessment {} failed: {}",
                last.id,
                last.error.as_deref().unwrap_or("no reason given")
            )),
        }
    }

    async fn endpoints(&self, args: EndpointArgs) -> Result<()> {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let text = [
            ("assessment", &args.assessment),
            ("name", &args.name),
            ("ip", &args.ip),
            ("os", &args.os),
            ("container", &args.container),
        ];
        for (k, v) in text {
            if let Some(v) = v {
                pairs.push((k, v.clone()));
            }
        }
        if !args.statuses.is_empty() {
            for s in &args.statuses {
                s.trim()
                    .parse::<EndpointStatus>()
                    .map_err(|e| usage(format!("--status: {e}")))?;
            }
            pairs.push(("status", args.statuses.join(",")));
        }
        if let Some(t) = &args.seen_after {
            pairs.push(("seen_after", parse_when("--seen-after", t)?.to_string()));
        }
        if let Some(t) = &args.seen_before {
            pairs.push(("seen_before", parse_when("--seen-before", t)?.to_string()));
        }
        if let Some(o) = args.offset {
            pairs.push(("offset", o.to_string()));
        }
        if let Some(l) = args.limit {
            pairs.push(("limit", l.to_string()));
        }
        if let Some(file) = &args.csv {
            let csv = self
                .api
                .get_raw(&format!("/compliance/endpoints.csv{}", query(&pairs)))
                .await?;
            return write_csv(file, &csv);
        }
        let answer = self
            .api
            .get(&format!("/compliance/endpoints{}", query(&pairs)))
            .await?;
        self.show(answer, |p: EndpointPage| endpoints_table(&p))
    }
}

/// The AD bind password for `scope set`, read before the runtime starts:
/// from standard input with `--ad-password-stdin`, else VIGIL_AD_PASSWORD.
/// The secret a command needs, read before anything else: the AD bind
/// password of `scope set`, or the API token of `peers add` (from standard
/// input when asked, else from the environment; never from arguments).
pub(super) fn ad_password(cmd: &ComplianceCommand) -> Result<Option<String>> {
    let (stdin, env, what) = match cmd {
        ComplianceCommand::Scope(ScopeCommand::Set(args)) => (
            args.ad_password_stdin,
            AD_PASSWORD_ENV,
            "--ad-password-stdin: standard input has no password",
        ),
        ComplianceCommand::Peers(PeersCommand::Add { token_stdin, .. }) => (
            *token_stdin,
            PEER_TOKEN_ENV,
            "--token-stdin: standard input has no token",
        ),
        _ => return Ok(None),
    };
    if stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading a secret from standard input")?;
        let secret = line.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            return Err(usage(what));
        }
        return Ok(Some(secret.to_string()));
    }
    Ok(std::env::var(env).ok().filter(|p| !p.is_empty()))
}

/// The scope `scope set` saves: the file's (or the current one) with the flags applied.
fn apply_scope_args(current: ComplianceScope, a: &ScopeArgs) -> Result<ComplianceScope> {
    let mut scope = match &a.file {
        Some(path) => read_scope_file(path)?,
        None => current,
    };
    if !a.ranges.is_empty() {
        let mut ranges = Vec::with_capacity(a.ranges.len());
        for r in &a.ranges {
            ranges.push(IpRange::parse(r).map_err(|e| usage(format!("--range {r}: {e}")))?);
        }
        scope.ip.ranges = ranges;
        scope.ip.enabled = true;
    }
    if a.enable_ip {
        scope.ip.enabled = true;
    }
    if a.disable_ip {
        scope.ip.enabled = false;
    }
    if !a.agent_ports.is_empty() {
        scope.agent_ports = AgentPorts::new(a.agent_ports.iter().copied())
            .map_err(|e| usage(format!("--agent-port: {e}")))?;
    }
    if let Some(p) = a.unreachable_port {
        scope.unreachable_port = Some(p);
    }
    if a.no_unreachable_check {
        scope.unreachable_port = None;
    }
    if a.on_demand {
        scope.on_demand = true;
    }
    if a.database_only {
        scope.on_demand = false;
    }
    if a.resolve_names {
        scope.resolve_names = true;
    }
    if a.no_resolve_names {
        scope.resolve_names = false;
    }
    if a.no_ad {
        scope.ad = None;
    } else {
        scope.ad = apply_ad_args(scope.ad.take(), a)?;
    }
    scope.validate().map_err(|e| usage(e.to_string()))?;
    Ok(scope)
}

fn apply_ad_args(current: Option<AdScope>, a: &ScopeArgs) -> Result<Option<AdScope>> {
    let touched = a.ad_url.is_some()
        || a.ad_start_tls
        || a.ad_bind_dn.is_some()
        || a.ad_gssapi
        || !a.ad_base_dns.is_empty()
        || a.ad_filter.is_some()
        || a.ad_ca_cert.is_some()
        || a.ad_tls_pin.is_some();
    if !touched {
        return Ok(current);
    }
    let bind = match (&a.ad_bind_dn, a.ad_gssapi) {
        (Some(dn), _) => Some(AdBind::Simple {
            bind_dn: dn.clone(),
        }),
        (None, true) => Some(AdBind::Gssapi),
        (None, false) => None,
    };
    let mut base_dns = Vec::with_capacity(a.ad_base_dns.len());
    for dn in &a.ad_base_dns {
        base_dns.push(Dn::parse(dn).map_err(|e| usage(format!("--ad-base-dn {dn:?}: {e}")))?);
    }
    let ca_cert = match &a.ad_ca_cert {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--ad-ca-cert {}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut ad = match current {
        Some(ad) => ad,
        None => {
            let (Some(url), Some(bind)) = (&a.ad_url, &bind) else {
                return Err(usage(
                    "a new Active Directory scope needs --ad-url, --ad-bind-dn (or --ad-gssapi) \
                     and --ad-base-dn",
                ));
            };
            AdScope {
                url: url.clone(),
                start_tls: false,
                bind: bind.clone(),
                base_dns: Vec::new(),
                filter: None,
                ca_cert: None,
                tls_pin: None,
            }
        }
    };
    if let Some(url) = &a.ad_url {
        ad.url = url.clone();
    }
    if a.ad_start_tls {
        ad.start_tls = true;
    }
    if let Some(bind) = bind {
        ad.bind = bind;
    }
    if !base_dns.is_empty() {
        ad.base_dns = base_dns;
    }
    if let Some(f) = &a.ad_filter {
        ad.filter = Some(f.clone()).filter(|f| !f.is_empty());
    }
    if ca_cert.is_some() {
        ad.ca_cert = ca_cert;
    }
    match a.ad_tls_pin.as_deref().map(str::trim) {
        None => {}
        Some("") => ad.tls_pin = None,
        Some(pin) => {
            ad.tls_pin = Some(
                pin.parse()
                    .map_err(|e| usage(format!("--ad-tls-pin: {e}")))?,
            )
        }
    }
    Ok(Some(ad))
}

/// A scope file: TOML for `*.toml`, JSON otherwise. Either the scope
/// itself or the `GET /compliance/scope` answer (with `scope` inside).
fn read_scope_file(path: &Path) -> Result<ComplianceScope> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("--file {}: {e}", path.display())))?;
    let toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let value: serde_json::Value = if toml {
        toml::from_str(&text).map_err(|e| usage(format!("--file {}: {e}", path.display())))?
    } else {
        serde_json::from_str(&text).map_err(|e| usage(format!("--file {}: {e}", path.display())))?
    };
    let value = match value.get("scope") {
        Some(inner) if value.get("has_ad_password").is_some() => inner.clone(),
        _ => value,
    };
    serde_json::from_value(value).map_err(|e| usage(format!("--file {}: {e}", path.display())))
}

/// The schedule `schedule set` saves.
fn schedule_update(
    mut s: ComplianceScheduleUpdate,
    every: Option<u32>,
    daily: Option<String>,
    weekly: Option<&str>,
    at: Option<String>,
    disable: bool,
    enable: bool,
) -> Result<ComplianceScheduleUpdate> {
    let timing = every.is_some() || daily.is_some() || weekly.is_some();
    if !timing && !disable && !enable {
        return Err(usage(
            "say when: --every MINUTES, --daily HH:MM, --weekly DAY [--at HH:MM]; \
             or --disable / --enable",
        ));
    }
    if timing {
        s.every_minutes = every;
        s.daily_at = daily.or(at);
        s.weekly_on = weekly.map(parse_weekday).transpose()?;
        s.enabled = true;
    }
    if enable {
        s.enabled = true;
    }
    if disable {
        s.enabled = false;
    }
    Ok(s)
}

/// `sun`, `Monday`, `0`…`6` (0 = Sunday) as cron's weekday number.
fn parse_weekday(text: &str) -> Result<u8> {
    let t = text.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<u8>() {
        if n <= 6 {
            return Ok(n);
        }
    }
    WEEKDAYS
        .iter()
        .position(|d| t.len() >= 3 && d.to_ascii_lowercase().starts_with(&t))
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| {
            usage(format!(
                "--weekly {text:?}: use sun, mon, … sat or 0-6 (0 = Sunday)"
            ))
        })
}

/// Unix seconds, `YYYY-MM-DD` (UTC midnight) or RFC 3339.
fn parse_when(flag: &str, text: &str) -> Result<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(dt) = d.and_hms_opt(0, 0, 0) {
            return Ok(dt.and_utc().timestamp());
        }
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|dt| dt.timestamp())
        .map_err(|_| {
            usage(format!(
                "{flag} {text:?}: use unix seconds, YYYY-MM-DD or RFC 3339 (2025-01-31T08:00:00Z)"
            ))
        })
}

fn write_csv(file: &Path, csv: &[u8]) -> Result<()> {
    if file == Path::new("-") {
        use std::io::Write;
        return std::io::stdout()
            .write_all(csv)
            .context("writing the CSV to standard output");
    }
    std::fs::write(file, csv).with_context(|| format!("writing {}", file.display()))?;
    let rows = csv
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        .saturating_sub(1);
    eprintln!("wrote {rows} endpoints to {}", file.display());
    Ok(())
}

/// A progress bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    /// When the last plain line was printed, and at what progress.
    last_line: Option<(std::time::Instant, u64)>,
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
            ) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            last_line: None,
        }
    }

    fn update(&mut self, a: &AssessmentView) {
        if let Some(bar) = &self.bar {
            bar.set_length(a.total);
            bar.set_position(a.done);
            bar.set_message(counts_line(&a.counts));
            return;
        }
        let due = self
            .last_line
            .is_none_or(|(at, done)| at.elapsed() >= PLAIN_EVERY && done != a.done);
        if due {
            println!(
                "progress: {}/{} {}",
                a.done,
                a.total,
                counts_line(&a.counts)
            );
            self.last_line = Some((std::time::Instant::now(), a.done));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `managed_here 1, no_agent 2, …` (statuses with endpoints only).
fn counts_line(c: &StatusCounts) -> String {
    EndpointStatus::ALL
        .iter()
        .filter(|s| c.get(**s) > 0)
        .map(|s| format!("{s} {}", c.get(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn counts_table(c: &StatusCounts) -> String {
    let mut t = Table::new(&["STATUS", "ENDPOINTS", ""]);
    for s in EndpointStatus::ALL {
        t.row(vec![
            s.to_string(),
            c.get(s).to_string(),
            s.label().to_string(),
        ]);
    }
    t.render()
}

fn assessment_text(a: &AssessmentView) -> String {
    let mode = if a.on_demand {
        "on demand"
    } else {
        "database only"
    };
    let mut pairs = vec![
        ("assessment", a.id.clone()),
        ("state", a.state.clone()),
        ("mode", mode.to_string()),
        ("started", time(a.started_at)),
        ("finished", or_dash(a.finished_at.map(time))),
        ("progress", format!("{}/{}", a.done, a.total)),
    ];
    if let Some(e) = &a.error {
        pairs.push(("error", e.clone()));
    }
    format!("{}\n{}", fields(&pairs), counts_table(&a.counts))
}

fn certificate_text(c: &AdCertificateView) -> String {
    let trusted = match (&c.problem, c.pinned) {
        (None, true) => "yes (pinned)".to_string(),
        (None, false) => "yes".to_string(),
        (Some(problem), _) => format!("no: {problem}"),
    };
    let mut text = fields(&[
        ("url", c.url.clone()),
        ("fingerprint", c.fingerprint.clone()),
        ("trusted", trusted),
    ]);
    if !c.pinned {
        text.push_str(&format!(
            "\ncompare it with the domain controller's certificate, then pin it:\n  \
             VIGIL_AD_PASSWORD=… vigil ctl compliance scope set --ad-tls-pin {}\n",
            c.fingerprint
        ));
    }
    text
}

fn scope_text(v: &ComplianceScopeView) -> String {
    let s = &v.scope;
    let ranges: Vec<String> = s.ip.ranges.iter().map(|r| r.to_string()).collect();
    let ports: Vec<String> = s
        .agent_ports
        .as_slice()
        .iter()
        .map(u16::to_string)
        .collect();
    let mut pairs = vec![
        (
            "ip scope",
            if s.ip.enabled { "enabled" } else { "disabled" }.to_string(),
        ),
        (
            "ranges",
            if ranges.is_empty() {
                "-".into()
            } else {
                ranges.join(", ")
            },
        ),
        ("agent ports", ports.join(", ")),
        (
            "unreachable check",
            s.unreachable_port
                .map_or_else(|| "off".to_string(), |p| format!("port {p}")),
        ),
        (
            "mode",
            if s.on_demand {
                "on demand"
            } else {
                "database only"
            }
            .to_string(),
        ),
        (
            "names for addresses",
            if s.resolve_names {
                "reverse DNS and NetBIOS"
            } else {
                "off"
            }
            .to_string(),
        ),
    ];
    match &s.ad {
        None => pairs.push(("active directory", "-".into())),
        Some(ad) => {
            pairs.push(("active directory", ad.url.clone()));
            let bind = match &ad.bind {
                AdBind::Simple { bind_dn } => format!(
                    "simple as {bind_dn} (password {})",
                    if v.has_ad_password {
                        "stored"
                    } else {
                        "not set"
                    }
                ),
                AdBind::Gssapi => "GSSAPI (the server's Kerberos ticket)".into(),
            };
            pairs.push(("bind", bind));
            let dns: Vec<String> = ad.base_dns.iter().map(|d| d.to_string()).collect();
            pairs.push(("base DNs", dns.join("; ")));
            pairs.push(("filter", or_dash(ad.filter.clone())));
            pairs.push(("start TLS", ad.start_tls.to_string()));
            pairs.push((
                "pinned certificate",
                or_dash(ad.tls_pin.map(|p| p.to_string())),
            ));
        }
    }
    fields(&pairs)
}

fn endpoints_table(p: &EndpointPage) -> String {
    let mut t = Table::new(&[
        "NAME",
        "FROM",
        "ADDRESSES",
        "STATUS",
        "OS",
        "LAST SEEN",
        "AGENT",
    ]);
    for e in &p.endpoints {
        let addrs: Vec<String> = e.addrs.iter().map(|a| a.to_string()).collect();
        let agent = match (&e.agent_id, &e.agent_version) {
            (Some(id), Some(v)) => format!("{id} ({v})"),
            (Some(id), None) => id.clone(),
            _ => "-".into(),
        };
        t.row(vec![
            e.name.clone(),
            e.name_source.map_or("-", |s| s.as_str()).to_string(),
            addrs.join(" "),
            e.status.to_string(),
            or_dash(e.os.clone()),
            or_dash(e.last_seen.map(time)),
            agent,
        ]);
    }
    let shown = p.endpoints.len() as u64;
    let mut out = t.render();
    out.push_str(&format!(
        "{shown} of {} matching endpoints (from {}) of assessment {}\n",
        p.total, p.offset, p.assessment_id
    ));
    out
}

fn schedule_text(v: &ComplianceScheduleView) -> String {
    let s = &v.schedule;
    let when = match (s.every_minutes, &s.daily_at, s.weekly_on) {
        (Some(m), _, _) => format!("every {m} min"),
        (None, at, Some(d)) => format!(
            "weekly on {} at {} UTC",
            WEEKDAYS.get(usize::from(d)).unwrap_or(&"?"),
            at.as_deref().unwrap_or("00:00")
        ),
        (None, Some(at), None) => format!("daily at {at} UTC"),
        (None, None, None) => "-".into(),
    };
    let next = v.next_run_at.map(|t| {
        let secs = (t - now()).max(0);
        format!("{} (in {} min)", time(t), (secs + 59) / 60)
    });
    fields(&[
        (
            "schedule",
            if s.enabled { "enabled" } else { "disabled" }.to_string(),
        ),
        ("runs", when),
        ("next run", or_dash(next)),
    ])
}

fn history_table(h: &[AssessmentHistoryEntry]) -> String {
    let mut t = Table::new(&[
        "STARTED",
        "TRIGGER",
        "STATE",
        "MODE",
        "TOOK",
        "HERE",
        "ELSEWHERE",
        "NO AGENT",
        "UNREACHABLE",
        "UNRESOLVED AD",
    ]);
    for a in h {
        let took = a
            .finished_at
            .map(|f| format!("{} s", (f - a.started_at).max(0)));
        let c = &a.counts;
        t.row(vec![
            time(a.started_at),
            a.trigger.clone(),
            a.state.clone(),
            if a.on_demand { "on demand" } else { "database" }.to_string(),
            or_dash(took),
            c.managed_here.to_string(),
            c.managed_elsewhere.to_string(),
            c.no_agent.to_string(),
            c.unreachable.to_string(),
            c.unresolved_ad.to_string(),
        ]);
    }
    if h.is_empty() {
        return "no assessment has run yet\n".into();
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        scope: ScopeArgs,
    }

    fn args(flags: &[&str]) -> ScopeArgs {
        let argv = std::iter::once("x").chain(flags.iter().copied());
        Cli::try_parse_from(argv).unwrap().scope
    }

    #[test]
    fn scope_flags_change_the_current_scope() {
        let scope = apply_scope_args(
            ComplianceScope::default(),
            &args(&[
                "--range",
                "198.51.100.0/28",
                "--range",
                "2001:db8::/120",
                "--agent-port",
                "47760",
                "--agent-port",
                "47761",
                "--no-unreachable-check",
                "--database-only",
            ]),
        )
        .unwrap();
        assert!(scope.ip.enabled);
        assert_eq!(scope.ip.ranges.len(), 2);
        assert_eq!(scope.agent_ports.as_slice(), [47760, 47761]);
        assert_eq!(scope.unreachable_port, None);
        assert!(!scope.on_demand);
        assert!(scope.resolve_names, "names are looked up by default");
        let quiet = apply_scope_args(scope.clone(), &args(&["--no-resolve-names"])).unwrap();
        assert!(!quiet.resolve_names);
        assert!(
            apply_scope_args(quiet, &args(&["--resolve-names"]))
                .unwrap()
                .resolve_names
        );

        // Later changes keep what they do not name.
        let again = apply_scope_args(scope.clone(), &args(&["--unreachable-port", "445"])).unwrap();
        assert_eq!(again.ip, scope.ip);
        assert_eq!(again.unreachable_port, Some(445));
        let off = apply_scope_args(again, &args(&["--disable-ip"])).unwrap();
        assert!(!off.ip.enabled);
        assert_eq!(off.ip.ranges, scope.ip.ranges);
    }

    #[test]
    fn bad_scope_flags_are_usage_errors() {
        let is_usage = |r: Result<ComplianceScope>, needle: &str| {
            let e = r.unwrap_err();
            assert!(e.downcast_ref::<crate::cmd::UsageError>().is_some(), "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        };
        is_usage(
            apply_scope_args(
                ComplianceScope::default(),
                &args(&["--range", "2001:db8::/104"]),
            ),
            "2001:db8::/104",
        );
        is_usage(
            apply_scope_args(ComplianceScope::default(), &args(&["--range", "nonsense"])),
            "nonsense",
        );
        is_usage(
            apply_scope_args(
                ComplianceScope::default(),
                &args(&["--ad-url", "ldaps://dc.example.test"]),
            ),
            "--ad-bind-dn",
        );
    }

    #[test]
    fn ad_flags_build_a_scope() {
        let scope = apply_scope_args(
            ComplianceScope::default(),
            &args(&[
                "--ad-url",
                "ldaps://dc.example.test",
                "--ad-bind-dn",
                "svc@example.test",
                "--ad-base-dn",
                "OU=Computers,DC=example,DC=test",
            ]),
        )
        .unwrap();
        let ad = scope.ad.clone().unwrap();
        assert_eq!(ad.url, "ldaps://dc.example.test");
        assert_eq!(
            ad.bind,
            AdBind::Simple {
                bind_dn: "svc@example.test".into()
            }
        );
        let changed =
            apply_scope_args(scope.clone(), &args(&["--ad-filter", "(cn=web*)"])).unwrap();
        assert_eq!(changed.ad.unwrap().filter.as_deref(), Some("(cn=web*)"));
        // A pin as the certificate check prints it, or openssl's colons.
        let pin = format!("sha256:{}", "ab".repeat(32));
        let pinned = apply_scope_args(scope.clone(), &args(&["--ad-tls-pin", &pin])).unwrap();
        assert_eq!(
            pinned
                .ad
                .as_ref()
                .and_then(|a| a.tls_pin)
                .map(|p| p.to_string()),
            Some(pin.clone())
        );
        let openssl = format!("SHA256:{}", vec!["AB"; 32].join(":"));
        let same = apply_scope_args(scope.clone(), &args(&["--ad-tls-pin", &openssl])).unwrap();
        assert_eq!(same.ad, pinned.ad);
        let unpinned = apply_scope_args(pinned, &args(&["--ad-tls-pin", ""])).unwrap();
        assert_eq!(unpinned.ad.and_then(|a| a.tls_pin), None);
        let e = apply_scope_args(scope.clone(), &args(&["--ad-tls-pin", "sha256:12"])).unwrap_err();
        assert!(e.to_string().contains("--ad-tls-pin"), "{e}");
        let removed = apply_scope_args(scope, &args(&["--no-ad"])).unwrap();
        assert_eq!(removed.ad, None);
    }

    #[test]
    fn certificate_check_says_how_to_pin() {
        let untrusted = AdCertificateView {
            url: "ldaps://dc1.example.test".into(),
            fingerprint: format!("sha256:{}", "ab".repeat(32)),
            trusted: false,
            problem: Some("certificate not valid for name".into()),
            pinned: false,
        };
        let text = certificate_text(&untrusted);
        assert!(
            text.contains("no: certificate not valid for name"),
            "{text}"
        );
        assert!(
            text.contains(&format!("--ad-tls-pin {}", untrusted.fingerprint)),
            "{text}"
        );
        let pinned = AdCertificateView {
            trusted: true,
            problem: None,
            pinned: true,
            ..untrusted
        };
        let text = certificate_text(&pinned);
        assert!(
            text.contains("yes (pinned)") && !text.contains("--ad-tls-pin"),
            "{text}"
        );
    }

    #[test]
    fn schedules_from_flags() {
        let base = ComplianceScheduleUpdate::default();
        let every =
            schedule_update(base.clone(), Some(60), None, None, None, false, false).unwrap();
        assert_eq!((every.enabled, every.every_minutes), (true, Some(60)));
        let weekly = schedule_update(
            every.clone(),
            None,
            None,
            Some("mon"),
            Some("02:30".into()),
            false,
            false,
        )
        .unwrap();
        assert_eq!(weekly.every_minutes, None);
        assert_eq!(weekly.weekly_on, Some(1));
        assert_eq!(weekly.daily_at.as_deref(), Some("02:30"));
        let off = schedule_update(weekly.clone(), None, None, None, None, true, false).unwrap();
        assert!(!off.enabled);
        assert_eq!(off.weekly_on, Some(1));
        assert!(schedule_update(base, None, None, None, None, false, false).is_err());
    }

    #[test]
    fn weekdays_and_times() {
        assert_eq!(parse_weekday("sun").unwrap(), 0);
        assert_eq!(parse_weekday("Saturday").unwrap(), 6);
        assert_eq!(parse_weekday("3").unwrap(), 3);
        assert!(parse_weekday("7").is_err());
        assert!(parse_weekday("s").is_err());
        assert_eq!(parse_when("--x", "86400").unwrap(), 86_400);
        assert_eq!(parse_when("--x", "1970-01-02").unwrap(), 86_400);
        assert_eq!(
            parse_when("--x", "1970-01-02T01:00:00+01:00").unwrap(),
            86_400
        );
        assert!(parse_when("--x", "yesterday").is_err());
    }

    #[test]
    fn scope_files_read_json_and_toml() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("scope.json");
        std::fs::write(
            &json,
            r#"{"scope": {"ip": {"enabled": true, "ranges": ["198.51.100.0/28"]}}, "has_ad_password": false}"#,
        )
        .unwrap();
        let s = read_scope_file(&json).unwrap();
        assert_eq!(s.ip.ranges.len(), 1);
        let toml = dir.path().join("scope.toml");
        std::fs::write(
            &toml,
            "agent_ports = [47760]\nunreachable_port = 445\n[ip]\nenabled = true\nranges = [\"198.51.100.0/28\"]\n",
        )
        .unwrap();
        let s = read_scope_file(&toml).unwrap();
        assert_eq!(s.unreachable_port, Some(445));
        assert_eq!(s.agent_ports.as_slice(), [47760]);
        std::fs::write(&toml, "ip = 3").unwrap();
        assert!(read_scope_file(&toml).is_err());
    }
}
