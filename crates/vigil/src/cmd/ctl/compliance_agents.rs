//! `vigil ctl compliance peers|move|install|install-command|install-status`:
//! acting on what an assessment found — moving agents of trusted peer
//! servers here, and installing agents where there are none.

use super::agents::PlanArg;
use super::table::{or_dash, time, Table};
use super::{decode, usage, Ctl};
use anyhow::{anyhow, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use vigil_proto::api::{
    AgentPlatform, AgentStart, InstallCommandRequest, InstallCommandView, InstallJobView,
    InstallRequest, MoveRequest, MoveResponse, NewPeer, PeerView, SshLogin,
};

/// Where `peers add` reads the peer's API token from unless `--token-stdin`.
pub(super) const PEER_TOKEN_ENV: &str = "VIGIL_PEER_TOKEN";
/// How often `install --wait` asks for progress.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub(super) enum PeersCommand {
    /// The trusted peer servers agents can be moved from.
    List,
    /// Trust another Vigil server: its REST API URL and an admin API token
    /// of it (from VIGIL_PEER_TOKEN or --token-stdin, never the command line).
    Add {
        name: String,
        /// The peer's REST API base URL, without /api/v1.
        api_url: String,
        /// Read the token from the first line of standard input.
        #[arg(long)]
        token_stdin: bool,
    },
    /// Stop trusting a peer.
    Remove { id: String },
}

#[derive(Debug, Args)]
pub(super) struct MoveArgs {
    /// Agent ids of endpoints managed by another server (see `endpoints
    /// --status managed_elsewhere`).
    #[arg(required = true)]
    agent_ids: Vec<String>,
    /// Their plan here.
    #[arg(long, value_enum)]
    plan: Option<PlanArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum StartArg {
    Auto,
    Systemd,
    Detached,
}

impl From<StartArg> for AgentStart {
    fn from(s: StartArg) -> AgentStart {
        match s {
            StartArg::Auto => AgentStart::Auto,
            StartArg::Systemd => AgentStart::Systemd,
            StartArg::Detached => AgentStart::Detached,
        }
    }
}

/// Where and how the agent is installed on a host.
#[derive(Debug, Args)]
pub(super) struct Placement {
    /// The agents' plan.
    #[arg(long, value_enum)]
    plan: Option<PlanArg>,
    /// Where the binary goes (server default: /opt/vigil).
    #[arg(long)]
    install_dir: Option<String>,
    /// The agent's state directory (server default: /var/lib/vigil-agent).
    #[arg(long)]
    state_dir: Option<String>,
    /// Where vigil-agent.service is written (server default: /etc/systemd/system).
    #[arg(long)]
    unit_dir: Option<String>,
    /// How the agent is started.
    #[arg(long, value_enum, default_value = "auto")]
    start: StartArg,
}

#[derive(Debug, Args)]
pub(super) struct InstallArgs {
    /// IP addresses of the hosts (e.g. the no_agent endpoints).
    #[arg(required = true)]
    addresses: Vec<String>,
    /// The private key to log in with (unencrypted, OpenSSH or PEM); sent
    /// to the server for this job only, never stored.
    #[arg(long)]
    ssh_key: PathBuf,
    #[arg(long, default_value = "root")]
    ssh_user: String,
    #[arg(long, default_value_t = 22)]
    ssh_port: u16,
    /// known_hosts lines the host keys must match (else: trust on first use).
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    #[command(flatten)]
    placement: Placement,
    /// Where vigil.exe goes on hosts that run Windows (server default: %ProgramFiles%\Vigil).
    #[arg(long)]
    windows_install_dir: Option<String>,
    /// The agent's state directory on Windows hosts (server default: %ProgramData%\Vigil\agent).
    #[arg(long)]
    windows_state_dir: Option<String>,
    /// Wait until every host is done and exit non-zero if one failed.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Args)]
pub(super) struct InstallCommandArgs {
    /// The agent's name.
    #[arg(long)]
    name: Option<String>,
    /// How long the token stays valid, in minutes.
    #[arg(long)]
    ttl_minutes: Option<u32>,
    /// A line for an elevated Windows PowerShell instead of curl | sh
    /// (--install-dir and --state-dir are then Windows paths, C:\…).
    #[arg(long)]
    windows: bool,
    #[command(flatten)]
    placement: Placement,
}

impl Ctl {
    pub(super) async fn peers(&self, cmd: PeersCommand, token: Option<String>) -> Result<()> {
        match cmd {
            PeersCommand::List => {
                let answer = self.api.get("/compliance/peers").await?;
                self.show(answer, |peers: Vec<PeerView>| peers_table(&peers))
            }
            PeersCommand::Add { name, api_url, .. } => {
                let api_token = token.ok_or_else(|| {
                    usage(format!(
                        "give the peer's API token in {PEER_TOKEN_ENV} or with --token-stdin"
                    ))
                })?;
                let body = NewPeer {
                    name,
                    api_url,
                    api_token,
                };
                let answer = self.api.post("/compliance/peers", &body).await?;
                self.show(answer, |p: PeerView| {
                    format!("peer {} added: server {}\n", p.id, p.server_id)
                })
            }
            PeersCommand::Remove { id } => {
                self.api.delete(&format!("/compliance/peers/{id}")).await?;
                if !self.json {
                    println!("peer {id} removed");
                }
                Ok(())
            }
        }
    }

    pub(super) async fn move_agents(&self, args: MoveArgs) -> Result<()> {
        let body = MoveRequest {
            agent_ids: args.agent_ids,
            plan: args.plan.map(Into::into),
        };
        let answer = self.api.post("/compliance/move", &body).await?;
        let outcome: MoveResponse = decode(answer.clone())?;
        self.show(answer, |r: MoveResponse| move_table(&r))?;
        let failed = outcome
            .results
            .iter()
            .filter(|r| r.status != "requested")
            .count();
        if failed > 0 {
            return Err(anyhow!(
                "{failed} of {} moves failed",
                outcome.results.len()
            ));
        }
        Ok(())
    }

