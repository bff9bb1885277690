//! Row leases: due policies and server-side scan tasks are claimed by one
//! of several concurrent claimers (server replicas), and claimable again
//! when a claimer's lease runs out.

use crate::fixtures::*;
use std::collections::HashSet;
use std::time::Duration;
use vigil_core::compliance::ComplianceSchedule;
use vigil_store::{AgentId, AssessmentState, AssessmentTrigger, Store, StoreError, TaskClaim};
use vigil_testdb::TestDb;

backend_tests!(
    due_policies_are_claimed_once_until_the_lease_ends,
    a_run_gets_one_task_per_target,
    concurrent_claims_split_the_work,
    server_tasks_are_claimed_renewed_and_released,
    a_due_compliance_run_is_claimed_once,
    stalled_assessments_are_reclaimed_once,
    target_state_writes_are_versioned,
);

const LEASE: Duration = Duration::from_secs(60);

async fn due_policies_are_claimed_once_until_the_lease_ends(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    let (a, _) = agent(s, &org, "web").await;
    let (b, _) = agent(s, &org, "db").await;
    let (gone, _) = agent(s, &org, "gone").await;
    for id in [a.id, b.id, gone.id] {
        s.put_policy(org.id, id, &policy()).await.unwrap();
    }
    s.remove_agent(org.id, gone.id, t).await.unwrap();
    s.set_next_run(org.id, b.id, t + 3600).await.unwrap();

    let claimed = s.claim_due_policies(t, 10, LEASE).await.unwrap();
    let ids: Vec<AgentId> = claimed.iter().map(|d| d.agent.id).collect();
    assert_eq!(ids, [a.id], "due, not removed, not scheduled later");
    assert_eq!(claimed[0].policy, policy());
    let run = claimed[0].run.clone();
    // Claimed: not due again until the lease ends.
    assert!(s
        .claim_due_policies(t + 59, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    // The claimer died: after the lease it is due again, for the same run.
    let again = s.claim_due_policies(t + 60, 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].run, run);
    // The claimer finished: its next run is the real one.
    s.set_next_run(org.id, a.id, t + 3600).await.unwrap();
    assert!(s
        .claim_due_policies(t + 600, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let both = s.claim_due_policies(t + 3600, 10, LEASE).await.unwrap();
    assert_eq!(both.len(), 2);
    assert_invalid(s.claim_due_policies(t, 0, LEASE).await);
}

/// A replica that created a run's task and died before rescheduling: the
/// replica that claims the policy after the lease gets the same run, and
/// creating its task again is refused, even after the first one completed.
/// Rescheduling starts a new run, even within the same second ("scan now"
/// right after a scan).
async fn a_run_gets_one_task_per_target(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    let (a, _) = agent(s, &org, "web").await;
    s.put_policy(org.id, a.id, &policy()).await.unwrap();
    s.set_next_run(org.id, a.id, t).await.unwrap();
    let run = s.claim_due_policies(t + 5, 10, LEASE).await.unwrap()[0]
        .run
        .clone();
    let key = "observed_address";
    let task = |at: i64, key: &'static str, run: Option<String>| {
        let s = s.clone();
        async move {
            s.create_task(
                org.id,
                a.id,
                key,
                "203.0.113.7",
                "80",
                at,
                at + 600,
                run.as_deref(),
            )
            .await
        }
    };
    let first = task(t + 5, key, Some(run.clone())).await.unwrap();
    s.complete_task(org.id, a.id, first.id, t + 6)
        .await
        .unwrap();
    // The claimer died; another one claims the same run after the lease.
    let again = s.claim_due_policies(t + 70, 10, LEASE).await.unwrap();
    assert_eq!(again[0].run, run);
    assert!(matches!(
        task(t + 70, key, Some(run.clone())).await,
        Err(StoreError::Conflict)
    ));
    // Another target of the run and unscheduled tasks are fine.
    task(t + 70, "agent_host", Some(run.clone())).await.unwrap();
    for _ in 0..2 {
        task(t + 70, key, None).await.unwrap();
    }
    // Rescheduling ends the claim: due again at the next run, not before,
    // and that is a new run.
    s.set_next_run(org.id, a.id, t + 3600).await.unwrap();
    assert!(s
        .claim_due_policies(t + 200, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let next = s.claim_due_policies(t + 3600, 10, LEASE).await.unwrap()[0]
        .run
        .clone();
    assert_ne!(next, run);
    task(t + 3600, key, Some(next.clone())).await.unwrap();
    // Scanned again within the same second: yet another run.
    s.set_next_run(org.id, a.id, t + 3600).await.unwrap();
    let now_again = s.claim_due_policies(t + 3600, 10, LEASE).await.unwrap()[0]
        .run
        .clone();
    assert!(now_again != next && now_again != run);
    task(t + 3600, key, Some(now_again)).await.unwrap();
    // A changed policy is due at once, as a new run.
    s.set_next_run(org.id, a.id, t + 7200).await.unwrap();
    s.put_policy(org.id, a.id, &policy()).await.unwrap();
    let changed = s.claim_due_policies(t + 3601, 10, LEASE).await.unwrap();
    assert_eq!(changed.len(), 1);
    task(t + 3601, key, Some(changed[0].run.clone()))
        .await
        .unwrap();
}

/// Eight claimers (half on their own connections, as other replicas would
/// be) claim 40 due policies in batches of 3: every policy is claimed
/// exactly once.
async fn concurrent_claims_split_the_work(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    let mut all = HashSet::new();
    for i in 0..40 {
        let (a, _) = agent(s, &org, &format!("agent-{i:02}")).await;
        s.put_policy(org.id, a.id, &policy()).await.unwrap();
        all.insert(a.id);
    }
    let mut stores: Vec<Store> = vec![s.clone(); 4];
    for _ in 0..4 {
        stores.push(db.reconnect().await);
    }
    let mut claimers = tokio::task::JoinSet::new();
    for store in stores {
        claimers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due_policies(t, 3, LEASE).await.unwrap();
                assert!(batch.len() <= 3, "claimed {} of 3", batch.len());
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|d| d.agent.id));
            }
        });
    }
    let mut claimed = Vec::new();
    while let Some(mine) = claimers.join_next().await {
        claimed.extend(mine.unwrap());
    }
    assert_eq!(claimed.len(), all.len(), "each once");
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), all);
}

