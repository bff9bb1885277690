//! `vigil scan`: parse the command line, run the engine, print the results.

use super::usage;
use crate::output::{self, Report};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use vigil_core::{PortList, TargetSpec};
use vigil_scan::services::ServiceNames;
use vigil_scan::{
    BannerConfig, Family, Method, ScanConfig, ScanError, ScanSummary, Scanner, TargetSet,
    TimingConfig,
};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  vigil scan 127.0.0.1 -p 22,80,443\n  vigil scan 198.51.100.0/24 --top-ports 100 --json\n  vigil scan localhost -p - -oX scan.xml"
)]
pub struct ScanArgs {
    /// Addresses, CIDR blocks (198.51.100.0/24, 2001:db8::/112), dash ranges
    /// (198.51.100.10-198.51.100.99) or hostnames.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,

    /// Ports: 22,80,443 or 1000-2000 or - (all 65535). Default: the 1000 most common.
    #[arg(
        short = 'p',
        long = "ports",
        value_name = "PORTS",
        conflicts_with = "top_ports"
    )]
    ports: Option<String>,

    /// Scan the N most common ports (ranked by nmap's frequency table when installed).
    #[arg(long = "top-ports", value_name = "N")]
    top_ports: Option<usize>,

    /// Only IPv4 addresses of hostnames.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,

    /// Only IPv6 addresses of hostnames.
    #[arg(short = '6')]
    ipv6: bool,

    /// SYN probes on raw sockets (Linux, root or CAP_NET_RAW): half-open,
    /// no socket per port. Default: SYN when permitted and no --banner,
    /// else connect. Alias: -sS.
    #[arg(long, conflicts_with = "connect")]
    syn: bool,

    /// Full TCP connects (any platform, no privilege). Alias: -sT.
    #[arg(long)]
    connect: bool,

    /// Connects in flight at once (default: sized from the open-file limit).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,

    /// At most N probes per second (retries included). SYN probes default
    /// to 100000.
    #[arg(long = "max-rate", value_name = "N")]
    max_rate: Option<f64>,

    /// nmap's timing templates: -T0 paranoid … -T5 insane. Each sets the
    /// timeouts, retries and (for -T0 to -T2) the probe rate as nmap does;
    /// the options below override it. Without -T: close to -T4, with a
    /// 1000 ms initial timeout.
    #[arg(short = 'T', value_name = "0-5", value_parser = clap::value_parser!(u8).range(0..=5))]
    template: Option<u8>,

    /// Retries for an unanswered probe, at least (loss raises it up to
    /// --max-retries). Default 2 (1 with -T5).
    #[arg(long = "min-retries", value_name = "N")]
    min_retries: Option<u8>,

    /// Retries for an unanswered probe, at most. Default 6.
    #[arg(long = "max-retries", value_name = "N")]
    max_retries: Option<u8>,

    /// Probe timeout before any RTT is measured, in ms. Default 1000.
    #[arg(long = "initial-timeout", value_name = "MS")]
    initial_timeout: Option<u64>,

    /// Lower bound of the adaptive timeout, in ms. Default 100.
    #[arg(long = "min-timeout", value_name = "MS")]
    min_timeout: Option<u64>,

    /// Upper bound of the adaptive timeout, in ms. Default 3000.
    #[arg(long = "max-timeout", value_name = "MS")]
    max_timeout: Option<u64>,

    /// Read what each open service sends first (bounded by --banner-timeout and --banner-bytes).
    #[arg(long)]
    banner: bool,

    #[arg(long = "banner-timeout", value_name = "MS", default_value_t = 1000)]
    banner_timeout: u64,

    #[arg(long = "banner-bytes", value_name = "N", default_value_t = 256)]
    banner_bytes: usize,

    /// One JSON object per line.
    #[arg(long, conflicts_with = "csv")]
    json: bool,

    /// CSV with a header row.
    #[arg(long)]
    csv: bool,

    /// Also print closed, filtered and unreachable ports.
    #[arg(long)]
    all: bool,

    /// Also write nmap-compatible XML to FILE ('-' = stdout). Alias: -oX FILE.
    #[arg(long = "xml", value_name = "FILE")]
    xml: Option<PathBuf>,

    /// Seed of the probe order (for reproducing a run).
    #[arg(long, hide = true)]
    seed: Option<u64>,

    /// Never draw a progress bar.
    #[arg(long = "no-progress")]
    no_progress: bool,
}

/// Accepts nmap's `-oX FILE`, `-sS` and `-sT` spellings by rewriting them
/// to `--xml FILE`, `--syn` and `--connect`.
pub fn rewrite_nmap_style_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| {
        let long = match a.to_str() {
            Some("-oX") => "--xml",
            Some("-sS") => "--syn",
            Some("-sT") => "--connect",
            _ => return a,
        };
        OsString::from(long)
    })
    .collect()
}

