//! The agent API: single-use enrollment, credentials checked on every
//! call, removed agents locked out, bodies bounded.

use crate::common::{facts, Server};
use reqwest::Method;
use serde_json::json;
use vigil_core::AccountKind;
use vigil_proto::agent::MAX_BODY_BYTES;

api_tests!(
    heartbeats_need_the_agents_own_credential_and_record_its_facts,
    a_refused_enrollment_creates_no_agent_and_keeps_its_token,
    heartbeat_facts_too_long_are_refused_and_change_nothing,
    results_are_taken_only_for_open_tasks,
);

/// A result for a task that is completed, or expired (past a grace for the
/// scan that was running), is refused; a re-send of what was stored is
/// still acknowledged as a duplicate.
async fn results_are_taken_only_for_open_tasks(s: Server) {
    let a = s.tenant("Account A", AccountKind::Organization).await;
    let (id, credential) = s.enroll_agent(&a.owner, "edge", "extended").await;
    let agent: vigil_store::AgentId = id.parse().expect("agent id");
    let now = vigil_store::now_unix();
    let task = |created: i64, expires: i64| {
        s.store().create_task(
            a.id,
            agent,
            "agent_host",
            "self",
            "22",
            created,
            expires,
            None,
        )
    };
    let open = task(now, now + 600).await.expect("task");
    let upload = |task: &vigil_store::ScanTask, upload: &str| {
        json!({"upload_id": upload, "task_id": task.id.to_string(), "target": "self",
               "addr": "127.0.0.1", "started_at": now, "finished_at": now,
               "ports": [{"port": 22, "state": "open"}]})
    };
    let first = s
        .upload(&id, &credential, &upload(&open, "u-1"))
        .await
        .ok(200);
    assert_eq!(first["status"], "stored", "{first}");
    let again = s
        .upload(&id, &credential, &upload(&open, "u-1"))
        .await
        .ok(200);
    assert_eq!(again["status"], "duplicate", "{again}");
    s.upload(&id, &credential, &upload(&open, "u-2"))
        .await
        .assert_error(422, &["completed", "only for open tasks"]);

    // Expired 20 minutes ago (the grace is 15): refused.
    let stale = task(now - 3600, now - 1200).await.expect("task");
    s.upload(&id, &credential, &upload(&stale, "u-3"))
        .await
        .assert_error(422, &["expired", "only for open tasks"]);
    // Expired a minute ago: the scan that was running still reports.
    let late = task(now - 3600, now - 60).await.expect("task");
    s.upload(&id, &credential, &upload(&late, "u-4"))
        .await
        .ok(200);
    let results = s.get_ok(&format!("/agents/{id}/results"), &a.owner).await;
    assert_eq!(results.as_array().map(Vec::len), Some(2), "{results}");
}

