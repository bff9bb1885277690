//! Push-install jobs in the database: started within an account's limits,
//! hosts recorded one by one, ended as done or interrupted (at shutdown, or
//! when their server's lease ran out), other accounts see nothing, and
//! finished jobs are pruned by age.

use crate::fixtures::*;
use vigil_store::{
    InstallHost, InstallHostState, InstallJobId, InstallJobLimits, InstallJobState, StoreError,
};
use vigil_testdb::TestDb;

backend_tests!(
    a_job_records_its_hosts_and_ends_done,
    running_jobs_are_capped_and_finished_ones_bounded_per_account,
    a_job_whose_server_died_is_interrupted_with_the_reason,
    finished_jobs_are_pruned_by_age,
);

const LIMITS: InstallJobLimits = InstallJobLimits {
    running_per_account: 2,
    kept_per_account: 3,
};

fn addresses(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| a.to_string()).collect()
}

async fn a_job_records_its_hosts_and_ends_done(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let t = now();
    let job = s
        .start_install_job(
            org.id,
            &addresses(&["198.51.100.7", "2001:db8::1"]),
            t,
            t + 60,
            LIMITS,
        )
        .await
        .unwrap()
        .expect("room");
    assert_eq!(job.state, InstallJobState::Running);
    assert_eq!(job.created_at, t);
    let states: Vec<_> = job
        .hosts
        .iter()
        .map(|h| (h.address.as_str(), h.state))
        .collect();
    assert_eq!(
        states,
        [
            ("198.51.100.7", InstallHostState::Pending),
            ("2001:db8::1", InstallHostState::Pending)
        ]
    );
    let installed = InstallHost {
        address: "198.51.100.7".into(),
        state: InstallHostState::Installed,
        message: Some("started with systemd".into()),
        error: None,
        agent_id: Some("0b4c1d2e".into()),
        finished_at: Some(t + 5),
    };
    s.set_install_host(org.id, job.id, 0, &installed)
        .await
        .unwrap();
    let failed = InstallHost {
        address: "2001:db8::1".into(),
        state: InstallHostState::Failed,
        message: None,
        error: Some("connection refused\u{7}".into()),
        agent_id: None,
        finished_at: Some(t + 6),
    };
    s.set_install_host(org.id, job.id, 1, &failed)
        .await
        .unwrap();
    // Another account's job is not found, for reading and writing alike.
    assert_not_found(s.install_job(other.id, job.id).await);
    assert_not_found(s.set_install_host(other.id, job.id, 0, &installed).await);
    assert_not_found(s.set_install_host(org.id, job.id, 2, &installed).await);
    assert!(!s
        .renew_install_job(other.id, job.id, t + 120)
        .await
        .unwrap());
    assert!(s.renew_install_job(org.id, job.id, t + 120).await.unwrap());
    assert!(s.finish_install_job(org.id, job.id, t + 7).await.unwrap());
    assert!(!s.finish_install_job(org.id, job.id, t + 8).await.unwrap());
    assert!(!s.renew_install_job(org.id, job.id, t + 180).await.unwrap());
    let done = s.install_job(org.id, job.id).await.unwrap();
    assert_eq!(done.state, InstallJobState::Done);
    assert_eq!(done.finished_at, Some(t + 7));
    assert_eq!(done.hosts[0], installed);
    // Control characters are not stored.
    assert_eq!(done.hosts[1].error.as_deref(), Some("connection refused "));
    // A finished job is not interrupted by a late shutdown.
    assert!(!s
        .interrupt_install_job(org.id, job.id, t + 9, "stopped")
        .await
        .unwrap());
    assert_not_found(s.install_job(org.id, InstallJobId::random()).await);
    // Bad input.
    for bad in [addresses(&[]), addresses(&[""]), addresses(&["a\nb"])] {
        assert_invalid(s.start_install_job(org.id, &bad, t, t + 60, LIMITS).await);
    }
    let unknown = vigil_store::AccountId::random();
    assert_not_found(
        s.start_install_job(unknown, &addresses(&["198.51.100.7"]), t, t + 60, LIMITS)
            .await,
    );
}

async fn running_jobs_are_capped_and_finished_ones_bounded_per_account(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let t = now();
    let one = addresses(&["198.51.100.7"]);
    let start = |account, at: i64| {
        let one = one.clone();
        async move {
            s.start_install_job(account, &one, at, at + 60, LIMITS)
                .await
                .unwrap()
        }
    };
    let a = start(org.id, t).await.expect("room");
    let b = start(org.id, t + 1).await.expect("room");
    assert!(start(org.id, t + 2).await.is_none(), "two running at most");
    // Another account is not held back by this one.
    let theirs = start(other.id, t + 2).await.expect("room");
    s.finish_install_job(org.id, a.id, t + 3).await.unwrap();
    let mut finished = vec![a.id];
    // Each new job keeps only the newest kept - 1 finished ones: with it
    // once it ends, the newest `kept`.
    for i in 0..4 {
        let j = start(org.id, t + 10 + i).await.expect("room");
        s.finish_install_job(org.id, j.id, t + 11 + i)
            .await
            .unwrap();
        finished.push(j.id);
    }
    let kept = LIMITS.kept_per_account as usize;
    for (i, id) in finished.iter().enumerate() {
        let found = s.install_job(org.id, *id).await;
        if i + kept < finished.len() {
            assert_not_found(found);
        } else {
            assert_eq!(found.unwrap().state, InstallJobState::Done);
        }
    }
    // Running jobs are never deleted to make room.
    assert_eq!(
        s.install_job(org.id, b.id).await.unwrap().state,
        InstallJobState::Running
    );
    s.install_job(other.id, theirs.id).await.unwrap();
}

