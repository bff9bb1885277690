//! Compliance: scope and schedule, assessments and their endpoints.

use crate::fixtures::*;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;
use vigil_core::compliance::{
    AdBind, AdScope, AdvancedQuery, ComplianceSchedule, ComplianceScope, Dn, Endpoint,
    EndpointStatus, IdentifyCheck, IpRange, IpScope, NamePattern, NameSource, OsPattern,
    StatusCounts,
};
use vigil_store::{endpoint_key, AssessmentId, AssessmentState, AssessmentTrigger, Store};
use vigil_testdb::TestDb;
use EndpointStatus::*;

backend_tests!(
    scope_round_trip_and_password,
    password_not_kept_when_the_ad_connection_changes,
    schedule_round_trip_and_due,
    start_cancels_the_running_assessment,
    concurrent_starts_leave_one_running,
    finish_only_from_running_and_progress,
    endpoints_only_while_running_and_numbered_on,
    bulk_endpoints_counts_and_search,
    search_details,
    previous_statuses_by_key,
    compliance_is_tenant_scoped,
    prune_keeps_the_newest_finished,
    identify_keys_are_the_accounts_agents_digests,
    name_sources_no_hosts_and_addresses_seen,
);

fn scope_with_ad(bind: AdBind) -> ComplianceScope {
    ComplianceScope {
        ad: Some(AdScope {
            url: "ldaps://dc1.example.test".into(),
            start_tls: false,
            bind,
            base_dns: vec![Dn::parse("OU=Computers,DC=example,DC=test").unwrap()],
            filter: None,
            ca_cert: None,
            tls_pin: None,
        }),
        ip: IpScope {
            enabled: true,
            ranges: vec![IpRange::parse("198.51.100.0/24").unwrap()],
        },
        ..ComplianceScope::default()
    }
}

fn simple_bind() -> AdBind {
    AdBind::Simple {
        bind_dn: "svc-vigil@example.test".into(),
    }
}

async fn scope_round_trip_and_password(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    assert_eq!(s.compliance_scope(org.id).await.unwrap(), None);
    assert_eq!(s.compliance_ad_password(org.id).await.unwrap(), None);

    let scope = scope_with_ad(simple_bind());
    s.put_compliance_scope(org.id, &scope, Some("s3cret pass"))
        .await
        .unwrap();
    assert_eq!(
        s.compliance_scope(org.id).await.unwrap(),
        Some((scope.clone(), true))
    );
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("s3cret pass")
    );

    // None keeps the password while the scope changes.
    let mut changed = scope.clone();
    changed.unreachable_port = None;
    changed.on_demand = false;
    s.put_compliance_scope(org.id, &changed, None)
        .await
        .unwrap();
    assert_eq!(
        s.compliance_scope(org.id).await.unwrap(),
        Some((changed.clone(), true))
    );
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("s3cret pass")
    );
    s.put_compliance_scope(org.id, &changed, Some("new one"))
        .await
        .unwrap();
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("new one")
    );

    // A rejected scope changes nothing and says why.
    let mut bad = scope.clone();
    bad.ip.ranges.clear();
    let msg = assert_invalid(s.put_compliance_scope(org.id, &bad, None).await);
    assert!(msg.contains("lists no ranges"), "{msg}");
    let mut cleartext = scope_with_ad(simple_bind());
    if let Some(ad) = &mut cleartext.ad {
        ad.url = "ldap://dc1.example.test".into();
    }
    let msg = assert_invalid(s.put_compliance_scope(org.id, &cleartext, None).await);
    assert!(msg.contains("unencrypted"), "{msg}");
    assert_invalid(s.put_compliance_scope(org.id, &scope, Some("")).await);
    assert_invalid(s.put_compliance_scope(org.id, &scope, Some("a\0b")).await);
    assert_eq!(
        s.compliance_scope(org.id).await.unwrap(),
        Some((changed, true))
    );

    // Without a simple bind there is no password to keep.
    let gssapi = scope_with_ad(AdBind::Gssapi);
    assert_invalid(s.put_compliance_scope(org.id, &gssapi, Some("pw")).await);
    s.put_compliance_scope(org.id, &gssapi, None).await.unwrap();
    assert_eq!(
        s.compliance_scope(org.id).await.unwrap(),
        Some((gssapi, false))
    );
    assert_eq!(s.compliance_ad_password(org.id).await.unwrap(), None);

    // A scope without targets is valid (the feature is off).
    s.put_compliance_scope(org.id, &ComplianceScope::default(), None)
        .await
        .unwrap();
    let (stored, has_password) = s.compliance_scope(org.id).await.unwrap().unwrap();
    assert!(!stored.has_targets());
    assert!(!has_password);

    // An account that does not exist.
    assert_not_found(
        s.put_compliance_scope(vigil_store::AccountId::random(), &scope, None)
            .await,
    );
}

