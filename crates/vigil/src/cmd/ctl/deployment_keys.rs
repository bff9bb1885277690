//! `vigil ctl deployment-keys`: reusable enrollment secrets for mass
//! roll-outs (GPO, MSI). One key enrolls many machines until it expires,
//! is revoked or reaches its `--max-uses`; the server records every use.

use super::agents::PlanArg;
use super::table::{ago, now, or_dash, time, Table};
use super::{decode, print_json, query, seg, Ctl};
use anyhow::Result;
use clap::Subcommand;
use vigil_proto::api::{
    DeploymentKeyCreated, DeploymentKeyState, DeploymentKeyUseView, DeploymentKeyView,
    NewDeploymentKey,
};

#[derive(Debug, Subcommand, Default)]
pub(super) enum DeploymentKeysCommand {
    /// Create a key; its secret is printed once, on standard output.
    Create {
        #[arg(long)]
        name: String,
        /// How long it enrolls agents, in days (1 to 365).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=365))]
        expires_in_days: u32,
        /// How many agents it may enroll (default: no limit).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_uses: Option<u64>,
        /// The plan of the agents it enrolls (server default: community).
        #[arg(long, value_enum)]
        plan: Option<PlanArg>,
    },
    /// The account's keys with how often and when they were last used.
    #[default]
    List,
    /// The agents a key enrolled, newest first.
    Uses {
        /// The key's id.
        id: String,
        /// How many (server default: 100, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Revoke a key: it enrolls no more agents (those it enrolled stay).
    Revoke {
        /// The key's id.
        id: String,
    },
}

fn state_name(s: DeploymentKeyState) -> &'static str {
    match s {
        DeploymentKeyState::Active => "active",
        DeploymentKeyState::Expired => "expired",
        DeploymentKeyState::Revoked => "revoked",
        DeploymentKeyState::UsedUp => "used up",
    }
}

impl Ctl {
    pub(super) async fn deployment_keys(&self, cmd: DeploymentKeysCommand) -> Result<()> {
        match cmd {
            DeploymentKeysCommand::Create {
                name,
                expires_in_days,
                max_uses,
                plan,
            } => {
                let body = NewDeploymentKey {
                    name,
                    expires_in_days,
                    max_uses,
                    plan: plan.map(Into::into),
                };
                let answer = self.api.post("/deployment-keys", &body).await?;
                if self.json {
                    print_json(&answer);
                    return Ok(());
                }
                let created: DeploymentKeyCreated = decode(answer)?;
                let k = &created.key;
                let limit = k
                    .max_uses
                    .map_or("any number of".to_string(), |m| m.to_string());
                eprintln!(
                    "created deployment key {:?} (id {}, {} plan): enrolls {limit} agents until {}.\n\
                     The secret is shown once, store it now. Enroll a machine with\n\n  {}\n\n\
                     or install the Windows agent with\n\n  {}\n\nThe secret:",
                    k.name,
                    k.id,
                    k.plan,
                    time(k.expires_at),
                    created.command,
                    created.msiexec
                );
                println!("{}", created.secret);
                Ok(())
            }
            DeploymentKeysCommand::List => {
                let answer = self.api.get("/deployment-keys").await?;
                self.show(answer, |keys: Vec<DeploymentKeyView>| {
                    let now = now();
                    let mut t = Table::new(&[
                        "ID",
                        "NAME",
                        "PLAN",
                        "STATE",
                        "USES",
                        "LAST USED",
                        "EXPIRES",
                    ]);
                    for k in keys {
                        let uses = match k.max_uses {
                            Some(max) => format!("{}/{max}", k.use_count),
                            None => k.use_count.to_string(),
                        };
                        t.row(vec![
                            k.id,
                            k.name,
                            k.plan.to_string(),
                            state_name(k.state).to_string(),
                            uses,
                            or_dash(k.last_used_at.map(|at| ago(at, now))),
                            time(k.expires_at),
                        ]);
                    }
                    t.render()
                })
            }
            DeploymentKeysCommand::Uses { id, limit } => {
                let q = query(
                    &limit
                        .map(|l| ("limit", l.to_string()))
                        .into_iter()
                        .collect::<Vec<_>>(),
                );
                let path = format!("/deployment-keys/{}/uses{q}", seg(&id));
                let answer = self.api.get(&path).await?;
                self.show(answer, |uses: Vec<DeploymentKeyUseView>| {
                    let mut t = Table::new(&["AGENT", "HOSTNAME", "FROM", "ENROLLED"]);
                    for u in uses {
                        t.row(vec![
                            u.agent_id,
                            or_dash(u.hostname),
                            or_dash(u.peer_addr),
                            time(u.used_at),
                        ]);
                    }
                    t.render()
                })
            }
            DeploymentKeysCommand::Revoke { id } => {
                self.api
                    .delete(&format!("/deployment-keys/{}", seg(&id)))
                    .await?;
                self.done(format!("revoked deployment key {id}"));
                Ok(())
            }
        }
    }
}
