//! The audit log: newest first, paged by the last entry seen, per account,
//! long fields cut, old entries pruned.

use crate::fixtures::*;
use serde_json::json;
use vigil_store::NewAuditEntry;
use vigil_testdb::TestDb;

backend_tests!(audit_entries_page_per_account_and_prune);

fn entry<'a>(action: &'a str, target: &'a str) -> NewAuditEntry<'a> {
    NewAuditEntry {
        actor: "owner@a.test",
        user_id: None,
        source: Some("198.51.100.9".into()),
        action,
        target: Some(target),
        detail: Some(json!({"n": target})),
    }
}

async fn audit_entries_page_per_account_and_prune(db: &TestDb) {
    let s = &db.store;
    let a = account(s, "A").await;
    let b = account(s, "B").await;
    for i in 0..5 {
        s.record_audit(a.id, &entry("contact.create", &i.to_string()))
            .await
            .unwrap();
        // Distinct milliseconds keep the order certain.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    s.record_audit(b.id, &entry("user.create", "b"))
        .await
        .unwrap();
    let long = "x".repeat(5000);
    s.record_audit(a.id, &entry("scope.update", &long))
        .await
        .unwrap();

    let all = s.audit_log(a.id, None, 100).await.unwrap();
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(all[0].action, "scope.update");
    assert!(
        all[0].target.as_ref().unwrap().chars().count() <= 513,
        "cut"
    );
    let targets: Vec<_> = all[1..].iter().map(|e| e.target.clone().unwrap()).collect();
    assert_eq!(targets, ["4", "3", "2", "1", "0"], "newest first");
    assert_eq!(all[1].detail, Some(json!({"n": "4"})));
    assert_eq!(all[1].source.as_deref(), Some("198.51.100.9"));

    let page = s.audit_log(a.id, Some(&all[2].id), 2).await.unwrap();
    let ids: Vec<_> = page.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [all[3].id.clone(), all[4].id.clone()]);
    // Another account's entry id is no cursor into this account.
    let theirs = s.audit_log(b.id, None, 10).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert!(s
        .audit_log(a.id, Some(&theirs[0].id), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s.record_audit(a.id, &entry("", "x")).await.is_err());

    // Pruning by age, in batches: everything before "now + 1 s" goes.
    let future_ms = (vigil_store::now_unix() + 1) * 1000;
    assert_eq!(s.prune_audit(future_ms, 5).await.unwrap(), 5);
    assert_eq!(s.prune_audit(future_ms, 5).await.unwrap(), 2);
    assert!(s.audit_log(a.id, None, 10).await.unwrap().is_empty());
}
