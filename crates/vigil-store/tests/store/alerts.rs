//! Alerts: acknowledgements, each alert's history (its own changes and the
//! notifications about it), and pages of the list.

use crate::fixtures::*;
use serde_json::json;
use std::time::Duration;
use vigil_core::{Condition, Resolution};
use vigil_store::{
    AckFilter, AckOutcome, Alert, AlertEvent, AlertEventKind, AlertFilter, AlertId, AlertStatus,
    Channel, Role, Store, User,
};
use vigil_testdb::TestDb;

backend_tests!(
    history_records_every_change,
    acknowledging_an_alert,
    notifications_land_in_the_alert_history,
    pages_and_filters,
    concurrent_changes_keep_one_numbered_history,
    resolving_records_why_and_by_whom,
);

async fn user(s: &Store, account: &vigil_store::Account, email: &str, role: Role) -> User {
    s.create_user(account.id, email, "correct horse battery", role)
        .await
        .unwrap()
}

fn kinds(events: &[AlertEvent]) -> Vec<AlertEventKind> {
    events.iter().map(|e| e.kind).collect()
}

/// Sequence numbers run 1, 2, … without gaps.
#[track_caller]
fn assert_numbered(events: &[AlertEvent]) {
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, want, "{events:#?}");
}

async fn history_records_every_change(db: &TestDb) {
    use AlertEventKind::*;
    let s = &db.store;
    let org = account(s, "Acme").await;
    let owner = user(s, &org, "owner@acme.example", Role::Owner).await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let c = Condition::unauthorized_open(8080);

    let alert = s
        .open_alert(org.id, a.id, "agent_host", c, false, t)
        .await
        .unwrap();
    assert_eq!(alert.acknowledged_at, None);
    assert_eq!(alert.acknowledged_by, None);
    // Opening it again is the same alert, and nothing new happened to it.
    s.open_alert(org.id, a.id, "agent_host", c, true, t + 1)
        .await
        .unwrap();
    let h = s.alert_history(org.id, alert.id).await.unwrap();
    assert_eq!(kinds(&h), [Raised]);
    assert_eq!(
        (h[0].at, h[0].alert_id, h[0].actor.clone()),
        (t, alert.id, None)
    );

    assert!(
        s.set_alert_flapping(org.id, alert.id, true)
            .await
            .unwrap()
            .flapping
    );
    // No change, no entry.
    s.set_alert_flapping(org.id, alert.id, true).await.unwrap();
    assert!(
        !s.set_alert_flapping(org.id, alert.id, false)
            .await
            .unwrap()
            .flapping
    );
    let outcome = s
        .acknowledge_alert(org.id, alert.id, &owner, Some("looking"), t + 10)
        .await
        .unwrap();
    assert!(matches!(outcome, AckOutcome::Acknowledged(_)));
    s.resolve_alert(org.id, alert.id, t + 20).await.unwrap();
    s.resolve_alert(org.id, alert.id, t + 30).await.unwrap();

    let h = s.alert_history(org.id, alert.id).await.unwrap();
    assert_eq!(
        kinds(&h),
        [
            Raised,
            FlappingStarted,
            FlappingStopped,
            Acknowledged,
            Resolved
        ]
    );
    assert_numbered(&h);
    let ack = &h[3];
    assert_eq!(ack.at, t + 10);
    assert_eq!(ack.actor.as_deref(), Some("owner@acme.example"));
    assert_eq!(ack.detail.as_deref(), Some("looking"));
    assert_eq!(h[4].at, t + 20, "resolving twice keeps the first time");
    assert_eq!(h[4].detail.as_deref(), Some("cleared"));
    assert_eq!(h[4].actor, None);

    // Raised while flapping: both entries. Another alert's history is its own.
    let flappy = s
        .open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::service_down(443),
            true,
            t + 40,
        )
        .await
        .unwrap();
    let h = s.alert_history(org.id, flappy.id).await.unwrap();
    assert_eq!(kinds(&h), [Raised, FlappingStarted]);
    assert_numbered(&h);
    assert!(h.iter().all(|e| e.alert_id == flappy.id && e.at == t + 40));

    // Another account sees neither the alert nor its history.
    let other = account(s, "Other").await;
    assert_not_found(s.alert_history(other.id, alert.id).await);
    assert_not_found(s.alert_history(org.id, AlertId::random()).await);
    assert_not_found(s.set_alert_flapping(other.id, alert.id, true).await);
    assert_eq!(s.alert_history(org.id, alert.id).await.unwrap().len(), 5);
}

