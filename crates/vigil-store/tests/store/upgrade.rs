//! Upgrading from the last release: a database as vigil 0.1.0 left it is
//! opened by this store, which migrates it, and everything in it is still
//! there and reads back through the store's API as it was written.
//!
//! The databases are `tests/fixtures/v0.1.0-sqlite.sql` and
//! `v0.1.0-postgres.sql`, made by `tests/fixtures/make-release-fixture`
//! from that release's own migration files (`git archive v0.1.0`) and
//! `v0.1.0-seed.sql`, rows of every table that vigil 0.1.0's store wrote
//! through its API (the seed's header lists the passwords and keys).
//!
//! Two kinds of checks, so that a migration that drops or mangles data
//! fails here: every row of every table of the release keeps every value
//! it had in the columns that are still there (a migration that rewrites a
//! column on purpose lists it in [`REWRITTEN`], one that drops a table in
//! [`DROPPED`], saying why); and the API reads back what the fixture holds.

use crate::migrations::old_database;
use sqlx::{Connection, Row};
use std::collections::{BTreeMap, BTreeSet};
use vigil_core::compliance::EndpointStatus;
use vigil_core::{AccountKind, Condition, PolicyTarget, Resolution};
use vigil_store::*;
use vigil_testdb::{options, TestDb};

backend_tests!(release_0_1_0_upgrades_keeping_every_row);

const SQLITE_FIXTURE: &str = include_str!("../fixtures/v0.1.0-sqlite.sql");
const POSTGRES_FIXTURE: &str = include_str!("../fixtures/v0.1.0-postgres.sql");

/// Every table of vigil 0.1.0's schema: the fixture must have rows in each.
const RELEASE_TABLES: &[&str] = &[
    "_sqlx_migrations",
    "accounts",
    "agent_events",
    "agent_moves",
    "agents",
    "alert_events",
    "alerts",
    "api_tokens",
    "audit_log",
    "compliance_assessments",
    "compliance_endpoints",
    "compliance_peers",
    "compliance_scopes",
    "contacts",
    "deployment_key_uses",
    "deployment_keys",
    "device_events",
    "devices",
    "enrollment_tokens",
    "held_notices",
    "maintenance_windows",
    "network_sweeps",
    "network_uploads",
    "notification_rules",
    "outbox",
    "policies",
    "recovery_codes",
    "scan_results",
    "scan_tasks",
    "server_meta",
    "target_states",
    "users",
];

/// `(table, column, why)`: columns a migration since 0.1.0 rewrites on
/// purpose; their values are not compared with the release's.
const REWRITTEN: &[(&str, &str, &str)] = &[];

/// `(table, why)`: tables of 0.1.0 a migration since drops on purpose.
const DROPPED: &[(&str, &str)] = &[];

/// The fixture's secrets key, password and secrets (see the seed's header).
const SECRETS_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
const PASSWORD: &str = "fixture-password-0.1.0";
const ALICE_TOKEN: &str = "vgl_8SZortFZ4Ay3-3xqx7lzL87Iz7eURuFeJZiSXzi7dM0";
const OFFICE_CREDENTIAL: &str = "vga_n-Nf4PL4tkihXkZhvZA7iqwiRY5SpLDhpvTeR67cSD8";
const WEB_CREDENTIAL: &str = "vga_jq0TQGEI8qB_u2tnDbIZe9CYN1BlN4ehvCa6IKTMlso";

const SERVER_ID: &str = "7d6f61f9-64c4-485d-9c44-9183f9066014";
const ACME: &str = "f2cde3ab-f8c3-4565-aaae-192d42637143";
const MARTINS: &str = "58b6ef0f-b593-4399-ae26-cf103d4ba226";
const ALICE: &str = "c0185c06-9ba3-4594-aa27-daee58a4796c";
const BOB: &str = "12ad6dab-1571-4a02-ab01-61aa2306d282";
const OFFICE: &str = "34e61752-afc6-44b7-bdd7-172e795e3e85";
const WEB: &str = "6d2f46b3-7304-4c63-ac55-231647f0c5dd";
const HOME: &str = "124d6495-61f6-42d1-ada9-495ca4fa968e";
const PORT_8080_ALERT: &str = "be29c05d-eafd-4952-94ea-247b517c3901";
const NAS_DOWN_ALERT: &str = "4351e051-0052-4617-9866-07630bd270c8";
const HOME_SILENT_ALERT: &str = "388b9e0a-84e7-48f3-86da-a789d5fc6746";
const OPS: &str = "1ad29616-b33c-4212-b7c9-74a89e089c13";
const HOOK: &str = "9c57c31a-6aef-459e-9974-00cf86bf1478";
const TASK: &str = "b8567f6c-f076-4f62-9a70-a2c0e9ca8fa2";
const PRINTER: &str = "4cc19d11-8d46-4921-a7b1-038823795527";

