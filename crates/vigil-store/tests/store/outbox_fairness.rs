//! The outbox's fair share between accounts (issue 14, point 8): counts
//! per contact, claims per contact, the cap on an account's waiting
//! notifications, and the count behind the rate limit on test sends.

use crate::fixtures::*;
use serde_json::json;
use std::time::Duration;
use vigil_store::{Channel, DeliveryState, OutboxQueue, TestSends};
use vigil_testdb::TestDb;

backend_tests!(
    queues_count_waiting_and_in_flight_per_contact,
    claims_of_one_contact_leave_the_others,
    the_oldest_waiting_make_room_past_the_cap,
    recent_test_sends_are_counted,
);

async fn queues_count_waiting_and_in_flight_per_contact(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (account(s, "A").await, account(s, "B").await);
    let hook = s
        .create_contact(a.id, "hook", Channel::Webhook, "https://hooks.example/a")
        .await
        .unwrap();
    let mail = s
        .create_contact(b.id, "mail", Channel::Email, "ops@b.example")
        .await
        .unwrap();
    let t = now();
    for i in 0..5 {
        s.enqueue(a.id, hook.id, &format!("a-{i}"), &json!({}), t - 10)
            .await
            .unwrap();
    }
    s.enqueue(b.id, mail.id, "b-0", &json!({}), t)
        .await
        .unwrap();
    // Not due yet: not counted.
    s.enqueue(b.id, mail.id, "b-later", &json!({}), t + 600)
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    assert_eq!(
        s.claim_due_for(a.id, hook.id, t, 2, lease)
            .await
            .unwrap()
            .len(),
        2
    );

    let queues = s.outbox_queues(t).await.unwrap();
    assert_eq!(
        queues,
        vec![
            // The longest-waiting first.
            OutboxQueue {
                account: a.id,
                contact: hook.id,
                waiting: 3,
                in_flight: 2
            },
            OutboxQueue {
                account: b.id,
                contact: mail.id,
                waiting: 1,
                in_flight: 0
            },
        ]
    );
    // Once the lease is over the claimed ones wait again.
    let later = s.outbox_queues(t + 61).await.unwrap();
    assert_eq!((later[0].waiting, later[0].in_flight), (5, 0));
}

async fn claims_of_one_contact_leave_the_others(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (account(s, "A").await, account(s, "B").await);
    let hook = s
        .create_contact(a.id, "hook", Channel::Webhook, "https://hooks.example/a")
        .await
        .unwrap();
    let mail = s
        .create_contact(b.id, "mail", Channel::Email, "ops@b.example")
        .await
        .unwrap();
    let t = now();
    for i in 0..4 {
        s.enqueue(
            a.id,
            hook.id,
            &format!("a-{i}"),
            &json!({"i": i}),
            t - 10 + i,
        )
        .await
        .unwrap();
    }
    s.enqueue(b.id, mail.id, "b-0", &json!({}), t)
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let claimed = s.claim_due_for(b.id, mail.id, t, 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].contact.id, mail.id);
    assert_eq!(claimed[0].attempts, 1);
    // Another account's contact id under this account claims nothing.
    assert!(s
        .claim_due_for(b.id, hook.id, t, 10, lease)
        .await
        .unwrap()
        .is_empty());
    let first = s.claim_due_for(a.id, hook.id, t, 3, lease).await.unwrap();
    let order: Vec<_> = first.iter().map(|i| i.payload["i"].as_i64()).collect();
    assert_eq!(order, vec![Some(0), Some(1), Some(2)], "oldest first");
    let rest = s.claim_due_for(a.id, hook.id, t, 3, lease).await.unwrap();
    assert_eq!(rest.len(), 1, "claimed rows are not claimed twice");
}

