//! Agent self-update records: rollouts to all agents, a tag or some
//! agents, per account; automatic updates; one query for a heartbeat.

use crate::fixtures::*;
use vigil_core::update::{Record, State};
use vigil_store::Rollout;
use vigil_testdb::TestDb;

backend_tests!(
    rollouts_mark_the_chosen_agents_of_the_account_only,
    records_and_auto_update_round_trip
);

async fn rollouts_mark_the_chosen_agents_of_the_account_only(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let b = account(s, "B").await;
    let (web, _) = agent(s, &a, "web").await;
    let (office, _) = agent(s, &a, "office").await;
    let (theirs, _) = agent(s, &b, "theirs").await;
    s.set_tags(a.id, office.id, &["lab"]).await.expect("tags");

    assert_eq!(
        s.request_updates(a.id, &Rollout::Tag("LAB".into()), now())
            .await
            .expect("tag"),
        1
    );
    let records = s.agent_updates(a.id).await.expect("records");
    assert!(records[&office.id].requested);
    assert!(!records.contains_key(&web.id));

    // Another account's agent is not found, and nothing changes.
    assert_not_found(
        s.request_updates(a.id, &Rollout::Agents(vec![web.id, theirs.id]), now())
            .await,
    );
    assert!(!s
        .agent_updates(a.id)
        .await
        .expect("records")
        .contains_key(&web.id));
    assert!(s.agent_updates(b.id).await.expect("records").is_empty());

    assert_eq!(
        s.request_updates(a.id, &Rollout::All, now())
            .await
            .expect("all"),
        2
    );
    assert!(s.agent_updates(b.id).await.expect("records").is_empty());
    let (web_record, _) = s.update_status(a.id, web.id).await.expect("status");
    assert!(web_record.requested);
    // B cannot read A's records through its own account.
    let (seen, _) = s.update_status(b.id, web.id).await.expect("status");
    assert_eq!(seen, Record::default());
}

async fn records_and_auto_update_round_trip(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let b = account(s, "B").await;
    let (web, _) = agent(s, &a, "web").await;
    assert_eq!(
        s.update_status(a.id, web.id).await.expect("status"),
        (Record::default(), false)
    );
    let failed = Record {
        requested: true,
        version: Some("0.3.0".into()),
        state: Some(State::Failed),
        detail: Some("the new build did not reach the server within 60 s".into()),
        updated_at: Some(now()),
    };
    s.put_agent_update(a.id, web.id, &failed)
        .await
        .expect("put");
    s.set_auto_update(a.id, true).await.expect("auto");
    assert_eq!(
        s.update_status(a.id, web.id).await.expect("status"),
        (failed.clone(), true)
    );
    assert!(!s.auto_update(b.id).await.expect("b"), "per account");
    // A new rollout forgets the failure (a newer build may work).
    s.request_updates(a.id, &Rollout::Agents(vec![web.id]), now())
        .await
        .expect("rollout");
    let (again, _) = s.update_status(a.id, web.id).await.expect("status");
    assert_eq!(
        (again.requested, again.state, again.detail),
        (true, None, None)
    );
    s.set_auto_update(a.id, false).await.expect("off");
    assert!(!s.auto_update(a.id).await.expect("a"));
}
