//! An agent's history (who changed what, health changes, moves) and the
//! alerts its reachability timeline is drawn from.

use crate::fixtures::*;
use vigil_core::history::AgentEventKind::{self, *};
use vigil_core::{AgentHealth, Condition, Plan, PolicyTarget, PortList};
use vigil_store::{
    AgentEvent, AgentId, MoveOrder, NewAgentEvent, NewScanResult, PortResult, SYSTEM_ACTOR,
};
use vigil_testdb::TestDb;

backend_tests!(
    changes_are_recorded_once_newest_first,
    history_pages,
    history_is_tenant_scoped,
    moves_show_in_the_history,
    timeline_alerts_are_those_of_the_window,
);

const OWNER: &str = "owner@acme.test";

fn shape(events: &[AgentEvent]) -> Vec<(AgentEventKind, &str, &str)> {
    events
        .iter()
        .map(|e| (e.kind, e.actor.as_str(), e.detail.as_str()))
        .collect()
}

async fn all(db: &TestDb, account: vigil_store::AccountId, agent: AgentId) -> Vec<AgentEvent> {
    let (events, total) = db
        .store
        .agent_events(account, agent, 0, 1000)
        .await
        .unwrap();
    assert_eq!(total, events.len() as u64);
    events
}

async fn changes_are_recorded_once_newest_first(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t0 = now();
    let (a, _) = agent(s, &org, "web-1").await;

    // Enrollment, in the same transaction as the agent.
    let events = all(db, org.id, a.id).await;
    assert_eq!(
        shape(&events),
        [(Enrolled, SYSTEM_ACTOR, "as \"web-1\" on the extended plan")]
    );
    assert!(events[0].at >= t0 && events[0].at <= now());
    assert_eq!(events[0].agent_id, a.id);

    // Policy: created, unchanged (nothing recorded), changed.
    let mut p = policy();
    let created = s.put_policy_by(org.id, a.id, &p, OWNER).await.unwrap();
    assert_eq!(
        created.as_deref(),
        Some(
            "policy created: scan enabled; authorized ports 22,443; monitored ports 443; \
             targets agent host; every 60 min"
        )
    );
    assert_eq!(
        s.put_policy_by(org.id, a.id, &p, OWNER).await.unwrap(),
        None
    );
    p.authorized = PortList::parse("22,80,443").unwrap();
    p.targets.push(PolicyTarget::host("nas.lan").unwrap());
    s.put_policy_by(org.id, a.id, &p, "admin@acme.test")
        .await
        .unwrap();
    assert_eq!(s.policy(org.id, a.id).await.unwrap(), Some(p.clone()));
    // A refused policy changes nothing and records nothing.
    let mut bad = p.clone();
    bad.targets.clear();
    assert_invalid(s.put_policy_by(org.id, a.id, &bad, OWNER).await);

    // Plan: the same plan is no change.
    s.set_plan_by(org.id, a.id, Plan::Extended, OWNER)
        .await
        .unwrap();
    let moved = s
        .set_plan_by(org.id, a.id, Plan::Community, OWNER)
        .await
        .unwrap();
    assert_eq!(moved.plan, Plan::Community);

    // Health: only changes are recorded.
    s.set_health(org.id, a.id, AgentHealth::Communicating)
        .await
        .unwrap();
    let silent = s
        .set_health(org.id, a.id, AgentHealth::NotCommunicating)
        .await
        .unwrap();
    assert_eq!(silent.last_health, AgentHealth::NotCommunicating);
    s.set_health(org.id, a.id, AgentHealth::NotCommunicating)
        .await
        .unwrap();
    s.set_health(org.id, a.id, AgentHealth::Communicating)
        .await
        .unwrap();

    // An event the server records itself.
    s.record_agent_event(
        org.id,
        a.id,
        &NewAgentEvent {
            at: now(),
            kind: ScanSuspended,
            actor: SYSTEM_ACTOR,
            detail: "the agent is not communicating\u{7}",
        },
    )
    .await
    .unwrap();

    // Removal, once.
    let t = now();
    s.remove_agent_by(org.id, a.id, t, OWNER).await.unwrap();
    s.remove_agent_by(org.id, a.id, t + 5, OWNER).await.unwrap();
    // A removed agent's health is not updated any more.
    assert_not_found(s.set_health(org.id, a.id, AgentHealth::Abandoned).await);

    let events = all(db, org.id, a.id).await;
    assert_eq!(
        shape(&events),
        [
            (
                Removed,
                OWNER,
                "it no longer authenticates; its history stays"
            ),
            (
                ScanSuspended,
                SYSTEM_ACTOR,
                "the agent is not communicating "
            ),
            (
                HealthChanged,
                SYSTEM_ACTOR,
                "not communicating → communicating"
            ),
            (
                HealthChanged,
                SYSTEM_ACTOR,
                "communicating → not communicating"
            ),
            (PlanChanged, OWNER, "extended → community"),
            (
                PolicyChanged,
                "admin@acme.test",
                "authorized ports added 80; targets added \"nas.lan\""
            ),
            (
                PolicyChanged,
                OWNER,
                "policy created: scan enabled; authorized ports 22,443; monitored ports 443; \
                 targets agent host; every 60 min"
            ),
            (Enrolled, SYSTEM_ACTOR, "as \"web-1\" on the extended plan"),
        ]
    );
    for pair in events.windows(2) {
        assert!(pair[0].at >= pair[1].at, "newest first: {pair:?}");
    }

    // Another agent's history is its own.
    let (b, _) = agent(s, &org, "web-2").await;
    assert_eq!(all(db, org.id, b.id).await.len(), 1);
}