async fn acknowledging_an_alert(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let owner = user(s, &org, "owner@acme.example", Role::Owner).await;
    let admin = user(s, &org, "admin@acme.example", Role::Admin).await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let open = |target: &'static str| {
        s.open_alert(
            org.id,
            a.id,
            target,
            Condition::target_unreachable(),
            false,
            t,
        )
    };
    let alert = open("nas.example").await.unwrap();

    // Refused notes change nothing.
    for bad in ["x".repeat(2001), "bell \u{7}".into()] {
        assert_invalid(
            s.acknowledge_alert(org.id, alert.id, &owner, Some(&bad), t + 1)
                .await,
        );
    }
    assert_eq!(s.alert(org.id, alert.id).await.unwrap(), alert);

    let acked = match s
        .acknowledge_alert(
            org.id,
            alert.id,
            &owner,
            Some("  on it\r\nETA 10 min "),
            t + 5,
        )
        .await
        .unwrap()
    {
        AckOutcome::Acknowledged(a) => a,
        other => panic!("expected Acknowledged, got {other:?}"),
    };
    assert_eq!(acked.acknowledged_at, Some(t + 5));
    assert_eq!(acked.acknowledged_by.as_deref(), Some("owner@acme.example"));
    assert_eq!(acked.ack_note.as_deref(), Some("on it\nETA 10 min"));
    assert_eq!(
        acked.status,
        AlertStatus::Open,
        "acknowledging resolves nothing"
    );
    assert!(acked.is_acknowledged());
    assert_eq!(s.alert(org.id, alert.id).await.unwrap(), acked);

    // The first acknowledgement stays.
    assert_eq!(
        s.acknowledge_alert(org.id, alert.id, &admin, Some("me too"), t + 6)
            .await
            .unwrap(),
        AckOutcome::AlreadyAcknowledged(acked.clone())
    );
    assert_eq!(
        s.acknowledge_alert(org.id, alert.id, &owner, None, t + 7)
            .await
            .unwrap(),
        AckOutcome::AlreadyAcknowledged(acked.clone())
    );
    let h = s.alert_history(org.id, alert.id).await.unwrap();
    assert_eq!(h.len(), 2, "{h:#?}");

    // A resolved alert is not acknowledged any more; an acknowledged one
    // keeps its acknowledgement when resolved.
    let resolved = s.resolve_alert(org.id, acked.id, t + 8).await.unwrap();
    assert_eq!(
        resolved.acknowledged_by.as_deref(),
        Some("owner@acme.example")
    );
    let other = open("db.example").await.unwrap();
    let other = s.resolve_alert(org.id, other.id, t + 9).await.unwrap();
    assert_eq!(
        s.acknowledge_alert(org.id, other.id, &admin, None, t + 10)
            .await
            .unwrap(),
        AckOutcome::Resolved(other.clone())
    );
    assert_eq!(s.alert_history(org.id, other.id).await.unwrap().len(), 2);

    // An empty note is no note.
    let third = open("printer.example").await.unwrap();
    match s
        .acknowledge_alert(org.id, third.id, &admin, Some("   "), t + 11)
        .await
        .unwrap()
    {
        AckOutcome::Acknowledged(a) => {
            assert_eq!(a.ack_note, None);
            assert_eq!(a.acknowledged_by.as_deref(), Some("admin@acme.example"));
        }
        other => panic!("expected Acknowledged, got {other:?}"),
    }

    // Tenancy: another account's alert, or a user of another account.
    let rival = account(s, "Rival").await;
    let stranger = user(s, &rival, "x@rival.example", Role::Owner).await;
    let fourth = open("fax.example").await.unwrap();
    assert_not_found(
        s.acknowledge_alert(rival.id, fourth.id, &stranger, None, t)
            .await,
    );
    assert_not_found(
        s.acknowledge_alert(org.id, fourth.id, &stranger, None, t)
            .await,
    );
    assert_not_found(
        s.acknowledge_alert(org.id, AlertId::random(), &owner, None, t)
            .await,
    );
    assert_eq!(s.alert(org.id, fourth.id).await.unwrap(), fourth);
}

