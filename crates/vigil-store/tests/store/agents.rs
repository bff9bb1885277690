//! Enrollment and agents.

use crate::fixtures::*;
use std::time::Duration;
use vigil_core::{AgentHealth, Plan};
use vigil_store::{
    AgentId, Heartbeat, StoreError, AGENT_CREDENTIAL_PREFIX, ENROLLMENT_TOKEN_PREFIX,
};
use vigil_testdb::TestDb;

backend_tests!(
    enrollment_is_single_use_and_expires,
    concurrent_redeems_have_one_winner,
    agent_lifecycle,
    agents_page_searches_and_pages,
    agents_filter_and_count_by_last_contact,
    stale_health_and_compare_and_set,
);

async fn enrollment_is_single_use_and_expires(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t0 = now();
    let token = s
        .create_enrollment(
            org.id,
            " Office NAS ",
            Plan::Community,
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    assert!(token.starts_with(ENROLLMENT_TOKEN_PREFIX), "{token}");

    let (agent, credential) = s.redeem_enrollment(&token, t0 + 5).await.unwrap();
    assert!(
        credential.starts_with(AGENT_CREDENTIAL_PREFIX),
        "{credential}"
    );
    assert_eq!(agent.account_id, org.id);
    assert_eq!(agent.name, "Office NAS");
    assert_eq!(agent.plan, Plan::Community);
    assert_eq!(agent.enrolled_at, t0 + 5);
    assert_eq!(agent.last_seen_at, None);
    assert_eq!(agent.removed_at, None);
    assert_eq!(agent.last_health, AgentHealth::Communicating);
    assert_eq!(s.agent(org.id, agent.id).await.unwrap(), agent);
    assert_eq!(s.agents(org.id).await.unwrap(), vec![agent.clone()]);

    // Single use.
    let msg = assert_invalid(s.redeem_enrollment(&token, t0 + 6).await);
    assert!(msg.contains("already used"), "{msg}");
    assert_eq!(s.agents(org.id).await.unwrap().len(), 1);

    // Expiry: valid strictly before created + ttl.
    let late = s
        .create_enrollment(org.id, "late", Plan::Extended, Duration::from_secs(600))
        .await
        .unwrap();
    let msg = assert_invalid(s.redeem_enrollment(&late, now() + 601).await);
    assert!(msg.contains("expired"), "{msg}");
    // An expired token stays unused (and still expired) afterwards.
    let msg = assert_invalid(s.redeem_enrollment(&late, now() + 700).await);
    assert!(msg.contains("expired"), "{msg}");

    // Unknown and malformed tokens.
    let unknown = format!("{ENROLLMENT_TOKEN_PREFIX}{}", "A".repeat(43));
    assert_not_found(s.redeem_enrollment(&unknown, t0).await);
    assert_not_found(s.redeem_enrollment("garbage", t0).await);
    assert_not_found(s.redeem_enrollment("", t0).await);

    // The credential authenticates this agent only.
    assert_eq!(
        s.authenticate_agent(agent.id, &credential).await.unwrap(),
        Some(agent.clone())
    );
    assert_eq!(
        s.authenticate_agent(AgentId::random(), &credential)
            .await
            .unwrap(),
        None
    );
    let (other, other_credential) = crate::fixtures::agent(s, &org, "other").await;
    assert_eq!(
        s.authenticate_agent(agent.id, &other_credential)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.authenticate_agent(other.id, &credential).await.unwrap(),
        None
    );
    assert_eq!(s.authenticate_agent(agent.id, "").await.unwrap(), None);
    assert_eq!(s.authenticate_agent(agent.id, &token).await.unwrap(), None);
}

async fn concurrent_redeems_have_one_winner(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let token = s
        .create_enrollment(org.id, "racer", Plan::Extended, Duration::from_secs(600))
        .await
        .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, token, start) = (s.clone(), token.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                s.redeem_enrollment(&token, now()).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut used = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok((agent, _)) => winners.push(agent),
            Err(StoreError::Invalid(msg)) if msg.contains("already used") => used += 1,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one redeem wins");
    assert_eq!(used, 7);
    assert_eq!(s.agents(org.id).await.unwrap(), winners);
}

async fn agent_lifecycle(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, credential) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;

    let t = now();
    s.record_heartbeat(
        org.id,
        a.id,
        &Heartbeat {
            now: t,
            public_addr: Some("203.0.113.7"),
            version: Some("0.1.0"),
            os: Some("Debian GNU/Linux 12"),
            hostname: Some("web-1"),
        },
    )
    .await
    .unwrap();
    let seen = s.agent(org.id, a.id).await.unwrap();
    assert_eq!(seen.last_seen_at, Some(t));
    assert_eq!(seen.public_addr.as_deref(), Some("203.0.113.7"));
    assert_eq!(seen.version.as_deref(), Some("0.1.0"));
    assert_eq!(seen.os.as_deref(), Some("Debian GNU/Linux 12"));
    assert_eq!(seen.hostname.as_deref(), Some("web-1"));
    // Fields not reported are kept.
    s.record_heartbeat(
        org.id,
        a.id,
        &Heartbeat {
            now: t + 60,
            version: Some("0.2.0"),
            ..Heartbeat::default()
        },
    )
    .await
    .unwrap();
    let seen = s.agent(org.id, a.id).await.unwrap();
    assert_eq!(seen.last_seen_at, Some(t + 60));
    assert_eq!(seen.version.as_deref(), Some("0.2.0"));
    assert_eq!(seen.hostname.as_deref(), Some("web-1"));

    assert_eq!(
        s.set_plan(org.id, a.id, Plan::Community)
            .await
            .unwrap()
            .plan,
        Plan::Community
    );
    let sick = s
        .set_health(org.id, a.id, AgentHealth::NotCommunicating)
        .await
        .unwrap();
    assert_eq!(sick.last_health, AgentHealth::NotCommunicating);
    // A heartbeat does not change the recorded health (the sweeper does).
    s.record_heartbeat(
        org.id,
        a.id,
        &Heartbeat {
            now: t + 120,
            ..Heartbeat::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.agent(org.id, a.id).await.unwrap().last_health,
        AgentHealth::NotCommunicating
    );

    let other_org = account(s, "Other").await;
    let (c, _) = agent(s, &other_org, "elsewhere").await;
    let all: Vec<AgentId> = s
        .agents_all_accounts()
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    for id in [a.id, b.id, c.id] {
        assert!(all.contains(&id));
    }

    // Removal.
    let removed = s.remove_agent(org.id, a.id, t + 300).await.unwrap();
    assert_eq!(removed.removed_at, Some(t + 300));
    assert!(removed.is_removed());
    let again = s.remove_agent(org.id, a.id, t + 999).await.unwrap();
    assert_eq!(again.removed_at, Some(t + 300), "first removal time kept");
    assert_eq!(
        s.agent(org.id, a.id).await.unwrap().removed_at,
        Some(t + 300)
    );
    let listed: Vec<AgentId> = s
        .agents(org.id)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, vec![b.id]);
    assert!(!s
        .agents_all_accounts()
        .await
        .unwrap()
        .iter()
        .any(|x| x.id == a.id));
    assert_eq!(s.authenticate_agent(a.id, &credential).await.unwrap(), None);
    assert_not_found(
        s.record_heartbeat(
            org.id,
            a.id,
            &Heartbeat {
                now: t + 400,
                ..Heartbeat::default()
            },
        )
        .await,
    );
    assert_not_found(s.set_plan(org.id, a.id, Plan::Extended).await);
    assert_not_found(s.set_health(org.id, a.id, AgentHealth::Abandoned).await);
    assert_not_found(s.agent(org.id, AgentId::random()).await);
    assert_not_found(s.remove_agent(org.id, AgentId::random(), t).await);
}

