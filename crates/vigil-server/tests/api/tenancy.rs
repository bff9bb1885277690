//! One account never sees or touches another's records: every attempt is
//! a 404, exactly like a record that does not exist.

use crate::common::{ids, policy, Server};
use reqwest::Method;
use serde_json::{json, Value};
use vigil_core::AccountKind;

api_tests!(another_account_gets_404_for_every_record_and_changes_nothing);

async fn another_account_gets_404_for_every_record_and_changes_nothing(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let b = s.tenant("Account B", AccountKind::Member).await;
    let ra = s.records(&a, "a").await;
    // B has records of its own, so its lists are not trivially empty.
    let rb = s.records(&b, "b").await;
    let a_token_id = ids(&s.get_ok("/tokens", &a.owner).await)[0].clone();
    let before = s.snapshot(&a.owner, &ra).await;

    let agent = &ra.agent;
    let contact = &ra.contact;
    let contact_body =
        json!({"name": "hijacked", "channel": "email", "address": "evil@b.example.com"});
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/agents/{agent}"), None),
        (
            Method::PATCH,
            format!("/agents/{agent}"),
            Some(json!({"plan": "community"})),
        ),
        (Method::GET, format!("/agents/{agent}/policy"), None),
        (
            Method::PUT,
            format!("/agents/{agent}/policy"),
            Some(policy(false, "1-65535", 15)),
        ),
        (Method::GET, format!("/agents/{agent}/results"), None),
        (Method::POST, format!("/agents/{agent}/scan"), None),
        (Method::GET, format!("/contacts/{contact}"), None),
        (
            Method::PUT,
            format!("/contacts/{contact}"),
            Some(contact_body),
        ),
        (Method::POST, format!("/contacts/{contact}/test"), None),
        (
            Method::POST,
            "/rules".into(),
            Some(json!({"contact_id": contact, "events": ["*"]})),
        ),
        (
            Method::POST,
            "/rules".into(),
            Some(json!({"contact_id": rb.contact, "agent_id": agent, "events": ["*"]})),
        ),
        (Method::DELETE, format!("/rules/{}", ra.rule), None),
        (Method::DELETE, format!("/contacts/{contact}"), None),
        (Method::DELETE, format!("/tokens/{a_token_id}"), None),
        // Last: were it to succeed, the agent would be gone.
        (Method::DELETE, format!("/agents/{agent}"), None),
    ];
    for (method, path, body) in &attempts {
        let reply = s
            .send(method.clone(), path, Some(&b.owner), body.as_ref())
            .await;
        let msg = reply.error_message();
        assert_eq!(
            reply.status.as_u16(),
            404,
            "B's {method} {path} on A's record: {reply:?}"
        );
        assert_eq!(msg, "not found", "{method} {path}");
    }

    // B's lists hold B's records and none of A's.
    let a_ids = [&ra.agent, &ra.contact, &ra.rule, &ra.alert];
    let lists = [
        ("/agents".to_string(), &rb.agent),
        ("/contacts".to_string(), &rb.contact),
        ("/rules".to_string(), &rb.rule),
        ("/alerts".to_string(), &rb.alert),
        ("/alerts?status=open".to_string(), &rb.alert),
        (format!("/alerts?agent={}", rb.agent), &rb.alert),
    ];
    for (path, own) in &lists {
        let list = s.get_ok(path, &b.owner).await;
        let listed = ids(&list);
        assert!(listed.contains(own), "B's {path} lacks B's {own}: {list}");
        let text = list.to_string();
        for id in a_ids {
            assert!(
                !text.contains(id.as_str()),
                "B's {path} shows A's {id}: {text}"
            );
        }
    }
    let filtered = s.get_ok(&format!("/alerts?agent={agent}"), &b.owner).await;
    assert_eq!(filtered, json!([]), "B filtering alerts by A's agent");
    let b_rules = s.get_ok("/rules", &b.owner).await;
    assert_eq!(ids(&b_rules), vec![rb.rule.clone()], "B's rules: {b_rules}");

    // A's view is exactly what it was, and A's token still works.
    let after = s.snapshot(&a.owner, &ra).await;
    assert_eq!(before, after, "A's records changed");
    // The snapshot really shows A's records.
    let a_alerts = ids(&s.get_ok("/alerts", &a.owner).await);
    assert_eq!(a_alerts, vec![ra.alert.clone()]);
    let a_agents = ids(&s.get_ok("/agents", &a.owner).await);
    assert_eq!(a_agents, vec![ra.agent.clone()]);
    // A's agent can still call in.
    s.heartbeat(
        &ra.agent,
        &ra.credential,
        &crate::common::facts("h", "o", "v"),
    )
    .await
    .ok(200);
    s.shutdown().await;
}
