//! What the server needs: the installation id, scan tasks, switching a
//! policy on and off, the new result fields, agent-not-communicating alerts.

use crate::fixtures::*;
use std::sync::Arc;
use vigil_core::{Condition, PortState};
use vigil_store::{limits, AgentId, AlertStatus, NewScanResult, PortResult, ScanTask, TaskId};
use vigil_testdb::TestDb;

backend_tests!(
    server_id_is_created_once,
    concurrent_first_server_id_calls_agree,
    task_lifecycle,
    tasks_expire,
    tasks_are_scoped_to_their_agent_and_account,
    bad_task_input_is_invalid,
    set_policy_enabled_keeps_the_rest,
    results_keep_addr_and_task_id,
    agent_not_communicating_alerts,
    agent_count_counts_agents_not_removed,
);

async fn server_id_is_created_once(db: &TestDb) {
    let s = &db.store;
    let id = s.server_id().await.unwrap();
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(s.server_id().await.unwrap(), id);
    // Another connection (another process or replica) on the same database.
    let other = db.reconnect().await;
    assert_eq!(other.server_id().await.unwrap(), id);
    other.close().await;
    assert_eq!(s.server_id().await.unwrap(), id);
}

async fn concurrent_first_server_id_calls_agree(db: &TestDb) {
    // Half of the callers share the test's store, half have their own.
    let mut stores = vec![db.store.clone(); 4];
    for _ in 0..4 {
        stores.push(db.reconnect().await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let calls: Vec<_> = stores
        .iter()
        .map(|s| {
            let (s, start) = (s.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                s.server_id().await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for c in calls {
        ids.push(c.await.unwrap().expect("server id"));
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(db.store.server_id().await.unwrap(), ids[0]);
}

async fn task_lifecycle(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    assert!(s.open_tasks(org.id, a.id, t).await.unwrap().is_empty());
    assert!(!s
        .has_open_task(org.id, a.id, "agent_host", t)
        .await
        .unwrap());

    let task = s
        .create_task(
            org.id,
            a.id,
            "agent_host",
            "127.0.0.1",
            "22,80,443",
            t,
            t + 600,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        task,
        ScanTask {
            id: task.id,
            account_id: org.id,
            agent_id: a.id,
            target_key: "agent_host".into(),
            target: "127.0.0.1".into(),
            ports: "22,80,443".into(),
            created_at: t,
            expires_at: t + 600,
            completed_at: None,
        }
    );
    assert_eq!(s.task(org.id, a.id, task.id).await.unwrap(), task);
    // A newer task for an explicit host; open tasks come oldest first.
    let newer = s
        .create_task(
            org.id,
            a.id,
            "host:nas.lan",
            "nas.lan",
            "1-1024",
            t + 1,
            t + 600,
            None,
        )
        .await
        .unwrap();
    assert_ne!(newer.id, task.id);
    assert_eq!(
        s.open_tasks(org.id, a.id, t + 2).await.unwrap(),
        vec![task.clone(), newer.clone()]
    );
    assert!(s
        .has_open_task(org.id, a.id, "agent_host", t)
        .await
        .unwrap());
    assert!(s
        .has_open_task(org.id, a.id, "host:nas.lan", t)
        .await
        .unwrap());
    assert!(!s
        .has_open_task(org.id, a.id, "observed_address", t)
        .await
        .unwrap());

    // Completing: once.
    assert!(s.complete_task(org.id, a.id, task.id, t + 5).await.unwrap());
    assert!(!s.complete_task(org.id, a.id, task.id, t + 9).await.unwrap());
    let done = s.task(org.id, a.id, task.id).await.unwrap();
    assert_eq!(
        done.completed_at,
        Some(t + 5),
        "the first completion counts"
    );
    assert_eq!(
        s.open_tasks(org.id, a.id, t + 10).await.unwrap(),
        vec![newer.clone()]
    );
    assert!(!s
        .has_open_task(org.id, a.id, "agent_host", t + 10)
        .await
        .unwrap());
    // A new task for the same target is open again.
    let again = s
        .create_task(
            org.id,
            a.id,
            "agent_host",
            "127.0.0.1",
            "22",
            t + 20,
            t + 600,
            None,
        )
        .await
        .unwrap();
    assert!(s
        .has_open_task(org.id, a.id, "agent_host", t + 20)
        .await
        .unwrap());
    assert_eq!(
        s.open_tasks(org.id, a.id, t + 20).await.unwrap(),
        vec![newer, again]
    );

    // Unknown tasks: not found, and completing one is no error.
    let unknown = TaskId::random();
    assert_not_found(s.task(org.id, a.id, unknown).await);
    assert!(!s.complete_task(org.id, a.id, unknown, t).await.unwrap());
}

async fn tasks_expire(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let task = s
        .create_task(
            org.id,
            a.id,
            "observed_address",
            "198.51.100.7",
            "443",
            t,
            t + 60,
            None,
        )
        .await
        .unwrap();
    // (now, open)
    for (at, open) in [
        (t, true),
        (t + 59, true),
        (t + 60, false),
        (t + 3600, false),
    ] {
        let tasks = s.open_tasks(org.id, a.id, at).await.unwrap();
        assert_eq!(tasks.len(), usize::from(open), "at t+{}", at - t);
        assert_eq!(
            s.has_open_task(org.id, a.id, "observed_address", at)
                .await
                .unwrap(),
            open,
            "at t+{}",
            at - t
        );
    }
    // An expired task can still be looked up and completed (a late result).
    assert_eq!(s.task(org.id, a.id, task.id).await.unwrap(), task);
    assert!(s
        .complete_task(org.id, a.id, task.id, t + 90)
        .await
        .unwrap());
    assert!(!s
        .complete_task(org.id, a.id, task.id, t + 91)
        .await
        .unwrap());
    assert_eq!(
        s.task(org.id, a.id, task.id).await.unwrap().completed_at,
        Some(t + 90)
    );
}

async fn tasks_are_scoped_to_their_agent_and_account(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let other = account(s, "Other").await;
    let (o, _) = agent(s, &other, "theirs").await;
    let t = now();
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

    // Another account, with A's agent or its own.
    for (account, agent) in [(other.id, a.id), (other.id, o.id)] {
        assert_not_found(s.task(account, agent, task.id).await);
        assert!(!s.complete_task(account, agent, task.id, t).await.unwrap());
        assert!(s.open_tasks(account, agent, t).await.unwrap().is_empty());
        assert!(!s
            .has_open_task(account, agent, "agent_host", t)
            .await
            .unwrap());
    }
    assert_not_found(
        s.create_task(
            other.id,
            a.id,
            "agent_host",
            "127.0.0.1",
            "22",
            t,
            t + 600,
            None,
        )
        .await,
    );
    // Another agent of the same account.
    assert_not_found(s.task(org.id, b.id, task.id).await);
    assert!(!s.complete_task(org.id, b.id, task.id, t).await.unwrap());
    assert!(s.open_tasks(org.id, b.id, t).await.unwrap().is_empty());
    assert!(!s
        .has_open_task(org.id, b.id, "agent_host", t)
        .await
        .unwrap());
    // Unknown and removed agents get no tasks.
    assert_not_found(
        s.create_task(
            org.id,
            AgentId::random(),
            "agent_host",
            "x",
            "22",
            t,
            t + 1,
            None,
        )
        .await,
    );
    s.remove_agent(org.id, b.id, t).await.unwrap();
    assert_not_found(
        s.create_task(
            org.id,
            b.id,
            "agent_host",
            "127.0.0.1",
            "22",
            t,
            t + 600,
            None,
        )
        .await,
    );

    // None of that touched the task.
    assert_eq!(s.task(org.id, a.id, task.id).await.unwrap(), task);
    assert_eq!(s.open_tasks(org.id, a.id, t).await.unwrap(), vec![task]);
}

async fn bad_task_input_is_invalid(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let long_key = format!("host:{}", "k".repeat(limits::MAX_TARGET_KEY_LEN));
    let long_target = "t".repeat(limits::MAX_TARGET_LEN + 1);
    let long_ports = "1".repeat(limits::MAX_TASK_PORTS_LEN + 1);

    #[derive(Debug, Clone, Copy)]
    struct New<'a> {
        key: &'a str,
        target: &'a str,
        ports: &'a str,
        expires_at: i64,
    }
    let ok = New {
        key: "agent_host",
        target: "nas.lan",
        ports: "22",
        expires_at: t + 60,
    };
    // (input, substring of the message)
    let cases = [
        (New { key: "", ..ok }, "target key must not be empty"),
        (
            New {
                key: &long_key,
                ..ok
            },
            "target key is longer than 300",
        ),
        (
            New {
                key: " agent_host",
                ..ok
            },
            "target key must not contain",
        ),
        (New { target: "", ..ok }, "target must not be empty"),
        (
            New {
                target: "two words",
                ..ok
            },
            "whitespace",
        ),
        (
            New {
                target: &long_target,
                ..ok
            },
            "target is longer than 300",
        ),
        (
            New {
                ports: &long_ports,
                ..ok
            },
            "ports is longer than 65536",
        ),
        (
            New {
                ports: "22\n80",
                ..ok
            },
            "ports must not contain",
        ),
        (
            New {
                expires_at: t,
                ..ok
            },
            "must expire after it is created",
        ),
        (
            New {
                expires_at: t - 1,
                ..ok
            },
            "must expire after it is created",
        ),
    ];
    for (n, needle) in cases {
        let msg = assert_invalid(
            s.create_task(
                org.id,
                a.id,
                n.key,
                n.target,
                n.ports,
                t,
                n.expires_at,
                None,
            )
            .await,
        );
        assert!(msg.contains(needle), "{n:.20?}: {msg}");
    }
    assert!(s.open_tasks(org.id, a.id, t).await.unwrap().is_empty());
    assert_invalid(s.has_open_task(org.id, a.id, "", t).await);
    assert_invalid(s.has_open_task(org.id, a.id, &long_key, t).await);

    // The limits themselves are accepted, and a task may probe no ports.
    let key = format!("host:{}", "k".repeat(limits::MAX_TARGET_KEY_LEN - 5));
    let target = "t".repeat(limits::MAX_TARGET_LEN);
    let ports = "1".repeat(limits::MAX_TASK_PORTS_LEN);
    for ports in [ports.as_str(), ""] {
        let task = s
            .create_task(org.id, a.id, &key, &target, ports, t, t + 1, None)
            .await
            .unwrap();
        assert_eq!(s.task(org.id, a.id, task.id).await.unwrap(), task);
        assert_eq!(task.ports, ports);
        assert_eq!(task.target_key, key);
    }
}

async fn set_policy_enabled_keeps_the_rest(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "no policy").await;
    let t = now();
    let p = policy();
    s.put_policy(org.id, a.id, &p).await.unwrap();
    s.set_next_run(org.id, a.id, t + 3600).await.unwrap();
    let due_at = |at: i64| async move {
        s.due_policies(at)
            .await
            .unwrap()
            .into_iter()
            .filter(|(x, _)| x.id == a.id)
            .map(|(_, policy)| policy)
            .collect::<Vec<_>>()
    };

    s.set_policy_enabled(org.id, a.id, false).await.unwrap();
    let off = vigil_core::SecurityPolicy {
        enabled: false,
        ..p.clone()
    };
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(off.clone()));
    // The schedule is kept (not due now, due at the scheduled time).
    assert!(due_at(t).await.is_empty());
    assert_eq!(due_at(t + 3600).await, vec![off.clone()]);
    // Setting the same value again changes nothing.
    s.set_policy_enabled(org.id, a.id, false).await.unwrap();
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(off));

    s.set_policy_enabled(org.id, a.id, true).await.unwrap();
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(p.clone()));
    assert!(due_at(t).await.is_empty());
    assert_eq!(due_at(t + 3600).await, vec![p.clone()]);

    // No policy, unknown agent, another account.
    assert_not_found(s.set_policy_enabled(org.id, b.id, true).await);
    assert_eq!(s.policy(org.id, b.id).await.unwrap(), None);
    assert_not_found(s.set_policy_enabled(org.id, AgentId::random(), false).await);
    let other = account(s, "Other").await;
    assert_not_found(s.set_policy_enabled(other.id, a.id, false).await);
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(p));
}

