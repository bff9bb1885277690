//! `vigil agent service install|uninstall|start|stop|status`: the agent as
//! a Windows service, and the hidden `service-run` the service starts.
//!
//! Windows has no systemd: a program that should run from boot to shutdown
//! without anyone logged in is a service, started by the service control
//! manager (SCM) with a command line fixed at install time:
//!
//! ```text
//! "C:\…\vigil.exe" agent --state-dir "C:\ProgramData\Vigil\agent" service-run --listen 0.0.0.0:47760
//! ```
//!
//! `service-run` hands the process to the SCM and runs the same code as
//! `vigil agent run` until the SCM says Stop. A service has no console, so
//! its logs go to daily files in `<state-dir>\logs` (see `main.rs`).
//! Everything that talks to the SCM is in `sys`; on Linux each subcommand
//! is a usage error pointing at the systemd unit.

use super::agent::{run_enrolled, Ended, RunOpts};
use super::usage;
use crate::sys::service;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vigil_agent::identity::Identity;
use vigil_proto::identify::DEFAULT_PORT;

/// The service's name (`sc.exe query VigilAgent`).
pub const NAME: &str = "VigilAgent";
const DISPLAY_NAME: &str = "Vigil agent";
const DESCRIPTION: &str =
    "Vigil security monitoring agent: heartbeats, scan tasks, identify listener.";

/// The default identify listener, as for `vigil agent run`.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Install the VigilAgent service (starts with Windows, runs as
    /// LocalSystem) for this state directory. Enroll first.
    Install {
        /// Address of the identify listener, as for `vigil agent run`.
        #[arg(long, default_value_t = default_listen())]
        listen: SocketAddr,
    },
    /// Stop the service if it runs, then remove it.
    Uninstall,
    /// Start the service and wait until it runs.
    Start,
    /// Stop the service and wait until it stopped.
    Stop,
    /// The service's state and command line (exit code 1: not installed).
    Status,
}

pub fn run(state_dir: &Path, command: ServiceCommand) -> Result<ExitCode> {
    service::available()?;
    match command {
        ServiceCommand::Install { listen } => install(state_dir, listen)?,
        ServiceCommand::Uninstall => {
            service::uninstall(NAME)?;
            println!("service {NAME} removed");
        }
        ServiceCommand::Start => {
            service::start(NAME)?;
            println!("service {NAME} running");
        }
        ServiceCommand::Stop => {
            service::stop(NAME)?;
            println!("service {NAME} stopped");
        }
        ServiceCommand::Status => match service::status(NAME)? {
            Some(text) => println!("{text}"),
            None => {
                println!("service {NAME} is not installed");
                return Ok(ExitCode::from(1));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn install(state_dir: &Path, listen: SocketAddr) -> Result<()> {
    // The service starts in System32: every path it gets must be absolute.
    let state_dir = std::path::absolute(state_dir)
        .with_context(|| format!("state directory {}", state_dir.display()))?;
    if Identity::load(&state_dir)?.is_none() {
        return Err(usage(format!(
            "this agent is not enrolled (no identity in {}): run `vigil agent --state-dir {} \
             enroll …` first, then install the service",
            state_dir.display(),
            state_dir.display()
        )));
    }
    let exe = std::env::current_exe().context("finding this program's path")?;
    let command = service_command(&exe, &state_dir, listen);
    service::install(NAME, DISPLAY_NAME, DESCRIPTION, &command)?;
    println!("service {NAME} ({DISPLAY_NAME}) installed, automatic start");
    println!("  runs: {}", shown(&command));
    println!("  logs: {}", log_dir(&state_dir).display());
    println!("start it now with `vigil agent service start`");
    Ok(())
}

/// What the SCM runs: this binary, told where the state is.
pub(crate) fn service_command(exe: &Path, state_dir: &Path, listen: SocketAddr) -> Vec<OsString> {
    vec![
        exe.into(),
        "agent".into(),
        "--state-dir".into(),
        state_dir.into(),
        "service-run".into(),
        "--listen".into(),
        listen.to_string().into(),
    ]
}

/// The command line for people to read (the SCM quotes it the same way).
fn shown(command: &[OsString]) -> String {
    let words: Vec<String> = command
        .iter()
        .map(|w| {
            let w = w.to_string_lossy();
            if w.is_empty() || w.contains([' ', '\t', '"']) {
                format!("\"{}\"", w.replace('"', "\\\""))
            } else {
                w.into_owned()
            }
        })
        .collect();
    words.join(" ")
}

/// Where the service writes its logs.
pub fn log_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("logs")
}

/// `vigil agent service-run`: called by the SCM only. Runs the agent on
/// its own runtime until the SCM stops the service.
pub fn service_run(state_dir: PathBuf, listen: SocketAddr) -> Result<ExitCode> {
    service::run(
        NAME,
        Box::new(move |shutdown| {
            let runtime = super::runtime()?;
            let opts = RunOpts {
                listen,
                updates: Some(super::agent_update::DEFAULT_TRIAL),
            };
            match runtime.block_on(run_enrolled(&state_dir, opts, shutdown))? {
                Ended::Stopped => Ok(()),
                // The service control manager restarts a service that
                // failed (see sys::service::install): from the new binary.
                Ended::Updated(exe) => Err(anyhow::anyhow!(
                    "updated to {}: restarting the service",
                    exe.display()
                )),
            }
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_runs_the_agent_with_its_state_dir_and_listener() {
        let command = service_command(
            Path::new("/opt/vigil/vigil"),
            Path::new("/var/lib/vigil agent"),
            "127.0.0.1:47760".parse().expect("addr"),
        );
        assert_eq!(
            shown(&command),
            "/opt/vigil/vigil agent --state-dir \"/var/lib/vigil agent\" service-run --listen 127.0.0.1:47760"
        );
    }
}
