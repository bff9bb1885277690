//! Tenant isolation: account B can neither read nor change account A's rows.

use crate::fixtures::*;
use serde_json::json;
use std::time::Duration;
use vigil_core::{AgentHealth, Condition, Plan, TargetState};
use vigil_store::{
    Agent, AlertFilter, AlertStatus, Channel, Heartbeat, NewScanResult, PortResult, Role, Store,
};
use vigil_testdb::TestDb;

backend_tests!(tenants_are_isolated);

/// Everything account A owns, as seen by A.
#[derive(Debug, PartialEq)]
struct Snapshot {
    agents: Vec<Agent>,
    policy: Option<vigil_core::SecurityPolicy>,
    results: Vec<vigil_store::ScanResult>,
    state: TargetState,
    alerts: Vec<vigil_store::Alert>,
    contacts: Vec<vigil_store::Contact>,
    rules: Vec<vigil_store::NotificationRule>,
    users: Vec<vigil_store::User>,
    tokens: Vec<vigil_store::ApiToken>,
    tasks: Vec<vigil_store::ScanTask>,
}

async fn snapshot(s: &Store, a: vigil_store::AccountId, agent: vigil_store::AgentId) -> Snapshot {
    Snapshot {
        agents: s.agents(a).await.unwrap(),
        policy: s.policy(a, agent).await.unwrap(),
        results: s.results(a, agent, 100).await.unwrap(),
        state: s.target_state(a, agent, "nas.example").await.unwrap(),
        alerts: s.alerts(a, &AlertFilter::default()).await.unwrap(),
        contacts: s.contacts(a).await.unwrap(),
        rules: s.rules(a).await.unwrap(),
        users: s.users(a).await.unwrap(),
        tokens: s.api_tokens(a).await.unwrap(),
        tasks: s.open_tasks(a, agent, now()).await.unwrap(),
    }
}

