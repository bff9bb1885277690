//! Deployment keys: one reusable secret enrolls many agents, each use is
//! recorded, and revocation, expiry and `max_uses` stop it — also under
//! concurrent enrollments.

use crate::fixtures::*;
use std::time::Duration;
use vigil_core::history::AgentEventKind;
use vigil_core::Plan;
use vigil_store::{
    DeploymentKeyId, KeyUse, NewDeploymentKey, StoreError, DEPLOYMENT_KEY_PREFIX,
    ENROLLMENT_TOKEN_PREFIX, MAX_DEPLOYMENT_KEY_TTL,
};
use vigil_testdb::TestDb;

backend_tests!(
    one_key_enrolls_many_until_revoked,
    keys_expire_run_out_and_validate,
    concurrent_enrollments_respect_max_uses,
);

fn new_key(name: &str, ttl: Duration, max_uses: Option<u64>) -> NewDeploymentKey<'_> {
    NewDeploymentKey {
        name,
        plan: Plan::Extended,
        ttl,
        max_uses,
    }
}

fn from<'a>(now: i64, peer: &'a str, host: &'a str) -> KeyUse<'a> {
    KeyUse {
        now,
        peer_addr: peer,
        hostname: host,
    }
}

async fn one_key_enrolls_many_until_revoked(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let t0 = now();
    let (key, secret) = s
        .create_deployment_key(
            org.id,
            &new_key(" GPO roll-out ", Duration::from_secs(86_400), None),
            t0,
        )
        .await
        .unwrap();
    assert!(secret.starts_with(DEPLOYMENT_KEY_PREFIX), "{secret}");
    assert_eq!(key.name, "GPO roll-out");
    assert_eq!(key.plan, Plan::Extended);
    assert_eq!(key.expires_at, t0 + 86_400);
    assert_eq!(
        (key.use_count, key.last_used_at, key.revoked_at),
        (0, None, None)
    );
    assert_eq!(s.deployment_keys(org.id).await.unwrap(), vec![key.clone()]);
    assert!(s.deployment_keys(other.id).await.unwrap().is_empty());

    let (a, cred_a) = s
        .redeem_deployment_key(&secret, &from(t0 + 1, "198.51.100.7", "ws-001"))
        .await
        .unwrap();
    let (b, _) = s
        .redeem_deployment_key(&secret, &from(t0 + 2, "198.51.100.8", ""))
        .await
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!((a.account_id, a.plan), (org.id, Plan::Extended));
    assert_eq!(a.name, "ws-001");
    // No hostname: named after the address it came from.
    assert_eq!(b.name, "198.51.100.8");
    assert_eq!(a.enrolled_at, t0 + 1);
    assert_eq!(
        s.authenticate_agent(a.id, &cred_a).await.unwrap(),
        Some(a.clone())
    );
    let (events, _) = s.agent_events(org.id, a.id, 0, 10).await.unwrap();
    assert_eq!(events[0].kind, AgentEventKind::Enrolled);
    assert!(
        events[0].detail.contains("deployment key"),
        "{}",
        events[0].detail
    );

    let uses = s.deployment_key_uses(org.id, key.id, 100).await.unwrap();
    let seen: Vec<_> = uses
        .iter()
        .map(|u| {
            (
                u.agent_id,
                u.used_at,
                u.peer_addr.as_deref(),
                u.hostname.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (b.id, t0 + 2, Some("198.51.100.8"), None),
            (a.id, t0 + 1, Some("198.51.100.7"), Some("ws-001")),
        ]
    );
    assert!(uses.iter().all(|u| u.key_id == key.id));
    let listed = s.deployment_key(org.id, key.id).await.unwrap();
    assert_eq!((listed.use_count, listed.last_used_at), (2, Some(t0 + 2)));

    // Tenancy: another account sees, lists and revokes nothing.
    assert_not_found(s.deployment_key(other.id, key.id).await);
    assert_not_found(s.deployment_key_uses(other.id, key.id, 10).await);
    assert_not_found(s.revoke_deployment_key(other.id, key.id, t0).await);
    assert_not_found(
        s.revoke_deployment_key(org.id, DeploymentKeyId::random(), t0)
            .await,
    );

    // Not interchangeable with single-use tokens.
    assert_not_found(s.redeem_enrollment(&secret, t0).await);
    let token = s
        .create_enrollment(org.id, "one", Plan::Community, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(token.starts_with(ENROLLMENT_TOKEN_PREFIX));
    assert_not_found(s.redeem_deployment_key(&token, &from(t0, "::1", "h")).await);
    let unknown = format!("{DEPLOYMENT_KEY_PREFIX}{}", "A".repeat(43));
    assert_not_found(
        s.redeem_deployment_key(&unknown, &from(t0, "::1", "h"))
            .await,
    );
    assert_not_found(s.redeem_deployment_key("", &from(t0, "::1", "h")).await);

    // Revoked: no more enrollments; the agents it made stay; a second
    // revocation keeps the first time.
    s.revoke_deployment_key(org.id, key.id, t0 + 3)
        .await
        .unwrap();
    let msg = assert_invalid(
        s.redeem_deployment_key(&secret, &from(t0 + 4, "198.51.100.9", "ws-003"))
            .await,
    );
    assert!(msg.contains("revoked"), "{msg}");
    s.revoke_deployment_key(org.id, key.id, t0 + 9)
        .await
        .unwrap();
    let revoked = s.deployment_key(org.id, key.id).await.unwrap();
    assert_eq!((revoked.revoked_at, revoked.use_count), (Some(t0 + 3), 2));
    assert_eq!(s.agents(org.id).await.unwrap().len(), 2);
    assert!(s.agents(other.id).await.unwrap().is_empty());
}

async fn keys_expire_run_out_and_validate(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t0 = now();

    let (_, short) = s
        .create_deployment_key(
            org.id,
            &new_key("short", Duration::from_secs(600), None),
            t0,
        )
        .await
        .unwrap();
    s.redeem_deployment_key(&short, &from(t0 + 599, "::1", "last"))
        .await
        .unwrap();
    let msg = assert_invalid(
        s.redeem_deployment_key(&short, &from(t0 + 600, "::1", "late"))
            .await,
    );
    assert!(msg.contains("expired"), "{msg}");

    let (two, limited) = s
        .create_deployment_key(
            org.id,
            &new_key("two", Duration::from_secs(600), Some(2)),
            t0,
        )
        .await
        .unwrap();
    assert_eq!(two.max_uses, Some(2));
    for host in ["a", "b"] {
        s.redeem_deployment_key(&limited, &from(t0, "::1", host))
            .await
            .unwrap();
    }
    let msg = assert_invalid(
        s.redeem_deployment_key(&limited, &from(t0, "::1", "c"))
            .await,
    );
    assert!(msg.contains("used up"), "{msg}");
    let two = s.deployment_key(org.id, two.id).await.unwrap();
    assert_eq!(two.use_count, 2);
    assert_eq!(s.agents(org.id).await.unwrap().len(), 3);

    // Bad input is refused before anything is stored.
    for bad in [
        new_key("", Duration::from_secs(60), None),
        new_key("x", Duration::ZERO, None),
        new_key("x", MAX_DEPLOYMENT_KEY_TTL + Duration::from_secs(1), None),
        new_key("x", Duration::from_secs(60), Some(0)),
        new_key("x", Duration::from_secs(60), Some(u64::MAX)),
    ] {
        assert_invalid(s.create_deployment_key(org.id, &bad, t0).await);
    }
    s.create_deployment_key(org.id, &new_key("year", MAX_DEPLOYMENT_KEY_TTL, None), t0)
        .await
        .unwrap();
    assert_eq!(s.deployment_keys(org.id).await.unwrap().len(), 3);
    assert_invalid(s.deployment_key_uses(org.id, two.id, 0).await);
}

async fn concurrent_enrollments_respect_max_uses(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t0 = now();
    let (key, secret) = s
        .create_deployment_key(
            org.id,
            &new_key("racer", Duration::from_secs(600), Some(3)),
            t0,
        )
        .await
        .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, secret, start) = (s.clone(), secret.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let host = format!("host-{i}");
                s.redeem_deployment_key(&secret, &from(t0, "198.51.100.1", &host))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok((agent, _)) => winners.push(agent.id),
            Err(StoreError::Invalid(msg)) if msg.contains("used up") => refused += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((winners.len(), refused), (3, 7));
    let key = s.deployment_key(org.id, key.id).await.unwrap();
    assert_eq!(key.use_count, 3);
    let mut recorded: Vec<_> = s
        .deployment_key_uses(org.id, key.id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.agent_id)
        .collect();
    recorded.sort();
    winners.sort();
    assert_eq!(recorded, winners);
    assert_eq!(s.agents(org.id).await.unwrap().len(), 3);
}
