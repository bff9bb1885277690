//! Alerts: one record per occurrence of a condition on an agent's target,
//! acknowledged by a person or not, with its history.
//!
//! # History
//!
//! Every store operation that changes an alert records what happened in
//! `alert_events`, in the same transaction: [`Store::open_alert`] (raised),
//! [`Store::resolve_alert`], [`Store::set_alert_flapping`],
//! [`Store::acknowledge_alert`]. Notifications about an alert are queued
//! with [`Store::enqueue_for_alert`], which links the outbox row to the
//! alert; when the outbox marks such a row sent or failed
//! ([`Store::mark_sent`], [`Store::mark_failed`]) the delivery lands in the
//! alert's history too. So callers cannot forget an entry, and the history
//! never claims a change that was rolled back.
//!
//! Entries are numbered per alert (`seq`): each one bumps the alert's
//! `last_event_seq` first, which also makes concurrent writers of one alert
//! wait for each other.
//!
//! # Acknowledging
//!
//! Like PagerDuty and Zabbix, acknowledging tells the team that someone is
//! on it; it does not resolve anything (only the scans do). Only an open,
//! unacknowledged alert can be acknowledged: the first acknowledgement
//! stays (who and when), and the store reports an alert that is already
//! acknowledged or resolved instead of changing it ([`AckOutcome`]).

use crate::ids::{AccountId, AgentId, AlertId, ContactId};
use crate::model::{condition_kind_str, parse_condition, parse_stored, UnixTime};
use crate::validate;
use crate::{
    with_pool, AckFilter, AckOutcome, Alert, AlertEvent, AlertEventKind, AlertFilter, AlertStatus,
    Contact, Result, Store, StoreError, User,
};
use vigil_core::{Condition, Resolution};

/// The longest acknowledgement note, in characters (after trimming).
pub const MAX_ACK_NOTE_CHARS: usize = 2000;

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    account_id: String,
    agent_id: String,
    target: String,
    kind: String,
    port: Option<i64>,
    status: String,
    flapping: bool,
    raised_at: i64,
    resolved_at: Option<i64>,
    resolution: Option<String>,
    resolved_by: Option<String>,
    acknowledged_at: Option<i64>,
    acknowledged_by: Option<String>,
    ack_note: Option<String>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(r: AlertRow) -> Result<Alert> {
        Ok(Alert {
            id: AlertId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            agent_id: AgentId::from_db(&r.agent_id)?,
            target: r.target,
            condition: parse_condition(&r.kind, r.port)?,
            status: parse_stored("alert status", &r.status)?,
            flapping: r.flapping,
            raised_at: r.raised_at,
            resolved_at: r.resolved_at,
            resolution: r
                .resolution
                .as_deref()
                .map(|text| {
                    Resolution::parse(text).map_err(|_| StoreError::corrupt("resolution", text))
                })
                .transpose()?,
            resolved_by: r.resolved_by,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            ack_note: r.ack_note,
        })
    }
}

macro_rules! alert_cols {
    () => {
        "id, account_id, agent_id, target, kind, port, status, flapping, raised_at, resolved_at, \
         resolution, resolved_by, acknowledged_at, acknowledged_by, ack_note"
    };
}

#[derive(sqlx::FromRow)]
struct EventRow {
    alert_id: String,
    seq: i64,
    occurred_at: i64,
    kind: String,
    actor: Option<String>,
    detail: Option<String>,
    contact_id: Option<String>,
    contact_name: Option<String>,
    channel: Option<String>,
    attempt: Option<i64>,
    error: Option<String>,
    retry_at: Option<i64>,
}

impl TryFrom<EventRow> for AlertEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<AlertEvent> {
        Ok(AlertEvent {
            alert_id: AlertId::from_db(&r.alert_id)?,
            seq: u64::try_from(r.seq)
                .map_err(|_| StoreError::corrupt("event seq", &r.seq.to_string()))?,
            at: r.occurred_at,
            kind: parse_stored("alert event kind", &r.kind)?,
            actor: r.actor,
            detail: r.detail,
            contact_id: r
                .contact_id
                .as_deref()
                .map(ContactId::from_db)
                .transpose()?,
            contact_name: r.contact_name,
            channel: r
                .channel
                .as_deref()
                .map(|c| parse_stored("channel", c))
                .transpose()?,
            attempt: r.attempt.map(|a| u32::try_from(a).unwrap_or(u32::MAX)),
            error: r.error,
            retry_at: r.retry_at,
        })
    }
}