async fn notifications_land_in_the_alert_history(db: &TestDb) {
    use AlertEventKind::*;
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let hook = s
        .create_contact(org.id, "Hook", Channel::Webhook, "https://hooks.example/x")
        .await
        .unwrap();
    let mail = s
        .create_contact(org.id, "Ops", Channel::Email, "ops@acme.example")
        .await
        .unwrap();
    let alert = s
        .open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::unauthorized_open(23),
            false,
            t,
        )
        .await
        .unwrap();
    let key = format!("alert:{}:raised", alert.id);
    let payload = json!({"title": "Port 23 open"});
    for contact in [&hook, &mail] {
        assert!(s
            .enqueue_for_alert(org.id, alert.id, contact, &key, "Port 23 open", &payload, t)
            .await
            .unwrap());
    }
    // The same key again queues nothing and records nothing.
    assert!(!s
        .enqueue_for_alert(
            org.id,
            alert.id,
            &hook,
            &key,
            "Port 23 open",
            &payload,
            t + 1
        )
        .await
        .unwrap());
    // A notification about no alert leaves the history alone.
    assert!(s
        .enqueue(org.id, hook.id, "test:1", &json!({}), t)
        .await
        .unwrap());
    // Another account's alert: not found, nothing queued.
    let rival = account(s, "Rival").await;
    let rival_hook = s
        .create_contact(
            rival.id,
            "Hook",
            Channel::Webhook,
            "https://hooks.example/r",
        )
        .await
        .unwrap();
    assert_not_found(
        s.enqueue_for_alert(rival.id, alert.id, &rival_hook, "k", "x", &payload, t)
            .await,
    );
    assert_not_found(
        s.enqueue_for_alert(org.id, AlertId::random(), &hook, "k", "x", &payload, t)
            .await,
    );
    assert_eq!(s.pending_count().await.unwrap(), 3);

    // First attempt: the hook fails and is retried, the mail is sent.
    let lease = Duration::from_secs(60);
    let mut claimed = s.claim_due(t, 10, lease).await.unwrap();
    assert_eq!(claimed.len(), 3);
    // The claim order is the database's; the history follows the order of
    // the outcomes, so record the hook's failure first.
    claimed.sort_by_key(|item| !(item.contact.id == hook.id && item.dedupe_key == key));
    for item in &claimed {
        if item.contact.id == hook.id && item.dedupe_key == key {
            s.mark_failed(item.id, "HTTP 503 from hooks.example", Some(t + 30))
                .await
                .unwrap();
        } else {
            s.mark_sent(item.id, t + 2).await.unwrap();
            // Marking it again changes nothing, and records nothing.
            s.mark_sent(item.id, t + 3).await.unwrap();
        }
    }
    // The contact is renamed: the history keeps the name it had.
    s.update_contact(
        org.id,
        hook.id,
        "Renamed",
        Channel::Webhook,
        "https://hooks.example/x",
    )
    .await
    .unwrap();
    // Second attempt: the hook gives up.
    let retry = s.claim_due(t + 30, 10, lease).await.unwrap();
    assert_eq!(retry.len(), 1);
    s.mark_failed(retry[0].id, "HTTP 404 from hooks.example", None)
        .await
        .unwrap();

    let h = s.alert_history(org.id, alert.id).await.unwrap();
    assert_numbered(&h);
    assert_eq!(
        kinds(&h),
        [
            Raised,
            NotificationQueued,
            NotificationQueued,
            NotificationFailed,
            NotificationDelivered,
            NotificationFailed
        ],
        "{h:#?}"
    );
    let queued: Vec<_> = h.iter().filter(|e| e.kind == NotificationQueued).collect();
    for (e, contact) in queued.iter().zip([&hook, &mail]) {
        assert_eq!(e.contact_id, Some(contact.id));
        assert_eq!(e.contact_name.as_deref(), Some(contact.name.as_str()));
        assert_eq!(e.channel, Some(contact.channel));
        assert_eq!(e.detail.as_deref(), Some("Port 23 open"));
        assert_eq!(e.at, t);
    }
    let failed = &h[3];
    assert_eq!(failed.contact_name.as_deref(), Some("Hook"));
    assert_eq!(failed.attempt, Some(1));
    assert_eq!(failed.error.as_deref(), Some("HTTP 503 from hooks.example"));
    assert_eq!(failed.retry_at, Some(t + 30));
    let delivered = &h[4];
    assert_eq!(
        (
            delivered.contact_id,
            delivered.channel,
            delivered.at,
            delivered.attempt
        ),
        (Some(mail.id), Some(Channel::Email), t + 2, Some(1))
    );
    assert_eq!(delivered.error, None);
    let gave_up = &h[5];
    assert_eq!(gave_up.contact_name.as_deref(), Some("Renamed"));
    assert_eq!(gave_up.attempt, Some(2));
    assert_eq!(gave_up.retry_at, None, "given up");
    assert_eq!(
        gave_up.error.as_deref(),
        Some("HTTP 404 from hooks.example")
    );

    // Deleting the contact (and its outbox rows) keeps the history.
    s.delete_contact(org.id, hook.id).await.unwrap();
    assert_eq!(s.alert_history(org.id, alert.id).await.unwrap(), h);
}

