//! Moving agents: trusted peers on the destination, move instructions on
//! the source.

use crate::fixtures::*;
use vigil_core::compliance::{Endpoint, EndpointStatus};
use vigil_store::{AssessmentTrigger, Keyring, MoveOrder, NewPeer, PeerId, Store, StoreError};
use vigil_testdb::TestDb;

backend_tests!(
    peers_round_trip_and_tenancy,
    managed_elsewhere_finds_the_agents_server,
    move_instruction_lifecycle,
    secrets_are_sealed_at_rest_and_keys_rotate,
);

/// Peer tokens and the AD bind password are sealed with the key outside
/// the database: a store without the key cannot read them, one with the
/// old key after the new one can, and resealing moves them to the new key.
async fn secrets_are_sealed_at_rest_and_keys_rotate(db: &TestDb) {
    use vigil_core::compliance::{AdBind, AdScope, ComplianceScope, Dn};
    let s = &db.store;
    let old = Keyring::generate_line().unwrap();
    s.use_keyring(Keyring::parse(&old).unwrap()).unwrap();
    let org = account(s, "Acme").await;
    s.create_peer(org.id, &new_peer("A", "srv-a"))
        .await
        .unwrap();
    let scope = ComplianceScope {
        ad: Some(AdScope {
            url: "ldaps://dc1.example.test".into(),
            start_tls: false,
            bind: AdBind::Simple {
                bind_dn: "svc@example.test".into(),
            },
            base_dns: vec![Dn::parse("DC=example,DC=test").unwrap()],
            filter: None,
            ca_cert: None,
            tls_pin: None,
        }),
        ..ComplianceScope::default()
    };
    s.put_compliance_scope(org.id, &scope, Some("P-ssw0rd"))
        .await
        .unwrap();
    assert_eq!(
        s.peers(org.id).await.unwrap()[0].api_token,
        "vgl_peer-token"
    );
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("P-ssw0rd")
    );

    // The database alone does not give them away.
    let keyless = Store::connect(&db.url).await.unwrap();
    let err = keyless.peers(org.id).await.unwrap_err().to_string();
    assert!(err.contains("no secrets key"), "{err}");
    assert!(keyless.compliance_ad_password(org.id).await.is_err());

    // Rotation: a new key first, the old one after it.
    let new = Keyring::generate_line().unwrap();
    let rotated = Store::connect(&db.url).await.unwrap();
    rotated
        .use_keyring(Keyring::parse(&format!("{new}\n{old}\n")).unwrap())
        .unwrap();
    assert_eq!(
        rotated.peers(org.id).await.unwrap()[0].api_token,
        "vgl_peer-token"
    );
    assert_eq!(rotated.reseal_secrets().await.unwrap(), 2);
    assert_eq!(rotated.reseal_secrets().await.unwrap(), 0, "all current");
    let new_only = Store::connect(&db.url).await.unwrap();
    new_only.use_keyring(Keyring::parse(&new).unwrap()).unwrap();
    assert_eq!(
        new_only.peers(org.id).await.unwrap()[0].api_token,
        "vgl_peer-token"
    );
    assert_eq!(
        new_only
            .compliance_ad_password(org.id)
            .await
            .unwrap()
            .as_deref(),
        Some("P-ssw0rd")
    );
    // The old key alone no longer opens them.
    let old_only = Store::connect(&db.url).await.unwrap();
    old_only.use_keyring(Keyring::parse(&old).unwrap()).unwrap();
    assert!(old_only.peers(org.id).await.is_err());
}

fn new_peer<'a>(name: &'a str, server_id: &'a str) -> NewPeer<'a> {
    NewPeer {
        name,
        api_url: "http://127.0.0.1:18080/",
        api_token: "vgl_peer-token",
        server_id,
    }
}