async fn heartbeats_need_the_agents_own_credential_and_record_its_facts(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let enrollment = s.enrollment(&a.owner, "edge", "extended").await;
    let enrolled = s
        .redeem(&enrollment, &facts("edge-1", "linux", "0.1.0"))
        .await
        .ok(200);
    let id = enrolled["agent_id"].as_str().expect("agent_id").to_string();
    let credential = enrolled["credential"]
        .as_str()
        .expect("credential")
        .to_string();
    assert!(credential.starts_with(vigil_store::AGENT_CREDENTIAL_PREFIX));
    let agent_path = format!("/agents/{id}");

    let view = s.get_ok(&agent_path, &a.owner).await;
    assert_eq!(view["name"], "edge");
    assert_eq!(view["public_addr"], "127.0.0.1");
    assert_eq!(view["hostname"], "edge-1");
    assert_eq!(view["os"], "linux");
    assert_eq!(view["version"], "0.1.0");

    // The token is single-use, and unknown tokens are refused alike.
    let again = s.redeem(&enrollment, &facts("thief", "o", "v")).await;
    again.assert_client_error(&["already used"]);
    let forged = format!("{}{}", vigil_store::ENROLLMENT_TOKEN_PREFIX, "A".repeat(43));
    for token in [forged.as_str(), "nonsense", ""] {
        let reply = s.redeem(token, &facts("thief", "o", "v")).await;
        reply.assert_client_error(&["enrollment token"]);
    }
    let agents = s.get_ok("/agents", &a.owner).await;
    assert_eq!(agents.as_array().map(Vec::len), Some(1), "{agents}");

    // Wrong credentials, however wrong, are 401 and record nothing.
    let evil = facts("evil", "evil-os", "6.6.6");
    let hb = json!({"facts": evil, "spooled": 0});
    let other = uuid::Uuid::new_v4();
    let wrong_secret = format!("{}{}", vigil_store::AGENT_CREDENTIAL_PREFIX, "B".repeat(43));
    let authorizations = [
        format!("Bearer {id}:{wrong_secret}"),
        format!("Bearer {id}:"),
        format!("Bearer {id}"),
        format!("Bearer {other}:{credential}"),
        format!("Bearer not-a-uuid:{credential}"),
        format!("Bearer {credential}"),
        format!("Basic {id}:{credential}"),
        String::new(),
    ];
    for auth in &authorizations {
        let reply = s.heartbeat_as(Some(auth), &hb).await;
        reply.assert_error(401, &["credentials"]);
    }
    s.heartbeat_as(None, &hb)
        .await
        .assert_error(401, &["credentials"]);
    // Another agent's credential does not open this one.
    let (_, second_credential) = s.enroll_agent(&a.owner, "second", "community").await;
    s.heartbeat(&id, &second_credential, &evil)
        .await
        .assert_error(401, &["credentials"]);
    let unchanged = s.get_ok(&agent_path, &a.owner).await;
    assert_eq!(unchanged["hostname"], "edge-1");
    assert_eq!(unchanged["last_seen_at"], view["last_seen_at"]);

    // The right credential: the new facts and the peer address are recorded.
    let answer = s
        .heartbeat(&id, &credential, &facts("edge-2", "freebsd", "0.2.0"))
        .await
        .ok(200);
    assert_eq!(answer["observed_addr"], "127.0.0.1");
    let seen = s.get_ok(&agent_path, &a.owner).await;
    assert_eq!(seen["public_addr"], "127.0.0.1");
    assert_eq!(seen["hostname"], "edge-2");
    assert_eq!(seen["os"], "freebsd");
    assert_eq!(seen["version"], "0.2.0");
    assert_eq!(seen["health"], "communicating");
    assert!(seen["last_seen_at"].as_i64().is_some(), "{seen}");

    // Too big for the agent API: 413, nothing recorded.
    let huge = json!({"facts": facts(&"x".repeat(MAX_BODY_BYTES + 1), "o", "v"), "spooled": 0});
    let reply = s
        .heartbeat_as(Some(&format!("Bearer {id}:{credential}")), &huge)
        .await;
    reply.assert_error(413, &["too large"]);
    let huge_enroll = s
        .redeem(&"x".repeat(MAX_BODY_BYTES + 1), &facts("h", "o", "v"))
        .await;
    huge_enroll.assert_error(413, &["too large"]);
    assert_eq!(s.get_ok(&agent_path, &a.owner).await["hostname"], "edge-2");

    // A removed agent is locked out.
    s.send(Method::DELETE, &agent_path, Some(&a.owner), None)
        .await
        .ok(204);
    s.heartbeat(&id, &credential, &facts("edge-3", "linux", "0.3.0"))
        .await
        .assert_error(401, &["credentials"]);
    let removed = s.get_ok(&agent_path, &a.owner).await;
    assert!(removed["removed_at"].as_i64().is_some(), "{removed}");
    assert_eq!(removed["hostname"], "edge-2");
    let listed = crate::common::ids(&s.get_ok("/agents", &a.owner).await);
    assert!(!listed.contains(&id), "removed agent still listed");
    s.shutdown().await;
}

async fn a_refused_enrollment_creates_no_agent_and_keeps_its_token(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let long = "h".repeat(vigil_store::limits::MAX_AGENT_FIELD_LEN + 1);
    let enrollment = s.enrollment(&a.owner, "edge", "extended").await;
    let reply = s.redeem(&enrollment, &facts(&long, "linux", "1")).await;
    reply.assert_client_error(&["hostname"]);
    let agents = s.get_ok("/agents", &a.owner).await;
    assert_eq!(agents, json!([]), "a refused enrollment created an agent");
    s.redeem(&enrollment, &facts("edge-1", "linux", "1"))
        .await
        .ok(200);
    s.shutdown().await;
}

async fn heartbeat_facts_too_long_are_refused_and_change_nothing(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let long = "h".repeat(vigil_store::limits::MAX_AGENT_FIELD_LEN + 1);
    let (id, credential) = s.enroll_agent(&a.owner, "edge", "extended").await;
    let agent_path = format!("/agents/{id}");
    let before = s.get_ok(&agent_path, &a.owner).await;
    for (f, field) in [
        (facts(&long, "linux", "1"), "hostname"),
        (facts("edge-2", &long, "1"), "os"),
        (facts("edge-2", "linux", &long), "version"),
    ] {
        s.heartbeat(&id, &credential, &f)
            .await
            .assert_error(422, &[field]);
        assert_eq!(s.get_ok(&agent_path, &a.owner).await, before, "{field}");
    }
    s.heartbeat(&id, &credential, &facts("edge-2", "linux", "1"))
        .await
        .ok(200);
    assert_eq!(s.get_ok(&agent_path, &a.owner).await["hostname"], "edge-2");
    s.shutdown().await;
}
