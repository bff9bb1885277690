//! Assessments: one run over an account's compliance scope, with its
//! progress and how it ended.

use super::{db_count, stored_count};
use crate::ids::{AccountId, AssessmentId};
use crate::model::{parse_stored, UnixTime};
use crate::validate;
use crate::{with_pool, Assessment, AssessmentState, AssessmentTrigger, Result, Store, StoreError};
use vigil_core::compliance::StatusCounts;

#[derive(sqlx::FromRow)]
struct AssessmentRow {
    id: String,
    account_id: String,
    started_at: i64,
    finished_at: Option<i64>,
    state: String,
    error: Option<String>,
    total: i64,
    done: i64,
    on_demand: bool,
    trigger: String,
    live_counts: Option<String>,
}

macro_rules! assessment_cols {
    () => {
        "id, account_id, started_at, finished_at, state, error, total, done, on_demand, trigger, \
         live_counts"
    };
}

impl TryFrom<AssessmentRow> for Assessment {
    type Error = StoreError;

    fn try_from(r: AssessmentRow) -> Result<Assessment> {
        Ok(Assessment {
            id: AssessmentId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            started_at: r.started_at,
            finished_at: r.finished_at,
            state: parse_stored("assessment state", &r.state)?,
            error: r.error,
            total: stored_count(r.total)?,
            done: stored_count(r.done)?,
            on_demand: r.on_demand,
            trigger: parse_stored("assessment trigger", &r.trigger)?,
            // Written only by this crate; a value that does not parse is
            // shown as "nothing counted yet" rather than failing the read.
            live_counts: r
                .live_counts
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
        })
    }
}

