//! Retention, table by table (rows past their age go, newer rows and the
//! rows the console and the alert clock need stay), and the server-wide
//! questions of the readiness check and the metrics endpoint.

use crate::fixtures::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vigil_core::history::AgentEventKind;
use vigil_core::lan::{Coverage, Sighting};
use vigil_core::{contact_range, AgentHealth, Condition, LivenessConfig, Plan, TargetState};
use vigil_store::{
    AccountId, AgentId, Channel, DeliveryState, DevicePatch, HeldPhase, NewAgentEvent,
    NewNetworkSweep, NewScanResult, Store, SweepIngest, OUTBOX_KEPT_PER_CONTACT,
};
use vigil_testdb::TestDb;

backend_tests!(
    pruning_keeps_the_newest_result_of_each_target,
    pruning_goes_in_batches_and_only_before_the_cutoff,
    server_wide_counts_and_ping,
    tasks_go_when_over_and_old,
    outbox_keeps_what_is_waiting_open_alerts_and_each_contacts_newest,
    resolved_alerts_go_with_their_history,
    agent_histories_keep_each_agents_newest_entry,
    audit_log_goes_in_batches,
    gone_devices_nobody_reviewed_go,
    enrollment_tokens_go_after_they_expired,
);

const DAY: i64 = 86_400;

/// Stores a new result of `target` finished at `finished`.
async fn result(s: &Store, account: AccountId, agent: AgentId, target: &str, finished: i64) {
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let upload_id = format!("u-{}", UPLOADS.fetch_add(1, Ordering::Relaxed));
    let stored = s
        .ingest_result(
            account,
            agent,
            &NewScanResult {
                upload_id: &upload_id,
                target,
                addr: Some("127.0.0.1"),
                task_id: None,
                probed: None,
                started_at: finished - 5,
                finished_at: finished,
                ports: &[],
            },
        )
        .await
        .unwrap();
    assert!(stored.is_new());
}

/// (target, finished_at) of the agent's results, newest first.
async fn history(s: &Store, account: AccountId, agent: AgentId) -> Vec<(String, i64)> {
    s.results(account, agent, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.target, r.finished_at))
        .collect()
}

async fn pruning_keeps_the_newest_result_of_each_target(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let (c, _) = agent(s, &other, "far").await;
    let t = now() - 86_400;
    for finished in [t, t + 100, t + 200] {
        result(s, org.id, a.id, "agent_host", finished).await;
    }
    // Two results finished at the same second: one stays.
    result(s, org.id, a.id, "host:nas.lan", t).await;
    result(s, org.id, a.id, "host:nas.lan", t).await;
    // Arrived last, finished first: not the newest.
    result(s, org.id, b.id, "agent_host", t + 50).await;
    result(s, org.id, b.id, "agent_host", t - 50).await;
    result(s, other.id, c.id, "agent_host", t).await;

    // Everything was received before this cutoff.
    let deleted = s.prune_results(now() + 10, 1000).await.unwrap();
    assert_eq!(deleted, 2 + 1 + 1);
    let mut kept_a = history(s, org.id, a.id).await;
    kept_a.sort();
    assert_eq!(
        kept_a,
        vec![("agent_host".into(), t + 200), ("host:nas.lan".into(), t)]
    );
    assert_eq!(
        history(s, org.id, b.id).await,
        vec![("agent_host".into(), t + 50)]
    );
    assert_eq!(
        history(s, other.id, c.id).await,
        vec![("agent_host".into(), t)]
    );
    // Nothing more to do: the newest results stay, however old.
    assert_eq!(s.prune_results(now() + 10, 1000).await.unwrap(), 0);
    // The last results the console shows are still there.
    assert_eq!(s.recent_results(org.id, 10).await.unwrap().len(), 3);
}