async fn history_pages(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web-1").await;
    // 24 more events at distinct times, older than the enrollment, and
    // three in one second (ordered by when they were recorded).
    let t0 = now() - 10_000;
    for i in 0..24 {
        let detail = format!("event {i}");
        s.record_agent_event(
            org.id,
            a.id,
            &NewAgentEvent {
                at: t0 + i,
                kind: PlanChanged,
                actor: OWNER,
                detail: &detail,
            },
        )
        .await
        .unwrap();
    }
    for detail in ["first", "second", "third"] {
        s.record_agent_event(
            org.id,
            a.id,
            &NewAgentEvent {
                at: t0 + 100,
                kind: PolicyChanged,
                actor: OWNER,
                detail,
            },
        )
        .await
        .unwrap();
    }
    let (page, total) = s.agent_events(org.id, a.id, 0, 5).await.unwrap();
    assert_eq!(total, 28);
    let details: Vec<&str> = page.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "as \"web-1\" on the extended plan",
            "third",
            "second",
            "first",
            "event 23"
        ]
    );
    let (page, total) = s.agent_events(org.id, a.id, 25, 5).await.unwrap();
    assert_eq!(total, 28);
    let details: Vec<&str> = page.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["event 2", "event 1", "event 0"]);
    let (page, _) = s.agent_events(org.id, a.id, 28, 5).await.unwrap();
    assert!(page.is_empty());
    // Every entry exactly once across pages.
    let mut seen = Vec::new();
    for offset in (0..28).step_by(7) {
        let (page, _) = s.agent_events(org.id, a.id, offset, 7).await.unwrap();
        seen.extend(page.into_iter().map(|e| e.detail));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 28);

    assert_invalid(s.agent_events(org.id, a.id, 0, 0).await);
    assert_invalid(s.agent_events(org.id, a.id, 0, 1001).await);
    assert_invalid(s.agent_events(org.id, a.id, u64::MAX, 5).await);
    // Long and odd text is stored clipped.
    let long = "x".repeat(5000);
    s.record_agent_event(
        org.id,
        a.id,
        &NewAgentEvent {
            at: now() + 60,
            kind: PolicyChanged,
            actor: &long,
            detail: &long,
        },
    )
    .await
    .unwrap();
    let (page, _) = s.agent_events(org.id, a.id, 0, 1).await.unwrap();
    assert_eq!(page[0].detail.chars().count(), 1000);
    assert_eq!(page[0].actor.chars().count(), 254);
}

async fn history_is_tenant_scoped(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (a, _) = agent(s, &org, "web-1").await;
    let event = NewAgentEvent {
        at: now(),
        kind: Removed,
        actor: OWNER,
        detail: "",
    };
    assert_not_found(s.agent_events(other.id, a.id, 0, 10).await);
    assert_not_found(s.agent_events(org.id, AgentId::random(), 0, 10).await);
    assert_not_found(s.record_agent_event(other.id, a.id, &event).await);
    assert_not_found(
        s.record_agent_event(org.id, AgentId::random(), &event)
            .await,
    );
    assert_not_found(s.put_policy_by(other.id, a.id, &policy(), OWNER).await);
    assert_not_found(s.set_plan_by(other.id, a.id, Plan::Community, OWNER).await);
    assert_not_found(s.remove_agent_by(other.id, a.id, now(), OWNER).await);
    assert_not_found(
        s.set_health(other.id, a.id, AgentHealth::NotCommunicating)
            .await,
    );
    assert_not_found(s.timeline_alerts(other.id, a.id, 0, now()).await);
    assert_not_found(s.first_scans(other.id, a.id).await);
    // Nothing of that reached the agent.
    assert_eq!(shape(&all(db, org.id, a.id).await)[0].0, Enrolled);
    assert_eq!(all(db, org.id, a.id).await.len(), 1);
    assert_eq!(s.agent(org.id, a.id).await.unwrap().plan, Plan::Extended);
}

