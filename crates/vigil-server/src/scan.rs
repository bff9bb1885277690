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
use vigil_core::targets::AddrRange;
use vigil_core::TargetSpec;
use vigil_core::{PolicyTarget, PortList, ScanStatus, SecurityPolicy};
use vigil_proto::agent::{PortObservation, ResultUpload, SELF_TARGET};
use vigil_scan::{Family, ScanConfig, Scanner, TargetSet};
use vigil_store::{now_unix, Agent, ScanTask, StoreError, UnixTime};

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

/// One pass: create the tasks of every due policy and reschedule it.
pub(crate) async fn schedule_due(app: &Arc<App>, now: UnixTime) -> Result<usize, StoreError> {
    let mut created = 0;
    for (agent, policy) in app.store.due_policies(now).await? {
        let status = app.scan_status(&agent, Some(&policy), now);
        if status != Some(ScanStatus::Active) {
            app.store
                .set_next_run(agent.account_id, agent.id, now + RECHECK_SECS)
                .await?;
            continue;
        }
        let interval = i64::from(policy.interval.minutes()) * 60;
        let ports = policy.ports_to_scan(&app.cfg.sweep_ports);
        for target in &policy.targets {
            if create_task(app, &agent, &policy, target, &ports, now, interval).await? {
                created += 1;
            }
        }
        app.store
            .set_next_run(agent.account_id, agent.id, now + interval)
            .await?;
    }
    Ok(created)
}

async fn create_task(
    app: &Arc<App>,
    agent: &Agent,
    _policy: &SecurityPolicy,
    target: &PolicyTarget,
    ports: &PortList,
    now: UnixTime,
    interval: i64,
) -> Result<bool, StoreError> {
    let key = target.key();
    // The previous run has not reported yet (agent busy or away): do not pile up.
    if app
        .store
        .has_open_task(agent.account_id, agent.id, &key, now)
        .await?
    {
        return Ok(false);
    }
    let scanned = match target {
        PolicyTarget::AgentHost => SELF_TARGET.to_string(),
        PolicyTarget::Host(h) => h.clone(),
        PolicyTarget::ObservedAddress => match &agent.public_addr {
            Some(a) => a.clone(),
            None => return Ok(false), // never heard from it yet
        },
    };
    // A task left unanswered expires with the next run, when a fresh one replaces it.
    let expires = now + interval.max(60);
    let task = app
        .store
        .create_task(
            agent.account_id,
            agent.id,
            &key,
            &scanned,
            &ports.to_string(),
            now,
            expires,
        )
        .await?;
    if matches!(target, PolicyTarget::ObservedAddress) {
        tokio::spawn(scan_from_server(
            app.clone(),
            agent.clone(),
            task,
            ports.clone(),
        ));
    }
    Ok(true)
}

/// Scans an agent's observed address from the server and ingests the result
/// like an upload.
async fn scan_from_server(app: Arc<App>, agent: Agent, task: ScanTask, ports: PortList) {
    let Ok(addr) = task.target.parse::<IpAddr>() else {
        tracing::warn!(agent = %agent.id, target = %task.target, "observed address is not an IP address");
        return;
    };
    let started_at = now_unix();
    let observed = match scan_address(addr, ports).await {
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

async fn scan_address(
    addr: IpAddr,
    ports: PortList,
) -> Result<Vec<PortObservation>, vigil_scan::ScanError> {
    let spec = TargetSpec::Range(AddrRange::single(addr));
    let targets = TargetSet::resolve(&[spec], Family::Any).await?;
    let scanner = Scanner::new(ScanConfig::default())?;
    let mut scan = scanner.start(targets, ports)?;
    let mut out = Vec::new();
    while let Some(r) = scan.next().await {
        out.push(PortObservation {
            port: r.port,
            state: r.state,
        });
    }
    out.sort_by_key(|p| p.port);
    Ok(out)
}