async fn the_oldest_waiting_make_room_past_the_cap(db: &TestDb) {
    let s = &db.store;
    assert_eq!(
        s.max_queued_notifications(),
        vigil_store::MAX_QUEUED_NOTIFICATIONS
    );
    s.set_max_queued_notifications(3);
    let (a, b) = (account(s, "A").await, account(s, "B").await);
    let hook = s
        .create_contact(a.id, "hook", Channel::Webhook, "https://hooks.example/a")
        .await
        .unwrap();
    let mail = s
        .create_contact(b.id, "mail", Channel::Email, "ops@b.example")
        .await
        .unwrap();
    let t = now();
    for i in 0..3 {
        s.enqueue(a.id, hook.id, &format!("a-{i}"), &json!({"i": i}), t + i)
            .await
            .unwrap();
    }
    // One being sent is never dropped under the sender.
    let sending = s
        .claim_due_for(a.id, hook.id, t + 10, 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(sending[0].payload["i"], 0);
    for i in 3..6 {
        assert!(s
            .enqueue(a.id, hook.id, &format!("a-{i}"), &json!({"i": i}), t + i)
            .await
            .unwrap());
    }
    // The other account is not affected by A's cap.
    for i in 0..3 {
        s.enqueue(b.id, mail.id, &format!("b-{i}"), &json!({}), t)
            .await
            .unwrap();
    }
    assert_eq!(s.dropped_count().await.unwrap(), 3);
    let deliveries = s.deliveries(a.id, hook.id, 100).await.unwrap();
    let mut dropped: Vec<_> = deliveries
        .iter()
        .filter(|d| d.state == DeliveryState::Failed)
        .map(|d| d.payload["i"].as_i64().unwrap())
        .collect();
    dropped.sort();
    assert_eq!(dropped, vec![1, 2, 3], "the oldest not being sent");
    for d in deliveries
        .iter()
        .filter(|d| d.state == DeliveryState::Failed)
    {
        let error = d.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("more than 3 notifications waiting"),
            "{error}"
        );
    }
    // The newest and the one being sent are still queued.
    let queued: Vec<_> = deliveries
        .iter()
        .filter(|d| d.state == DeliveryState::Queued)
        .map(|d| d.payload["i"].as_i64().unwrap())
        .collect();
    assert_eq!(queued.len(), 3, "{queued:?}");
    for i in [0, 4, 5] {
        assert!(queued.contains(&i), "{i} in {queued:?}");
    }
    let b_queued = s.deliveries(b.id, mail.id, 100).await.unwrap();
    assert!(b_queued.iter().all(|d| d.state == DeliveryState::Queued));
    // A dropped notification is never claimed again (nor, within its
    // lease, the one being sent).
    let due = s
        .claim_due_for(a.id, hook.id, t + 20, 100, Duration::from_secs(60))
        .await
        .unwrap();
    let mut claimed: Vec<_> = due
        .iter()
        .map(|i| i.payload["i"].as_i64().unwrap())
        .collect();
    claimed.sort();
    assert_eq!(claimed, vec![4, 5]);
}

async fn recent_test_sends_are_counted(db: &TestDb) {
    let s = &db.store;
    let (a, b) = (account(s, "A").await, account(s, "B").await);
    let hook = s
        .create_contact(a.id, "hook", Channel::Webhook, "https://hooks.example/a")
        .await
        .unwrap();
    let t = now();
    for i in 0..3 {
        s.enqueue(
            a.id,
            hook.id,
            &format!("test:{}:{i}", hook.id),
            &json!({}),
            t - 100 + i * 40,
        )
        .await
        .unwrap();
    }
    s.enqueue(a.id, hook.id, "alert:1:raised", &json!({}), t)
        .await
        .unwrap();
    assert_eq!(
        s.test_sends_since(a.id, t - 60).await.unwrap(),
        TestSends {
            count: 1,
            oldest: Some(t - 20)
        }
    );
    assert_eq!(s.test_sends_since(a.id, t - 1000).await.unwrap().count, 3);
    assert_eq!(
        s.test_sends_since(b.id, t - 1000).await.unwrap(),
        TestSends::default()
    );
}
