//! `vigil agent`: enroll this machine with a server, then run the agent.

use super::agent_service::{self, ServiceCommand};
use super::usage;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;
use vigil_agent::client::ClientError;
use vigil_agent::failover::Servers;
use vigil_agent::identity::Identity;
use vigil_agent::moving::{self, EnrollError};
use vigil_agent::runner::{RunEnd, Runner};
use vigil_agent::spool::{Spool, DEFAULT_CAPACITY};
use vigil_agent::update::State as UpdateState;
use vigil_proto::agent::AgentFacts;
use vigil_proto::identify::{Responder, DEFAULT_PORT};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Where the agent keeps its identity and result spool (Linux:
    /// /var/lib/vigil-agent, Windows: %ProgramData%\Vigil\agent).
    #[arg(
        long,
        global = true,
        env = "VIGIL_AGENT_DIR",
        default_value_os_t = vigil_agent::sys::default_state_dir()
    )]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Enroll with a server using a single-use token or a deployment key (printed by the server).
    Enroll {
        /// The server's agent URL, e.g. https://vigil.example:8443. A server
        /// with replicas: repeat it (or separate with commas) for each,
        /// preferred first; the agent fails over between them.
        #[arg(long, required = true, value_delimiter = ',', value_name = "URL")]
        server: Vec<String>,
        /// The single-use enrollment token (vge_…) or a deployment key (vgd_…).
        #[arg(long)]
        token: String,
        /// The server certificate's fingerprint, sha256:… (printed with the token).
        #[arg(long)]
        pin: String,
    },
    /// Run the agent: heartbeat, scan tasks, deliver results, answer identify requests.
    Run {
        /// Address of the identify listener (the agent's communication port).
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
        listen: SocketAddr,
        /// A TOML file of these options (state_dir, listen, log_format);
        /// flags and VIGIL_AGENT_… variables win over it.
        #[arg(long = "config", env = "VIGIL_AGENT_CONFIG", value_name = "FILE")]
        config_file: Option<PathBuf>,
        /// Print the effective configuration and exit.
        #[arg(long)]
        print_config: bool,
        /// How long a new agent build (a self-update) has to reach the
        /// server before the old one is put back, in seconds.
        #[arg(long, default_value_t = super::agent_update::DEFAULT_TRIAL.as_secs(),
              value_parser = clap::value_parser!(u64).range(5..=3600))]
        update_trial_secs: u64,
    },
    /// Show this agent's identity (without its credential) and how its file is protected.
    Status,
    /// Sweep a network for devices now and print them (what the policy's
    /// local-network target does, without a server).
    Sweep(super::agent_sweep::SweepArgs),
    /// The agent as a Windows service: install, uninstall, start, stop, status.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// What the Windows service runs (started by the service control manager).
    #[command(hide = true)]
    ServiceRun {
        #[arg(long, default_value_t = agent_service::default_listen())]
        listen: SocketAddr,
    },
}

/// Where this command writes its logs, when not on standard error: the
/// Windows service has no console.
pub fn log_dir(args: &AgentArgs) -> Option<PathBuf> {
    match args.command {
        AgentCommand::ServiceRun { .. } if crate::sys::service::available().is_ok() => {
            Some(agent_service::log_dir(&args.state_dir))
        }
        _ => None,
    }
}

pub fn run(args: AgentArgs) -> Result<ExitCode> {
    // The service commands talk to the service control manager, which
    // starts the service's runtime on its own thread.
    match args.command {
        AgentCommand::Enroll { server, token, pin } => {
            super::runtime()?.block_on(enroll(&args.state_dir, &server, &token, &pin))
        }
        AgentCommand::Run {
            listen,
            update_trial_secs,
            ..
        } => {
            let opts = RunOpts {
                listen,
                updates: Some(Duration::from_secs(update_trial_secs)),
            };
            super::runtime()?.block_on(run_agent(&args.state_dir, opts))
        }
        AgentCommand::Status => status(&args.state_dir),
        AgentCommand::Sweep(sweep) => super::agent_sweep::run(sweep),
        AgentCommand::Service { command } => agent_service::run(&args.state_dir, command),
        AgentCommand::ServiceRun { listen } => agent_service::service_run(args.state_dir, listen),
    }
}

