//! The retention job: nothing grows forever. Every table that grows with
//! time is pruned by its own rule — how old a row must be, and how often
//! the rule runs — a small batch at a time with a pause in between, so
//! result ingestion never waits behind one long delete. What each rule
//! keeps whatever the age (the console's last results, an open alert's
//! notifications, devices someone reviewed, …) is the store's side:
//! `vigil_store`'s `retention.rs`.
//!
//! The rules, with `R` = `--retention-days` (default 90; 0 keeps the
//! history forever, and with it the rows marked *R*):
//!
//! | table | a row goes | runs | why that long |
//! |---|---|---|---|
//! | `scan_results` | received more than R ago (each target's newest stays) | hourly | the history the operator chose (Zabbix: history storage period) |
//! | `outbox` | sent or given up more than R ago (open alerts' and each contact's newest 20 stay) | hourly | delivery history, as long as the results it told of |
//! | `alerts` + their history | resolved more than R ago | hourly | the trends chart at most 90 days back; an alert's evidence (results) is gone after R anyway (Zabbix: events and problems) |
//! | `devices` + their history | gone and last seen more than R ago, and nobody decided anything for it | daily | a lost device is forgotten like Zabbix's "keep lost resources period"; randomized MACs would otherwise pile up |
//! | `agent_events` | more than max(R, 400 days) ago (each agent's newest stays) | daily | who changed what: an audit record, kept like the audit log |
//! | `audit_log` | more than max(R, 400 days) ago | daily | a year and its review (Zabbix: audit, 365 days) |
//! | `scan_tasks` | over (completed or expired) and created more than 7 days ago | hourly | work orders, not history: a result names its task, and a re-sent result is still told "duplicate" |
//! | `network_uploads` | received more than 7 days ago | hourly | only tells a re-sent sweep from a new one |
//! | `enrollment_tokens` | expired more than 30 days ago | daily | an old token is then "unknown" rather than "expired" |
//! | `install_jobs` + hosts | finished more than 30 days ago (and beyond an account's newest 20 at once) | daily | a job's result shows in the agent list and the next assessment |
//! | `api_tokens` (`sessions`) | console sessions and login tokens as soon as they end | hourly | they can never be used again |
//!
//! Bounded without this job: compliance assessments (each account's newest
//! 30 finished), device histories (the newest 100 per device), held
//! notices (released when their window ends), one row per agent or per
//! agent target elsewhere. Removed agents are kept (their history goes by
//! the rules above).
//!
//! The job runs every rule one tick after start, then each on its own
//! schedule; `kill -USR1 <pid>` runs every rule now (like Zabbix's
//! `housekeeper_execute`). `/metrics` counts the rows deleted per table
//! (`vigil_retention_pruned_rows_total{table}`) and the passes
//! (`vigil_retention_runs_total`). Every replica runs it; their batches do
//! not conflict (a row deleted by one is simply not there for the other).

use crate::app::App;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use vigil_store::{now_unix, Store, StoreError, UnixTime};

