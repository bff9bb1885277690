//! Policies and scheduling, scan results, target states, alerts.

use crate::fixtures::*;
use vigil_core::{
    evaluate, AccountKind, Condition, DampingConfig, Observation, PortList, PortState,
    ScanInterval, TargetState,
};
use vigil_store::{
    AgentId, AlertFilter, AlertStatus, Ingested, NewScanResult, PortResult, Probed, ScanResultId,
};
use vigil_testdb::TestDb;

backend_tests!(
    policies_and_schedule,
    ingestion_is_idempotent,
    concurrent_duplicate_uploads_store_once,
    target_states_round_trip,
    alerts_open_once_and_resolve,
    port_details_and_process_changed_alerts,
);

/// What listens on a port is stored with the result and read back, per
/// target; *process changed* alerts are a kind the table takes.
async fn port_details_and_process_changed_alerts(db: &TestDb) {
    use vigil_core::listener::{PortDetails, ProcessInfo};
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let details = PortDetails {
        service: Some("http-alt".into()),
        process: Some(ProcessInfo {
            name: "python3".into(),
            pid: 4242,
            user: Some("nobody".into()),
            exe: Some("/usr/bin/python3.11".into()),
            cmdline: Some("python3 -m http.server 8080".into()),
        }),
        ..PortDetails::default()
    };
    let ports = [
        PortResult {
            port: 8080,
            state: PortState::Open,
            details: Some(Box::new(details.clone())),
        },
        PortResult {
            port: 22,
            state: PortState::Open,
            details: None,
        },
    ];
    let t = now();
    for (upload, target, at) in [("u1", "agent_host", t), ("u2", "host:nas", t + 1)] {
        s.ingest_result(
            org.id,
            a.id,
            &NewScanResult {
                upload_id: upload,
                target,
                started_at: at,
                finished_at: at,
                ports: &ports,
                addr: Some("127.0.0.1"),
                task_id: None,
                probed: None,
            },
        )
        .await
        .unwrap();
    }
    let mine = s
        .target_results(org.id, a.id, "agent_host", 10)
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].upload_id, "u1");
    assert_eq!(mine[0].ports, ports);
    assert_eq!(mine[0].ports[0].details.as_deref(), Some(&details));
    assert!(s
        .target_results(org.id, a.id, "nowhere", 10)
        .await
        .unwrap()
        .is_empty());

    let c = Condition::process_changed(8080);
    let alert = s
        .open_alert(org.id, a.id, "agent_host", c, false, t)
        .await
        .unwrap();
    assert_eq!(alert.condition, c);
    let open = s
        .open_alert_for(org.id, a.id, "agent_host", c)
        .await
        .unwrap();
    assert_eq!(open.map(|x| x.id), Some(alert.id));
}

async fn policies_and_schedule(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), None);

    let p = policy();
    s.put_policy(org.id, a.id, &p).await.unwrap();
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(p.clone()));

    // Rules of the account kind are applied (vigil-core's validate).
    let member = s.create_account("Bob", AccountKind::Member).await.unwrap();
    let (m, _) = agent(s, &member, "home").await;
    let mut odd = policy();
    odd.interval = ScanInterval::try_from(45).unwrap();
    let msg = assert_invalid(s.put_policy(member.id, m.id, &odd).await);
    assert!(msg.contains("45 min"), "{msg}");
    s.put_policy(org.id, b.id, &odd).await.unwrap(); // organizations may pick 45
    let mut empty = policy();
    empty.targets.clear();
    assert_invalid(s.put_policy(org.id, a.id, &empty).await);
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(p.clone()));

    // A new policy is due at once.
    let t = now();
    let due = s.due_policies(t).await.unwrap();
    let due_ids: Vec<AgentId> = due.iter().map(|(agent, _)| agent.id).collect();
    assert!(due_ids.contains(&a.id) && due_ids.contains(&b.id));
    let (due_agent, due_policy) = due.iter().find(|(x, _)| x.id == a.id).unwrap();
    assert_eq!(due_agent.name, "web");
    assert_eq!(due_policy, &p);

    s.set_next_run(org.id, a.id, t + 3600).await.unwrap();
    let ids = |v: Vec<(vigil_store::Agent, vigil_core::SecurityPolicy)>| {
        v.into_iter().map(|(x, _)| x.id).collect::<Vec<_>>()
    };
    assert!(!ids(s.due_policies(t).await.unwrap()).contains(&a.id));
    assert!(!ids(s.due_policies(t + 3599).await.unwrap()).contains(&a.id));
    assert!(ids(s.due_policies(t + 3600).await.unwrap()).contains(&a.id));

    // Changing the policy makes it due again.
    let mut changed = p.clone();
    changed.enabled = false;
    s.put_policy(org.id, a.id, &changed).await.unwrap();
    assert!(ids(s.due_policies(t).await.unwrap()).contains(&a.id));
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(changed));

    // No policy, no schedule; removed agents are never due.
    let (c, _) = agent(s, &org, "no policy").await;
    assert_not_found(s.set_next_run(org.id, c.id, t).await);
    s.remove_agent(org.id, a.id, t).await.unwrap();
    assert!(!ids(s.due_policies(t + 1_000_000).await.unwrap()).contains(&a.id));
    assert_not_found(s.policy(org.id, AgentId::random()).await);
}

