//! `vigil-bench lan`: the agent's sweep of a whole /22 LAN (1,024
//! addresses, 50 devices) beside nmap's connect scan of the same range —
//! wall time, CPU time and peak memory of each, and whether each found
//! exactly the devices (address and MAC) and open ports that exist.
//!
//! The LAN is a `vigil_testnet::TestLan`: a Linux bridge with the agent
//! and 50 device namespaces on `198.18.4.0/22`, each device with a MAC of
//! a real vendor, and no route anywhere else (see [`network`]). The agent
//! runs `vigil agent sweep --local --include-interface eth0` in its
//! namespace, which is the product's *local network* target sweeping the
//! interface's subnet; nmap runs `nmap -sT` on the same block in the same
//! namespace, with its usual ARP host discovery (and once without it,
//! `-Pn`, which is what the agent does: it probes every address). Runs are
//! interleaved, and the agent namespace's neighbour table is flushed
//! before each, so every run starts from the same cold table.
//!
//! Besides the totals, the agent's phases are timed from `/proc` while it
//! runs (scan, neighbour-table settling, name lookups; see
//! [`process::Phases`]), and one plain `vigil scan` of the same addresses
//! and ports shows how the engine's probes to empty addresses ended.
//! `--warm-after` adds sweeps that meet the previous sweep's neighbour
//! entries (no flush), where the settling wait shows. Every run's
//! devices and open ports are checked against the ground truth, and the
//! kernel's neighbour-table overflows are counted (the table is the whole
//! machine's, and a /22 sweep fills it). Run it through `bench/lan`.

mod found;
mod network;
mod process;

use anyhow::{bail, Context, Result};
use found::Found;
use process::Run;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The ports of a LAN sweep (`vigil agent sweep`'s default), given to
/// both tools.
pub const PORTS: &str = vigil_core::lan::scope::LAN_PORTS;

/// Devices on the LAN.
const HOSTS: usize = 50;

#[derive(Debug, clap::Args)]
pub struct LanArgs {
    /// Runs per tool (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// One run per tool, nmap only with host discovery at -T4, and no
    /// engine-alone scan.
    #[arg(long)]
    quick: bool,
    /// Leave out `nmap -Pn` (no host discovery: it waits out every empty
    /// address).
    #[arg(long)]
    no_pn: bool,
    /// Let each device learn the agent's MAC by ARP, as a real device
    /// does, instead of from a permanent entry: the 50 entries then count
    /// against the neighbour-table limit the whole machine shares (a real
    /// agent's machine does not hold them), which shows what a fuller
    /// table does to the sweep.
    #[arg(long)]
    device_arp_entries: bool,
    /// Also sweep again this many seconds after a sweep, without flushing
    /// the neighbour table in between (what a periodic sweep meets: the
    /// entries of the previous one); comma-separated, e.g. 0,40.
    #[arg(long, value_delimiter = ',')]
    warm_after: Vec<u64>,
    /// Kill a run after this many seconds (the bench then fails; nmap
    /// -Pn takes 90–115 s on 2 cores).
    #[arg(long, default_value_t = 300)]
    limit_secs: u64,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Seed for device placement.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// A tool under comparison.
#[derive(Debug, Clone)]
enum Tool {
    /// `vigil agent sweep`; with `--no-arp` when `arp` is false (hosts
    /// found by connect probes, as without CAP_NET_RAW).
    Agent { arp: bool },
    /// nmap with these options before `-p PORTS -oX - RANGE`.
    Nmap(&'static [&'static str]),
}

impl Tool {
    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = match self {
            Tool::Agent { arp } => {
                let mut a: Vec<String> = [
                    "agent",
                    "sweep",
                    "--local",
                    "--include-interface",
                    vigil_testnet::TestLan::HOST_IF,
                    "--json",
                ]
                .map(String::from)
                .to_vec();
                if !arp {
                    a.push("--no-arp".into());
                }
                a
            }
            Tool::Nmap(opts) => opts.iter().map(|s| s.to_string()).collect(),
        };
        a.extend(["-p".into(), PORTS.into()]);
        if let Tool::Nmap(_) = self {
            a.extend(["-oX".into(), "-".into(), network::SUBNET.into()]);
        }
        a
    }

    /// The command as typed in the agent namespace.
    fn shown(&self) -> String {
        let bin = match self {
            Tool::Agent { .. } => "vigil",
            Tool::Nmap(_) => "nmap",
        };
        format!("{bin} {}", self.args().join(" "))
    }

    /// Whether its output tells devices from empty addresses: nmap with
    /// `-Pn` reports every address as up.
    fn lists_devices(&self) -> bool {
        match self {
            Tool::Agent { .. } => true,
            Tool::Nmap(opts) => !opts.contains(&"-Pn"),
        }
    }

    /// Short name for the tables.
    fn name(&self) -> String {
        match self {
            Tool::Agent { arp: true } => "vigil agent sweep".into(),
            Tool::Agent { arp: false } => "vigil agent sweep --no-arp".into(),
            Tool::Nmap(opts) => {
                let o: Vec<&str> = opts.iter().copied().filter(|o| *o != "-n").collect();
                format!("nmap {}", o.join(" "))
            }
        }
    }
}