async fn enroll(
    state_dir: &std::path::Path,
    servers: &[String],
    token: &str,
    pin: &str,
) -> Result<ExitCode> {
    let identity = enroll_at(state_dir, servers, token, pin).await?;
    println!(
        "enrolled as agent {} with server {}",
        identity.agent_id, identity.server_id
    );
    Ok(ExitCode::SUCCESS)
}

/// Enrolls and stores the identity in `state_dir`.
pub(crate) async fn enroll_with(
    state_dir: &std::path::Path,
    server: &str,
    token: &str,
    pin: &str,
) -> Result<Identity> {
    enroll_at(state_dir, &[server.to_string()], token, pin).await
}

/// [`enroll_with`] a server with replicas: its URLs, preferred first.
async fn enroll_at(
    state_dir: &std::path::Path,
    servers: &[String],
    token: &str,
    pin: &str,
) -> Result<Identity> {
    match moving::enroll_any(state_dir, servers, pin, token, facts()).await {
        Ok(identity) => Ok(identity),
        Err(EnrollError::Pin(e)) => Err(usage(format!("--pin: {e}"))),
        Err(EnrollError::Client(e @ ClientError::Url(_))) => Err(usage(format!("--server: {e}"))),
        Err(e) => Err(e.into()),
    }
}

fn status(state_dir: &std::path::Path) -> Result<ExitCode> {
    let Some(id) = Identity::load(state_dir)? else {
        println!("not enrolled (no identity in {})", state_dir.display());
        return Ok(ExitCode::from(1));
    };
    println!(
        "agent:  {}\nserver: {} ({})\npin:    {}",
        id.agent_id, id.server_url, id.server_id, id.pin
    );
    for url in id.server_urls().iter().skip(1) {
        println!("also:   {url}");
    }
    let path = Identity::path(state_dir);
    let protection = vigil_agent::sys::private_file_check(&path)?;
    println!("file:   {}, {protection}", path.display());
    let host = vigil_agent::sys::os_facts();
    println!("host:   {} ({})", host.hostname, host.os);
    Ok(ExitCode::SUCCESS)
}

async fn run_agent(state_dir: &std::path::Path, opts: RunOpts) -> Result<ExitCode> {
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = stop.send(true);
    });
    // A new build on trial (see agent_update): only prove it reaches the server.
    if let Some(reached) = std::env::var_os(vigil_agent::update::TRIAL_ENV) {
        let reached = PathBuf::from(reached);
        return super::agent_update::trial_run(state_dir, &reached, shutdown).await;
    }
    match run_enrolled(state_dir, opts, shutdown).await? {
        Ended::Stopped => Ok(ExitCode::SUCCESS),
        Ended::Updated(exe) => Err(crate::sys::exec_self(&exe)),
    }
}

/// How `vigil agent run` (and the service, and `vigil up`'s local agent) runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunOpts {
    /// The identify listener's address.
    pub listen: SocketAddr,
    /// Self-update with this trial period; `None`: offers are ignored.
    pub updates: Option<Duration>,
}

/// Why [`run_enrolled`] returned.
#[derive(Debug)]
pub(crate) enum Ended {
    Stopped,
    /// A new build is installed at this path and reached the server: the
    /// process must hand over to it.
    Updated(PathBuf),
}

