//! Maintenance windows, agent tags and held notices: round trips, checks,
//! tenancy, and the once-only transitions several replicas rely on.

use crate::fixtures::*;
use vigil_core::maintenance::{Schedule, Scope, Window};
use vigil_core::PortState;
use vigil_core::{Condition, ConditionKind};
use vigil_store::{AgentQuery, HeldPhase, MaintenanceId, NewScanResult, PortResult};
use vigil_testdb::TestDb;

backend_tests!(
    windows_round_trip_checked_and_per_account,
    tags_are_normalized_and_filter_agents,
    held_notices_are_taken_once,
    trends_add_up_open_ports_and_unauthorized_spans,
);

fn weekly(name: &str, scope: Scope) -> Window {
    Window {
        name: name.into(),
        schedule: Schedule::Weekly {
            days: vec![0, 6],
            from: "22:00".into(),
            to: "02:00".into(),
            time_zone: "Europe/Paris".into(),
        },
        scope,
        notify_start_end: true,
    }
}

async fn windows_round_trip_checked_and_per_account(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let b = account(s, "B").await;
    let w = s
        .create_window(
            a.id,
            &weekly("weekend", Scope::Account),
            Some("me@a.example"),
            now(),
        )
        .await
        .expect("create");
    assert_eq!(w.window, weekly("weekend", Scope::Account));
    assert_eq!(w.created_by.as_deref(), Some("me@a.example"));
    assert_eq!(w.open_start, None);
    assert_eq!(s.windows(a.id).await.expect("list"), vec![w.clone()]);
    assert!(s.windows(b.id).await.expect("list").is_empty());
    assert_not_found(s.window(b.id, w.id).await);
    assert_not_found(s.delete_window(b.id, w.id).await);
    assert_not_found(
        s.update_window(b.id, w.id, &weekly("x", Scope::Account))
            .await,
    );

    // Checked before it is stored.
    let mut bad = weekly("bad", Scope::Account);
    bad.schedule = Schedule::Weekly {
        days: vec![1],
        from: "02:00".into(),
        to: "03:00".into(),
        time_zone: "Nowhere/Atlantis".into(),
    };
    let why = assert_invalid(s.create_window(a.id, &bad, None, now()).await);
    assert!(why.contains("Nowhere/Atlantis"), "{why}");
    let why = assert_invalid(
        s.create_window(a.id, &weekly("", Scope::Account), None, now())
            .await,
    );
    assert!(why.contains("name"), "{why}");

    // Open/closed transitions are taken once.
    assert!(s
        .mark_window_open(w.id, None, Some(100))
        .await
        .expect("mark"));
    assert!(!s
        .mark_window_open(w.id, None, Some(100))
        .await
        .expect("again"));
    assert!(s
        .mark_window_open(w.id, Some(100), None)
        .await
        .expect("close"));
    assert!(!s
        .mark_window_open(MaintenanceId::random(), None, Some(1))
        .await
        .expect("none"));

    let tagged = weekly(
        "office",
        Scope::Tag {
            tag: "office".into(),
        },
    );
    let u = s.update_window(a.id, w.id, &tagged).await.expect("update");
    assert_eq!(u.window, tagged);
    assert_eq!(s.all_windows().await.expect("all").len(), 1);
    s.delete_window(a.id, w.id).await.expect("delete");
    assert!(s.windows(a.id).await.expect("list").is_empty());
}

async fn tags_are_normalized_and_filter_agents(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let (paris, _) = agent(s, &a, "paris").await;
    let (lyon, _) = agent(s, &a, "lyon").await;
    let set = s
        .set_tags(a.id, paris.id, &["Office", " paris", "office"])
        .await
        .expect("tags");
    assert_eq!(set.tags, ["office", "paris"]);
    s.set_tags(a.id, lyon.id, &["of_ice"]).await.expect("tags");
    assert_eq!(
        s.agent(a.id, paris.id).await.expect("agent").tags,
        ["office", "paris"]
    );
    assert_eq!(
        s.agent_tags(a.id).await.expect("all tags"),
        ["of_ice", "office", "paris"]
    );
    let why = assert_invalid(s.set_tags(a.id, lyon.id, &["two words"]).await);
    assert!(why.contains("two words"), "{why}");
    // `_` is not a wildcard, and a tag matches whole.
    let by_tag = |tag: &str| AgentQuery {
        tag: Some(tag.into()),
        ..AgentQuery::default()
    };
    for (tag, want) in [
        ("office", vec!["paris"]),
        ("of_ice", vec!["lyon"]),
        ("offic", vec![]),
    ] {
        let (found, total) = s
            .agents_query(a.id, &by_tag(tag), 0, 100)
            .await
            .expect("query");
        let names: Vec<String> = found.into_iter().map(|a| a.name).collect();
        assert_eq!(names, want, "tag {tag}");
        assert_eq!(total, want.len() as u64);
    }
    let b = account(s, "B").await;
    assert_not_found(s.set_tags(b.id, paris.id, &["x"]).await);
    s.set_tags(a.id, paris.id, &[] as &[&str])
        .await
        .expect("clear");
    assert!(s
        .agent(a.id, paris.id)
        .await
        .expect("agent")
        .tags
        .is_empty());
}

