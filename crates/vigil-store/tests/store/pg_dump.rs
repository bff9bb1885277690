//! Backing up and restoring a PostgreSQL database with PostgreSQL's own
//! tools, exactly as the README's "Backups and upgrades" says: `pg_dump
//! --format=custom`, `createdb` and `pg_restore` into the new database. A
//! database filled through the store comes back with every row of every
//! table, and the store reads it as before (logins, sealed secrets, …).

use crate::fixtures::*;
use crate::upgrade::contents;
use serde_json::json;
use sqlx::Connection;
use std::process::Command;
use std::time::Duration;
use vigil_core::{AccountKind, Condition, Plan, PortList, PortState};
use vigil_store::*;
use vigil_testdb::options;

const SECRETS_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "Restore-me-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_dump_and_pg_restore_bring_back_every_row() {
    let Some(db) = vigil_testdb::postgres().await else {
        return;
    };
    let bin = vigil_testdb::postgres_bin()
        .expect("pg_dump, createdb and pg_restore (Debian: postgresql-client)");
    let s = &db.store;
    s.use_keyring(Keyring::parse(SECRETS_KEY).unwrap()).unwrap();
    let (token, account) = fill(s).await;
    // (Reading creates the server's id: before the rows are taken.)
    let api_before = reads(s, account).await;
    let before = contents(&db.url, Backend::Postgres).await;

    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("vigil.dump");
    let restored = format!("vigil_restored_{}", uuid_like());
    let restored_url = vigil_testdb::with_database(&db.url, &restored);
    let maintenance_url = vigil_testdb::with_database(&db.url, "postgres");
    let user = db
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|who| who.split(':').next())
        .expect("a user in the URL")
        .to_string();
    let run = |tool: &str, args: &[&str]| {
        let out = Command::new(bin.join(tool))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let dump_arg = format!("--file={}", dump.display());
    // The README's commands, with this test's URLs.
    run("pg_dump", &["--format=custom", &dump_arg, &db.url]);
    run(
        "createdb",
        &[
            &format!("--maintenance-db={maintenance_url}"),
            &format!("--owner={user}"),
            &restored,
        ],
    );
    run(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            &format!("--dbname={restored_url}"),
            dump.to_str().unwrap(),
        ],
    );

    let after = contents(&restored_url, Backend::Postgres).await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (table, rows) in &before {
        assert_eq!(Some(rows), after.get(table), "{table}");
    }
    let store = Store::connect_with(&restored_url, options())
        .await
        .expect("the store opens the restored database");
    store
        .use_keyring(Keyring::parse(SECRETS_KEY).unwrap())
        .unwrap();
    assert_eq!(reads(&store, account).await, api_before);
    assert!(store
        .verify_login("owner@restore.example", PASSWORD)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .authenticate_token(&token)
            .await
            .unwrap()
            .map(|(_, a)| a),
        Some(account)
    );
    // And it is a working database: new rows go in beside the old ones.
    let more = store
        .create_account("After restore", AccountKind::Member)
        .await
        .unwrap();
    assert_eq!(store.account(more.id).await.unwrap(), more);
    store.close().await;
    drop_database(&db.url, &restored).await;
}