/// Runs an enrolled agent until `shutdown` turns true. When its server
/// moves it to another server, it goes on with the new identity (the
/// identify listener answers with the new server ID at once).
pub(crate) async fn run_enrolled(
    state_dir: &std::path::Path,
    opts: RunOpts,
    shutdown: watch::Receiver<bool>,
) -> Result<Ended> {
    let listen = opts.listen;
    let mut id = Identity::load(state_dir)?.ok_or_else(|| {
        usage(format!(
            "this agent is not enrolled (no identity in {}): run `vigil agent enroll` first",
            state_dir.display()
        ))
    })?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let (reply_tx, reply) = watch::channel(identify_reply(&id));
    let identify = tokio::spawn(vigil_agent::identify::serve(
        listener,
        reply,
        shutdown.clone(),
    ));
    let ended = loop {
        let servers = Servers::new(id.clone()).context("stored identity")?;
        // Replicas of one server are expected on one network: the route
        // to the preferred one tells the address "self" stands for.
        let server_addr = server_ip(&id.server_url).await?;
        let spool = Spool::open(state_dir.join("spool"), DEFAULT_CAPACITY)?;
        tracing::info!(agent = %id.agent_id, servers = ?servers.urls(), %listen, "agent running");
        let mut runner = Runner::new(servers, spool, facts(), Default::default(), server_addr)
            .with_state_dir(state_dir);
        if opts.updates.is_some() {
            runner = runner.with_updates(UpdateState::load(state_dir, &id.server_id));
        }
        match runner.run(shutdown.clone()).await {
            RunEnd::Stopped | RunEnd::Reached => break Ended::Stopped,
            RunEnd::Moved(new) => {
                id = new;
                reply_tx.send_replace(identify_reply(&id));
            }
            RunEnd::Update(offer) => {
                let trial = opts.updates.unwrap_or(super::agent_update::DEFAULT_TRIAL);
                let mut state = UpdateState::load(state_dir, &id.server_id);
                let applied = super::agent_update::apply(
                    state_dir, &id, &mut state, &offer, listen, trial, &shutdown,
                )
                .await;
                if let super::agent_update::Applied::HandOver(exe) = applied {
                    break Ended::Updated(exe);
                }
            }
        }
    };
    // The identify listener stops with `shutdown`; at a hand-over the
    // process image is replaced (its sockets close on exec).
    if matches!(ended, Ended::Stopped) {
        let _ = identify.await;
    }
    Ok(ended)
}

/// What the identify listener answers with for `id` (its key comes from
/// the credential: see `vigil_proto::identify::IdentifyKey`).
fn identify_reply(id: &Identity) -> Responder {
    Responder::new(
        &id.agent_id,
        &id.server_id,
        vigil_proto::version::version(),
        &id.credential,
    )
    .with_hostname(&vigil_agent::sys::os_facts().hostname)
}

/// The server's address, for finding the address "self" stands for.
pub(crate) async fn server_ip(url: &str) -> Result<IpAddr> {
    let parsed = url::Url::parse(url).with_context(|| format!("stored server URL {url:?}"))?;
    let host = parsed.host_str().context("server URL without a host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let mut addrs = tokio::net::lookup_host((host.to_string(), port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?;
    let ip = addrs.next().map(|a| a.ip());
    ip.with_context(|| format!("{host} has no address"))
}

/// What the server learns about this machine (the version is this
/// build's stamp: see `vigil_proto::version`).
pub(crate) fn facts() -> AgentFacts {
    let os = vigil_agent::sys::os_facts();
    AgentFacts {
        hostname: os.hostname,
        os: os.os,
        version: vigil_proto::version::version().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        Agent(AgentArgs),
    }

    #[test]
    fn the_service_command_line_parses_as_service_run() {
        let dir = PathBuf::from("/srv/vigil agent");
        let listen: SocketAddr = "127.0.0.1:47761".parse().expect("addr");
        let line = agent_service::service_command(std::path::Path::new("vigil"), &dir, listen);
        let Top::Agent(args) = Cli::try_parse_from(&line).expect("parses").command;
        assert_eq!(args.state_dir, dir);
        assert!(
            matches!(args.command, AgentCommand::ServiceRun { listen: l } if l == listen),
            "{:?}",
            args.command
        );
    }

    #[test]
    fn the_state_dir_defaults_per_platform() {
        let Top::Agent(args) = Cli::try_parse_from(["vigil", "agent", "status"])
            .expect("parses")
            .command;
        if std::env::var_os("VIGIL_AGENT_DIR").is_none() {
            assert_eq!(args.state_dir, vigil_agent::sys::default_state_dir());
        }
    }
}
