//! Bad requests get a 4xx with an `{"error": …}` that says what to change,
//! never a 5xx, and leave the stored state as it was.

use crate::common::{ids, policy, Server};
use reqwest::Method;
use serde_json::{json, Value};
use vigil_core::{AccountKind, MEMBER_INTERVALS};
use vigil_notify::EventKind;
use vigil_proto::api::MAX_API_BODY_BYTES;

api_tests!(
    unreadable_bodies_are_refused_with_the_reason,
    missing_invalid_and_revoked_tokens_are_401,
    malformed_ids_are_400_and_unknown_routes_404,
    policy_ports_out_of_range_are_422_and_keep_the_stored_policy,
    policies_break_no_rule_and_a_refused_one_keeps_the_stored_one,
    organizations_pick_any_interval_and_plans_gate_scans,
    contacts_and_rules_are_checked_before_they_are_stored,
    results_limit_is_checked,
    unreadable_query_strings_get_a_json_error,
    enrollments_and_users_are_checked,
    a_wrong_method_is_405_with_a_json_error,
);

async fn unreadable_bodies_are_refused_with_the_reason(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let before = s.snapshot(&a.owner, &r).await;
    let token = Some(a.owner.as_str());
    let contact = br#"{"name":"ops","channel":"email","address":"ops2@a.example.com"}"#.to_vec();
    let json_ct = Some("application/json");
    let policy_path = format!("/agents/{}/policy", r.agent);

    let reply = s
        .send_raw(
            Method::POST,
            "/contacts",
            token,
            json_ct,
            br#"{"name": "ops","#.to_vec(),
        )
        .await;
    reply.assert_error(400, &["json"]);

    let reply = s
        .send_raw(Method::PUT, &policy_path, token, json_ct, b"[1, 2".to_vec())
        .await;
    // serde meets the wrong type before the truncation: a data error (422).
    reply.assert_client_error(&["json"]);

    // A JSON body that is not labelled JSON.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = s
            .send_raw(Method::POST, "/contacts", token, ct, contact.clone())
            .await;
        reply.assert_client_error(&["content-type", "json"]);
    }

    // Well-formed JSON of the wrong shape names the field.
    let reply = s
        .send(
            Method::POST,
            "/contacts",
            token,
            Some(&json!({"name": "ops", "address": "ops2@a.example.com"})),
        )
        .await;
    reply.assert_client_error(&["channel"]);
    let reply = s
        .send(
            Method::PUT,
            &policy_path,
            token,
            Some(&json!(["agent_host"])),
        )
        .await;
    reply.assert_client_error(&[]);

    // Over the limit: 413, whatever the endpoint.
    let filler = "x".repeat(MAX_API_BODY_BYTES + 1);
    let big_contact = json!({"name": "ops", "channel": "email", "address": filler});
    let reply = s
        .send(Method::POST, "/contacts", token, Some(&big_contact))
        .await;
    reply.assert_error(413, &["too large"]);
    let mut big_policy = policy(true, "22", 60);
    big_policy["padding"] = json!(filler);
    let reply = s
        .send(Method::PUT, &policy_path, token, Some(&big_policy))
        .await;
    reply.assert_error(413, &["too large"]);
    let reply = s
        .send(
            Method::POST,
            "/login",
            None,
            Some(&json!({"email": "a@example.com", "password": filler})),
        )
        .await;
    reply.assert_error(413, &["too large"]);

    assert_eq!(before, s.snapshot(&a.owner, &r).await, "state changed");
    // Just under the limit is read (and refused for its content instead).
    let near = "x".repeat(MAX_API_BODY_BYTES - 200);
    let reply = s
        .send(
            Method::POST,
            "/contacts",
            token,
            Some(&json!({"name": "ops", "channel": "email", "address": near})),
        )
        .await;
    reply.assert_error(422, &[]);
    assert_eq!(before, s.snapshot(&a.owner, &r).await, "state changed");
    s.shutdown().await;
}