/// An account with users, a token, agents, a policy, results, alerts,
/// contacts (sealed), rules, notifications, compliance and maintenance.
/// Returns the API token and the account.
async fn fill(s: &Store) -> (String, AccountId) {
    let acme = s
        .create_account("Restore Corp", AccountKind::Organization)
        .await
        .unwrap();
    let owner = s
        .create_user(acme.id, "owner@restore.example", PASSWORD, Role::Owner)
        .await
        .unwrap();
    s.create_user(acme.id, "viewer@restore.example", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    let (_, token) = s.create_api_token(acme.id, owner.id, "ci").await.unwrap();
    let (office, _) = agent(s, &acme, "office").await;
    let (lab, _) = agent(s, &acme, "lab").await;
    s.record_heartbeat(
        acme.id,
        office.id,
        &Heartbeat {
            now: now(),
            public_addr: Some("198.51.100.20"),
            version: Some("0.2.0"),
            os: Some("linux"),
            hostname: Some("office-gw"),
        },
    )
    .await
    .unwrap();
    s.set_tags(acme.id, lab.id, &["lab"]).await.unwrap();
    s.put_policy(acme.id, office.id, &policy()).await.unwrap();
    let ports = [
        PortResult {
            port: 22,
            state: PortState::Open,
            details: None,
        },
        PortResult {
            port: 8080,
            state: PortState::Open,
            details: None,
        },
    ];
    let probed = PortList::parse("1-65535").unwrap();
    for (i, target) in ["agent_host", "observed_address"].iter().enumerate() {
        s.ingest_result(
            acme.id,
            office.id,
            &NewScanResult {
                upload_id: &format!("u-{i}"),
                target,
                started_at: now() - 60,
                finished_at: now(),
                ports: &ports,
                addr: Some("127.0.0.1"),
                task_id: None,
                probed: Some(vigil_store::Probed {
                    ports: &probed,
                    filtered_not_listed: 65533,
                    unreachable_not_listed: 0,
                }),
            },
        )
        .await
        .unwrap();
    }
    let t = now();
    let open = s
        .open_alert(
            acme.id,
            office.id,
            "agent_host",
            Condition::unauthorized_open(8080),
            false,
            t,
        )
        .await
        .unwrap();
    s.acknowledge_alert_as(acme.id, open.id, "owner@restore.example", Some("on it"), t)
        .await
        .unwrap();
    let down = s
        .open_alert(
            acme.id,
            lab.id,
            "agent_host",
            Condition::service_down(443),
            false,
            t,
        )
        .await
        .unwrap();
    s.resolve_alert(acme.id, down.id, t + 10).await.unwrap();
    let mail = s
        .create_contact(acme.id, "Ops", Channel::Email, "ops@restore.example")
        .await
        .unwrap();
    s.create_rule(acme.id, mail.id, None, &["unauthorized_port_open"])
        .await
        .unwrap();
    s.enqueue_for_alert(
        acme.id,
        open.id,
        &mail,
        &format!("alert:{}:raised", open.id),
        "Port 8080 open",
        &json!({"title": "Port 8080 open"}),
        t,
    )
    .await
    .unwrap();
    let scope: vigil_core::compliance::ComplianceScope = serde_json::from_value(json!({
        "ad": {"url": "ldaps://dc1.restore.example",
               "bind": {"method": "simple", "bind_dn": "svc@restore.example"},
               "base_dns": ["DC=restore,DC=example"]},
        "ip": {"enabled": true, "ranges": ["198.51.100.0/24"]}
    }))
    .unwrap();
    s.put_compliance_scope(acme.id, &scope, Some("bind secret"))
        .await
        .unwrap();
    let window: vigil_core::maintenance::Window = serde_json::from_value(json!({
        "name": "patch night",
        "schedule": {"kind": "weekly", "days": [0], "from": "02:00", "to": "04:00",
                     "time_zone": "Europe/Paris"},
        "scope": {"kind": "account"}
    }))
    .unwrap();
    s.create_window(acme.id, &window, Some("owner@restore.example"), t)
        .await
        .unwrap();
    let _ = s
        .create_enrollment(acme.id, "later", Plan::Community, Duration::from_secs(600))
        .await
        .unwrap();
    (token, acme.id)
}

/// What the API shows of the account, as text to compare.
async fn reads(s: &Store, account: AccountId) -> String {
    let mut out = format!("{:?}\n", s.account(account).await.unwrap());
    out += &format!("{:?}\n", s.users(account).await.unwrap());
    out += &format!("{:?}\n", s.api_tokens(account).await.unwrap());
    for a in s.agents(account).await.unwrap() {
        out += &format!("{a:?}\n{:?}\n", s.policy(account, a.id).await.unwrap());
        out += &format!("{:?}\n", s.results(account, a.id, 10).await.unwrap());
    }
    out += &format!(
        "{:?}\n",
        s.alerts(account, &AlertFilter::default()).await.unwrap()
    );
    for a in s.alerts(account, &AlertFilter::default()).await.unwrap() {
        out += &format!("{:?}\n", s.alert_history(account, a.id).await.unwrap());
    }
    for c in s.contacts(account).await.unwrap() {
        out += &format!(
            "{c:?}\n{:?}\n",
            s.deliveries(account, c.id, 10).await.unwrap()
        );
    }
    out += &format!("{:?}\n", s.rules(account).await.unwrap());
    out += &format!("{:?}\n", s.compliance_scope(account).await.unwrap());
    out += &format!("{:?}\n", s.compliance_ad_password(account).await.unwrap());
    out += &format!("{:?}\n", s.windows(account).await.unwrap());
    out += &format!("{:?}\n", s.server_id().await.unwrap());
    out
}

fn uuid_like() -> String {
    AccountId::random().to_string().replace('-', "")
}

async fn drop_database(url: &str, database: &str) {
    if let Ok(mut c) = sqlx::PgConnection::connect(url).await {
        let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
        let _ = sqlx::query(&sql).execute(&mut c).await;
        let _ = c.close().await;
    }
}