/// A stored bind password is kept only for the connection it was entered
/// for: an update changing the URL, the bind or the CA certificate must carry
/// it again, else it is refused and nothing changes.
async fn password_not_kept_when_the_ad_connection_changes(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let a = scope_with_ad(simple_bind());
    s.put_compliance_scope(org.id, &a, Some("P-password"))
        .await
        .unwrap();
    let edit = |f: &dyn Fn(&mut AdScope)| {
        let mut scope = a.clone();
        f(scope.ad.as_mut().unwrap());
        scope
    };
    let b = edit(&|ad| ad.url = "ldaps://attacker.example.test:1636".into());

    let msg = assert_invalid(s.put_compliance_scope(org.id, &b, None).await);
    assert_eq!(
        msg,
        "the AD connection changed (url): enter the bind password again"
    );
    // Unchanged: the password is still stored, and tied to URL A.
    assert_eq!(
        s.compliance_scope(org.id).await.unwrap(),
        Some((a.clone(), true))
    );
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("P-password")
    );

    // The bind DN, the bind method's DN and the CA certificate count too.
    for (changed, field) in [
        (
            edit(&|ad| {
                ad.bind = AdBind::Simple {
                    bind_dn: "admin@example.test".into(),
                }
            }),
            "bind",
        ),
        (
            edit(&|ad| {
                ad.ca_cert =
                    Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into())
            }),
            "ca_cert",
        ),
    ] {
        let msg = assert_invalid(s.put_compliance_scope(org.id, &changed, None).await);
        assert!(msg.contains(&format!("({field})")), "{msg}");
        assert_eq!(
            s.compliance_ad_password(org.id).await.unwrap().as_deref(),
            Some("P-password")
        );
    }

    // Other edits (base DNs, filter, IP ranges) still keep the password.
    let other = edit(&|ad| ad.filter = Some("(operatingSystem=Windows*)".into()));
    s.put_compliance_scope(org.id, &other, None).await.unwrap();
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("P-password")
    );

    // With the password entered again the new connection is accepted.
    s.put_compliance_scope(org.id, &b, Some("Q-password"))
        .await
        .unwrap();
    assert_eq!(
        s.compliance_scope(org.id).await.unwrap(),
        Some((b.clone(), true))
    );
    assert_eq!(
        s.compliance_ad_password(org.id).await.unwrap().as_deref(),
        Some("Q-password")
    );

    // Switching to GSSAPI drops the password (nothing to keep), and going
    // back to a simple bind without one stores none: nothing to refuse.
    let gssapi = edit(&|ad| ad.bind = AdBind::Gssapi);
    s.put_compliance_scope(org.id, &gssapi, None).await.unwrap();
    s.put_compliance_scope(org.id, &b, None).await.unwrap();
    assert_eq!(s.compliance_scope(org.id).await.unwrap(), Some((b, false)));
    assert_eq!(s.compliance_ad_password(org.id).await.unwrap(), None);
}

async fn schedule_round_trip_and_due(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let b = account(s, "B").await;
    let c = account(s, "C").await;
    const T: i64 = 1_735_689_600; // 2025-01-01 00:00 UTC
    assert_eq!(s.compliance_schedule(a.id).await.unwrap(), None);
    assert!(s.due_compliance_schedules(T * 2).await.unwrap().is_empty());
    assert_not_found(s.set_compliance_next_run(a.id, Some(T)).await);

    let hourly = ComplianceSchedule {
        enabled: true,
        every_minutes: Some(60),
        ..ComplianceSchedule::default()
    };
    let nightly = ComplianceSchedule {
        enabled: true,
        daily_at: Some("02:30".into()),
        ..ComplianceSchedule::default()
    };
    let off = ComplianceSchedule {
        enabled: false,
        ..hourly.clone()
    };
    // A schedule saved before any scope, and one next to a scope.
    s.put_compliance_schedule(a.id, &hourly, T + 10)
        .await
        .unwrap();
    s.put_compliance_scope(b.id, &ComplianceScope::default(), None)
        .await
        .unwrap();
    s.put_compliance_schedule(b.id, &nightly, T).await.unwrap();
    s.put_compliance_schedule(c.id, &off, T).await.unwrap();
    assert_eq!(
        s.compliance_schedule(a.id).await.unwrap(),
        Some(hourly.clone())
    );
    assert_eq!(
        s.compliance_schedule(b.id).await.unwrap(),
        Some(nightly.clone())
    );
    assert_eq!(
        s.compliance_schedule(c.id).await.unwrap(),
        Some(off.clone())
    );
    assert_eq!(s.compliance_scope(a.id).await.unwrap(), None);
    assert!(s.compliance_scope(b.id).await.unwrap().is_some());
    assert_eq!(s.compliance_next_run(a.id).await.unwrap(), Some(T + 3600));
    assert_eq!(
        s.compliance_next_run(b.id).await.unwrap(),
        Some(T + 2 * 3600 + 1800)
    );
    assert_eq!(s.compliance_next_run(c.id).await.unwrap(), None);

    // Due: at or after next_run_at, earliest first; a disabled one never.
    assert!(s
        .due_compliance_schedules(T + 3599)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.due_compliance_schedules(T + 3600).await.unwrap(),
        vec![(a.id, hourly.clone())]
    );
    assert_eq!(
        s.due_compliance_schedules(T + 86_400).await.unwrap(),
        vec![(a.id, hourly.clone()), (b.id, nightly.clone())]
    );
    // The caller reschedules.
    let next = hourly.next_run(T + 3600);
    s.set_compliance_next_run(a.id, next).await.unwrap();
    assert_eq!(s.compliance_next_run(a.id).await.unwrap(), Some(T + 7200));
    assert_eq!(
        s.due_compliance_schedules(T + 3600).await.unwrap(),
        Vec::new()
    );
    s.set_compliance_next_run(b.id, None).await.unwrap();
    assert_eq!(
        s.due_compliance_schedules(T + 86_400).await.unwrap(),
        vec![(a.id, hourly.clone())]
    );

    // Saving the scope keeps the schedule; a rejected schedule changes nothing.
    s.put_compliance_scope(a.id, &ComplianceScope::default(), None)
        .await
        .unwrap();
    assert_eq!(
        s.compliance_schedule(a.id).await.unwrap(),
        Some(hourly.clone())
    );
    assert_eq!(s.compliance_next_run(a.id).await.unwrap(), Some(T + 7200));
    let bad = ComplianceSchedule {
        every_minutes: Some(0),
        ..hourly.clone()
    };
    let msg = assert_invalid(s.put_compliance_schedule(a.id, &bad, T).await);
    assert!(msg.contains("out of range"), "{msg}");
    assert_eq!(s.compliance_schedule(a.id).await.unwrap(), Some(hourly));
    // Disabling unschedules.
    s.put_compliance_schedule(a.id, &off, T).await.unwrap();
    assert_eq!(s.compliance_next_run(a.id).await.unwrap(), None);
    assert!(s
        .due_compliance_schedules(i64::MAX)
        .await
        .unwrap()
        .is_empty());
}

