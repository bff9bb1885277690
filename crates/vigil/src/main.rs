//! `vigil`: one binary for every Vigil role.

mod cmd;
mod config;
mod output;
mod sys;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
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
    // Boxed: its many options would make every command as large.
    Server(Box<cmd::server::ServerOpts>),
    /// Offline administration of a database: accounts, secrets, backup and restore.
    Admin(cmd::server::AdminArgs),
    /// Everything on this machine: server on embedded SQLite plus a local agent.
    Up(cmd::up::UpArgs),
    /// Manage a Vigil server through its REST API.
    Ctl(cmd::ctl::CtlArgs),
    /// Print a shell completion script (the packages install them).
    #[command(hide = true)]
    Completions(cmd::docs::CompletionsArgs),
    /// Write manual pages, one per command (the packages install them).
    #[command(hide = true)]
    Manpages(cmd::docs::ManpagesArgs),
}

/// Exit code for bad input (same as clap's usage errors).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = cmd::scan::rewrite_nmap_style_args(std::env::args_os());
    let parsed = match config::parse(config::with_env(Cli::command()), args) {
        Ok(parsed) => parsed,
        Err(config::ConfigError::Clap(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if let Some(effective) = parsed.print {
        print!("{effective}");
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::from_arg_matches(&parsed.matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // The Windows service has no console: its logs go to files.
    let log_dir = match &cli.command {
        Command::Agent(args) => cmd::agent::log_dir(args),
        _ => None,
    };
    init_tracing(cli.log_format, log_dir.as_deref());
    let result = match cli.command {
        Command::Scan(args) => cmd::scan::run(args),
        Command::Agent(args) => cmd::agent::run(args),
        Command::Server(opts) => cmd::server::run(*opts),
        Command::Admin(args) => cmd::server::admin(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Ctl(args) => cmd::ctl::run(args),
        Command::Completions(args) => cmd::docs::completions(Cli::command(), args),
        Command::Manpages(args) => cmd::docs::manpages(Cli::command(), args),
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

/// Log lines go to standard error, or to daily files in `log_dir` (a week
/// of them is kept). Files default to level info: nobody watches them live.
fn init_tracing(format: LogFormat, log_dir: Option<&std::path::Path>) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let default_level = if log_dir.is_some() { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let files = log_dir.and_then(|dir| match daily_log_files(dir) {
        Ok(files) => Some(files),
        Err(e) => {
            eprintln!("warning: cannot log to {}: {e}", dir.display());
            None
        }
    });
    let to_file = files.is_some();
    let writer = match files {
        Some(files) => BoxMakeWriter::new(files),
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // No colour codes in files (stderr keeps the default, which honours NO_COLOR).
    let logs = if to_file { logs.with_ansi(false) } else { logs };
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

/// `vigil.YYYY-MM-DD.log` in `dir`, a new file each day, the last 7 kept.
/// Lines are written as they come (no background writer to flush on exit).
fn daily_log_files(
    dir: &std::path::Path,
) -> Result<tracing_appender::rolling::RollingFileAppender, tracing_appender::rolling::InitError> {
    tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("vigil")
        .filename_suffix("log")
        .max_log_files(7)
        .build(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command a user can see says in one line what it does (its
    /// entry in `--help` lists and man pages).
    #[test]
    fn every_command_has_a_one_line_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let path = format!("{path} {}", sub.get_name());
                match sub.get_about().map(|a| a.to_string()) {
                    Some(about) if !about.trim().is_empty() && !about.contains('\n') => {}
                    _ => missing.push(path.clone()),
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "vigil", &mut missing);
        assert!(missing.is_empty(), "no one-line help: {missing:#?}");
    }

    #[test]
    fn the_command_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