const AGENT: Tool = Tool::Agent { arp: true };
const NMAP_T4: Tool = Tool::Nmap(&["-sT", "-T4", "-n"]);
const NMAP_T3: Tool = Tool::Nmap(&["-sT", "-n"]);
const NMAP_PN: Tool = Tool::Nmap(&["-sT", "-T4", "-n", "-Pn"]);

/// The runs of one tool.
struct Measured {
    tool: Tool,
    runs: Vec<Run>,
    /// Devices and open ports found, of the last run.
    devices: usize,
    open: usize,
    exact: usize,
    /// Neighbour entries by state after the last run.
    neighbours: BTreeMap<String, usize>,
    /// What went wrong in which run, for the report.
    notes: Vec<String>,
}

impl Measured {
    fn new(tool: Tool) -> Measured {
        Measured {
            tool,
            runs: Vec::new(),
            devices: 0,
            open: 0,
            exact: 0,
            neighbours: BTreeMap::new(),
            notes: Vec::new(),
        }
    }
}

pub fn run(args: LanArgs) -> Result<()> {
    if !vigil_testnet::require_root() {
        bail!("the benchmark builds network namespaces: run it as root");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let vigil = crate::vigil_binary(args.vigil.as_deref())?;
    process::watch_signals();
    let runs = if args.quick { 1 } else { args.runs };
    let limit = Duration::from_secs(args.limit_secs);
    let mut tools = vec![AGENT, Tool::Agent { arp: false }, NMAP_T4];
    if !args.quick {
        tools.push(NMAP_T3);
    }

    eprintln!("[lan] building {} with {HOSTS} devices", network::SUBNET);
    let lan = network::build(HOSTS, args.seed, args.device_arp_entries)?;
    let mut measured: Vec<Measured> = tools.into_iter().map(Measured::new).collect();
    let mut failures = Vec::new();
    for run in 1..=runs {
        for m in measured.iter_mut() {
            let label = format!("run {run}/{runs}");
            measure_once(&lan, &vigil, m, &label, limit, true, &mut failures)?;
        }
    }
    let mut warm = Vec::new();
    for &after in &args.warm_after {
        network::flush_neighbours(&lan.lan)?;
        let mut first = lan.lan.agent_cmd(&vigil);
        first.args(AGENT.args());
        process::run(first, limit, false).context("the sweep before the warm one")?;
        eprintln!("[lan] waiting {after}s");
        process::sleep(Duration::from_secs(after))?;
        let mut m = Measured::new(AGENT);
        let label = format!("warm ({after}s after a sweep)");
        measure_once(&lan, &vigil, &mut m, &label, limit, false, &mut failures)?;
        warm.push((after, m));
    }
    // Without host discovery nmap waits out every empty address: once.
    if !args.quick && !args.no_pn {
        let mut m = Measured::new(NMAP_PN);
        measure_once(&lan, &vigil, &mut m, "once", limit, true, &mut failures)?;
        measured.push(m);
    }
    let engine = if args.quick {
        None
    } else {
        network::flush_neighbours(&lan.lan)?;
        Some(engine_alone(&lan, &vigil, limit)?)
    };

    print_header(&vigil, &lan);
    report(&measured, &lan.truth);
    if !warm.is_empty() {
        report_warm(&warm, &lan.truth);
    }
    if let Some(e) = &engine {
        report_engine(e, &lan.truth);
    }
    drop(lan);
    if !failures.is_empty() {
        const SHOWN: usize = 30;
        for f in failures.iter().take(SHOWN) {
            eprintln!("WRONG: {f}");
        }
        if failures.len() > SHOWN {
            eprintln!("WRONG: … and {} more", failures.len() - SHOWN);
        }
        bail!("{} difference(s) from the ground truth", failures.len());
    }
    Ok(())
}

/// One run of `m`'s tool (from a flushed neighbour table if `flush`),
/// checked against the ground truth (differences go to `failures`).
fn measure_once(
    lan: &network::Lan,
    vigil: &Path,
    m: &mut Measured,
    label: &str,
    limit: Duration,
    flush: bool,
    failures: &mut Vec<String>,
) -> Result<()> {
    if flush {
        network::flush_neighbours(&lan.lan)?;
    }
    let bin = match m.tool {
        Tool::Agent { .. } => vigil,
        Tool::Nmap(_) => Path::new("nmap"),
    };
    let mut cmd = lan.lan.agent_cmd(bin);
    cmd.args(m.tool.args());
    let r = process::run(cmd, limit, matches!(m.tool, Tool::Agent { .. }))
        .with_context(|| format!("{} ({label})", m.tool.name()))?;
    let found: Found = match m.tool {
        Tool::Agent { .. } => {
            let (found, swept) = found::agent(&r.stdout)?;
            if swept != [network::SUBNET] {
                failures.push(format!(
                    "{}: swept {swept:?}, expected [{}]",
                    m.tool.name(),
                    network::SUBNET
                ));
            }
            found
        }
        Tool::Nmap(_) => found::nmap(&r.stdout)?,
    };
    let diff = if m.tool.lists_devices() {
        // nmap cannot know the MAC of the machine it runs on.
        let no_mac = matches!(m.tool, Tool::Nmap(_)).then_some(IpAddr::V4(network::AGENT_ADDR));
        found::differences(&found, &lan.truth, no_mac)
    } else {
        found::open_differences(&found, &lan.truth)
    };
    m.neighbours = network::neighbour_states(&lan.lan)?;
    let phases = r
        .phases
        .map(|p| format!(", phases {p}"))
        .unwrap_or_default();
    eprintln!(
        "[lan] {label} {}: {:.2}s, CPU {:.2}s, max RSS {:.1} MiB, {} devices, {} open ports, {}{phases}; neighbours after {:?}; kernel table {} entries at start, peak {}, {} overflows, {} failed resolutions",
        m.tool.name(),
        r.wall.as_secs_f64(),
        r.cpu(),
        r.max_rss_kib as f64 / 1024.0,
        found.len(),
        found::open_ports(&found),
        if diff.is_empty() { "exact".to_string() } else { format!("{} differences", diff.len()) },
        m.neighbours,
        r.arp.entries_before,
        r.arp.peak_entries,
        r.arp.table_fulls,
        r.arp.res_failed,
    );
    for d in &diff {
        failures.push(format!("{} {label}: {d}", m.tool.name()));
    }
    if !diff.is_empty() {
        let missed_droppers = lan
            .droppers
            .iter()
            .filter(|a| m.tool.lists_devices() && !found.contains_key(a))
            .count();
        m.notes.push(format!(
            "{label}: {} differences ({}{}); the machine's neighbour table held {} entries at the start, peaked at {} and refused {} new ones (\"neighbor table overflow\")",
            diff.len(),
            summarize(&diff),
            if missed_droppers > 0 {
                format!(
                    ", {missed_droppers} of the {} devices that drop everything among them",
                    lan.droppers.len()
                )
            } else {
                String::new()
            },
            r.arp.entries_before,
            r.arp.peak_entries,
            r.arp.table_fulls
        ));
    }
    m.exact += usize::from(diff.is_empty());
    m.devices = found.len();
    m.open = found::open_ports(&found);
    m.runs.push(r);
    Ok(())
}

/// "3 devices missed, 2 with open ports missed": the kinds of differences.
fn summarize(diff: &[String]) -> String {
    let n = |pat: &str| diff.iter().filter(|d| d.contains(pat)).count();
    let parts = [
        (n("device missed"), "devices missed"),
        (n(": open ports"), "devices with wrong open ports"),
        (n("no device is there"), "listed where no device is"),
        (n(": MAC"), "wrong MACs"),
        (n("open port missed"), "open ports missed"),
    ];
    parts
        .iter()
        .filter(|(k, _)| *k > 0)
        .map(|(k, what)| format!("{k} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "not runnable".into())
}

fn print_header(vigil: &Path, lan: &network::Lan) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let sysctl = |k: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/{k}"))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    println!("# vigil-bench lan\n");
    println!("- vigil: {}", version(vigil));
    println!("- nmap: {}", version(Path::new("nmap")));
    println!(
        "- machine: {cores} cores, Linux {kernel}; neighbour table: gc_thresh3 {}, mcast_solicit {}, retrans_time_ms {}",
        sysctl("gc_thresh3"),
        sysctl("mcast_solicit"),
        sysctl("retrans_time_ms")
    );
    println!(
        "- LAN: `{}` (1,024 addresses) on one bridge, the agent at {}; {HOSTS} devices at random addresses: {} serving, {} refusing every port (RST), {} dropping every IPv4 packet (they answer ARP); {} open ports in all",
        network::SUBNET,
        network::AGENT_ADDR,
        lan.serving,
        lan.refusing,
        lan.dropping,
        found::open_ports(&lan.truth)
    );
    println!("- devices: {}", network::kinds_used(HOSTS));
    println!("- ports ({}): {PORTS}", PORTS.split(',').count());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn secs(s: f64) -> String {
    crate::fmt_secs(s)
}

fn report(measured: &[Measured], truth: &Found) {
    let runs = measured.first().map_or(0, |m| m.runs.len());
    println!(
        "\n## Sweep of {} (median of {runs} runs, interleaved{}; neighbour table flushed before each)\n",
        network::SUBNET,
        if measured.iter().any(|m| !m.tool.lists_devices()) {
            "; -Pn once"
        } else {
            ""
        }
    );
    println!("| tool | command (in the agent namespace) | wall (median, min–max) | CPU user+sys | max RSS | machine busy (all processes) | neighbour table: peak entries, overflows | devices | open ports | exact |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let stat = |m: &Measured, f: &dyn Fn(&Run) -> f64| median(m.runs.iter().map(f).collect());
    for m in measured {
        let walls: Vec<f64> = m.runs.iter().map(|r| r.wall.as_secs_f64()).collect();
        let lo = walls.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = walls.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | `{}` | **{}** ({}–{}) | {} ({} + {}) | {:.1} MiB | {} | {}, {} | {} | {}/{} | {}/{} runs |",
            m.tool.name(),
            m.tool.shown(),
            secs(median(walls)),
            secs(lo),
            secs(hi),
            secs(stat(m, &|r| r.cpu())),
            secs(stat(m, &|r| r.user)),
            secs(stat(m, &|r| r.sys)),
            stat(m, &|r| r.max_rss_kib as f64) / 1024.0,
            secs(stat(m, &|r| r.machine_busy)),
            stat(m, &|r| r.arp.peak_entries as f64),
            stat(m, &|r| r.arp.table_fulls as f64),
            if m.tool.lists_devices() {
                format!("{}/{}", m.devices, truth.len())
            } else {
                format!("({} listed: all up)", m.devices)
            },
            m.open,
            found::open_ports(truth),
            m.exact,
            m.runs.len(),
        );
    }
    if let Some(agent) = measured.first() {
        println!("\nvigil / nmap (medians; < 1 means vigil uses less):\n");
        println!("| against | wall | CPU | max RSS |");
        println!("|---|---|---|---|");
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}x", a / b)
            } else {
                "-".into()
            }
        };
        for m in &measured[1..] {
            println!(
                "| {} | {} | {} | {} |",
                m.tool.name(),
                ratio(
                    stat(agent, &|r| r.wall.as_secs_f64()),
                    stat(m, &|r| r.wall.as_secs_f64())
                ),
                ratio(stat(agent, &|r| r.cpu()), stat(m, &|r| r.cpu())),
                ratio(
                    stat(agent, &|r| r.max_rss_kib as f64),
                    stat(m, &|r| r.max_rss_kib as f64)
                ),
            );
        }
        report_phases(agent);
    }
    println!(
        "\nNeighbour table of the agent namespace after the last run of each (entries by state):\n"
    );
    for m in measured {
        println!("- {}: {:?}", m.tool.name(), m.neighbours);
    }
}

