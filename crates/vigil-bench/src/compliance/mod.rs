//! `vigil-bench compliance`: how long a compliance assessment takes on a
//! sparse IPv4 /16 and a sparse IPv6 /112 (a few hundred hosts, the rest
//! silently drop), on demand and from the database only, with nmap's
//! connect scan of the same ranges beside it; and on Active Directory
//! scopes of 1,000 and 10,000 computers (a real Samba AD DC), with
//! OpenLDAP's `ldapsearch` doing the same paged read as the baseline.
//!
//! Everything runs in a `vigil_testnet::TestNet`: the server (release
//! build, embedded SQLite) in the scanner namespace, hosts, agents and the
//! DC in the target namespace; only the documentation and benchmarking
//! ranges are used and nothing routes out. Every assessment's counts are
//! checked against the ground truth, so a broken run cannot pass for a
//! fast one. Run it through `bench/compliance`.

mod directory;
mod names;
mod network;
mod peer;
mod server;

use anyhow::{bail, Context, Result};
use network::{Mix, Range, Role, AGENT_PORT};
use serde_json::json;
use server::Server;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vigil_testnet::{NetSpec, TestNet};

#[derive(Debug, clap::Args)]
pub struct ComplianceArgs {
    /// Assessments per range and mode (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Skip the 10,000-computer directory (loading it takes 1–1.5 min).
    #[arg(long)]
    quick: bool,
    /// Skip Active Directory altogether.
    #[arg(long)]
    no_ad: bool,
    /// nmap scans the first /N of the IPv4 range (and as many IPv6
    /// addresses) and its time is extrapolated; 16 scans everything.
    #[arg(long, default_value_t = 22)]
    nmap_sample_prefix: u8,
    /// Kill an nmap run or fail an assessment after this many seconds.
    #[arg(long, default_value_t = 600)]
    limit_secs: u64,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
    /// Seed for host placement.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
}

/// Hosts of the IPv4 /16: 300 up.
const V4_MIX: Mix = Mix {
    ours: 4,
    theirs: 40,
    rpc: 156,
    refusing: 100,
};
/// Hosts of the IPv6 /112: 200 up.
const V6_MIX: Mix = Mix {
    ours: 3,
    theirs: 27,
    rpc: 100,
    refusing: 70,
};
/// Set on SIGINT or SIGTERM: the long waits (assessments, nmap) stop and
/// the bench unwinds, so the namespaces, the DC and the server are torn
/// down.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Fails once the bench was asked to stop.
pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

fn watch_signals(rt: &tokio::runtime::Runtime) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _guard = rt.enter();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    rt.spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("stopping: cleaning up");
        INTERRUPTED.store(true, Ordering::Relaxed);
    });
    Ok(())
}

/// Directory sizes, and how many computers' names resolve.
const AD_SIZES: [usize; 2] = [1_000, 10_000];
const AD_RESOLVING: usize = 100;