pub fn run(args: ScanArgs) -> Result<ExitCode> {
    let specs = args
        .targets
        .iter()
        .map(|t| t.parse::<TargetSpec>().map_err(|e| usage(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    let ports = port_list(&args)?;
    let cfg = scan_config(&args)?;
    let family = if args.ipv4 {
        Family::V4
    } else if args.ipv6 {
        Family::V6
    } else {
        Family::Any
    };
    // The engine probes on its own threads; this one only collects results.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(scan(specs, family, ports, cfg, &args))?;
    let services = ServiceNames::load();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        output::json::write(&mut out, &report, args.all)?;
    } else if args.csv {
        output::csv::write(&mut out, &report, &services, args.all)?;
    } else if args.xml.as_deref() != Some(std::path::Path::new("-")) {
        output::table::write(&mut out, &report, &services, args.all, args.banner)?;
    }
    if let Some(path) = &args.xml {
        let command_line = std::env::args().collect::<Vec<_>>().join(" ");
        if path.as_os_str() == "-" {
            output::xml::write(&mut out, &report, &services, &command_line)?;
        } else {
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot write XML to {}", path.display()))?,
            );
            output::xml::write(&mut file, &report, &services, &command_line)?;
        }
    }
    if !report.complete {
        // Interrupted (ctrl-c): what was found is printed, but the exit code
        // must not claim a full scan.
        eprintln!(
            "scan incomplete: {} of {} probes finished",
            report.results.len(),
            report.targets.len() * report.ports.len() as u64
        );
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

fn port_list(args: &ScanArgs) -> Result<PortList> {
    if let Some(spec) = &args.ports {
        return PortList::parse(spec).map_err(|e| usage(e.to_string()));
    }
    let (n, explicit) = match args.top_ports {
        Some(0) => return Err(usage("--top-ports must be at least 1")),
        Some(n) => (n, true),
        None => (1000, false),
    };
    let ranked = vigil_scan::services::top_ports(n);
    if explicit && ranked.len() < n && n <= 65535 {
        return Err(usage(format!(
            "--top-ports {n}: only {} ranked ports are known (install nmap's nmap-services table for more, or use -p)",
            ranked.len()
        )));
    }
    Ok(PortList::from_ports(ranked))
}

/// Timing knobs and probe rate of nmap's `-T` templates (its documented
/// values: initial/min/max RTT timeout, max retries, and the scan delay of
/// -T0 to -T2 as a rate). nmap gives a port no second retry until one has
/// been answered, so -T5's floor is one retry. `None`: Vigil's own default.
fn template(t: Option<u8>) -> (TimingConfig, Option<f64>) {
    let ms = Duration::from_millis;
    let ours = TimingConfig::default();
    let knobs = |initial, min, max, min_retries, max_retries| TimingConfig {
        initial_timeout: ms(initial),
        min_timeout: ms(min),
        max_timeout: ms(max),
        min_retries,
        max_retries,
    };
    match t {
        None => (ours, None),
        Some(0) => (knobs(300_000, 100, 300_000, 2, 10), Some(1.0 / 300.0)),
        Some(1) => (knobs(15_000, 100, 15_000, 2, 10), Some(1.0 / 15.0)),
        Some(2) => (knobs(1000, 100, 10_000, 2, 10), Some(2.5)),
        Some(3) => (knobs(1000, 100, 10_000, 2, 10), None),
        Some(4) => (knobs(500, 100, 1250, 2, 6), None),
        Some(_) => (knobs(250, 50, 300, 1, 2), None),
    }
}

fn scan_config(args: &ScanArgs) -> Result<ScanConfig> {
    let (base, template_rate) = template(args.template);
    let timing = TimingConfig {
        initial_timeout: args
            .initial_timeout
            .map_or(base.initial_timeout, Duration::from_millis),
        min_timeout: args
            .min_timeout
            .map_or(base.min_timeout, Duration::from_millis),
        max_timeout: args
            .max_timeout
            .map_or(base.max_timeout, Duration::from_millis),
        min_retries: args.min_retries.unwrap_or(base.min_retries),
        max_retries: args.max_retries.unwrap_or(base.max_retries),
    };
    if timing.min_retries > timing.max_retries {
        return Err(usage("--min-retries must not exceed --max-retries"));
    }
    if timing.min_timeout.is_zero() || timing.min_timeout > timing.max_timeout {
        return Err(usage(
            "timeouts must satisfy 0 < --min-timeout ≤ --max-timeout",
        ));
    }
    if timing.initial_timeout.is_zero() {
        return Err(usage("--initial-timeout must be at least 1 ms"));
    }
    if args.banner_bytes == 0 || args.banner_bytes > 65536 {
        return Err(usage("--banner-bytes must be between 1 and 65536"));
    }
    if let Some(rate) = args.max_rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(usage(format!(
                "--max-rate must be a positive number, got {rate}"
            )));
        }
    }
    if args.concurrency == Some(0) {
        return Err(usage("--concurrency must be at least 1"));
    }
    let method = if args.syn {
        Method::Syn
    } else if args.connect {
        Method::Connect
    } else {
        Method::Auto
    };
    Ok(ScanConfig {
        method,
        concurrency: args.concurrency,
        max_rate: args.max_rate.or(template_rate),
        timing,
        banner: args.banner.then_some(BannerConfig {
            timeout: Duration::from_millis(args.banner_timeout),
            max_bytes: args.banner_bytes,
        }),
        seed: args.seed,
        permits: None,
        service: None,
    })
}

async fn scan(
    specs: Vec<TargetSpec>,
    family: Family,
    ports: PortList,
    cfg: ScanConfig,
    args: &ScanArgs,
) -> Result<Report> {
    let targets = TargetSet::resolve(&specs, family)
        .await
        .map_err(|e| match e {
            ScanError::Resolve { .. }
            | ScanError::NoAddress { .. }
            | ScanError::TooManyHosts { .. }
            | ScanError::WrongFamily { .. } => usage(e.to_string()),
            other => anyhow::Error::new(other),
        })?;
    let scanner = Scanner::new(cfg).map_err(|e| usage(e.to_string()))?;
    let started = SystemTime::now();
    let clock = Instant::now();
    let mut scan = scanner.start(targets.clone(), ports.clone())?;
    let progress = progress_bar(scan.total(), args.no_progress);
    let interrupt = scan.cancel_token();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.cancel();
        }
    });
    let mut results = Vec::with_capacity(scan.total().min(1 << 20) as usize);
    let mut summary = ScanSummary::default();
    while let Some(r) = scan.next().await {
        summary.add(&r);
        progress.inc(1);
        results.push(r);
    }
    progress.finish_and_clear();
    let complete = results.len() as u64 == scan.total();
    results.sort_by_key(|r| (r.addr, r.port));
    let host_times = targets
        .iter()
        .filter_map(|a| {
            scan.host_rtt(a)
                .map(|rtt| (a, (rtt.0, rtt.1, scan.host_timeout(a))))
        })
        .collect();
    Ok(Report {
        targets,
        ports,
        results,
        summary,
        started,
        elapsed: clock.elapsed(),
        complete,
        host_times,
        method: scanner.method(),
    })
}