async fn results_keep_addr_and_task_id(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let task = s
        .create_task(
            org.id,
            a.id,
            "host:nas.lan",
            "nas.lan",
            "22",
            t,
            t + 600,
            None,
        )
        .await
        .unwrap();
    let task_id = task.id.to_string();
    let ports = [PortResult {
        port: 22,
        state: PortState::Open,
        details: None,
    }];
    let with = NewScanResult {
        upload_id: "with",
        target: "nas.lan",
        started_at: t - 10,
        finished_at: t,
        ports: &ports,
        addr: Some("2001:db8::7"),
        task_id: Some(&task_id),
        probed: None,
    };
    let without = NewScanResult {
        upload_id: "without",
        finished_at: t - 1,
        addr: None,
        task_id: None,
        ..with
    };
    let with_id = s.ingest_result(org.id, a.id, &with).await.unwrap();
    let without_id = s.ingest_result(org.id, a.id, &without).await.unwrap();
    assert!(with_id.is_new() && without_id.is_new());
    // A retry with other values keeps the first upload's.
    let retry = NewScanResult {
        addr: Some("192.0.2.1"),
        task_id: None,
        ..with
    };
    assert!(!s
        .ingest_result(org.id, a.id, &retry)
        .await
        .unwrap()
        .is_new());

    let results = s.results(org.id, a.id, 10).await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].id, with_id.id());
    assert_eq!(results[0].addr.as_deref(), Some("2001:db8::7"));
    assert_eq!(results[0].task_id.as_deref(), Some(task_id.as_str()));
    assert_eq!(results[0].ports, ports);
    assert_eq!(results[1].id, without_id.id());
    assert_eq!(
        (results[1].addr.as_deref(), results[1].task_id.as_deref()),
        (None, None)
    );
    // The stored result serializes with the new fields.
    let json = serde_json::to_value(&results[0]).unwrap();
    assert_eq!(json["addr"], "2001:db8::7");
    assert_eq!(json["task_id"], task_id.as_str());
}

