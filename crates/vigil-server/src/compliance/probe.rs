//! Probing addresses for the compliance assessment: is the host there, and
//! does a Vigil agent answer on it (and for which server)?
//!
//! Two passes, as the original tool does it: first only the "unreachable
//! port" (default 135) on every address — a sparse range is mostly silent,
//! and a silent address needs no further checks — then the agent ports on
//! the addresses that answered, and an identify request to every agent
//! port that accepted the connection. Without an unreachable port, every
//! address gets the agent-port pass.
//!
//! Each identify request carries a fresh nonce, and a reply naming this
//! server counts only with a valid MAC over it ([`super::identify`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use vigil_core::compliance::{classify, Identified, Probe, Reachability, StatusCounts};
use vigil_core::targets::AddrRange;
use vigil_core::{PortList, PortState, TargetSpec};
use vigil_scan::{Family, ScanConfig, ScanError, Scanner, TargetSet};

use super::identify::{self, AgentKeys};

/// Identify exchanges in flight at once.
const IDENTIFY_CONCURRENCY: usize = 256;

/// How to probe.
#[derive(Debug, Clone)]
pub(crate) struct ProbePlan {
    pub unreachable_port: Option<u16>,
    pub agent_ports: Vec<u16>,
    pub identify_timeout: Duration,
    pub scan: ScanConfig,
    /// This server's ID: replies naming it must prove it.
    pub our_server_id: String,
    /// The identify keys of the assessed account's agents.
    pub keys: Arc<AgentKeys>,
}

/// Why probing stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Scan(#[from] ScanError),
}

/// Probes every address of `ranges`; calls `progress(done, total, counts)`
/// now and then, `counts` being the addresses classified so far (the
/// unreachable ones once the unreachable port is swept, all at the end).
/// Returns one [`Probe`] per address.
pub(crate) async fn probe(
    ranges: Vec<AddrRange>,
    plan: &ProbePlan,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64, u64, &StatusCounts) + Sync),
) -> Result<BTreeMap<IpAddr, Probe>, ProbeError> {
    // Nothing to probe (e.g. an AD-only scope whose computers' names did
    // not resolve): nothing probed, the join decides from AD alone.
    if ranges.is_empty() {
        progress(0, 0, &StatusCounts::default());
        return Ok(BTreeMap::new());
    }
    let specs: Vec<TargetSpec> = ranges.into_iter().map(TargetSpec::Range).collect();
    let all = TargetSet::resolve(&specs, Family::Any).await?;
    let total = all.len();
    let mut probes: BTreeMap<IpAddr, Probe> = BTreeMap::new();

    // Pass 1: the unreachable port, everywhere.
    let candidates: Vec<IpAddr> = match plan.unreachable_port {
        Some(port) => {
            let none = StatusCounts::default();
            let states = sweep(all, &[port], plan, cancel, &|d| {
                progress(d / 2, total, &none)
            })
            .await?;
            let mut answered = Vec::new();
            for ((addr, _), state) in states {
                let reach = reachability(state);
                if reach == Reachability::Answered {
                    answered.push(addr);
                }
                probes.insert(
                    addr,
                    Probe {
                        unreachable_check: Some(reach),
                        ..Probe::default()
                    },
                );
            }
            answered
        }
        None => {
            let addrs: Vec<IpAddr> = all.iter().collect();
            for a in &addrs {
                probes.insert(*a, Probe::default());
            }
            addrs
        }
    };
    let unreachable = StatusCounts {
        unreachable: (probes.len() - candidates.len()) as u64,
        ..StatusCounts::default()
    };
    progress(total / 2, total, &unreachable);

    // Pass 2: the agent ports of the addresses still in question.
    if !candidates.is_empty() {
        let specs: Vec<TargetSpec> = candidates
            .iter()
            .map(|a| TargetSpec::Range(AddrRange::single(*a)))
            .collect();
        let set = TargetSet::resolve(&specs, Family::Any).await?;
        let states = sweep(set, &plan.agent_ports, plan, cancel, &|_| {}).await?;
        let mut open = Vec::new();
        for ((addr, port), state) in states {
            if matches!(state, PortState::Open | PortState::Closed) {
                if let Some(p) = probes.get_mut(&addr) {
                    p.other_answer = true;
                }
            }
            if state == PortState::Open {
                open.push(SocketAddr::new(addr, port));
            }
        }
        for (addr, reply) in identify_all(open, plan, cancel).await? {
            if let Some(p) = probes.get_mut(&addr.ip()) {
                // The first agent port that answered wins.
                p.identify.get_or_insert(reply);
            }
        }
    }
    let counts: StatusCounts = probes
        .values()
        .map(|p| classify(p, &plan.our_server_id))
        .collect();
    progress(total, total, &counts);
    Ok(probes)
}

/// A port state as a sign of life: a refusal (RST) means the host is up.
fn reachability(state: PortState) -> Reachability {
    match state {
        PortState::Open | PortState::Closed => Reachability::Answered,
        PortState::Filtered | PortState::Unreachable => Reachability::NoAnswer,
    }
}

/// Scans `ports` of every address of `targets`.
async fn sweep(
    targets: TargetSet,
    ports: &[u16],
    plan: &ProbePlan,
    cancel: &CancellationToken,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BTreeMap<(IpAddr, u16), PortState>, ProbeError> {
    let scanner = Scanner::new(plan.scan.clone())?;
    let mut scan = scanner.start(targets, PortList::from_ports(ports.iter().copied()))?;
    let mut out = BTreeMap::new();
    loop {
        let next = tokio::select! {
            r = scan.next() => r,
            _ = cancel.cancelled() => {
                scan.cancel();
                return Err(ProbeError::Cancelled);
            }
        };
        let Some(r) = next else { break };
        out.insert((r.addr, r.port), r.state);
        if out.len() % 4096 == 0 {
            progress(out.len() as u64);
        }
    }
    Ok(out)
}

/// Sends an identify request, with a nonce of its own, to every address, a
/// bounded number at a time, and checks each reply's proof.
async fn identify_all(
    addrs: Vec<SocketAddr>,
    plan: &ProbePlan,
    cancel: &CancellationToken,
) -> Result<Vec<(SocketAddr, Identified)>, ProbeError> {
    let unique: BTreeSet<SocketAddr> = addrs.into_iter().collect();
    let limit = Arc::new(Semaphore::new(IDENTIFY_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for addr in unique {
        let limit = limit.clone();
        let (keys, ours, timeout) = (
            plan.keys.clone(),
            plan.our_server_id.clone(),
            plan.identify_timeout,
        );
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.ok()?;
            let nonce = identify::new_nonce();
            let reply = identify::ask(addr, &nonce, timeout).await.ok()?;
            Some((addr, keys.identified(reply, &nonce, &ours)))
        });
    }
    let mut out = Vec::new();
    loop {
        let next = tokio::select! {
            r = tasks.join_next() => r,
            _ = cancel.cancelled() => return Err(ProbeError::Cancelled),
        };
        match next {
            None => break,
            Some(Ok(Some(found))) => out.push(found),
            Some(_) => {}
        }
    }
    out.sort_by_key(|(a, _)| *a);
    Ok(out)
}