/// An entry to record in an alert's history (see [`record_event`]).
pub(crate) struct NewEvent<'a> {
    pub kind: AlertEventKind,
    pub at: UnixTime,
    pub actor: Option<&'a str>,
    pub detail: Option<&'a str>,
    /// The contact's id (database text), name and channel.
    pub contact: Option<(&'a str, &'a str, &'a str)>,
    pub attempt: Option<i64>,
    pub error: Option<&'a str>,
    pub retry_at: Option<UnixTime>,
}

impl NewEvent<'_> {
    pub(crate) fn new(kind: AlertEventKind, at: UnixTime) -> Self {
        NewEvent {
            kind,
            at,
            actor: None,
            detail: None,
            contact: None,
            attempt: None,
            error: None,
            retry_at: None,
        }
    }
}

/// Bumps the alert's event counter (locking its row until the transaction ends).
pub(crate) const BUMP_SEQ: &str = "UPDATE alerts SET last_event_seq = last_event_seq + 1 \
     WHERE id = $1 AND account_id = $2 RETURNING last_event_seq";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO alert_events (alert_id, account_id, seq, \
         occurred_at, kind, actor, detail, contact_id, contact_name, channel, attempt, error, \
         retry_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Records `$event` (a `&NewEvent`) in the history of alert `$alert` of
/// `$account` (both database text) inside transaction `$tx`, after the
/// change it describes. Evaluates to `Result<bool, sqlx::Error>`: `false`
/// (nothing recorded) when the account has no such alert.
macro_rules! record_event {
    ($tx:ident, $alert:expr, $account:expr, $event:expr) => {
        async {
            let e: &$crate::alerts::NewEvent<'_> = $event;
            let seq: Option<i64> = sqlx::query_scalar($crate::alerts::BUMP_SEQ)
                .bind($alert)
                .bind($account)
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some(seq) = seq {
                sqlx::query($crate::alerts::INSERT_EVENT)
                    .bind($alert)
                    .bind($account)
                    .bind(seq)
                    .bind(e.at)
                    .bind(e.kind.as_str())
                    .bind(e.actor)
                    .bind(e.detail)
                    .bind(e.contact.map(|c| c.0))
                    .bind(e.contact.map(|c| c.1))
                    .bind(e.contact.map(|c| c.2))
                    .bind(e.attempt)
                    .bind(e.error)
                    .bind(e.retry_at)
                    .execute(&mut *$tx)
                    .await?;
            }
            Ok::<bool, sqlx::Error>(seq.is_some())
        }
        .await
    };
}
pub(crate) use record_event;

/// An outbox row that is about an alert, with its contact as it is now.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    pub alert_id: String,
    pub account_id: String,
    pub contact_id: String,
    pub contact_name: String,
    pub channel: String,
    pub attempts: i64,
}

pub(crate) const DELIVERY_ROW: &str = "SELECT o.alert_id, o.account_id, o.contact_id, \
         c.name AS contact_name, c.channel, o.attempts \
     FROM outbox o JOIN contacts c ON c.id = o.contact_id AND c.account_id = o.account_id \
     WHERE o.id = $1 AND o.alert_id IS NOT NULL";

