//! Migrations that rebuild a table keep every row: the data is written by
//! the schema before the migration, then the migration runs.

use crate::fixtures::*;
use serde_json::json;
use vigil_core::Condition;
use vigil_store::{Channel, Store, StoreOptions};

/// The version before SQLite rebuilds `alerts` for *new device* alerts.
const BEFORE_NEW_DEVICE: i64 = 20250107000001;

backend_tests!(new_device_alerts_keep_alerts_history_and_notifications);

async fn new_device_alerts_keep_alerts_history_and_notifications(db: &vigil_testdb::TestDb) {
    // A database of its own, for each backend, at the version before.
    let url = match db.store.backend() {
        vigil_store::Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("old.db").display());
            std::mem::forget(dir); // kept until the process ends
            url
        }
        // The test's database, emptied.
        vigil_store::Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
                sqlx::query(sql).execute(&mut c).await.expect(sql);
            }
            db.url.clone()
        }
    };
    let opts = StoreOptions::default();
    let old = Store::connect_migrated_to(&url, opts.clone(), BEFORE_NEW_DEVICE)
        .await
        .expect("the schema before");
    let acme = account(&old, "Acme").await;
    let (a, _) = agent(&old, &acme, "home").await;
    let t = now();
    let hook = old
        .create_contact(acme.id, "Hook", Channel::Webhook, "https://hooks.example/x")
        .await
        .unwrap();
    let alert = old
        .open_alert(
            acme.id,
            a.id,
            "agent_host",
            Condition::unauthorized_open(23),
            false,
            t,
        )
        .await
        .unwrap();
    let key = format!("alert:{}:raised", alert.id);
    assert!(old
        .enqueue_for_alert(
            acme.id,
            alert.id,
            &hook,
            &key,
            "Port 23 open",
            &json!({}),
            t
        )
        .await
        .unwrap());
    let history_before = old.alert_history(acme.id, alert.id).await.unwrap();
    let queued_before = old.outbox_queues(t + 10).await.unwrap();
    drop(old);

    let new = Store::connect_with(&url, opts).await.expect("migrated");
    assert_eq!(new.alert(acme.id, alert.id).await.unwrap(), alert);
    assert_eq!(
        new.alert_history(acme.id, alert.id).await.unwrap(),
        history_before
    );
    assert_eq!(new.outbox_queues(t + 10).await.unwrap(), queued_before);
    // The new kind is stored, and the old rules hold: one open alert per
    // condition, and removing the agent removes its alerts.
    let device = new
        .open_alert(
            acme.id,
            a.id,
            "device:00:1b:63:00:00:01",
            Condition::new_device(),
            false,
            t,
        )
        .await
        .unwrap();
    assert_eq!(device.condition, Condition::new_device());
    let again = new
        .open_alert(
            acme.id,
            a.id,
            "device:00:1b:63:00:00:01",
            Condition::new_device(),
            false,
            t,
        )
        .await
        .unwrap();
    assert_eq!(again.id, device.id, "one open alert per condition");
    // SQLite: the tables that referenced the old table reference the new one.
    if new.backend() == vigil_store::Backend::Sqlite {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        for child in ["alert_events", "outbox"] {
            let parents: Vec<String> =
                sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list($1)")
                    .bind(child)
                    .fetch_all(&pool)
                    .await
                    .expect("foreign keys");
            assert!(
                parents.contains(&"alerts".to_string()),
                "{child}: {parents:?}"
            );
            assert!(
                !parents.iter().any(|p| p.starts_with("alerts_")),
                "{child}: {parents:?}"
            );
        }
    }
}