fn ports() -> Vec<PortResult> {
    vec![
        PortResult {
            port: 22,
            state: PortState::Open,
            details: None,
        },
        PortResult {
            port: 80,
            state: PortState::Closed,
            details: None,
        },
        PortResult {
            port: 8080,
            state: PortState::Filtered,
            details: None,
        },
        PortResult {
            port: 9,
            state: PortState::Unreachable,
            details: None,
        },
    ]
}

async fn ingestion_is_idempotent(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let ports = ports();
    let upload = |id: &'static str, finished: i64| NewScanResult {
        upload_id: id,
        target: "nas.example",
        started_at: finished - 10,
        finished_at: finished,
        ports: &[],
        addr: None,
        task_id: None,
        probed: None,
    };
    let t = now();
    let first = NewScanResult {
        ports: &ports,
        ..upload("u-1", t)
    };
    let id = match s.ingest_result(org.id, a.id, &first).await.unwrap() {
        Ingested::New(id) => id,
        dup => panic!("first upload reported {dup:?}"),
    };
    // A retry, even with different content, is a duplicate of the first.
    let retry = NewScanResult {
        target: "other.example",
        ..first
    };
    assert_eq!(
        s.ingest_result(org.id, a.id, &retry).await.unwrap(),
        Ingested::Duplicate(id)
    );
    // The same upload id of another agent is a different upload.
    assert!(s
        .ingest_result(org.id, b.id, &first)
        .await
        .unwrap()
        .is_new());
    // Another upload of the same agent.
    let second = s
        .ingest_result(org.id, a.id, &upload("u-2", t + 100))
        .await
        .unwrap();
    assert!(second.is_new());

    let results = s.results(org.id, a.id, 10).await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].id, second.id(), "newest first");
    assert_eq!(results[1].id, id);
    let stored = &results[1];
    assert_eq!(stored.upload_id, "u-1");
    assert_eq!(stored.target, "nas.example");
    assert_eq!(stored.ports, ports);
    assert_eq!((stored.started_at, stored.finished_at), (t - 10, t));
    assert_eq!(stored.agent_id, a.id);
    assert_eq!(stored.account_id, org.id);
    assert!(stored.received_at > 0);
    assert_eq!(s.results(org.id, a.id, 1).await.unwrap().len(), 1);
    assert_eq!(s.results(org.id, b.id, 10).await.unwrap().len(), 1);
    assert_not_found(s.results(org.id, AgentId::random(), 10).await);
    assert_not_found(s.ingest_result(org.id, AgentId::random(), &first).await);
    // Without probed ports, nothing is claimed about what was swept.
    assert_eq!(
        (stored.probed_count, stored.probed_ports.clone()),
        (None, None)
    );
    assert_eq!(stored.not_listed, vigil_core::NotListed::default());

    // What the scan probed is kept beside the ports it keeps: the count
    // always, the port list when short. (probed, count, list)
    let sweep = PortList::parse("1-65535").unwrap();
    let few = PortList::from_ports([22, 80, 443]);
    let none = PortList::from_ports([]);
    // Every other port: 32,768 entries, far too long to show.
    let scattered = PortList::from_ports((1..=65535).step_by(2));
    let cases: [(&'static str, &PortList, u32, Option<&str>); 4] = [
        ("sweep", &sweep, 65535, Some("1-65535")),
        ("few", &few, 3, Some("22,80,443")),
        ("none", &none, 0, Some("")),
        ("scattered", &scattered, 32768, None),
    ];
    for (i, (upload_id, probed, count, list)) in cases.into_iter().enumerate() {
        // Some filtered and unreachable ports counted, not listed.
        let not_listed = (i as u32 * 1000, i as u32);
        let new = NewScanResult {
            ports: &ports,
            probed: Some(Probed {
                ports: probed,
                filtered_not_listed: not_listed.0,
                unreachable_not_listed: not_listed.1,
            }),
            ..upload(upload_id, t + 200 + i as i64)
        };
        s.ingest_result(org.id, b.id, &new).await.unwrap();
        let got = s.results(org.id, b.id, 1).await.unwrap().remove(0);
        assert_eq!(got.upload_id, upload_id);
        assert_eq!(got.probed_count, Some(count), "{upload_id}");
        assert_eq!(got.probed_ports.as_deref(), list, "{upload_id}");
        assert_eq!(
            got.not_listed,
            vigil_core::NotListed {
                filtered: Some(not_listed.0),
                unreachable: Some(not_listed.1),
            },
            "{upload_id}"
        );
        assert_eq!(got.ports, ports, "the kept ports are unchanged");
        let recent = s.recent_results(org.id, 1).await.unwrap().remove(0);
        assert_eq!(recent, got);
    }
}

