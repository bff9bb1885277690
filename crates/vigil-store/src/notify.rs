//! Contacts, notification rules and the notification outbox.

use crate::alerts::{record_delivery, NewEvent};
use crate::error::found;
use crate::ids::{AccountId, AgentId, ContactId, OutboxId, RuleId};
use crate::model::{now_unix, parse_stored, UnixTime};
use crate::validate::{self, limits};
use crate::AlertEventKind;
use crate::{
    with_pool, Backend, Channel, Contact, Delivery, DeliveryState, NotificationRule, OutboxItem,
    Result, Store, StoreError,
};
use std::collections::HashMap;
use std::time::Duration;

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: String,
    account_id: String,
    name: String,
    channel: String,
    address: String,
    created_at: i64,
}

impl TryFrom<ContactRow> for Contact {
    type Error = StoreError;

    fn try_from(r: ContactRow) -> Result<Contact> {
        Ok(Contact {
            id: ContactId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            name: r.name,
            channel: parse_stored("channel", &r.channel)?,
            address: r.address,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    account_id: String,
    contact_id: String,
    agent_id: Option<String>,
    events: String,
    created_at: i64,
    remind_every_minutes: Option<i64>,
    escalation: String,
}

fn parse_events(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|_| StoreError::corrupt("event list", text))
}

impl TryFrom<RuleRow> for NotificationRule {
    type Error = StoreError;

    fn try_from(r: RuleRow) -> Result<NotificationRule> {
        Ok(NotificationRule {
            id: RuleId::from_db(&r.id)?,
            account_id: AccountId::from_db(&r.account_id)?,
            contact_id: ContactId::from_db(&r.contact_id)?,
            agent_id: r.agent_id.as_deref().map(AgentId::from_db).transpose()?,
            events: parse_events(&r.events)?,
            created_at: r.created_at,
            remind_every_minutes: r.remind_every_minutes.and_then(|m| u32::try_from(m).ok()),
            escalation: serde_json::from_str(&r.escalation)
                .map_err(|_| StoreError::corrupt("escalation", &r.escalation))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RuleContactRow {
    #[sqlx(flatten)]
    contact: ContactRow,
    events: String,
}

/// The contacts of the rules that list `event_kind`, each once, in the
/// rows' order.
/// What a sealed contact address is bound to (webhook URLs carry their
/// hook's secret; see [`crate::Keyring`]).
pub(crate) fn address_context(account: AccountId) -> String {
    format!("contacts.address:{account}")
}

impl Store {
    /// A contact row with its address opened.
    fn contact_from(&self, row: ContactRow) -> Result<Contact> {
        let mut c = Contact::try_from(row)?;
        c.address = self.open(&address_context(c.account_id), &c.address)?;
        Ok(c)
    }
}

fn contacts_for_event(
    store: &Store,
    rows: Vec<RuleContactRow>,
    event_kind: &str,
) -> Result<Vec<Contact>> {
    let mut out: Vec<Contact> = Vec::new();
    for row in rows {
        if !parse_events(&row.events)?.iter().any(|e| e == event_kind) {
            continue;
        }
        let contact = store.contact_from(row.contact)?;
        if !out.iter().any(|c| c.id == contact.id) {
            out.push(contact);
        }
    }
    Ok(out)
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    account_id: String,
    contact_id: String,
    dedupe_key: String,
    payload: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    next_attempt_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    contact_id: String,
    dedupe_key: String,
    payload: String,
    attempts: i64,
    last_error: Option<String>,
    created_at: i64,
    next_attempt_at: Option<i64>,
    sent_at: Option<i64>,
}

/// Sent once `sent_at` is set; given up on once nothing is scheduled.
fn delivery_state(sent_at: Option<UnixTime>, next_attempt_at: Option<UnixTime>) -> DeliveryState {
    match (sent_at, next_attempt_at) {
        (Some(_), _) => DeliveryState::Sent,
        (None, None) => DeliveryState::Failed,
        (None, Some(_)) => DeliveryState::Queued,
    }
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(r: DeliveryRow) -> Result<Delivery> {
        let state = delivery_state(r.sent_at, r.next_attempt_at);
        Ok(Delivery {
            id: OutboxId::from_db(&r.id)?,
            contact_id: ContactId::from_db(&r.contact_id)?,
            payload: serde_json::from_str(&r.payload)
                .map_err(|_| StoreError::corrupt("payload", &r.payload))?,
            dedupe_key: r.dedupe_key,
            state,
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            last_error: r.last_error,
            created_at: r.created_at,
            sent_at: r.sent_at,
            next_attempt_at: r.next_attempt_at.filter(|_| state == DeliveryState::Queued),
        })
    }
}

macro_rules! contact_cols {
    () => {
        "id, account_id, name, channel, address, created_at"
    };
}

const RULE_COLS: &str =
    "id, account_id, contact_id, agent_id, events, created_at, remind_every_minutes, escalation";

/// Checks a contact address (its stored form, see [`Contact::address`])
/// against its channel's fields as the registry describes them; returns
/// the form to store (email addresses normalised).
fn check_address(channel: Channel, address: &str) -> Result<String> {
    let invalid = |e: vigil_notify::DestinationError| StoreError::invalid(e.to_string());
    let mut d =
        vigil_notify::Destination::from_address(channel, address.trim()).map_err(invalid)?;
    if channel == Channel::Email {
        if let Some(to) = d.address().map(str::to_owned) {
            d.insert("to", &validate::email(&to)?);
        }
    }
    d.validate().map_err(invalid)?;
    Ok(d.to_address())
}

/// A notification payload as stored: at most 64 KiB of JSON, under a valid
/// dedupe key.
pub(crate) fn outbox_payload(dedupe_key: &str, payload: &serde_json::Value) -> Result<String> {
    validate::dedupe_key(dedupe_key)?;
    let payload = serde_json::to_string(payload)
        .map_err(|e| StoreError::invalid(format!("cannot serialize payload: {e}")))?;
    if payload.len() > limits::MAX_PAYLOAD_LEN {
        return Err(StoreError::invalid(format!(
            "notification payload is larger than {} bytes",
            limits::MAX_PAYLOAD_LEN
        )));
    }
    Ok(payload)
}

/// A suggested delay before retry number `attempts` (1-based) of a failed
/// delivery: 30 s, doubling each time, at most 6 hours.
pub fn retry_delay(attempts: u32) -> Duration {
    const BASE: u64 = 30;
    const MAX: u64 = 6 * 60 * 60;
    let exp = attempts.saturating_sub(1).min(20);
    Duration::from_secs((BASE << exp).min(MAX))
}

/// The claim statement on SQLite, with `$filter` (more conditions on the
/// row, `""` for none). It re-checks the claimable condition on the row
/// being updated, so a row claimed by a concurrent worker in between is
/// skipped.
macro_rules! claim_sqlite {
    ($filter:literal) => {
        concat!(
            "UPDATE outbox SET claimed_until = $2, attempts = attempts + 1 \
             WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
               AND (claimed_until IS NULL OR claimed_until <= $1) ",
            $filter,
            " AND id IN (SELECT id FROM outbox \
                  WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
                    AND (claimed_until IS NULL OR claimed_until <= $1) ",
            $filter,
            " ORDER BY next_attempt_at, created_at, id LIMIT $3) \
             RETURNING id, account_id, contact_id, dedupe_key, payload, attempts, last_error, \
                 created_at, next_attempt_at"
        )
    };
}

/// [`claim_sqlite!`] on PostgreSQL, which also skips rows another claimer
/// has locked. The rows are picked in a `MATERIALIZED` CTE, run once:
/// PostgreSQL may run `IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` more
/// than once (each run skipping the rows the previous one locked) and
/// claim more than `n`.
macro_rules! claim_postgres {
    ($filter:literal) => {
        concat!(
            "WITH picked AS MATERIALIZED (\
                 SELECT id FROM outbox \
                 WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
                   AND (claimed_until IS NULL OR claimed_until <= $1) ",
            $filter,
            " ORDER BY next_attempt_at, created_at, id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE outbox SET claimed_until = $2, attempts = attempts + 1 \
             WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1 \
               AND (claimed_until IS NULL OR claimed_until <= $1) ",
            $filter,
            " AND id IN (SELECT id FROM picked) \
             RETURNING id, account_id, contact_id, dedupe_key, payload, attempts, last_error, \
                 created_at, next_attempt_at"
        )
    };
}

/// One contact's notifications as the outbox worker schedules them (see
/// `vigil_core::fair_share`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxQueue {
    pub account: AccountId,
    pub contact: ContactId,
    /// Due now and not claimed.
    pub waiting: u64,
    /// Claimed and not finished: being sent now, by any replica.
    pub in_flight: u64,
}

#[derive(sqlx::FromRow)]
struct QueueRow {
    account_id: String,
    contact_id: String,
    waiting: i64,
    in_flight: i64,
}

/// Counts of [`Store::outbox_queues`]. Rows due but not claimed, and rows
/// claimed, of each contact with either; the longest-waiting first.
const QUEUES: &str = "SELECT account_id, contact_id, \
         SUM(CASE WHEN next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
             THEN 1 ELSE 0 END) AS waiting, \
         SUM(CASE WHEN claimed_until > $1 THEN 1 ELSE 0 END) AS in_flight \
     FROM outbox WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL \
     GROUP BY account_id, contact_id \
     HAVING SUM(CASE WHEN next_attempt_at <= $1 OR claimed_until > $1 THEN 1 ELSE 0 END) > 0 \
     ORDER BY MIN(next_attempt_at), account_id, contact_id";

/// The default of [`Store::set_max_queued_notifications`]: far more than a
/// working account ever has waiting (a channel that works drains in
/// seconds), few enough that a tenant whose channels all fail cannot grow
/// the outbox without bound.
pub const MAX_QUEUED_NOTIFICATIONS: u32 = 5_000;

/// The error kept on a notification dropped to respect the cap.
pub(crate) fn dropped_error(cap: u32) -> String {
    format!(
        "dropped unsent: the account had more than {cap} notifications waiting \
         (its contacts fail or answer slowly); the oldest made room for the newest"
    )
}

/// Drops (gives up, with [`dropped_error`]) the oldest notifications of
/// account `$account` (its `db()` text) not being sent, until at most
/// `$cap` wait, never the one just queued (`$keep`, its id text); inside
/// transaction `$tx`, after the insert. Evaluates to
/// `Result<u64, sqlx::Error>`: how many were dropped.
macro_rules! drop_over_cap {
    ($tx:ident, $account:expr, $keep:expr, $cap:expr, $now:expr) => {
        async {
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox \
                 WHERE account_id = $1 AND sent_at IS NULL AND next_attempt_at IS NOT NULL",
            )
            .bind($account)
            .fetch_one(&mut *$tx)
            .await?;
            let over = pending.saturating_sub(i64::from($cap));
            if over <= 0 {
                return Ok::<u64, sqlx::Error>(0);
            }
            let oldest: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM outbox \
                 WHERE account_id = $1 AND sent_at IS NULL AND next_attempt_at IS NOT NULL \
                   AND (claimed_until IS NULL OR claimed_until <= $2) AND id <> $3 \
                 ORDER BY created_at, id LIMIT $4",
            )
            .bind($account)
            .bind($now)
            .bind($keep)
            .bind(over)
            .fetch_all(&mut *$tx)
            .await?;
            let error = $crate::notify::dropped_error($cap);
            let mut dropped = 0;
            for id in oldest {
                let n = sqlx::query(
                    "UPDATE outbox SET next_attempt_at = NULL, claimed_until = NULL, \
                         dropped_at = $2, last_error = $3 \
                     WHERE id = $1 AND sent_at IS NULL AND next_attempt_at IS NOT NULL",
                )
                .bind(&id)
                .bind($now)
                .bind(&error)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
                if n > 0 {
                    dropped += 1;
                    let id = $crate::ids::OutboxId::from_db(&id)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                    let failed = $crate::alerts::NewEvent {
                        error: Some(&error),
                        ..$crate::alerts::NewEvent::new(
                            $crate::AlertEventKind::NotificationFailed,
                            $now,
                        )
                    };
                    $crate::alerts::record_delivery!($tx, id, failed)?;
                }
            }
            Ok(dropped)
        }
        .await
    };
}
pub(crate) use drop_over_cap;

/// Logs what [`drop_over_cap!`] dropped: a notification lost is never silent.
pub(crate) fn log_dropped(account: AccountId, dropped: u64, cap: u32) {
    if dropped > 0 {
        tracing::warn!(
            %account,
            dropped,
            cap,
            "notifications dropped unsent: the account has too many waiting (oldest first)"
        );
    }
}

/// How many test notifications an account queued lately ([`Store::test_sends_since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TestSends {
    pub count: u64,
    /// When the oldest of them was queued.
    pub oldest: Option<UnixTime>,
}

/// The dedupe keys of test notifications start with this.
pub const TEST_KEY_PREFIX: &str = "test:";

/// When a lease taken at `now` ends (at least a second later).
fn lease_end(now: UnixTime, lease: Duration) -> UnixTime {
    let lease = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX).max(1);
    now.saturating_add(lease)
}