async fn pruning_goes_in_batches_and_only_before_the_cutoff(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    for i in 0..7 {
        result(s, org.id, a.id, "agent_host", t - 1000 + i).await;
    }
    // Received just now: younger than a cutoff an hour ago.
    assert_eq!(s.prune_results(t - 3600, 1000).await.unwrap(), 0);
    assert_eq!(history(s, org.id, a.id).await.len(), 7);
    // Batches of at most 4: 4, then the 2 left (the newest stays).
    let cutoff = now() + 10;
    assert_eq!(s.prune_results(cutoff, 4).await.unwrap(), 4);
    assert_eq!(history(s, org.id, a.id).await.len(), 3);
    assert_eq!(s.prune_results(cutoff, 4).await.unwrap(), 2);
    assert_eq!(
        history(s, org.id, a.id).await,
        vec![("agent_host".into(), t - 1000 + 6)]
    );
    // Batch sizes are bounded.
    for bad in [0, 1001] {
        assert_invalid(s.prune_results(cutoff, bad).await);
    }
}

async fn server_wide_counts_and_ping(db: &TestDb) {
    let s = &db.store;
    s.ping().await.unwrap();
    let liveness = LivenessConfig::default();
    let t = now();
    let ranges: Vec<_> = [
        AgentHealth::Communicating,
        AgentHealth::NotCommunicating,
        AgentHealth::Abandoned,
    ]
    .iter()
    .map(|h| contact_range(*h, u64::try_from(t).unwrap(), &liveness).unwrap())
    .collect();
    assert_eq!(
        s.agent_contact_counts(None, &ranges).await.unwrap(),
        vec![0, 0, 0]
    );
    assert_eq!(s.open_task_count(t).await.unwrap(), 0);

    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &other, "far").await;
    let (gone, _) = agent(s, &other, "gone").await;
    s.remove_agent(other.id, gone.id, t).await.unwrap();
    // Both accounts count; removed agents do not.
    assert_eq!(
        s.agent_contact_counts(None, &ranges).await.unwrap(),
        vec![2, 0, 0]
    );
    // An hour later they are silent; a year later abandoned.
    let later = |secs: i64| -> Vec<_> {
        [
            AgentHealth::Communicating,
            AgentHealth::NotCommunicating,
            AgentHealth::Abandoned,
        ]
        .iter()
        .map(|h| contact_range(*h, u64::try_from(t + secs).unwrap(), &liveness).unwrap())
        .collect()
    };
    assert_eq!(
        s.agent_contact_counts(None, &later(3600)).await.unwrap(),
        vec![0, 2, 0]
    );
    assert_eq!(
        s.agent_contact_counts(None, &later(400 * 86_400))
            .await
            .unwrap(),
        vec![0, 0, 2]
    );

    // Open tasks: unanswered and unexpired, over all accounts.
    let task = s
        .create_task(
            org.id,
            a.id,
            "agent_host",
            "127.0.0.1",
            "22",
            t,
            t + 600,
            None,
        )
        .await
        .unwrap();
    s.create_task(
        other.id,
        b.id,
        "agent_host",
        "127.0.0.1",
        "22",
        t,
        t + 600,
        None,
    )
    .await
    .unwrap();
    s.create_task(
        other.id,
        b.id,
        "host:nas.lan",
        "nas.lan",
        "22",
        t,
        t + 60,
        None,
    )
    .await
    .unwrap();
    assert_eq!(s.open_task_count(t).await.unwrap(), 3);
    assert_eq!(s.open_task_count(t + 60).await.unwrap(), 2, "one expired");
    s.complete_task(org.id, a.id, task.id, t + 1).await.unwrap();
    assert_eq!(s.open_task_count(t + 1).await.unwrap(), 2);

    // A closed store does not answer.
    let other_store = db.reconnect().await;
    other_store.ping().await.unwrap();
    other_store.close().await;
    assert!(other_store.ping().await.is_err());
}

