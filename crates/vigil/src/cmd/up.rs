//! `vigil up`: a complete local installation in one command — the server on
//! embedded SQLite, plus an agent on this machine watching 127.0.0.1 with an
//! example security-scan policy. That policy authorizes the ports this
//! `vigil up` listens on itself (console and REST API, agent API, the
//! agent's identify port), taken from its actual listeners: its own first
//! scan must not alert on Vigil.

use super::agent::{enroll_with, run_enrolled, RunOpts};
use super::server::{create_account, random_password};
use anyhow::{Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;
use vigil_core::{AccountKind, Plan, PolicyTarget, PortList, ScanInterval, SecurityPolicy};
use vigil_server::ServerConfig;
use vigil_store::{AccountId, AgentId, Store};

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where everything is kept (database, TLS identity, agent state).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "vigil-data")]
    data_dir: PathBuf,
    /// REST API / console address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Agent API address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    agent_listen: SocketAddr,
    /// The local agent's identify listener.
    #[arg(long, default_value = "127.0.0.1:47760")]
    identify_listen: SocketAddr,
}

/// What `vigil up` remembers between runs (0600: it holds the first password).
#[derive(Debug, Serialize, Deserialize)]
struct FirstLogin {
    account_id: AccountId,
    email: String,
    password: String,
}

const FIRST_LOGIN_FILE: &str = "first-login.json";
const EMAIL: &str = "admin@vigil.local";

pub fn run(args: UpArgs) -> Result<ExitCode> {
    super::runtime()?.block_on(up(args))
}

async fn up(args: UpArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let db = format!("sqlite://{}", args.data_dir.join("vigil.db").display());
    // Held while this runs, as `vigil server` holds it: one server per file.
    let _lock = vigil_store::sqlite_file::DatabaseLock::acquire(&args.data_dir.join("vigil.db"))?;
    let store = Store::connect(&db).await.context("opening the database")?;
    let login = first_login(&store, &args.data_dir).await?;

    let mut cfg = ServerConfig::new(&args.data_dir, &db);
    cfg.api_listen = args.listen;
    cfg.agent_listen = args.agent_listen;
    cfg.heartbeat = Duration::from_secs(10);
    cfg.console_url = Some(format!("http://{}/", args.listen));
    let running = vigil_server::start_with_store(cfg, store.clone()).await?;
    let own = OwnPorts::of(running.api_addr, running.agent_addr, args.identify_listen);

    let agent_dir = args.data_dir.join("agent");
    let agent = match vigil_agent::identity::Identity::load(&agent_dir)? {
        Some(id) => id,
        None => {
            let token = store
                .create_enrollment(
                    login.account_id,
                    "this computer",
                    Plan::Extended,
                    Duration::from_secs(600),
                )
                .await?;
            let id = enroll_with(
                &agent_dir,
                &running.agent_url,
                &token,
                &running.pin.to_string(),
            )
            .await
            .context("enrolling the local agent")?;
            let agent_id: AgentId = id.agent_id.parse().context("agent id from the server")?;
            store
                .put_policy(login.account_id, agent_id, &example_policy(&own)?)
                .await?;
            id
        }
    };
    let agent_id: AgentId = agent.agent_id.parse().context("the local agent's id")?;
    let policy = store.policy(login.account_id, agent_id).await?;
    let (stop_agent, agent_shutdown) = watch::channel(false);
    let agent_task = tokio::spawn(async move {
        if let Err(e) = run_enrolled(
            &agent_dir,
            // The local agent runs in the server's process: never replaced.
            RunOpts {
                listen: args.identify_listen,
                updates: None,
            },
            agent_shutdown,
        )
        .await
        {
            eprintln!("error: local agent: {e:#}");
        }
    });

    println!("Vigil is up.");
    println!("  console:   http://{}/", running.api_addr);
    println!("  login:     {}", login.email);
    println!("  password:  {}", login.password);
    println!("  REST API:  http://{}/api/v1", running.api_addr);
    match &policy {
        Some(policy) => {
            println!(
                "  local agent {} scans 127.0.0.1 every {} minutes (authorized: {})",
                agent.agent_id,
                policy.interval.minutes(),
                policy.authorized
            );
            println!("{}", own.policy_line(&policy.authorized));
        }
        None => println!(
            "  local agent {} has no security-scan policy; set one in the console",
            agent.agent_id
        ),
    }
    println!("Press Ctrl-C to stop.");
    running.run_until(super::shutdown_signal()).await;
    let _ = stop_agent.send(true);
    let _ = agent_task.await;
    Ok(ExitCode::SUCCESS)
}

/// The ports this `vigil up` listens on itself, each with what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnPorts(Vec<(u16, &'static str)>);

