//! Migrations that rebuild a table keep every row: the data is written by
//! the schema before the migration, then the migration runs.

use crate::fixtures::*;
use serde_json::json;
use vigil_core::Condition;
use vigil_store::{
    AccountId, AgentId, AlertId, AlertStatus, Backend, Channel, Store, StoreOptions,
};

/// The version before SQLite rebuilds `alerts` for *new device* alerts.
const BEFORE_NEW_DEVICE: i64 = 20250107000001;

backend_tests!(
    new_device_alerts_keep_alerts_history_and_notifications,
    contacts_keep_their_rows_without_the_channel_check
);

/// The version before the contacts' CHECK on the channel goes (issue 17).
const BEFORE_CHANNEL_REGISTRY: i64 = 20250110000000;

/// A database of its own at an old version: a file for SQLite, the test's
/// database emptied for PostgreSQL.
pub async fn old_database(db: &vigil_testdb::TestDb) -> String {
    match db.store.backend() {
        vigil_store::Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("old.db").display());
            std::mem::forget(dir); // kept until the process ends
            url
        }
        vigil_store::Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
                sqlx::query(sql).execute(&mut c).await.expect(sql);
            }
            db.url.clone()
        }
    }
}

async fn contacts_keep_their_rows_without_the_channel_check(db: &vigil_testdb::TestDb) {
    let url = old_database(db).await;
    let opts = StoreOptions::default();
    let old = Store::connect_migrated_to(&url, opts.clone(), BEFORE_CHANNEL_REGISTRY)
        .await
        .expect("the schema before");
    let acme = account(&old, "Acme").await;
    let hook = old
        .create_contact(acme.id, "Hook", Channel::Webhook, "https://hooks.example/x")
        .await
        .unwrap();
    let rule = old
        .create_rule(acme.id, hook.id, None, &["service_down"])
        .await
        .unwrap();
    drop(old);

    let new = Store::connect_with(&url, opts).await.expect("migrated");
    assert_eq!(new.contact(acme.id, hook.id).await.unwrap(), hook);
    assert_eq!(new.rules(acme.id).await.unwrap(), vec![rule]);
    let tg = r#"{"bot_token":"123:abc","chat_id":"-100123"}"#;
    let chat = new
        .create_contact(acme.id, "Chat", Channel::Telegram, tg)
        .await
        .unwrap();
    assert_eq!(new.contact(acme.id, chat.id).await.unwrap(), chat);
    // Deleting a contact still takes its rules along (the references
    // follow the rebuilt table).
    new.delete_contact(acme.id, hook.id).await.unwrap();
    assert!(new.rules(acme.id).await.unwrap().is_empty());
}

