//! The outbox worker: delivers queued notifications with retries.
//!
//! Each notification is a row first (queued in the same request that
//! raised the alert), so it survives a restart; a claim is a lease, so a
//! worker that dies mid-send only delays it. A send that fails for a
//! reason that can pass (SMTP down, HTTP 5xx/429) is retried with backoff;
//! one that cannot succeed (bad address) is given up with its error kept.

use crate::app::App;
use std::sync::Arc;
use tokio::sync::watch;
use vigil_notify::{Destination, Notification, Notifier};
use vigil_store::{now_unix, Channel, Contact, OutboxItem, StoreError};

/// Notifications claimed at once: one, so that a claim covers a single
/// send and its lease (`Leases::notification`) need only outlast that one
/// send; a batch sent one by one could outlive its lease and be claimed
/// and sent a second time by another replica.
const BATCH: u32 = 1;
/// Attempts before giving up on a notification that keeps failing (about 2 days with backoff).
const MAX_ATTEMPTS: u32 = 20;

/// Runs until `shutdown` turns true; a round in progress finishes first.
pub(crate) async fn worker(app: Arc<App>, notifier: Notifier, mut shutdown: watch::Receiver<bool>) {
    loop {
        let delivered = match deliver_due(&app, &notifier).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "outbox round failed");
                0
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if delivered == BATCH as usize {
            continue; // more may be waiting
        }
        tokio::select! {
            _ = tokio::time::sleep(app.cfg.tick) => {}
            _ = app.outbox_wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// One round: claim what is due and try each once. Returns how many were claimed.
pub(crate) async fn deliver_due(app: &App, notifier: &Notifier) -> Result<usize, StoreError> {
    let lease = app.cfg.leases.notification;
    let items = app.store.claim_due(now_unix(), BATCH, lease).await?;
    let claimed = items.len();
    for item in items {
        deliver(app, notifier, item).await?;
    }
    Ok(claimed)
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
    let destination = destination(&item.contact);
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
            let next = retry.map(|d| {
                now_unix().saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1))
            });
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

/// Where a contact's notifications go.
pub(crate) fn destination(contact: &Contact) -> Destination {
    let address = contact.address.clone();
    match contact.channel {
        Channel::Email => Destination::Email { to: address },
        Channel::Webhook => Destination::Webhook { url: address },
        Channel::Slack => Destination::Slack { url: address },
        Channel::Teams => Destination::Teams { url: address },
        Channel::Discord => Destination::Discord { url: address },
        Channel::Ntfy => Destination::Ntfy {
            url: address,
            token: None,
        },
    }
}