/// Where the agent's wall time goes (medians over the runs).
fn report_phases(agent: &Measured) {
    let phases: Vec<(process::Phases, f64)> = agent
        .runs
        .iter()
        .filter_map(|r| Some((r.phases?, r.wall.as_secs_f64())))
        .collect();
    let span = |f: &dyn Fn(&process::Phases, f64) -> Option<f64>| -> String {
        let v: Vec<f64> = phases.iter().filter_map(|(p, w)| f(p, *w)).collect();
        if v.len() < phases.len() || v.is_empty() {
            "-".into()
        } else {
            secs(median(v))
        }
    };
    let d = |x: Option<Duration>| x.map(|x| x.as_secs_f64());
    println!("\nWhere the agent's time goes (median over the runs; seen from /proc every 5 ms):\n");
    println!("| start until the scan engine's threads run (interfaces, ARP discovery) | scan (engine threads alive) | neighbour table settling (no thread, no socket) | name lookups (UDP sockets open) | printing and exit |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} |",
        span(&|p, _| d(p.scan_start)),
        span(&|p, _| Some(d(p.scan_end)? - d(p.scan_start)?)),
        span(&|p, _| Some(d(p.names_start)? - d(p.scan_end)?)),
        // Sockets that close within a sample of the exit: names end there.
        span(&|p, w| Some(d(p.names_end).unwrap_or(w) - d(p.names_start)?)),
        span(&|p, w| Some(d(p.names_end).map_or(0.0, |e| w - e))),
    );
}