/// Rows per `DELETE`.
const BATCH: u32 = 1000;
/// Between two batches: other writers get the database.
const PAUSE: Duration = Duration::from_millis(200);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// The audit log and agents' histories are kept at least this long (a
/// year and its review), longer when scan results are.
const AUDIT_KEPT: Duration = Duration::from_secs(400 * 24 * 3600);
/// Scan tasks and network upload ids.
const WORK_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Enrollment tokens after they expire.
const TOKENS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);
/// Push-install jobs after they finish.
pub(crate) const INSTALL_JOBS_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a rule prunes; its name labels `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    ScanResults,
    Outbox,
    Alerts,
    Devices,
    AgentEvents,
    AuditLog,
    ScanTasks,
    NetworkUploads,
    EnrollmentTokens,
    InstallJobs,
    Sessions,
}

impl Table {
    const ALL: [Table; 11] = [
        Table::ScanResults,
        Table::Outbox,
        Table::Alerts,
        Table::Devices,
        Table::AgentEvents,
        Table::AuditLog,
        Table::ScanTasks,
        Table::NetworkUploads,
        Table::EnrollmentTokens,
        Table::InstallJobs,
        Table::Sessions,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Table::ScanResults => "scan_results",
            Table::Outbox => "outbox",
            Table::Alerts => "alerts",
            Table::Devices => "devices",
            Table::AgentEvents => "agent_events",
            Table::AuditLog => "audit_log",
            Table::ScanTasks => "scan_tasks",
            Table::NetworkUploads => "network_uploads",
            Table::EnrollmentTokens => "enrollment_tokens",
            Table::InstallJobs => "install_jobs",
            Table::Sessions => "sessions",
        }
    }
}

/// Every table label of `vigil_retention_pruned_rows_total`.
pub(crate) const TABLES: [&str; 11] = {
    let mut names = [""; 11];
    let mut i = 0;
    while i < Table::ALL.len() {
        names[i] = Table::ALL[i].name();
        i += 1;
    }
    names
};

/// One rule: rows of `table` older than `keep` go, every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub table: Table,
    pub keep: Duration,
    pub every: Duration,
}

/// The rules for `retention` (`--retention-days`; `None`: the history is
/// kept forever, and only what is not history is pruned).
pub(crate) fn rules(retention: Option<Duration>) -> Vec<Rule> {
    let rule = |table, keep, every| Rule { table, keep, every };
    let mut out = Vec::new();
    if let Some(r) = retention {
        out.extend([
            rule(Table::ScanResults, r, HOUR),
            rule(Table::Outbox, r, HOUR),
            rule(Table::Alerts, r, HOUR),
            rule(Table::Devices, r, DAY),
            rule(Table::AgentEvents, r.max(AUDIT_KEPT), DAY),
            rule(Table::AuditLog, r.max(AUDIT_KEPT), DAY),
        ]);
    }
    out.extend([
        rule(Table::ScanTasks, WORK_KEPT, HOUR),
        rule(Table::NetworkUploads, WORK_KEPT, HOUR),
        rule(Table::EnrollmentTokens, TOKENS_KEPT, DAY),
        rule(Table::InstallJobs, INSTALL_JOBS_KEPT, DAY),
        rule(Table::Sessions, Duration::ZERO, HOUR),
    ]);
    out
}

/// Runs until `shutdown` turns true: every rule one tick after start,
/// then each when its own period has passed, and all of them when `asked`
/// fires (SIGUSR1).
pub(crate) async fn pruner(app: Arc<App>, mut asked: Trigger, mut shutdown: watch::Receiver<bool>) {
    let rules = rules(app.cfg.retention);
    let first = Instant::now() + app.cfg.tick;
    let mut due: Vec<Instant> = rules.iter().map(|_| first).collect();
    loop {
        let next = due.iter().min().copied().unwrap_or(first);
        let forced = tokio::select! {
            _ = tokio::time::sleep_until(next) => false,
            () = asked.recv() => {
                tracing::info!("retention asked for (SIGUSR1): running every rule now");
                true
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        for (rule, due) in rules.iter().zip(due.iter_mut()) {
            if !forced && *due > Instant::now() {
                continue;
            }
            if let Err(e) = prune(
                &app.store,
                &app.metrics,
                rule,
                now_unix(),
                BATCH,
                &mut shutdown,
            )
            .await
            {
                tracing::error!(table = rule.table.name(), error = %e, "retention failed");
            }
            *due = Instant::now() + rule.every;
            if *shutdown.borrow() {
                return;
            }
        }
        app.metrics.retention_ran();
    }
}

/// Deletes what `rule` says is due at `now`, `batch` rows at a time with a
/// pause in between, until none is left or shutdown is asked for; returns
/// how many rows.
pub(crate) async fn prune(
    store: &Store,
    metrics: &Metrics,
    rule: &Rule,
    now: UnixTime,
    batch: u32,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<u64, StoreError> {
    let cutoff = now.saturating_sub(i64::try_from(rule.keep.as_secs()).unwrap_or(i64::MAX));
    let mut total = 0;
    loop {
        let deleted = match rule.table {
            Table::ScanResults => store.prune_results(cutoff, batch).await?,
            Table::Outbox => store.prune_outbox(cutoff, batch).await?,
            Table::Alerts => store.prune_alerts(cutoff, batch).await?,
            Table::Devices => store.prune_devices(cutoff, batch).await?,
            Table::AgentEvents => store.prune_agent_events(cutoff, batch).await?,
            Table::AuditLog => {
                store
                    .prune_audit(cutoff.saturating_mul(1000), batch)
                    .await?
            }
            Table::ScanTasks => store.prune_tasks(cutoff, batch).await?,
            Table::NetworkUploads => store.prune_network_uploads(cutoff, batch).await?,
            Table::EnrollmentTokens => store.prune_enrollment_tokens(cutoff, batch).await?,
            Table::InstallJobs => store.prune_install_jobs(cutoff, batch).await?,
            // Few rows (one per console login): one statement.
            Table::Sessions => {
                let n = store.prune_expired_tokens(now).await?;
                metrics.pruned(rule.table.name(), n);
                return Ok(n);
            }
        };
        metrics.pruned(rule.table.name(), deleted);
        total += deleted;
        if deleted < u64::from(batch) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(PAUSE) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    if total > 0 {
        tracing::info!(
            table = rule.table.name(),
            rows = total,
            cutoff,
            "retention pruned old rows"
        );
    }
    Ok(total)
}

/// `kill -USR1`: run the retention now. Never fires off Unix. Made when
/// the server starts, before it answers anything: from then on the signal
/// no longer ends the process.
pub(crate) struct Trigger {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Trigger {
    pub(crate) fn new() -> Trigger {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::user_defined1())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGUSR1"))
                .ok();
            Trigger { signal }
        }
        #[cfg(not(unix))]
        Trigger {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut() {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::{AccountKind, Plan};
    use vigil_store::NewScanResult;

    #[test]
    fn each_table_has_its_rule_and_schedule() {
        let days = |d: u64| Duration::from_secs(d * 24 * 3600);
        let find = |rules: &[Rule], t: Table| rules.iter().find(|r| r.table == t).copied();
        let r = rules(Some(days(90)));
        assert_eq!(r.len(), Table::ALL.len(), "every table has a rule");
        for (table, keep, every) in [
            (Table::ScanResults, days(90), HOUR),
            (Table::Outbox, days(90), HOUR),
            (Table::Alerts, days(90), HOUR),
            (Table::Devices, days(90), DAY),
            (Table::AgentEvents, days(400), DAY),
            (Table::AuditLog, days(400), DAY),
            (Table::ScanTasks, days(7), HOUR),
            (Table::NetworkUploads, days(7), HOUR),
            (Table::EnrollmentTokens, days(30), DAY),
            (Table::InstallJobs, days(30), DAY),
            (Table::Sessions, Duration::ZERO, HOUR),
        ] {
            assert_eq!(
                find(&r, table),
                Some(Rule { table, keep, every }),
                "{table:?}"
            );
        }
        // A longer retention keeps the audit records longer too.
        let long = rules(Some(days(800)));
        assert_eq!(
            find(&long, Table::AuditLog).map(|r| r.keep),
            Some(days(800))
        );
        assert_eq!(find(&long, Table::ScanTasks).map(|r| r.keep), Some(days(7)));
        // History kept forever: only what is not history goes.
        let forever: Vec<Table> = rules(None).iter().map(|r| r.table).collect();
        assert_eq!(
            forever,
            [
                Table::ScanTasks,
                Table::NetworkUploads,
                Table::EnrollmentTokens,
                Table::InstallJobs,
                Table::Sessions
            ]
        );
        assert_eq!(TABLES.len(), Table::ALL.len());
        assert!(TABLES.contains(&"scan_results") && TABLES.contains(&"sessions"));
    }

    #[tokio::test]
    async fn prunes_in_batches_and_counts_the_rows() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let account = store
            .create_account("Acme", AccountKind::Member)
            .await
            .unwrap();
        let token = store
            .create_enrollment(account.id, "web", Plan::Extended, Duration::from_secs(60))
            .await
            .unwrap();
        let (agent, _) = store.redeem_enrollment(&token, now_unix()).await.unwrap();
        let t = now_unix();
        for i in 0..6 {
            let upload_id = format!("u{i}");
            let result = NewScanResult {
                upload_id: &upload_id,
                target: "agent_host",
                addr: None,
                task_id: None,
                probed: None,
                started_at: t - 100 + i,
                finished_at: t - 100 + i,
                ports: &[],
            };
            store
                .ingest_result(account.id, agent.id, &result)
                .await
                .unwrap();
        }
        let metrics = Metrics::new();
        let (_stop, mut stopped) = watch::channel(false);
        let rule = Rule {
            table: Table::ScanResults,
            keep: Duration::from_secs(60),
            every: HOUR,
        };
        // Nothing is old enough yet.
        assert_eq!(
            prune(&store, &metrics, &rule, t, 2, &mut stopped)
                .await
                .unwrap(),
            0
        );
        // All but the newest: batches of 2, 2, 1.
        assert_eq!(
            prune(&store, &metrics, &rule, t + 120, 2, &mut stopped)
                .await
                .unwrap(),
            5
        );
        let kept = store.results(account.id, agent.id, 10).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].upload_id, "u5");
        let text = metrics.encode_text();
        assert!(text.contains("vigil_retention_pruned_rows_total{table=\"scan_results\"} 5"));
        assert!(text.contains("vigil_retention_pruned_rows_total{table=\"scan_tasks\"} 0"));
    }
}