async fn agent_not_communicating_alerts(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let c = Condition::agent_not_communicating();
    let alert = s
        .open_alert(org.id, a.id, "agent_host", c, false, t)
        .await
        .unwrap();
    assert_eq!(alert.condition, c);
    assert_eq!(alert.condition.port, None);
    assert_eq!(alert.status, AlertStatus::Open);
    // One open alert per condition.
    let again = s
        .open_alert(org.id, a.id, "agent_host", c, false, t + 60)
        .await
        .unwrap();
    assert_eq!(again, alert);
    assert_eq!(
        s.open_alert_for(org.id, a.id, "agent_host", c)
            .await
            .unwrap(),
        Some(alert.clone())
    );
    // Separate from a scan condition of the same target.
    let unreachable = s
        .open_alert(
            org.id,
            a.id,
            "agent_host",
            Condition::target_unreachable(),
            false,
            t,
        )
        .await
        .unwrap();
    assert_ne!(unreachable.id, alert.id);

    let resolved = s.resolve_alert(org.id, alert.id, t + 120).await.unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(t + 120));
    assert_eq!(resolved.condition, c);
    assert_eq!(
        s.open_alert_for(org.id, a.id, "agent_host", c)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.alert(org.id, alert.id).await.unwrap(), resolved);
}

async fn agent_count_counts_agents_not_removed(db: &TestDb) {
    let s = &db.store;
    assert_eq!(s.agent_count().await.unwrap(), 0);
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (a, _) = agent(s, &org, "web").await;
    agent(s, &org, "db").await;
    agent(s, &other, "theirs").await;
    assert_eq!(s.agent_count().await.unwrap(), 3);
    s.remove_agent(org.id, a.id, now()).await.unwrap();
    assert_eq!(s.agent_count().await.unwrap(), 2);
}