pub fn run(args: ComplianceArgs) -> Result<()> {
    if !vigil_testnet::require_root() {
        bail!("the benchmark builds network namespaces: run it as root");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if !(16..=32).contains(&args.nmap_sample_prefix) {
        bail!("--nmap-sample-prefix must be within 16..=32");
    }
    let vigil = crate::vigil_binary(args.vigil.as_deref())?;
    let tmp = tempfile::Builder::new()
        .prefix("vigil-bench-compliance")
        .tempdir()?;
    let dir = tmp.path();
    let limit = Duration::from_secs(args.limit_secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    watch_signals(&rt)?;

    println!("# vigil-bench compliance\n");
    print_machine(&vigil);
    let net = TestNet::new(NetSpec::default())?;
    let v4 = network::plan(
        &net,
        "IPv4 /16",
        "198.19.0.0/16".parse()?,
        true,
        V4_MIX,
        args.seed,
    )?;
    // 2001:db8:1::/64 is routed by every TestNet.
    let v6 = network::plan(
        &net,
        "IPv6 /112",
        "2001:db8:1::/112".parse()?,
        false,
        V6_MIX,
        args.seed + 1,
    )?;
    let _l4 = network::listen(&net, &v4, &rt)?;
    let _l6 = network::listen(&net, &v6, &rt)?;

    // The DC first: the server resolves names with its DNS server.
    let mut directory = if args.no_ad {
        None
    } else {
        match vigil_testdir::check_available() {
            Ok(()) => Some(directory::start(&net)?),
            Err(e) if e.is_unavailable() => {
                println!("Active Directory left out: {e}\n");
                None
            }
            Err(e) => return Err(e.into()),
        }
    };

    // Names for the hosts: PTR records (the server resolves through this
    // dnsmasq, which forwards the AD domain to the DC).
    let _dns = names::start(
        &net,
        dir,
        &[&v4, &v6],
        directory.as_ref().map(|d| d.dc.addr()),
    )?;

    let mut server = Server::start(&net, &vigil, dir)?;
    for range in [&v4, &v6] {
        for addr in range.with_role(Role::Ours) {
            server.enroll_agent(addr)?;
        }
    }
    wait_for_agents(&net, &[&v4, &v6])?;

    let mut failures = Vec::new();
    let mut ip_results = Vec::new();
    for range in [&v4, &v6] {
        let r = assess_range(&server, range, args.runs, limit, &mut failures)?;
        let sample = peer::sample_of(range, args.nmap_sample_prefix)?;
        eprintln!("[{}] nmap on {sample}", range.label);
        let nmap = peer::run(&net, range, sample, limit)?;
        if !nmap.killed && !nmap.exact {
            failures.push(format!(
                "nmap on {sample}: found {}/{} open ports",
                nmap.found, nmap.exist
            ));
        }
        ip_results.push((range, r, nmap));
    }

    let mut ad_results = Vec::new();
    if let Some(d) = directory.as_mut() {
        let sizes: &[usize] = if args.quick {
            &AD_SIZES[..1]
        } else {
            &AD_SIZES
        };
        for &n in sizes {
            ad_results.push(assess_directory(
                &server,
                &net,
                d,
                &v4,
                n,
                &args,
                dir,
                &mut failures,
            )?);
        }
    }

    report_ip(&ip_results);
    if !ad_results.is_empty() {
        report_ad(&ad_results);
    }
    if let Some(mib) = server.peak_rss_mib() {
        println!("\nServer memory peak (VmHWM) over the whole run: {mib:.1} MiB.");
    }
    drop(server);
    drop(directory);
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("WRONG: {f}");
        }
        bail!(
            "{} result(s) did not match the ground truth",
            failures.len()
        );
    }
    Ok(())
}

fn print_machine(vigil: &std::path::Path) {
    let v = std::process::Command::new(vigil)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("- vigil: {v}");
    println!("- {}", peer::version());
    println!("- machine: {cores} cores\n");
}