    pub(super) async fn install(&self, args: InstallArgs) -> Result<()> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| usage(format!("{what} {}: {e}", path.display())))
        };
        let body = InstallRequest {
            addresses: args.addresses,
            ssh: SshLogin {
                user: args.ssh_user,
                port: args.ssh_port,
                private_key: read(&args.ssh_key, "--ssh-key")?,
                known_hosts: args
                    .known_hosts
                    .as_ref()
                    .map(|p| read(p, "--known-hosts"))
                    .transpose()?,
            },
            plan: args.placement.plan.map(Into::into),
            install_dir: args.placement.install_dir,
            state_dir: args.placement.state_dir,
            unit_dir: args.placement.unit_dir,
            start: args.placement.start.into(),
            windows_install_dir: args.windows_install_dir,
            windows_state_dir: args.windows_state_dir,
        };
        let mut answer = self.api.post("/compliance/install", &body).await?;
        if args.wait {
            let id = decode::<InstallJobView>(answer.clone())?.id;
            loop {
                let job: InstallJobView = decode(answer.clone())?;
                if job.state != "running" {
                    break;
                }
                tokio::time::sleep(POLL).await;
                answer = self.api.get(&format!("/compliance/install/{id}")).await?;
            }
        }
        self.install_result(answer, args.wait)
    }

    pub(super) async fn install_status(&self, id: &str) -> Result<()> {
        let answer = self.api.get(&format!("/compliance/install/{id}")).await?;
        self.install_result(answer, false)
    }

    fn install_result(&self, answer: serde_json::Value, strict: bool) -> Result<()> {
        let job: InstallJobView = decode(answer.clone())?;
        self.show(answer, |j: InstallJobView| install_text(&j))?;
        let failed = job.hosts.iter().filter(|h| h.state == "failed").count();
        if strict && failed > 0 {
            return Err(anyhow!("{failed} of {} installs failed", job.hosts.len()));
        }
        Ok(())
    }

    pub(super) async fn install_command(&self, args: InstallCommandArgs) -> Result<()> {
        let body = InstallCommandRequest {
            name: args.name,
            plan: args.placement.plan.map(Into::into),
            ttl_minutes: args.ttl_minutes,
            install_dir: args.placement.install_dir,
            state_dir: args.placement.state_dir,
            unit_dir: args.placement.unit_dir,
            start: args.placement.start.into(),
            platform: if args.windows {
                AgentPlatform::Windows
            } else {
                AgentPlatform::Linux
            },
        };
        let answer = self.api.post("/compliance/install-command", &body).await?;
        self.show(answer, |v: InstallCommandView| {
            let place = match v.platform {
                AgentPlatform::Windows => "in PowerShell run as Administrator on the Windows host",
                AgentPlatform::Linux => "as root on the host",
            };
            format!(
                "Run {place} (the token is single-use, valid until {}):\n{}\n",
                time(v.expires_at),
                v.command
            )
        })
    }
}

fn peers_table(peers: &[PeerView]) -> String {
    let mut t = Table::new(&["ID", "NAME", "API URL", "SERVER ID", "ADDED"]);
    for p in peers {
        t.row(vec![
            p.id.clone(),
            p.name.clone(),
            p.api_url.clone(),
            p.server_id.clone(),
            time(p.created_at),
        ]);
    }
    t.render()
}

fn move_table(r: &MoveResponse) -> String {
    let mut t = Table::new(&["AGENT", "STATUS", "FROM SERVER", "ERROR"]);
    for o in &r.results {
        t.row(vec![
            o.agent_id.clone(),
            o.status.clone(),
            or_dash(o.server_id.as_ref()),
            or_dash(o.error.as_ref()),
        ]);
    }
    t.render()
}

fn install_text(job: &InstallJobView) -> String {
    let mut t = Table::new(&["ADDRESS", "STATE", "AGENT", "DETAILS"]);
    for h in &job.hosts {
        t.row(vec![
            h.address.clone(),
            h.state.clone(),
            or_dash(h.agent_id.as_ref()),
            or_dash(h.error.as_ref().or(h.message.as_ref())),
        ]);
    }
    format!("install job {} ({})\n{}", job.id, job.state, t.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::api::{InstallHostView, MoveOutcome};

    #[test]
    fn tables_show_errors_and_dashes() {
        let r = MoveResponse {
            results: vec![
                MoveOutcome {
                    agent_id: "a1".into(),
                    status: "requested".into(),
                    server_id: Some("srv-b".into()),
                    error: None,
                },
                MoveOutcome {
                    agent_id: "a2".into(),
                    status: "error".into(),
                    server_id: None,
                    error: Some("no trusted peer for server srv-c".into()),
                },
            ],
        };
        let text = move_table(&r);
        assert!(text.contains("a1") && text.contains("srv-b"), "{text}");
        assert!(text.contains("no trusted peer for server srv-c"), "{text}");
        let job = InstallJobView {
            id: "j1".into(),
            state: "done".into(),
            created_at: 0,
            finished_at: Some(1),
            hosts: vec![InstallHostView {
                address: "198.51.100.40".into(),
                state: "failed".into(),
                message: Some("connecting".into()),
                error: Some("Permission denied".into()),
                agent_id: None,
                finished_at: Some(1),
            }],
        };
        let text = install_text(&job);
        assert!(text.starts_with("install job j1 (done)"), "{text}");
        assert!(
            text.contains("Permission denied") && !text.contains("connecting"),
            "{text}"
        );
    }
}
