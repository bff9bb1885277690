//! `vigil`: one binary for every Vigil role.

mod cmd;
mod output;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "vigil", version, about = "Self-hosted security monitoring")]
struct Cli {
    /// Log lines on standard error: text for people, or JSON (one object
    /// per line) for log collectors. The level is set with VIGIL_LOG.
    #[arg(long, global = true, value_enum, env = "VIGIL_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// TCP connect scan: which ports of these targets are open, closed or filtered.
    Scan(cmd::scan::ScanArgs),
    /// The agent: enroll with a server, then run (heartbeat, scans, identify listener).
    Agent(cmd::agent::AgentArgs),
    /// Run a Vigil server (REST API, agent API, scheduler, notifications).
    Server(cmd::server::ServerOpts),
    /// Offline administration of a server's database (create accounts).
    Admin(cmd::server::AdminArgs),
    /// Everything on this machine: server on embedded SQLite plus a local agent.
    Up(cmd::up::UpArgs),
    /// Manage a Vigil server through its REST API.
    Ctl(cmd::ctl::CtlArgs),
}

/// Exit code for bad input (same as clap's usage errors).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = cmd::scan::rewrite_nmap_style_args(std::env::args_os());
    let cli = Cli::parse_from(args);
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Scan(args) => cmd::scan::run(args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Server(opts) => cmd::server::run(opts),
        Command::Admin(args) => cmd::server::admin(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Ctl(args) => cmd::ctl::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<cmd::UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // {"timestamp":…,"level":"INFO","message":…,<fields>,"target":…}
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