/// `n` alerts of `agent`, raised a second apart (the first is the oldest).
async fn raise_many(
    s: &Store,
    org: &vigil_store::Account,
    agent: &vigil_store::Agent,
    n: u16,
    t: i64,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for i in 0..n {
        let alert = s
            .open_alert(
                org.id,
                agent.id,
                "agent_host",
                Condition::unauthorized_open(1000 + i),
                false,
                t + i64::from(i),
            )
            .await
            .unwrap();
        out.push(alert);
    }
    out
}

async fn pages_and_filters(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let owner = user(s, &org, "owner@acme.example", Role::Owner).await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let t = now();
    // 12 alerts of a (ports 1000…1011), 3 of b; then 4 of a are resolved
    // (one of them acknowledged first) and 3 more acknowledged.
    let of_a = raise_many(s, &org, &a, 12, t).await;
    let of_b = raise_many(s, &org, &b, 3, t + 100).await;
    for x in &of_a[0..4] {
        if x.id == of_a[0].id {
            s.acknowledge_alert(org.id, x.id, &owner, None, t + 200)
                .await
                .unwrap();
        }
        s.resolve_alert(org.id, x.id, t + 201).await.unwrap();
    }
    for x in [&of_a[5], &of_a[7], &of_b[1]] {
        s.acknowledge_alert(org.id, x.id, &owner, None, t + 202)
            .await
            .unwrap();
    }
    let ports =
        |alerts: &[Alert]| -> Vec<u16> { alerts.iter().filter_map(|a| a.condition.port).collect() };
    let filter = |status: Option<AlertStatus>, agent: Option<vigil_store::AgentId>| AlertFilter {
        status,
        agent,
    };
    let open = Some(AlertStatus::Open);
    let resolved = Some(AlertStatus::Resolved);
    for (f, ack, want_total, want_first_page) in [
        // b's alerts are the newest.
        (
            filter(None, None),
            AckFilter::Any,
            15,
            vec![1002, 1001, 1000, 1011, 1010],
        ),
        (
            filter(open, None),
            AckFilter::Any,
            11,
            vec![1002, 1001, 1000, 1011, 1010],
        ),
        (
            filter(open, None),
            AckFilter::Unacknowledged,
            8,
            vec![1002, 1000, 1011, 1010, 1009],
        ),
        (
            filter(open, None),
            AckFilter::Acknowledged,
            3,
            vec![1001, 1007, 1005],
        ),
        (
            filter(resolved, None),
            AckFilter::Any,
            4,
            vec![1003, 1002, 1001, 1000],
        ),
        (
            filter(resolved, None),
            AckFilter::Acknowledged,
            1,
            vec![1000],
        ),
        (
            filter(None, Some(b.id)),
            AckFilter::Any,
            3,
            vec![1002, 1001, 1000],
        ),
        (
            filter(open, Some(a.id)),
            AckFilter::Acknowledged,
            2,
            vec![1007, 1005],
        ),
        (
            filter(None, Some(a.id)),
            AckFilter::Unacknowledged,
            9,
            vec![1011, 1010, 1009, 1008, 1006],
        ),
    ] {
        let (page, total) = s.alerts_page(org.id, &f, ack, 0, 5).await.unwrap();
        assert_eq!(
            (total, ports(&page)),
            (want_total, want_first_page),
            "{f:?} {ack:?}"
        );
        // Walking the pages yields each match once, newest first.
        let mut walked = Vec::new();
        let mut offset = 0;
        loop {
            let (page, total) = s.alerts_page(org.id, &f, ack, offset, 4).await.unwrap();
            assert_eq!(total, want_total);
            if page.is_empty() {
                break;
            }
            offset += page.len() as u64;
            walked.extend(page);
        }
        assert_eq!(walked.len() as u64, want_total, "{f:?} {ack:?}");
        assert!(walked.windows(2).all(|w| w[0].raised_at >= w[1].raised_at));
        for x in &walked {
            assert!(f.status.is_none_or(|st| x.status == st));
            assert!(f.agent.is_none_or(|ag| x.agent_id == ag));
            match ack {
                AckFilter::Any => {}
                AckFilter::Acknowledged => assert!(x.is_acknowledged()),
                AckFilter::Unacknowledged => assert!(!x.is_acknowledged()),
            }
        }
    }
    // Past the end: no rows, the total still counts.
    let (page, total) = s
        .alerts_page(org.id, &AlertFilter::default(), AckFilter::Any, 1000, 5)
        .await
        .unwrap();
    assert_eq!((page.len(), total), (0, 15));
    assert_invalid(
        s.alerts_page(org.id, &AlertFilter::default(), AckFilter::Any, 0, 0)
            .await,
    );
    assert_invalid(
        s.alerts_page(org.id, &AlertFilter::default(), AckFilter::Any, u64::MAX, 5)
            .await,
    );
    // Another account sees nothing.
    let rival = account(s, "Rival").await;
    let (page, total) = s
        .alerts_page(rival.id, &filter(None, Some(a.id)), AckFilter::Any, 0, 5)
        .await
        .unwrap();
    assert_eq!((page.len(), total), (0, 0));
}