async fn tasks_go_when_over_and_old(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let task = |key: &'static str, created: i64, expires: i64| async move {
        s.create_task(org.id, a.id, key, "127.0.0.1", "22", created, expires, None)
            .await
            .unwrap()
    };
    let completed = task("old-completed", t - 10 * DAY, t - 10 * DAY + 600).await;
    s.complete_task(org.id, a.id, completed.id, t - 10 * DAY + 60)
        .await
        .unwrap();
    let expired = task("old-expired", t - 10 * DAY, t - 10 * DAY + 600).await;
    // Handed out long ago and still open (a long scan): stays.
    let open = task("old-open", t - 10 * DAY, t + 3600).await;
    let recent = task("recent", t - 60, t - 30).await;
    let cutoff = t - 7 * DAY;
    assert_eq!(s.prune_tasks(cutoff, 1).await.unwrap(), 1);
    assert_eq!(s.prune_tasks(cutoff, 1000).await.unwrap(), 1);
    assert_eq!(s.prune_tasks(cutoff, 1000).await.unwrap(), 0);
    for gone in [completed.id, expired.id] {
        assert_not_found(s.task(org.id, a.id, gone).await);
    }
    for kept in [open.id, recent.id] {
        s.task(org.id, a.id, kept).await.unwrap();
    }
    assert_eq!(s.open_tasks(org.id, a.id, t).await.unwrap().len(), 1);
}

async fn outbox_keeps_what_is_waiting_open_alerts_and_each_contacts_newest(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let ops = s
        .create_contact(org.id, "Ops", Channel::Email, "ops@acme.example")
        .await
        .unwrap();
    let dev = s
        .create_contact(org.id, "Dev", Channel::Email, "dev@acme.example")
        .await
        .unwrap();
    let payload = serde_json::json!({"title": "x"});
    let t = now() - 30 * DAY;
    let alert = |port: u16| async move {
        s.open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::unauthorized_open(port),
            false,
            t,
        )
        .await
        .unwrap()
    };
    // An alert still open (its reminders are looked up by key), one
    // resolved, and one resolved in maintenance with its end notice held.
    let open = alert(23).await;
    let resolved = alert(24).await;
    let held = alert(25).await;
    for (al, key) in [(&open, "o"), (&resolved, "r"), (&held, "h")] {
        let key = format!("alert:{}:raised:{key}", al.id);
        assert!(s
            .enqueue_for_alert(org.id, al.id, &ops, &key, "t", &payload, t)
            .await
            .unwrap());
    }
    s.resolve_alert(org.id, resolved.id, t + 10).await.unwrap();
    s.resolve_alert(org.id, held.id, t + 10).await.unwrap();
    s.hold_notice(org.id, a.id, held.id, HeldPhase::Resolved, t + 10)
        .await
        .unwrap();
    // Many plain notifications to Ops, one to Dev; and one still waiting.
    let plain = OUTBOX_KEPT_PER_CONTACT as i64 + 5;
    for i in 0..plain {
        s.enqueue(org.id, ops.id, &format!("test:{i}"), &payload, t + 100 + i)
            .await
            .unwrap();
    }
    s.enqueue(org.id, dev.id, "test:dev", &payload, t + 100)
        .await
        .unwrap();
    // Sent, all of them (a notification given up on counts as over too)…
    for c in [&ops, &dev] {
        for d in s.deliveries(org.id, c.id, 1000).await.unwrap() {
            if d.dedupe_key == "test:0" {
                s.mark_failed(d.id, "gave up", None).await.unwrap();
            } else {
                s.mark_sent(d.id, t + 200).await.unwrap();
            }
        }
    }
    // … but this one, queued long ago and still waiting.
    s.enqueue(org.id, dev.id, "waiting", &payload, t - DAY)
        .await
        .unwrap();

    let cutoff = now();
    // A cutoff before everything: nothing.
    assert_eq!(s.prune_outbox(t - 2 * DAY, 1000).await.unwrap(), 0);
    // Gone: the resolved alert's, and Ops' plain ones beyond its newest.
    assert_eq!(s.prune_outbox(cutoff, 2).await.unwrap(), 2);
    assert_eq!(s.prune_outbox(cutoff, 1000).await.unwrap(), 4);
    assert_eq!(s.prune_outbox(cutoff, 1000).await.unwrap(), 0);
    let keys = |c| async move {
        let mut k: Vec<String> = s
            .deliveries(org.id, c, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.dedupe_key)
            .collect();
        k.sort();
        k
    };
    let ops_keys = keys(ops.id).await;
    let mut expected: Vec<String> = (plain - i64::from(OUTBOX_KEPT_PER_CONTACT)..plain)
        .map(|i| format!("test:{i}"))
        .collect();
    expected.push(format!("alert:{}:raised:o", open.id));
    expected.push(format!("alert:{}:raised:h", held.id));
    expected.sort();
    assert_eq!(ops_keys, expected);
    assert_eq!(keys(dev.id).await, ["test:dev", "waiting"]);
    let waiting = s.deliveries(org.id, dev.id, 10).await.unwrap();
    assert!(waiting
        .iter()
        .any(|d| d.dedupe_key == "waiting" && d.state == DeliveryState::Queued));
    // The open alert's first notice is still found for its reminders.
    assert!(s
        .is_queued(org.id, ops.id, &format!("alert:{}:raised:o", open.id))
        .await
        .unwrap());
    // Once the held notice is released and the open alert ends, theirs go.
    assert!(s.take_held_notice(held.id).await.unwrap());
    s.resolve_alert(org.id, open.id, t + 300).await.unwrap();
    assert_eq!(s.prune_outbox(cutoff, 1000).await.unwrap(), 2);
    assert_eq!(keys(ops.id).await.len(), OUTBOX_KEPT_PER_CONTACT as usize);
}

