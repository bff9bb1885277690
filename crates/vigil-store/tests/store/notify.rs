//! Contacts, notification rules, the outbox.

use crate::fixtures::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use vigil_store::{Channel, ContactId, DeliveryState, OutboxId, RuleId};
use vigil_testdb::TestDb;

backend_tests!(
    contacts_crud,
    rules_pick_contacts,
    outbox_dedupes_leases_and_retries,
    concurrent_claimers_never_share_a_row,
    deliveries_of_a_contact,
);

async fn contacts_crud(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let ops = s
        .create_contact(org.id, "Ops", Channel::Email, "Ops@Acme.example")
        .await
        .unwrap();
    assert_eq!(ops.address, "ops@acme.example");
    assert_eq!(ops.channel, Channel::Email);
    let mut all = vec![ops.clone()];
    for (i, channel) in Channel::ALL.iter().enumerate().skip(1) {
        let c = s
            .create_contact(
                org.id,
                &format!("hook {i}"),
                *channel,
                &example_address(*channel, i),
            )
            .await
            .unwrap();
        all.push(c);
    }
    let listed = s.contacts(org.id).await.unwrap();
    assert_eq!(listed.len(), Channel::ALL.len());
    for c in &all {
        assert!(listed.contains(c));
        assert_eq!(&s.contact(org.id, c.id).await.unwrap(), c);
    }

    let moved = s
        .update_contact(
            org.id,
            ops.id,
            "Ops pager",
            Channel::Ntfy,
            "https://ntfy.example/ops",
        )
        .await
        .unwrap();
    assert_eq!(moved.name, "Ops pager");
    assert_eq!(moved.channel, Channel::Ntfy);
    assert_eq!(moved.address, "https://ntfy.example/ops");
    assert_eq!(moved.created_at, ops.created_at);
    assert_eq!(s.contact(org.id, ops.id).await.unwrap(), moved);
    // The address must suit the channel.
    assert_invalid(
        s.update_contact(org.id, ops.id, "Ops", Channel::Email, "https://x.example")
            .await,
    );
    assert_invalid(
        s.create_contact(org.id, "Hook", Channel::Webhook, "ops@acme.example")
            .await,
    );
    assert_eq!(s.contact(org.id, ops.id).await.unwrap(), moved);

    s.delete_contact(org.id, ops.id).await.unwrap();
    assert_not_found(s.contact(org.id, ops.id).await);
    assert_not_found(s.delete_contact(org.id, ops.id).await);
    assert_not_found(
        s.update_contact(
            org.id,
            ContactId::random(),
            "x",
            Channel::Email,
            "x@acme.example",
        )
        .await,
    );
    assert_eq!(
        s.contacts(org.id).await.unwrap().len(),
        Channel::ALL.len() - 1
    );
}