/// The sweeps that met the previous sweep's neighbour entries.
fn report_warm(warm: &[(u64, Measured)], truth: &Found) {
    println!("\n## Warm neighbour table: the agent sweeps again after a sweep (no flush)\n");
    println!("| after the previous sweep | wall | scan | neighbour table settling | name lookups | devices | open ports | exact |");
    println!("|---|---|---|---|---|---|---|---|");
    let d = |x: Option<Duration>| x.map(|x| x.as_secs_f64());
    let span = |a: Option<Duration>, b: Option<Duration>| match (d(a), d(b)) {
        (Some(a), Some(b)) => secs(b - a),
        _ => "-".into(),
    };
    for (after, m) in warm {
        let Some(r) = m.runs.first() else { continue };
        let mut p = r.phases.unwrap_or_default();
        p.names_end = p.names_end.or(Some(r.wall));
        println!(
            "| {after} s | {} | {} | {} | {} | {}/{} | {}/{} | {} |",
            secs(r.wall.as_secs_f64()),
            span(p.scan_start, p.scan_end),
            span(p.scan_end, p.names_start),
            span(p.names_start, p.names_end),
            m.devices,
            truth.len(),
            m.open,
            found::open_ports(truth),
            if m.exact == 1 { "yes" } else { "NO" },
        );
    }
    for note in warm.iter().flat_map(|(_, m)| &m.notes) {
        println!("\n- {note}");
    }
}