async fn resolved_alerts_go_with_their_history(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &other, "far").await;
    let t = now() - 100 * DAY;
    let old = s
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
    s.resolve_alert(org.id, old.id, t + 60).await.unwrap();
    let still_open = s
        .open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::unauthorized_open(24),
            false,
            t,
        )
        .await
        .unwrap();
    let recent = s
        .open_alert(
            other.id,
            b.id,
            "agent_host",
            Condition::unauthorized_open(23),
            false,
            t,
        )
        .await
        .unwrap();
    s.resolve_alert(other.id, recent.id, now() - DAY)
        .await
        .unwrap();
    let ops = s
        .create_contact(org.id, "Ops", Channel::Email, "ops@acme.example")
        .await
        .unwrap();
    let key = format!("alert:{}:resolved", old.id);
    s.enqueue_for_alert(
        org.id,
        old.id,
        &ops,
        &key,
        "t",
        &serde_json::json!({}),
        t + 60,
    )
    .await
    .unwrap();
    assert!(!s.alert_history(org.id, old.id).await.unwrap().is_empty());

    let cutoff = now() - 90 * DAY;
    assert_eq!(s.prune_alerts(cutoff, 1000).await.unwrap(), 1);
    assert_eq!(s.prune_alerts(cutoff, 1000).await.unwrap(), 0);
    assert_not_found(s.alert(org.id, old.id).await);
    assert_not_found(s.alert_history(org.id, old.id).await);
    s.alert(org.id, still_open.id).await.unwrap();
    s.alert(other.id, recent.id).await.unwrap();
    // Its notification stays (the delivery history has its own rule).
    assert!(s.is_queued(org.id, ops.id, &key).await.unwrap());
}

