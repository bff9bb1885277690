//! What process attribution costs the agent (issue 17 point 5): one pass of
//! `vigil_agent::listeners::attribute` — read `/proc/net/tcp{,6}`, walk
//! every `/proc/PID/fd/*` link once for the socket inode → pid map, look
//! each owner up — on a host with many sockets. This process opens them
//! itself, all on 127.0.0.1: listeners, and connected pairs (a client and
//! the accepted end), so the fd walk and the TCP tables hold them all.
//! Nothing is scanned.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ListenersArgs {
    /// Sockets to open: a fifth listening, the rest in connected pairs.
    #[arg(long, default_value_t = 10_000)]
    sockets: usize,
    /// Attribution passes per case (the median is reported).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Open ports attributed per pass (what a scan found open).
    #[arg(long, default_value_t = 20)]
    open: usize,
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets `VmHWM` to the current RSS (Linux 4.0+).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn raise_nofile(want: u64) -> Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        lim.rlim_max = lim.rlim_max.max(want);
        lim.rlim_cur = want.max(lim.rlim_cur);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            bail!(
                "setrlimit to {want} open files: {} (run as root)",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

struct Case {
    name: String,
    times: Vec<Duration>,
    /// Peak RSS added by a pass, KiB (max over the passes).
    added_kib: u64,
    attributed: usize,
}

fn measure(name: String, ports: &[u16], runs: usize) -> Result<Case> {
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut times = Vec::new();
    let mut added_kib = 0;
    let mut attributed = 0;
    // One pass first, unmeasured: the page cache of /proc and the allocator warm up.
    vigil_agent::listeners::attribute(lo, ports)?;
    for _ in 0..runs {
        reset_peak();
        let (before, _) = memory();
        let start = Instant::now();
        let found = vigil_agent::listeners::attribute(lo, ports)?;
        times.push(start.elapsed());
        let (_, peak) = memory();
        added_kib = added_kib.max(peak.saturating_sub(before));
        attributed = found.len();
    }
    times.sort();
    Ok(Case {
        name,
        times,
        added_kib,
        attributed,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(args: ListenersArgs) -> Result<()> {
    let listeners = (args.sockets / 5).max(1);
    let pairs = (args.sockets - listeners) / 2;
    raise_nofile((args.sockets + 1024) as u64)?;
    let open = args.open.min(listeners);
    let runs = args.runs.max(1);
    let processes = std::fs::read_dir("/proc")?
        .filter(|e| {
            e.as_ref()
                .ok()
                .and_then(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .is_some()
        })
        .count();
    println!("Process attribution, {runs} passes per case, {processes} processes on this host");
    let (rss0, _) = memory();

    // Baseline: only this host's own sockets, plus the ports to attribute.
    let mut held: Vec<TcpListener> = Vec::new();
    for _ in 0..open {
        held.push(TcpListener::bind("127.0.0.1:0").context("bind")?);
    }
    let ports: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    let mut cases = vec![measure(
        format!("{open} open ports, host's own sockets only"),
        &ports,
        runs,
    )?];

    // The host with `sockets` more.
    let started = Instant::now();
    while held.len() < listeners {
        held.push(TcpListener::bind("127.0.0.1:0").context("bind")?);
    }
    let target = held[0].local_addr()?;
    let mut conns: Vec<TcpStream> = Vec::with_capacity(pairs * 2);
    for _ in 0..pairs {
        let client = TcpStream::connect(target).context("connect")?;
        let (server, _) = held[0].accept().context("accept")?;
        conns.push(client);
        conns.push(server);
    }
    let total = held.len() + conns.len();
    let (rss1, _) = memory();
    println!(
        "opened {total} sockets on 127.0.0.1 ({} listening, {} connected) in {:.1} s; RSS {} → {} KiB",
        held.len(),
        conns.len(),
        started.elapsed().as_secs_f64(),
        rss0,
        rss1
    );
    cases.push(measure(
        format!("{open} open ports, {total} more sockets"),
        &ports,
        runs,
    )?);
    // The part of a pass that is the kernel printing its TCP tables.
    let mut tables = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let _ = std::hint::black_box(std::fs::read_to_string(file));
        }
        tables.push(start.elapsed());
    }
    tables.sort();
    println!(
        "reading /proc/net/tcp and tcp6 alone: median {} (of the pass below)",
        ms(tables[tables.len() / 2])
    );
    let all: Vec<u16> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<_>>()?;
    cases.push(measure(
        format!(
            "all {} listeners attributed, {total} more sockets",
            all.len()
        ),
        &all,
        runs,
    )?);

    // The peers, on the same sockets: iproute2's `ss -p` and `lsof`, which
    // name the processes of every listening TCP socket (their time includes
    // starting the process, ≈ 1 ms).
    let vigil_all = cases[cases.len() - 1].times[cases[cases.len() - 1].times.len() / 2];
    let mut peers = Vec::new();
    for (name, cmd, argv) in [
        ("ss -Htlnp", "ss", &["-H", "-t", "-l", "-n", "-p"][..]),
        (
            "lsof -nP -iTCP -sTCP:LISTEN",
            "lsof",
            &["-nP", "-iTCP", "-sTCP:LISTEN"][..],
        ),
    ] {
        if let Some(median) = peer(cmd, argv, runs) {
            peers.push((name, median));
        }
    }

    println!();
    println!("| case | median | min | max | attributed | peak RSS added |");
    println!("|---|---|---|---|---|---|");
    for c in &cases {
        println!(
            "| {} | **{}** | {} | {} | {} | {} KiB |",
            c.name,
            ms(c.times[c.times.len() / 2]),
            ms(c.times[0]),
            ms(c.times[c.times.len() - 1]),
            c.attributed,
            c.added_kib
        );
    }
    if !peers.is_empty() {
        println!();
        println!(
            "| all {} listeners, {total} more sockets | median | ratio to vigil |",
            all.len()
        );
        println!("|---|---|---|");
        println!(
            "| vigil (`listeners::attribute`) | **{}** | 1.00 |",
            ms(vigil_all)
        );
        for (name, median) in &peers {
            println!(
                "| `{name}` | {} | {:.2} |",
                ms(*median),
                median.as_secs_f64() / vigil_all.as_secs_f64().max(1e-9)
            );
        }
    }
    drop(conns);
    drop(held);
    Ok(())
}

/// The median time of `runs` runs of `cmd argv` (output discarded), or
/// `None` when it is not installed or fails.
fn peer(cmd: &str, argv: &[&str], runs: usize) -> Option<Duration> {
    let run = || {
        std::process::Command::new(cmd)
            .args(argv)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
    };
    run()?; // warm-up, and is it there at all
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed());
    }
    times.sort();
    Some(times[times.len() / 2])
}