async fn release_0_1_0_upgrades_keeping_every_row(db: &TestDb) {
    let backend = db.store.backend();
    let url = old_database(db).await;
    load_fixture(&url, backend).await;
    let before = contents(&url, backend).await;
    let tables: BTreeSet<&str> = before.keys().map(String::as_str).collect();
    assert_eq!(
        tables,
        RELEASE_TABLES.iter().copied().collect(),
        "the fixture holds vigil 0.1.0's tables"
    );
    let empty: Vec<&String> = before
        .iter()
        .filter(|(_, t)| t.rows == 0)
        .map(|(name, _)| name)
        .collect();
    assert!(
        empty.is_empty(),
        "tables without rows in the fixture: {empty:?}"
    );

    let store = Store::connect_with(&url, options())
        .await
        .expect("this store opens (and migrates) vigil 0.1.0's database");
    store
        .use_keyring(Keyring::parse(SECRETS_KEY).unwrap())
        .unwrap();
    let after = contents(&url, backend).await;
    let lost = differences(&before, &after);
    assert!(
        lost.is_empty(),
        "upgrading vigil 0.1.0's database lost or changed data (a migration that \
         does this on purpose says so in REWRITTEN or DROPPED):\n{}",
        lost.join("\n")
    );
    reads_back(&store).await;
    // Opening it again (nothing left to migrate) changes nothing.
    store.close().await;
    let read = contents(&url, backend).await;
    let again = Store::connect_with(&url, options()).await.expect("reopen");
    again.close().await;
    let changed = differences(&read, &contents(&url, backend).await);
    assert!(
        changed.is_empty(),
        "reopening changed:\n{}",
        changed.join("\n")
    );
}

/// Runs the fixture's SQL on the empty database `url`, on a connection of
/// its own (pg_dump's SQL empties the session's search path).
async fn load_fixture(url: &str, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            use std::str::FromStr;
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .create_if_missing(true);
            let mut c = sqlx::SqliteConnection::connect_with(&opts)
                .await
                .expect("connect");
            sqlx::raw_sql(SQLITE_FIXTURE)
                .execute(&mut c)
                .await
                .expect("load the SQLite fixture");
            c.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::raw_sql(POSTGRES_FIXTURE)
                .execute(&mut c)
                .await
                .expect("load the PostgreSQL fixture");
            c.close().await.unwrap();
        }
    }
}

/// A table's rows: how many, and each column's values (as text, sorted).
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    rows: usize,
    columns: BTreeMap<String, Vec<Option<String>>>,
}

/// Every table of the database at `url`.
pub async fn contents(url: &str, backend: Backend) -> BTreeMap<String, Table> {
    let mut out = BTreeMap::new();
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for t in tables {
                let cols: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY cid")
                        .bind(&t)
                        .fetch_all(&mut c)
                        .await
                        .unwrap();
                let mut columns = BTreeMap::new();
                let mut rows = 0;
                for col in cols {
                    // quote(): the value with its type (1 and '1' differ).
                    let sql = format!("SELECT quote(\"{col}\") FROM \"{t}\"");
                    let mut values: Vec<Option<String>> =
                        sqlx::query_scalar(&sql).fetch_all(&mut c).await.unwrap();
                    values.sort();
                    rows = values.len();
                    columns.insert(col, values);
                }
                out.insert(t, Table { rows, columns });
            }
            c.close().await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            let cols = sqlx::query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
            )
            .fetch_all(&mut c)
            .await
            .unwrap();
            for row in cols {
                let (t, col): (String, String) = (row.get(0), row.get(1));
                let sql = format!("SELECT \"{col}\"::text FROM \"{t}\"");
                let mut values: Vec<Option<String>> =
                    sqlx::query_scalar(&sql).fetch_all(&mut c).await.unwrap();
                values.sort();
                let table = out.entry(t).or_insert(Table {
                    rows: 0,
                    columns: BTreeMap::new(),
                });
                table.rows = values.len();
                table.columns.insert(col, values);
            }
            c.close().await.unwrap();
        }
    }
    out
}