async fn start_cancels_the_running_assessment(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    assert_eq!(s.latest_assessment(org.id).await.unwrap(), None);
    assert!(s.assessments(org.id, 10).await.unwrap().is_empty());

    let t = 1_000_000;
    let first = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 256, t)
        .await
        .unwrap();
    let a = s.assessment(org.id, first).await.unwrap();
    assert_eq!(a.id, first);
    assert_eq!(a.account_id, org.id);
    assert_eq!(a.state, AssessmentState::Running);
    assert_eq!((a.started_at, a.finished_at), (t, None));
    assert_eq!((a.done, a.total), (0, 256));
    assert!(a.on_demand);
    assert_eq!(a.trigger, AssessmentTrigger::Manual);
    assert_eq!(a.error, None);
    assert!(s.is_assessment_running(org.id, first).await.unwrap());

    // Started in the same second: still the newer one.
    let second = s
        .start_assessment(org.id, false, AssessmentTrigger::ScopeSaved, 10, t)
        .await
        .unwrap();
    let old = s.assessment(org.id, first).await.unwrap();
    assert_eq!(old.state, AssessmentState::Cancelled);
    assert_eq!(old.finished_at, Some(t));
    assert!(!s.is_assessment_running(org.id, first).await.unwrap());
    assert!(s.is_assessment_running(org.id, second).await.unwrap());
    let latest = s.latest_assessment(org.id).await.unwrap().unwrap();
    assert_eq!(latest.id, second);
    assert!(!latest.on_demand);
    assert_eq!(latest.trigger, AssessmentTrigger::ScopeSaved);

    // A finished assessment is not cancelled by the next start.
    assert!(s
        .finish_assessment(org.id, second, AssessmentState::Done, None, t + 5)
        .await
        .unwrap());
    let third = s
        .start_assessment(org.id, true, AssessmentTrigger::Schedule, 0, t + 10)
        .await
        .unwrap();
    assert_eq!(
        s.assessment(org.id, second).await.unwrap().state,
        AssessmentState::Done
    );
    let history: Vec<AssessmentId> = s
        .assessments(org.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(history, [third, second, first]);
    let two: Vec<AssessmentId> = s
        .assessments(org.id, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(two, [third, second]);
    assert_invalid(s.assessments(org.id, 0).await);
    assert_invalid(s.assessments(org.id, 1001).await);
    assert_not_found(
        s.start_assessment(
            vigil_store::AccountId::random(),
            true,
            AssessmentTrigger::Manual,
            0,
            t,
        )
        .await,
    );
}

async fn concurrent_starts_leave_one_running(db: &TestDb) {
    let org = account(&db.store, "Acme").await;
    let mut stores: Vec<Store> = vec![db.store.clone(); 3];
    for _ in 0..3 {
        stores.push(db.reconnect().await);
    }
    let go = Arc::new(tokio::sync::Barrier::new(stores.len()));
    let starts: Vec<_> = stores
        .iter()
        .map(|s| {
            let (s, go) = (s.clone(), go.clone());
            tokio::spawn(async move {
                go.wait().await;
                s.start_assessment(org.id, true, AssessmentTrigger::Manual, 1, now())
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for start in starts {
        ids.push(start.await.unwrap().expect("start"));
    }
    let all = db.store.assessments(org.id, 100).await.unwrap();
    assert_eq!(all.len(), ids.len());
    let running: Vec<_> = all
        .iter()
        .filter(|a| a.state == AssessmentState::Running)
        .collect();
    assert_eq!(running.len(), 1, "{all:?}");
    assert_eq!(all[0].id, running[0].id, "the newest one runs");
}

async fn finish_only_from_running_and_progress(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let t = 2_000_000;
    let id = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 100, t)
        .await
        .unwrap();
    assert!(s
        .set_assessment_progress(org.id, id, 40, 100)
        .await
        .unwrap());
    let a = s.assessment(org.id, id).await.unwrap();
    assert_eq!((a.done, a.total), (40, 100));
    // The total may change as the engine learns more.
    assert!(s
        .set_assessment_progress(org.id, id, 50, 120)
        .await
        .unwrap());
    let a = s.assessment(org.id, id).await.unwrap();
    assert_eq!((a.done, a.total), (50, 120));
    assert_eq!(a.live_counts, None, "nothing counted yet");
    let so_far = StatusCounts {
        unreachable: 70,
        ..StatusCounts::default()
    };
    assert!(s
        .set_assessment_live_counts(org.id, id, &so_far)
        .await
        .unwrap());
    let a = s.assessment(org.id, id).await.unwrap();
    assert_eq!(a.live_counts, Some(so_far));
    assert_invalid(s.set_assessment_progress(org.id, id, 121, 120).await);
    assert_invalid(
        s.finish_assessment(org.id, id, AssessmentState::Running, None, t)
            .await,
    );

    let long_error = "x".repeat(5000);
    assert!(s
        .finish_assessment(
            org.id,
            id,
            AssessmentState::Failed,
            Some(&long_error),
            t + 60
        )
        .await
        .unwrap());
    let a = s.assessment(org.id, id).await.unwrap();
    assert_eq!(a.state, AssessmentState::Failed);
    assert_eq!(a.finished_at, Some(t + 60));
    assert_eq!(a.error.as_deref().map(str::len), Some(2000));
    // Ended: nothing changes any more.
    assert!(!s
        .finish_assessment(org.id, id, AssessmentState::Done, None, t + 90)
        .await
        .unwrap());
    assert!(!s
        .set_assessment_progress(org.id, id, 120, 120)
        .await
        .unwrap());
    assert!(!s
        .set_assessment_live_counts(org.id, id, &StatusCounts::default())
        .await
        .unwrap());
    let after = s.assessment(org.id, id).await.unwrap();
    assert_eq!(after, a);

    // A cancelled assessment stays cancelled when its engine finishes.
    let old = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 5, t + 100)
        .await
        .unwrap();
    let new = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 5, t + 101)
        .await
        .unwrap();
    assert!(!s
        .finish_assessment(org.id, old, AssessmentState::Done, None, t + 102)
        .await
        .unwrap());
    assert_eq!(
        s.assessment(org.id, old).await.unwrap().state,
        AssessmentState::Cancelled
    );
    // A user cancels the running one.
    assert!(s
        .finish_assessment(org.id, new, AssessmentState::Cancelled, None, t + 103)
        .await
        .unwrap());
    assert!(!s.is_assessment_running(org.id, new).await.unwrap());
    assert_not_found(
        s.finish_assessment(
            org.id,
            AssessmentId::random(),
            AssessmentState::Done,
            None,
            t,
        )
        .await,
    );
    assert_not_found(
        s.set_assessment_progress(org.id, AssessmentId::random(), 0, 0)
            .await,
    );
    assert_not_found(
        s.set_assessment_live_counts(org.id, AssessmentId::random(), &StatusCounts::default())
            .await,
    );
    assert_not_found(
        s.is_assessment_running(org.id, AssessmentId::random())
            .await,
    );
}

fn ep(name: &str, status: EndpointStatus, addr: &str) -> Endpoint {
    let mut e = Endpoint::new(name, status);
    e.addrs = vec![addr.parse().unwrap()];
    e
}

fn names(eps: &[Endpoint]) -> Vec<&str> {
    eps.iter().map(|e| e.name.as_str()).collect()
}

async fn endpoints_only_while_running_and_numbered_on(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let id = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 3, now())
        .await
        .unwrap();
    let all = AdvancedQuery::default();
    // Same names: the stored order decides.
    assert!(s
        .put_endpoints(org.id, id, &[ep("same", NoAgent, "192.0.2.1")])
        .await
        .unwrap());
    assert!(s
        .put_endpoints(org.id, id, &[ep("same", Unreachable, "192.0.2.2")])
        .await
        .unwrap());
    assert!(s.put_endpoints(org.id, id, &[]).await.unwrap());
    let (page, total) = s.endpoints(org.id, id, &all, 0, 10).await.unwrap();
    assert_eq!(total, 2);
    let statuses: Vec<_> = page.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [NoAgent, Unreachable]);

    // One bad endpoint rejects the batch.
    let mut long = ep("long", NoAgent, "192.0.2.3");
    long.os = Some("x".repeat(vigil_store::limits::MAX_ENDPOINT_FIELD_LEN + 1));
    let msg = assert_invalid(
        s.put_endpoints(org.id, id, &[ep("fine", NoAgent, "192.0.2.4"), long])
            .await,
    );
    assert!(msg.contains("OS of endpoint 1"), "{msg}");
    assert_invalid(
        s.put_endpoints(org.id, id, &[ep("", NoAgent, "192.0.2.5")])
            .await,
    );
    assert_eq!(s.endpoints(org.id, id, &all, 0, 10).await.unwrap().1, 2);

    // Once finished, the endpoints are final.
    s.finish_assessment(org.id, id, AssessmentState::Done, None, now())
        .await
        .unwrap();
    assert!(!s
        .put_endpoints(org.id, id, &[ep("late", NoAgent, "192.0.2.9")])
        .await
        .unwrap());
    assert_eq!(s.endpoints(org.id, id, &all, 0, 10).await.unwrap().1, 2);
    assert_not_found(s.put_endpoints(org.id, AssessmentId::random(), &[]).await);
}