/// Waits until every real agent's identify listener accepts connections.
fn wait_for_agents(net: &TestNet, ranges: &[&Range]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    for range in ranges {
        for addr in range.with_role(Role::Ours) {
            let sa = SocketAddr::new(addr, AGENT_PORT);
            loop {
                let ok = net
                    .in_scanner(move || TcpStream::connect_timeout(&sa, Duration::from_secs(1)))?
                    .is_ok();
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the agent on {sa} did not start listening");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}

/// Wall times of one range, per mode.
struct RangeResult {
    on_demand: Vec<Duration>,
    /// Server CPU and machine busy seconds of each on-demand run.
    cpu: Vec<(f64, f64)>,
    /// Until progress showed every address probed, per on-demand run.
    probed: Vec<Duration>,
    /// On demand without name resolution (`resolve_names: false`: what an
    /// assessment was before names, issue 15).
    names_off: Vec<Duration>,
    database: Vec<Duration>,
    right: bool,
}

fn ip_scope(range: &Range, on_demand: bool, names: bool) -> serde_json::Value {
    json!({
        "scope": {
            "ip": {"enabled": true, "ranges": [range.net.to_string()]},
            "agent_ports": [AGENT_PORT],
            "unreachable_port": network::RPC_PORT,
            "on_demand": on_demand,
            "resolve_names": names,
        },
        "reassess": true,
    })
}

/// `runs` on-demand assessments of the range, each followed by one without
/// name resolution and a database-only one, interleaved so drift affects
/// all alike. After each with names, the endpoints named from DNS are
/// counted (`name=h-*`) against the ground truth.
fn assess_range(
    server: &Server<'_>,
    range: &Range,
    runs: usize,
    limit: Duration,
    failures: &mut Vec<String>,
) -> Result<RangeResult> {
    let expected = range.expected();
    let mut r = RangeResult {
        on_demand: Vec::new(),
        cpu: Vec::new(),
        probed: Vec::new(),
        names_off: Vec::new(),
        database: Vec::new(),
        right: true,
    };
    for run in 1..=runs {
        for (on_demand, names) in [(true, true), (true, false), (false, true)] {
            let mode = match (on_demand, names) {
                (true, true) => "on demand",
                (true, false) => "on demand, names off",
                _ => "database only",
            };
            let a = server
                .assess(ip_scope(range, on_demand, names), limit)
                .with_context(|| format!("{} {mode}", range.label))?;
            let counts = a.counts()?;
            eprintln!(
                "[{}] run {run}/{runs} {mode}: {:.2}s (server CPU {:.1}s, machine busy {:.1}s), {} ({})",
                range.label,
                a.wall.as_secs_f64(),
                a.server_cpu,
                a.machine_busy,
                a.view["state"],
                counts
            );
            if a.view["state"] != "done" || counts != expected {
                r.right = false;
                failures.push(format!(
                    "{} {mode}: {} with {counts}, expected {expected}",
                    range.label, a.view["state"]
                ));
            }
            if on_demand && names {
                r.on_demand.push(a.wall);
                r.cpu.push((a.server_cpu, a.machine_busy));
                r.probed.extend(a.until_probed);
                let named = server.call(
                    "GET",
                    &format!(
                        "/api/v1/compliance/endpoints?name=h-*.{}&limit=1",
                        names::DOMAIN
                    ),
                    None,
                )?["total"]
                    .as_u64()
                    .unwrap_or(0);
                if named != names::dns_named(range) {
                    r.right = false;
                    failures.push(format!(
                        "{} {mode}: {named} endpoints named from DNS, expected {}",
                        range.label,
                        names::dns_named(range)
                    ));
                }
            } else if on_demand {
                r.names_off.push(a.wall);
            } else {
                r.database.push(a.wall);
            }
        }
    }
    Ok(r)
}

struct AdResult {
    computers: usize,
    resolving: usize,
    load: Duration,
    ldapsearch: Vec<Duration>,
    on_demand: Vec<Duration>,
    until_probing: Vec<Duration>,
    database: Duration,
    right: bool,
}

#[allow(clippy::too_many_arguments)]
fn assess_directory(
    server: &Server<'_>,
    net: &TestNet,
    d: &mut directory::Directory,
    hosts: &Range,
    computers: usize,
    args: &ComplianceArgs,
    dir: &std::path::Path,
    failures: &mut Vec<String>,
) -> Result<AdResult> {
    let label = format!("AD {computers}");
    eprintln!("[{label}] loading computers");
    let load = d.grow(computers, AD_RESOLVING, hosts)?;
    eprintln!("[{label}] loaded in {:.1}s", load.as_secs_f64());
    let expected = d.expected();
    let limit = Duration::from_secs(args.limit_secs);
    let mut r = AdResult {
        computers,
        resolving: d.resolving(),
        load,
        ldapsearch: Vec::new(),
        on_demand: Vec::new(),
        until_probing: Vec::new(),
        database: Duration::ZERO,
        right: true,
    };
    // Logs the assessment; true if it found exactly the ground truth.
    let mut check = |mode: &str, a: &server::Assessed| -> Result<bool> {
        let counts = a.counts()?;
        eprintln!(
            "[{label}] {mode}: {:.2}s (server CPU {:.1}s, machine busy {:.1}s), {} ({counts})",
            a.wall.as_secs_f64(),
            a.server_cpu,
            a.machine_busy,
            a.view["state"]
        );
        let right = a.view["state"] == "done" && counts == expected;
        if !right {
            failures.push(format!(
                "{label} {mode}: {} with {counts}, expected {expected}: {}",
                a.view["state"], a.view["error"]
            ));
        }
        Ok(right)
    };
    for _ in 0..args.runs {
        let (t, entries) = d.ldapsearch(net, dir)?;
        if entries != computers {
            bail!("ldapsearch returned {entries} entries, expected {computers}");
        }
        r.ldapsearch.push(t);
        let a = server.assess(d.scope_body(true), limit)?;
        r.right &= check("on demand", &a)?;
        r.on_demand.push(a.wall);
        r.until_probing.extend(a.until_probing);
    }
    let a = server.assess(d.scope_body(false), limit)?;
    r.right &= check("database only", &a)?;
    r.database = a.wall;
    Ok(r)
}

fn median(d: &[Duration]) -> Option<Duration> {
    let mut v = d.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2}s")
    } else {
        format!("{s:.1}s")
    }
}

fn stats(d: &[Duration]) -> String {
    match (median(d), d.iter().min(), d.iter().max()) {
        (Some(m), Some(lo), Some(hi)) => format!("{} | {} | {}", secs(m), secs(*lo), secs(*hi)),
        _ => "- | - | -".into(),
    }
}

fn report_ip(results: &[(&Range, RangeResult, peer::NmapRun)]) {
    println!("\n## IP ranges (ports 135 and 47760, identify on open agent ports)\n");
    println!("| range | addresses | hosts up | run | median | min | max | counts right | time / vigil on demand |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    let mut cpu_lines = Vec::new();
    for (range, r, nmap) in results {
        let base = median(&r.on_demand).unwrap_or_default().as_secs_f64();
        let ratio = |t: f64| {
            if base > 0.0 {
                format!("{:.1}x", t / base)
            } else {
                "-".into()
            }
        };
        let right = if r.right { "yes" } else { "NO" };
        let head = format!(
            "| {} `{}` | {} | {} ",
            range.label,
            range.net,
            range.size,
            range.hosts.len()
        );
        println!(
            "{head}| vigil on demand, {} runs | {} | {right} | 1.0x |",
            r.on_demand.len(),
            stats(&r.on_demand)
        );
        let (cpu, busy) = r
            .cpu
            .iter()
            .fold((0.0, 0.0), |(c, b), (x, y)| (c + x, b + y));
        let n = r.cpu.len().max(1) as f64;
        cpu_lines.push(format!(
            "{}: on demand, mean per run: server CPU {:.1}s, machine busy {:.1}s of {:.1}s available ({} cores × wall)",
            range.label,
            cpu / n,
            busy / n,
            cores() as f64 * r.on_demand.iter().map(Duration::as_secs_f64).sum::<f64>() / n,
            cores()
        ));
        if let Some(p) = median(&r.probed) {
            cpu_lines.push(format!(
                "{}: on demand, probing finished after {} (median; progress is written every 0.5 s), the rest is joining and storing {} endpoints",
                range.label,
                secs(p),
                range.size
            ));
        }
        let off = median(&r.names_off).unwrap_or_default().as_secs_f64();
        println!(
            "{head}| vigil on demand, names off (before names), {} runs | {} | {right} | {} |",
            r.names_off.len(),
            stats(&r.names_off),
            ratio(off)
        );
        cpu_lines.push(format!(
            "{}: names for {} addresses (PTR for all, NetBIOS for the {} up; {} named from DNS) cost {:+.2}s on demand ({:+.0}%)",
            range.label,
            range.size,
            range.hosts.len(),
            names::dns_named(range),
            base - off,
            if off > 0.0 { 100.0 * (base - off) / off } else { 0.0 }
        ));
        let db = median(&r.database).unwrap_or_default().as_secs_f64();
        println!(
            "{head}| vigil database only, {} runs | {} | {right} | {} |",
            r.database.len(),
            stats(&r.database),
            ratio(db)
        );
        let factor = range.size as f64 / nmap.addresses as f64;
        let measured = nmap.elapsed.as_secs_f64();
        let whole = measured * factor;
        let bound = if nmap.killed { "> " } else { "" };
        let shown = if factor > 1.0 {
            format!(
                "{bound}{} (measured {bound}{} on `{}`, {} addresses, ×{factor:.0})",
                secs(Duration::from_secs_f64(whole)),
                secs(nmap.elapsed),
                nmap.target,
                nmap.addresses
            )
        } else {
            format!("{bound}{}", secs(nmap.elapsed))
        };
        let found = if nmap.killed {
            "killed at the limit".to_string()
        } else {
            format!(
                "{}/{} open ports{}",
                nmap.found,
                nmap.exist,
                if nmap.exact { ", exact" } else { "" }
            )
        };
        println!(
            "{head}| `{}` | {shown} | - | - | {found} | {bound}{} |",
            nmap.command,
            ratio(whole)
        );
        summary.push(format!(
            "{}: nmap {bound}{} (extrapolated from {}), database only {}",
            range.label,
            ratio(whole),
            nmap.target,
            ratio(db)
        ));
        let e = range.expected();
        println!("|  |  |  | expected counts: {e} |  |  |  |  |  |");
    }
    println!("\nTime ratio to vigil's on-demand assessment (> 1: vigil is faster):\n");
    for s in summary {
        println!("- {s}");
    }
    println!("\nWhere the time goes, and CPU during the assessments:\n");
    for s in cpu_lines {
        println!("- {s}");
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn report_ad(results: &[AdResult]) {
    println!("\n## Active Directory scope (AD only, IP scope disabled)\n");
    println!("| computers | names resolve | DC load (bench set-up) | `ldapsearch` paged read (median) | vigil on demand (median, min–max) | until first progress: AD read + name resolution + pass 1 (median) | vigil database only | counts right | on demand / ldapsearch |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let ld = median(&r.ldapsearch).unwrap_or_default();
        let od = median(&r.on_demand).unwrap_or_default();
        let lo = r.on_demand.iter().min().copied().unwrap_or_default();
        let hi = r.on_demand.iter().max().copied().unwrap_or_default();
        let until = median(&r.until_probing)
            .map(secs)
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {} | {} | {} ({}–{}) | {until} | {} | {} | {:.1}x |",
            r.computers,
            r.resolving,
            secs(r.load),
            secs(ld),
            secs(od),
            secs(lo),
            secs(hi),
            secs(r.database),
            if r.right { "yes" } else { "NO" },
            od.as_secs_f64() / ld.as_secs_f64().max(1e-9)
        );
    }
    println!("\n`ldapsearch`: `{}` in the scanner namespace (OpenLDAP client, same page size and attributes as the server).", directory::ldapsearch_shown());
}