/// How `after` differs from `before` in the rows of `before`'s tables (but
/// for what [`REWRITTEN`] and [`DROPPED`] allow): tables or columns gone,
/// row counts or values changed. `_sqlx_migrations` only has to keep
/// `before`'s steps (this build records its newer ones).
fn differences(before: &BTreeMap<String, Table>, after: &BTreeMap<String, Table>) -> Vec<String> {
    let mut lost = Vec::new();
    for (name, old) in before {
        if DROPPED.iter().any(|(t, _)| t == name) {
            continue;
        }
        let Some(new) = after.get(name) else {
            lost.push(format!("table {name} is gone"));
            continue;
        };
        if name == "_sqlx_migrations" {
            let versions = |t: &Table| -> BTreeSet<Option<String>> {
                t.columns["version"].iter().cloned().collect()
            };
            let missing: Vec<_> = versions(old).difference(&versions(new)).cloned().collect();
            if !missing.is_empty() {
                lost.push(format!("schema steps no longer recorded: {missing:?}"));
            }
            continue;
        }
        if new.rows != old.rows {
            lost.push(format!("{name}: {} rows, {} before", new.rows, old.rows));
        }
        for (col, values) in &old.columns {
            if REWRITTEN.iter().any(|(t, c, _)| t == name && c == col) {
                continue;
            }
            match new.columns.get(col) {
                None => lost.push(format!("column {name}.{col} is gone")),
                Some(now) if now != values => lost.push(format!(
                    "{name}.{col} changed:\n  before: {values:?}\n  after:  {now:?}"
                )),
                Some(_) => {}
            }
        }
    }
    lost
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// What the store's API reads from the upgraded fixture.
async fn reads_back(s: &Store) {
    let (acme, martins): (AccountId, AccountId) = (id(ACME), id(MARTINS));
    let (office, web, home): (AgentId, AgentId, AgentId) = (id(OFFICE), id(WEB), id(HOME));
    assert_eq!(s.server_id().await.unwrap().to_string(), SERVER_ID);

    // Accounts, users (their passwords), tokens, two-factor login.
    let a = s.account(acme).await.unwrap();
    assert_eq!(
        (a.name.as_str(), a.kind),
        ("Acme Corp", AccountKind::Organization)
    );
    let m = s.account(martins).await.unwrap();
    assert_eq!(
        (m.name.as_str(), m.kind),
        ("The Martins", AccountKind::Member)
    );
    for (email, account, role) in [
        ("alice@acme.example", acme, Role::Owner),
        ("bob@acme.example", acme, Role::Admin),
        ("carol@acme.example", acme, Role::Viewer),
        ("dave@martins.example", martins, Role::Owner),
    ] {
        let user = s
            .verify_login(email, PASSWORD)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{email} logs in with the fixture's password"));
        assert_eq!((user.account_id, user.role), (account, role), "{email}");
        assert_eq!(s.verify_login(email, "wrong password").await.unwrap(), None);
    }
    assert_eq!(s.users(acme).await.unwrap().len(), 3);
    let (user, account) = s.authenticate_token(ALICE_TOKEN).await.unwrap().unwrap();
    assert_eq!((user.id.to_string().as_str(), account), (ALICE, acme));
    let mut tokens: Vec<_> = s
        .api_tokens(acme)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.expires_at.is_some()))
        .collect();
    tokens.sort();
    assert_eq!(
        tokens,
        [
            ("ci".to_string(), false),
            ("console session".to_string(), true)
        ]
    );
    let bob: UserId = id(BOB);
    assert_eq!(s.two_factor_status(acme, bob).await.unwrap(), (false, true));
    let totp = s.totp(acme, bob).await.unwrap().expect("bob's TOTP");
    assert_eq!(
        (totp.secret.as_str(), totp.last_step),
        ("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", Some(57_897_840))
    );
    assert_eq!(s.recovery_codes_left(acme, bob).await.unwrap(), 2);

    // Agents, their policies, tasks, results and evaluation state.
    let mut agents = s.agents(acme).await.unwrap();
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    let facts: Vec<_> = agents
        .iter()
        .map(|a| {
            (
                a.id,
                a.name.as_str(),
                a.hostname.as_deref(),
                a.public_addr.as_deref(),
                a.version.as_deref(),
                a.tags.clone(),
            )
        })
        .collect();
    assert_eq!(
        facts,
        [
            (
                office,
                "office",
                Some("office-gw"),
                Some("198.51.100.20"),
                Some("0.1.0"),
                vec!["office".to_string(), "paris".to_string()]
            ),
            (
                web,
                "web-01",
                Some("web-01"),
                Some("203.0.113.7"),
                Some("0.1.0"),
                vec![]
            ),
        ]
    );
    assert_eq!(s.agents(martins).await.unwrap()[0].id, home);
    let authed = s
        .authenticate_agent(office, OFFICE_CREDENTIAL)
        .await
        .unwrap();
    assert_eq!(authed.map(|a| a.id), Some(office));
    let authed = s.authenticate_agent(web, WEB_CREDENTIAL).await.unwrap();
    assert_eq!(authed.map(|a| a.id), Some(web));
    let policy = s
        .policy(acme, office)
        .await
        .unwrap()
        .expect("office's policy");
    assert_eq!(
        (
            policy.enabled,
            policy.authorized.to_string(),
            policy.monitored.to_string(),
            policy.interval.minutes()
        ),
        (true, "22,443".to_string(), "443".to_string(), 15)
    );
    assert_eq!(
        policy.targets,
        [
            PolicyTarget::AgentHost,
            PolicyTarget::ObservedAddress,
            PolicyTarget::Host("nas.acme.example".into())
        ]
    );
    let task = s.task(acme, office, id(TASK)).await.unwrap();
    assert_eq!(
        (
            task.target_key.as_str(),
            task.ports.as_str(),
            task.completed_at.is_some()
        ),
        ("agent_host", "1-65535", true)
    );
    let results = s.results(acme, office, 10).await.unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(
        (
            r.upload_id.as_str(),
            r.task_id.as_deref(),
            r.probed_count,
            r.probed_ports.as_deref()
        ),
        ("u-office-0001", Some(TASK), Some(65535), Some("1-65535"))
    );
    let ports: Vec<u16> = r.ports.iter().map(|p| p.port).collect();
    assert_eq!(ports, [22, 443, 8080]);
    let ssh = r.ports[0].details.as_deref().expect("what listens on 22");
    assert_eq!(
        ssh.banner.as_deref(),
        Some("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3")
    );
    assert_eq!(
        ssh.process.as_ref().map(|p| (p.name.as_str(), p.pid)),
        Some(("sshd", 612))
    );
    let web_port = r.ports[2].details.as_deref().expect("what listens on 8080");
    assert_eq!(
        web_port.http.as_ref().and_then(|h| h.server.as_deref()),
        Some("SimpleHTTP/0.6 Python/3.11.2")
    );
    assert_eq!(s.results(martins, home, 10).await.unwrap().len(), 1);
    let state = s.target_state(acme, office, "agent_host").await.unwrap();
    assert_eq!(
        state.active_conditions(),
        [Condition::unauthorized_open(8080)]
    );

    // Alerts and their history.
    let mut alerts = s.alerts(acme, &AlertFilter::default()).await.unwrap();
    alerts.sort_by_key(|a| a.id.to_string());
    let open = s.alert(acme, id(PORT_8080_ALERT)).await.unwrap();
    assert_eq!(
        (
            open.condition,
            open.status,
            open.target.as_str(),
            open.acknowledged_by.as_deref(),
            open.ack_note.as_deref()
        ),
        (
            Condition::unauthorized_open(8080),
            AlertStatus::Open,
            "agent_host",
            Some("alice@acme.example"),
            Some("checking with the dev team")
        )
    );
    let down = s.alert(acme, id(NAS_DOWN_ALERT)).await.unwrap();
    assert_eq!(
        (
            down.condition,
            down.status,
            down.target.as_str(),
            down.resolution
        ),
        (
            Condition::service_down(443),
            AlertStatus::Resolved,
            "host:nas.acme.example",
            Some(Resolution::Cleared)
        )
    );
    assert_eq!(alerts.len(), 2);
    let history: Vec<&str> = s
        .alert_history(acme, open.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        history,
        [
            "raised",
            "acknowledged",
            "notification_queued",
            "notification_queued",
            "notification_delivered",
            "notification_failed"
        ]
    );
    let silent = s.alert(martins, id(HOME_SILENT_ALERT)).await.unwrap();
    assert_eq!(silent.condition, Condition::agent_not_communicating());
    let held = s
        .held_notice(martins, silent.id)
        .await
        .unwrap()
        .expect("held");
    assert_eq!((held.agent_id, held.phase), (home, HeldPhase::Open));

    // Contacts (sealed addresses), rules, notifications.
    let mut contacts: Vec<_> = s
        .contacts(acme)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.id.to_string(), c.name, c.channel, c.address))
        .collect();
    contacts.sort();
    assert_eq!(
        contacts,
        [
            (
                OPS.to_string(),
                "Ops team".to_string(),
                Channel::Email,
                "ops@acme.example".to_string()
            ),
            (
                HOOK.to_string(),
                "Chat hook".to_string(),
                Channel::Webhook,
                "https://hooks.acme.example/vigil/Zm9vYmFy".to_string()
            ),
        ]
    );
    let rules = s.rules(acme).await.unwrap();
    let reminding = rules
        .iter()
        .find(|r| r.contact_id.to_string() == OPS)
        .expect("the ops rule");
    assert_eq!(
        (
            reminding.agent_id,
            reminding.remind_every_minutes,
            reminding.escalation.clone()
        ),
        (
            None,
            Some(30),
            vec![vigil_core::followup::EscalationStep {
                after_minutes: 60,
                contacts: vec![HOOK.to_string()]
            }]
        )
    );
    assert_eq!(reminding.events.len(), 14, "{:?}", reminding.events);
    assert!(reminding
        .events
        .iter()
        .any(|e| e == "unauthorized_port_open"));
    let hook_rule = rules
        .iter()
        .find(|r| r.contact_id.to_string() == HOOK)
        .expect("the hook rule");
    assert_eq!(
        (hook_rule.agent_id, hook_rule.events.clone()),
        (
            Some(office),
            vec![
                "service_down".to_string(),
                "unauthorized_port_open".to_string()
            ]
        )
    );
    let sent = s.deliveries(acme, id(OPS), 10).await.unwrap();
    assert_eq!(
        sent.iter().map(|d| d.state).collect::<Vec<_>>(),
        [DeliveryState::Sent]
    );
    let failed = s.deliveries(acme, id(HOOK), 10).await.unwrap();
    assert_eq!(
        failed
            .iter()
            .map(|d| (d.state, d.last_error.as_deref()))
            .collect::<Vec<_>>(),
        [(DeliveryState::Queued, Some("connection refused"))]
    );

    // Compliance: scope (sealed AD password), schedule, the assessment.
    let (scope, has_password) = s.compliance_scope(acme).await.unwrap().expect("scope");
    assert!(has_password);
    let ad = scope.ad.expect("AD scope");
    assert_eq!(ad.url, "ldaps://dc1.acme.example");
    assert_eq!(
        s.compliance_ad_password(acme).await.unwrap().as_deref(),
        Some("Bind-Pa55word")
    );
    let schedule = s
        .compliance_schedule(acme)
        .await
        .unwrap()
        .expect("schedule");
    assert_eq!(
        (schedule.enabled, schedule.daily_at.as_deref()),
        (true, Some("02:30"))
    );
    let assessment = s
        .latest_assessment(acme)
        .await
        .unwrap()
        .expect("assessment");
    assert_eq!(
        (assessment.state, assessment.total, assessment.trigger),
        (AssessmentState::Done, 4, AssessmentTrigger::Schedule)
    );
    let (endpoints, total) = s
        .endpoints(acme, assessment.id, &Default::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(total, 4);
    let mut found: Vec<_> = endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.status))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("198.51.100.40", EndpointStatus::Unreachable),
            ("FILESRV", EndpointStatus::NoAgent),
            ("OFFICE-GW", EndpointStatus::ManagedHere),
            ("printer.acme.example", EndpointStatus::ManagedElsewhere),
        ]
    );
    let peers = s.peers(acme).await.unwrap();
    assert_eq!(
        peers
            .iter()
            .map(|p| (p.name.as_str(), p.api_token.as_str()))
            .collect::<Vec<_>>(),
        [(
            "Paris server",
            "vgl_peerTokenForParis0123456789abcdefABCDEF012"
        )]
    );
    let moving = s.agent_move(acme, web).await.unwrap().expect("web's move");
    assert_eq!(
        (moving.server_url.as_str(), moving.moved_at),
        ("https://vigil-paris.acme.example:8443", None)
    );

    // Deployment keys, histories, the audit log.
    let keys = s.deployment_keys(acme).await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.name.as_str(), k.use_count, k.max_uses))
            .collect::<Vec<_>>(),
        [("GPO roll-out", 1, Some(50))]
    );
    let uses = s.deployment_key_uses(acme, keys[0].id, 10).await.unwrap();
    assert_eq!(
        uses.iter()
            .map(|u| (u.agent_id, u.hostname.as_deref()))
            .collect::<Vec<_>>(),
        [(web, Some("web-01"))]
    );
    let (events, _) = s.agent_events(acme, office, 0, 10).await.unwrap();
    let mut kinds: Vec<_> = events
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("enrolled", "system"),
            ("policy_changed", "alice@acme.example")
        ]
    );
    let mut actions: Vec<_> = s
        .audit_log(acme, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.actor))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            (
                "login.success".to_string(),
                "alice@acme.example".to_string()
            ),
            (
                "policy.update".to_string(),
                "alice@acme.example".to_string()
            )
        ]
    );

    // The local network: devices, their history, the latest sweep.
    let mut devices = s.devices(acme, office).await.unwrap();
    devices.sort_by(|a, b| a.id.cmp(&b.id));
    let printer = devices
        .iter()
        .find(|d| d.id == PRINTER)
        .expect("the printer");
    assert_eq!(
        (
            printer.mac.map(|m| m.to_string()),
            printer.vendor.as_deref(),
            printer.addresses.clone(),
            printer.open_ports.clone(),
            printer.approved,
            printer.kind.as_deref()
        ),
        (
            Some("00:1b:a9:12:34:56".to_string()),
            Some("Brother Industries"),
            vec!["198.51.100.65".parse::<std::net::IpAddr>().unwrap()],
            vec![80, 443, 631, 9100],
            true,
            Some("printer")
        )
    );
    assert_eq!(devices.len(), 2);
    let history = s
        .device_history(acme, office, id(PRINTER), 10)
        .await
        .unwrap();
    let moved = history
        .iter()
        .find(|e| e.kind.as_str() == "moved")
        .expect("the printer's move");
    assert_eq!(
        (moved.from.clone(), moved.to.clone()),
        (
            vec!["198.51.100.60".parse::<std::net::IpAddr>().unwrap()],
            vec!["198.51.100.65".parse::<std::net::IpAddr>().unwrap()]
        )
    );
    let sweep = s.network_sweep(acme, office).await.unwrap().expect("sweep");
    assert_eq!(sweep.upload_id, "sweep-0002");
    assert!(sweep.report.contains("docker0"), "{}", sweep.report);
    let windows = s.windows(acme).await.unwrap();
    assert_eq!(
        windows
            .iter()
            .map(|w| (w.window.name.as_str(), w.created_by.as_deref()))
            .collect::<Vec<_>>(),
        [("patch night", Some("alice@acme.example"))]
    );
}