async fn moves_show_in_the_history(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web-1").await;
    let order = MoveOrder {
        server_url: "https://198.18.0.1:9443/",
        pin: "sha256:00",
        enrollment_token: "vge_secret",
        expires_at: now() + 3600,
    };
    s.request_agent_move(org.id, a.id, &order).await.unwrap();
    let events = all(db, org.id, a.id).await;
    assert_eq!(
        shape(&events)[0],
        (
            MoveOrdered,
            SYSTEM_ACTOR,
            "told to re-enroll with https://198.18.0.1:9443"
        )
    );
    assert_eq!(events.len(), 2);
    s.complete_agent_move(org.id, a.id, "server-b", now() + 1)
        .await
        .unwrap();
    let events = all(db, org.id, a.id).await;
    assert_eq!(
        shape(&events),
        [
            (
                Moved,
                SYSTEM_ACTOR,
                "re-enrolled with server server-b; removed here"
            ),
            (
                MoveOrdered,
                SYSTEM_ACTOR,
                "told to re-enroll with https://198.18.0.1:9443"
            ),
            (Enrolled, SYSTEM_ACTOR, "as \"web-1\" on the extended plan"),
        ]
    );
    assert!(
        events.iter().all(|e| !e.detail.contains("vge_secret")),
        "the token stays secret"
    );
    let (page, total) = s.agent_events(org.id, a.id, 1, 1).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(page[0].kind, MoveOrdered);
}

async fn timeline_alerts_are_those_of_the_window(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web-1").await;
    let (b, _) = agent(s, &org, "web-2").await;
    let t = now() - 100_000;
    let (from, to) = (t + 1000, t + 2000);
    // (target, condition, raised, resolved)
    let alerts: Vec<(&str, Condition, i64, Option<i64>)> = vec![
        // Before the window: left out.
        (
            "agent",
            Condition::agent_not_communicating(),
            t,
            Some(t + 500),
        ),
        // Ends exactly when the window starts: left out.
        (
            "agent",
            Condition::agent_not_communicating(),
            t + 600,
            Some(from),
        ),
        // Overlaps the start.
        (
            "agent",
            Condition::agent_not_communicating(),
            t + 900,
            Some(t + 1100),
        ),
        // Inside.
        (
            "agent_host",
            Condition::target_unreachable(),
            t + 1200,
            Some(t + 1300),
        ),
        (
            "agent_host",
            Condition::service_down(443),
            t + 1400,
            Some(t + 1500),
        ),
        // Not a reachability alert: left out.
        (
            "agent_host",
            Condition::unauthorized_open(23),
            t + 1400,
            None,
        ),
        // Still open.
        ("host:nas.lan", Condition::service_down(22), t + 1800, None),
        // Starts at the end of the window: left out.
        ("agent_host", Condition::target_unreachable(), to, None),
    ];
    for (target, condition, raised, resolved) in &alerts {
        let alert = s
            .open_alert(org.id, a.id, target, *condition, false, *raised)
            .await
            .unwrap();
        if let Some(r) = resolved {
            s.resolve_alert(org.id, alert.id, *r).await.unwrap();
        }
    }
    // Another agent's alert.
    s.open_alert(
        org.id,
        b.id,
        "agent",
        Condition::agent_not_communicating(),
        false,
        t + 1500,
    )
    .await
    .unwrap();

    let spans = s.timeline_alerts(org.id, a.id, from, to).await.unwrap();
    let got: Vec<(&str, Condition, i64, Option<i64>)> = spans
        .iter()
        .map(|x| (x.target.as_str(), x.condition, x.raised_at, x.resolved_at))
        .collect();
    assert_eq!(
        got,
        [
            (
                "agent",
                Condition::agent_not_communicating(),
                t + 900,
                Some(t + 1100)
            ),
            (
                "agent_host",
                Condition::target_unreachable(),
                t + 1200,
                Some(t + 1300)
            ),
            (
                "agent_host",
                Condition::service_down(443),
                t + 1400,
                Some(t + 1500)
            ),
            ("host:nas.lan", Condition::service_down(22), t + 1800, None),
        ]
    );
    assert!(s
        .timeline_alerts(org.id, a.id, 0, t)
        .await
        .unwrap()
        .is_empty());

    // First scans per target.
    assert!(s.first_scans(org.id, a.id).await.unwrap().is_empty());
    let ports = [PortResult {
        port: 22,
        state: vigil_core::PortState::Open,
        details: None,
    }];
    for (upload, target, started) in [
        ("u1", "agent_host", t + 50),
        ("u2", "agent_host", t + 10),
        ("u3", "host:nas.lan", t + 70),
    ] {
        s.ingest_result(
            org.id,
            a.id,
            &NewScanResult {
                upload_id: upload,
                target,
                started_at: started,
                finished_at: started + 5,
                ports: &ports,
                addr: None,
                task_id: None,
                probed: None,
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        s.first_scans(org.id, a.id).await.unwrap(),
        [
            ("agent_host".to_string(), t + 10),
            ("host:nas.lan".to_string(), t + 70)
        ]
    );
    assert!(s.first_scans(org.id, b.id).await.unwrap().is_empty());
}
