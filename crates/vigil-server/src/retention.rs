//! The retention job: scan result history older than the retention period
//! (`--retention-days`) is deleted, a small batch at a time with a pause
//! in between, so result ingestion never waits behind one long delete.
//! What is kept and why: see `Store::prune_results`.
//!
//! Every replica runs it; their batches do not conflict (a row deleted by
//! one is simply not there for the other).

use crate::app::App;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use vigil_store::{now_unix, Store, StoreError, UnixTime};

/// Rows per `DELETE`.
const BATCH: u32 = 1000;
/// Between two batches: other writers get the database.
const PAUSE: Duration = Duration::from_millis(200);
/// Between two runs.
const EVERY: Duration = Duration::from_secs(3600);
/// The audit log is kept at least this long (400 days: a year and its
/// review), longer when scan results are.
const AUDIT_KEEP_SECS: i64 = 400 * 24 * 3600;

/// Runs until `shutdown` turns true: first one tick after start, then hourly.
pub(crate) async fn pruner(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let Some(keep) = app.cfg.retention else {
        // Kept forever; a job must not end before shutdown.
        let _ = shutdown.wait_for(|stop| *stop).await;
        return;
    };
    let keep = i64::try_from(keep.as_secs()).unwrap_or(i64::MAX);
    let mut wait = app.cfg.tick;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        wait = EVERY;
        let cutoff = now_unix().saturating_sub(keep);
        if let Err(e) = prune(&app.store, &app.metrics, cutoff, BATCH, &mut shutdown).await {
            tracing::error!(error = %e, "pruning old scan results failed");
        }
        let audit_cutoff = now_unix().saturating_sub(keep.max(AUDIT_KEEP_SECS));
        match app
            .store
            .prune_audit(audit_cutoff.saturating_mul(1000))
            .await
        {
            Ok(n) => app.metrics.pruned("audit_log", n),
            Err(e) => tracing::error!(error = %e, "pruning the old audit log failed"),
        }
    }
}

/// Deletes the scan results due before `cutoff`, `batch` rows at a time,
/// until none is left or shutdown is asked for; returns how many.
pub(crate) async fn prune(
    store: &Store,
    metrics: &Metrics,
    cutoff: UnixTime,
    batch: u32,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let deleted = store.prune_results(cutoff, batch).await?;
        metrics.pruned("scan_results", deleted);
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
        tracing::info!(rows = total, cutoff, "pruned old scan results");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::{AccountKind, Plan};
    use vigil_store::NewScanResult;

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
        // Nothing is old enough yet.
        assert_eq!(
            prune(&store, &metrics, t - 60, 2, &mut stopped)
                .await
                .unwrap(),
            0
        );
        // All but the newest: batches of 2, 2, 1.
        assert_eq!(
            prune(&store, &metrics, t + 60, 2, &mut stopped)
                .await
                .unwrap(),
            5
        );
        let kept = store.results(account.id, agent.id, 10).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].upload_id, "u5");
        assert!(metrics
            .encode_text()
            .contains("vigil_retention_pruned_rows_total{table=\"scan_results\"} 5"));
    }
}
