//! `vigil-bench agents`: simulated agents against a real `vigil server`.
//!
//! Everything runs on 127.0.0.1 in a temporary data directory with the
//! embedded SQLite database:
//!
//! 1. `vigil admin create-account`, then `vigil server` (release binary);
//! 2. over the REST API: log in, create one enrollment token per agent;
//! 3. enroll the simulated agents over the agent API (HTTPS, pinned
//!    certificate), each with its own credential and connection;
//! 4. set a security policy (interval 1 minute, several targets) on a share
//!    of them, so the scheduler hands out tasks;
//! 5. enroll one real agent (`vigil agent enroll`) and run it
//!    (`vigil agent run`) beside the load, for its memory footprint;
//! 6. run the load for a bounded time and request count (see [`load`]) while
//!    sampling the RSS of the server, the real agent and the bench itself.
//!
//! The processes are stopped when the bench ends, and die with it if it is
//! killed (parent-death signal).

mod load;
pub(crate) mod procs;
mod report;
mod rest;
mod stats;

use anyhow::{bail, Context, Result};
use procs::Child;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use vigil_core::{PolicyTarget, PortList, ScanInterval, SecurityPolicy};
use vigil_proto::pin::CertPin;

const EMAIL: &str = "bench@vigil.invalid";
/// Only ever used on a throw-away loopback server.
const PASSWORD: &str = "bench-password-not-secret";
/// How long the real agent runs before the load starts.
const REAL_AGENT_WARM_UP: Duration = Duration::from_secs(3);
/// How often the server's RSS is noted for the timeline.
const TIMELINE_STEP: Duration = Duration::from_secs(5);
/// REST set-up calls in flight at once.
const SETUP_CONCURRENCY: usize = 8;

#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// Simulated agents.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    agents: u32,
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
    /// Leave out the real `vigil agent run` process.
    #[arg(long)]
    no_real_agent: bool,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Keep the temporary data directory (server database and logs).
    #[arg(long)]
    keep_data: bool,
    /// Print the results as Markdown tables, ready to paste.
    #[arg(long)]
    markdown: bool,
}