/// The console's agent list: case-insensitive search in names and
/// hostnames, `%`/`_` taken literally, pages with the total, tenant-scoped.
async fn agents_page_searches_and_pages(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    for name in ["web-1", "Web-2", "db_1", "db%2", "mail"] {
        agent(s, &org, name).await;
    }
    agent(s, &other, "web-3").await;
    let names = |page: &(Vec<vigil_store::Agent>, u64)| {
        page.0.iter().map(|a| a.name.clone()).collect::<Vec<_>>()
    };

    let all = s.agents_page(org.id, "", 0, 2).await.unwrap();
    assert_eq!(all.1, 5);
    assert_eq!(names(&all).len(), 2);
    let last = s.agents_page(org.id, " ", 4, 2).await.unwrap();
    assert_eq!((names(&last).len(), last.1), (1, 5));
    assert!(s.agents_page(org.id, "", 10, 2).await.unwrap().0.is_empty());

    let web = s.agents_page(org.id, "WEB", 0, 50).await.unwrap();
    let mut found = names(&web);
    found.sort();
    assert_eq!(
        (found, web.1),
        (vec!["Web-2".to_string(), "web-1".into()], 2)
    );
    assert_eq!(
        names(&s.agents_page(org.id, "db_", 0, 50).await.unwrap()),
        ["db_1"]
    );
    assert_eq!(
        names(&s.agents_page(org.id, "%", 0, 50).await.unwrap()),
        ["db%2"]
    );
    assert_eq!(s.agents_page(org.id, "nothing", 0, 50).await.unwrap().1, 0);
    assert_invalid(s.agents_page(org.id, "", 0, 0).await);
}