async fn rules_pick_contacts(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (web, _) = agent(s, &org, "web").await;
    let (dbs, _) = agent(s, &org, "db").await;
    let alice = s
        .create_contact(org.id, "Alice", Channel::Email, "alice@acme.example")
        .await
        .unwrap();
    let bob = s
        .create_contact(
            org.id,
            "Bob",
            Channel::Slack,
            "https://hooks.slack.example/b",
        )
        .await
        .unwrap();
    let carol = s
        .create_contact(org.id, "Carol", Channel::Email, "carol@acme.example")
        .await
        .unwrap();

    // Alice: alerts of every agent. Bob: everything about web. Carol: nothing.
    let r1 = s
        .create_rule(
            org.id,
            alice.id,
            None,
            &["alert.raised", "alert.cleared", "alert.raised"],
        )
        .await
        .unwrap();
    assert_eq!(r1.events, vec!["alert.cleared", "alert.raised"]);
    assert_eq!(r1.agent_id, None);
    let r2 = s
        .create_rule(
            org.id,
            bob.id,
            Some(web.id),
            &["alert.raised", "agent.silent"],
        )
        .await
        .unwrap();
    // A second rule for Alice must not list her twice.
    s.create_rule(org.id, alice.id, Some(web.id), &["alert.raised"])
        .await
        .unwrap();

    let names = |v: Vec<vigil_store::Contact>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.rules_for(org.id, web.id, "alert.raised").await.unwrap()),
        ["Alice", "Bob"]
    );
    assert_eq!(
        names(s.rules_for(org.id, dbs.id, "alert.raised").await.unwrap()),
        ["Alice"]
    );
    assert_eq!(
        names(s.rules_for(org.id, web.id, "agent.silent").await.unwrap()),
        ["Bob"]
    );
    assert!(s
        .rules_for(org.id, dbs.id, "agent.silent")
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .rules_for(org.id, web.id, "agent.back")
        .await
        .unwrap()
        .is_empty());
    let _ = carol;
    // About the account itself: only rules for every agent count.
    assert_eq!(
        names(s.account_rules_for(org.id, "alert.raised").await.unwrap()),
        ["Alice"]
    );
    assert!(s
        .account_rules_for(org.id, "agent.silent")
        .await
        .unwrap()
        .is_empty());
    assert_invalid(s.account_rules_for(org.id, "Bad Kind").await);

    let rules = s.rules(org.id).await.unwrap();
    assert_eq!(rules.len(), 3);
    assert!(rules.contains(&r1) && rules.contains(&r2));
    s.delete_rule(org.id, r2.id).await.unwrap();
    assert_eq!(
        names(s.rules_for(org.id, web.id, "agent.silent").await.unwrap()),
        Vec::<String>::new()
    );
    assert_not_found(s.delete_rule(org.id, r2.id).await);
    assert_not_found(s.delete_rule(org.id, RuleId::random()).await);
    // Deleting a contact deletes its rules.
    s.delete_contact(org.id, alice.id).await.unwrap();
    assert!(s
        .rules_for(org.id, dbs.id, "alert.raised")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.rules(org.id).await.unwrap().len(), 0);
    // Rules need a contact and agent of the account.
    assert_not_found(
        s.create_rule(org.id, ContactId::random(), None, &["x"])
            .await,
    );
    assert_not_found(
        s.create_rule(org.id, bob.id, Some(vigil_store::AgentId::random()), &["x"])
            .await,
    );
}

