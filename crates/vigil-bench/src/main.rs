//! `vigil-bench`: runs `vigil scan`, `nmap -sT -T4` and RustScan side by
//! side on the same namespaced test network and prints, per scenario, the
//! median wall time of each, its ratio to Vigil's, and whether it found
//! exactly the open ports that exist. Run it through `bench/run`.
//!
//! `vigil-bench agents` is the other benchmark: simulated agents against a
//! real `vigil server` on loopback (see [`agents`]); run it through
//! `bench/agents`.
//!
//! `vigil-bench compliance` times compliance assessments (sparse /16 and
//! /112, Active Directory scopes) beside nmap (see [`compliance`]); run it
//! through `bench/compliance`.
//!
//! `vigil-bench lan` times the agent's sweep of a /22 LAN beside
//! `nmap -sT` (see [`lan`]); run it through `bench/lan`.
//!
//! `vigil-bench soak` runs 1,000 simulated agents through 30 simulated
//! days against a real server and checks that the database, the server's
//! memory and its latencies stay flat once retention deletes (see
//! [`soak`]).

mod agents;
mod compliance;
mod fleet;
mod lan;
mod listeners;
mod scenario;
mod soak;
mod tools;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tools::{Outcome, Tool};

#[derive(Debug, Parser)]
#[command(
    about = "Vigil vs nmap vs RustScan on a namespaced test network",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    scanners: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulated agents against a real `vigil server` on loopback.
    Agents(agents::AgentsArgs),
    /// The server's own scans of 1,000+ agents' observed addresses (SYN
    /// engine), one server or 3 replicas on PostgreSQL.
    Fleet(fleet::FleetArgs),
    /// A worker process of `agents` (started by it; reads its orders on stdin).
    #[command(hide = true)]
    AgentsWorker,
    /// Compliance assessments of sparse ranges and AD scopes, beside nmap.
    Compliance(compliance::ComplianceArgs),
    /// The agent's sweep of a /22 LAN (50 devices), beside nmap -sT.
    Lan(lan::LanArgs),
    /// What attributing open ports to processes costs with 10,000 sockets.
    Listeners(listeners::ListenersArgs),
    /// 30 simulated days of 1,000 agents against a real server: do the
    /// database, the server's memory and its latencies stay flat?
    Soak(soak::SoakArgs),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Runs per tool and scenario (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs for the /16 sweep, where nmap alone takes many minutes.
    #[arg(long, default_value_t = 1)]
    sweep_runs: usize,
    /// Only these scenarios (full-range, latency-filtered, sweep-16,
    /// silent-full-range).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// SYN scans first: `vigil scan --syn` (the baseline of the ratios),
    /// `vigil scan --syn -T5`, `nmap -sS -T5 --min-rate 100000` and
    /// `nmap -sS --min-rate 100000` (nmap's default timing), then
    /// the connect scanners.
    #[arg(long)]
    syn: bool,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Also run this Windows build of vigil (`vigil.exe`) under Wine, beside
    /// the Linux binary (Wine's overhead is not Windows').
    #[arg(long)]
    windows_exe: Option<PathBuf>,
    /// Compare only the Linux and the Windows (Wine) vigil, without nmap
    /// and RustScan.
    #[arg(long, requires = "windows_exe")]
    vigil_only: bool,
    /// The rustscan binary (default: bench/.tools/bin/rustscan, then PATH).
    #[arg(long)]
    rustscan: Option<PathBuf>,
    /// Kill a tool run that takes longer than this many seconds.
    #[arg(long, default_value_t = 900)]
    limit_secs: u64,
    /// Seed for listener placement.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// The `vigil` binary a bench runs: the one given, else the one built
/// next to this one.
pub(crate) fn vigil_binary(given: Option<&Path>) -> Result<PathBuf> {
    let vigil = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("vigil"),
    };
    if !vigil.exists() {
        bail!(
            "{} not found: build it with cargo build --release -p vigil",
            vigil.display()
        );
    }
    Ok(vigil)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Agents(args)) => agents::run(args),
        Some(Command::AgentsWorker) => agents::worker(),
        Some(Command::Compliance(args)) => compliance::run(args),
        Some(Command::Fleet(args)) => fleet::run(args),
        Some(Command::Lan(args)) => lan::run(args),
        Some(Command::Listeners(args)) => listeners::run(args),
        Some(Command::Soak(args)) => soak::run(args),
        None => compare_scanners(cli.scanners),
    }
}