/// Records what became of outbox row `$outbox` (an [`crate::OutboxId`]) in
/// the history of the alert it is about, if any, inside transaction `$tx`
/// (after the outbox row was updated). `$event` is a `NewEvent` of kind
/// delivered or failed; the contact and attempt are filled in here.
/// Evaluates to `Result<(), sqlx::Error>`.
macro_rules! record_delivery {
    ($tx:ident, $outbox:expr, $event:expr) => {
        async {
            let row: Option<$crate::alerts::DeliveryRow> =
                sqlx::query_as($crate::alerts::DELIVERY_ROW)
                    .bind($outbox.db())
                    .fetch_optional(&mut *$tx)
                    .await?;
            if let Some(r) = row {
                let event = $crate::alerts::NewEvent {
                    contact: Some((&r.contact_id, &r.contact_name, &r.channel)),
                    attempt: Some(r.attempts),
                    ..$event
                };
                $crate::alerts::record_event!($tx, &r.alert_id, &r.account_id, &event)?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await
    };
}
pub(crate) use record_delivery;

/// The port as stored, and as compared by the one-open-alert index (`-1` for none).
fn port_key(c: &Condition) -> i64 {
    c.port.map_or(-1, i64::from)
}

/// An acknowledgement note: trimmed (`None` when empty), line breaks as
/// `\n`, at most [`MAX_ACK_NOTE_CHARS`] characters, no other control characters.
fn ack_note(note: Option<&str>) -> Result<Option<String>> {
    let Some(note) = note.map(|n| n.trim().replace("\r\n", "\n")) else {
        return Ok(None);
    };
    if note.is_empty() {
        return Ok(None);
    }
    if note.chars().count() > MAX_ACK_NOTE_CHARS {
        return Err(StoreError::invalid(format!(
            "the note is longer than {MAX_ACK_NOTE_CHARS} characters"
        )));
    }
    if note
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(StoreError::invalid(
            "the note must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(Some(note))
}

impl Store {
    /// Opens an alert for `condition` on the agent's `target`, raised at
    /// `now`, and records `raised` (and `flapping_started` if `flapping`) in
    /// its history. There is at most one open alert per (agent, target,
    /// condition): if one is already open it is returned unchanged.
    pub async fn open_alert(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        condition: Condition,
        flapping: bool,
        now: UnixTime,
    ) -> Result<Alert> {
        validate::target(target)?;
        // A concurrent resolve can remove the conflicting open alert between
        // our insert and lookup; then simply try again.
        for _ in 0..3 {
            let id = AlertId::random();
            let row = with_pool!(self, pool => async {
                let mut tx = pool.begin().await?;
                let row = sqlx::query_as::<_, AlertRow>(concat!(
                    "INSERT INTO alerts (id, account_id, agent_id, target, kind, port, status, \
                         flapping, raised_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8) \
                     ON CONFLICT DO NOTHING RETURNING ", alert_cols!()
                ))
                .bind(id.db())
                .bind(account.db())
                .bind(agent.db())
                .bind(target)
                .bind(condition_kind_str(condition.kind))
                .bind(condition.port.map(i64::from))
                .bind(flapping)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if row.is_some() {
                    let (id, account) = (id.db(), account.db());
                    let raised = NewEvent::new(AlertEventKind::Raised, now);
                    record_event!(tx, &id, &account, &raised)?;
                    if flapping {
                        let started = NewEvent::new(AlertEventKind::FlappingStarted, now);
                        record_event!(tx, &id, &account, &started)?;
                    }
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(row)
            }
            .await)?;
            if let Some(row) = row {
                return row.try_into();
            }
            if let Some(open) = self
                .open_alert_for(account, agent, target, condition)
                .await?
            {
                return Ok(open);
            }
        }
        Err(StoreError::Conflict)
    }

    /// The open alert for this condition of the agent's target, if any.
    pub async fn open_alert_for(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        condition: Condition,
    ) -> Result<Option<Alert>> {
        validate::target(target)?;
        let row = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts \
             WHERE account_id = $1 AND agent_id = $2 AND target = $3 AND kind = $4 \
                 AND COALESCE(port, -1) = $5 AND status = 'open'"
        ))
        .bind(account.db())
        .bind(agent.db())
        .bind(target)
        .bind(condition_kind_str(condition.kind))
        .bind(port_key(&condition))
        .fetch_optional(pool)
        .await)?;
        row.map(Alert::try_from).transpose()
    }

    /// One alert of the account.
    pub async fn alert(&self, account: AccountId, alert: AlertId) -> Result<Alert> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts WHERE id = $1 AND account_id = $2"
        ))
        .bind(alert.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Resolves an open alert at `now` because its condition stopped
    /// ([`Resolution::Cleared`]); see [`Store::resolve_alert_as`].
    pub async fn resolve_alert(
        &self,
        account: AccountId,
        alert: AlertId,
        now: UnixTime,
    ) -> Result<Alert> {
        self.resolve_alert_as(account, alert, now, Resolution::Cleared, None)
            .await
    }

    /// Resolves an open alert at `now` for `why`, `by` a user when one's
    /// change ended it (an email), and records `resolved` in its history
    /// (`by` as its actor, `why` as its detail). Resolving a resolved alert
    /// changes nothing: the first reason stays.
    pub async fn resolve_alert_as(
        &self,
        account: AccountId,
        alert: AlertId,
        now: UnixTime,
        why: Resolution,
        by: Option<&str>,
    ) -> Result<Alert> {
        if let Some(by) = by {
            validate::text("resolved by", by, crate::limits::MAX_EMAIL_LEN)?;
        }
        let (id, acc) = (alert.db(), account.db());
        with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE alerts SET status = 'resolved', resolved_at = $3, resolution = $4, \
                     resolved_by = $5 \
                 WHERE id = $1 AND account_id = $2 AND status = 'open'",
            )
            .bind(&id)
            .bind(&acc)
            .bind(now)
            .bind(why.as_str())
            .bind(by)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let resolved = NewEvent {
                    actor: by,
                    detail: Some(why.as_str()),
                    ..NewEvent::new(AlertEventKind::Resolved, now)
                };
                record_event!(tx, &id, &acc, &resolved)?;
            }
            tx.commit().await
        }
        .await)?;
        self.alert(account, alert).await
    }

    /// Marks an alert as flapping or not; a change is recorded in its
    /// history (`flapping_started` / `flapping_stopped`, at the system time).
    pub async fn set_alert_flapping(
        &self,
        account: AccountId,
        alert: AlertId,
        flapping: bool,
    ) -> Result<Alert> {
        let (id, acc) = (alert.db(), account.db());
        let kind = if flapping {
            AlertEventKind::FlappingStarted
        } else {
            AlertEventKind::FlappingStopped
        };
        let changed = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, AlertRow>(concat!(
                "UPDATE alerts SET flapping = $3 \
                 WHERE id = $1 AND account_id = $2 AND flapping <> $3 RETURNING ",
                alert_cols!()
            ))
            .bind(&id)
            .bind(&acc)
            .bind(flapping)
            .fetch_optional(&mut *tx)
            .await?;
            if row.is_some() {
                record_event!(tx, &id, &acc, &NewEvent::new(kind, crate::now_unix()))?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await)?;
        match changed {
            Some(row) => row.try_into(),
            None => self.alert(account, alert).await,
        }
    }

    /// `by` acknowledges an open alert at `now`, with an optional note (at
    /// most [`MAX_ACK_NOTE_CHARS`] characters): the alert records who and
    /// when, its history gets an `acknowledged` entry. An alert that is
    /// already acknowledged or resolved is left as it is and reported as
    /// such. [`StoreError::NotFound`] for another account's alert or user.
    pub async fn acknowledge_alert(
        &self,
        account: AccountId,
        alert: AlertId,
        by: &User,
        note: Option<&str>,
        now: UnixTime,
    ) -> Result<AckOutcome> {
        if by.account_id != account {
            return Err(StoreError::NotFound);
        }
        self.acknowledge_alert_as(account, alert, &by.email, note, now)
            .await
    }

    /// [`Store::acknowledge_alert`] by someone who is not a user: `actor`
    /// names them (e.g. a contact acknowledging from a notification's link).
    pub async fn acknowledge_alert_as(
        &self,
        account: AccountId,
        alert: AlertId,
        actor: &str,
        note: Option<&str>,
        now: UnixTime,
    ) -> Result<AckOutcome> {
        let note = ack_note(note)?;
        let (id, acc) = (alert.db(), account.db());
        let acked = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let row = sqlx::query_as::<_, AlertRow>(concat!(
                "UPDATE alerts SET acknowledged_at = $3, acknowledged_by = $4, ack_note = $5 \
                 WHERE id = $1 AND account_id = $2 AND status = 'open' \
                     AND acknowledged_at IS NULL \
                 RETURNING ", alert_cols!()
            ))
            .bind(&id)
            .bind(&acc)
            .bind(now)
            .bind(actor)
            .bind(note.as_deref())
            .fetch_optional(&mut *tx)
            .await?;
            if row.is_some() {
                let event = NewEvent {
                    actor: Some(actor),
                    detail: note.as_deref(),
                    ..NewEvent::new(AlertEventKind::Acknowledged, now)
                };
                record_event!(tx, &id, &acc, &event)?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await)?;
        if let Some(row) = acked {
            return Ok(AckOutcome::Acknowledged(row.try_into()?));
        }
        let current = self.alert(account, alert).await?;
        match (current.status, current.is_acknowledged()) {
            (AlertStatus::Resolved, _) => Ok(AckOutcome::Resolved(current)),
            (AlertStatus::Open, true) => Ok(AckOutcome::AlreadyAcknowledged(current)),
            // Cannot happen: nothing turns an alert back to open or unacknowledged.
            (AlertStatus::Open, false) => Err(StoreError::Conflict),
        }
    }

    /// The account's alerts matching `filter`, newest first.
    pub async fn alerts(&self, account: AccountId, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts \
             WHERE account_id = $1 \
                 AND ($2 IS NULL OR status = $2) \
                 AND ($3 IS NULL OR agent_id = $3) \
             ORDER BY raised_at DESC, id"
        ))
        .bind(account.db())
        .bind(filter.status.map(AlertStatus::as_str))
        .bind(filter.agent.map(|a| a.db()))
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// The agent's alerts on `target` (e.g. a device's `device:<mac>`),
    /// open and resolved, newest first: at most `limit` (1 to 1000).
    pub async fn target_alerts(
        &self,
        account: AccountId,
        agent: AgentId,
        target: &str,
        limit: u32,
    ) -> Result<Vec<Alert>> {
        let limit = validate::limit(limit)?;
        validate::target(target)?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(concat!(
            "SELECT ", alert_cols!(), " FROM alerts \
             WHERE agent_id = $1 AND target = $2 AND account_id = $3 \
             ORDER BY raised_at DESC, id LIMIT $4"
        ))
        .bind(agent.db())
        .bind(target)
        .bind(account.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// The targets of the agent that have an open alert for `condition`
    /// (e.g. the devices with an open *new device* alert), sorted.
    pub async fn open_alert_targets(
        &self,
        account: AccountId,
        agent: AgentId,
        condition: Condition,
    ) -> Result<Vec<String>> {
        let targets = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT target FROM alerts \
             WHERE account_id = $1 AND agent_id = $2 AND kind = $3 \
                 AND COALESCE(port, -1) = $4 AND status = 'open' \
             ORDER BY target",
        )
        .bind(account.db())
        .bind(agent.db())
        .bind(condition_kind_str(condition.kind))
        .bind(port_key(&condition))
        .fetch_all(pool)
        .await)?;
        Ok(targets)
    }

    /// One page of the account's alerts matching `filter` and `ack`,
    /// newest first: `limit` (1 to 1000) alerts from `offset`, and how many
    /// match in all. Paged in the database, so lists of any length are cheap
    /// to show.
    pub async fn alerts_page(
        &self,
        account: AccountId,
        filter: &AlertFilter,
        ack: AckFilter,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Alert>, u64)> {
        let limit = validate::limit(limit)?;
        let offset =
            i64::try_from(offset).map_err(|_| StoreError::invalid("offset is too large"))?;
        let ack = match ack {
            AckFilter::Any => "",
            AckFilter::Acknowledged => " AND acknowledged_at IS NOT NULL",
            AckFilter::Unacknowledged => " AND acknowledged_at IS NULL",
        };
        let filter_sql = format!(
            " FROM alerts WHERE account_id = $1 AND ($2 IS NULL OR status = $2) \
             AND ($3 IS NULL OR agent_id = $3){ack}"
        );
        let status = filter.status.map(AlertStatus::as_str);
        let agent = filter.agent.map(|a| a.db());
        let count_sql = format!("SELECT COUNT(*){filter_sql}");
        let total = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(&count_sql)
            .bind(account.db())
            .bind(status)
            .bind(agent.as_deref())
            .fetch_one(pool)
            .await)?;
        let page_sql = format!(
            "SELECT {}{filter_sql} ORDER BY raised_at DESC, id LIMIT $4 OFFSET $5",
            alert_cols!()
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(&page_sql)
            .bind(account.db())
            .bind(status)
            .bind(agent.as_deref())
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await)?;
        let alerts = rows
            .into_iter()
            .map(Alert::try_from)
            .collect::<Result<_>>()?;
        Ok((alerts, u64::try_from(total).unwrap_or(0)))
    }

    /// What happened to an alert, oldest first.
    pub async fn alert_history(
        &self,
        account: AccountId,
        alert: AlertId,
    ) -> Result<Vec<AlertEvent>> {
        self.alert(account, alert).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, EventRow>(
            "SELECT alert_id, seq, occurred_at, kind, actor, detail, contact_id, contact_name, \
                 channel, attempt, error, retry_at \
             FROM alert_events WHERE alert_id = $1 AND account_id = $2 ORDER BY seq",
        )
        .bind(alert.db())
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(AlertEvent::try_from).collect()
    }

    /// [`Store::enqueue`] for a notification about `alert`: the outbox row
    /// is linked to the alert, and the alert's history gets a
    /// `notification_queued` entry (with `title`), later followed by its
    /// delivery or failure. Returns `false` (and queues nothing) if the same
    /// `dedupe_key` was already queued for this contact.
    #[allow(clippy::too_many_arguments)] // flat like `enqueue`; no struct for one call
    pub async fn enqueue_for_alert(
        &self,
        account: AccountId,
        alert: AlertId,
        contact: &Contact,
        dedupe_key: &str,
        title: &str,
        payload: &serde_json::Value,
        now: UnixTime,
    ) -> Result<bool> {
        let payload = crate::notify::outbox_payload(dedupe_key, payload)?;
        let (id, acc) = (alert.db(), account.db());
        let contact_id = contact.id.db();
        let outbox_id = crate::OutboxId::random().db();
        let cap = self.max_queued_notifications();
        // The outbox row first, then the alert (as when marking it sent):
        // one lock order for every writer.
        let (queued, dropped) = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "INSERT INTO outbox (id, account_id, contact_id, dedupe_key, payload, attempts, \
                     next_attempt_at, created_at, alert_id) \
                 SELECT $1, account_id, $3, $4, $5, 0, $6, $6, id FROM alerts \
                 WHERE id = $7 AND account_id = $2 \
                 ON CONFLICT (account_id, contact_id, dedupe_key) DO NOTHING",
            )
            .bind(&outbox_id)
            .bind(&acc)
            .bind(&contact_id)
            .bind(dedupe_key)
            .bind(&payload)
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let event = NewEvent {
                    detail: Some(title),
                    contact: Some((&contact_id, &contact.name, contact.channel.as_str())),
                    ..NewEvent::new(AlertEventKind::NotificationQueued, now)
                };
                record_event!(tx, &id, &acc, &event)?;
            }
            // Past the account's cap, its oldest waiting notification goes.
            let dropped = if n > 0 {
                crate::notify::drop_over_cap!(tx, &acc, &outbox_id, cap, now)?
            } else {
                0
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>((n > 0, dropped))
        }
        .await)?;
        crate::notify::log_dropped(account, dropped, cap);
        if !queued {
            // Another account's (or no) alert queues nothing either.
            self.alert(account, alert).await?;
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_notes() {
        let long = "é".repeat(MAX_ACK_NOTE_CHARS + 1);
        for (input, want) in [
            (None, Ok(None)),
            (Some(""), Ok(None)),
            (Some("  \n "), Ok(None)),
            (Some(" on it "), Ok(Some("on it"))),
            (Some("line 1\r\nline 2\tx"), Ok(Some("line 1\nline 2\tx"))),
            (Some("bell\u{7}"), Err("control characters")),
            (Some(long.as_str()), Err("longer than 2000")),
        ] {
            match (ack_note(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), want, "{input:?}"),
                (Err(StoreError::Invalid(msg)), Err(needle)) => {
                    assert!(msg.contains(needle), "{input:?}: {msg}")
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
        let max = "é".repeat(MAX_ACK_NOTE_CHARS);
        assert_eq!(ack_note(Some(&max)).unwrap(), Some(max));
    }
}
