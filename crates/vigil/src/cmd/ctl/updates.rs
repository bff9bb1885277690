//! `vigil ctl updates`: the agent builds this server offers, rolling one
//! out (all agents, a tag, some agents), automatic updates, and where each
//! agent's update stands.

use super::table::{or_dash, time, Table};
use super::Ctl;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use vigil_proto::api::{AutoUpdateRequest, RolloutRequest, RolloutView, UpdatesView};

#[derive(Debug, Subcommand, Default)]
pub(super) enum UpdatesCommand {
    /// The builds offered, automatic updates, and each agent's update.
    #[default]
    Show,
    /// Offer the server's build to agents: they install it at their next heartbeat.
    Rollout(RolloutArgs),
    /// Give every agent the server's build as soon as it ships one (on), or not (off).
    Auto {
        #[arg(value_enum)]
        state: OnOff,
    },
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(super) struct RolloutArgs {
    /// Every agent of the account.
    #[arg(long)]
    all: bool,
    /// The agents carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    /// These agents (ids); repeatable or comma-separated.
    #[arg(long = "agent", value_delimiter = ',', value_name = "ID")]
    agents: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum OnOff {
    On,
    Off,
}

fn show(v: UpdatesView) -> String {
    let mut out = String::new();
    if v.builds.is_empty() {
        out.push_str("builds:  none offered\n");
    }
    for b in &v.builds {
        out.push_str(&format!(
            "build:   {} {} ({} bytes, sha256 {})\n",
            b.platform, b.version, b.size, b.sha256
        ));
    }
    let auto = if v.auto_update { "on" } else { "off" };
    out.push_str(&format!("auto:    {auto}\n\n"));
    let mut t = Table::new(&[
        "AGENT", "NAME", "RUNS", "UPDATE", "VERSION", "SINCE", "DETAIL",
    ]);
    for a in v.agents {
        t.row(vec![
            a.agent_id,
            a.name,
            or_dash(a.version),
            a.state,
            or_dash(a.target_version),
            or_dash(a.updated_at.map(time)),
            a.detail.unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    out
}

impl Ctl {
    pub(super) async fn updates(&self, cmd: UpdatesCommand) -> Result<()> {
        match cmd {
            UpdatesCommand::Show => {
                let answer = self.api.get("/updates").await?;
                self.show(answer, show)
            }
            UpdatesCommand::Rollout(args) => {
                let body = RolloutRequest {
                    all: args.all,
                    tag: args.tag,
                    agents: args.agents,
                };
                let answer = self.api.post("/updates/rollout", &body).await?;
                self.show(answer, |r: RolloutView| {
                    format!(
                        "rolled out to {} agents: each updates at its next heartbeat\n",
                        r.agents
                    )
                })
            }
            UpdatesCommand::Auto { state } => {
                let body = AutoUpdateRequest {
                    enabled: matches!(state, OnOff::On),
                };
                let answer = self.api.put("/updates/auto", &body).await?;
                self.show(answer, show)
            }
        }
    }
}