fn compare_scanners(args: Args) -> Result<()> {
    if !vigil_testnet::require_root() {
        bail!("the benchmark builds network namespaces: run it as root");
    }
    if args.runs == 0 || args.sweep_runs == 0 {
        bail!("--runs and --sweep-runs must be at least 1");
    }
    let vigil = crate::vigil_binary(args.vigil.as_deref())?;
    let mut tools = Vec::new();
    if args.syn {
        tools.push(Tool::VigilSyn(vigil.clone(), false));
        tools.push(Tool::VigilSyn(vigil.clone(), true));
        if !args.vigil_only {
            tools.push(Tool::NmapSyn(true));
            tools.push(Tool::NmapSyn(false));
        }
    }
    tools.push(Tool::Vigil(vigil));
    if let Some(exe) = &args.windows_exe {
        let wine = vigil_testwine::Wine::new().context("a Wine prefix for vigil.exe")?;
        tools.push(Tool::VigilWine(exe.clone(), std::sync::Arc::new(wine)));
    }
    if !args.vigil_only {
        tools.push(Tool::Nmap);
        match find_rustscan(args.rustscan.as_deref()) {
            Some(p) => tools.push(Tool::RustScan(p)),
            None => println!("RustScan not found: it is left out (bench/run installs it)."),
        }
    }
    print_versions(&tools);
    let names: Vec<&str> = if args.only.is_empty() {
        scenario::NAMES.to_vec()
    } else {
        args.only.iter().map(String::as_str).collect()
    };
    let limit = Duration::from_secs(args.limit_secs);
    let mut summary = Vec::new();
    for name in names {
        let s = scenario::build(name, args.seed).with_context(|| format!("building {name}"))?;
        let runs = if name == "sweep-16" {
            args.sweep_runs
        } else {
            args.runs
        };
        let results = measure(&s, &tools, runs, limit);
        summary.push(report(&s, &tools, &results));
    }
    println!(
        "\n## Summary (time ratio to {}; > 1 means it is faster)\n",
        tools[0].name()
    );
    for line in summary {
        println!("- {line}");
    }
    Ok(())
}

/// Runs every tool `runs` times, interleaved so drift affects all alike.
fn measure(
    s: &scenario::Scenario,
    tools: &[Tool],
    runs: usize,
    limit: Duration,
) -> Vec<Vec<Result<Outcome>>> {
    let mut results: Vec<Vec<Result<Outcome>>> = tools.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (i, tool) in tools.iter().enumerate() {
            eprintln!("[{}] run {}/{runs}: {}", s.name, run + 1, tool.name());
            results[i].push(tool.run(s, limit));
        }
    }
    results
}