async fn agent_histories_keep_each_agents_newest_entry(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let t = now();
    let event = |at: i64| NewAgentEvent {
        at,
        kind: AgentEventKind::PolicyChanged,
        actor: "alice@acme.example",
        detail: "",
    };
    // `a`: enrolled now, then two old entries (the newer of them last).
    s.record_agent_event(org.id, a.id, &event(t - 500 * DAY))
        .await
        .unwrap();
    s.record_agent_event(org.id, a.id, &event(t - 450 * DAY))
        .await
        .unwrap();
    // `b`: enrolled now, one old entry.
    s.record_agent_event(org.id, b.id, &event(t - 500 * DAY))
        .await
        .unwrap();
    let cutoff = t - 400 * DAY;
    // Only `a`'s entry of 500 days ago: the others are their agent's newest.
    assert_eq!(s.prune_agent_events(cutoff, 1000).await.unwrap(), 1);
    assert_eq!(s.prune_agent_events(cutoff, 1000).await.unwrap(), 0);
    let (left, total) = s.agent_events(org.id, a.id, 0, 100).await.unwrap();
    assert_eq!(total, 2);
    let times: Vec<i64> = left.iter().map(|e| e.at).collect();
    assert_eq!(times, [t, t - 450 * DAY]);
    assert_eq!(s.agent_events(org.id, b.id, 0, 100).await.unwrap().1, 2);
    // Numbering goes on after the newest.
    s.record_agent_event(org.id, a.id, &event(t)).await.unwrap();
    assert_eq!(s.prune_agent_events(cutoff, 1000).await.unwrap(), 1);
    assert_eq!(s.agent_events(org.id, a.id, 0, 100).await.unwrap().1, 2);
}

async fn audit_log_goes_in_batches(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    for i in 0..3 {
        s.record_audit(
            org.id,
            &vigil_store::NewAuditEntry {
                actor: "alice@acme.example",
                user_id: None,
                source: None,
                action: "policy.update",
                target: Some(&format!("agent-{i}")),
                detail: None,
            },
        )
        .await
        .unwrap();
    }
    let past_ms = (now() - 60) * 1000;
    assert_eq!(s.prune_audit(past_ms, 1000).await.unwrap(), 0);
    let future_ms = (now() + 1) * 1000;
    assert_eq!(s.prune_audit(future_ms, 2).await.unwrap(), 2);
    assert_eq!(s.audit_log(org.id, None, 10).await.unwrap().len(), 1);
    assert_eq!(s.prune_audit(future_ms, 2).await.unwrap(), 1);
}

fn seen(ip: &str, mac: Option<&str>) -> Sighting {
    Sighting {
        ip: ip.parse().unwrap(),
        mac: mac.map(|m| m.parse().unwrap()),
        open_ports: vec![80],
        name: None,
        name_source: None,
    }
}