async fn missing_invalid_and_revoked_tokens_are_401(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let before = s.snapshot(&a.owner, &r).await;
    let contact = json!({"name": "n", "channel": "email", "address": "n@a.example.com"});

    for path in ["/me", "/agents", "/contacts", "/alerts"] {
        let reply = s.send(Method::GET, path, None, None).await;
        reply.assert_error(401, &["credentials"]);
    }
    let reply = s
        .send(Method::POST, "/contacts", None, Some(&contact))
        .await;
    reply.assert_error(401, &["credentials"]);
    let forged = format!("vgl_{}", "A".repeat(43));
    for token in ["garbage", "vgl_", forged.as_str(), ""] {
        let reply = s.send(Method::GET, "/me", Some(token), None).await;
        reply.assert_error(401, &["credentials"]);
        let reply = s
            .send(Method::POST, "/contacts", Some(token), Some(&contact))
            .await;
        reply.assert_error(401, &["credentials"]);
    }
    // The right token in the wrong scheme.
    for scheme in ["Basic", "Token"] {
        let reply = s
            .get_authorized_as("/me", &format!("{scheme} {}", a.owner))
            .await;
        reply.assert_error(401, &["credentials"]);
    }

    // A wrong password gets no token.
    let owner_email = s.get_ok("/me", &a.owner).await["user"]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let reply = s
        .send(
            Method::POST,
            "/login",
            None,
            Some(&json!({"email": owner_email, "password": "not the password"})),
        )
        .await;
    reply.assert_error(401, &["credentials"]);

    // A revoked token stops working at once; the others keep working.
    let created = s
        .send(
            Method::POST,
            "/tokens",
            Some(&a.owner),
            Some(&json!({"name": "ci"})),
        )
        .await
        .ok(201);
    let secret = created["token"].as_str().expect("token").to_string();
    let id = created["id"].as_str().expect("token id").to_string();
    s.get_ok("/me", &secret).await;
    let before = {
        let mut b = before;
        b.retain(|(path, _)| path != "/tokens");
        b
    };
    s.send(
        Method::DELETE,
        &format!("/tokens/{id}"),
        Some(&a.owner),
        None,
    )
    .await
    .ok(204);
    let reply = s.get("/me", &secret).await;
    reply.assert_error(401, &["credentials"]);
    let reply = s
        .send(Method::POST, "/contacts", Some(&secret), Some(&contact))
        .await;
    reply.assert_error(401, &["credentials"]);
    let reply = s
        .send(
            Method::DELETE,
            &format!("/agents/{}", r.agent),
            Some(&secret),
            None,
        )
        .await;
    reply.assert_error(401, &["credentials"]);
    let tokens = s.get_ok("/tokens", &a.owner).await;
    let revoked = tokens
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == id.as_str())
        .expect("revoked token listed");
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");

    let mut after = s.snapshot(&a.owner, &r).await;
    after.retain(|(path, _)| path != "/tokens");
    assert_eq!(before, after, "unauthenticated requests changed the state");
    s.shutdown().await;
}