fn report(s: &scenario::Scenario, tools: &[Tool], results: &[Vec<Result<Outcome>>]) -> String {
    println!("\n## {} ({} open ports exist)\n", s.name, s.open.len());
    println!("| tool | command | median | min | max | open found | exact | time / vigil |");
    println!("|---|---|---|---|---|---|---|---|");
    let medians: Vec<Option<f64>> = results.iter().map(|r| median(r)).collect();
    let base = medians[0];
    let mut ratios = Vec::new();
    for ((tool, runs), med) in tools.iter().zip(results).zip(&medians) {
        let ok: Vec<&Outcome> = runs
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|o| !o.timed_out)
            .collect();
        let timed_out = runs.iter().flatten().filter(|o| o.timed_out).count();
        for e in runs.iter().filter_map(|r| r.as_ref().err()) {
            eprintln!("  {}: {e:#}", tool.name());
        }
        let secs = |o: &&Outcome| o.elapsed.as_secs_f64();
        let min = ok.iter().map(secs).fold(f64::INFINITY, f64::min);
        let max = ok.iter().map(secs).fold(0.0, f64::max);
        let exact = ok.iter().filter(|o| o.open == s.open).count();
        let found = ok
            .iter()
            .map(|o| o.open.intersection(&s.open).count())
            .min()
            .unwrap_or(0);
        let ratio = match (med, base) {
            (Some(m), Some(b)) if b > 0.0 && timed_out > 0 => format!("> {:.1}x", m / b),
            (Some(m), Some(b)) if b > 0.0 => format!("{:.1}x", m / b),
            _ => "-".into(),
        };
        if !std::ptr::eq(tool, &tools[0]) {
            ratios.push(format!("{}: {ratio}", tool.name()));
        }
        let failed = runs.len() - ok.len() - timed_out;
        println!(
            "| {} | `{}` | {} | {} | {} | {}/{} (worst run) | {}/{} runs{} | {ratio} |",
            tool.name(),
            shown_command(tool, s),
            match (med, timed_out) {
                (Some(m), 0) => fmt_secs(*m),
                (Some(m), _) => format!("> {} (killed)", fmt_secs(*m)),
                (None, _) => "failed".into(),
            },
            if ok.is_empty() {
                "-".into()
            } else {
                fmt_secs(min)
            },
            if ok.is_empty() {
                "-".into()
            } else {
                fmt_secs(max)
            },
            found,
            s.open.len(),
            exact,
            runs.len(),
            match (failed, timed_out) {
                (0, 0) => String::new(),
                (f, 0) => format!(", {f} failed"),
                (_, t) => format!(", {t} killed at the time limit"),
            },
        );
    }
    format!("{}: {}", s.name, ratios.join(", "))
}

/// Median wall time; a run killed at the limit counts with its (lower-bound)
/// time, so the median is then a lower bound too.
fn median(runs: &[Result<Outcome>]) -> Option<f64> {
    let mut t: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|o| o.elapsed.as_secs_f64())
        .collect();
    if t.len() < runs.len() || t.is_empty() {
        return None;
    }
    t.sort_by(f64::total_cmp);
    Some(t[t.len() / 2])
}

fn fmt_secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.1}s")
    }
}

/// The command as a reader would type it inside the scanner namespace.
fn shown_command(tool: &Tool, s: &scenario::Scenario) -> String {
    let cmd = tool.command(s);
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Drop the `netns exec NAME` prefix and the binary's directory.
    let args = args.get(3..).unwrap_or_default();
    let (bin, rest) = args
        .split_first()
        .map(|(b, r)| (b.clone(), r))
        .unwrap_or_default();
    let bin = Path::new(&bin)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or(bin);
    // Wine's command names the exe by its path: show its name only.
    let short = |a: &String| match Path::new(a).file_name() {
        Some(f) if a.ends_with(".exe") => f.to_string_lossy().into_owned(),
        _ => a.clone(),
    };
    std::iter::once(bin)
        .chain(rest.iter().map(short))
        .collect::<Vec<_>>()
        .join(" ")
}

fn find_rustscan(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/.tools/bin/rustscan");
    if local.exists() {
        return Some(local);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("rustscan"))
            .find(|p| p.exists())
    })
}

fn print_versions(tools: &[Tool]) {
    println!("# vigil-bench\n");
    for tool in tools {
        let (bin, flag): (PathBuf, &str) = match tool {
            Tool::Vigil(p) | Tool::VigilSyn(p, _) => (p.clone(), "--version"),
            Tool::VigilWine(_, wine) => (wine.loader().to_path_buf(), "--version"),
            Tool::Nmap | Tool::NmapSyn(_) => ("nmap".into(), "--version"),
            Tool::RustScan(p) => (p.clone(), "--version"),
        };
        let v = std::process::Command::new(&bin)
            .arg(flag)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_else(|e| format!("not runnable: {e}"));
        println!("- {}: {v}", tool.name());
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("- machine: {cores} cores");
}