/// 65,536 endpoints with every status, some in AD containers, with OSes,
/// DNS names and last-seen times.
fn many_endpoints() -> Vec<Endpoint> {
    let servers = Dn::parse("OU=Servers,DC=example,DC=test").unwrap();
    let web = Dn::parse("OU=Web,OU=Servers,DC=example,DC=test").unwrap();
    (0u32..65_536)
        .map(|i| {
            let status = EndpointStatus::ALL[(i % 5) as usize];
            let mut e = Endpoint::new(format!("Host-{:05}", 65_535 - i), status);
            e.addrs = vec![IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))];
            match i % 3 {
                0 => e.container = Some(servers.clone()),
                1 => e.container = Some(web.clone()),
                _ => {}
            }
            if i % 4 == 0 {
                e.os = Some(format!("Windows Server {}", 2016 + i % 3 * 3));
                e.dns_name = Some(format!("h{i}.example.test"));
            }
            if i % 2 == 0 {
                e.last_seen = Some(i64::from(i));
                e.ad_guid = Some(uuid::Uuid::from_u128(u128::from(i) + 1));
                e.agent_id = Some(format!("agent-{i}"));
                e.server_id = Some("srv".into());
                e.agent_version = Some("1.2.3".into());
                e.identify = Some(IdentifyCheck::ALL[(i / 2 % 4) as usize]);
            }
            e.disabled = i % 7 == 0;
            e
        })
        .collect()
}

