//! `vigil-bench agents`: simulated agents against a real `vigil server`.
//!
//! Everything runs on 127.0.0.1 in a temporary data directory, with the
//! embedded SQLite database or (`--db postgres`) a throwaway PostgreSQL
//! cluster the bench starts itself (see [`pg`]):
//!
//! 1. `vigil admin create-account`, then `vigil server` (release binary);
//!    with `--replicas 2|3` (PostgreSQL only) several servers on the one
//!    database, presenting one TLS identity (the first one's `tls/` files
//!    copied into the others' data directories) and told each other's
//!    agent URLs; the simulated agents are spread over them round robin;
//! 2. over the REST API: log in, create one enrollment token per agent;
//! 3. enroll the simulated agents over the agent API (HTTPS, pinned
//!    certificate), each with its own credential and connection;
//! 4. set a security policy (interval 1 minute, several targets) on a share
//!    of them, so the scheduler hands out tasks;
//! 5. enroll one real agent (`vigil agent enroll`) and run it
//!    (`vigil agent run`) beside the load, for its memory footprint;
//! 6. run the load for a bounded time and request count (see [`load`]) while
//!    sampling the RSS of the server(s), PostgreSQL (the postmaster and its
//!    children), the real agent and the bench itself.
//!
//! The processes are stopped when the bench ends, and die with it if it is
//! killed (parent-death signal).

pub(crate) mod client;
pub(crate) mod load;
pub(crate) mod pg;
pub(crate) mod procs;
mod report;
pub(crate) mod rest;
pub(crate) mod stats;
pub(crate) mod worker;

use anyhow::{bail, Context, Result};
use procs::Child;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use vigil_core::{PolicyTarget, PortList, ScanInterval, SecurityPolicy};
use vigil_proto::pin::CertPin;

pub(crate) const EMAIL: &str = "bench@vigil.invalid";
/// Only ever used on a throw-away loopback server.
pub(crate) const PASSWORD: &str = "bench-password-not-secret";
/// How long the real agent runs before the load starts.
const REAL_AGENT_WARM_UP: Duration = Duration::from_secs(3);
/// How often the server's RSS is noted for the timeline.
const TIMELINE_STEP: Duration = Duration::from_secs(5);
/// Open files a process keeps for other things than agent connections.
pub(crate) const FILES_SPARE: u64 = 1024;
/// The database of `--db postgres`.
const PG_DATABASE: &str = "vigil";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbKind {
    /// The embedded SQLite database (WAL) in the server's data directory.
    Sqlite,
    /// A throwaway PostgreSQL cluster on 127.0.0.1, started by the bench.
    Postgres,
}

#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// Simulated agents. Each keeps its own connection (unless
    /// --reconnect), so every server needs an open file per agent it
    /// serves: the bench raises the open-file limit to the hard limit
    /// (beyond it if allowed: CAP_SYS_RESOURCE), the servers inherit it, and
    /// the agents are spread over as many worker processes as it requires.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    agents: u32,
    /// The server's database.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    db: DbKind,
    /// `vigil server` replicas on the one database (2 and 3 need --db postgres).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    replicas: u8,
    /// REST calls in flight during set-up (enrollment tokens, policies).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    setup_concurrency: u32,
    /// Length of the load phase (seconds).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration_secs: u64,
    /// Requests in flight at most, across all simulated agents.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Heartbeat interval of every simulated agent (milliseconds).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    heartbeat_ms: u64,
    /// Share of the simulated agents with an enabled security policy (percent).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(0..=100))]
    policy_percent: u8,
    /// Targets per policy: the agent's host, then 127.0.0.2, 127.0.0.3, …
    /// (nothing is scanned: the simulated agents make their results up).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=200))]
    targets: u8,
    /// Share of the uploads sent a second time with the same upload id (percent).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(0..=100))]
    resend_percent: u8,
    /// Share of the results that also report port 23 open, which no policy
    /// authorizes (percent): its alerts open and end during the load.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    flap_percent: u8,
    /// Every request on a new connection, closed after the answer (no
    /// connection kept per agent): the server holds only the requests in
    /// flight, at the cost of a TLS handshake per request.
    #[arg(long)]
    reconnect: bool,
    /// Stop the load phase after this many requests even if time is left.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// `vigil server --sweep-ports`: ports every scan checks; each synthetic
    /// result reports all of them (like a real agent's).
    #[arg(long, default_value = "1-1024")]
    sweep_ports: String,
    /// `vigil server --tick-ms`: how often the scheduler looks for due policies.
    #[arg(long, default_value_t = 200)]
    tick_ms: u64,
    /// Simulated agents per worker process (default: as many as the
    /// open-file limit allows; all of them with --reconnect).
    #[arg(long, hide = true)]
    agents_per_worker: Option<usize>,
    /// Leave out the real `vigil agent run` process.
    #[arg(long)]
    no_real_agent: bool,
    /// Also run this Windows build (`vigil.exe agent run`) under Wine as a
    /// second real agent, and report its memory beside the Linux agent's
    /// (Wine's overhead is not Windows').
    #[arg(long)]
    windows_agent_exe: Option<PathBuf>,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Keep the temporary data directory (server database and logs).
    #[arg(long)]
    keep_data: bool,
    /// Print the results as Markdown tables, ready to paste.
    #[arg(long)]
    markdown: bool,
    /// Put every agent in maintenance for the whole run (an account-wide
    /// window): results are evaluated and alerts raised as usual, and their
    /// notices held — to compare the throughput with a run without.
    #[arg(long)]
    maintenance: bool,
}