/// One `vigil scan` of the addresses the agent sweeps, with its verdicts.
struct Engine {
    command: String,
    run: Run,
    /// (state, reason) → count, at addresses where no device is.
    empty: BTreeMap<(String, String), usize>,
    empty_addrs: usize,
}

/// The scan engine alone, with the agent's configuration (`vigil scan`'s
/// defaults are `ScanConfig::default()`, which the agent uses): how long
/// the probing takes, and how the probes of empty addresses ended.
fn engine_alone(lan: &network::Lan, vigil: &Path, limit: Duration) -> Result<Engine> {
    let dir = tempfile::Builder::new()
        .prefix("vigil-bench-lan")
        .tempdir()?;
    let xml = dir.path().join("engine.xml");
    let range = "198.18.4.1-198.18.7.254";
    let mut cmd = lan.lan.agent_cmd(vigil);
    cmd.args(["scan", "--no-progress", "--all", "-p", PORTS, "--xml"])
        .arg(&xml)
        .arg(range);
    eprintln!("[lan] vigil scan alone");
    let run = process::run(cmd, limit, false).context("vigil scan alone")?;
    let verdicts = vigil_testnet::nmap::parse_xml(&std::fs::read_to_string(&xml)?)?;
    let mut empty = BTreeMap::new();
    let mut addrs = std::collections::BTreeSet::new();
    for ((addr, _), (state, reason)) in &verdicts {
        if !lan.truth.contains_key(addr) {
            addrs.insert(*addr);
            *empty.entry((state.clone(), reason.clone())).or_default() += 1;
        }
    }
    Ok(Engine {
        command: format!("vigil scan --no-progress --all -p {PORTS} --xml FILE {range}"),
        run,
        empty,
        empty_addrs: addrs.len(),
    })
}

fn report_engine(e: &Engine, truth: &Found) {
    println!("\n## The scan engine alone\n");
    println!(
        "`{}` in the agent namespace (cold neighbour table): {} wall, CPU {} ({} user + {} sys), max RSS {:.1} MiB, machine busy {}.",
        e.command,
        secs(e.run.wall.as_secs_f64()),
        secs(e.run.cpu()),
        secs(e.run.user),
        secs(e.run.sys),
        e.run.max_rss_kib as f64 / 1024.0,
        secs(e.run.machine_busy),
    );
    let probes: usize = e.empty.values().sum();
    println!(
        "\nVerdicts of the {probes} probes to the {} addresses without a device ({} devices; their ports answer at once):\n",
        e.empty_addrs,
        truth.len()
    );
    for ((state, reason), n) in &e.empty {
        println!("- {state} ({reason}): {n}");
    }
}