async fn concurrent_duplicate_uploads_store_once(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    for round in 0..3 {
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, start) = (s.clone(), start.clone());
                let (account, agent) = (org.id, a.id);
                tokio::spawn(async move {
                    let ports = ports();
                    let upload_id = format!("retry-{round}");
                    start.wait().await;
                    s.ingest_result(
                        account,
                        agent,
                        &NewScanResult {
                            upload_id: &upload_id,
                            target: "198.51.100.7",
                            started_at: 1,
                            finished_at: 2,
                            ports: &ports,
                            addr: None,
                            task_id: None,
                            probed: None,
                        },
                    )
                    .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().expect("ingest"));
        }
        let new: Vec<ScanResultId> = outcomes
            .iter()
            .filter(|o| o.is_new())
            .map(|o| o.id())
            .collect();
        assert_eq!(new.len(), 1, "round {round}: {outcomes:?}");
        assert!(outcomes.iter().all(|o| o.id() == new[0]), "{outcomes:?}");
    }
    assert_eq!(s.results(org.id, a.id, 100).await.unwrap().len(), 3);
}

async fn target_states_round_trip(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    assert_eq!(
        s.target_state(org.id, a.id, "nas.example").await.unwrap(),
        TargetState::default()
    );

    // A non-trivial state from vigil-core's evaluator.
    let mut state = TargetState::default();
    let obs = Observation::from_ports(vec![
        (22, PortState::Open),
        (8080, PortState::Open),
        (443, PortState::Closed),
    ]);
    for _ in 0..3 {
        evaluate(&mut state, &policy(), &obs, &DampingConfig::default());
    }
    assert!(state.is_active(&Condition::unauthorized_open(8080)));
    s.put_target_state(org.id, a.id, "nas.example", &state)
        .await
        .unwrap();
    assert_eq!(
        s.target_state(org.id, a.id, "nas.example").await.unwrap(),
        state
    );
    // Per target.
    assert_eq!(
        s.target_state(org.id, a.id, "other.example").await.unwrap(),
        TargetState::default()
    );
    // Replaced on the next put.
    s.put_target_state(org.id, a.id, "nas.example", &TargetState::default())
        .await
        .unwrap();
    assert_eq!(
        s.target_state(org.id, a.id, "nas.example").await.unwrap(),
        TargetState::default()
    );
    assert_not_found(
        s.target_state(org.id, AgentId::random(), "nas.example")
            .await,
    );
    assert_not_found(
        s.put_target_state(org.id, AgentId::random(), "nas.example", &state)
            .await,
    );
}