async fn held_notices_are_taken_once(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let (ag, _) = agent(s, &a, "office").await;
    let cond = Condition {
        kind: ConditionKind::UnauthorizedOpen,
        port: Some(8080),
    };
    let alert = s
        .open_alert(a.id, ag.id, "self", cond, false, now())
        .await
        .expect("alert");
    s.hold_notice(a.id, ag.id, alert.id, HeldPhase::Open, now())
        .await
        .expect("hold");
    // A later hold keeps the first phase: the opening was never told.
    s.hold_notice(a.id, ag.id, alert.id, HeldPhase::Resolved, now())
        .await
        .expect("hold again");
    let held = s.held_notices().await.expect("held");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].phase, HeldPhase::Open);
    assert_eq!(
        s.held_notice(a.id, alert.id)
            .await
            .expect("one")
            .map(|h| h.phase),
        Some(HeldPhase::Open)
    );
    assert!(s.take_held_notice(alert.id).await.expect("take"));
    assert!(!s.take_held_notice(alert.id).await.expect("taken"));
    assert!(s.held_notices().await.expect("held").is_empty());
}

/// Open ports per day (the day the server received a result, whatever
/// time the agent claims): the most one result of a target found that
/// day, summed over targets and agents; unauthorized-port alerts by span.
async fn trends_add_up_open_ports_and_unauthorized_spans(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let (one, _) = agent(s, &a, "one").await;
    let (two, _) = agent(s, &a, "two").await;
    let day = 86_400;
    let today = now() / day;
    let open = |ports: &[u16]| -> Vec<PortResult> {
        ports
            .iter()
            .map(|p| PortResult {
                port: *p,
                state: PortState::Open,
                details: None,
            })
            .chain(std::iter::once(PortResult {
                port: 1,
                state: PortState::Closed,
                details: None,
            }))
            .collect()
    };
    // The agent-reported times are long ago: they do not place the result.
    let results = [
        (one.id, "self", open(&[22, 80])),
        (one.id, "self", open(&[22, 80, 443])), // the day's most: 3
        (one.id, "10.0.0.1", open(&[22])),      // another target: +1
        (two.id, "self", open(&[8080])),        // another agent: +1
    ];
    for (i, (agent_id, target, ports)) in results.iter().enumerate() {
        let upload = format!("u{i}");
        s.ingest_result(
            a.id,
            *agent_id,
            &NewScanResult {
                upload_id: &upload,
                target,
                started_at: 100,
                finished_at: 160,
                ports,
                addr: None,
                task_id: None,
                probed: None,
            },
        )
        .await
        .expect("ingest");
    }
    let from = (today - 1) * day;
    assert_eq!(
        s.open_ports_by_day(a.id, None, from).await.expect("trend"),
        [(today, 5)]
    );
    assert_eq!(
        s.open_ports_by_day(a.id, Some(two.id), from)
            .await
            .expect("agent trend"),
        [(today, 1)]
    );
    assert!(s
        .open_ports_by_day(a.id, None, (today + 1) * day)
        .await
        .expect("later")
        .is_empty());
    let b = account(s, "B").await;
    assert!(s
        .open_ports_by_day(b.id, None, 0)
        .await
        .expect("other")
        .is_empty());
    let cond = Condition {
        kind: ConditionKind::UnauthorizedOpen,
        port: Some(80),
    };
    let alert = s
        .open_alert(a.id, one.id, "self", cond, false, 10 * day)
        .await
        .expect("alert");
    let spans = s
        .unauthorized_spans(a.id, None, 9 * day)
        .await
        .expect("spans");
    assert_eq!(spans, [(10 * day, None)]);
    s.resolve_alert(a.id, alert.id, 11 * day)
        .await
        .expect("resolve");
    assert_eq!(
        s.unauthorized_spans(a.id, None, 9 * day)
            .await
            .expect("spans"),
        [(10 * day, Some(11 * day))]
    );
    assert!(s
        .unauthorized_spans(a.id, None, 12 * day)
        .await
        .expect("later")
        .is_empty());
    assert!(s
        .unauthorized_spans(a.id, Some(two.id), 0)
        .await
        .expect("other agent")
        .is_empty());
}