pub fn run(args: AgentsArgs) -> Result<()> {
    PortList::parse(&args.sweep_ports)
        .map_err(|e| anyhow::anyhow!("--sweep-ports {:?}: {e}", args.sweep_ports))?;
    let vigil = match &args.vigil {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("vigil"),
    };
    if !vigil.exists() {
        bail!(
            "{} not found: build it with cargo build --release -p vigil",
            vigil.display()
        );
    }
    let open_files = procs::raise_open_files();
    if u64::from(args.agents) + 512 > open_files {
        bail!(
            "the open-file limit ({open_files}) is too low for {} agents, one connection each",
            args.agents
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("vigil-bench-agents-")
        .tempdir()
        .context("creating the data directory")?;
    let result = run_in(&args, &vigil, dir.path());
    if args.keep_data {
        let kept = dir.keep();
        eprintln!("data directory kept: {}", kept.display());
    }
    result
}

/// A `vigil` command that ignores the caller's Vigil environment.
fn vigil_cmd(vigil: &Path) -> Command {
    let mut cmd = Command::new(vigil);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VIGIL_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

fn run_in(args: &AgentsArgs, vigil: &Path, dir: &Path) -> Result<()> {
    let data = dir.join("server");
    let db = format!("sqlite://{}", data.join("vigil.db").display());
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

    let api = format!("127.0.0.1:{}", procs::free_port()?);
    let agent_api = format!("127.0.0.1:{}", procs::free_port()?);
    let heartbeat_secs = (args.heartbeat_ms / 1000).max(1);
    let mut server_cmd = vigil_cmd(vigil);
    server_cmd
        .arg("server")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &api, "--agent-listen", &agent_api])
        .args(["--heartbeat-secs", &heartbeat_secs.to_string()])
        .args(["--tick-ms", &args.tick_ms.to_string()])
        .args(["--sweep-ports", &args.sweep_ports]);
    let server_log = dir.join("server.log");
    let mut server = Child::spawn("vigil server", server_cmd, &server_log)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // `block_on` polls on this (main) thread, which outlives every child:
    // the real agent is spawned from here too.
    let report = runtime.block_on(async {
        tokio::select! {
            report = measure(args, vigil, dir, &api, &mut server) => report,
            // Stop the processes and remove the data directory on Ctrl-C too.
            () = interrupted() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    let server_stopped = Instant::now();
    let clean = server.stop(libc::SIGTERM, Duration::from_secs(15));
    let stop_secs = server_stopped.elapsed().as_secs_f64();
    let mut report = report.with_context(|| {
        format!(
            "the server's log was {} (--keep-data keeps it)",
            server_log.display()
        )
    })?;
    report.notes.push(format!(
        "server stop after the load: {stop_secs:.1} s{}",
        if clean {
            ""
        } else {
            " (did not exit on SIGTERM; killed)"
        }
    ));
    report.notes.extend(log_summary(&server_log));
    report.notes.push(db_size(&data));
    println!("{}", report.render(args.markdown));
    Ok(())
}

async fn measure(
    args: &AgentsArgs,
    vigil: &Path,
    dir: &Path,
    api: &str,
    server: &mut Child,
) -> Result<report::Report> {
    let bench_start = Instant::now();
    let mut rest = rest::Rest::new(format!("http://{api}"))?;
    rest.wait_healthy(Duration::from_secs(30), || server.check_running())
        .await?;
    rest.login(EMAIL, PASSWORD).await?;
    let rest = Arc::new(rest);

    let n = args.agents as usize;
    eprintln!("creating {n} enrollment tokens…");
    let t = Instant::now();
    let enrollments = create_enrollments(&rest, n + 1).await?;
    let tokens_secs = t.elapsed().as_secs_f64();
    let pin: CertPin = enrollments[0]
        .pin
        .parse()
        .map_err(|e| anyhow::anyhow!("server pin: {e}"))?;
    let url = enrollments[0].server_url.clone();
    let mut tokens: Vec<String> = enrollments.into_iter().map(|e| e.token).collect();
    let real_token = tokens.pop().expect("n + 1 tokens");

    eprintln!("enrolling {n} simulated agents…");
    let setup_rec = Arc::new(stats::Recorder::new(Instant::now()));
    let agents = load::enroll_all(tokens, &url, pin, args.concurrency as usize, &setup_rec).await?;
    if agents.is_empty() {
        bail!("no simulated agent could enroll");
    }
    let with_policy = agents.len() * usize::from(args.policy_percent) / 100;
    eprintln!("setting {with_policy} policies…");
    let t = Instant::now();
    let ids: Vec<String> = agents[..with_policy]
        .iter()
        .map(|a| a.agent_id.clone())
        .collect();
    set_policies(&rest, ids, sim_policy(args.targets)).await?;
    let policies_secs = t.elapsed().as_secs_f64();

    let mut real_agent = None;
    if !args.no_real_agent {
        eprintln!("enrolling and starting a real agent…");
        real_agent = Some(start_real_agent(vigil, dir, &url, &real_token, pin, &rest).await?);
        // Let it start, heartbeat and run its first scan before "before load".
        tokio::time::sleep(REAL_AGENT_WARM_UP).await;
    }
    server.check_running()?;

    let self_pid = std::process::id();
    let mut pids = vec![("vigil server".to_string(), server.pid())];
    if let Some(agent) = &real_agent {
        pids.push(("vigil agent run (1 real agent)".into(), agent.pid()));
    }
    pids.push((
        format!("vigil-bench ({} simulated agents)", agents.len()),
        self_pid,
    ));
    let before: Vec<_> = pids.iter().map(|(_, p)| procs::memory(*p)).collect();
    let cpu_before: Vec<_> = pids.iter().map(|(_, p)| procs::cpu_secs(*p)).collect();
    let machine_before = procs::machine_cpu();
    let (stop_sampling, sampling) = watch::channel(false);
    let sampler = tokio::spawn(sample_peaks(
        pids.iter().map(|(_, p)| *p).collect(),
        sampling,
    ));

    let enrolled = agents.len();
    eprintln!(
        "load: {enrolled} agents for {} s, heartbeat every {} ms…",
        args.duration_secs, args.heartbeat_ms
    );
    let rec = Arc::new(stats::Recorder::new(Instant::now()));
    let cfg = load::LoadConfig {
        duration: Duration::from_secs(args.duration_secs),
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        concurrency: args.concurrency as usize,
        resend_percent: args.resend_percent,
        max_requests: args.max_requests,
    };
    let outcome = load::run(agents, &cfg, rec.clone()).await;
    let _ = stop_sampling.send(true);
    let (peaks, rss_timeline) = sampler.await.unwrap_or_default();
    let end: Vec<_> = pids.iter().map(|(_, p)| procs::memory(*p)).collect();
    let cpu_end: Vec<_> = pids.iter().map(|(_, p)| procs::cpu_secs(*p)).collect();
    let machine = procs::machine_cpu().zip(machine_before);
    let agent_alive = real_agent.as_mut().map(|a| a.check_running().is_ok());
    if let Some(mut agent) = real_agent {
        agent.stop(libc::SIGINT, Duration::from_secs(5));
    }

    let procs: Vec<report::ProcRow> = pids
        .iter()
        .enumerate()
        .map(|(i, (name, _))| report::ProcRow {
            name: name.clone(),
            before_kib: before[i].map(|m| m.rss_kib),
            sampled_peak_kib: peaks.get(i).copied().filter(|&p| p > 0),
            hwm_kib: end[i].map(|m| m.hwm_kib),
            end_kib: end[i].map(|m| m.rss_kib),
            cpu_secs: cpu_end[i].zip(cpu_before[i]).map(|(b, a)| b - a),
        })
        .collect();

    let mut kinds = Arc::into_inner(rec)
        .expect("the load has finished")
        .into_kinds();
    let mut setup_kinds = Arc::into_inner(setup_rec)
        .expect("enrollment has finished")
        .into_kinds();
    if let Some(enroll) = setup_kinds.remove(&stats::Kind::Enroll) {
        kinds.insert(stats::Kind::Enroll, enroll);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let setup = vec![
        format!(
            "{enrolled} simulated agents ({with_policy} with a policy of {} target{}, interval 1 min), \
             heartbeat every {} ms each (offered {:.0}/s), {} s, at most {} requests in flight, \
             {}% of uploads re-sent",
            args.targets,
            if args.targets == 1 { "" } else { "s" },
            args.heartbeat_ms,
            enrolled as f64 * 1000.0 / args.heartbeat_ms as f64,
            args.duration_secs,
            args.concurrency,
            args.resend_percent,
        ),
        format!(
            "server: vigil server on 127.0.0.1, SQLite (WAL), --sweep-ports {} (each result \
             reports {} ports), --tick-ms {}; machine: {cores} cores shared by server, agent and bench",
            args.sweep_ports,
            PortList::parse(&args.sweep_ports)
                .map(|p| p.union(&PortList::from_ports([22, 80])).len())
                .unwrap_or(0),
            args.tick_ms,
        ),
        format!(
            "set-up: {} enrollment tokens (REST) in {tokens_secs:.1} s, {with_policy} policies \
             (REST) in {policies_secs:.1} s, total set-up {:.1} s",
            n + 1,
            bench_start.elapsed().as_secs_f64() - outcome.elapsed.as_secs_f64(),
        ),
    ];
    let mut notes = Vec::new();
    let ours: f64 = procs.iter().filter_map(|p| p.cpu_secs).sum();
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
            "server RSS every {} s of the load (MiB): {}",
            TIMELINE_STEP.as_secs(),
            steps.join(", ")
        ));
    }
    if agent_alive == Some(false) {
        notes.push(format!(
            "the real agent exited during the load: see {}",
            dir.join("agent.log").display()
        ));
    }
    Ok(report::Report {
        setup,
        kinds,
        outcome,
        expected_tasks: (with_policy * usize::from(args.targets)) as u64,
        procs,
        notes,
    })
}

async fn create_enrollments(
    rest: &Arc<rest::Rest>,
    n: usize,
) -> Result<Vec<vigil_proto::api::EnrollmentView>> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
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

async fn set_policies(
    rest: &Arc<rest::Rest>,
    agent_ids: Vec<String>,
    policy: SecurityPolicy,
) -> Result<()> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
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

/// Authorizes 22 and monitors 80, which the synthetic results report open,
/// so a steady result raises no alert.
fn sim_policy(targets: u8) -> SecurityPolicy {
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
    }
}

/// Enrolls a real agent with `vigil agent enroll`, gives it a policy on its
/// own host (127.0.0.1 here) and starts `vigil agent run`.
async fn start_real_agent(
    vigil: &Path,
    dir: &Path,
    url: &str,
    token: &str,
    pin: CertPin,
    rest: &rest::Rest,
) -> Result<Child> {
    let state = dir.join("agent");
    let out = vigil_cmd(vigil)
        .arg("agent")
        .arg("--state-dir")
        .arg(&state)
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
    let mut cmd = vigil_cmd(vigil);
    cmd.arg("agent").arg("--state-dir").arg(&state).args([
        "run",
        "--listen",
        &format!("127.0.0.1:{}", procs::free_port()?),
    ]);
    Child::spawn("vigil agent run", cmd, &dir.join("agent.log"))
}

/// SIGINT or SIGTERM.
async fn interrupted() {
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

/// Samples the RSS of `pids` every 100 ms until told to stop; returns the
/// highest of each, and the first one's every [`TIMELINE_STEP`].
async fn sample_peaks(pids: Vec<u32>, mut stop: watch::Receiver<bool>) -> (Vec<u64>, Vec<u64>) {
    let mut peaks = vec![0; pids.len()];
    let mut timeline = Vec::new();
    let start = Instant::now();
    loop {
        for (i, (peak, pid)) in peaks.iter_mut().zip(&pids).enumerate() {
            if let Some(m) = procs::memory(*pid) {
                *peak = (*peak).max(m.rss_kib);
                let step = start.elapsed().as_millis() / TIMELINE_STEP.as_millis();
                if i == 0 && timeline.len() as u128 <= step {
                    timeline.push(m.rss_kib);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => return (peaks, timeline),
        }
    }
}

/// Warnings and errors in the server's log (the default level is warn).
fn log_summary(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let bad: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    let mut out = vec![format!("server log: {} warning/error lines", bad.len())];
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