async fn gone_devices_nobody_reviewed_go(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "home").await;
    let macs = [
        "00:1b:63:00:00:01",
        "00:1b:63:00:00:03",
        "00:1b:63:00:00:04",
    ];
    let first = [
        seen("198.51.100.1", Some(macs[0])), // unreviewed: forgotten
        seen("198.51.100.2", None),          // no MAC (behind a router): forgotten
        seen("198.51.100.3", Some(macs[1])), // approved: kept
        seen("198.51.100.4", Some(macs[2])), // an open alert: kept until it ends
        seen("198.51.100.5", Some("00:1b:63:00:00:05")), // still there
    ];
    let sweep = |upload: &'static str, sightings: &'static [Sighting]| NewNetworkSweep {
        upload_id: upload,
        task_id: "t",
        started_at: 10,
        finished_at: 20,
        report: "{}",
        sightings,
        coverage: Coverage::Complete,
    };
    let first: &'static [Sighting] = Box::leak(Box::new(first));
    let second: &'static [Sighting] = Box::leak(Box::new([first[4].clone()]));
    let t = now() - 100 * DAY;
    let out = s
        .ingest_network_sweep(org.id, a.id, &sweep("u1", first), t, |_| None)
        .await
        .unwrap();
    assert!(matches!(out, SweepIngest::Stored { .. }));
    s.ingest_network_sweep(org.id, a.id, &sweep("u2", second), t + DAY, |_| None)
        .await
        .unwrap();
    let devices = s.devices(org.id, a.id).await.unwrap();
    let id_of = |ip: &str| -> vigil_store::DeviceId {
        devices
            .iter()
            .find(|d| d.address().map(|a| a.to_string()).as_deref() == Some(ip))
            .unwrap()
            .id
            .parse()
            .unwrap()
    };
    s.update_device(
        org.id,
        a.id,
        id_of("198.51.100.3"),
        &DevicePatch {
            approved: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let target = |mac: &str| format!("device:{mac}");
    let alert = s
        .open_alert(
            org.id,
            a.id,
            &target(macs[2]),
            Condition::unauthorized_open(80),
            false,
            t,
        )
        .await
        .unwrap();
    // The evaluation state of the forgotten device goes with it.
    let state = TargetState::default();
    for key in [target(macs[0]), target(macs[2])] {
        s.put_target_state(org.id, a.id, &key, &state)
            .await
            .unwrap();
    }
    let version = |key: String| async move {
        s.target_state_versioned(org.id, a.id, &key)
            .await
            .unwrap()
            .1
    };
    assert!(version(target(macs[0])).await > 0);

    // Gone, but not long enough.
    assert_eq!(s.prune_devices(t, 1000).await.unwrap(), 0);
    let cutoff = now() - 90 * DAY;
    assert_eq!(s.prune_devices(cutoff, 1000).await.unwrap(), 2);
    assert_eq!(s.prune_devices(cutoff, 1000).await.unwrap(), 0);
    let left: Vec<String> = s
        .devices(org.id, a.id)
        .await
        .unwrap()
        .iter()
        .filter_map(|d| d.address().map(|a| a.to_string()))
        .collect();
    assert_eq!(left, ["198.51.100.3", "198.51.100.4", "198.51.100.5"]);
    assert_not_found(
        s.device_history(org.id, a.id, id_of("198.51.100.1"), 10)
            .await,
    );
    assert_eq!(version(target(macs[0])).await, 0);
    assert!(version(target(macs[2])).await > 0);
    // Its alert over, the last one goes too.
    s.resolve_alert(org.id, alert.id, t + 2 * DAY)
        .await
        .unwrap();
    assert_eq!(s.prune_devices(cutoff, 1000).await.unwrap(), 1);
    assert_eq!(version(target(macs[2])).await, 0);

    // The upload ids of old sweeps go by their own age.
    assert_eq!(s.prune_network_uploads(t, 1000).await.unwrap(), 0);
    assert_eq!(s.prune_network_uploads(t + 1, 1000).await.unwrap(), 1);
    assert!(!s.has_network_upload(org.id, a.id, "u1").await.unwrap());
    assert!(s.has_network_upload(org.id, a.id, "u2").await.unwrap());
}

async fn enrollment_tokens_go_after_they_expired(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let hour = Duration::from_secs(3600);
    let used = s
        .create_enrollment(org.id, "used", Plan::Extended, hour)
        .await
        .unwrap();
    s.redeem_enrollment(&used, now()).await.unwrap();
    let unused = s
        .create_enrollment(org.id, "unused", Plan::Extended, hour)
        .await
        .unwrap();
    // Before they expire, nothing goes.
    assert_eq!(s.prune_enrollment_tokens(now(), 1000).await.unwrap(), 0);
    let expired = |token: String| async move {
        s.redeem_enrollment(&token, now() + 2 * 3600)
            .await
            .unwrap_err()
            .to_string()
    };
    assert!(expired(unused.clone()).await.contains("expired"));
    // A cutoff past their expiry: both go (an agent enrolled keeps its record).
    assert_eq!(
        s.prune_enrollment_tokens(now() + 2 * 3600, 1000)
            .await
            .unwrap(),
        2
    );
    assert_not_found(s.redeem_enrollment(&unused, now()).await);
    assert_eq!(s.agents(org.id).await.unwrap().len(), 1);
}
