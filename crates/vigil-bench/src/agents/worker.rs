//! The simulated agents run in worker processes (`vigil-bench
//! agents-worker`, started by the bench itself): each keeps one connection
//! per agent open, and a process may hold only so many files
//! (`RLIMIT_NOFILE`, whose hard limit only a privileged process can raise),
//! so 50,000 agents take several processes. Each worker gets a contiguous
//! share of the agents and of the in-flight and request budgets.
//!
//! The protocol is JSON lines: on its stdin a worker reads an [`Init`],
//! enrolls its agents and answers [`Enrolled`] on its stdout; then, for
//! each `go`, it runs a round of load and answers [`Done`] (the soak runs
//! one round per simulated day), and it exits when its stdin closes. It
//! dies with the bench (parent-death signal).

use super::load::{self, LoadConfig, LoadOutcome};
use super::stats::{Kind, Recorder, WireStats};
use anyhow::{bail, Context, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::io::{BufRead as _, Write as _};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};
use vigil_proto::pin::CertPin;

const GO: &str = "go";

/// A worker's share of the agents and how to run them.
#[derive(Debug, Serialize, Deserialize)]
pub struct Init {
    /// The replicas' agent URLs; agent `i` talks to `urls[i % len]`.
    pub urls: Vec<String>,
    pub pin: String,
    /// (agent index, enrollment token).
    pub tokens: Vec<(usize, String)>,
    pub enroll_concurrency: usize,
    pub reconnect: bool,
    pub load: LoadConfig,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Enrolled {
    /// (agent index, agent id) of the agents that enrolled.
    pub agents: Vec<(usize, String)>,
    pub stats: Vec<(Kind, WireStats)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    pub stats: Vec<(Kind, WireStats)>,
    pub outcome: LoadOutcome,
}

/// `vigil-bench agents-worker`. Its stdin and stdout are plain blocking
/// pipes, read and written between the two async phases.
pub fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut input = std::io::stdin().lock();
    let mut line = String::new();
    input.read_line(&mut line).context("reading the set-up")?;
    let init: Init = serde_json::from_str(&line).context("reading the set-up")?;
    let pin: CertPin = init
        .pin
        .parse()
        .map_err(|e| anyhow::anyhow!("server pin: {e}"))?;
    let rec = Arc::new(Recorder::new(Instant::now()));
    let agents = runtime.block_on(load::enroll_all(
        init.tokens,
        &init.urls,
        pin,
        init.enroll_concurrency,
        init.reconnect,
        &rec,
    ))?;
    let enrolled = Enrolled {
        agents: agents
            .iter()
            .map(|a| (a.index, a.agent_id.clone()))
            .collect(),
        stats: Arc::into_inner(rec)
            .context("enrollment has finished")?
            .into_wire(),
    };
    report(&enrolled)?;
    let agents: Vec<Arc<load::SimAgent>> = agents.into_iter().map(Arc::new).collect();
    // A round of load per `go` (one for `agents`, one per simulated day
    // for `soak`); alive (and its memory still measurable) until the
    // coordinator closes stdin or says anything else.
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 || line.trim() != GO {
            return Ok(());
        }
        let rec = Arc::new(Recorder::new(Instant::now()));
        let outcome = runtime.block_on(load::run(&agents, &init.load, rec.clone()));
        let done = Done {
            stats: Arc::into_inner(rec)
                .context("the load has finished")?
                .into_wire(),
            outcome,
        };
        report(&done)?;
    }
}

/// One JSON line on stdout.
fn report<T: Serialize>(value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)?;
    out.flush()?;
    Ok(())
}

/// A worker process, seen from the coordinator.
pub struct Worker {
    name: String,
    child: tokio::process::Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// Starts `vigil-bench agents-worker` and sends it `init`.
    ///
    /// Call it from the thread that stays alive for the whole bench (see
    /// [`super::procs::Child::spawn`]).
    pub async fn start(name: String, init: &Init) -> Result<Worker> {
        let exe = std::env::current_exe().context("finding vigil-bench itself")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("agents-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("{name}: no pipes");
        };
        let mut line = serde_json::to_vec(init)?;
        line.push(b'\n');
        stdin
            .write_all(&line)
            .await
            .with_context(|| format!("sending {name} its agents"))?;
        stdin.flush().await?;
        Ok(Worker {
            name,
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The worker's next report.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        match self.lines.next_line().await? {
            Some(line) => serde_json::from_str(&line)
                .with_context(|| format!("{}: unexpected report", self.name)),
            None => {
                let status = self.child.wait().await?;
                bail!("{} exited ({status}) without reporting", self.name)
            }
        }
    }

    /// Starts the load.
    pub async fn go(&mut self) -> Result<()> {
        self.stdin
            .write_all(format!("{GO}\n").as_bytes())
            .await
            .with_context(|| format!("starting the load of {}", self.name))?;
        self.stdin.flush().await?;
        Ok(())
    }
}

/// The `i`th of `parts` near-equal shares of `total`.
pub fn share(total: usize, parts: usize, i: usize) -> usize {
    total / parts + usize::from(i < total % parts)
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(64, 3), (10, 10), (50_000, 3), (7, 2)] {
            let sum: usize = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total);
        }
        assert_eq!(share(64, 3, 0), 22);
        assert_eq!(share(64, 3, 2), 21);
    }
}
