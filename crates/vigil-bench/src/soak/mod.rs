//! `vigil-bench soak`: does anything grow forever? A real `vigil server`
//! (release binary, 127.0.0.1, SQLite or a throwaway PostgreSQL) with 1,000
//! simulated agents (`vigil-bench agents`' workers) is run through 30
//! simulated days, one round of load per day, and after each day the
//! database size, the server's RSS and the p99 latencies of heartbeats,
//! uploads and console pages are measured: after the first days, when
//! retention starts deleting, they must stay flat.
//!
//! **How a day passes.** Retention counts from the server's own clock (a
//! result's age is from when the server received it: an agent cannot make
//! history old, by design), so results cannot be back-dated through the
//! agent API; and a compressed server clock would also run liveness,
//! leases and schedules fast, so every agent would go "silent" between
//! rounds. Instead, each day is:
//!
//! 1. a round of load: every agent heartbeats (every `--heartbeat-ms`) and
//!    uploads a result for each task it gets (a policy of `--targets`
//!    targets each, `--flap-percent` of results with an unauthorized port:
//!    alerts open and end, and their notices go to a webhook on
//!    127.0.0.1), while the console's pages are loaded in a loop;
//! 2. the day passes for the data: every stored time of history, and each
//!    policy's next run, is moved one day back through the bench's own
//!    connection to the database ([`db::AGED`]; what the server treats as
//!    "now" is left alone), so each simulated day every policy runs once;
//! 3. `kill -USR1` asks the server to run its retention now (what it does
//!    hourly by itself), and the bench waits until `/metrics` counts the
//!    pass (`vigil_retention_runs_total`);
//! 4. the measurements.
//!
//! Bounded in time (`--days` × `--day-secs` plus a few seconds a day) and
//! in requests (`--max-requests-per-day`).

mod db;
mod sink;

use crate::agents::procs::{self, Child};
use crate::agents::rest::Rest;
use crate::agents::{self, load, pg, stats, worker, DbKind};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use vigil_proto::pin::CertPin;

const PG_DATABASE: &str = "vigil";
const DAY_SECS: i64 = 86_400;
/// Tables whose rows are counted each day.
const COUNTED: [&str; 9] = [
    "scan_results",
    "scan_tasks",
    "alerts",
    "alert_events",
    "outbox",
    "agent_events",
    "audit_log",
    "enrollment_tokens",
    "target_states",
];

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Simulated agents, each with its own connection.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    agents: u32,
    /// Simulated days.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(2..=365))]
    days: u32,
    /// Wall time of each day's round of load (seconds).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
    day_secs: u64,
    /// The server's database.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    db: DbKind,
    /// `vigil server --retention-days`: short enough that retention starts
    /// deleting well within the run.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=365))]
    retention_days: u32,
    /// Heartbeat interval of every simulated agent (milliseconds).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    heartbeat_ms: u64,
    /// Targets per policy (every agent has one; it runs once a simulated
    /// day, a result per target).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=200))]
    targets: u8,
    /// Share of the results that report port 23 open, which no policy
    /// authorizes (percent): alerts open and end, with notifications.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    flap_percent: u8,
    /// Requests in flight at most, across all simulated agents.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Requests (heartbeats and uploads) per simulated day at most.
    #[arg(long, default_value_t = 200_000)]
    max_requests_per_day: u64,
    /// `vigil server --sweep-ports` (each synthetic result reports them all).
    #[arg(long, default_value = "1-1024")]
    sweep_ports: String,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Keep the temporary data directory (database and server log).
    #[arg(long)]
    keep_data: bool,
    /// Print the results as Markdown tables, ready to paste.
    #[arg(long)]
    markdown: bool,
}

