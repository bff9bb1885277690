//! One measured run of a tool: wall time, and the CPU time and peak
//! resident memory the kernel accounted to the process (`wait4`'s
//! `rusage`, so no `/usr/bin/time` is needed), plus — for the agent —
//! when its phases began, seen from `/proc` while it runs.

use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT or SIGTERM: the run in progress is killed and the bench
/// unwinds, so the namespaces are deleted.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Installs the SIGINT/SIGTERM handler (it only sets a flag).
pub fn watch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d`, waking early (with an error) when interrupted.
pub fn sleep(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        check_interrupted()?;
        std::thread::sleep(Duration::from_millis(100).min(until - Instant::now()));
    }
    Ok(())
}

/// What one run cost.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub wall: Duration,
    /// User and system CPU seconds of the process.
    pub user: f64,
    pub sys: f64,
    /// Peak resident set, KiB (`ru_maxrss`).
    pub max_rss_kib: u64,
    /// Busy core-seconds of the whole machine during the run (the
    /// kernel's packet work in softirq is not always charged to the
    /// process).
    pub machine_busy: f64,
    pub stdout: String,
    /// When the agent's phases began, if watched.
    pub phases: Option<Phases>,
    /// The kernel's neighbour (ARP) table during the run.
    pub arp: ArpStats,
}

impl Run {
    pub fn cpu(&self) -> f64 {
        self.user + self.sys
    }
}

/// Moments of an agent sweep as `/proc` shows them, from the start of the
/// process: the scan engine's threads (`vigil-scan-N`) appear and go;
/// then the agent waits for the neighbour table to settle (no thread, no
/// socket of its own); then name lookups hold UDP sockets (mDNS, NetBIOS,
/// DNS) until they end; then the result is printed and the process exits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub scan_start: Option<Duration>,
    pub scan_end: Option<Duration>,
    pub names_start: Option<Duration>,
    pub names_end: Option<Duration>,
}

/// The kernel's IPv4 neighbour table during a run, from
/// `/proc/net/stat/arp_cache`. The table is one for the whole machine
/// (every namespace's entries count against `gc_thresh3`), so these count
/// everything that ran at the time; the bench runs one tool at a time.
#[derive(Debug, Clone, Copy, Default)]
pub struct ArpStats {
    /// Entries when the run began (other namespaces' included).
    pub entries_before: u64,
    /// Most entries seen at once (sampled with the process).
    pub peak_entries: u64,
    /// New entries refused because the table was full ("neighbor table
    /// overflow"): the packet that needed one is dropped.
    pub table_fulls: u64,
    /// Resolutions that failed (no ARP answer after `mcast_solicit` tries).
    pub res_failed: u64,
}

/// `(entries, table_fulls, res_failed)`: entries is the table's, the
/// counters are per CPU and summed.
fn arp_counters() -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/stat/arp_cache").ok()?;
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next()?.split_whitespace().collect();
    let col = |name: &str| head.iter().position(|h| *h == name);
    let (e, f, r) = (col("entries")?, col("table_fulls")?, col("res_failed")?);
    let (mut entries, mut fulls, mut failed) = (0, 0, 0);
    for line in lines {
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|x| u64::from_str_radix(x, 16).unwrap_or(0))
            .collect();
        entries = v.get(e).copied().unwrap_or(0);
        fulls += v.get(f).copied().unwrap_or(0);
        failed += v.get(r).copied().unwrap_or(0);
    }
    Some((entries, fulls, failed))
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()));
        write!(
            f,
            "scan {}–{}s, names {}–{}s",
            t(self.scan_start),
            t(self.scan_end),
            t(self.names_start),
            t(self.names_end)
        )
    }
}

/// How often `/proc` is looked at (and the process polled for its exit).
const POLL: Duration = Duration::from_millis(5);

/// Runs `cmd` to its end (killed after `limit`), reading its output on
/// threads; `watch` samples the agent's phases.
pub fn run(mut cmd: Command, limit: Duration, watch: bool) -> Result<Run> {
    check_interrupted()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let cpu_before = crate::agents::procs::machine_cpu();
    let arp_before = arp_counters().unwrap_or_default();
    let mut peak_entries = arp_before.0;
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = libc::pid_t::try_from(child.id())?;
    let stdout = child.stdout.take().context("stdout")?;
    let stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut phases = Phases::default();
    let mut killed = None;
    let (status, usage) = loop {
        if let Some(done) = reap(pid, libc::WNOHANG)? {
            break done;
        }
        if watch {
            sample(pid, started.elapsed(), &mut phases);
        }
        if let Some((entries, _, _)) = arp_counters() {
            peak_entries = peak_entries.max(entries);
        }
        if started.elapsed() > limit || check_interrupted().is_err() {
            // SAFETY: our own child, not yet reaped (reap returned None).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = Some(started.elapsed());
            break reap(pid, 0)?.context("the killed process was not reaped")?;
        }
        std::thread::sleep(POLL);
    };
    let wall = started.elapsed();
    let machine_busy = match (cpu_before, crate::agents::procs::machine_cpu()) {
        (Some(a), Some(b)) => b.busy - a.busy,
        _ => 0.0,
    };
    let arp_after = arp_counters().unwrap_or_default();
    let arp = ArpStats {
        entries_before: arp_before.0,
        peak_entries,
        table_fulls: arp_after.1.saturating_sub(arp_before.1),
        res_failed: arp_after.2.saturating_sub(arp_before.2),
    };
    // Reaped above: std's handle must not wait (or kill) again.
    drop(child);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    check_interrupted()?;
    if let Some(after) = killed {
        bail!("killed at the time limit after {:.1}s", after.as_secs_f64());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("exit status {status}: {}", stderr.trim());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        wall,
        user: secs(usage.ru_utime),
        sys: secs(usage.ru_stime),
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        machine_busy,
        stdout,
        phases: watch.then_some(phases),
        arp,
    })
}

/// `wait4(pid, flags)`: the exit status and resource usage once the child
/// has ended, `None` while it runs (with `WNOHANG`).
fn reap(pid: libc::pid_t, flags: libc::c_int) -> Result<Option<(libc::c_int, libc::rusage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 writes only the two out-params.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: as above; pid is our own child.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if r == pid {
            return Ok(Some((status, usage)));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
}

/// One look at the agent process: are scan threads alive, does it hold
/// UDP sockets (its network namespace has no other process)?
fn sample(pid: libc::pid_t, now: Duration, p: &mut Phases) {
    let scanning = scan_threads(pid);
    if scanning && p.scan_start.is_none() {
        p.scan_start = Some(now);
    }
    if p.scan_start.is_some() && p.scan_end.is_none() && !scanning {
        p.scan_end = Some(now);
    }
    if p.scan_end.is_none() {
        return;
    }
    let udp = udp_sockets(pid);
    if udp && p.names_start.is_none() {
        p.names_start = Some(now);
    }
    if p.names_start.is_some() && p.names_end.is_none() && !udp {
        p.names_end = Some(now);
    }
}

fn scan_threads(pid: libc::pid_t) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("vigil-scan"))
    })
}

fn udp_sockets(pid: libc::pid_t) -> bool {
    ["udp", "udp6"].iter().any(|t| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).is_ok_and(|t| t.lines().count() > 1)
    })
}
