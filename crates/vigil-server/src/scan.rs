//! The scheduler: turns due security-scan policies into scan tasks.
//!
//! Targets the agent scans (its own host, explicit hosts) become tasks the
//! agent receives with its next heartbeat; the location's observed address
//! is scanned from the server itself, which is the point of it (what the
//! internet sees). Both kinds of result go through the same ingestion.

use crate::app::App;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::watch;
use vigil_core::outside::RunPorts;
use vigil_core::policy::NETWORK_TASK_KEY;
use vigil_core::targets::AddrRange;
use vigil_core::TargetSpec;
use vigil_core::{PolicyTarget, PortList, ScanStatus};
use vigil_proto::agent::{PortObservation, ResultUpload, NETWORK_TARGET, SELF_TARGET};
use vigil_scan::{Family, ScanConfig, Scanner, TargetSet};
use vigil_store::{now_unix, Agent, DuePolicy, ScanTask, StoreError, TaskClaim, UnixTime};

/// While a scan is not active, how soon to look at it again (so a
/// suspended scan resumes soon after its agent is back).
const RECHECK_SECS: i64 = 30;

/// Runs until `shutdown` turns true.
pub(crate) async fn scheduler(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = schedule_due(&app, now_unix()).await {
            tracing::error!(error = %e, "scheduling security scans failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = app.scheduler_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Policies claimed per round.
const CLAIM_BATCH: u32 = 100;

/// One pass: claim the due policies (several replicas share them: each is
/// claimed by one), create their tasks and reschedule them. A claimed
/// policy stays with this replica for `Leases::policy`, longer than
/// creating its tasks takes; a replica that dies holding it delays that
/// agent's scans by at most this, and the run's tasks are created once.
pub(crate) async fn schedule_due(app: &Arc<App>, now: UnixTime) -> Result<usize, StoreError> {
    let mut created = 0;
    loop {
        let claimed = app
            .store
            .claim_due_policies(now, CLAIM_BATCH, app.cfg.leases.policy)
            .await?;
        let full = claimed.len() == CLAIM_BATCH as usize;
        for due in claimed {
            created += schedule_one(app, &due, now).await?;
        }
        if !full {
            return Ok(created);
        }
    }
}

/// Creates the tasks of one claimed policy and sets its next run.
async fn schedule_one(app: &Arc<App>, due: &DuePolicy, now: UnixTime) -> Result<usize, StoreError> {
    let (agent, policy) = (&due.agent, &due.policy);
    let status = app.scan_status(agent, Some(policy), now);
    if status != Some(ScanStatus::Active) {
        app.store
            .set_next_run(agent.account_id, agent.id, now + RECHECK_SECS)
            .await?;
        return Ok(0);
    }
    let interval = i64::from(policy.interval.minutes()) * 60;
    let ports = policy.ports_to_scan(&app.cfg.sweep_ports);
    let mut created = 0;
    let mut outside_scanned = false;
    let run = Run {
        id: &due.run,
        now,
        interval,
    };
    for target in policy.targets.iter().filter(|t| !t.is_network()) {
        let outside = *target == PolicyTarget::ObservedAddress;
        let ports = match outside {
            true => outside_ports(app, due).await?,
            false => ports.clone(),
        };
        if create_task(app, agent, Some(target), &ports, run).await? {
            created += 1;
            outside_scanned |= outside;
        }
    }
    // One sweep covers the local network and every network added to it,
    // on the LAN ports (not the observed-address sweep's full range).
    let lan_ports = policy.ports_to_scan(&vigil_core::lan::scope::lan_ports());
    if policy.sweeps_networks() && create_task(app, agent, None, &lan_ports, run).await? {
        created += 1;
    }
    app.store
        .end_run(agent.account_id, agent.id, now + interval, outside_scanned)
        .await?;
    Ok(created)
}

/// The ports this run's scan of the observed address probes, by the
/// account's outside-scan schedule ([`vigil_core::outside`]): the policy's,
/// those with a condition raised or pending (an unauthorized port open, a
/// port whose alert waits for a second scan to clear), the most common
/// ones, and the run's slice of the sweep range. (An open port is either
/// the policy's or raised an alert, so nothing open is left to its slice.)
async fn outside_ports(app: &Arc<App>, due: &DuePolicy) -> Result<PortList, StoreError> {
    let (agent, policy) = (&due.agent, &due.policy);
    let schedule = app.store.outside_schedule(agent.account_id).await?;
    let key = PolicyTarget::ObservedAddress.key();
    let state = app
        .store
        .target_state(agent.account_id, agent.id, &key)
        .await?;
    Ok(schedule.ports(RunPorts {
        range: &app.cfg.sweep_ports,
        ranked: &app.ranked_ports,
        policy: &policy.ports_to_scan(&PortList::from_ports([])),
        watched: &state.tracked_ports(),
        interval_secs: policy.interval.minutes().saturating_mul(60),
        run: due.outside_runs,
    }))
}

/// The scheduled run a task is created for.
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    /// [`DuePolicy::run`].
    id: &'a str,
    now: UnixTime,
    /// Seconds to the next run.
    interval: i64,
}

/// Creates the run's task for `target` (`None`: the local-network sweep,
/// see [`vigil_core::policy::NETWORK_TASK_KEY`]); `false` if there is none
/// to create (the previous one is still open, no address yet, or a replica
/// that died before rescheduling created this run's already).
async fn create_task(
    app: &Arc<App>,
    agent: &Agent,
    target: Option<&PolicyTarget>,
    ports: &PortList,
    run: Run<'_>,
) -> Result<bool, StoreError> {
    let Run { now, interval, .. } = run;
    let key = target.map_or_else(|| NETWORK_TASK_KEY.to_string(), PolicyTarget::key);
    // The previous run has not reported yet (agent busy or away): do not pile up.
    if app
        .store
        .has_open_task(agent.account_id, agent.id, &key, now)
        .await?
    {
        return Ok(false);
    }
    let scanned = match target {
        Some(PolicyTarget::AgentHost) => SELF_TARGET.to_string(),
        Some(PolicyTarget::Host(h)) => h.clone(),
        Some(PolicyTarget::ObservedAddress) => match &agent.public_addr {
            Some(a) if scan_refused(app, agent, a) => return Ok(false),
            Some(a) => a.clone(),
            None => return Ok(false), // never heard from it yet
        },
        None | Some(PolicyTarget::LocalNetwork | PolicyTarget::Network(_)) => {
            NETWORK_TARGET.to_string()
        }
    };
    // A task left unanswered expires with the next run, when a fresh one replaces it.
    let expires = now + interval.max(60);
    let created = app
        .store
        .create_task(
            agent.account_id,
            agent.id,
            &key,
            &scanned,
            &ports.to_string(),
            now,
            expires,
            Some(run.id),
        )
        .await;
    let task = match created {
        Ok(task) => task,
        Err(StoreError::Conflict) => {
            // A replica that died after creating it, before rescheduling.
            tracing::debug!(agent = %agent.id, target = %key, run = run.id, "run already scheduled");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    app.metrics.task_created(&key);
    if matches!(target, Some(PolicyTarget::ObservedAddress)) {
        // Run by whichever replica claims it (see `server_scans`).
        tracing::debug!(agent = %agent.id, task = %task.id, "server-side scan queued");
        app.server_scan_wake.notify_one();
    }
    Ok(true)
}

/// Runs the scans of agents' observed addresses that this replica claims
/// (the tasks the scheduler queued, in any replica), until `shutdown`
/// turns true. It holds as many as the scan budget takes at once
/// ([`crate::budget::ScanBudget::scans_at_once`]: with SYN probes, enough
/// to keep the one engine's rate busy; the engine's rate and fair shares,
/// not a count of scans, bound the work). A claim lasts `Leases::scan` without a
/// renewal and is renewed every third of it while the scan runs, so a
/// replica that dies gives its scans up within that.
pub(crate) async fn server_scans(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let key = PolicyTarget::ObservedAddress.key();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let free = app
            .scan_budget
            .scans_at_once()
            .saturating_sub(running.len());
        if free > 0 {
            let claims = app
                .store
                .claim_server_tasks(&key, now_unix(), free as u32, app.cfg.leases.scan)
                .await;
            match claims {
                Ok(claims) => {
                    for claim in claims {
                        running.spawn(run_claimed(app.clone(), claim));
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming server-side scans failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = app.server_scan_wake.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Runs one claimed scan, renewing the claim while it runs; stops if the
/// claim is lost (another replica has the task).
async fn run_claimed(app: Arc<App>, mut claim: TaskClaim) {
    let ports = match PortList::parse(&claim.task.ports) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(task = %claim.task.id, error = %e, "unreadable ports of a server-side scan");
            return;
        }
    };
    tracing::debug!(agent = %claim.agent.id, task = %claim.task.id, "server-side scan claimed");
    let lease = app.cfg.leases.scan;
    let scan = scan_from_server(app.clone(), claim.agent.clone(), claim.task.clone(), ports);
    tokio::pin!(scan);
    let mut renew = tokio::time::interval(lease / 3);
    renew.tick().await; // the first tick is now
    loop {
        tokio::select! {
            () = &mut scan => return,
            _ = renew.tick() => {
                match app.store.extend_task_claim(&mut claim, now_unix(), lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(task = %claim.task.id, "lost the claim of a server-side scan; stopping it");
                        return;
                    }
                    Err(e) => tracing::warn!(task = %claim.task.id, error = %e, "renewing a server-side scan's claim failed"),
                }
            }
        }
    }
}

/// Whether the operator's network policy refuses scanning `addr` (an
/// agent's observed address: loopback when the agent runs beside the
/// server, or whatever a proxy in front of the agent API makes it); logged.
fn scan_refused(app: &App, agent: &Agent, addr: &str) -> bool {
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    match app
        .cfg
        .net_policy
        .check(vigil_core::netpolicy::Destination::Scan, ip)
    {
        Ok(()) => false,
        Err(refusal) => {
            tracing::warn!(agent = %agent.id, %refusal, "server-side scan not run");
            true
        }
    }
}

/// Scans an agent's observed address from the server and ingests the result
/// like an upload.
async fn scan_from_server(app: Arc<App>, agent: Agent, task: ScanTask, ports: PortList) {
    let Ok(addr) = task.target.parse::<IpAddr>() else {
        tracing::warn!(agent = %agent.id, target = %task.target, "observed address is not an IP address");
        return;
    };
    if scan_refused(&app, &agent, &task.target) {
        return;
    }
    let started_at = now_unix();
    let config = app.scan_budget.scan_config(agent.account_id);
    let observed = match scan_address(addr, ports, config).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(agent = %agent.id, %addr, error = %e, "server-side scan failed");
            return;
        }
    };
    let upload = ResultUpload {
        upload_id: format!("server-{}", task.id),
        task_id: task.id.to_string(),
        target: task.target.clone(),
        addr: addr.to_string(),
        started_at,
        finished_at: now_unix(),
        ports: observed,
    };
    if let Err(e) = app.ingest(&agent, &upload, now_unix()).await {
        tracing::error!(agent = %agent.id, error = %e, "storing a server-side scan failed");
    }
}

/// Scans `ports` of `addr` with `config` (which draws on the server's
/// scan budget, see [`crate::budget`]).
async fn scan_address(
    addr: IpAddr,
    ports: PortList,
    config: ScanConfig,
) -> Result<Vec<PortObservation>, vigil_scan::ScanError> {
    let spec = TargetSpec::Range(AddrRange::single(addr));
    let targets = TargetSet::resolve(&[spec], Family::Any).await?;
    let scanner = Scanner::new(config)?;
    let mut scan = scanner.start(targets, ports)?;
    let mut out = Vec::new();
    while let Some(r) = scan.next().await {
        out.push(PortObservation {
            port: r.port,
            state: r.state,
            details: None,
        });
    }
    out.sort_by_key(|p| p.port);
    Ok(out)
}