/// What the store should answer: vigil-core's matcher, in the store's order.
fn expected<'a>(eps: &'a [Endpoint], q: &AdvancedQuery) -> Vec<&'a Endpoint> {
    let mut hits: Vec<(String, &str, usize, &Endpoint)> = eps
        .iter()
        .enumerate()
        .filter(|(_, e)| q.matches(e))
        .map(|(i, e)| (e.name.to_lowercase(), e.name.as_str(), i, e))
        .collect();
    hits.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    hits.into_iter().map(|h| h.3).collect()
}

async fn bulk_endpoints_counts_and_search(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let eps = many_endpoints();
    let id = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 65_536, now())
        .await
        .unwrap();
    let started = Instant::now();
    assert!(s.put_endpoints(org.id, id, &eps).await.unwrap());
    eprintln!(
        "{:?}: put_endpoints of {} endpoints took {:?}",
        s.backend(),
        eps.len(),
        started.elapsed()
    );

    let started = Instant::now();
    let counts = s.endpoint_counts(org.id, id).await.unwrap();
    eprintln!(
        "{:?}: endpoint_counts took {:?}",
        s.backend(),
        started.elapsed()
    );
    let want: StatusCounts = eps.iter().map(|e| e.status).collect();
    assert_eq!(counts, want);
    assert_eq!(counts.total(), 65_536);

    let name = |p: &str| Some(NamePattern::parse(p).unwrap());
    let range = |r: &str| Some(IpRange::parse(r).unwrap());
    let q = AdvancedQuery::default;
    let cases: Vec<(&str, AdvancedQuery)> = vec![
        ("everything", q()),
        (
            "exact name",
            AdvancedQuery::by_name(NamePattern::parse("host-01234").unwrap()),
        ),
        ("exact DNS name", q_name("H100.EXAMPLE.TEST")),
        (
            "wildcard",
            AdvancedQuery {
                name: name("HOST-0123*"),
                ..q()
            },
        ),
        (
            "inner wildcard",
            AdvancedQuery {
                name: name("h*7.example.*"),
                ..q()
            },
        ),
        (
            "status",
            AdvancedQuery {
                statuses: vec![NoAgent],
                ..q()
            },
        ),
        (
            "statuses",
            AdvancedQuery {
                statuses: vec![Unreachable, ManagedHere, Unreachable],
                ..q()
            },
        ),
        (
            "container",
            AdvancedQuery {
                container: Some(Dn::parse("ou=servers, dc=example, dc=test").unwrap()),
                ..q()
            },
        ),
        (
            "container leaf",
            AdvancedQuery {
                container: Some(Dn::parse("OU=Web,OU=Servers,DC=example,DC=test").unwrap()),
                ..q()
            },
        ),
        (
            "ip range",
            AdvancedQuery {
                ip_range: range("10.0.1.0/24"),
                ..q()
            },
        ),
        (
            "wide ip range",
            AdvancedQuery {
                ip_range: range("10.0.0.128-10.0.200.3"),
                ..q()
            },
        ),
        (
            "ipv6 range",
            AdvancedQuery {
                ip_range: range("::/112"),
                ..q()
            },
        ),
        (
            "os",
            AdvancedQuery {
                os: Some(OsPattern::parse("server 2019").unwrap()),
                ..q()
            },
        ),
        (
            "seen window",
            AdvancedQuery {
                last_seen_after: Some(1000),
                last_seen_before: Some(3000),
                ..q()
            },
        ),
        (
            "combined",
            AdvancedQuery {
                name: name("host-6*"),
                ip_range: range("10.0.0.0-10.0.15.255"),
                statuses: vec![NoAgent, Unreachable],
                container: Some(Dn::parse("DC=example,DC=test").unwrap()),
                ..q()
            },
        ),
        (
            "nothing",
            AdvancedQuery {
                name: name("nope*"),
                ..q()
            },
        ),
    ];
    for (case, query) in &cases {
        let want = expected(&eps, query);
        let last_page = (want.len() as u64).saturating_sub(7);
        for (offset, limit) in [(0u64, 1000u64), (3, 7), (last_page, 10), (70_000, 10)] {
            let started = Instant::now();
            let (page, total) = s
                .endpoints(org.id, id, query, offset, limit)
                .await
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            if offset == 0 {
                eprintln!(
                    "{:?}: search {case:?} ({total} matches) took {:?}",
                    s.backend(),
                    started.elapsed()
                );
            }
            assert_eq!(total, want.len() as u64, "{case}");
            let want_page: Vec<&Endpoint> = want
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .copied()
                .collect();
            let got: Vec<&Endpoint> = page.iter().collect();
            assert_eq!(got, want_page, "{case} at {offset}+{limit}");
        }
    }
    // Spot checks of the oracle itself.
    let count = |c: &str| {
        let query = &cases.iter().find(|(n, _)| *n == c).unwrap().1;
        expected(&eps, query).len()
    };
    assert_eq!(count("exact name"), 1);
    assert_eq!(count("exact DNS name"), 1);
    assert_eq!(count("wildcard"), 10);
    assert_eq!(count("ip range"), 256);
    assert!(count("container") > count("container leaf"));

    // A whole export in one call.
    let (all, total) = s
        .endpoints(org.id, id, &q(), 0, vigil_store::limits::MAX_ENDPOINT_PAGE)
        .await
        .unwrap();
    assert_eq!((all.len(), total), (65_536, 65_536));
    assert_invalid(s.endpoints(org.id, id, &q(), 0, 0).await);
    assert_invalid(
        s.endpoints(
            org.id,
            id,
            &q(),
            0,
            vigil_store::limits::MAX_ENDPOINT_PAGE + 1,
        )
        .await,
    );
    let bad_window = AdvancedQuery {
        last_seen_after: Some(5),
        last_seen_before: Some(5),
        ..q()
    };
    assert_invalid(s.endpoints(org.id, id, &bad_window, 0, 10).await);
}