async fn outbox_dedupes_leases_and_retries(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let contact = s
        .create_contact(org.id, "Ops", Channel::Webhook, "https://hooks.example/ops")
        .await
        .unwrap();
    let other = s
        .create_contact(org.id, "Dev", Channel::Email, "dev@acme.example")
        .await
        .unwrap();
    let t = now();
    let payload = json!({"event": "alert.raised", "port": 8080});
    let lease = Duration::from_secs(60);

    assert_eq!(s.pending_count().await.unwrap(), 0);
    assert!(s
        .enqueue(org.id, contact.id, "alert-1:raised", &payload, t)
        .await
        .unwrap());
    // The same event for the same contact is queued once…
    assert!(!s
        .enqueue(
            org.id,
            contact.id,
            "alert-1:raised",
            &json!({"x": 1}),
            t + 1
        )
        .await
        .unwrap());
    // …but for another contact it is a separate notification.
    assert!(s
        .enqueue(org.id, other.id, "alert-1:raised", &payload, t)
        .await
        .unwrap());
    assert_eq!(s.pending_count().await.unwrap(), 2);
    assert_not_found(
        s.enqueue(org.id, ContactId::random(), "k", &payload, t)
            .await,
    );

    // Not due before its time.
    assert!(s.claim_due(t - 1, 10, lease).await.unwrap().is_empty());
    let claimed = s.claim_due(t, 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let item = claimed
        .iter()
        .find(|i| i.contact.id == contact.id)
        .unwrap()
        .clone();
    let other_item = claimed
        .iter()
        .find(|i| i.contact.id == other.id)
        .unwrap()
        .clone();
    assert_eq!(item.payload, payload);
    assert_eq!(item.dedupe_key, "alert-1:raised");
    assert_eq!(item.attempts, 1);
    assert_eq!(item.contact, contact);
    assert_eq!(item.account_id, org.id);
    assert_eq!(item.last_error, None);

    // Leased: nobody else gets them until the lease runs out.
    assert!(s.claim_due(t, 10, lease).await.unwrap().is_empty());
    assert!(s.claim_due(t + 59, 10, lease).await.unwrap().is_empty());

    // Failure: retried at the given time, with the error kept.
    s.mark_failed(item.id, "HTTP 503\u{0} from hooks.example", Some(t + 120))
        .await
        .unwrap();
    s.mark_sent(other_item.id, t + 1).await.unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 1);
    assert!(s.claim_due(t + 119, 10, lease).await.unwrap().is_empty());
    let retried = s.claim_due(t + 120, 10, lease).await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].id, item.id);
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(
        retried[0].last_error.as_deref(),
        Some("HTTP 503  from hooks.example")
    );

    // A worker that dies: the row comes back when the lease expires.
    assert!(s.claim_due(t + 179, 10, lease).await.unwrap().is_empty());
    let recovered = s.claim_due(t + 180, 10, lease).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].attempts, 3);

    s.mark_sent(item.id, t + 181).await.unwrap();
    s.mark_sent(item.id, t + 182).await.unwrap(); // idempotent
    assert_eq!(s.pending_count().await.unwrap(), 0);
    assert!(s.claim_due(t + 10_000, 10, lease).await.unwrap().is_empty());
    // A sent notification is still deduplicated.
    assert!(!s
        .enqueue(org.id, contact.id, "alert-1:raised", &payload, t + 500)
        .await
        .unwrap());

    // Giving up: kept, never claimed again, not pending.
    assert!(s
        .enqueue(org.id, contact.id, "doomed", &payload, t)
        .await
        .unwrap());
    let doomed = s.claim_due(t, 10, lease).await.unwrap();
    assert_eq!(doomed.len(), 1);
    s.mark_failed(doomed[0].id, "410 Gone", None).await.unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 0);
    assert!(s
        .claim_due(t + 1_000_000, 10, lease)
        .await
        .unwrap()
        .is_empty());

    assert_not_found(s.mark_sent(OutboxId::random(), t).await);
    assert_not_found(s.mark_failed(OutboxId::random(), "x", Some(t)).await);

    // Deleting the contact drops its queue.
    assert!(s
        .enqueue(org.id, other.id, "later", &payload, t)
        .await
        .unwrap());
    assert_eq!(s.pending_count().await.unwrap(), 1);
    s.delete_contact(org.id, other.id).await.unwrap();
    assert_eq!(s.pending_count().await.unwrap(), 0);
}

async fn concurrent_claimers_never_share_a_row(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let contact = s
        .create_contact(org.id, "Ops", Channel::Webhook, "https://hooks.example/ops")
        .await
        .unwrap();
    let t = now();
    const ROWS: usize = 60;
    for i in 0..ROWS {
        assert!(s
            .enqueue(
                org.id,
                contact.id,
                &format!("event-{i}"),
                &json!({ "i": i }),
                t - (i as i64 % 7)
            )
            .await
            .unwrap());
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(6));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (s, start) = (s.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut mine = Vec::new();
                loop {
                    let batch = s
                        .claim_due(t, 7, Duration::from_secs(300))
                        .await
                        .expect("claim");
                    if batch.is_empty() {
                        break;
                    }
                    mine.extend(batch.into_iter().map(|i| i.id));
                }
                mine
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "row {id} claimed twice");
        }
    }
    assert_eq!(total, ROWS);
    assert_eq!(seen.len(), ROWS);
    // All leased: nothing left to claim, all still pending.
    assert!(s
        .claim_due(t, 100, Duration::from_secs(300))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.pending_count().await.unwrap(), ROWS as u64);
}

