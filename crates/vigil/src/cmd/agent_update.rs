//! Self-update of `vigil agent run` (the checks and the file swap are in
//! `vigil_agent::update`): this module owns the processes.
//!
//! The running agent stays in charge while the new build is on trial: it
//! installs the new binary, starts it as a child with
//! [`update::TRIAL_ENV`] set, and waits. The child heartbeats as a probe
//! (the server gives it no work) and, once the server answered, creates the
//! trial file and exits. Then the parent hands over: it re-executes itself
//! from the new binary (same process id, so a service manager sees no
//! change). If the child exits first, or the trial period (a minute) ends,
//! the parent kills it, puts the old binary back and carries on; that
//! version is remembered as failed and reported to the server.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;
use vigil_agent::failover::Servers;
use vigil_agent::identity::Identity;
use vigil_agent::runner::{RunEnd, Runner};
use vigil_agent::spool::{Spool, DEFAULT_CAPACITY};
use vigil_agent::update::{self, State, UpdateError};
use vigil_proto::agent::{UpdateOffer, UpdateOutcome, UpdateReport};

/// How long a new build has to reach the server, unless told otherwise.
pub const DEFAULT_TRIAL: Duration = Duration::from_secs(60);

/// What became of an offer.
pub(crate) enum Applied {
    /// The new build reached the server from `exe`: hand over to it.
    HandOver(PathBuf),
    /// Not installed (or rolled back): this build carries on.
    Carry,
}

/// Downloads, checks and installs `offer`, and runs it on trial.
pub(crate) async fn apply(
    state_dir: &Path,
    id: &Identity,
    state: &mut State,
    offer: &UpdateOffer,
    listen: SocketAddr,
    trial: Duration,
    shutdown: &watch::Receiver<bool>,
) -> Applied {
    let version = offer.version.clone();
    match install(state_dir, id, state, offer).await {
        Ok(installed) => {
            let outcome =
                run_trial(&installed.exe, state_dir, &version, listen, trial, shutdown).await;
            match outcome {
                Ok(()) => {
                    tracing::info!(%version, "the new agent build reached the server; handing over");
                    state.report = None;
                    save(state, state_dir);
                    return Applied::HandOver(installed.exe);
                }
                Err(why) => {
                    tracing::error!(%version, %why, "the new agent build failed its trial; putting the old one back");
                    let why = match update::roll_back(&installed) {
                        Ok(()) => why,
                        Err(e) => format!("{why}; and the old binary could not be put back: {e}"),
                    };
                    if !*shutdown.borrow() {
                        state.fail(&version, &why);
                    }
                }
            }
        }
        // A network error: the next heartbeat offers it again.
        Err(Failure::Retry(why)) => {
            tracing::warn!(%version, %why, "cannot download the agent build now; trying later");
        }
        Err(Failure::Refused(e)) => {
            tracing::error!(%version, error = %e, "agent build refused");
            state.fail(&version, &e.to_string());
        }
    }
    save(state, state_dir);
    Applied::Carry
}

enum Failure {
    Retry(String),
    Refused(UpdateError),
}

/// Steps 1–3: download beside the binary, check, replace.
async fn install(
    state_dir: &Path,
    id: &Identity,
    state: &mut State,
    offer: &UpdateOffer,
) -> Result<update::Installed, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Refused(UpdateError::Io(format!("where is this binary? {e}"))))?;
    update::replaceable(&exe).map_err(Failure::Refused)?;
    state.report = Some(UpdateReport {
        version: offer.version.clone(),
        outcome: UpdateOutcome::Installing,
        detail: String::new(),
    });
    save(state, state_dir);
    let servers = Servers::new(id.clone()).map_err(|e| Failure::Retry(e.to_string()))?;
    let download = update::download_path(&exe);
    tracing::info!(version = %offer.version, path = %offer.path, "downloading the agent build");
    let got = servers
        .client()
        .download(&offer.path, &download, update::MAX_DOWNLOAD)
        .await;
    let (sha256, size) = match got {
        Ok(got) => got,
        Err(e) => {
            let _ = std::fs::remove_file(&download);
            return Err(if e.is_transient() {
                Failure::Retry(e.to_string())
            } else {
                Failure::Refused(UpdateError::Io(format!("download: {e}")))
            });
        }
    };
    if let Err(e) = update::check(offer, state.key.as_deref(), &sha256, size) {
        let _ = std::fs::remove_file(&download);
        return Err(Failure::Refused(e));
    }
    update::install(&download, &exe).map_err(|e| {
        let _ = std::fs::remove_file(&download);
        Failure::Refused(e)
    })
}

/// Step 4: the new build as a child on trial; `Err` says why it failed.
async fn run_trial(
    exe: &Path,
    state_dir: &Path,
    version: &str,
    listen: SocketAddr,
    trial: Duration,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), String> {
    let reached = state_dir.join(format!("update-trial-{version}"));
    let _ = std::fs::remove_file(&reached);
    let mut child = std::process::Command::new(exe)
        .arg("agent")
        .arg("--state-dir")
        .arg(state_dir)
        .arg("run")
        .arg("--listen")
        .arg(listen.to_string())
        .env(update::TRIAL_ENV, &reached)
        .spawn()
        .map_err(|e| format!("the new build does not start: {e}"))?;
    let deadline = tokio::time::Instant::now() + trial;
    let outcome = loop {
        if reached.exists() {
            break Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) if !reached.exists() => {
                break Err(format!(
                    "the new build exited ({status}) before reaching the server"
                ))
            }
            Ok(_) => {}
            Err(e) => break Err(format!("cannot watch the new build: {e}")),
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(format!(
                "the new build did not reach the server within {} s",
                trial.as_secs()
            ));
        }
        if *shutdown.borrow() {
            break Err("the agent was stopped during the trial".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // It exits by itself once it has reached the server; otherwise (or
    // if it lingers) it is stopped.
    let lingers = tokio::time::Instant::now() + Duration::from_secs(10);
    while outcome.is_ok() && tokio::time::Instant::now() < lingers {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&reached);
    outcome
}

fn save(state: &State, state_dir: &Path) {
    if let Err(e) = state.save(state_dir) {
        tracing::warn!(error = %e, "cannot store the update state");
    }
}

/// The new build's side of the trial (`vigil agent run` with
/// [`update::TRIAL_ENV`] set): heartbeat until the server answers, then
/// create the trial file and exit.
pub(crate) async fn trial_run(
    state_dir: &Path,
    reached: &Path,
    shutdown: watch::Receiver<bool>,
) -> Result<ExitCode> {
    let id = Identity::load(state_dir)?.context("on trial without an identity")?;
    let servers = Servers::new(id.clone()).context("stored identity")?;
    let server_addr = super::agent::server_ip(&id.server_url).await?;
    let spool = Spool::open(state_dir.join("spool"), DEFAULT_CAPACITY)?;
    tracing::info!(
        version = vigil_proto::version::version(),
        "new agent build on trial"
    );
    let runner = Runner::new(
        servers,
        spool,
        super::agent::facts(),
        Default::default(),
        server_addr,
    )
    .probe();
    match runner.run(shutdown).await {
        RunEnd::Reached => {
            std::fs::write(reached, vigil_proto::version::version())
                .with_context(|| format!("writing {}", reached.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::FAILURE),
    }
}