async fn server_tasks_are_claimed_renewed_and_released(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let t = now();
    let key = "observed_address";
    let task = s
        .create_task(
            org.id,
            a.id,
            key,
            "203.0.113.7",
            "1-1024",
            t,
            t + 3600,
            None,
        )
        .await
        .unwrap();
    // The agent's own tasks are not the server's.
    s.create_task(
        org.id,
        a.id,
        "agent_host",
        "127.0.0.1",
        "22",
        t,
        t + 3600,
        None,
    )
    .await
    .unwrap();

    let mut claims = s.claim_server_tasks(key, t, 10, LEASE).await.unwrap();
    assert_eq!(claims.len(), 1);
    let mut claim: TaskClaim = claims.remove(0);
    assert_eq!((claim.task.id, claim.agent.id), (task.id, a.id));
    assert_eq!(claim.claimed_until, t + 60);
    assert!(s
        .claim_server_tasks(key, t + 30, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    // Renewed while the scan runs: still ours past the first lease.
    assert!(s
        .extend_task_claim(&mut claim, t + 50, LEASE)
        .await
        .unwrap());
    assert_eq!(claim.claimed_until, t + 110);
    assert!(s
        .claim_server_tasks(key, t + 100, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    // This claimer stalls past its lease; another one takes the task over.
    let mut taken = s.claim_server_tasks(key, t + 110, 10, LEASE).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        !s.extend_task_claim(&mut claim, t + 111, LEASE)
            .await
            .unwrap(),
        "the stalled claimer learns it lost the task"
    );
    // Completed: nobody claims it again.
    assert!(s
        .complete_task(org.id, a.id, task.id, t + 120)
        .await
        .unwrap());
    assert!(!s
        .extend_task_claim(&mut taken[0], t + 121, LEASE)
        .await
        .unwrap());
    assert!(s
        .claim_server_tasks(key, t + 1000, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    // Expired tasks are not claimed; a removed agent's are skipped.
    s.create_task(org.id, a.id, key, "203.0.113.8", "80", t, t + 100, None)
        .await
        .unwrap();
    assert!(s
        .claim_server_tasks(key, t + 100, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
    let (b, _) = agent(s, &org, "gone").await;
    s.create_task(org.id, b.id, key, "203.0.113.9", "80", t, t + 3600, None)
        .await
        .unwrap();
    s.remove_agent(org.id, b.id, t).await.unwrap();
    assert!(s
        .claim_server_tasks(key, t + 200, 10, LEASE)
        .await
        .unwrap()
        .is_empty());
}

async fn a_due_compliance_run_is_claimed_once(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = 1_800_000_000; // a round hour: runs every hour from here
    let hourly = ComplianceSchedule {
        enabled: true,
        every_minutes: Some(60),
        ..ComplianceSchedule::default()
    };
    s.put_compliance_schedule(org.id, &hourly, t).await.unwrap();
    let due = s.compliance_next_run(org.id).await.unwrap().unwrap();
    assert!(
        !s.claim_compliance_run(org.id, due - 1, Some(due + 3600))
            .await
            .unwrap(),
        "not due yet"
    );
    // Several replicas see it due at once: one wins.
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (s, org) = (db.reconnect().await, org.id);
        racers.spawn(async move {
            s.claim_compliance_run(org, due, Some(due + 3600))
                .await
                .unwrap()
        });
    }
    let mut winners = 0;
    while let Some(won) = racers.join_next().await {
        winners += usize::from(won.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(
        s.compliance_next_run(org.id).await.unwrap(),
        Some(due + 3600)
    );
    assert!(!s
        .claim_compliance_run(org.id, due + 10, None)
        .await
        .unwrap());
    assert!(!s
        .claim_compliance_run(account(s, "Other").await.id, due, None)
        .await
        .unwrap());
}

async fn stalled_assessments_are_reclaimed_once(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let t = now();
    let grace = Duration::from_secs(60);
    let held = s
        .start_assessment(org.id, true, AssessmentTrigger::Schedule, 10, t)
        .await
        .unwrap();
    let never_renewed = s
        .start_assessment(other.id, true, AssessmentTrigger::Manual, 10, t)
        .await
        .unwrap();
    assert!(s
        .renew_assessment_lease(org.id, held, t + 100)
        .await
        .unwrap());
    // Before any lease ends: nothing to reclaim.
    assert!(s
        .reclaim_stalled_assessments(t + 59, grace, "x")
        .await
        .unwrap()
        .is_empty());
    // The never-renewed one counts from its start; two replicas look at once.
    let (a, b) = tokio::join!(
        s.reclaim_stalled_assessments(t + 60, grace, "interrupted"),
        db.store
            .reclaim_stalled_assessments(t + 60, grace, "interrupted"),
    );
    let reclaimed: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    assert_eq!(reclaimed.len(), 1, "{reclaimed:?}");
    assert_eq!(reclaimed[0].id, never_renewed);
    assert_eq!(reclaimed[0].trigger, AssessmentTrigger::Manual);
    let ended = s.assessment(other.id, never_renewed).await.unwrap();
    assert_eq!(ended.state, AssessmentState::Failed);
    assert_eq!(ended.error.as_deref(), Some("interrupted"));
    // Its runner learns it lost it.
    assert!(!s
        .renew_assessment_lease(other.id, never_renewed, t + 200)
        .await
        .unwrap());
    // The renewed one goes when its lease does.
    assert!(s
        .reclaim_stalled_assessments(t + 99, grace, "x")
        .await
        .unwrap()
        .is_empty());
    let late = s
        .reclaim_stalled_assessments(t + 100, grace, "x")
        .await
        .unwrap();
    assert_eq!(late.iter().map(|a| a.id).collect::<Vec<_>>(), [held]);
    assert_not_found(
        s.renew_assessment_lease(org.id, vigil_store::AssessmentId::random(), t)
            .await,
    );
}

/// Two replicas evaluating one target: the second write, based on a state
/// the first one replaced, is refused.
async fn target_state_writes_are_versioned(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let (a, _) = agent(s, &org, "web").await;
    let target = "agent_host";
    let (empty, v0) = s
        .target_state_versioned(org.id, a.id, target)
        .await
        .unwrap();
    assert_eq!((empty, v0), (Default::default(), 0));
    let mut first = vigil_core::TargetState::default();
    first.retain_ports(&vigil_core::PortList::parse("22").unwrap());
    let changed = s.target_state(org.id, a.id, target).await.unwrap();
    assert_eq!(changed, Default::default());
    // Both read version 0; one first write wins.
    assert!(s
        .put_target_state_if(org.id, a.id, target, &first, 0)
        .await
        .unwrap());
    assert!(!s
        .put_target_state_if(org.id, a.id, target, &first, 0)
        .await
        .unwrap());
    let (_, v1) = s
        .target_state_versioned(org.id, a.id, target)
        .await
        .unwrap();
    assert_eq!(v1, 1);
    assert!(s
        .put_target_state_if(org.id, a.id, target, &first, v1)
        .await
        .unwrap());
    assert!(
        !s.put_target_state_if(org.id, a.id, target, &first, v1)
            .await
            .unwrap(),
        "stale"
    );
    assert_eq!(
        s.target_state_versioned(org.id, a.id, target)
            .await
            .unwrap()
            .1,
        2
    );
    // The unconditional write bumps nothing it should not: still readable.
    s.put_target_state(org.id, a.id, target, &first)
        .await
        .unwrap();
    let other = account(s, "Other").await;
    assert_not_found(s.target_state_versioned(other.id, a.id, target).await);
    assert!(!s
        .put_target_state_if(other.id, a.id, target, &first, 0)
        .await
        .unwrap());
}
