//! `vigil-bench fleet`: the server's own scans of its agents' observed
//! addresses, at fleet scale (issue 19).
//!
//! Everything runs in a [`TestNet`]. The server (one, or `--replicas 3` on
//! a throwaway PostgreSQL cluster) runs in the scanner namespace with its
//! SYN engine; the simulated agents run in the target namespace, each
//! connecting from an address of its own, which the server records as the
//! agent's observed address and scans on every port it sweeps:
//!
//! - **silent** agents sit on addresses of `198.19.0.0/16` (routed to the
//!   target namespace and assigned there); one nft rule drops every SYN
//!   sent to them, so each of their ports ends `filtered` after the
//!   engine's retries — what most home routers look like from outside;
//! - **live** agents sit on addresses of `198.51.100.0/24` with listeners
//!   on [`LIVE_PORTS`] (every other port answers RST). The policy
//!   authorizes no port, so each open port raises an alert.
//!
//! Every agent gets the same policy at once (its observed address, every
//! 15 minutes), so the first round starts together. Measured: the time
//! until every agent's scan is stored, the probes the engine(s) sent (their
//! `/metrics`), CPU; checked: one stored scan per agent (no address scanned
//! twice in the round, whatever the replica), every live port found open,
//! and one alert per live port.

mod sim;

use crate::agents::procs::{self, Child};
use crate::agents::{create_enrollments, printed_pin, rest::Rest, set_policies, vigil_cmd};
use crate::agents::{pg, DbKind, EMAIL, PASSWORD};
use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use vigil_core::{PolicyTarget, PortList, ScanInterval, SecurityPolicy};
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

/// The ports every live agent's address listens on.
pub const LIVE_PORTS: [u16; 3] = [22, 80, 8080];
/// The scan interval of every agent's policy (minutes).
const INTERVAL_MINUTES: u32 = 15;
/// How often the simulated agents heartbeat (the server is told the same).
const HEARTBEAT_SECS: u64 = 30;
const PG_DATABASE: &str = "vigil";

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Agents whose observed address drops every probe.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=60_000))]
    silent: u32,
    /// Agents whose observed address has LIVE_PORTS open (at most 200).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=200))]
    live: u32,
    /// The ports the server sweeps on each observed address.
    #[arg(long, default_value = "1-65535")]
    ports: String,
    /// The account's outside-scan schedule: `full` probes every port of
    /// --ports at every run (the capacity goal), `default` the
    /// account default (top 1,000 ports and a slice of the rest per run,
    /// the rest spread over a day).
    #[arg(long, value_enum, default_value_t = Schedule::Full)]
    schedule: Schedule,
    /// The SYN engine's rate (probes a second, each server).
    #[arg(long, default_value_t = 1_000_000.0)]
    scan_rate: f64,
    /// The servers' database.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    db: DbKind,
    /// `vigil server` replicas on the one database (2 and 3 need --db postgres).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3))]
    replicas: u8,
    /// Give up waiting for the round after this many seconds.
    #[arg(long, default_value_t = 1800)]
    limit_secs: u64,
    /// The vigil binary (default: next to this one).
    #[arg(long)]
    vigil: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Schedule {
    Full,
    Default,
}

pub fn run(args: FleetArgs) -> Result<()> {
    if !vigil_testnet::require_root() {
        bail!("the fleet bench builds network namespaces and sends raw SYN probes: run it as root");
    }
    PortList::parse(&args.ports).map_err(|e| anyhow::anyhow!("--ports {:?}: {e}", args.ports))?;
    if args.silent + args.live == 0 {
        bail!("no agents: give --silent or --live");
    }
    if args.replicas > 1 && args.db == DbKind::Sqlite {
        bail!("--replicas {} needs --db postgres", args.replicas);
    }
    let vigil = crate::vigil_binary(args.vigil.as_deref())?;
    procs::raise_open_files(u64::from(args.silent + args.live) * 2 + 4096);
    let tmp = tempfile::Builder::new()
        .prefix("vigil-bench-fleet-")
        .tempdir()
        .context("creating the data directory")?;
    let net = TestNet::new(NetSpec::default())?;
    let agents = plan_agents(&args);
    eprintln!(
        "test network: {} silent and {} live addresses…",
        args.silent, args.live
    );
    let _listeners = build_network(&net, &agents)?;

    let (orders_tx, orders_rx) = mpsc::channel::<sim::Orders>();
    let (ids_tx, ids_rx) = mpsc::channel::<Result<Vec<(usize, String)>>>();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let sim_stop = stop.clone();
        let net_ref = &net;
        let sim = s.spawn(move || net_ref.in_target(move || sim::run(orders_rx, ids_tx, sim_stop)));
        let coordinated = net.in_scanner(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            rt.block_on(coordinate(
                &args,
                &vigil,
                tmp.path(),
                &agents,
                orders_tx,
                ids_rx,
            ))
        });
        stop.store(true, Ordering::Relaxed);
        let simulated = sim
            .join()
            .map_err(|_| anyhow::anyhow!("the agents' thread panicked"))?;
        simulated??;
        coordinated?
    })
}