fn q_name(p: &str) -> AdvancedQuery {
    AdvancedQuery::by_name(NamePattern::parse(p).unwrap())
}

async fn search_details(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let id = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 0, now())
        .await
        .unwrap();
    let mut web01 = ep("WEB01", ManagedHere, "10.0.1.1");
    web01.dns_name = Some("web01.example.test".into());
    let mut v6 = ep("2001:db8::5", NoAgent, "2001:db8::5");
    v6.addrs.push("10.9.9.9".parse().unwrap());
    let eps = vec![
        web01,
        ep("a_b", NoAgent, "10.0.0.1"),
        ep("axb", NoAgent, "10.0.0.2"),
        ep("a%b", NoAgent, "10.0.0.3"),
        ep("a\\b", NoAgent, "10.0.0.4"),
        ep("ÉCOLE-PC1", NoAgent, "10.0.0.5"),
        ep("web", Unreachable, "10.0.0.6"),
        ep("Web02", NoAgent, "10.0.0.7"),
        v6,
        Endpoint::new("unresolved", UnresolvedAd),
    ];
    assert!(s.put_endpoints(org.id, id, &eps).await.unwrap());
    let cases: &[(&str, &[&str])] = &[
        ("web", &["web"]),
        ("WEB01", &["WEB01"]),
        ("web*", &["web", "WEB01", "Web02"]),
        ("*.example.test", &["WEB01"]),
        ("web01.example.test", &["WEB01"]),
        ("a_*", &["a_b"]),
        ("a_b", &["a_b"]),
        ("a%b", &["a%b"]),
        ("a%*", &["a%b"]),
        ("a\\*", &["a\\b"]),
        ("a*b", &["a%b", "a\\b", "a_b", "axb"]),
        ("école-*", &["ÉCOLE-PC1"]),
        ("école-pc1", &["ÉCOLE-PC1"]),
        ("2001:db8::*", &["2001:db8::5"]),
        ("?", &[]),
    ];
    for (pattern, want) in cases {
        let (page, total) = s
            .endpoints(org.id, id, &q_name(pattern), 0, 100)
            .await
            .unwrap();
        assert_eq!(names(&page), *want, "{pattern:?}");
        assert_eq!(total, want.len() as u64, "{pattern:?}");
    }
    // Any address of an endpoint counts for a range; never-seen and
    // address-less endpoints fail such criteria.
    let by_range = AdvancedQuery {
        ip_range: Some(IpRange::parse("10.9.9.0/24").unwrap()),
        ..AdvancedQuery::default()
    };
    let (page, _) = s.endpoints(org.id, id, &by_range, 0, 100).await.unwrap();
    assert_eq!(names(&page), ["2001:db8::5"]);
    let ranges: &[(&str, &[&str])] = &[
        ("2001:db8::/120", &["2001:db8::5"]),
        ("2001:db8::6-2001:db8::ff", &[]),
        ("10.0.0.2-10.0.0.4", &["a%b", "a\\b", "axb"]),
        (
            "10.0.0.0/16",
            &[
                "a%b",
                "a\\b",
                "a_b",
                "axb",
                "web",
                "WEB01",
                "Web02",
                "ÉCOLE-PC1",
            ],
        ),
    ];
    for (range, want) in ranges {
        let query = AdvancedQuery {
            ip_range: Some(IpRange::parse(range).unwrap()),
            ..AdvancedQuery::default()
        };
        let (page, total) = s.endpoints(org.id, id, &query, 0, 100).await.unwrap();
        assert_eq!(names(&page), *want, "{range}");
        assert_eq!(total, want.len() as u64, "{range}");
    }
    let (page, total) = s
        .endpoints(org.id, id, &AdvancedQuery::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(total, eps.len() as u64);
    assert_eq!(page.len(), eps.len());
    // Everything read back as written.
    let mut sorted: Vec<&Endpoint> = eps.iter().collect();
    sorted.sort_by_key(|e| (e.name.to_lowercase(), e.name.clone()));
    assert_eq!(page.iter().collect::<Vec<_>>(), sorted);
    let long = "x".repeat(vigil_store::limits::MAX_SEARCH_PATTERN_LEN + 1);
    assert_invalid(s.endpoints(org.id, id, &q_name(&long), 0, 10).await);
}