/// What was measured after one simulated day.
#[derive(Debug, Clone, Default)]
struct DayRow {
    day: u32,
    stored: u64,
    notifications: u64,
    /// Rows per table of [`COUNTED`].
    rows: BTreeMap<&'static str, i64>,
    /// Rows retention deleted after this day, per table.
    pruned: BTreeMap<String, u64>,
    prune_secs: f64,
    db_bytes: u64,
    wal_bytes: u64,
    rss_kib: u64,
    rss_peak_kib: u64,
    heartbeat_p99: Option<Duration>,
    upload_p99: Option<Duration>,
    console_p99: Option<Duration>,
    console_loads: u64,
    errors: u64,
}

pub fn run(args: SoakArgs) -> Result<()> {
    vigil_core::PortList::parse(&args.sweep_ports)
        .map_err(|e| anyhow::anyhow!("--sweep-ports {:?}: {e}", args.sweep_ports))?;
    let vigil = crate::vigil_binary(args.vigil.as_deref())?;
    let open_files = procs::raise_open_files(u64::from(args.agents) + agents::FILES_SPARE);
    if u64::from(args.agents) + agents::FILES_SPARE / 2 > open_files {
        bail!(
            "the open-file limit ({open_files}) is too low for {} agents, one connection \
             each: raise `ulimit -Hn`",
            args.agents
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("vigil-bench-soak-")
        .tempdir()
        .context("creating the data directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        tokio::select! {
            r = soak(&args, &vigil, dir.path(), open_files) => r,
            () = agents::interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    if args.keep_data {
        eprintln!("data directory kept: {}", dir.keep().display());
    }
    let (rows, notes) = result?;
    println!("{}", render(&args, &rows, &notes));
    Ok(())
}

async fn soak(
    args: &SoakArgs,
    vigil: &Path,
    dir: &Path,
    open_files: u64,
) -> Result<(Vec<DayRow>, Vec<String>)> {
    let setup = Instant::now();
    let cluster = match args.db {
        DbKind::Sqlite => None,
        DbKind::Postgres => {
            eprintln!("starting a throwaway PostgreSQL cluster on 127.0.0.1…");
            let cluster = pg::Cluster::start()?;
            cluster.create_database(PG_DATABASE)?;
            Some(cluster)
        }
    };
    let data = dir.join("server");
    let db_file = data.join("vigil.db");
    let db_url = match &cluster {
        Some(c) => c.url(PG_DATABASE),
        None => format!("sqlite://{}", db_file.display()),
    };
    let out = agents::vigil_cmd(vigil)
        .args(["admin", "--db", &db_url, "create-account", "--name", "soak"])
        .args(["--kind", "organization", "--email", agents::EMAIL])
        .env("VIGIL_PASSWORD", agents::PASSWORD)
        .output()
        .context("running vigil admin create-account")?;
    if !out.status.success() {
        bail!(
            "vigil admin create-account failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let sink = sink::Sink::start().await?;
    let api = format!("127.0.0.1:{}", procs::free_port()?);
    let agent_listen = format!("127.0.0.1:{}", procs::free_port()?);
    let log = dir.join("server.log");
    let mut cmd = agents::vigil_cmd(vigil);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--db",
            &db_url,
            "--listen",
            &api,
            "--agent-listen",
            &agent_listen,
        ])
        .args([
            "--heartbeat-secs",
            &(args.heartbeat_ms / 1000).max(1).to_string(),
        ])
        .args(["--tick-ms", "1000", "--sweep-ports", &args.sweep_ports])
        .args(["--retention-days", &args.retention_days.to_string()])
        // The notifications go to the bench's receiver on loopback.
        .args(["--allow-targets", "webhook=127.0.0.1/32"]);
    let mut server = Child::spawn("vigil server", cmd, &log)?;
    let mut rest = Rest::new(format!("http://{api}"))?;
    rest.wait_healthy(Duration::from_secs(60), || server.check_running())
        .await?;
    let pin = agents::printed_pin(&log)
        .await
        .context("the server printed no certificate pin")?;
    rest.login(agents::EMAIL, agents::PASSWORD).await?;
    let rest = Arc::new(rest);

    let n = args.agents as usize;
    eprintln!("creating {n} enrollment tokens…");
    let tokens = agents::create_enrollments(&rest, n, 8).await?;
    let pin: CertPin = pin
        .parse()
        .map_err(|e| anyhow::anyhow!("server pin {pin:?}: {e}"))?;
    let per_worker = usize::try_from(open_files.saturating_sub(agents::FILES_SPARE))
        .unwrap_or(usize::MAX)
        .max(1);
    let n_workers = n.div_ceil(per_worker).max(1);
    eprintln!("enrolling {n} simulated agents…");
    let mut workers = Vec::new();
    let mut tokens = tokens.into_iter().map(|e| e.token).enumerate();
    let concurrency = args.concurrency as usize;
    for w in 0..n_workers {
        let init = worker::Init {
            urls: vec![format!("https://{agent_listen}")],
            pin: pin.to_string(),
            tokens: tokens
                .by_ref()
                .take(worker::share(n, n_workers, w))
                .collect(),
            enroll_concurrency: worker::share(concurrency, n_workers, w).max(1),
            reconnect: false,
            load: load::LoadConfig {
                duration: Duration::from_secs(args.day_secs),
                heartbeat: Duration::from_millis(args.heartbeat_ms),
                concurrency: worker::share(concurrency, n_workers, w).max(1),
                resend_percent: 0,
                flap_percent: args.flap_percent,
                max_requests: args.max_requests_per_day / n_workers as u64,
            },
        };
        let name = format!("soak worker {}/{n_workers}", w + 1);
        workers.push(worker::Worker::start(name, &init).await?);
    }
    let mut ids = Vec::new();
    for w in &mut workers {
        let enrolled: worker::Enrolled = w.recv().await?;
        ids.extend(enrolled.agents.into_iter().map(|(_, id)| id));
    }
    if ids.is_empty() {
        bail!("no simulated agent could enroll");
    }
    eprintln!("setting {} policies…", ids.len());
    let first_agent = ids[0].clone();
    agents::set_policies(&rest, ids.clone(), agents::sim_policy(args.targets), 8).await?;
    let contact = rest
        .post(
            "/contacts",
            &serde_json::json!({"name": "soak receiver", "channel": "webhook",
                                "address": format!("http://127.0.0.1:{}/hook", sink.port)}),
        )
        .await?;
    let contact = contact["id"]
        .as_str()
        .context("contact without an id")?
        .to_string();
    rest.post(
        "/rules",
        &serde_json::json!({"contact_id": contact, "events": ["*"]}),
    )
    .await?;
    let pages = vec![
        "/".to_string(),
        "/agents".to_string(),
        format!("/agents/{first_agent}"),
        "/alerts".to_string(),
        format!("/contacts/{contact}"),
    ];
    let db = db::Db::connect(&db_url).await?;
    let server_pid = server.pid();
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!(
        "set-up done in {setup_secs:.0} s: {} agents; {} days of {} s",
        ids.len(),
        args.days,
        args.day_secs
    );

    let mut rows: Vec<DayRow> = Vec::new();
    let mut pruned_before = pruned_rows(&rest.page("/metrics").await?);
    let run_start = Instant::now();
    for day in 1..=args.days {
        server.check_running()?;
        let day_start = Instant::now();
        let notified_before = sink.received();
        for w in &mut workers {
            w.go().await?;
        }
        let (stop, stopped) = watch::channel(false);
        let console = tokio::spawn(load_pages(rest.clone(), pages.clone(), stopped.clone()));
        let rss_peak = tokio::spawn(sample_rss(server_pid, stopped));
        let mut outcome = load::LoadOutcome::default();
        let mut day_stats = Vec::new();
        for w in &mut workers {
            let done: worker::Done = w.recv().await?;
            outcome.absorb(done.outcome);
            day_stats.push(done.stats);
        }
        let _ = stop.send(true);
        let (console_hist, console_errors) = console.await.context("the console loop")?;
        let rss_peak_kib = rss_peak.await.unwrap_or(0);
        let kinds = stats::merge(day_start, day_stats);
        let p99 = |k: stats::Kind| kinds.get(&k).and_then(|s| s.quantile(0.99));
        let errors: u64 = kinds.values().map(stats::KindStats::failed).sum();

        // The day passes, then the retention runs.
        db.age(DAY_SECS).await.context("ageing the history a day")?;
        let runs = metric(&rest.page("/metrics").await?, "vigil_retention_runs_total");
        let prune_start = Instant::now();
        // SAFETY: kill has no memory-safety preconditions.
        if unsafe { libc::kill(server_pid as libc::pid_t, libc::SIGUSR1) } != 0 {
            bail!(
                "cannot signal the server: {}",
                std::io::Error::last_os_error()
            );
        }
        let text = wait_for_pass(&rest, runs).await?;
        let prune_secs = prune_start.elapsed().as_secs_f64();
        let pruned_now = pruned_rows(&text);
        let pruned = pruned_now
            .iter()
            .map(|(t, n)| (t.clone(), n - pruned_before.get(t).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        pruned_before = pruned_now;

        let mut counts = BTreeMap::new();
        for table in COUNTED {
            counts.insert(table, db.count(table).await?);
        }
        let (db_bytes, wal_bytes) = match &cluster {
            Some(c) => (c.database_size(PG_DATABASE).unwrap_or(0), 0),
            None => (
                file_size(&db_file),
                file_size(&db_file.with_extension("db-wal")),
            ),
        };
        let row = DayRow {
            day,
            stored: outcome.stored,
            notifications: sink.received() - notified_before,
            rows: counts,
            pruned,
            prune_secs,
            db_bytes,
            wal_bytes,
            rss_kib: procs::memory(server_pid).map_or(0, |m| m.rss_kib),
            rss_peak_kib,
            heartbeat_p99: p99(stats::Kind::Heartbeat),
            upload_p99: p99(stats::Kind::Upload),
            console_p99: quantile(&console_hist, 0.99),
            console_loads: console_hist.len(),
            errors: errors + console_errors,
        };
        eprintln!(
            "day {day:>2}: {} results, {} notifications, {} results kept, db {:.1} MiB, \
             rss {:.0} MiB, p99 heartbeat {} upload {} console {}, pruned {:?} in {prune_secs:.1} s \
             ({:.0} s elapsed)",
            row.stored,
            row.notifications,
            row.rows.get("scan_results").copied().unwrap_or(0),
            mib(row.db_bytes + row.wal_bytes),
            row.rss_kib as f64 / 1024.0,
            ms(row.heartbeat_p99),
            ms(row.upload_p99),
            ms(row.console_p99),
            row.pruned,
            run_start.elapsed().as_secs_f64(),
        );
        rows.push(row);
    }
    db.close().await;
    drop(workers);
    let clean = server.stop(libc::SIGTERM, Duration::from_secs(15));
    let mut notes = vec![
        format!(
            "{} simulated agents, each with a policy of {} targets (run once a simulated day) \
             and a heartbeat every {} ms, {}% of results with port 23 open (alerts, with notifications to a \
             webhook on 127.0.0.1); {} days of {} s of load each; vigil server --retention-days \
             {} --tick-ms 1000 --sweep-ports {}, {}; set-up {setup_secs:.0} s, the days {:.0} s",
            ids.len(),
            args.targets,
            args.heartbeat_ms,
            args.flap_percent,
            args.days,
            args.day_secs,
            args.retention_days,
            args.sweep_ports,
            match &cluster {
                None => "SQLite (WAL)".to_string(),
                Some(c) => c.version(),
            },
            run_start.elapsed().as_secs_f64(),
        ),
        format!(
            "server stop after the run: {}",
            if clean { "clean" } else { "killed (no exit on SIGTERM)" }
        ),
    ];
    notes.extend(agents::log_summary("vigil server", &log));
    Ok((rows, notes))
}

/// Loads `pages` one after the other until `stop`; their latencies (µs)
/// and how many failed.
async fn load_pages(
    rest: Arc<Rest>,
    pages: Vec<String>,
    stop: watch::Receiver<bool>,
) -> (Histogram<u64>, u64) {
    let mut hist = Histogram::new(3).expect("a histogram with 3 significant figures");
    let mut errors = 0;
    for page in pages.iter().cycle() {
        if *stop.borrow() {
            break;
        }
        let t = Instant::now();
        match rest.page(page).await {
            Ok(_) => {
                let _ = hist.record(t.elapsed().as_micros() as u64);
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("console page failed: {e:#}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (hist, errors)
}

/// The highest RSS of `pid` sampled every 100 ms until `stop` (KiB).
async fn sample_rss(pid: u32, mut stop: watch::Receiver<bool>) -> u64 {
    let mut peak = 0;
    loop {
        if let Some(m) = procs::memory(pid) {
            peak = peak.max(m.rss_kib);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return peak,
        }
    }
}

/// Waits (at most 5 minutes) until the server counts more retention passes
/// than `runs`; its metrics then.
async fn wait_for_pass(rest: &Rest, runs: u64) -> Result<String> {
    let until = Instant::now() + Duration::from_secs(300);
    loop {
        let text = rest.page("/metrics").await?;
        if metric(&text, "vigil_retention_runs_total") > runs {
            return Ok(text);
        }
        if Instant::now() > until {
            bail!("the server ran no retention pass within 5 minutes of SIGUSR1");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the series `name` (no labels) in a metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0, |v| v as u64)
}

/// `vigil_retention_pruned_rows_total` per table.
fn pruned_rows(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("vigil_retention_pruned_rows_total{table=\"")?;
            let (table, value) = rest.split_once("\"}")?;
            Some((table.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn quantile(h: &Histogram<u64>, q: f64) -> Option<Duration> {
    (!h.is_empty()).then(|| Duration::from_micros(h.value_at_quantile(q)))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn millis(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

/// The per-day table, then the plateau's ratios.
fn render(args: &SoakArgs, rows: &[DayRow], notes: &[String]) -> String {
    let mut out = String::new();
    let header = [
        "day",
        "results stored",
        "notified",
        "results kept",
        "tasks",
        "alerts",
        "outbox",
        "db MiB (+ WAL)",
        "server RSS MiB (peak)",
        "p99 heartbeat",
        "p99 upload",
        "p99 console",
        "rows pruned",
        "errors",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let count = |t: &str| r.rows.get(t).copied().unwrap_or(0).to_string();
            vec![
                r.day.to_string(),
                r.stored.to_string(),
                r.notifications.to_string(),
                count("scan_results"),
                count("scan_tasks"),
                count("alerts"),
                count("outbox"),
                format!("{:.1} (+ {:.1})", mib(r.db_bytes), mib(r.wal_bytes)),
                format!(
                    "{:.0} ({:.0})",
                    r.rss_kib as f64 / 1024.0,
                    r.rss_peak_kib as f64 / 1024.0
                ),
                ms(r.heartbeat_p99),
                ms(r.upload_p99),
                ms(r.console_p99),
                r.pruned.values().sum::<u64>().to_string(),
                r.errors.to_string(),
            ]
        })
        .collect();
    let _ = writeln!(out, "{}", table_text(&header, &table, args.markdown));
    // The plateau starts a few days after the first results reach the
    // retention age; its first week is compared with the run's last week,
    // each by its median day (one day's p99 moves with whatever else the
    // machine runs).
    let start = args.retention_days + 3;
    let early: Vec<&DayRow> = rows
        .iter()
        .filter(|r| r.day >= start && r.day < start + 7)
        .collect();
    let last = rows.last().map_or(0, |r| r.day);
    let late: Vec<&DayRow> = rows
        .iter()
        .filter(|r| r.day + 7 > last && r.day >= start + 7)
        .collect();
    if let (Some(a0), Some(a1), Some(b0), Some(b1)) =
        (early.first(), early.last(), late.first(), late.last())
    {
        let median = |rows: &[&DayRow], f: fn(&DayRow) -> f64| {
            let mut v: Vec<f64> = rows.iter().map(|r| f(r)).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        type Metric = (&'static str, fn(&DayRow) -> f64, &'static str);
        let metrics: [Metric; 7] = [
            (
                "results kept",
                |r: &DayRow| r.rows.get("scan_results").copied().unwrap_or(0) as f64,
                "",
            ),
            ("database file, MiB", |r: &DayRow| mib(r.db_bytes), ""),
            (
                "database + WAL, MiB",
                |r: &DayRow| mib(r.db_bytes + r.wal_bytes),
                "",
            ),
            (
                "server RSS, MiB",
                |r: &DayRow| r.rss_kib as f64 / 1024.0,
                "",
            ),
            ("p99 heartbeat", |r: &DayRow| millis(r.heartbeat_p99), " ms"),
            ("p99 upload", |r: &DayRow| millis(r.upload_p99), " ms"),
            (
                "p99 console page",
                |r: &DayRow| millis(r.console_p99),
                " ms",
            ),
        ];
        let mut grew = Vec::new();
        let lines: Vec<Vec<String>> = metrics
            .iter()
            .map(|(name, f, unit)| {
                let (x, y) = (median(&early, *f), median(&late, *f));
                // Sizes: more than 10% up over the plateau is growth.
                if unit.is_empty() && y > x * 1.10 {
                    grew.push(*name);
                }
                vec![
                    name.to_string(),
                    format!("{x:.1}{unit}"),
                    format!("{y:.1}{unit}"),
                    if x > 0.0 {
                        format!("{:.2}", y / x)
                    } else {
                        "-".into()
                    },
                ]
            })
            .collect();
        let a = format!("days {}–{} (median)", a0.day, a1.day);
        let b = format!("days {}–{} (median)", b0.day, b1.day);
        let _ = writeln!(
            out,
            "{}",
            table_text(&["", &a, &b, "ratio"], &lines, args.markdown)
        );
        let _ = writeln!(
            out,
            "{}",
            if grew.is_empty() {
                "flat: no size grew by more than 10% over the plateau".to_string()
            } else {
                format!("GROWS over the plateau: {}", grew.join(", "))
            }
        );
    }
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for r in rows {
        for (t, n) in &r.pruned {
            *totals.entry(t.as_str()).or_default() += n;
        }
    }
    let _ = writeln!(out, "rows pruned over the run, per table: {totals:?}");
    if let Some(last) = rows.last() {
        let _ = writeln!(out, "rows at the end, per table: {:?}", last.rows);
        let _ = writeln!(
            out,
            "console pages loaded per day: {}; retention pass after each day: {:.1}–{:.1} s",
            last.console_loads,
            rows.iter()
                .map(|r| r.prune_secs)
                .fold(f64::INFINITY, f64::min),
            rows.iter().map(|r| r.prune_secs).fold(0.0, f64::max),
        );
    }
    for n in notes {
        let _ = writeln!(out, "{}{n}", if args.markdown { "- " } else { "" });
    }
    out
}

fn table_text(header: &[&str], rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for r in rows {
            let _ = writeln!(out, "| {} |", r.join(" | "));
        }
        return out;
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for r in rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_read_from_the_exposition_text() {
        let text = "# TYPE vigil_retention_runs counter\n\
                    vigil_retention_runs_total 3\n\
                    vigil_retention_pruned_rows_total{table=\"scan_results\"} 4000\n\
                    vigil_retention_pruned_rows_total{table=\"outbox\"} 0\n";
        assert_eq!(metric(text, "vigil_retention_runs_total"), 3);
        assert_eq!(
            metric(text, "vigil_retention_runs"),
            0,
            "a prefix is not the series"
        );
        let pruned = pruned_rows(text);
        assert_eq!(pruned.get("scan_results"), Some(&4000));
        assert_eq!(pruned.get("outbox"), Some(&0));
        assert_eq!(pruned.len(), 2);
    }
}