impl Store {
    /// Starts an assessment of `total` addresses or computers at `now`: in
    /// one transaction the account's running assessment (if any) is
    /// cancelled (finished at `now`) and the new one is stored as running.
    pub async fn start_assessment(
        &self,
        account: AccountId,
        on_demand: bool,
        trigger: AssessmentTrigger,
        total: u64,
        now: UnixTime,
    ) -> Result<AssessmentId> {
        let total = db_count("total", total)?;
        let id = AssessmentId::random();
        const CANCEL: &str = "UPDATE compliance_assessments \
             SET state = 'cancelled', finished_at = $2 \
             WHERE account_id = $1 AND state = 'running'";
        const INSERT: &str = "INSERT INTO compliance_assessments \
                 (id, account_id, serial, started_at, state, total, done, on_demand, trigger) \
             SELECT $1, $2, COALESCE(MAX(serial), 0) + 1, $3, 'running', $4, 0, $5, $6 \
             FROM compliance_assessments WHERE account_id = $2";

        // Concurrent starts of one account queue (see `in_account_tx`).
        crate::in_account_tx!(self, account, |tx| {
            sqlx::query(CANCEL)
                .bind(account.db())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT)
                .bind(id.db())
                .bind(account.db())
                .bind(now)
                .bind(total)
                .bind(on_demand)
                .bind(trigger.as_str())
                .execute(&mut *tx)
                .await?;
        });
        Ok(id)
    }

    /// Keeps the running assessment with the replica running it until
    /// `until`. Returns whether it still runs (`false`: it ended, or another
    /// replica reclaimed it: stop).
    pub async fn renew_assessment_lease(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        until: UnixTime,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE compliance_assessments SET lease_until = $3 \
             WHERE id = $1 AND account_id = $2 AND state = 'running'",
        )
        .bind(assessment.db())
        .bind(account.db())
        .bind(until)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.still_running(account, assessment, n).await
    }

    /// Ends, as failed with `error`, the running assessments whose replica
    /// stopped renewing them: lease over at `now` (one never renewed counts
    /// from its start plus `grace`). Each is returned to one caller only, to
    /// run again.
    pub async fn reclaim_stalled_assessments(
        &self,
        now: UnixTime,
        grace: std::time::Duration,
        error: &str,
    ) -> Result<Vec<Assessment>> {
        let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let error = validate::error_message(error);
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AssessmentRow>(concat!(
            "UPDATE compliance_assessments SET state = 'failed', error = $3, finished_at = $1 \
             WHERE state = 'running' AND COALESCE(lease_until, started_at + $2) <= $1 \
             RETURNING ", assessment_cols!()
        ))
        .bind(now)
        .bind(grace)
        .bind(error)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Assessment::try_from).collect()
    }

    /// Records the endpoints per status known so far of a running
    /// assessment (nothing once it ended). Returns whether it still runs;
    /// not found for an unknown assessment, like the other updates.
    pub async fn set_assessment_live_counts(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        counts: &StatusCounts,
    ) -> Result<bool> {
        let json = serde_json::to_string(counts)
            .map_err(|e| StoreError::invalid(format!("status counts: {e}")))?;
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE compliance_assessments SET live_counts = $3 \
             WHERE id = $1 AND account_id = $2 AND state = 'running'",
        )
        .bind(assessment.db())
        .bind(account.db())
        .bind(json)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.still_running(account, assessment, n).await
    }

    /// Records progress: `done` of `total`. Returns whether the assessment is
    /// still running (`false`, and nothing recorded, once it ended or was
    /// cancelled: the engine should stop).
    pub async fn set_assessment_progress(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        done: u64,
        total: u64,
    ) -> Result<bool> {
        if done > total {
            return Err(StoreError::invalid(format!(
                "assessment progress {done} is more than the total {total}"
            )));
        }
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE compliance_assessments SET done = $3, total = $4 \
             WHERE id = $1 AND account_id = $2 AND state = 'running'",
        )
        .bind(assessment.db())
        .bind(account.db())
        .bind(db_count("done", done)?)
        .bind(db_count("total", total)?)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.still_running(account, assessment, n).await
    }

    /// Ends a running assessment at `now` as `state` (done, cancelled or
    /// failed) with an optional error message (cut to 2000 characters).
    /// Returns whether this call ended it: `false` if it had already ended
    /// (a cancelled assessment stays cancelled).
    pub async fn finish_assessment(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        state: AssessmentState,
        error: Option<&str>,
        now: UnixTime,
    ) -> Result<bool> {
        if state == AssessmentState::Running {
            return Err(StoreError::invalid(
                "an assessment finishes as done, cancelled or failed, not running",
            ));
        }
        let error = error.map(validate::error_message);
        let n = with_pool!(self, pool => sqlx::query(
            "UPDATE compliance_assessments SET state = $3, error = $4, finished_at = $5 \
             WHERE id = $1 AND account_id = $2 AND state = 'running'",
        )
        .bind(assessment.db())
        .bind(account.db())
        .bind(state.as_str())
        .bind(error.as_deref())
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        self.still_running(account, assessment, n).await
    }

    /// After an update of a running assessment that changed `n` rows:
    /// whether it still ran, or not found if there is no such assessment.
    async fn still_running(
        &self,
        account: AccountId,
        assessment: AssessmentId,
        n: u64,
    ) -> Result<bool> {
        if n == 0 {
            self.assessment(account, assessment).await?;
        }
        Ok(n > 0)
    }

    pub async fn assessment(
        &self,
        account: AccountId,
        assessment: AssessmentId,
    ) -> Result<Assessment> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AssessmentRow>(concat!(
            "SELECT ", assessment_cols!(), " FROM compliance_assessments \
             WHERE id = $1 AND account_id = $2"
        ))
        .bind(assessment.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// The account's newest assessment (by start), running or not.
    pub async fn latest_assessment(&self, account: AccountId) -> Result<Option<Assessment>> {
        Ok(self.assessments(account, 1).await?.pop())
    }

    /// The account's assessments, newest first, at most `limit` (1 to 1000).
    pub async fn assessments(&self, account: AccountId, limit: u32) -> Result<Vec<Assessment>> {
        let limit = validate::limit(limit)?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AssessmentRow>(concat!(
            "SELECT ", assessment_cols!(), " FROM compliance_assessments \
             WHERE account_id = $1 ORDER BY started_at DESC, serial DESC LIMIT $2"
        ))
        .bind(account.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Assessment::try_from).collect()
    }

    /// Whether the assessment is still running (the engine stops when not).
    pub async fn is_assessment_running(
        &self,
        account: AccountId,
        assessment: AssessmentId,
    ) -> Result<bool> {
        let state = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT state FROM compliance_assessments WHERE id = $1 AND account_id = $2",
        )
        .bind(assessment.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        Ok(state.ok_or(StoreError::NotFound)? == AssessmentState::Running.as_str())
    }

    /// Deletes the account's finished assessments (with their endpoints)
    /// except the newest `keep`; a running one is never deleted. Returns how
    /// many were deleted.
    pub async fn prune_assessments(&self, account: AccountId, keep: u32) -> Result<u64> {
        let n = with_pool!(self, pool => sqlx::query(
            "DELETE FROM compliance_assessments \
             WHERE account_id = $1 AND state <> 'running' AND id NOT IN ( \
                 SELECT id FROM compliance_assessments \
                 WHERE account_id = $1 AND state <> 'running' \
                 ORDER BY started_at DESC, serial DESC LIMIT $2)",
        )
        .bind(account.db())
        .bind(i64::from(keep))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }
}
