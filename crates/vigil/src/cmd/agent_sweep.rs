//! `vigil agent sweep`: one local-network sweep run here and now, printed
//! instead of sent to a server — what the agent's *local network* target
//! finds, for a user to see before switching it on (and for benchmarks).
//!
//! It sweeps only what it is told: `--local` (this machine's own subnets,
//! as the policy target does) and/or `--network` blocks; nothing by default.

use super::usage;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use vigil_agent::network;
use vigil_core::lan::scope::sweep_limit;
use vigil_core::lan::Sighting;
use vigil_core::{AccountKind, PortList};
use vigil_proto::agent::{NetworkSweep, NetworkUpload, ScanTask, NETWORK_TARGET};
use vigil_scan::ScanConfig;

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep the subnets of this machine's interfaces (loopback, link-local
    /// and virtual interfaces left out unless named with --include-interface).
    #[arg(long)]
    local: bool,
    /// A CIDR block, range or address to sweep; repeat for more.
    #[arg(long = "network")]
    networks: Vec<String>,
    /// An interface left out by default to include; repeat for more.
    #[arg(long = "include-interface")]
    include_interfaces: Vec<String>,
    /// Ports to probe (vigil scan -p syntax).
    #[arg(short = 'p', long, default_value = vigil_core::lan::scope::LAN_PORTS)]
    ports: String,
    /// Ask the gateway (UPnP IGD, NAT-PMP) what it forwards from outside.
    #[arg(long)]
    gateway: bool,
    /// Find hosts by connect probes only, never by ARP (as an agent
    /// without CAP_NET_RAW does).
    #[arg(long)]
    no_arp: bool,
    /// Print the whole result as JSON.
    #[arg(long)]
    json: bool,
}

fn vendor(s: &Sighting) -> String {
    s.mac
        .and_then(|m| vigil_oui::vendor(m.octets()))
        .unwrap_or("-")
        .to_string()
}

fn render(up: &NetworkUpload) -> String {
    let mut out = format!(
        "swept {} in {} s: {} devices\n",
        if up.swept.is_empty() {
            "nothing".to_string()
        } else {
            up.swept.join(", ")
        },
        up.finished_at - up.started_at,
        up.devices.len()
    );
    for s in &up.skipped {
        out.push_str(&format!("left out: {} ({})\n", s.network, s.reason));
    }
    if let Some(why) = &up.incomplete {
        out.push_str(&format!("incomplete: {why}\n"));
    }
    for d in &up.devices {
        let ports: Vec<String> = d.open_ports.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "{:<40} {:<17} {:<28} {:<24} {}\n",
            d.ip,
            d.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            vendor(d),
            d.name.as_deref().unwrap_or("-"),
            if ports.is_empty() {
                "-".into()
            } else {
                ports.join(",")
            }
        ));
    }
    if let Some(g) = &up.gateway {
        out.push_str(&format!(
            "gateway answered: {}\n",
            if g.answered.is_empty() {
                "nothing".to_string()
            } else {
                g.answered.join(", ")
            }
        ));
        for f in &g.forwards {
            out.push_str(&format!(
                "  forwards {}/{} from outside to {}:{} ({})\n",
                f.external_port, f.protocol, f.internal_client, f.internal_port, f.description
            ));
        }
    }
    out
}

pub fn run(args: SweepArgs) -> Result<ExitCode> {
    if !args.local && args.networks.is_empty() {
        return Err(usage(
            "nothing to sweep: give --local (this machine's subnets) and/or --network CIDR",
        ));
    }
    PortList::parse(&args.ports).map_err(|e| usage(format!("--ports: {e}")))?;
    for n in &args.networks {
        vigil_core::lan::network_range(n).map_err(|e| usage(format!("--network: {e}")))?;
    }
    let task = ScanTask {
        task_id: "local".into(),
        target: NETWORK_TARGET.into(),
        ports: args.ports.clone(),
        network: None,
    };
    let sweep = NetworkSweep {
        local: args.local,
        include_interfaces: args.include_interfaces,
        networks: args.networks,
        max_addresses: u64::try_from(sweep_limit(AccountKind::Organization)).unwrap_or(u64::MAX),
        audit_gateway: args.gateway,
    };
    let discovery = if args.no_arp {
        network::Discovery::Connect
    } else {
        network::Discovery::Arp
    };
    let up = super::runtime()?
        .block_on(async { network::run(&task, &sweep, ScanConfig::default(), discovery).await });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&up)?);
    } else {
        print!("{}", render(&up));
    }
    Ok(ExitCode::SUCCESS)
}
