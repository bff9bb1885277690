//! The outbox worker: delivers queued notifications with retries.
//!
//! Each notification is a row first (queued in the same request that
//! raised the alert), so it survives a restart; a claim is a lease, so a
//! worker that dies mid-send only delays it. A send that fails for a
//! reason that can pass (SMTP down, HTTP 5xx/429) is retried with backoff;
//! one that cannot succeed (bad address) is given up with its error kept.
//!
//! Sends run in parallel, shared fairly between accounts: a tenant whose
//! webhook never answers (each send then waits for the 30 s timeout) must
//! not hold up another tenant's alert. Every round counts, per contact,
//! what is due and what is being sent (by any replica, from the leases in
//! the database), and `vigil_core::fair_share::allot` picks which contacts
//! get this replica's free senders: the account, then the contact, with
//! the fewest sends in flight first, an account never over its cap (see
//! [`LIMITS`]). The chosen rows are claimed per contact, each claim a
//! lease as before, and each claimed notification is sent by its own task.

use crate::app::App;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use vigil_core::fair_share::{allot, Limits, Queue};
use vigil_notify::{Notification, Notifier};
use vigil_store::{now_unix, OutboxItem, StoreError};

/// How many notifications this replica sends at once, and the shares.
///
/// * `total` 32: sending is waiting on the network, not work; 32 sends at
///   once drain an outage's backlog quickly and stay far below the file
///   and database-pool limits (a send holds no database connection).
/// * `per_account` 8: a tenant whose every send hangs for the 30 s timeout
///   holds at most a quarter of the senders (less while many accounts are
///   busy: `fair_share::account_cap` keeps an even share free for an
///   account that has nothing in flight yet), so another tenant's alert
///   starts at once.
/// * `per_contact` 4: one broken webhook of an account leaves its other
///   contacts (its e-mail) senders of their own.
const LIMITS: Limits = Limits {
    total: 32,
    per_account: 8,
    per_contact: 4,
};
/// Attempts before giving up on a notification that keeps failing (about 2 days with backoff).
const MAX_ATTEMPTS: u32 = 20;

/// Runs until `shutdown` turns true; sends in progress finish first (for
/// as long as the server's shutdown waits; a send cut short is sent again
/// after its lease, at least once).
pub(crate) async fn worker(app: Arc<App>, notifier: Notifier, mut shutdown: watch::Receiver<bool>) {
    let notifier = Arc::new(notifier);
    let mut sending = JoinSet::new();
    loop {
        while sending.try_join_next().is_some() {}
        let free = LIMITS.total.saturating_sub(sending.len());
        if free > 0 {
            match claim_fairly(&app, free).await {
                Ok(items) => {
                    for item in items {
                        sending.spawn(deliver_logged(app.clone(), notifier.clone(), item));
                    }
                }
                Err(e) => tracing::error!(error = %e, "outbox round failed"),
            }
        }
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = app.outbox_wake.notified() => {}
            Some(_) = sending.join_next(), if !sending.is_empty() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    while sending.join_next().await.is_some() {}
}

/// Claims up to `free` due notifications, shared fairly between accounts
/// and contacts (see the module doc).
pub(crate) async fn claim_fairly(app: &App, free: usize) -> Result<Vec<OutboxItem>, StoreError> {
    let now = now_unix();
    let queues: Vec<Queue<_, _>> = app
        .store
        .outbox_queues(now)
        .await?
        .into_iter()
        .map(|q| Queue {
            account: q.account,
            contact: q.contact,
            waiting: usize::try_from(q.waiting).unwrap_or(usize::MAX),
            in_flight: usize::try_from(q.in_flight).unwrap_or(usize::MAX),
        })
        .collect();
    let grants = allot(&queues, free, LIMITS);
    let lease = app.cfg.leases.notification;
    let mut items = Vec::new();
    for (q, n) in queues.iter().zip(grants).filter(|(_, n)| *n > 0) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        items.extend(
            app.store
                .claim_due_for(q.account, q.contact, now, n, lease)
                .await?,
        );
    }
    Ok(items)
}

/// [`deliver`], with a failure to record the outcome logged.
async fn deliver_logged(app: Arc<App>, notifier: Arc<Notifier>, item: OutboxItem) {
    let id = item.id;
    if let Err(e) = deliver(&app, &notifier, item).await {
        tracing::error!(delivery = %id, error = %e, "recording a notification's delivery failed");
    }
}

async fn deliver(app: &App, notifier: &Notifier, item: OutboxItem) -> Result<(), StoreError> {
    let mut notification: Notification = match serde_json::from_value(item.payload.clone()) {
        Ok(n) => n,
        Err(e) => {
            app.metrics.notification_failed(item.contact.channel, false);
            return app
                .store
                .mark_failed(item.id, &format!("unreadable notification: {e}"), None)
                .await;
        }
    };
    // The same on every attempt: a receiver that got it before (a replica
    // died between sending and recording it) can drop the repeat.
    notification.delivery_id = Some(item.id.to_string());
    let destination = match item.contact.destination() {
        Ok(d) => d,
        Err(e) => {
            app.metrics.notification_failed(item.contact.channel, false);
            return app.store.mark_failed(item.id, &e.to_string(), None).await;
        }
    };
    tracing::debug!(delivery = %item.id, contact = %item.contact.name, event = %notification.event, "sending notification");
    match notifier.send(&destination, &notification).await {
        Ok(_) => {
            tracing::info!(delivery = %item.id, contact = %item.contact.name, event = %notification.event, "notification sent");
            app.metrics.notification_sent(item.contact.channel);
            app.store.mark_sent(item.id, now_unix()).await
        }
        Err(e) => {
            let seed = u64::from_le_bytes(
                item.id.as_uuid().as_bytes()[..8]
                    .try_into()
                    .unwrap_or([0; 8]),
            );
            let retry = (item.attempts < MAX_ATTEMPTS)
                .then(|| vigil_notify::retry_delay(&e, item.attempts.saturating_sub(1), seed))
                .flatten();
            let next = retry.map(|d| retry_at(now_unix(), d));
            tracing::warn!(
                contact = %item.contact.name,
                attempt = item.attempts,
                error = %e,
                retry_in_secs = ?retry.map(|d| d.as_secs()),
                "notification not delivered"
            );
            app.metrics
                .notification_failed(item.contact.channel, next.is_some());
            app.store.mark_failed(item.id, &e.to_string(), next).await
        }
    }
}

/// When a retry `delay` after `now` is due, in whole seconds rounded up:
/// never before a provider's `Retry-After`, and at least a second later.
fn retry_at(now: i64, delay: std::time::Duration) -> i64 {
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX).max(1))
}

#[cfg(test)]
mod retry_tests {
    use super::retry_at;
    use std::time::Duration;

    #[test]
    fn retries_are_never_early() {
        assert_eq!(retry_at(100, Duration::from_secs(120)), 220);
        assert_eq!(retry_at(100, Duration::from_millis(1500)), 102);
        assert_eq!(retry_at(100, Duration::ZERO), 101);
        assert_eq!(retry_at(i64::MAX - 1, Duration::from_secs(60)), i64::MAX);
    }
}