/// `vigil-bench agents-worker`: see [`worker`].
pub fn worker() -> Result<()> {
    worker::main()
}

pub fn run(args: AgentsArgs) -> Result<()> {
    PortList::parse(&args.sweep_ports)
        .map_err(|e| anyhow::anyhow!("--sweep-ports {:?}: {e}", args.sweep_ports))?;
    let vigil = crate::vigil_binary(args.vigil.as_deref())?;
    if args.replicas > 1 && args.db == DbKind::Sqlite {
        bail!(
            "--replicas {} needs --db postgres: replicas share one database, and the embedded \
             SQLite file belongs to one server",
            args.replicas
        );
    }
    // Every server (replica) holds one connection per agent it serves, and
    // so do the bench's workers (as many as the limit requires), unless
    // --reconnect; the servers inherit the limit.
    let open_files = procs::raise_open_files(u64::from(args.agents) + FILES_SPARE);
    let per_replica = u64::from(args.agents).div_ceil(u64::from(args.replicas));
    if !args.reconnect && per_replica + FILES_SPARE / 2 > open_files {
        bail!(
            "the open-file limit ({open_files}, which the servers inherit) is too low for {} \
             agents on {} server{}, one connection each: raise `ulimit -Hn` (root with \
             CAP_SYS_RESOURCE may: the bench then raises it itself), use more --replicas, or \
             --reconnect (a connection per request)",
            args.agents,
            args.replicas,
            if args.replicas == 1 { "" } else { "s" }
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("vigil-bench-agents-")
        .tempdir()
        .context("creating the data directory")?;
    let result = run_in(&args, &vigil, dir.path(), open_files);
    if args.keep_data {
        let kept = dir.keep();
        eprintln!("data directory kept: {}", kept.display());
    }
    result
}

/// A `vigil` command that ignores the caller's Vigil environment.
pub(crate) fn vigil_cmd(vigil: &Path) -> Command {
    let mut cmd = Command::new(vigil);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VIGIL_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// One `vigil server` process.
struct Replica {
    name: String,
    data: PathBuf,
    /// REST API address.
    api: String,
    agent_url: String,
    log: PathBuf,
    child: Option<Child>,
}

/// Data directories, logs and free ports of `n` servers (not started).
fn plan_replicas(n: u8, dir: &Path) -> Result<Vec<Replica>> {
    (1..=n)
        .map(|i| {
            Ok(Replica {
                name: if n == 1 {
                    "vigil server".into()
                } else {
                    format!("vigil server {i}/{n}")
                },
                data: dir.join(format!("server-{i}")),
                api: format!("127.0.0.1:{}", procs::free_port()?),
                agent_url: format!("https://127.0.0.1:{}", procs::free_port()?),
                log: dir.join(format!("server-{i}.log")),
                child: None,
            })
        })
        .collect()
}

fn run_in(args: &AgentsArgs, vigil: &Path, dir: &Path, open_files: u64) -> Result<()> {
    let setup_start = Instant::now();
    let cluster = match args.db {
        DbKind::Sqlite => None,
        DbKind::Postgres => {
            eprintln!("starting a throwaway PostgreSQL cluster on 127.0.0.1…");
            let cluster = pg::Cluster::start()?;
            cluster.create_database(PG_DATABASE)?;
            Some(cluster)
        }
    };
    let mut replicas = plan_replicas(args.replicas, dir)?;
    let db = match &cluster {
        Some(c) => c.url(PG_DATABASE),
        None => format!("sqlite://{}", replicas[0].data.join("vigil.db").display()),
    };
    let out = vigil_cmd(vigil)
        .args(["admin", "--db", &db, "create-account", "--name", "bench"])
        .args(["--kind", "organization", "--email", EMAIL])
        .env("VIGIL_PASSWORD", PASSWORD)
        .output()
        .context("running vigil admin create-account")?;
    if !out.status.success() {
        bail!(
            "vigil admin create-account failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // `block_on` polls on this (main) thread, which outlives every child:
    // the servers and the real agent are spawned from here.
    let ctx = Ctx {
        args,
        vigil,
        dir,
        db: &db,
        cluster: cluster.as_ref(),
        started: setup_start,
        open_files,
    };
    let report = runtime.block_on(async {
        tokio::select! {
            report = measure(ctx, &mut replicas) => report,
            // Stop the processes and remove the data directory on Ctrl-C too.
            () = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    let mut stops = Vec::new();
    for r in &mut replicas {
        if let Some(child) = r.child.as_mut() {
            let t = Instant::now();
            let clean = child.stop(libc::SIGTERM, Duration::from_secs(15));
            stops.push(format!(
                "{} stop after the load: {:.1} s{}",
                r.name,
                t.elapsed().as_secs_f64(),
                if clean {
                    ""
                } else {
                    " (did not exit on SIGTERM; killed)"
                }
            ));
        }
    }
    if let (Some(c), true) = (&cluster, args.keep_data) {
        let _ = std::fs::copy(c.log(), dir.join("postgresql.log"));
    }
    let mut report = report.with_context(|| {
        format!(
            "the servers' logs were {}/server-*.log (--keep-data keeps them)",
            dir.display()
        )
    })?;
    report.notes.extend(stops);
    for r in &replicas {
        report.notes.extend(log_summary(&r.name, &r.log));
    }
    report.notes.push(match &cluster {
        None => db_size(&replicas[0].data),
        Some(c) => format!(
            "PostgreSQL database after the run: {}",
            c.database_size(PG_DATABASE).map_or("?".into(), |b| format!(
                "{:.1} MiB",
                b as f64 / (1 << 20) as f64
            ))
        ),
    });
    println!("{}", report.render(args.markdown));
    Ok(())
}

/// Starts the servers one after the other, each once the previous one
/// answers `/healthz`; the first one creates the TLS identity, which the
/// others get a copy of. Fails unless all present the same pin.
async fn start_replicas(
    args: &AgentsArgs,
    vigil: &Path,
    db: &str,
    replicas: &mut [Replica],
) -> Result<()> {
    let heartbeat_secs = (args.heartbeat_ms / 1000).max(1);
    let urls: Vec<String> = replicas.iter().map(|r| r.agent_url.clone()).collect();
    let several = replicas.len() > 1;
    let mut pins = Vec::new();
    for i in 0..replicas.len() {
        if i > 0 {
            let (first, rest) = replicas.split_at(1);
            let tls = rest[i - 1].data.join("tls");
            std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
            for file in ["server.crt", "server.key"] {
                let from = first[0].data.join("tls").join(file);
                std::fs::copy(&from, tls.join(file))
                    .with_context(|| format!("copying {}", from.display()))?;
            }
        }
        let r = &mut replicas[i];
        let agent_listen = r.agent_url.trim_start_matches("https://").to_string();
        let mut cmd = vigil_cmd(vigil);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&r.data)
            .args(["--db", db])
            .args(["--listen", &r.api, "--agent-listen", &agent_listen])
            .args(["--heartbeat-secs", &heartbeat_secs.to_string()])
            .args(["--tick-ms", &args.tick_ms.to_string()])
            .args(["--sweep-ports", &args.sweep_ports]);
        if several {
            cmd.args(["--agent-url", &r.agent_url]);
            for peer in urls.iter().filter(|u| **u != r.agent_url) {
                cmd.args(["--peer-agent-url", peer]);
            }
        }
        let mut child = Child::spawn(r.name.clone(), cmd, &r.log)?;
        let rest = rest::Rest::new(format!("http://{}", r.api))?;
        let healthy = rest
            .wait_healthy(Duration::from_secs(60), || child.check_running())
            .await;
        r.child = Some(child);
        healthy?;
        pins.push(printed_pin(&r.log).await.with_context(|| {
            format!(
                "{} printed no certificate pin in {}",
                r.name,
                r.log.display()
            )
        })?);
    }
    if pins.iter().any(|p| *p != pins[0]) {
        bail!("the replicas present different certificates: pins {pins:?}");
    }
    Ok(())
}

/// The pin a server printed on start ("… (certificate pin X)"), waiting
/// up to 10 s for the line.
pub(crate) async fn printed_pin(log: &Path) -> Option<String> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let pin = text
            .lines()
            .find_map(|l| l.split("certificate pin ").nth(1))
            .map(|p| p.trim().trim_end_matches(')').to_string());
        if pin.is_some() {
            return pin;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A process, or a set of them whose memory and CPU are summed.
#[derive(Debug, Clone)]
enum Watched {
    Pid(u32),
    /// Several processes (the replicas together).
    Sum(Vec<u32>),
    /// A process and its children, looked up anew at every sample
    /// (PostgreSQL's postmaster and its backends).
    Tree(u32),
}

impl Watched {
    fn pids(&self) -> Vec<u32> {
        match self {
            Watched::Pid(p) => vec![*p],
            Watched::Sum(pids) => pids.clone(),
            Watched::Tree(root) => procs::with_children(*root),
        }
    }

    /// RSS (summed), KiB.
    fn rss_kib(&self) -> Option<u64> {
        let rss: Vec<u64> = self
            .pids()
            .into_iter()
            .filter_map(|p| procs::memory(p).map(|m| m.rss_kib))
            .collect();
        (!rss.is_empty()).then(|| rss.iter().sum())
    }

    /// The kernel's peak RSS, for a single process only (the peaks of
    /// several happen at different times).
    fn hwm_kib(&self) -> Option<u64> {
        match self {
            Watched::Pid(p) => procs::memory(*p).map(|m| m.hwm_kib),
            _ => None,
        }
    }

    /// Proportional set size (summed), KiB.
    fn pss_kib(&self) -> Option<u64> {
        let pss: Vec<u64> = self.pids().into_iter().filter_map(procs::pss_kib).collect();
        (!pss.is_empty()).then(|| pss.iter().sum())
    }

    fn cpu(&self) -> HashMap<u32, f64> {
        self.pids()
            .into_iter()
            .filter_map(|p| procs::cpu_secs(p).map(|c| (p, c)))
            .collect()
    }
}

/// CPU seconds between two [`Watched::cpu`] readings; processes that
/// started in between count from zero.
fn cpu_delta(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> Option<f64> {
    (!after.is_empty()).then(|| {
        after
            .iter()
            .map(|(pid, c)| c - before.get(pid).copied().unwrap_or(0.0))
            .sum()
    })
}

/// What [`measure`] works with besides the servers.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    args: &'a AgentsArgs,
    vigil: &'a Path,
    dir: &'a Path,
    /// The servers' `--db`.
    db: &'a str,
    cluster: Option<&'a pg::Cluster>,
    /// When the set-up began.
    started: Instant,
    open_files: u64,
}

async fn measure(ctx: Ctx<'_>, replicas: &mut [Replica]) -> Result<report::Report> {
    let Ctx {
        args,
        vigil,
        dir,
        db,
        cluster,
        started: setup_start,
        open_files,
    } = ctx;
    eprintln!("starting {} vigil server(s)…", replicas.len());
    start_replicas(args, vigil, db, replicas).await?;
    let servers_secs = setup_start.elapsed().as_secs_f64();
    let mut rest = rest::Rest::new(format!("http://{}", replicas[0].api))?;
    rest.login(EMAIL, PASSWORD).await?;
    let rest = Arc::new(rest);
    let setup_concurrency = args.setup_concurrency as usize;

    let n = args.agents as usize;
    eprintln!("creating {n} enrollment tokens…");
    let t = Instant::now();
    let enrollments = create_enrollments(&rest, n + 2, setup_concurrency).await?;
    let tokens_secs = t.elapsed().as_secs_f64();
    let pin: CertPin = enrollments[0]
        .pin
        .parse()
        .map_err(|e| anyhow::anyhow!("server pin: {e}"))?;
    let mut tokens: Vec<String> = enrollments.into_iter().map(|e| e.token).collect();
    let real_token = tokens.pop().expect("n + 2 tokens");
    let wine_token = tokens.pop().expect("n + 2 tokens");
    let urls: Vec<String> = replicas.iter().map(|r| r.agent_url.clone()).collect();

    // One connection per agent in the workers (see `worker`), unless
    // --reconnect: then only the requests in flight hold one.
    let per_worker = if let Some(k) = args.agents_per_worker {
        k.max(1)
    } else if args.reconnect {
        n
    } else {
        usize::try_from(open_files.saturating_sub(FILES_SPARE))
            .unwrap_or(usize::MAX)
            .max(1)
    };
    let n_workers = n.div_ceil(per_worker).max(1);
    eprintln!(
        "enrolling {n} simulated agents in {n_workers} worker process{}…",
        if n_workers == 1 { "" } else { "es" }
    );
    let enroll_start = Instant::now();
    let mut workers = Vec::new();
    let mut tokens = tokens.into_iter().enumerate();
    for w in 0..n_workers {
        let init = worker::Init {
            urls: urls.clone(),
            pin: pin.to_string(),
            tokens: tokens
                .by_ref()
                .take(worker::share(n, n_workers, w))
                .collect(),
            enroll_concurrency: worker::share(args.concurrency as usize, n_workers, w).max(1),
            reconnect: args.reconnect,
            load: load::LoadConfig {
                duration: Duration::from_secs(args.duration_secs),
                heartbeat: Duration::from_millis(args.heartbeat_ms),
                concurrency: worker::share(args.concurrency as usize, n_workers, w).max(1),
                resend_percent: args.resend_percent,
                flap_percent: args.flap_percent,
                max_requests: args.max_requests / n_workers as u64
                    + u64::from((w as u64) < args.max_requests % n_workers as u64),
            },
        };
        let name = format!("bench worker {}/{n_workers}", w + 1);
        workers.push(worker::Worker::start(name, &init).await?);
    }
    // The workers enroll side by side; their reports are read in turn.
    let mut enrolled: Vec<worker::Enrolled> = Vec::new();
    for w in &mut workers {
        enrolled.push(w.recv().await?);
    }
    let enroll_secs = enroll_start.elapsed().as_secs_f64();
    let mut setup_stats = Vec::new();
    let mut agent_ids: Vec<(usize, String)> = Vec::new();
    for e in enrolled {
        agent_ids.extend(e.agents);
        setup_stats.push(e.stats);
    }
    if agent_ids.is_empty() {
        bail!("no simulated agent could enroll");
    }
    agent_ids.sort();
    let ids: Vec<String> = agent_ids
        .iter()
        .filter(|(i, _)| has_policy(*i, args.policy_percent))
        .map(|(_, id)| id.clone())
        .collect();
    let with_policy = ids.len();
    eprintln!("setting {with_policy} policies…");
    let t = Instant::now();
    set_policies(&rest, ids, sim_policy(args.targets), setup_concurrency).await?;
    let policies_secs = t.elapsed().as_secs_f64();
    if args.maintenance {
        eprintln!("opening an account-wide maintenance window…");
        rest.open_maintenance().await?;
    }

    let mut real_agent = None;
    if !args.no_real_agent {
        eprintln!("enrolling and starting a real agent…");
        let state = dir.join("agent");
        let cmd = vigil_cmd(vigil);
        real_agent =
            Some(start_real_agent(cmd, &state, dir, &urls[0], &real_token, pin, &rest).await?);
    }
    // The Windows agent under Wine: the wine64 loader becomes the exe's
    // process, so its pid is the agent's (the prefix's wineserver is not counted).
    let mut wine_agent = None;
    if let Some(exe) = &args.windows_agent_exe {
        eprintln!("enrolling and starting vigil.exe under Wine…");
        let wine = vigil_testwine::Wine::new().context("a Wine prefix")?;
        let mut cmd = Command::new(wine.loader());
        wine.configure(&mut cmd);
        cmd.arg(exe);
        let state = dir.join("wine-agent");
        let agent = start_real_agent(cmd, &state, dir, &urls[0], &wine_token, pin, &rest).await?;
        wine_agent = Some((agent, wine));
    }
    if real_agent.is_some() || wine_agent.is_some() {
        // Let it start, heartbeat and run its first scan before "before load".
        tokio::time::sleep(REAL_AGENT_WARM_UP).await;
    }
    for r in replicas.iter_mut() {
        if let Some(child) = r.child.as_mut() {
            child.check_running()?;
        }
    }
    let setup_secs = setup_start.elapsed().as_secs_f64();

    let server_pids: Vec<u32> = replicas
        .iter()
        .filter_map(|r| r.child.as_ref().map(Child::pid))
        .collect();
    let mut rows: Vec<(String, Watched)> = replicas
        .iter()
        .zip(&server_pids)
        .map(|(r, pid)| (r.name.clone(), Watched::Pid(*pid)))
        .collect();
    // The row whose RSS is the server's in the summary and the timeline.
    let servers_row = if replicas.len() > 1 {
        rows.push((
            format!("vigil server, {} replicas together", replicas.len()),
            Watched::Sum(server_pids.clone()),
        ));
        rows.len() - 1
    } else {
        0
    };
    let pg_row = match cluster.and_then(pg::Cluster::postmaster_pid) {
        Some(pid) => {
            rows.push((
                "PostgreSQL (postmaster and its processes)".into(),
                Watched::Tree(pid),
            ));
            Some(rows.len() - 1)
        }
        None if cluster.is_some() => bail!("PostgreSQL's postmaster.pid is unreadable"),
        None => None,
    };
    if let Some(agent) = &real_agent {
        rows.push((
            "vigil agent run (1 real agent)".into(),
            Watched::Pid(agent.pid()),
        ));
    }
    if let Some((agent, _)) = &wine_agent {
        rows.push((
            "vigil.exe agent run under Wine (1 real agent)".into(),
            Watched::Pid(agent.pid()),
        ));
    }
    let worker_pids: Vec<u32> = workers.iter().filter_map(worker::Worker::pid).collect();
    rows.push((
        if n_workers == 1 {
            format!("vigil-bench worker ({} simulated agents)", agent_ids.len())
        } else {
            format!(
                "vigil-bench, {n_workers} workers together ({} simulated agents)",
                agent_ids.len()
            )
        },
        match worker_pids[..] {
            [pid] => Watched::Pid(pid),
            _ => Watched::Sum(worker_pids),
        },
    ));
    rows.push((
        "vigil-bench coordinator (set-up, sampling)".into(),
        Watched::Pid(std::process::id()),
    ));
    let watched: Vec<Watched> = rows.iter().map(|(_, w)| w.clone()).collect();
    let before: Vec<_> = watched.iter().map(Watched::rss_kib).collect();
    let pg_before = pg_row.map(|i| (watched[i].pids().len(), watched[i].pss_kib()));
    let cpu_before: Vec<_> = watched.iter().map(Watched::cpu).collect();
    let machine_before = procs::machine_cpu();
    let (stop_sampling, sampling) = watch::channel(false);
    let sampler = tokio::spawn(sample_peaks(watched.clone(), servers_row, sampling));

    let enrolled = agent_ids.len();
    eprintln!(
        "load: {enrolled} agents for {} s, heartbeat every {} ms…",
        args.duration_secs, args.heartbeat_ms
    );
    let load_start = Instant::now();
    for w in &mut workers {
        w.go().await?;
    }
    let mut outcome = load::LoadOutcome::default();
    let mut load_stats = Vec::new();
    for w in &mut workers {
        let done: worker::Done = w.recv().await?;
        outcome.absorb(done.outcome);
        load_stats.push(done.stats);
    }
    let _ = stop_sampling.send(true);
    let (peaks, rss_timeline) = sampler.await.unwrap_or_default();
    let end: Vec<_> = watched.iter().map(Watched::rss_kib).collect();
    let hwm: Vec<_> = watched.iter().map(Watched::hwm_kib).collect();
    let pg_end = pg_row.map(|i| (watched[i].pids().len(), watched[i].pss_kib()));
    let cpu_end: Vec<_> = watched.iter().map(Watched::cpu).collect();
    let machine = procs::machine_cpu().zip(machine_before);
    let agent_alive = real_agent.as_mut().map(|a| a.check_running().is_ok());
    if let Some(mut agent) = real_agent {
        agent.stop(libc::SIGINT, Duration::from_secs(5));
    }
    if let Some((mut agent, wine)) = wine_agent {
        agent.stop(libc::SIGKILL, Duration::from_secs(5));
        wine.kill_all();
    }

    let procs: Vec<report::ProcRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (name, _))| report::ProcRow {
            name: name.clone(),
            before_kib: before[i],
            sampled_peak_kib: peaks.get(i).copied().filter(|&p| p > 0),
            hwm_kib: hwm[i],
            end_kib: end[i],
            cpu_secs: cpu_delta(&cpu_before[i], &cpu_end[i]),
        })
        .collect();

    let mut kinds = stats::merge(load_start, load_stats);
    let mut setup_kinds = stats::merge(enroll_start, setup_stats);
    if let Some(enroll) = setup_kinds.remove(&stats::Kind::Enroll) {
        kinds.insert(stats::Kind::Enroll, enroll);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let db_name = match cluster {
        None => "SQLite (WAL, synchronous=NORMAL)".to_string(),
        Some(c) => format!("{} (synchronous_commit=off), one database", c.version()),
    };
    let servers = if replicas.len() == 1 {
        "vigil server".to_string()
    } else {
        format!(
            "{} vigil server replicas (one TLS identity, each told the others' agent URLs; \
             agents spread over them round robin)",
            replicas.len()
        )
    };
    let per_address = enrolled.div_ceil(replicas.len());
    let setup = vec![
        format!(
            "{enrolled} simulated agents ({with_policy} with a policy of {} target{}, interval 1 min), \
             heartbeat every {} ms each (offered {:.0}/s), {} s, at most {} requests in flight, \
             {}% of uploads re-sent, {}% report port 23 open (unauthorized){}",
            args.targets,
            if args.targets == 1 { "" } else { "s" },
            args.heartbeat_ms,
            enrolled as f64 * 1000.0 / args.heartbeat_ms as f64,
            args.duration_secs,
            args.concurrency,
            args.resend_percent,
            args.flap_percent,
            if args.maintenance {
                ", every agent in an account-wide maintenance window"
            } else {
                ""
            },
        ),
        format!(
            "server: {servers} on 127.0.0.1, {db_name}, --sweep-ports {} (each result \
             reports {} ports), --tick-ms {}; machine: {cores} cores shared by server(s), \
             database, agent and bench",
            args.sweep_ports,
            PortList::parse(&args.sweep_ports)
                .map(|p| p.union(&PortList::from_ports([22, 80])).len())
                .unwrap_or(0),
            args.tick_ms,
        ),
        format!(
            "set-up {setup_secs:.1} s: database and server(s) {servers_secs:.1} s, {} enrollment \
             tokens (REST, {setup_concurrency} in flight) {tokens_secs:.1} s, {enrolled} \
             enrollments (agent API, {} in flight) {enroll_secs:.1} s, {with_policy} policies \
             (REST) {policies_secs:.1} s",
            n + 1,
            args.concurrency,
        ),
    ];
    let mut notes = Vec::new();
    if args.reconnect {
        notes.push(
            "--reconnect: every request on a new TLS connection, closed after the answer \
             (no connection kept per agent)"
                .into(),
        );
    } else if per_address > client::PER_SOURCE_ADDRESS {
        notes.push(format!(
            "{per_address} agents per server address: past {} they connect from 127.0.0.2, \
             127.0.0.3, … (loopback has ~28,000 source ports per address pair)",
            client::PER_SOURCE_ADDRESS
        ));
    }
    if let (Some((n_before, pss_before)), Some((n_end, pss_end))) = (pg_before, pg_end) {
        let mib = |k: Option<u64>| k.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0));
        notes.push(format!(
            "PostgreSQL: {n_before} processes before the load, {n_end} at the end; their RSS \
             counts the shared buffers once per process that touched them; proportional set \
             size (PSS, shared pages split) {} MiB before, {} MiB at the end",
            mib(pss_before),
            mib(pss_end)
        ));
    }
    // The replicas' sum row counts them a second time.
    let ours: f64 = procs
        .iter()
        .enumerate()
        .filter(|(i, _)| replicas.len() == 1 || *i != servers_row)
        .filter_map(|(_, p)| p.cpu_secs)
        .sum();
    if let Some((end, start)) = machine {
        let busy = end.busy - start.busy;
        notes.push(format!(
            "CPU of the machine during the load: {busy:.1} s busy of {:.1} s; interrupts and \
             softirqs (loopback TCP) {:.1} s; other processes and the kernel otherwise {:.1} s",
            outcome.elapsed.as_secs_f64() * cores as f64,
            end.irq - start.irq,
            (busy - (end.irq - start.irq) - ours).max(0.0)
        ));
    }
    if !rss_timeline.is_empty() {
        let steps: Vec<String> = rss_timeline
            .iter()
            .map(|kib| format!("{:.0}", *kib as f64 / 1024.0))
            .collect();
        notes.push(format!(
            "server RSS every {} s of the load (MiB{}): {}",
            TIMELINE_STEP.as_secs(),
            if replicas.len() > 1 {
                ", all replicas"
            } else {
                ""
            },
            steps.join(", ")
        ));
    }
    if agent_alive == Some(false) {
        notes.push(format!(
            "the real agent exited during the load: see {}",
            dir.join("agent.log").display()
        ));
    }
    let summary = report::Summary {
        agents: enrolled,
        db: match cluster {
            None => "SQLite",
            Some(_) => "PostgreSQL",
        },
        replicas: replicas.len(),
        heartbeat_ms: args.heartbeat_ms,
        server_rss_kib: procs[servers_row].sampled_peak_kib,
        pg_rss_kib: pg_row.and_then(|i| procs[i].sampled_peak_kib),
        pg_pss_kib: pg_end.and_then(|(_, pss)| pss),
        setup_secs,
    };
    Ok(report::Report {
        setup,
        kinds,
        outcome,
        expected_tasks: (with_policy * usize::from(args.targets)) as u64,
        procs,
        notes,
        summary,
    })
}

pub(crate) async fn create_enrollments(
    rest: &Arc<rest::Rest>,
    n: usize,
    concurrency: usize,
) -> Result<Vec<vigil_proto::api::EnrollmentView>> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for i in 0..n {
        let (rest, gate) = (rest.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            rest.create_enrollment(&format!("sim-{i:05}")).await
        });
    }
    set.join_all().await.into_iter().collect()
}

pub(crate) async fn set_policies(
    rest: &Arc<rest::Rest>,
    agent_ids: Vec<String>,
    policy: SecurityPolicy,
    concurrency: usize,
) -> Result<()> {
    let gate = Arc::new(Semaphore::new(concurrency));
    let policy = Arc::new(policy);
    let mut set = JoinSet::new();
    for id in agent_ids {
        let (rest, gate, policy) = (rest.clone(), gate.clone(), policy.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            rest.put_policy(&id, &policy).await
        });
    }
    set.join_all().await.into_iter().collect()
}

/// Whether agent `index` gets a policy: `percent` of the agents, spread
/// evenly over the indices (so over the workers and the replicas).
fn has_policy(index: usize, percent: u8) -> bool {
    let p = usize::from(percent);
    (index + 1) * p / 100 > index * p / 100
}

/// Authorizes 22 and monitors 80, which the synthetic results report open,
/// so a steady result raises no alert.
pub(crate) fn sim_policy(targets: u8) -> SecurityPolicy {
    let mut list = vec![PolicyTarget::AgentHost];
    list.extend((1..targets).map(|i| PolicyTarget::Host(format!("127.0.0.{}", u16::from(i) + 1))));
    policy(list)
}

fn policy(targets: Vec<PolicyTarget>) -> SecurityPolicy {
    SecurityPolicy {
        enabled: true,
        authorized: PortList::from_ports([22]),
        monitored: PortList::from_ports([80]),
        targets,
        interval: ScanInterval::try_from(1).expect("1 minute is a valid interval"),
        include_interfaces: Vec::new(),
        unreviewed_devices: Default::default(),
        device_kinds: Vec::new(),
        process_change_alerts: false,
    }
}

/// Enrolls a real agent with `vigil agent enroll` (`vigil` is the command
/// that runs the binary: the Linux one, or `wine64 vigil.exe`), gives it a
/// policy on its own host (127.0.0.1 here) and starts `vigil agent run`.
async fn start_real_agent(
    vigil: Command,
    state: &Path,
    dir: &Path,
    url: &str,
    token: &str,
    pin: CertPin,
    rest: &rest::Rest,
) -> Result<Child> {
    let again = |c: &Command| {
        let mut cmd = Command::new(c.get_program());
        cmd.args(c.get_args());
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    };
    let out = again(&vigil)
        .arg("agent")
        .arg("--state-dir")
        .arg(state)
        .args(["enroll", "--server", url, "--token", token, "--pin"])
        .arg(pin.to_string())
        .output()
        .context("running vigil agent enroll")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "enrolled as agent <id> with server <id>"
    let id = stdout
        .split_whitespace()
        .skip_while(|w| *w != "agent")
        .nth(1)
        .filter(|_| out.status.success())
        .with_context(|| {
            format!(
                "vigil agent enroll failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    rest.put_policy(id, &policy(vec![PolicyTarget::AgentHost]))
        .await?;
    let mut cmd = again(&vigil);
    cmd.arg("agent").arg("--state-dir").arg(state).args([
        "run",
        "--listen",
        &format!("127.0.0.1:{}", procs::free_port()?),
    ]);
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Child::spawn("vigil agent run", cmd, &dir.join(format!("{name}.log")))
}

/// SIGINT or SIGTERM.
pub(crate) async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Samples the RSS of `watched` every 100 ms until told to stop; returns
/// the highest of each, and that of `watched[timeline]` every
/// [`TIMELINE_STEP`].
async fn sample_peaks(
    watched: Vec<Watched>,
    timeline_of: usize,
    mut stop: watch::Receiver<bool>,
) -> (Vec<u64>, Vec<u64>) {
    let mut peaks = vec![0; watched.len()];
    let mut timeline = Vec::new();
    let start = Instant::now();
    loop {
        for (i, (peak, w)) in peaks.iter_mut().zip(&watched).enumerate() {
            if let Some(rss) = w.rss_kib() {
                *peak = (*peak).max(rss);
                let step = start.elapsed().as_millis() / TIMELINE_STEP.as_millis();
                if i == timeline_of && timeline.len() as u128 <= step {
                    timeline.push(rss);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return (peaks, timeline),
        }
    }
}

/// Warnings and errors in a server's log (the default level is warn).
pub(crate) fn log_summary(name: &str, log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let mut out = vec![format!("{name} log: {} warning/error lines", bad.len())];
    out.extend(bad.iter().take(3).map(|l| format!("  e.g. `{}`", l.trim())));
    out
}

fn db_size(data: &Path) -> String {
    let size = |name: &str| {
        std::fs::metadata(data.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    format!(
        "SQLite database after the run: {:.1} MiB (+ {:.1} MiB WAL)",
        size("vigil.db") as f64 / (1 << 20) as f64,
        size("vigil.db-wal") as f64 / (1 << 20) as f64
    )
}