async fn new_device_alerts_keep_alerts_history_and_notifications(db: &vigil_testdb::TestDb) {
    // A database of its own, for each backend, at the version before.
    let url = old_database(db).await;
    let opts = StoreOptions::default();
    let old = Store::connect_migrated_to(&url, opts.clone(), BEFORE_NEW_DEVICE)
        .await
        .expect("the schema before");
    let acme = account(&old, "Acme").await;
    // An agent as that version stored it (today's store reads columns,
    // such as its tags, that version does not have).
    let a = agent_in_old_schema(&url, db.store.backend(), acme.id).await;
    let t = now();
    let hook = old
        .create_contact(acme.id, "Hook", Channel::Webhook, "https://hooks.example/x")
        .await
        .unwrap();
    // Raised as that version's store did: today's store reads and writes
    // columns that version does not have yet.
    let id = AlertId::random();
    raise_in_old_schema(&url, db.store.backend(), acme.id, a.id, id, t).await;
    let key = format!("alert:{id}:raised");
    assert!(old
        .enqueue_for_alert(acme.id, id, &hook, &key, "Port 23 open", &json!({}), t)
        .await
        .unwrap());
    let queued_before = old.outbox_queues(t + 10).await.unwrap();
    drop(old);

    let new = Store::connect_with(&url, opts).await.expect("migrated");
    let alert = new.alert(acme.id, id).await.unwrap();
    assert_eq!(
        (
            alert.condition,
            alert.status,
            alert.raised_at,
            alert.target.as_str()
        ),
        (
            Condition::unauthorized_open(23),
            AlertStatus::Open,
            t,
            "agent_host"
        )
    );
    assert_eq!(
        (
            alert.resolved_at,
            alert.resolution,
            alert.resolved_by.clone()
        ),
        (None, None, None)
    );
    let history = new.alert_history(acme.id, id).await.unwrap();
    let entries: Vec<_> = history.iter().map(|e| (e.seq, e.at, e.kind)).collect();
    assert_eq!(
        entries,
        [
            (1, t, vigil_store::AlertEventKind::Raised),
            (2, t, vigil_store::AlertEventKind::NotificationQueued)
        ],
        "{history:?}"
    );
    assert_eq!(new.outbox_queues(t + 10).await.unwrap(), queued_before);
    // The alert from before resolves with its reason like any other.
    let resolved = new
        .resolve_alert_as(
            acme.id,
            id,
            t + 20,
            vigil_core::Resolution::PolicyChanged,
            Some("alice@acme.example"),
        )
        .await
        .unwrap();
    assert_eq!(
        (resolved.resolution, resolved.resolved_by.as_deref()),
        (
            Some(vigil_core::Resolution::PolicyChanged),
            Some("alice@acme.example")
        )
    );
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

/// An open *unauthorized port 23/tcp* alert with its `raised` history
/// entry, written with the SQL of the schema before [`BEFORE_NEW_DEVICE`].
/// Enrolls an agent with plain SQL, as the schema before knows agents.
async fn agent_in_old_schema(url: &str, backend: Backend, account: AccountId) -> Agent {
    let id = AgentId::random();
    let sql = "INSERT INTO agents (id, account_id, name, plan, credential_hash, enrolled_at, \
               last_health) VALUES ($1, $2, 'home', 'extended', 'unused', $3, 'communicating')";
    let (ids, account_s) = (id.to_string(), account.to_string());
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
            sqlx::query(sql)
                .bind(&ids)
                .bind(&account_s)
                .bind(now())
                .execute(&pool)
                .await
                .expect("agent");
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            sqlx::query(sql)
                .bind(&ids)
                .bind(&account_s)
                .bind(now())
                .execute(&pool)
                .await
                .expect("agent");
        }
    }
    Agent { id }
}

/// The one field of an agent this test needs.
struct Agent {
    id: AgentId,
}

async fn raise_in_old_schema(
    url: &str,
    backend: Backend,
    account: AccountId,
    agent: AgentId,
    id: AlertId,
    t: i64,
) {
    let (id, account, agent) = (id.to_string(), account.to_string(), agent.to_string());
    let alert = "INSERT INTO alerts (id, account_id, agent_id, target, kind, port, status, \
             flapping, raised_at, last_event_seq) \
         VALUES ($1, $2, $3, 'agent_host', 'unauthorized_open', 23, 'open', FALSE, $4, 1)";
    let raised = "INSERT INTO alert_events (alert_id, account_id, seq, occurred_at, kind) \
         VALUES ($1, $2, 1, $3, 'raised')";
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
            sqlx::query(alert)
                .bind(&id)
                .bind(&account)
                .bind(&agent)
                .bind(t)
                .execute(&pool)
                .await
                .expect("alert");
            sqlx::query(raised)
                .bind(&id)
                .bind(&account)
                .bind(t)
                .execute(&pool)
                .await
                .expect("event");
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            sqlx::query(alert)
                .bind(&id)
                .bind(&account)
                .bind(&agent)
                .bind(t)
                .execute(&pool)
                .await
                .expect("alert");
            sqlx::query(raised)
                .bind(&id)
                .bind(&account)
                .bind(t)
                .execute(&pool)
                .await
                .expect("event");
        }
    }
}