/// One simulated agent: where it connects from.
#[derive(Debug, Clone, Copy)]
struct Planned {
    addr: IpAddr,
    live: bool,
}

fn plan_agents(args: &FleetArgs) -> Vec<Planned> {
    let silent = (0..args.silent).map(|i| Planned {
        // 198.19.0.1, …, 198.19.0.250, 198.19.1.1, …
        addr: IpAddr::V4(Ipv4Addr::new(198, 19, (i / 250) as u8, (i % 250 + 1) as u8)),
        live: false,
    });
    let live = (0..args.live).map(|i| Planned {
        addr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, (10 + i) as u8)),
        live: true,
    });
    silent.chain(live).collect()
}

/// Routes 198.19.0.0/16 to the target namespace, assigns every agent's
/// address there, drops SYNs to the silent ones (one rule for all), and
/// listens on the live ones' ports.
fn build_network(net: &TestNet, agents: &[Planned]) -> Result<Vec<vigil_testnet::Listener>> {
    net.route_range("198.19.0.0/16".parse()?)?;
    for a in agents {
        net.add_host(a.addr)?;
    }
    let nft = |args: &[&str]| -> Result<()> {
        let out = net
            .target_cmd("nft")
            .args(args)
            .output()
            .context("running nft")?;
        if !out.status.success() {
            bail!("nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    nft(&["add", "table", "inet", "fleet"])?;
    nft(&[
        "add",
        "chain",
        "inet",
        "fleet",
        "input",
        "{ type filter hook input priority 0 ; policy accept ; }",
    ])?;
    // A SYN without ACK: a probe (the agents only ever connect out).
    nft(&[
        "add",
        "rule",
        "inet",
        "fleet",
        "input",
        "ip",
        "daddr",
        "198.19.0.0/16",
        "tcp",
        "flags",
        "&",
        "(syn|ack)",
        "==",
        "syn",
        "drop",
    ])?;
    let mut listeners = Vec::new();
    for a in agents.iter().filter(|a| a.live) {
        for port in LIVE_PORTS {
            listeners.push(net.listen(SocketAddr::new(a.addr, port), None)?);
        }
    }
    Ok(listeners)
}

/// One `vigil server`.
struct Server {
    name: String,
    data: PathBuf,
    api: String,
    agent_url: String,
    log: PathBuf,
    child: Option<Child>,
}

/// Runs in the scanner namespace: the servers, the REST calls, the wait.
async fn coordinate(
    args: &FleetArgs,
    vigil: &Path,
    dir: &Path,
    agents: &[Planned],
    orders: mpsc::Sender<sim::Orders>,
    ids: mpsc::Receiver<Result<Vec<(usize, String)>>>,
) -> Result<()> {
    let cluster = match args.db {
        DbKind::Sqlite => None,
        DbKind::Postgres => {
            eprintln!("starting a throwaway PostgreSQL cluster…");
            let cluster = pg::Cluster::start()?;
            cluster.create_database(PG_DATABASE)?;
            Some(cluster)
        }
    };
    let mut servers: Vec<Server> = (1..=args.replicas)
        .map(|i| {
            Ok(Server {
                name: format!("vigil server {i}/{}", args.replicas),
                data: dir.join(format!("server-{i}")),
                api: format!("127.0.0.1:{}", procs::free_port()?),
                agent_url: format!("https://{SCANNER_V4}:{}", 8442 + u16::from(i)),
                log: dir.join(format!("server-{i}.log")),
                child: None,
            })
        })
        .collect::<Result<_>>()?;
    let db = match &cluster {
        Some(c) => c.url(PG_DATABASE),
        None => format!("sqlite://{}", servers[0].data.join("vigil.db").display()),
    };
    std::fs::create_dir_all(&servers[0].data)?;
    let out = vigil_cmd(vigil)
        .args(["admin", "--db", &db, "create-account", "--name", "fleet"])
        .args(["--kind", "organization", "--email", EMAIL])
        .env("VIGIL_PASSWORD", PASSWORD)
        .output()
        .context("running vigil admin create-account")?;
    if !out.status.success() {
        bail!("create-account: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pin = start_servers(args, vigil, &db, &mut servers).await?;

    let mut rest = Rest::new(format!("http://{}", servers[0].api))?;
    rest.login(EMAIL, PASSWORD).await?;
    if args.schedule == Schedule::Full {
        let full = serde_json::json!({"top_ports": 0, "full_range_hours": 0});
        rest.put("/outside-schedule", &full).await?;
    }
    let rest = Arc::new(rest);
    eprintln!("enrolling {} agents…", agents.len());
    let tokens = create_enrollments(&rest, agents.len(), 16).await?;
    let urls: Vec<String> = servers.iter().map(|s| s.agent_url.clone()).collect();
    orders
        .send(sim::Orders {
            urls,
            pin,
            agents: agents
                .iter()
                .zip(tokens)
                .map(|(a, t)| (a.addr, t.token))
                .collect(),
            heartbeat: Duration::from_secs(HEARTBEAT_SECS),
        })
        .map_err(|_| anyhow::anyhow!("the simulated agents are gone"))?;
    let enrolled = tokio::task::spawn_blocking(move || ids.recv())
        .await?
        .map_err(|_| anyhow::anyhow!("the simulated agents ended without enrolling"))??;
    if enrolled.len() != agents.len() {
        bail!("{} of {} agents enrolled", enrolled.len(), agents.len());
    }

    let policy = SecurityPolicy {
        enabled: true,
        authorized: PortList::default(),
        monitored: PortList::default(),
        targets: vec![PolicyTarget::ObservedAddress],
        interval: ScanInterval::try_from(INTERVAL_MINUTES)
            .map_err(|e| anyhow::anyhow!("interval: {e}"))?,
        include_interfaces: Vec::new(),
        unreviewed_devices: Default::default(),
        device_kinds: Vec::new(),
        process_change_alerts: false,
    };
    let pids: Vec<u32> = servers
        .iter()
        .filter_map(|s| s.child.as_ref())
        .map(Child::pid)
        .collect();
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|p| procs::cpu_secs(*p).unwrap_or(0.0))
        .collect();
    let machine_before = procs::machine_cpu();
    eprintln!("policies set: the round starts");
    let started = Instant::now();
    set_policies(
        &rest,
        enrolled.iter().map(|(_, id)| id.clone()).collect(),
        policy,
        16,
    )
    .await?;

    // Until every agent's scan is stored.
    let want = agents.len() as f64;
    let limit = Duration::from_secs(args.limit_secs);
    let mut peak_rate = 0.0f64;
    // (when, probes sent) of the last scrapes: rates over 10 s, which the
    // scrapes' own jitter (a busy server answers late) hardly skews.
    let mut seen: std::collections::VecDeque<(Instant, f64)> = [(Instant::now(), 0.0)].into();
    let finished = loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let m = Totals::scrape(&servers).await?;
        let now = Instant::now();
        seen.push_back((now, m.sent));
        let &(then, sent_then) = seen.front().unwrap_or(&(now, m.sent));
        let rate = (m.sent - sent_then) / now.duration_since(then).as_secs_f64().max(0.001);
        if seen.len() > 5 {
            peak_rate = peak_rate.max(rate);
            seen.pop_front();
        }
        eprintln!(
            "{:>6.0} s: {}/{} scans stored, {:.1} M probes sent ({:.0}/s over 10 s), {} running, {} waiting",
            started.elapsed().as_secs_f64(),
            m.stored,
            agents.len(),
            m.sent / 1e6,
            rate,
            m.running,
            m.waiting
        );
        if m.stored >= want {
            break Some(started.elapsed());
        }
        if started.elapsed() > limit {
            break None;
        }
        for s in &mut servers {
            if let Some(c) = s.child.as_mut() {
                c.check_running()?;
            }
        }
    };
    let cpu: f64 = pids
        .iter()
        .zip(&cpu_before)
        .map(|(p, b)| procs::cpu_secs(*p).unwrap_or(*b) - b)
        .sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let elapsed = started.elapsed().as_secs_f64();
    // Busy core-seconds (softirqs included: the probes' way through the
    // kernel), and of them interrupts, each as cores busy on average.
    let machine = machine_before.zip(procs::machine_cpu()).map(|(a, b)| {
        (
            (b.busy - a.busy) / elapsed / cores,
            (b.irq - a.irq) / elapsed,
        )
    });
    let totals = Totals::scrape(&servers).await?;
    let Some(took) = finished else {
        bail!(
            "the round did not end within {} s: {}/{} scans stored",
            args.limit_secs,
            totals.stored,
            agents.len()
        );
    };
    let checked = check_results(&rest, agents, &enrolled).await?;
    report(
        args, agents, took, &totals, peak_rate, cpu, machine, &checked,
    );
    if cluster.is_none() {
        let size: u64 = ["vigil.db", "vigil.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(servers[0].data.join(f)).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "| database after the round (SQLite + WAL) | {:.1} MiB |",
            size as f64 / 1048576.0
        );
    }
    drop(servers);
    drop(cluster);
    if !checked.wrong.is_empty() {
        for w in &checked.wrong {
            eprintln!("WRONG: {w}");
        }
        bail!("{} agent(s) with a wrong result", checked.wrong.len());
    }
    Ok(())
}

async fn start_servers(
    args: &FleetArgs,
    vigil: &Path,
    db: &str,
    servers: &mut [Server],
) -> Result<String> {
    let urls: Vec<String> = servers.iter().map(|s| s.agent_url.clone()).collect();
    let mut pins = Vec::new();
    for i in 0..servers.len() {
        if i > 0 {
            // One TLS identity for all (the first one's).
            let tls = servers[i].data.join("tls");
            std::fs::create_dir_all(&tls)?;
            for file in ["server.crt", "server.key"] {
                std::fs::copy(servers[0].data.join("tls").join(file), tls.join(file))?;
            }
        }
        let s = &mut servers[i];
        let agent_listen = s.agent_url.trim_start_matches("https://").to_string();
        let mut cmd = vigil_cmd(vigil);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(&s.data)
            .args([
                "--db",
                db,
                "--listen",
                &s.api,
                "--agent-listen",
                &agent_listen,
            ])
            .args([
                "--heartbeat-secs",
                &HEARTBEAT_SECS.to_string(),
                "--tick-ms",
                "1000",
            ])
            .args(["--sweep-ports", &args.ports])
            .args([
                "--scan-probes",
                "syn",
                "--scan-rate",
                &args.scan_rate.to_string(),
            ])
            .args(["--agent-url", &s.agent_url]);
        for peer in urls.iter().filter(|u| **u != s.agent_url) {
            cmd.args(["--peer-agent-url", peer]);
        }
        let mut child = Child::spawn(s.name.clone(), cmd, &s.log)?;
        let rest = Rest::new(format!("http://{}", s.api))?;
        let healthy = rest
            .wait_healthy(Duration::from_secs(60), || child.check_running())
            .await;
        s.child = Some(child);
        healthy.with_context(|| format!("{}: see {}", s.name, s.log.display()))?;
        pins.push(
            printed_pin(&s.log)
                .await
                .with_context(|| format!("{} printed no certificate pin", s.name))?,
        );
    }
    if pins.iter().any(|p| *p != pins[0]) {
        bail!("the replicas present different certificates: {pins:?}");
    }
    Ok(pins.swap_remove(0))
}

/// The servers' `/metrics`, summed.
#[derive(Debug, Default)]
struct Totals {
    stored: f64,
    duplicates: f64,
    sent: f64,
    answers: f64,
    alerts: f64,
    running: f64,
    waiting: f64,
    /// Probes sent per server.
    sent_each: Vec<f64>,
}

impl Totals {
    async fn scrape(servers: &[Server]) -> Result<Totals> {
        let mut t = Totals::default();
        for s in servers {
            let rest = Rest::new(format!("http://{}", s.api))?;
            let text = rest.page("/metrics").await?;
            let v = |series: &str| sample(&text, series).unwrap_or(0.0);
            t.stored += v(
                "vigil_scan_results_ingested_total{target=\"observed_address\",outcome=\"stored\"}",
            );
            t.duplicates +=
                v("vigil_scan_results_ingested_total{target=\"observed_address\",outcome=\"duplicate\"}");
            let sent = v("vigil_scan_probes_total{what=\"sent\"}");
            t.sent += sent;
            t.sent_each.push(sent);
            t.answers += v("vigil_scan_probes_total{what=\"answers\"}");
            t.alerts += v("vigil_alerts_raised_total{condition=\"unauthorized_open\"}");
            t.running += v("vigil_scan_engine{what=\"running\"}");
            t.waiting += v("vigil_scan_engine{what=\"waiting\"}");
        }
        Ok(t)
    }
}

/// The value of one series in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// What each agent's stored results say.
struct Checked {
    wrong: Vec<String>,
    live_ports_found: usize,
    /// Ports probed, summed over the agents' stored scans.
    probed: u64,
}

async fn check_results(
    rest: &Rest,
    agents: &[Planned],
    enrolled: &[(usize, String)],
) -> Result<Checked> {
    let mut wrong = Vec::new();
    let mut live_ports_found = 0;
    let mut probed = 0;
    for (index, id) in enrolled {
        let a = agents[*index];
        let results: serde_json::Value = rest.get(&format!("/agents/{id}/results")).await?;
        let scans: Vec<&serde_json::Value> = results
            .as_array()
            .map(|r| {
                r.iter()
                    .filter(|x| x["target"] == "observed_address")
                    .collect()
            })
            .unwrap_or_default();
        if scans.len() != 1 {
            wrong.push(format!(
                "{}: {} observed-address scans stored",
                a.addr,
                scans.len()
            ));
            continue;
        }
        probed += scans[0]["probed_count"].as_u64().unwrap_or(0);
        let open: Vec<u64> = scans[0]["ports"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["state"] == "open")
                    .filter_map(|p| p["port"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<u64> = if a.live {
            LIVE_PORTS.iter().map(|p| u64::from(*p)).collect()
        } else {
            Vec::new()
        };
        if a.live {
            live_ports_found += open.iter().filter(|p| want.contains(p)).count();
        }
        if open != want {
            wrong.push(format!("{}: open {open:?}, expected {want:?}", a.addr));
        }
    }
    Ok(Checked {
        wrong,
        live_ports_found,
        probed,
    })
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &FleetArgs,
    agents: &[Planned],
    took: Duration,
    t: &Totals,
    peak_rate: f64,
    cpu: f64,
    machine: Option<(f64, f64)>,
    checked: &Checked,
) {
    let secs = took.as_secs_f64();
    let n = agents.len() as f64;
    let nports = checked.probed as f64 / n.max(1.0);
    let live = agents.iter().filter(|a| a.live).count();
    let interval = f64::from(INTERVAL_MINUTES * 60);
    println!("# vigil-bench fleet\n");
    println!(
        "- {} agents ({} silent, {live} live), ports {} (schedule {:?}: {nports:.0} probed per scan), {} server(s) on {:?}, --scan-rate {}",
        agents.len(),
        args.silent,
        args.ports,
        args.schedule,
        args.replicas,
        args.db,
        args.scan_rate
    );
    println!(
        "- machine: {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| every agent's scan stored after | {secs:.1} s |");
    println!(
        "| probes sent (all servers) | {:.1} M ({:.2} per port) |",
        t.sent / 1e6,
        t.sent / (n * nports).max(1.0)
    );
    if args.replicas > 1 {
        let each: Vec<String> = t
            .sent_each
            .iter()
            .map(|s| format!("{:.1} M", s / 1e6))
            .collect();
        println!("| probes sent per server | {} |", each.join(", "));
    }
    println!("| mean probe rate | {:.0}/s |", t.sent / secs);
    println!("| peak probe rate (10 s) | {peak_rate:.0}/s |");
    println!("| answers | {:.0} |", t.answers);
    println!(
        "| server CPU (all servers) | {cpu:.1} s = {:.2} cores |",
        cpu / secs
    );
    if let Some((busy, irq)) = machine {
        println!(
            "| machine busy (all cores, kernel included) | {:.0} %, of which interrupts {irq:.2} cores |",
            busy * 100.0
        );
    }
    println!(
        "| live ports found open | {}/{} |",
        checked.live_ports_found,
        live * LIVE_PORTS.len()
    );
    println!("| unauthorized-port alerts raised | {:.0} |", t.alerts);
    println!("| duplicate results | {:.0} |", t.duplicates);
    println!(
        "| agents per {}-minute interval at this pace | {:.0} |",
        INTERVAL_MINUTES,
        n * interval / secs
    );
}