async fn tenants_are_isolated(db: &TestDb) {
    let s = &db.store;
    let t = now();
    // Account A with one of everything.
    let a = account(s, "A").await;
    let a_user = s
        .create_user(a.id, "a@a.example", "password-a", Role::Owner)
        .await
        .unwrap();
    let (a_token, a_token_text) = s.create_api_token(a.id, a_user.id, "a").await.unwrap();
    let (a_agent, a_credential) = agent(s, &a, "a-agent").await;
    s.put_policy(a.id, a_agent.id, &policy()).await.unwrap();
    let ports = [PortResult {
        port: 22,
        state: vigil_core::PortState::Open,
        details: None,
    }];
    let upload = NewScanResult {
        upload_id: "a-upload",
        target: "nas.example",
        started_at: t - 5,
        finished_at: t,
        ports: &ports,
        addr: None,
        task_id: None,
        probed: None,
    };
    let a_result = s
        .ingest_result(a.id, a_agent.id, &upload)
        .await
        .unwrap()
        .id();
    let mut state = TargetState::default();
    vigil_core::evaluate(
        &mut state,
        &policy(),
        &vigil_core::Observation::from_ports(vec![(8080, vigil_core::PortState::Open)]),
        &vigil_core::DampingConfig::default(),
    );
    s.put_target_state(a.id, a_agent.id, "nas.example", &state)
        .await
        .unwrap();
    let cond = Condition::unauthorized_open(8080);
    let a_alert = s
        .open_alert(a.id, a_agent.id, "nas.example", cond, false, t)
        .await
        .unwrap();
    let a_contact = s
        .create_contact(a.id, "a-ops", Channel::Email, "ops@a.example")
        .await
        .unwrap();
    let a_task = s
        .create_task(
            a.id,
            a_agent.id,
            "agent_host",
            "127.0.0.1",
            "22",
            t,
            t + 3600,
            None,
        )
        .await
        .unwrap();
    let a_rule = s
        .create_rule(a.id, a_contact.id, Some(a_agent.id), &["alert.raised"])
        .await
        .unwrap();
    assert!(s
        .enqueue(a.id, a_contact.id, "a-event", &json!({}), t)
        .await
        .unwrap());

    // Account B with its own agent and contact.
    let b = account(s, "B").await;
    let (b_agent, _) = agent(s, &b, "b-agent").await;
    let b_contact = s
        .create_contact(b.id, "b-ops", Channel::Email, "ops@b.example")
        .await
        .unwrap();

    let before = snapshot(s, a.id, a_agent.id).await;
    let (bid, ag) = (b.id, a_agent.id);

    // Users and tokens.
    assert_not_found(s.user(bid, a_user.id).await);
    assert_not_found(s.set_role(bid, a_user.id, Role::Viewer).await);
    assert_not_found(s.set_password(bid, a_user.id, "hijacked!!").await);
    assert_not_found(s.create_api_token(bid, a_user.id, "b").await);
    assert_not_found(s.revoke_token(bid, a_token.id).await);
    assert!(s.users(bid).await.unwrap().is_empty());
    assert!(s.api_tokens(bid).await.unwrap().is_empty());

    // Agents.
    assert_not_found(s.agent(bid, ag).await);
    assert_eq!(s.agents(bid).await.unwrap(), vec![b_agent.clone()]);
    assert_not_found(s.set_plan(bid, ag, Plan::Community).await);
    assert_not_found(s.set_health(bid, ag, AgentHealth::Abandoned).await);
    assert_not_found(
        s.record_heartbeat(
            bid,
            ag,
            &Heartbeat {
                now: t,
                hostname: Some("evil"),
                ..Heartbeat::default()
            },
        )
        .await,
    );
    assert_not_found(s.remove_agent(bid, ag, t).await);

    // Policies and schedule.
    assert_not_found(s.policy(bid, ag).await);
    let mut evil = policy();
    evil.enabled = false;
    assert_not_found(s.put_policy(bid, ag, &evil).await);
    assert_not_found(s.set_next_run(bid, ag, t + 99_999).await);

    // Results: neither a new upload nor a "retry" of A's upload id.
    assert_not_found(s.ingest_result(bid, ag, &upload).await);
    assert_not_found(
        s.ingest_result(
            bid,
            ag,
            &NewScanResult {
                upload_id: "b-upload",
                ..upload
            },
        )
        .await,
    );
    assert_not_found(s.results(bid, ag, 10).await);

    // Target states.
    assert_not_found(s.target_state(bid, ag, "nas.example").await);
    assert_not_found(
        s.put_target_state(bid, ag, "nas.example", &TargetState::default())
            .await,
    );
    assert_not_found(
        s.put_target_state(bid, ag, "fresh.example", &TargetState::default())
            .await,
    );

    assert_not_found(s.set_policy_enabled(bid, ag, false).await);

    // Scan tasks.
    assert_not_found(
        s.create_task(bid, ag, "agent_host", "127.0.0.1", "22", t, t + 60, None)
            .await,
    );
    for agent in [ag, b_agent.id] {
        assert_not_found(s.task(bid, agent, a_task.id).await);
        assert!(!s.complete_task(bid, agent, a_task.id, t).await.unwrap());
        assert!(s.open_tasks(bid, agent, t).await.unwrap().is_empty());
        assert!(!s.has_open_task(bid, agent, "agent_host", t).await.unwrap());
    }

    // Alerts.
    assert_not_found(s.alert(bid, a_alert.id).await);
    assert_not_found(s.resolve_alert(bid, a_alert.id, t).await);
    assert_not_found(s.set_alert_flapping(bid, a_alert.id, true).await);
    assert_not_found(s.open_alert(bid, ag, "nas.example", cond, false, t).await);
    assert_not_found(s.open_alert(bid, ag, "other.example", cond, false, t).await);
    assert_eq!(
        s.open_alert_for(bid, ag, "nas.example", cond)
            .await
            .unwrap(),
        None
    );
    assert!(s
        .alerts(bid, &AlertFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .alerts(
            bid,
            &AlertFilter {
                status: Some(AlertStatus::Open),
                agent: Some(ag)
            }
        )
        .await
        .unwrap()
        .is_empty());

    // Contacts, rules, outbox.
    assert_not_found(s.contact(bid, a_contact.id).await);
    assert_not_found(
        s.update_contact(
            bid,
            a_contact.id,
            "mine",
            Channel::Webhook,
            "https://evil.example",
        )
        .await,
    );
    assert_not_found(s.delete_contact(bid, a_contact.id).await);
    assert_eq!(s.contacts(bid).await.unwrap(), vec![b_contact.clone()]);
    assert_not_found(
        s.create_rule(bid, a_contact.id, None, &["alert.raised"])
            .await,
    );
    assert_not_found(
        s.create_rule(bid, b_contact.id, Some(ag), &["alert.raised"])
            .await,
    );
    assert_not_found(s.delete_rule(bid, a_rule.id).await);
    assert!(s.rules(bid).await.unwrap().is_empty());
    assert_not_found(s.rules_for(bid, ag, "alert.raised").await);
    assert_not_found(s.enqueue(bid, a_contact.id, "a-event", &json!({}), t).await);
    assert_not_found(s.enqueue(bid, a_contact.id, "b-event", &json!({}), t).await);

    // Nothing of A changed, and A still works.
    assert_eq!(snapshot(s, a.id, ag).await, before);
    assert_eq!(before.results.len(), 1);
    assert_eq!(before.results[0].id, a_result);
    assert_eq!(before.alerts, vec![a_alert]);
    assert_eq!(before.tasks, vec![a_task]);
    assert_eq!(
        s.authenticate_agent(ag, &a_credential)
            .await
            .unwrap()
            .map(|x| x.id),
        Some(ag)
    );
    assert_eq!(
        s.authenticate_token(&a_token_text)
            .await
            .unwrap()
            .map(|(u, acct)| (u.id, acct)),
        Some((a_user.id, a.id))
    );
    assert_eq!(
        s.verify_login("a@a.example", "password-a")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(a_user.id)
    );
    assert_eq!(s.agent(a.id, ag).await.unwrap().hostname, None);
    assert_eq!(s.pending_count().await.unwrap(), 1);
    // B's own enrollment tokens create agents in B only.
    let tok = s
        .create_enrollment(bid, "b2", Plan::Community, Duration::from_secs(60))
        .await
        .unwrap();
    let (b2, _) = s.redeem_enrollment(&tok, t).await.unwrap();
    assert_eq!(b2.account_id, bid);
    assert_eq!(s.agents(a.id).await.unwrap(), before.agents);
}