async fn peers_round_trip_and_tenancy(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    assert!(s.peers(org.id).await.unwrap().is_empty());

    let p = s
        .create_peer(org.id, &new_peer("A", "srv-a"))
        .await
        .unwrap();
    assert_eq!(
        p.api_url, "http://127.0.0.1:18080",
        "trailing slash dropped"
    );
    assert_eq!(p.api_token, "vgl_peer-token");
    assert!(
        !format!("{p:?}").contains("vgl_peer-token"),
        "Debug hides the token"
    );
    assert_eq!(s.peers(org.id).await.unwrap(), vec![p.clone()]);
    assert_eq!(
        s.peer_by_server(org.id, "srv-a").await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(s.peer_by_server(org.id, "srv-b").await.unwrap(), None);

    // One peer per server ID and account; another account may trust it too.
    assert!(matches!(
        s.create_peer(org.id, &new_peer("A again", "srv-a")).await,
        Err(StoreError::Conflict)
    ));
    s.create_peer(other.id, &new_peer("A", "srv-a"))
        .await
        .unwrap();
    assert_eq!(
        s.peer_by_server(other.id, "srv-a")
            .await
            .unwrap()
            .unwrap()
            .account_id,
        other.id
    );

    // Bad input is refused before SQL.
    for bad in [
        NewPeer {
            api_url: "ftp://x",
            ..new_peer("x", "s1")
        },
        NewPeer {
            api_token: "",
            ..new_peer("x", "s2")
        },
        NewPeer {
            api_token: "has space",
            ..new_peer("x", "s3")
        },
        NewPeer {
            server_id: "",
            ..new_peer("x", "s4")
        },
        new_peer("", "s5"),
    ] {
        assert_invalid(s.create_peer(org.id, &bad).await);
    }

    // Deleting is tenant-scoped.
    assert_not_found(s.delete_peer(other.id, p.id).await);
    assert_not_found(s.delete_peer(org.id, PeerId::random()).await);
    s.delete_peer(org.id, p.id).await.unwrap();
    assert!(s.peers(org.id).await.unwrap().is_empty());
    assert_eq!(s.peers(other.id).await.unwrap().len(), 1);
}

async fn managed_elsewhere_finds_the_agents_server(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let a = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 3, now())
        .await
        .unwrap();
    let mut theirs = Endpoint::new("web1", EndpointStatus::ManagedElsewhere);
    theirs.agent_id = Some("agent-1".into());
    theirs.server_id = Some("srv-a".into());
    let mut ours = Endpoint::new("web2", EndpointStatus::ManagedHere);
    ours.agent_id = Some("agent-2".into());
    ours.server_id = Some("srv-b".into());
    assert!(s.put_endpoints(org.id, a, &[theirs, ours]).await.unwrap());

    assert_eq!(
        s.managed_elsewhere(org.id, a, "agent-1").await.unwrap(),
        Some(("web1".to_string(), "srv-a".to_string()))
    );
    // Managed here, unknown, or another tenant's: nothing.
    assert_eq!(
        s.managed_elsewhere(org.id, a, "agent-2").await.unwrap(),
        None
    );
    assert_eq!(
        s.managed_elsewhere(org.id, a, "agent-9").await.unwrap(),
        None
    );
    assert_eq!(
        s.managed_elsewhere(other.id, a, "agent-1").await.unwrap(),
        None
    );
    assert_invalid(s.managed_elsewhere(org.id, a, "").await);
}

async fn move_instruction_lifecycle(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (web1, _) = agent(s, &org, "web1").await;
    let t = now();
    let order = |token: &'static str| MoveOrder {
        server_url: "https://198.18.0.1:9443/",
        pin: "sha256:00",
        enrollment_token: token,
        expires_at: t + 3600,
    };
    assert_eq!(s.agent_move(org.id, web1.id).await.unwrap(), None);
    assert_eq!(
        s.pending_agent_move(org.id, web1.id, t).await.unwrap(),
        None
    );

    let m = s
        .request_agent_move(org.id, web1.id, &order("vge_one"))
        .await
        .unwrap();
    assert_eq!(m.server_url, "https://198.18.0.1:9443");
    assert!(m.is_pending(t));
    assert!(
        !format!("{m:?}").contains("vge_one"),
        "Debug hides the token"
    );
    // A later request replaces the earlier one.
    s.request_agent_move(org.id, web1.id, &order("vge_two"))
        .await
        .unwrap();
    let pending = s
        .pending_agent_move(org.id, web1.id, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.enrollment_token, "vge_two");
    // Expired instructions are not handed out.
    assert_eq!(
        s.pending_agent_move(org.id, web1.id, t + 3600)
            .await
            .unwrap(),
        None
    );

    // Tenancy and bad input.
    assert_not_found(
        s.request_agent_move(other.id, web1.id, &order("vge_x"))
            .await,
    );
    assert_eq!(s.agent_move(other.id, web1.id).await.unwrap(), None);
    assert_invalid(
        s.request_agent_move(
            org.id,
            web1.id,
            &MoveOrder {
                server_url: "nope",
                ..order("vge_x")
            },
        )
        .await,
    );
    assert_invalid(
        s.request_agent_move(
            org.id,
            web1.id,
            &MoveOrder {
                expires_at: t - 1,
                ..order("vge_x")
            },
        )
        .await,
    );
    assert_not_found(s.complete_agent_move(other.id, web1.id, "srv-b", t).await);

    // The agent reports it moved: the instruction is done, its token gone,
    // the agent removed (so it no longer authenticates).
    let removed = s
        .complete_agent_move(org.id, web1.id, "srv-b", t + 5)
        .await
        .unwrap();
    assert_eq!(removed.removed_at, Some(t + 5));
    let done = s.agent_move(org.id, web1.id).await.unwrap().unwrap();
    assert_eq!(done.moved_at, Some(t + 5));
    assert_eq!(done.moved_to.as_deref(), Some("srv-b"));
    assert_eq!(done.enrollment_token, "");
    assert!(!done.is_pending(t));
    // A removed agent cannot be told to move again.
    assert_invalid(
        s.request_agent_move(org.id, web1.id, &order("vge_three"))
            .await,
    );

    // An agent never told to move cannot claim it moved.
    let (stay, _) = agent(s, &org, "web2").await;
    assert_not_found(s.complete_agent_move(org.id, stay.id, "srv-b", t).await);
    assert!(s.agent(org.id, stay.id).await.unwrap().removed_at.is_none());
}
