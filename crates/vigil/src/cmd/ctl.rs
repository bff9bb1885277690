//! `vigil ctl`: manage a Vigil server through its REST API.
//!
//! Each command is one or two API calls shaped alike: parse the flags
//! (bad input fails before anything is sent), call, answer. The answer is
//! a table for people, or with `--json` the server's JSON unchanged, so
//! scripts see exactly what the API documents.

mod agents;
mod client;
mod compliance;
mod compliance_agents;
mod config;
mod deployment_keys;
mod devices;
mod maintenance;
mod notify;
mod outside;
mod policy;
mod table;
mod updates;
mod users;

use super::usage;
use agents::{AgentsCommand, PlanArg, PolicyCommand};
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use client::{decode, Client};
use compliance::ComplianceCommand;
use deployment_keys::DeploymentKeysCommand;
use devices::DevicesCommand;
use maintenance::MaintenanceCommand;
use notify::{AlertStatusArg, ContactsCommand, RulesCommand};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use updates::UpdatesCommand;
use users::{TokensCommand, UsersCommand};
use vigil_proto::api::{LoginRequest, LoginResponse, Me};

/// Where the REST API listens unless told otherwise (`vigil server`'s default).
const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The server's REST API URL [default: the one of the last login, else http://127.0.0.1:8080].
    #[arg(long, global = true, env = "VIGIL_SERVER")]
    server: Option<String>,
    /// An API token (default: the one saved by `vigil ctl login`).
    #[arg(long, global = true, env = "VIGIL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Where `login` saves the server and token [default: $XDG_CONFIG_HOME/vigil/ctl.json or ~/.config/vigil/ctl.json].
    #[arg(long, global = true, env = "VIGIL_CTL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Log in with email and password; saves an API token for the next commands.
    Login {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (default: VIGIL_PASSWORD, else standard input).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget the saved token (it stays valid until revoked with `tokens revoke`).
    Logout,
    /// Who the token belongs to.
    Whoami,
    /// List, inspect, re-plan and remove agents.
    Agents(Listing<AgentsCommand>),
    /// Create a single-use enrollment token and print the command that enrolls an agent.
    Enroll {
        /// The name the agent will have.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = PlanArg::Community)]
        plan: PlanArg,
        /// How long the token stays valid, in minutes (server default: one day).
        #[arg(long)]
        ttl_minutes: Option<u32>,
    },
    /// Reusable, expiring enrollment secrets for mass roll-outs (GPO, MSI).
    DeploymentKeys(Listing<DeploymentKeysCommand>),
    /// Show or change an agent's security-scan policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The devices of an agent's location (its local-network sweeps).
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// An agent's latest security-scan results.
    Results {
        /// The agent's id.
        agent: String,
        /// How many results (server default: 20).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// The account's alerts.
    Alerts {
        #[arg(long, value_enum, default_value_t = AlertStatusArg::Open)]
        status: AlertStatusArg,
        /// Only this agent's alerts.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Who gets notified: email addresses, webhooks, chat channels.
    Contacts(Listing<ContactsCommand>),
    /// Which events of which agents go to which contact.
    Rules(Listing<RulesCommand>),
    /// The account's users.
    Users(Listing<UsersCommand>),
    /// API tokens (for scripts and CI).
    Tokens(Listing<TokensCommand>),
    /// Compliance: the scope, assessments, endpoints found, schedule and history.
    #[command(subcommand)]
    Compliance(ComplianceCommand),
    /// Maintenance windows: scans go on, notifications wait until the window ends.
    Maintenance(Listing<MaintenanceCommand>),
    /// Agent self-update: builds offered, rollouts, automatic updates, progress.
    Updates(Listing<UpdatesCommand>),
    /// Which ports the server's scans of agents' observed addresses probe
    /// at each run: show it, or set it.
    OutsideSchedule(outside::OutsideArgs),
}

/// A group of commands that lists when given no subcommand, as
/// `kubectl get`-style tools do: `vigil ctl agents` is `vigil ctl agents list`.
#[derive(Debug, Args)]
pub(super) struct Listing<C: Subcommand + Default> {
    #[command(subcommand)]
    command: Option<C>,
}

impl<C: Subcommand + Default> Listing<C> {
    fn command(self) -> C {
        self.command.unwrap_or_default()
    }
}

/// The name clap shows for a value (`extended`, `ntfy`, `viewer`).
fn name_of(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

pub fn run(args: CtlArgs) -> Result<ExitCode> {
    let config_path = match &args.config {
        Some(path) => path.clone(),
        None => config::default_path()?,
    };
    // Passwords are read before the runtime starts: reading a terminal blocks.
    let password = match &args.command {
        CtlCommand::Login {
            email,
            password_stdin,
        } => Some(read_password(
            *password_stdin,
            &format!("Password for {email}: "),
        )?),
        CtlCommand::Users(Listing {
            command: Some(UsersCommand::Add { password_stdin, .. }),
        }) => Some(read_password(
            *password_stdin,
            "Password for the new user: ",
        )?),
        CtlCommand::Compliance(cmd) => compliance::ad_password(cmd)?,
        _ => None,
    };
    super::runtime()?.block_on(async move {
        match args.command {
            CtlCommand::Login { ref email, .. } => {
                let server = args.server.clone().unwrap_or_else(|| DEFAULT_SERVER.into());
                let password = password.unwrap_or_default();
                login(&server, email, password, &config_path, args.json).await
            }
            CtlCommand::Logout => logout(&config_path),
            command => {
                let ctl = Ctl::connect(args.server, args.token, &config_path, args.json)?;
                ctl.dispatch(command, password).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// The password from VIGIL_PASSWORD (unless `from_stdin`) or one line of
/// standard input, read without echo from a terminal.
fn read_password(from_stdin: bool, prompt: &str) -> Result<String> {
    if !from_stdin {
        if let Some(p) = std::env::var("VIGIL_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
        {
            return Ok(p);
        }
    }
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}");
        set_echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        set_echo(true);
        eprintln!();
    }
    read.map_err(|e| anyhow::anyhow!("reading the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(usage(
            "no password: set VIGIL_PASSWORD or give it on standard input",
        ));
    }
    Ok(password.to_string())
}

/// Terminal echo on or off, through stty (no extra dependency for one prompt).
fn set_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .status();
}

async fn login(
    server: &str,
    email: &str,
    password: String,
    config_path: &std::path::Path,
    json: bool,
) -> Result<ExitCode> {
    let client = Client::new(server, None)?;
    let answer = client
        .post(
            "/login",
            &LoginRequest {
                email: email.to_string(),
                password,
                token_name: Some("vigil ctl".into()),
                totp: None,
            },
        )
        .await?;
    let resp: LoginResponse = decode(answer.clone())?;
    config::save(
        config_path,
        &config::Saved {
            server: client.server().to_string(),
            token: resp.token.clone(),
        },
    )?;
    if json {
        // The token is in the config file; keep it off the screen.
        let mut shown = answer;
        if let Some(obj) = shown.as_object_mut() {
            obj.remove("token");
        }
        print_json(&shown);
    } else {
        println!(
            "logged in to {} as {} ({}) in account {} ({})",
            client.server(),
            resp.user.email,
            resp.user.role,
            resp.account.name,
            resp.account.kind
        );
        println!("token saved to {}", config_path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn logout(config_path: &std::path::Path) -> Result<ExitCode> {
    if config::remove(config_path)? {
        println!(
            "logged out: removed {} (the token stays valid on the server until revoked)",
            config_path.display()
        );
    } else {
        println!("not logged in (no {})", config_path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A path segment from user input, percent-encoded so that an id cannot
/// reach another endpoint (`../tokens`).
fn seg(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the given pairs (empty without any).
fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    format!("?{}", q.finish())
}

/// An authenticated client and how to print.
struct Ctl {
    api: Client,
    json: bool,
}

impl Ctl {
    /// Server: flag/env, else the saved one, else the default. Token:
    /// flag/env, else the saved one if it belongs to that server (a token is
    /// never sent to a server it was not issued by).
    fn connect(
        server: Option<String>,
        token: Option<String>,
        config_path: &std::path::Path,
        json: bool,
    ) -> Result<Ctl> {
        let saved = match (&server, &token) {
            (Some(_), Some(_)) => None,
            _ => config::load(config_path)?,
        };
        let server = server
            .or_else(|| saved.as_ref().map(|s| s.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.into());
        let server = client::normalize_server(&server)?;
        let token = token.filter(|t| !t.is_empty()).or_else(|| {
            saved
                .filter(|s| client::normalize_server(&s.server).ok().as_ref() == Some(&server))
                .map(|s| s.token)
        });
        let Some(token) = token else {
            return Err(usage(format!(
                "not logged in to {server}; run `vigil ctl login --email EMAIL` (or set VIGIL_TOKEN)"
            )));
        };
        Ok(Ctl {
            api: Client::new(&server, Some(token))?,
            json,
        })
    }

    /// Prints the answer: JSON as is, or `text` of the decoded body.
    fn show<T: DeserializeOwned>(
        &self,
        answer: Value,
        text: impl FnOnce(T) -> String,
    ) -> Result<()> {
        if self.json {
            print_json(&answer);
        } else {
            print!("{}", text(decode(answer)?));
        }
        Ok(())
    }

    /// For answers without a body (204): a line for people, nothing for scripts.
    fn done(&self, line: String) {
        if !self.json {
            println!("{line}");
        }
    }

    async fn dispatch(&self, command: CtlCommand, password: Option<String>) -> Result<()> {
        match command {
            CtlCommand::Login { .. } | CtlCommand::Logout => unreachable!("handled in run"),
            CtlCommand::Whoami => {
                let server = self.api.server().to_string();
                let answer = self.api.get("/me").await?;
                self.show(answer, |me: Me| {
                    format!(
                        "{} ({}) in account {} ({}, id {}) at {server}\n",
                        me.user.email,
                        me.user.role,
                        me.account.name,
                        me.account.kind,
                        me.account.id
                    )
                })
            }
            CtlCommand::Agents(cmd) => self.agents(cmd.command()).await,
            CtlCommand::Enroll {
                name,
                plan,
                ttl_minutes,
            } => self.enroll(name, plan.into(), ttl_minutes).await,
            CtlCommand::DeploymentKeys(cmd) => self.deployment_keys(cmd.command()).await,
            CtlCommand::Policy(cmd) => self.policy(cmd).await,
            CtlCommand::Devices(cmd) => self.devices(cmd).await,
            CtlCommand::Results { agent, limit } => self.results(&agent, limit).await,
            CtlCommand::Alerts { status, agent } => self.alerts(status, agent).await,
            CtlCommand::Contacts(cmd) => self.contacts(cmd.command()).await,
            CtlCommand::Rules(cmd) => self.rules(cmd.command()).await,
            CtlCommand::Users(cmd) => self.users(cmd.command(), password).await,
            CtlCommand::Tokens(cmd) => self.tokens(cmd.command()).await,
            CtlCommand::Compliance(cmd) => self.compliance(cmd, password).await,
            CtlCommand::Maintenance(cmd) => self.maintenance(cmd.command()).await,
            CtlCommand::Updates(cmd) => self.updates(cmd.command()).await,
            CtlCommand::OutsideSchedule(args) => self.outside_schedule(args).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_leave_their_path_segment() {
        assert_eq!(seg("0b7c6c1e-aa_1"), "0b7c6c1e-aa_1");
        assert_eq!(seg("../tokens"), "%2E%2E%2Ftokens");
        assert_eq!(seg("a b?c"), "a%20b%3Fc");
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("status", "open".into()), ("agent", "a&b".into())]),
            "?status=open&agent=a%26b"
        );
    }
}
