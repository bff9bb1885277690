//! Retention of scan results, and the server-wide questions of the
//! readiness check and the metrics endpoint.

use crate::fixtures::*;
use std::sync::atomic::{AtomicU64, Ordering};
use vigil_core::{contact_range, AgentHealth, LivenessConfig};
use vigil_store::{AccountId, AgentId, NewScanResult, Store};
use vigil_testdb::TestDb;

backend_tests!(
    pruning_keeps_the_newest_result_of_each_target,
    pruning_goes_in_batches_and_only_before_the_cutoff,
    server_wide_counts_and_ping,
);

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