async fn previous_statuses_by_key(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let id = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 0, now())
        .await
        .unwrap();
    let guid = uuid::Uuid::from_u128(0xabcdef);
    let mut from_ad = ep("DC01", ManagedHere, "10.0.0.1");
    from_ad.ad_guid = Some(guid);
    let eps = vec![
        from_ad,
        ep("10.0.0.2", NoAgent, "10.0.0.2"),
        Endpoint::new("Unresolved-PC", UnresolvedAd),
    ];
    s.put_endpoints(org.id, id, &eps).await.unwrap();
    let previous = s.previous_statuses(org.id, id).await.unwrap();
    assert_eq!(previous.len(), 3);
    assert_eq!(previous[&format!("guid:{guid}")], ManagedHere);
    assert_eq!(previous["addr:10.0.0.2"], NoAgent);
    assert_eq!(previous["name:unresolved-pc"], UnresolvedAd);
    for e in &eps {
        assert_eq!(previous[&endpoint_key(e)], e.status, "{}", e.name);
    }
    assert_not_found(s.previous_statuses(org.id, AssessmentId::random()).await);
}

async fn compliance_is_tenant_scoped(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let b = account(s, "B").await;
    let scope = scope_with_ad(simple_bind());
    s.put_compliance_scope(a.id, &scope, Some("a-password"))
        .await
        .unwrap();
    assert_eq!(s.compliance_scope(b.id).await.unwrap(), None);
    assert_eq!(s.compliance_ad_password(b.id).await.unwrap(), None);

    let id = s
        .start_assessment(a.id, true, AssessmentTrigger::Manual, 1, now())
        .await
        .unwrap();
    s.put_endpoints(a.id, id, &[ep("web", NoAgent, "10.0.0.1")])
        .await
        .unwrap();
    // B's start does not cancel A's assessment.
    let b_id = s
        .start_assessment(b.id, true, AssessmentTrigger::Manual, 1, now())
        .await
        .unwrap();
    assert!(s.is_assessment_running(a.id, id).await.unwrap());

    // Every method refuses A's assessment to B, as if it did not exist.
    assert_not_found(s.assessment(b.id, id).await);
    assert_not_found(s.is_assessment_running(b.id, id).await);
    assert_not_found(s.set_assessment_progress(b.id, id, 1, 1).await);
    assert_not_found(
        s.finish_assessment(b.id, id, AssessmentState::Cancelled, None, now())
            .await,
    );
    assert_not_found(
        s.put_endpoints(b.id, id, &[ep("evil", NoAgent, "10.6.6.6")])
            .await,
    );
    assert_not_found(s.endpoint_counts(b.id, id).await);
    assert_not_found(
        s.endpoints(b.id, id, &AdvancedQuery::default(), 0, 10)
            .await,
    );
    assert_not_found(s.previous_statuses(b.id, id).await);
    assert_eq!(s.prune_assessments(b.id, 0).await.unwrap(), 0);
    let b_list: Vec<_> = s
        .assessments(b.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(b_list, [b_id]);
    assert_eq!(s.latest_assessment(b.id).await.unwrap().unwrap().id, b_id);

    // A's data is unchanged.
    let a_now = s.assessment(a.id, id).await.unwrap();
    assert_eq!(a_now.state, AssessmentState::Running);
    assert_eq!(a_now.done, 0);
    let (page, total) = s
        .endpoints(a.id, id, &AdvancedQuery::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!((names(&page), total), (vec!["web"], 1));
    assert_eq!(s.endpoint_counts(a.id, id).await.unwrap().no_agent, 1);
    assert_eq!(s.endpoint_counts(b.id, b_id).await.unwrap().total(), 0);
}

async fn prune_keeps_the_newest_finished(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = s
            .start_assessment(org.id, true, AssessmentTrigger::Schedule, 1, 100 + i)
            .await
            .unwrap();
        s.put_endpoints(org.id, id, &[ep("web", NoAgent, "10.0.0.1")])
            .await
            .unwrap();
        if i < 4 {
            let state = if i % 2 == 0 {
                AssessmentState::Done
            } else {
                AssessmentState::Failed
            };
            s.finish_assessment(org.id, id, state, None, 100 + i)
                .await
                .unwrap();
        }
        ids.push(id);
    }
    // ids[4] runs; keep the two newest finished (ids[3], ids[2]).
    assert_eq!(s.prune_assessments(org.id, 2).await.unwrap(), 2);
    let left: HashSet<AssessmentId> = s
        .assessments(org.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(left, HashSet::from([ids[2], ids[3], ids[4]]));
    // Their endpoints went with them.
    assert_not_found(s.endpoint_counts(org.id, ids[0]).await);
    assert_eq!(s.endpoint_counts(org.id, ids[2]).await.unwrap().total(), 1);
    assert_eq!(s.prune_assessments(org.id, 2).await.unwrap(), 0);
    // Keeping none still keeps the running one.
    assert_eq!(s.prune_assessments(org.id, 0).await.unwrap(), 2);
    let left: Vec<AssessmentId> = s
        .assessments(org.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(left, [ids[4]]);
    assert!(s.is_assessment_running(org.id, ids[4]).await.unwrap());
}

/// The identify MAC key of an agent is the digest the store keeps of its
/// credential's bytes: an account gets its own agents' (removed ones
/// marked), never another account's.
async fn identify_keys_are_the_accounts_agents_digests(db: &TestDb) {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (kept, kept_credential) = agent(s, &acme, "kept").await;
    let (gone, _) = agent(s, &acme, "gone").await;
    let (theirs, _) = agent(s, &other, "theirs").await;
    s.remove_agent(acme.id, gone.id, now()).await.unwrap();

    let keys = s.agent_identify_keys(acme.id).await.unwrap();
    let mut got: Vec<(String, bool)> = keys
        .iter()
        .map(|k| (k.agent_id.clone(), k.removed))
        .collect();
    got.sort();
    let mut want = vec![(kept.id.to_string(), false), (gone.id.to_string(), true)];
    want.sort();
    assert_eq!(got, want);
    assert!(keys.iter().all(|k| k.agent_id != theirs.id.to_string()));

    let body = kept_credential
        .strip_prefix(vigil_store::AGENT_CREDENTIAL_PREFIX)
        .unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    let digest: String = Sha256::digest(&raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = keys
        .iter()
        .find(|k| k.agent_id == kept.id.to_string())
        .unwrap();
    assert_eq!(key.credential_digest, digest);
    assert!(!format!("{key:?}").contains(&digest), "keys are not logged");
}

async fn name_sources_no_hosts_and_addresses_seen(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let id = s
        .start_assessment(org.id, true, AssessmentTrigger::Manual, 0, now())
        .await
        .unwrap();
    let mut web = ep("web01.example.test", NoAgent, "10.0.0.1");
    web.name_source = Some(NameSource::Dns);
    web.last_seen = Some(1_700_000_100);
    let mut nb = ep("FILES", Unreachable, "10.0.0.2");
    nb.name_source = Some(NameSource::Netbios);
    nb.last_seen = Some(1_700_000_050);
    let mut ad = ep("DC01", Unreachable, "10.0.0.3");
    ad.ad_guid = Some(uuid::Uuid::from_u128(7));
    ad.name_source = Some(NameSource::Ad);
    ad.last_seen = Some(1_700_000_000); // a logon, not an answer
    let empty: Vec<Endpoint> = (4..=9)
        .map(|i| ep(&format!("10.0.0.{i}"), NoHost, &format!("10.0.0.{i}")))
        .collect();
    let eps: Vec<Endpoint> = [web.clone(), nb.clone(), ad.clone()]
        .into_iter()
        .chain(empty)
        .collect();
    s.put_endpoints(org.id, id, &eps).await.unwrap();

    // Stored and read back with where the name came from.
    let (all, total) = s
        .endpoints(org.id, id, &AdvancedQuery::everything(), 0, 100)
        .await
        .unwrap();
    assert_eq!(total, 9);
    for e in [&web, &nb, &ad] {
        assert!(all.contains(e), "{e:?} in {all:?}");
    }
    // No host at address: counted, left out unless asked for.
    let counts = s.endpoint_counts(org.id, id).await.unwrap();
    assert_eq!(
        (counts.no_host, counts.unreachable, counts.total()),
        (6, 2, 9)
    );
    let (shown, total) = s
        .endpoints(org.id, id, &AdvancedQuery::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(
        (names(&shown), total),
        (vec!["DC01", "FILES", "web01.example.test"], 3)
    );
    let only = AdvancedQuery {
        statuses: vec![NoHost],
        ..AdvancedQuery::default()
    };
    assert_eq!(s.endpoints(org.id, id, &only, 0, 100).await.unwrap().1, 6);
    // Wildcard name search covers the resolved names.
    let web_star = AdvancedQuery::by_name(NamePattern::parse("web*").unwrap());
    let (found, _) = s.endpoints(org.id, id, &web_star, 0, 100).await.unwrap();
    assert_eq!(names(&found), ["web01.example.test"]);

    // When addresses answered: IP endpoints' last seen, AD ones only when
    // they answered.
    let seen = s.addresses_seen(org.id, id).await.unwrap();
    let ip = |a: &str| a.parse::<IpAddr>().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[&ip("10.0.0.1")], 1_700_000_100);
    assert_eq!(seen[&ip("10.0.0.2")], 1_700_000_050);
    assert_not_found(s.addresses_seen(org.id, AssessmentId::random()).await);
}