/// Health filters of the console: agents whose last contact (or, never
/// seen, enrollment) falls in given ranges, combined with the search, and
/// counted per range without loading the agents.
async fn agents_filter_and_count_by_last_contact(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    // Enrolled now and never seen: counts from enrollment.
    agent(s, &org, "fresh").await;
    for (name, seen) in [
        ("web-old", t - 1000),
        ("web-recent", t - 10),
        ("db", t - 500),
    ] {
        let (a, _) = agent(s, &org, name).await;
        let hb = Heartbeat {
            now: seen,
            ..Default::default()
        };
        s.record_heartbeat(org.id, a.id, &hb).await.unwrap();
    }
    let query =
        |search: &str, contact: Option<Vec<vigil_store::ContactRange>>| vigil_store::AgentQuery {
            search: search.into(),
            contact,
            tag: None,
        };
    let names = |page: (Vec<vigil_store::Agent>, u64)| {
        let mut n: Vec<String> = page.0.into_iter().map(|a| a.name).collect();
        n.sort();
        (n, page.1)
    };
    let recent = (Some((t - 100) as u64), None);
    let old = (None, Some((t - 600) as u64));
    type Case<'a> = (
        &'a str,
        Option<Vec<vigil_store::ContactRange>>,
        &'a [&'a str],
    );
    let cases: &[Case] = &[
        ("", None, &["db", "fresh", "web-old", "web-recent"]),
        ("", Some(vec![recent]), &["fresh", "web-recent"]),
        ("", Some(vec![old]), &["web-old"]),
        (
            "",
            Some(vec![recent, old]),
            &["fresh", "web-old", "web-recent"],
        ),
        ("web", Some(vec![recent, old]), &["web-old", "web-recent"]),
        (
            "",
            Some(vec![(Some((t - 600) as u64), Some((t - 400) as u64))]),
            &["db"],
        ),
        ("", Some(vec![]), &[]),
    ];
    for (search, contact, want) in cases {
        let got = names(
            s.agents_query(org.id, &query(search, contact.clone()), 0, 50)
                .await
                .unwrap(),
        );
        let want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got,
            (want.clone(), want.len() as u64),
            "{search:?} {contact:?}"
        );
    }
    let counts = s
        .agent_contact_counts(Some(org.id), &[recent, old, (None, None)])
        .await
        .unwrap();
    assert_eq!(counts, [2, 1, 4]);
    let other = account(s, "Other").await;
    assert_eq!(
        s.agent_contact_counts(Some(other.id), &[(None, None)])
            .await
            .unwrap(),
        [0]
    );
}

/// The liveness sweeper's queries: agents whose stored health disagrees
/// with their last contact, and a health change that only one of several
/// concurrent replicas wins.
async fn stale_health_and_compare_and_set(db: &TestDb) {
    use AgentHealth::*;
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    let mut ids = Vec::new();
    for (name, seen) in [("fresh", t), ("quiet", t - 1000), ("gone", t - 100_000)] {
        let (a, _) = agent(s, &org, name).await;
        let hb = Heartbeat {
            now: seen,
            ..Default::default()
        };
        s.record_heartbeat(org.id, a.id, &hb).await.unwrap();
        ids.push(a.id);
    }
    // Communicating: contact within 100 s; abandoned: older than 10,000 s.
    let ranges = |t: i64| {
        let t = t as u64;
        vec![
            (Communicating, Some((Some(t - 100), None))),
            (NotCommunicating, Some((Some(t - 10_000), Some(t - 101)))),
            (Abandoned, Some((None, Some(t - 10_001)))),
        ]
    };
    let names = |agents: Vec<vigil_store::Agent>| {
        let mut n: Vec<String> = agents.into_iter().map(|a| a.name).collect();
        n.sort();
        n
    };
    // Every agent starts as communicating: two are stale.
    let stale = s.agents_with_stale_health(&ranges(t), 50).await.unwrap();
    assert_eq!(names(stale), ["gone", "quiet"]);
    assert_eq!(
        s.agents_with_stale_health(&ranges(t), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // Eight replicas race for the same change: exactly one wins.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (s, org, quiet) = (s.clone(), org.id, ids[1]);
        racers.spawn(async move {
            s.change_health(org, quiet, Communicating, NotCommunicating)
                .await
                .unwrap()
                .is_some()
        });
    }
    let mut winners = 0;
    while let Some(won) = racers.join_next().await {
        winners += usize::from(won.unwrap());
    }
    assert_eq!(winners, 1);
    let quiet = s.agent(org.id, ids[1]).await.unwrap();
    assert_eq!(quiet.last_health, NotCommunicating);
    // A stale expectation changes nothing.
    assert!(s
        .change_health(org.id, ids[1], Communicating, Abandoned)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.agent(org.id, ids[1]).await.unwrap().last_health,
        NotCommunicating
    );
    let stale = s.agents_with_stale_health(&ranges(t), 50).await.unwrap();
    assert_eq!(names(stale), ["gone"]);
    s.change_health(org.id, ids[2], Communicating, Abandoned)
        .await
        .unwrap()
        .expect("wins");
    assert!(s
        .agents_with_stale_health(&ranges(t), 50)
        .await
        .unwrap()
        .is_empty());
    // A health no time stands for: every agent stored with it is stale.
    let never = vec![(Abandoned, None)];
    assert_eq!(
        names(s.agents_with_stale_health(&never, 50).await.unwrap()),
        ["gone"]
    );
    assert_not_found(
        s.change_health(org.id, AgentId::random(), Communicating, Abandoned)
            .await,
    );
}