fn progress_bar(total: u64, disabled: bool) -> ProgressBar {
    if disabled || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} probes ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_templates_follow_nmap_and_options_override_them() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            scan: ScanArgs,
        }
        let cfg = |extra: &[&str]| {
            let mut argv = vec!["vigil", "198.51.100.1"];
            argv.extend_from_slice(extra);
            scan_config(&Cli::parse_from(argv).scan).expect("valid")
        };
        let ours = cfg(&[]);
        assert_eq!(ours.timing, TimingConfig::default());
        assert_eq!(ours.max_rate, None);
        let t5 = cfg(&["-T5"]);
        assert_eq!(t5.timing.initial_timeout, Duration::from_millis(250));
        assert_eq!(t5.timing.max_timeout, Duration::from_millis(300));
        assert_eq!((t5.timing.min_retries, t5.timing.max_retries), (1, 2));
        let t4 = cfg(&["-T", "4", "--max-retries", "3", "--initial-timeout", "700"]);
        assert_eq!(t4.timing.max_timeout, Duration::from_millis(1250));
        assert_eq!(t4.timing.max_retries, 3, "an option beats the template");
        assert_eq!(t4.timing.initial_timeout, Duration::from_millis(700));
        assert_eq!(cfg(&["-T0"]).max_rate, Some(1.0 / 300.0));
        assert_eq!(cfg(&["-T2", "--max-rate", "9"]).max_rate, Some(9.0));
        assert!(Cli::try_parse_from(["vigil", "x", "-T6"]).is_err());
        let bad = Cli::parse_from(["vigil", "x", "-T5", "--min-retries", "3"]);
        assert!(scan_config(&bad.scan).is_err(), "3 > -T5's 2 retries");
    }

    #[test]
    fn rewrites_only_the_exact_nmap_flag() {
        let args = [
            "vigil", "scan", "-oX", "f.xml", "-p", "22", "-sS", "-sT", "-sSV",
        ]
        .map(OsString::from);
        let out = rewrite_nmap_style_args(args.into_iter());
        assert_eq!(out[2], "--xml");
        assert_eq!(out[4], "-p");
        assert_eq!(
            (&*out[6], &*out[7], &*out[8]),
            ("--syn".as_ref(), "--connect".as_ref(), "-sSV".as_ref())
        );
    }
}