impl Store {
    // ----- contacts -------------------------------------------------------

    pub async fn create_contact(
        &self,
        account: AccountId,
        name: &str,
        channel: Channel,
        address: &str,
    ) -> Result<Contact> {
        let contact = Contact {
            id: ContactId::random(),
            account_id: account,
            name: validate::name("contact name", name)?,
            channel,
            address: check_address(channel, address)?,
            created_at: now_unix(),
        };
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO contacts (id, account_id, name, channel, address, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(contact.id.db())
        .bind(account.db())
        .bind(&contact.name)
        .bind(channel.as_str())
        .bind(self.seal(&address_context(account), &contact.address)?)
        .bind(contact.created_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(contact)
    }

    pub async fn contact(&self, account: AccountId, contact: ContactId) -> Result<Contact> {
        let row = with_pool!(self, pool => sqlx::query_as::<_, ContactRow>(concat!(
            "SELECT ", contact_cols!(), " FROM contacts WHERE id = $1 AND account_id = $2"
        ))
        .bind(contact.db())
        .bind(account.db())
        .fetch_optional(pool)
        .await)?;
        self.contact_from(row.ok_or(StoreError::NotFound)?)
    }

    /// The account's contacts, by name.
    pub async fn contacts(&self, account: AccountId) -> Result<Vec<Contact>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, ContactRow>(concat!(
            "SELECT ", contact_cols!(), " FROM contacts WHERE account_id = $1 ORDER BY name, id"
        ))
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(|r| self.contact_from(r)).collect()
    }

    pub async fn update_contact(
        &self,
        account: AccountId,
        contact: ContactId,
        name: &str,
        channel: Channel,
        address: &str,
    ) -> Result<Contact> {
        let name = validate::name("contact name", name)?;
        let address = self.seal(&address_context(account), &check_address(channel, address)?)?;
        let row = with_pool!(self, pool => sqlx::query_as::<_, ContactRow>(concat!(
            "UPDATE contacts SET name = $3, channel = $4, address = $5 \
             WHERE id = $1 AND account_id = $2 RETURNING ", contact_cols!()
        ))
        .bind(contact.db())
        .bind(account.db())
        .bind(&name)
        .bind(channel.as_str())
        .bind(&address)
        .fetch_optional(pool)
        .await)?;
        self.contact_from(row.ok_or(StoreError::NotFound)?)
    }

    /// Deletes a contact with its rules and queued notifications.
    pub async fn delete_contact(&self, account: AccountId, contact: ContactId) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "DELETE FROM contacts WHERE id = $1 AND account_id = $2",
        )
        .bind(contact.db())
        .bind(account.db())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }

    // ----- notification rules --------------------------------------------

    /// Sends the listed event kinds (1 to 32 of `[a-z0-9_.:-]`, e.g.
    /// `alert.raised`) of `agent` (`None`: every agent) to `contact`.
    pub async fn create_rule<S: AsRef<str>>(
        &self,
        account: AccountId,
        contact: ContactId,
        agent: Option<AgentId>,
        events: &[S],
    ) -> Result<NotificationRule> {
        let events = validate::events(events)?;
        let json = serde_json::to_string(&events)
            .map_err(|e| StoreError::invalid(format!("cannot serialize events: {e}")))?;
        let rule = NotificationRule {
            id: RuleId::random(),
            account_id: account,
            contact_id: contact,
            agent_id: agent,
            events,
            created_at: now_unix(),
            remind_every_minutes: None,
            escalation: Vec::new(),
        };
        // The composite foreign keys refuse another account's contact or agent.
        with_pool!(self, pool => sqlx::query(
            "INSERT INTO notification_rules (id, account_id, contact_id, agent_id, events, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(rule.id.db())
        .bind(account.db())
        .bind(contact.db())
        .bind(agent.map(|a| a.db()))
        .bind(&json)
        .bind(rule.created_at)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(rule)
    }

    /// The account's notification rules, oldest first.
    pub async fn rules(&self, account: AccountId) -> Result<Vec<NotificationRule>> {
        let sql = format!(
            "SELECT {RULE_COLS} FROM notification_rules WHERE account_id = $1 ORDER BY created_at, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RuleRow>(&sql)
            .bind(account.db())
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(NotificationRule::try_from).collect()
    }

    /// Sets what a rule does while an alert stays unacknowledged: reminders
    /// every `remind_every_minutes`, and escalation `steps` (their contacts
    /// must be the account's). Checked by [`vigil_core::followup::validate`].
    pub async fn set_rule_followups(
        &self,
        account: AccountId,
        rule: RuleId,
        remind_every_minutes: Option<u32>,
        steps: &[vigil_core::followup::EscalationStep],
    ) -> Result<NotificationRule> {
        vigil_core::followup::validate(remind_every_minutes, steps)
            .map_err(|e| StoreError::invalid(e.to_string()))?;
        let mine: Vec<String> = self
            .contacts(account)
            .await?
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        for (i, step) in steps.iter().enumerate() {
            if let Some(c) = step.contacts.iter().find(|c| !mine.contains(c)) {
                return Err(StoreError::invalid(format!(
                    "escalation step {}: contact {c:?} is not a contact of this account",
                    i + 1
                )));
            }
        }
        let json = serde_json::to_string(steps)
            .map_err(|e| StoreError::invalid(format!("cannot serialize escalation: {e}")))?;
        let sql = format!(
            "UPDATE notification_rules SET remind_every_minutes = $3, escalation = $4 \
             WHERE id = $1 AND account_id = $2 RETURNING {RULE_COLS}"
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, RuleRow>(&sql)
            .bind(rule.db())
            .bind(account.db())
            .bind(remind_every_minutes.map(i64::from))
            .bind(&json)
            .fetch_optional(pool)
            .await)?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    /// Whether a notification with `dedupe_key` was queued for `contact`
    /// already (sent or not): what [`Store::enqueue`] would refuse.
    pub async fn is_queued(
        &self,
        account: AccountId,
        contact: ContactId,
        dedupe_key: &str,
    ) -> Result<bool> {
        let n = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM outbox \
             WHERE account_id = $1 AND contact_id = $2 AND dedupe_key = $3",
        )
        .bind(account.db())
        .bind(contact.db())
        .bind(dedupe_key)
        .fetch_one(pool)
        .await)?;
        Ok(n > 0)
    }

    /// When a notification with `dedupe_key` was first queued for any
    /// contact of the account, if ever.
    pub async fn first_queued_at(
        &self,
        account: AccountId,
        dedupe_key: &str,
    ) -> Result<Option<UnixTime>> {
        let at = with_pool!(self, pool => sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MIN(created_at) FROM outbox WHERE account_id = $1 AND dedupe_key = $2",
        )
        .bind(account.db())
        .bind(dedupe_key)
        .fetch_one(pool)
        .await)?;
        Ok(at)
    }

    /// Every rule with reminders or escalation, of every account (the
    /// server's follow-up round).
    pub async fn followup_rules(&self) -> Result<Vec<NotificationRule>> {
        let sql = format!(
            "SELECT {RULE_COLS} FROM notification_rules \
             WHERE remind_every_minutes IS NOT NULL OR escalation <> '[]' \
             ORDER BY account_id, created_at, id"
        );
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RuleRow>(&sql)
            .fetch_all(pool)
            .await)?;
        rows.into_iter().map(NotificationRule::try_from).collect()
    }

    pub async fn delete_rule(&self, account: AccountId, rule: RuleId) -> Result<()> {
        let n = with_pool!(self, pool => sqlx::query(
            "DELETE FROM notification_rules WHERE id = $1 AND account_id = $2",
        )
        .bind(rule.db())
        .bind(account.db())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        found(n)?;
        Ok(())
    }

    /// The contacts to notify of `event_kind` on `agent`: those of rules for
    /// that agent or for all agents that list the event. Each contact once, by name.
    pub async fn rules_for(
        &self,
        account: AccountId,
        agent: AgentId,
        event_kind: &str,
    ) -> Result<Vec<Contact>> {
        validate::event_kind(event_kind)?;
        self.ensure_agent(account, agent).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RuleContactRow>(
            "SELECT c.id, c.account_id, c.name, c.channel, c.address, c.created_at, r.events \
             FROM notification_rules r \
             JOIN contacts c ON c.id = r.contact_id AND c.account_id = r.account_id \
             WHERE r.account_id = $1 AND (r.agent_id IS NULL OR r.agent_id = $2) \
             ORDER BY c.name, c.id",
        )
        .bind(account.db())
        .bind(agent.db())
        .fetch_all(pool)
        .await)?;
        contacts_for_event(self, rows, event_kind)
    }

    /// The contacts to notify of `event_kind` about the account itself
    /// rather than one agent (e.g. compliance changes): those of rules for
    /// all agents that list the event. A rule for one agent never matches.
    /// Each contact once, by name.
    pub async fn account_rules_for(
        &self,
        account: AccountId,
        event_kind: &str,
    ) -> Result<Vec<Contact>> {
        validate::event_kind(event_kind)?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, RuleContactRow>(
            "SELECT c.id, c.account_id, c.name, c.channel, c.address, c.created_at, r.events \
             FROM notification_rules r \
             JOIN contacts c ON c.id = r.contact_id AND c.account_id = r.account_id \
             WHERE r.account_id = $1 AND r.agent_id IS NULL \
             ORDER BY c.name, c.id",
        )
        .bind(account.db())
        .fetch_all(pool)
        .await)?;
        contacts_for_event(self, rows, event_kind)
    }

    // ----- outbox -----------------------------------------------------------

    /// Queues a notification for `contact`, due at `now`. Returns `false`
    /// (and queues nothing) if the same `dedupe_key` was already queued for
    /// this contact. `payload` is at most 64 KiB of JSON. Past the account's
    /// cap on waiting notifications ([`Store::set_max_queued_notifications`])
    /// its oldest waiting one is dropped: kept as failed with an error that
    /// says why, in its alert's history too, and counted by
    /// [`Store::dropped_count`].
    pub async fn enqueue(
        &self,
        account: AccountId,
        contact: ContactId,
        dedupe_key: &str,
        payload: &serde_json::Value,
        now: UnixTime,
    ) -> Result<bool> {
        let payload = outbox_payload(dedupe_key, payload)?;
        let id = OutboxId::random().db();
        let acc = account.db();
        let cap = self.max_queued_notifications();
        let (queued, dropped) = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "INSERT INTO outbox (id, account_id, contact_id, dedupe_key, payload, attempts, \
                     next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $6) \
                 ON CONFLICT (account_id, contact_id, dedupe_key) DO NOTHING",
            )
            .bind(&id)
            .bind(&acc)
            .bind(contact.db())
            .bind(dedupe_key)
            .bind(&payload)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let dropped = if n == 1 {
                drop_over_cap!(tx, &acc, &id, cap, now)?
            } else {
                0
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>((n == 1, dropped))
        }
        .await)?;
        log_dropped(account, dropped, cap);
        Ok(queued)
    }

    /// The cap on an account's waiting notifications (default
    /// [`MAX_QUEUED_NOTIFICATIONS`]); see [`Store::enqueue`].
    pub fn max_queued_notifications(&self) -> u32 {
        self.inner
            .max_queued_notifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets [`Store::max_queued_notifications`] (at least 1) for every
    /// clone of this store.
    pub fn set_max_queued_notifications(&self, cap: u32) {
        self.inner
            .max_queued_notifications
            .store(cap.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Notifications dropped unsent to respect an account's cap (the rows
    /// still kept).
    pub async fn dropped_count(&self) -> Result<u64> {
        let n = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM outbox WHERE dropped_at IS NOT NULL",
        )
        .fetch_one(pool)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The test notifications (dedupe keys starting with
    /// [`TEST_KEY_PREFIX`]) the account queued after `since`.
    pub async fn test_sends_since(&self, account: AccountId, since: UnixTime) -> Result<TestSends> {
        let (count, oldest) = with_pool!(self, pool => sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(created_at) FROM outbox \
             WHERE account_id = $1 AND created_at > $2 AND dedupe_key LIKE 'test:%'",
        )
        .bind(account.db())
        .bind(since)
        .fetch_one(pool)
        .await)?;
        Ok(TestSends {
            count: u64::try_from(count).unwrap_or(0),
            oldest,
        })
    }

    /// Every contact with notifications due or being sent, the
    /// longest-waiting first: what the outbox worker shares out fairly.
    pub async fn outbox_queues(&self, now: UnixTime) -> Result<Vec<OutboxQueue>> {
        let rows = with_pool!(self, pool => sqlx::query_as::<_, QueueRow>(QUEUES)
            .bind(now)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|r| {
                Ok(OutboxQueue {
                    account: AccountId::from_db(&r.account_id)?,
                    contact: ContactId::from_db(&r.contact_id)?,
                    waiting: u64::try_from(r.waiting).unwrap_or(0),
                    in_flight: u64::try_from(r.in_flight).unwrap_or(0),
                })
            })
            .collect()
    }

    /// [`Store::claim_due`] for one contact of one account.
    pub async fn claim_due_for(
        &self,
        account: AccountId,
        contact: ContactId,
        now: UnixTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>> {
        self.claim(Some((account, contact)), now, limit, lease)
            .await
    }

    /// Claims up to `limit` (1 to 1000) notifications due at `now` for
    /// `lease`: until `now + lease` no other claim returns them. Finish each
    /// with [`Store::mark_sent`] or [`Store::mark_failed`]; if the worker
    /// dies, the row is claimable again when the lease runs out. Each claim
    /// counts as an attempt.
    pub async fn claim_due(
        &self,
        now: UnixTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>> {
        self.claim(None, now, limit, lease).await
    }

    /// [`Store::claim_due`], of one contact's notifications when `only` names it.
    async fn claim(
        &self,
        only: Option<(AccountId, ContactId)>,
        now: UnixTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>> {
        let limit = validate::limit(limit)?;
        let until = lease_end(now, lease);
        let sql = match (self.backend(), only.is_some()) {
            (Backend::Sqlite, true) => claim_sqlite!("AND account_id = $4 AND contact_id = $5"),
            (Backend::Sqlite, false) => claim_sqlite!(""),
            (Backend::Postgres, true) => claim_postgres!("AND account_id = $4 AND contact_id = $5"),
            (Backend::Postgres, false) => claim_postgres!(""),
        };
        let rows: Vec<OutboxRow> = with_pool!(self, pool => {
            let mut query = sqlx::query_as(sql).bind(now).bind(until).bind(limit);
            if let Some((account, contact)) = only {
                query = query.bind(account.db()).bind(contact.db());
            }
            query.fetch_all(pool).await
        })?;
        self.outbox_items(rows).await
    }

    /// Claimed rows as items with their contacts, oldest due first; rows
    /// whose contact was deleted meanwhile (with its outbox rows) are left out.
    async fn outbox_items(&self, mut rows: Vec<OutboxRow>) -> Result<Vec<OutboxItem>> {
        rows.sort_by(|a, b| {
            (a.next_attempt_at, a.created_at, &a.id).cmp(&(b.next_attempt_at, b.created_at, &b.id))
        });
        let mut contacts: HashMap<(String, String), Option<Contact>> = HashMap::new();
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let key = (row.account_id.clone(), row.contact_id.clone());
            if !contacts.contains_key(&key) {
                let account = AccountId::from_db(&row.account_id)?;
                let contact = ContactId::from_db(&row.contact_id)?;
                let found = match self.contact(account, contact).await {
                    Ok(c) => Some(c),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                contacts.insert(key.clone(), found);
            }
            let Some(Some(contact)) = contacts.get(&key) else {
                continue;
            };
            items.push(OutboxItem {
                id: OutboxId::from_db(&row.id)?,
                account_id: AccountId::from_db(&row.account_id)?,
                contact: contact.clone(),
                dedupe_key: row.dedupe_key,
                payload: serde_json::from_str(&row.payload)
                    .map_err(|_| StoreError::corrupt("payload", &row.payload))?,
                attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
                last_error: row.last_error,
                created_at: row.created_at,
            });
        }
        Ok(items)
    }

    /// Records a successful delivery (for a notification about an alert,
    /// in its history too). Marking a sent row again changes nothing.
    pub async fn mark_sent(&self, id: OutboxId, now: UnixTime) -> Result<()> {
        let n = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE outbox SET sent_at = $2, claimed_until = NULL \
                 WHERE id = $1 AND sent_at IS NULL",
            )
            .bind(id.db())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let delivered = NewEvent::new(AlertEventKind::NotificationDelivered, now);
                record_delivery!(tx, id, delivered)?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        }
        .await)?;
        if n == 0 {
            self.ensure_outbox_row(id).await?;
        }
        Ok(())
    }

    /// Records a failed delivery and when to try again (for a notification
    /// about an alert, in its history too); `None` gives up (the
    /// row is kept with its error but never claimed again). See
    /// [`retry_delay`]. The error text is cut to 2000 characters.
    pub async fn mark_failed(
        &self,
        id: OutboxId,
        error: &str,
        next_attempt_at: Option<UnixTime>,
    ) -> Result<()> {
        let error = validate::error_message(error);
        let n = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE outbox SET last_error = $2, next_attempt_at = $3, claimed_until = NULL \
                 WHERE id = $1 AND sent_at IS NULL",
            )
            .bind(id.db())
            .bind(&error)
            .bind(next_attempt_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let failed = NewEvent {
                    error: Some(&error),
                    retry_at: next_attempt_at,
                    ..NewEvent::new(AlertEventKind::NotificationFailed, now_unix())
                };
                record_delivery!(tx, id, failed)?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        }
        .await)?;
        if n == 0 {
            self.ensure_outbox_row(id).await?;
        }
        Ok(())
    }

    /// The latest `limit` (1 to 1000) notifications queued for `contact`,
    /// newest first, with what became of them.
    pub async fn deliveries(
        &self,
        account: AccountId,
        contact: ContactId,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let limit = validate::limit(limit)?;
        self.contact(account, contact).await?;
        let rows = with_pool!(self, pool => sqlx::query_as::<_, DeliveryRow>(
            "SELECT id, contact_id, dedupe_key, payload, attempts, last_error, created_at, \
                 next_attempt_at, sent_at \
             FROM outbox WHERE account_id = $1 AND contact_id = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(account.db())
        .bind(contact.db())
        .bind(limit)
        .fetch_all(pool)
        .await)?;
        rows.into_iter().map(Delivery::try_from).collect()
    }

    /// Notifications not yet sent and not given up on.
    pub async fn pending_count(&self) -> Result<u64> {
        let n = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND next_attempt_at IS NOT NULL",
        )
        .fetch_one(pool)
        .await)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn ensure_outbox_row(&self, id: OutboxId) -> Result<()> {
        let found = with_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT id FROM outbox WHERE id = $1",
        )
        .bind(id.db())
        .fetch_optional(pool)
        .await)?;
        found.map(|_| ()).ok_or(StoreError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_cap() {
        assert_eq!(retry_delay(0), Duration::from_secs(30));
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(3), Duration::from_secs(120));
        assert_eq!(retry_delay(10), Duration::from_secs(15_360));
        assert_eq!(retry_delay(11), Duration::from_secs(6 * 60 * 60));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(6 * 60 * 60));
    }

    #[test]
    fn delivery_states() {
        for (sent_at, next_attempt_at, state) in [
            (None, Some(10), DeliveryState::Queued),
            (None, None, DeliveryState::Failed),
            (Some(12), None, DeliveryState::Sent),
            // A row marked sent after a retry was scheduled is still sent.
            (Some(12), Some(10), DeliveryState::Sent),
        ] {
            assert_eq!(
                delivery_state(sent_at, next_attempt_at),
                state,
                "{sent_at:?} {next_attempt_at:?}"
            );
        }
    }

    #[test]
    fn addresses_per_channel() {
        assert_eq!(
            check_address(Channel::Email, " Ops@Example.com").unwrap(),
            "ops@example.com"
        );
        assert!(check_address(Channel::Email, "https://x.example").is_err());
        assert!(check_address(Channel::Webhook, "https://x.example/hook").is_ok());
        assert!(check_address(Channel::Ntfy, "ops@example.com").is_err());
        let tg = r#"{"bot_token":"123:abc","chat_id":"-100123"}"#;
        assert_eq!(check_address(Channel::Telegram, tg).unwrap(), tg);
        let err = check_address(Channel::Telegram, r#"{"chat_id":"-100123"}"#).unwrap_err();
        assert!(err.to_string().contains("Bot token"), "{err}");
        assert!(check_address(Channel::Telegram, "{bad").is_err());
        for c in Channel::ALL {
            assert!(check_address(*c, "").is_err());
        }
    }
}