async fn concurrent_changes_keep_one_numbered_history(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(user(s, &org, &format!("u{i}@acme.example"), Role::Admin).await);
    }
    let hook = s
        .create_contact(org.id, "Hook", Channel::Webhook, "https://hooks.example/x")
        .await
        .unwrap();
    let t = now();
    let alert = s
        .open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::service_down(22),
            false,
            t,
        )
        .await
        .unwrap();
    // Six people acknowledge at once while notifications are queued and
    // the alert flaps: exactly one acknowledgement wins, and every entry
    // gets its own number.
    let mut tasks = Vec::new();
    for (i, u) in users.into_iter().enumerate() {
        let s = s.clone();
        let hook = hook.clone();
        let id = alert.id;
        let account = org.id;
        tasks.push(tokio::spawn(async move {
            let ack = s
                .acknowledge_alert(account, id, &u, Some(&format!("me {i}")), t + 1)
                .await
                .unwrap();
            let key = format!("k{i}");
            assert!(s
                .enqueue_for_alert(account, id, &hook, &key, "t", &json!({}), t + 1)
                .await
                .unwrap());
            s.set_alert_flapping(account, id, i % 2 == 0).await.unwrap();
            ack
        }));
    }
    let mut won = 0;
    for task in tasks {
        if let AckOutcome::Acknowledged(_) = task.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    let claimed = s
        .claim_due(t + 1, 100, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 6);
    let mut marks = Vec::new();
    for item in claimed {
        let s = s.clone();
        marks.push(tokio::spawn(
            async move { s.mark_sent(item.id, t + 2).await },
        ));
    }
    for m in marks {
        m.await.unwrap().unwrap();
    }
    let h = s.alert_history(org.id, alert.id).await.unwrap();
    assert_numbered(&h);
    let count = |k: AlertEventKind| h.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(AlertEventKind::Acknowledged), 1);
    assert_eq!(count(AlertEventKind::NotificationQueued), 6);
    assert_eq!(count(AlertEventKind::NotificationDelivered), 6);
    assert!(count(AlertEventKind::FlappingStarted) >= 1);
}