async fn alerts_open_once_and_resolve(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let t = now();
    let c = Condition::unauthorized_open(8080);

    let alert = s
        .open_alert(org.id, a.id, "nas.example", c, false, t)
        .await
        .unwrap();
    assert_eq!(alert.status, AlertStatus::Open);
    assert_eq!(alert.condition, c);
    assert_eq!(alert.target, "nas.example");
    assert_eq!(alert.raised_at, t);
    assert_eq!(alert.resolved_at, None);
    assert!(!alert.flapping);
    // Opening the same condition again returns the open alert.
    let again = s
        .open_alert(org.id, a.id, "nas.example", c, true, t + 5)
        .await
        .unwrap();
    assert_eq!(again, alert);
    assert_eq!(
        s.open_alert_for(org.id, a.id, "nas.example", c)
            .await
            .unwrap(),
        Some(alert.clone())
    );
    // Other conditions, targets and agents are separate alerts.
    let unreachable = s
        .open_alert(
            org.id,
            a.id,
            "nas.example",
            Condition::target_unreachable(),
            false,
            t + 1,
        )
        .await
        .unwrap();
    assert_eq!(unreachable.condition.port, None);
    let again_unreachable = s
        .open_alert(
            org.id,
            a.id,
            "nas.example",
            Condition::target_unreachable(),
            false,
            t + 2,
        )
        .await
        .unwrap();
    assert_eq!(again_unreachable.id, unreachable.id);
    let down = s
        .open_alert(
            org.id,
            a.id,
            "nas.example",
            Condition::service_down(443),
            false,
            t + 2,
        )
        .await
        .unwrap();
    let other_target = s
        .open_alert(org.id, a.id, "web.example", c, false, t + 3)
        .await
        .unwrap();
    let other_agent = s
        .open_alert(org.id, b.id, "nas.example", c, false, t + 4)
        .await
        .unwrap();
    let ids = [
        alert.id,
        unreachable.id,
        down.id,
        other_target.id,
        other_agent.id,
    ];
    for (i, x) in ids.iter().enumerate() {
        assert!(!ids[..i].contains(x));
    }
    assert_eq!(
        s.open_alert_for(org.id, a.id, "nas.example", Condition::service_down(22))
            .await
            .unwrap(),
        None
    );

    let flapping = s.set_alert_flapping(org.id, down.id, true).await.unwrap();
    assert!(flapping.flapping);

    let resolved = s.resolve_alert(org.id, alert.id, t + 100).await.unwrap();
    assert_eq!(resolved.status, AlertStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(t + 100));
    // Resolving twice keeps the first time.
    assert_eq!(
        s.resolve_alert(org.id, alert.id, t + 200).await.unwrap(),
        resolved
    );
    assert_eq!(
        s.open_alert_for(org.id, a.id, "nas.example", c)
            .await
            .unwrap(),
        None
    );
    // The condition coming back is a new alert.
    let reopened = s
        .open_alert(org.id, a.id, "nas.example", c, false, t + 300)
        .await
        .unwrap();
    assert_ne!(reopened.id, alert.id);

    let all = s.alerts(org.id, &AlertFilter::default()).await.unwrap();
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].id, reopened.id, "newest first");
    let open = s
        .alerts(
            org.id,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                agent: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(open.len(), 5);
    let resolved_only = s
        .alerts(
            org.id,
            &AlertFilter {
                status: Some(AlertStatus::Resolved),
                agent: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(resolved_only, vec![resolved]);
    let of_b = s
        .alerts(
            org.id,
            &AlertFilter {
                status: None,
                agent: Some(b.id),
            },
        )
        .await
        .unwrap();
    assert_eq!(of_b, vec![other_agent.clone()]);
    let open_of_b = s
        .alerts(
            org.id,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                agent: Some(b.id),
            },
        )
        .await
        .unwrap();
    assert_eq!(open_of_b, vec![other_agent]);
    assert_not_found(s.alert(org.id, vigil_store::AlertId::random()).await);
    assert_not_found(
        s.resolve_alert(org.id, vigil_store::AlertId::random(), t)
            .await,
    );
    assert_not_found(
        s.open_alert(org.id, AgentId::random(), "nas.example", c, false, t)
            .await,
    );
}