async fn deliveries_of_a_contact(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other_org = account(s, "Globex").await;
    let ops = s
        .create_contact(org.id, "Ops", Channel::Webhook, "https://hooks.example/ops")
        .await
        .unwrap();
    let dev = s
        .create_contact(org.id, "Dev", Channel::Email, "dev@acme.example")
        .await
        .unwrap();
    let t = now();
    let lease = Duration::from_secs(60);
    assert!(s.deliveries(org.id, ops.id, 10).await.unwrap().is_empty());

    // Three notifications for Ops (one second apart), one for Dev.
    for (i, key) in ["test:1", "alert-1:raised", "test:2"].iter().enumerate() {
        let payload = json!({ "event": "test", "i": i });
        assert!(s
            .enqueue(org.id, ops.id, key, &payload, t + i as i64)
            .await
            .unwrap());
    }
    assert!(s
        .enqueue(org.id, dev.id, "test:3", &json!({}), t)
        .await
        .unwrap());

    // The first is sent, the second fails for good, the third fails and waits.
    let claimed = s.claim_due(t + 2, 10, lease).await.unwrap();
    let id_of = |key: &str| claimed.iter().find(|i| i.dedupe_key == key).unwrap().id;
    s.mark_sent(id_of("test:1"), t + 3).await.unwrap();
    s.mark_failed(id_of("alert-1:raised"), "HTTP 410 Gone", None)
        .await
        .unwrap();
    s.mark_failed(id_of("test:2"), "connection refused", Some(t + 60))
        .await
        .unwrap();

    let seen = s.deliveries(org.id, ops.id, 10).await.unwrap();
    let rows: Vec<_> = seen
        .iter()
        .map(|d| {
            (
                d.dedupe_key.as_str(),
                d.state,
                d.attempts,
                d.last_error.as_deref(),
                d.created_at - t,
                d.sent_at.map(|x| x - t),
                d.next_attempt_at.map(|x| x - t),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "test:2",
                DeliveryState::Queued,
                1,
                Some("connection refused"),
                2,
                None,
                Some(60)
            ),
            (
                "alert-1:raised",
                DeliveryState::Failed,
                1,
                Some("HTTP 410 Gone"),
                1,
                None,
                None
            ),
            ("test:1", DeliveryState::Sent, 1, None, 0, Some(3), None),
        ],
        "newest first"
    );
    assert!(seen.iter().all(|d| d.contact_id == ops.id));
    assert_eq!(seen[2].payload, json!({ "event": "test", "i": 0 }));
    assert_eq!(seen[2].id, id_of("test:1"));

    // The limit keeps the newest. Dev's, claimed but not finished, is queued.
    let newest = s.deliveries(org.id, ops.id, 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].dedupe_key, "test:2");
    let dev_rows = s.deliveries(org.id, dev.id, 10).await.unwrap();
    assert_eq!(dev_rows.len(), 1);
    assert_eq!(
        (dev_rows[0].state, dev_rows[0].attempts),
        (DeliveryState::Queued, 1),
        "claimed once above"
    );

    assert_invalid(s.deliveries(org.id, ops.id, 0).await);
    assert_invalid(s.deliveries(org.id, ops.id, 1001).await);
    // Another account's contact, or none: not found.
    assert_not_found(s.deliveries(other_org.id, ops.id, 10).await);
    assert_not_found(s.deliveries(org.id, ContactId::random(), 10).await);
    // Deleting the contact drops its history.
    s.delete_contact(org.id, ops.id).await.unwrap();
    assert_not_found(s.deliveries(org.id, ops.id, 10).await);
}

/// A valid stored address of `channel`: the bare URL for one-field
/// channels, a JSON object of the required fields for the others.
fn example_address(channel: Channel, i: usize) -> String {
    use vigil_notify::{Destination, FieldKind};
    let fields: Vec<(&str, String)> = channel
        .fields()
        .iter()
        .filter(|f| f.required)
        .map(|f| {
            let v = match (f.name, f.kind) {
                (_, FieldKind::Url | FieldKind::SecretUrl) => format!("https://hooks.example/{i}"),
                (_, FieldKind::Secret) => format!("token-{i}"),
                (_, FieldKind::Email) => format!("ops{i}@acme.example"),
                (_, FieldKind::Phone) => format!("+1415555012{i}"),
                ("room_id", _) => format!("!room{i}:example.org"),
                (_, FieldKind::Text) => format!("{i}"),
            };
            (f.name, v)
        })
        .collect();
    Destination::new(channel, fields).to_address()
}