impl OwnPorts {
    /// From the listeners' actual addresses (the server's as bound; the
    /// identify listener's as asked: port 0 is a port only the agent will
    /// know, left out). A port listed twice is kept once.
    fn of(api: SocketAddr, agent_api: SocketAddr, identify: SocketAddr) -> OwnPorts {
        let mut ports: Vec<(u16, &'static str)> = Vec::new();
        for (port, what) in [
            (api.port(), "console and REST API"),
            (agent_api.port(), "agent API"),
            (identify.port(), "agent identify"),
        ] {
            if port != 0 && !ports.iter().any(|(p, _)| *p == port) {
                ports.push((port, what));
            }
        }
        OwnPorts(ports)
    }

    fn list(&self) -> PortList {
        PortList::from_ports(self.0.iter().map(|(p, _)| *p))
    }

    /// `8080 (console and REST API), 8443 (agent API), …` for `ports`.
    fn describe<'a>(ports: impl Iterator<Item = &'a (u16, &'static str)>) -> String {
        ports
            .map(|(p, what)| format!("{p} ({what})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The line `vigil up` prints about them under the local agent's
    /// `authorized` ports: authorized, or which are not (a policy from an
    /// earlier run with other listen addresses).
    fn policy_line(&self, authorized: &PortList) -> String {
        let missing: Vec<&(u16, &str)> = self
            .0
            .iter()
            .filter(|(p, _)| !authorized.contains(*p))
            .collect();
        if missing.is_empty() {
            format!(
                "Authorized Vigil's own ports {} in the local agent's policy",
                Self::describe(self.0.iter())
            )
        } else {
            format!(
                "Note: Vigil's own ports {} are not authorized in the local agent's policy \
                 (made by an earlier run); its scans alert on them until you authorize them",
                Self::describe(missing.into_iter())
            )
        }
    }
}

/// The example: the agent's own host, SSH and Vigil's own ports
/// authorized, every 15 minutes.
fn example_policy(own: &OwnPorts) -> Result<SecurityPolicy> {
    Ok(SecurityPolicy {
        enabled: true,
        authorized: PortList::parse("22")
            .context("example ports")?
            .union(&own.list()),
        monitored: PortList::from_ports([]),
        targets: vec![PolicyTarget::AgentHost],
        interval: ScanInterval::for_account(AccountKind::Member, 15)?,
        include_interfaces: Vec::new(),
        unreviewed_devices: Default::default(),
        device_kinds: Vec::new(),
        process_change_alerts: false,
    }
    .validated(AccountKind::Member)?)
}

/// The account and owner of this installation, created on the first run.
async fn first_login(store: &Store, data_dir: &Path) -> Result<FirstLogin> {
    let path = data_dir.join(FIRST_LOGIN_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; remove the data directory to start over",
                path.display()
            )
        });
    }
    let password = random_password();
    let (account, _) = create_account(store, "Home", AccountKind::Member, EMAIL, &password).await?;
    let login = FirstLogin {
        account_id: account.id,
        email: EMAIL.into(),
        password,
    };
    write_private(&path, &serde_json::to_vec_pretty(&login)?)?;
    Ok(login)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = crate::sys::private_file_options()
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn the_example_policy_authorizes_exactly_vigils_own_listeners_and_ssh() {
        // (console, agent API, identify, authorized, line)
        let cases = [
            (
                "127.0.0.1:8080",
                "127.0.0.1:8443",
                "127.0.0.1:47760",
                "22,8080,8443,47760",
                "Authorized Vigil's own ports 8080 (console and REST API), 8443 (agent API), \
                 47760 (agent identify) in the local agent's policy",
            ),
            (
                "0.0.0.0:18080",
                "[::1]:9443",
                "127.0.0.1:0",
                "22,9443,18080",
                "Authorized Vigil's own ports 18080 (console and REST API), 9443 (agent API) \
                 in the local agent's policy",
            ),
            (
                "127.0.0.1:22",
                "127.0.0.2:22",
                "127.0.0.1:47760",
                "22,47760",
                "Authorized Vigil's own ports 22 (console and REST API), 47760 (agent identify) \
                 in the local agent's policy",
            ),
        ];
        for (api, agent, identify, authorized, line) in cases {
            let own = OwnPorts::of(addr(api), addr(agent), addr(identify));
            let policy = example_policy(&own).expect("valid policy");
            assert_eq!(policy.authorized.to_string(), authorized, "{api}");
            assert!(policy.monitored.is_empty());
            assert_eq!(policy.targets, [PolicyTarget::AgentHost]);
            assert_eq!(own.policy_line(&policy.authorized), line, "{api}");
        }
    }

    #[test]
    fn an_earlier_policy_without_the_ports_is_pointed_out() {
        let own = OwnPorts::of(
            addr("127.0.0.1:9090"),
            addr("127.0.0.1:8443"),
            addr("127.0.0.1:47760"),
        );
        let earlier = PortList::parse("22,8080,8443,47760").expect("ports");
        assert_eq!(
            own.policy_line(&earlier),
            "Note: Vigil's own ports 9090 (console and REST API) are not authorized in the \
             local agent's policy (made by an earlier run); its scans alert on them until you \
             authorize them"
        );
    }
}