async fn malformed_ids_are_400_and_unknown_routes_404(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let before = s.snapshot(&a.owner, &r).await;
    let token = Some(a.owner.as_str());

    let cases: Vec<(Method, &str, &str, Option<Value>)> = vec![
        (Method::GET, "/agents/not-a-uuid", "agent id", None),
        (
            Method::PATCH,
            "/agents/123",
            "agent id",
            Some(json!({"plan": "community"})),
        ),
        (Method::DELETE, "/agents/zzz", "agent id", None),
        (Method::GET, "/agents/zzz/policy", "agent id", None),
        (
            Method::PUT,
            "/agents/zzz/policy",
            "agent id",
            Some(policy(false, "22", 60)),
        ),
        (Method::GET, "/agents/zzz/results", "agent id", None),
        (Method::POST, "/agents/zzz/scan", "agent id", None),
        (Method::GET, "/contacts/zzz", "contact id", None),
        (
            Method::PUT,
            "/contacts/zzz",
            "contact id",
            Some(json!({"name": "n", "channel": "email", "address": "n@a.example.com"})),
        ),
        (Method::DELETE, "/contacts/zzz", "contact id", None),
        (Method::POST, "/contacts/zzz/test", "contact id", None),
        (Method::DELETE, "/rules/zzz", "rule id", None),
        (Method::DELETE, "/tokens/zzz", "token id", None),
        (Method::GET, "/alerts?agent=zzz", "agent id", None),
        (
            Method::POST,
            "/rules",
            "contact id",
            Some(json!({"contact_id": "zzz", "events": ["*"]})),
        ),
    ];
    for (method, path, kind, body) in &cases {
        let reply = s.send(method.clone(), path, token, body.as_ref()).await;
        assert_eq!(reply.status.as_u16(), 400, "{method} {path}: {reply:?}");
        reply.assert_error(400, &[kind, "uuid"]);
    }

    // Well-formed ids that name nothing are 404.
    let nobody = uuid::Uuid::new_v4();
    for path in [
        format!("/agents/{nobody}"),
        format!("/agents/{nobody}/policy"),
        format!("/agents/{nobody}/results"),
        format!("/contacts/{nobody}"),
    ] {
        s.get(&path, &a.owner)
            .await
            .assert_error(404, &["not found"]);
    }
    s.send(Method::DELETE, &format!("/rules/{nobody}"), token, None)
        .await
        .assert_error(404, &["not found"]);

    // Unknown routes below the API prefix, with or without credentials.
    for path in [
        "/nope".to_string(),
        "/agent".to_string(),
        format!("/agents/{}/nope", r.agent),
        "/v2/agents".to_string(),
    ] {
        for t in [token, None] {
            let reply = s.send(Method::GET, &path, t, None).await;
            reply.assert_error(404, &["openapi.json"]);
        }
        let reply = s.send(Method::POST, &path, token, Some(&json!({}))).await;
        reply.assert_error(404, &["openapi.json"]);
    }
    assert_eq!(before, s.snapshot(&a.owner, &r).await, "state changed");
    s.shutdown().await;
}