/// An alert keeps why it ended and whose change ended it; its history's
/// `resolved` entry says the same; the first resolution stays.
async fn resolving_records_why_and_by_whom(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let alice = "alice@acme.example";
    // (condition, reason, by)
    let cases = [
        (
            Condition::unauthorized_open(8080),
            Resolution::Cleared,
            None,
        ),
        (
            Condition::unauthorized_open(8081),
            Resolution::PolicyChanged,
            Some(alice),
        ),
        (Condition::service_down(22), Resolution::PolicyChanged, None),
        (
            Condition::service_down(25),
            Resolution::NotScanned,
            Some(alice),
        ),
    ];
    for (c, why, by) in cases {
        let open = s
            .open_alert(org.id, a.id, "agent_host", c, false, t)
            .await
            .unwrap();
        assert_eq!((open.resolution, open.resolved_by.clone()), (None, None));
        let done = s
            .resolve_alert_as(org.id, open.id, t + 5, why, by)
            .await
            .unwrap();
        assert_eq!(done.status, AlertStatus::Resolved, "{c:?}");
        assert_eq!(done.resolution, Some(why), "{c:?}");
        assert_eq!(done.resolved_by.as_deref(), by, "{c:?}");
        assert_eq!(s.alert(org.id, open.id).await.unwrap(), done);
        // Resolving again, for another reason, changes nothing.
        let again = s
            .resolve_alert_as(org.id, open.id, t + 9, Resolution::Cleared, Some("bob@x"))
            .await
            .unwrap();
        assert_eq!(again, done, "{c:?}");
        let h = s.alert_history(org.id, open.id).await.unwrap();
        assert_eq!(
            kinds(&h),
            [AlertEventKind::Raised, AlertEventKind::Resolved],
            "{c:?}"
        );
        assert_eq!(h[1].detail.as_deref(), Some(why.as_str()), "{c:?}");
        assert_eq!(h[1].actor.as_deref(), by, "{c:?}");
        assert_eq!(h[1].at, t + 5);
    }
    // The list carries them too.
    let listed = s.alerts(org.id, &AlertFilter::default()).await.unwrap();
    assert!(listed
        .iter()
        .any(|x| x.resolution == Some(Resolution::NotScanned)
            && x.resolved_by.as_deref() == Some(alice)));

    // Who resolved it must be a short, printable text; nothing changes otherwise.
    let open = s
        .open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::unauthorized_open(9),
            false,
            t,
        )
        .await
        .unwrap();
    for bad in ["", " alice", "a\nb", &"x".repeat(300)] {
        assert_invalid(
            s.resolve_alert_as(org.id, open.id, t, Resolution::PolicyChanged, Some(bad))
                .await,
        );
    }
    assert_eq!(s.alert(org.id, open.id).await.unwrap(), open);
    // Another account's alert is not found.
    let other = account(s, "Other").await;
    assert_not_found(
        s.resolve_alert_as(other.id, open.id, t, Resolution::PolicyChanged, None)
            .await,
    );
    assert_eq!(
        s.alert(org.id, open.id).await.unwrap().status,
        AlertStatus::Open
    );
}
