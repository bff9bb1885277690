//! Scheduled compliance assessments: the runner that starts each account's
//! assessment when its schedule is due, and the history kept of them.
//!
//! Every tick the runner asks the store for schedules whose next run is
//! due, first moves each one on to its next run (so a schedule that cannot
//! start — no scope, nothing to assess — is not retried every tick, and a
//! server that was down does not catch up with a burst of runs), then
//! starts the assessment with [`AssessmentTrigger::Schedule`].
//!
//! A run that falls due while the account's previous assessment is still
//! going is skipped (and logged): starting it would cancel the running one,
//! so a scope that takes longer than its interval would never finish, and a
//! user's manual assessment would be cut short by the clock.

use super::StartError;
use crate::app::App;
use std::sync::Arc;
use tokio::sync::watch;
use vigil_store::{
    now_unix, AccountId, AssessmentState, AssessmentTrigger, Store, StoreError, UnixTime,
};

/// How many finished assessments (with their endpoints) each account keeps:
/// a month of daily runs. Older ones are deleted when a newer one ends.
pub(crate) const HISTORY_KEEP: u32 = 30;

/// What one due schedule came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Started,
    /// The previous assessment still runs.
    SkippedRunning,
    /// No scope saved, or nothing in it to assess.
    SkippedNoScope,
}

/// Runs until `shutdown` turns true.
pub(crate) async fn runner(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if let Err(e) = app.resume_stalled_assessments().await {
            tracing::error!(error = %e, "looking for interrupted compliance assessments failed");
        }
        if let Err(e) = run_due(&app, now_unix()).await {
            tracing::error!(error = %e, "starting scheduled compliance assessments failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One pass: every schedule due at `now` is moved on to its next run and
/// its assessment started (or skipped). Returns what happened to each.
pub(crate) async fn run_due(
    app: &Arc<App>,
    now: UnixTime,
) -> Result<Vec<(AccountId, Outcome)>, StoreError> {
    let mut out = Vec::new();
    for (account, schedule) in app.store.due_compliance_schedules(now).await? {
        let next = schedule.next_run(now);
        // Several replicas see the same due schedule: the one that moves it
        // on runs it.
        match app.store.claim_compliance_run(account, now, next).await {
            Ok(true) => {}
            Ok(false) | Err(StoreError::NotFound) => continue, // another replica has it, or the account is gone
            Err(e) => return Err(e),
        }
        let outcome = run_one(app, account).await?;
        match outcome {
            Outcome::Started => {}
            Outcome::SkippedRunning => tracing::info!(
                %account, next_run_at = ?next,
                "scheduled compliance assessment skipped: the previous one is still running"
            ),
            Outcome::SkippedNoScope => tracing::warn!(
                %account, next_run_at = ?next,
                "scheduled compliance assessment skipped: no scope to assess (save one with \
                 PUT /api/v1/compliance/scope)"
            ),
        }
        out.push((account, outcome));
    }
    Ok(out)
}

async fn run_one(app: &Arc<App>, account: AccountId) -> Result<Outcome, StoreError> {
    let running = app
        .store
        .latest_assessment(account)
        .await?
        .is_some_and(|a| a.state == AssessmentState::Running);
    if running {
        return Ok(Outcome::SkippedRunning);
    }
    match app
        .start_assessment(account, AssessmentTrigger::Schedule)
        .await
    {
        Ok(id) => {
            tracing::info!(%account, assessment = %id, "scheduled compliance assessment started");
            Ok(Outcome::Started)
        }
        Err(StartError::NoScope | StartError::Empty) => Ok(Outcome::SkippedNoScope),
        Err(StartError::Store(e)) => Err(e),
    }
}

/// Deletes the account's oldest finished assessments beyond
/// [`HISTORY_KEEP`], but never the newest completed on-demand one: a
/// database-only assessment starts from it.
pub(crate) async fn prune_history(store: &Store, account: AccountId) -> Result<u64, StoreError> {
    // Enough to see past HISTORY_KEEP finished ones and a running one.
    let recent = store.assessments(account, 1000).await?;
    let finished: Vec<_> = recent
        .iter()
        .filter(|a| a.state != AssessmentState::Running)
        .collect();
    let base = finished
        .iter()
        .position(|a| a.state == AssessmentState::Done && a.on_demand);
    store.prune_assessments(account, keep_count(base)).await
}

/// How many of the newest finished assessments to keep, given the position
/// (among them, newest first) of the newest completed on-demand one.
fn keep_count(base: Option<usize>) -> u32 {
    let needed = base.map_or(0, |i| u32::try_from(i + 1).unwrap_or(u32::MAX));
    HISTORY_KEEP.max(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_and_the_on_demand_base() {
        let keep = HISTORY_KEEP as usize;
        let cases: &[(Option<usize>, u32)] = &[
            (None, HISTORY_KEEP),
            (Some(0), HISTORY_KEEP),
            (Some(keep - 1), HISTORY_KEEP),
            // The base is older than the kept window: keep up to it.
            (Some(keep + 4), HISTORY_KEEP + 5),
        ];
        for &(base, want) in cases {
            assert_eq!(keep_count(base), want, "{base:?}");
        }
    }
}