async fn a_job_whose_server_died_is_interrupted_with_the_reason(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    let hosts = addresses(&["198.51.100.7", "198.51.100.8", "198.51.100.9"]);
    let job = s
        .start_install_job(org.id, &hosts, t, t + 60, LIMITS)
        .await
        .unwrap()
        .expect("room");
    let mut host = InstallHost {
        address: hosts[0].clone(),
        state: InstallHostState::Installed,
        message: Some("ok".into()),
        error: None,
        agent_id: None,
        finished_at: Some(t + 1),
    };
    s.set_install_host(org.id, job.id, 0, &host).await.unwrap();
    host.address = hosts[1].clone();
    host.state = InstallHostState::Running;
    host.message = None;
    host.finished_at = None;
    s.set_install_host(org.id, job.id, 1, &host).await.unwrap();
    // While its lease holds, nobody takes it for dead.
    assert!(s
        .interrupt_stalled_install_jobs(t + 59, "dead")
        .await
        .unwrap()
        .is_empty());
    let ended = s
        .interrupt_stalled_install_jobs(t + 60, "interrupted: the server died")
        .await
        .unwrap();
    assert_eq!(ended, [(org.id, job.id)]);
    // Once only.
    assert!(s
        .interrupt_stalled_install_jobs(t + 61, "dead")
        .await
        .unwrap()
        .is_empty());
    let after = s.install_job(org.id, job.id).await.unwrap();
    assert_eq!(after.state, InstallJobState::Interrupted);
    assert_eq!(after.finished_at, Some(t + 60));
    let why: Vec<_> = after
        .hosts
        .iter()
        .map(|h| (h.state, h.error.as_deref(), h.finished_at))
        .collect();
    assert_eq!(
        why,
        [
            (InstallHostState::Installed, None, Some(t + 1)),
            (
                InstallHostState::Failed,
                Some("interrupted: the server died"),
                Some(t + 60)
            ),
            (
                InstallHostState::Failed,
                Some("interrupted: the server died"),
                Some(t + 60)
            ),
        ]
    );
    // Its server, back, can neither renew nor finish it.
    assert!(!s.renew_install_job(org.id, job.id, t + 120).await.unwrap());
    assert!(!s.finish_install_job(org.id, job.id, t + 120).await.unwrap());
    // A shutdown ends a running job at once.
    let next = s
        .start_install_job(org.id, &hosts[..1], t, t + 600, LIMITS)
        .await
        .unwrap()
        .expect("room");
    assert!(s
        .interrupt_install_job(org.id, next.id, t + 5, "interrupted: stopped")
        .await
        .unwrap());
    let stopped = s.install_job(org.id, next.id).await.unwrap();
    assert_eq!(stopped.state, InstallJobState::Interrupted);
    assert_eq!(
        stopped.hosts[0].error.as_deref(),
        Some("interrupted: stopped")
    );
}

async fn finished_jobs_are_pruned_by_age(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = now();
    let one = addresses(&["198.51.100.7"]);
    let old = s
        .start_install_job(org.id, &one, t - 40 * 86_400, t + 60, LIMITS)
        .await
        .unwrap()
        .expect("room");
    s.finish_install_job(org.id, old.id, t - 40 * 86_400 + 5)
        .await
        .unwrap();
    // Running for long (its server renews it): never pruned.
    let running = s
        .start_install_job(org.id, &one, t - 40 * 86_400, t + 60, LIMITS)
        .await
        .unwrap()
        .expect("room");
    let recent = s
        .start_install_job(org.id, &one, t, t + 60, LIMITS)
        .await
        .unwrap()
        .expect("room");
    s.finish_install_job(org.id, recent.id, t + 1)
        .await
        .unwrap();
    let cutoff = t - 30 * 86_400;
    assert_eq!(s.prune_install_jobs(cutoff, 1000).await.unwrap(), 1);
    assert_eq!(s.prune_install_jobs(cutoff, 1000).await.unwrap(), 0);
    assert!(matches!(
        s.install_job(org.id, old.id).await,
        Err(StoreError::NotFound)
    ));
    s.install_job(org.id, running.id).await.unwrap();
    s.install_job(org.id, recent.id).await.unwrap();
    assert_invalid(s.prune_install_jobs(cutoff, 0).await);
}