async fn policy_ports_out_of_range_are_422_and_keep_the_stored_policy(s: Server) {
    let a = s.tenant("Member", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let path = format!("/agents/{}/policy", r.agent);
    let token = Some(a.owner.as_str());
    let stored = s.get_ok(&path, &a.owner).await;
    assert_eq!(stored["policy"]["authorized"], "22,80");

    // (port list, what the message must name)
    let bad_ports = [
        ("0", r#""0""#),
        ("70000", "70000"),
        ("abc", "abc"),
        ("22,0", r#""0""#),
        ("1-70000", "1-70000"),
        ("80-22", "80-22"),
        ("22,,80", "22,,80"),
    ];
    for (bad, needle) in bad_ports {
        for field in ["authorized", "monitored"] {
            let mut body = policy(true, "22", 60);
            body[field] = json!(bad);
            let reply = s.send(Method::PUT, &path, token, Some(&body)).await;
            assert_eq!(
                reply.status.as_u16(),
                422,
                "{field} {bad:?} should be refused by the rules (422): {reply:?}"
            );
            reply.assert_error(422, &[needle]);
            assert_eq!(s.get_ok(&path, &a.owner).await, stored, "{field} {bad:?}");
        }
    }
    s.shutdown().await;
}

async fn policies_break_no_rule_and_a_refused_one_keeps_the_stored_one(s: Server) {
    let a = s.tenant("Member", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let path = format!("/agents/{}/policy", r.agent);
    let token = Some(a.owner.as_str());
    let stored = s.get_ok(&path, &a.owner).await;
    assert_eq!(stored["policy"]["authorized"], "22,80");

    // Members pick from a short list; the answer lists it.
    let reply = s
        .send(Method::PUT, &path, token, Some(&policy(true, "22", 45)))
        .await;
    let allowed: Vec<String> = MEMBER_INTERVALS.iter().map(u32::to_string).collect();
    let mut needles: Vec<&str> = allowed.iter().map(String::as_str).collect();
    needles.push("45");
    needles.push("member");
    reply.assert_error(422, &needles);
    assert_eq!(s.get_ok(&path, &a.owner).await, stored);

    for interval in [
        json!(0),
        json!(-5),
        json!(525_601),
        json!("hourly"),
        json!(1.5),
    ] {
        let mut body = policy(true, "22", 60);
        body["interval"] = interval.clone();
        let reply = s.send(Method::PUT, &path, token, Some(&body)).await;
        reply.assert_client_error(&["interval"]);
        assert_eq!(s.get_ok(&path, &a.owner).await, stored, "{interval}");
    }

    let mut no_targets = policy(true, "22", 60);
    no_targets["targets"] = json!([]);
    let reply = s.send(Method::PUT, &path, token, Some(&no_targets)).await;
    reply.assert_error(422, &["target"]);
    let mut bad_host = policy(true, "22", 60);
    bad_host["targets"] = json!([{"host": "10.0.0.0/24"}]);
    let reply = s.send(Method::PUT, &path, token, Some(&bad_host)).await;
    reply.assert_error(422, &["10.0.0.0/24"]);
    assert_eq!(s.get_ok(&path, &a.owner).await, stored);

    // An allowed change goes through. `22-` is an open-ended range (port
    // list syntax, see vigil-core's ports.rs), not an error.
    let changed = s
        .send(
            Method::PUT,
            &path,
            token,
            Some(&policy(true, "8000-8100,22", 30)),
        )
        .await
        .ok(200);
    assert_eq!(changed["policy"]["interval"], 30);
    let now = s.get_ok(&path, &a.owner).await;
    assert_eq!(now["policy"]["authorized"], "22,8000-8100");
    assert_eq!(now["policy"]["interval"], 30);
    let open_ended = s
        .send(
            Method::PUT,
            &path,
            token,
            Some(&policy(false, "60000-", 30)),
        )
        .await
        .ok(200);
    assert_eq!(open_ended["policy"]["authorized"], "60000-65535");
    s.shutdown().await;
}

async fn organizations_pick_any_interval_and_plans_gate_scans(s: Server) {
    let org = s.tenant("Org", AccountKind::Organization).await;
    let r = s.records(&org, "org").await;
    let token = Some(org.owner.as_str());
    let path = format!("/agents/{}/policy", r.agent);
    let set = s
        .send(Method::PUT, &path, token, Some(&policy(true, "22", 45)))
        .await
        .ok(200);
    assert_eq!(set["policy"]["interval"], 45);
    assert_eq!(s.get_ok(&path, &org.owner).await["policy"]["interval"], 45);
    let reply = s
        .send(Method::PUT, &path, token, Some(&policy(true, "22", 0)))
        .await;
    reply.assert_client_error(&["interval"]);
    assert_eq!(s.get_ok(&path, &org.owner).await["policy"]["interval"], 45);

    // A Community agent: a disabled policy may be prepared, enabling is refused.
    let (free, _) = s.enroll_agent(&org.owner, "free", "community").await;
    let free_path = format!("/agents/{free}/policy");
    let reply = s
        .send(
            Method::PUT,
            &free_path,
            token,
            Some(&policy(true, "22", 60)),
        )
        .await;
    reply.assert_error(422, &["extended plan", "community"]);
    s.get(&free_path, &org.owner)
        .await
        .assert_error(404, &["not found"]);
    let prepared = s
        .send(
            Method::PUT,
            &free_path,
            token,
            Some(&policy(false, "22", 60)),
        )
        .await
        .ok(200);
    assert_eq!(prepared["policy"]["enabled"], false);
    let reply = s
        .send(
            Method::PUT,
            &free_path,
            token,
            Some(&policy(true, "22,80", 15)),
        )
        .await;
    reply.assert_error(422, &["extended plan"]);
    let stored = s.get_ok(&free_path, &org.owner).await;
    assert_eq!(stored["policy"], prepared["policy"]);

    // Plans are community or extended; AgentPatch has no other field.
    let agent_path = format!("/agents/{free}");
    let agent_before = s.get_ok(&agent_path, &org.owner).await;
    let patches = [
        (json!({"plan": "gold"}), "gold"),
        (json!({"plan": "Extended"}), "Extended"),
        (json!({"plan": 1}), "plan"),
        (json!({"name": "renamed"}), "name"),
        (json!({"plan": "extended", "hostname": "x"}), "hostname"),
    ];
    for (patch, needle) in &patches {
        let reply = s.send(Method::PATCH, &agent_path, token, Some(patch)).await;
        reply.assert_client_error(&[needle]);
        assert_eq!(
            s.get_ok(&agent_path, &org.owner).await,
            agent_before,
            "{patch}"
        );
    }
    let upgraded = s
        .send(
            Method::PATCH,
            &agent_path,
            token,
            Some(&json!({"plan": "extended"})),
        )
        .await
        .ok(200);
    assert_eq!(upgraded["plan"], "extended");
    s.send(
        Method::PUT,
        &free_path,
        token,
        Some(&policy(true, "22", 60)),
    )
    .await
    .ok(200);
    s.shutdown().await;
}

async fn contacts_and_rules_are_checked_before_they_are_stored(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let token = Some(a.owner.as_str());
    let before = s.snapshot(&a.owner, &r).await;
    let contact_path = format!("/contacts/{}", r.contact);

    let pigeon = json!({"name": "coo", "channel": "pigeon", "address": "loft 3"});
    s.send(Method::POST, "/contacts", token, Some(&pigeon))
        .await
        .assert_error(422, &["pigeon", "email", "webhook"]);
    s.send(Method::PUT, &contact_path, token, Some(&pigeon))
        .await
        .assert_error(422, &["pigeon"]);
    for address in ["not-an-address", "two@@example.com", "", "a b@example.com"] {
        let body = json!({"name": "ops", "channel": "email", "address": address});
        s.send(Method::POST, "/contacts", token, Some(&body))
            .await
            .assert_error(422, &[]);
        s.send(Method::PUT, &contact_path, token, Some(&body))
            .await
            .assert_error(422, &[]);
    }
    let unknown_field =
        json!({"name": "ops", "channel": "email", "address": "x@a.example.com", "cc": "y"});
    s.send(Method::POST, "/contacts", token, Some(&unknown_field))
        .await
        .assert_client_error(&["cc"]);

    let rule = |events: Value| json!({"contact_id": r.contact, "events": events});
    s.send(
        Method::POST,
        "/rules",
        token,
        Some(&rule(json!(["port_open"]))),
    )
    .await
    .assert_error(422, &["port_open", "unknown event kind"]);
    s.send(
        Method::POST,
        "/rules",
        token,
        Some(&rule(json!(["service_down", "nonsense"]))),
    )
    .await
    .assert_error(422, &["nonsense"]);
    s.send(Method::POST, "/rules", token, Some(&rule(json!([]))))
        .await
        .assert_error(422, &["event"]);
    assert_eq!(before, s.snapshot(&a.owner, &r).await, "state changed");

    // "*" is every event kind a rule can name (the test notification is
    // not an event).
    let every: Vec<&str> = EventKind::ALL
        .iter()
        .filter(|k| **k != EventKind::Test)
        .map(|k| k.as_str())
        .collect();
    let created = s
        .send(Method::POST, "/rules", token, Some(&rule(json!(["*"]))))
        .await
        .ok(201);
    let mut got: Vec<&str> = created["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e.as_str().expect("event name"))
        .collect();
    got.sort_unstable();
    let mut want = every.clone();
    want.sort_unstable();
    assert_eq!(got, want);
    let rules = s.get_ok("/rules", &a.owner).await;
    assert!(ids(&rules).contains(&created["id"].as_str().unwrap_or_default().to_string()));
    s.shutdown().await;
}

async fn results_limit_is_checked(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let path = format!("/agents/{}/results", r.agent);
    for limit in ["0", "1001"] {
        s.get(&format!("{path}?limit={limit}"), &a.owner)
            .await
            .assert_error(422, &["limit", limit, "1 to 1000"]);
    }
    for limit in ["1", "1000"] {
        s.get_ok(&format!("{path}?limit={limit}"), &a.owner).await;
    }
    s.shutdown().await;
}

async fn unreadable_query_strings_get_a_json_error(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let r = s.records(&a, "a").await;
    let before = s.snapshot(&a.owner, &r).await;
    let results = format!("/agents/{}/results", r.agent);
    let cases = [
        (format!("{results}?limit=abc"), "limit"),
        (format!("{results}?limit=-1"), "limit"),
        (format!("{results}?limit=99999999999"), "limit"),
        ("/alerts?status=open&status=all".to_string(), "status"),
    ];
    for (path, needle) in &cases {
        let reply = s.get(path, &a.owner).await;
        reply.assert_client_error(&[needle]);
    }
    s.get("/alerts?status=bogus", &a.owner)
        .await
        .assert_error(422, &["bogus", "open, resolved or all"]);
    assert_eq!(before, s.snapshot(&a.owner, &r).await, "state changed");
    s.shutdown().await;
}

async fn enrollments_and_users_are_checked(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let token = Some(a.owner.as_str());
    let enrollments = [
        (json!({"name": "", "plan": "extended"}), 422, "name"),
        (
            json!({"name": "e", "plan": "extended", "ttl_minutes": 0}),
            422,
            "ttl_minutes",
        ),
        (
            json!({"name": "e", "plan": "extended", "ttl_minutes": 43_201}),
            422,
            "30 days",
        ),
    ];
    for (body, status, needle) in &enrollments {
        s.send(Method::POST, "/enrollments", token, Some(body))
            .await
            .assert_error(*status, &[needle]);
    }
    let gold = json!({"name": "e", "plan": "gold"});
    s.send(Method::POST, "/enrollments", token, Some(&gold))
        .await
        .assert_client_error(&["gold"]);
    let other = s.tenant("Account Other", AccountKind::Member).await;
    let other_email = s.get_ok("/users", &other.owner).await[0]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let users_before = s.get_ok("/users", &a.owner).await;
    let owner_email = users_before[0]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let users = [
        (
            json!({"email": "x@a.example.com", "password": "long enough password", "role": "superuser"}),
            422,
            "superuser",
        ),
        (
            json!({"email": "x@a.example.com", "password": "short", "role": "viewer"}),
            422,
            "password",
        ),
        (
            json!({"email": "not an email", "password": "long enough password", "role": "viewer"}),
            422,
            "email",
        ),
        (
            json!({"email": owner_email, "password": "long enough password", "role": "viewer"}),
            409,
            "already a user of this account",
        ),
        // Another account's user: not named as existing anywhere.
        (
            json!({"email": other_email, "password": "long enough password", "role": "viewer"}),
            422,
            "cannot be used for a new user",
        ),
    ];
    for (body, status, needle) in &users {
        s.send(Method::POST, "/users", token, Some(body))
            .await
            .assert_error(*status, &[needle]);
    }
    assert_eq!(s.get_ok("/users", &a.owner).await, users_before);
    assert_eq!(s.get_ok("/agents", &a.owner).await, json!([]));
    s.shutdown().await;
}

async fn a_wrong_method_is_405_with_a_json_error(s: Server) {
    let a = s.tenant("Account A", AccountKind::Member).await;
    let nobody = uuid::Uuid::new_v4();
    let cases = [
        (Method::PUT, "/agents".to_string()),
        (Method::DELETE, "/contacts".to_string()),
        (Method::POST, format!("/agents/{nobody}")),
        (Method::GET, "/login".to_string()),
        (Method::GET, "/enrollments".to_string()),
    ];
    for (method, path) in &cases {
        let reply = s
            .send(method.clone(), path, Some(&a.owner), Some(&json!({})))
            .await;
        assert_eq!(reply.status.as_u16(), 405, "{method} {path}: {reply:?}");
        reply.assert_error(405, &[]);
    }
    s.shutdown().await;
}
