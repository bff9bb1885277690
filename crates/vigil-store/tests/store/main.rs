//! Integration tests of `vigil-store`: every scenario runs against a fresh
//! SQLite file (`…::sqlite::<name>`) and a fresh PostgreSQL database
//! (`…::postgres::<name>`); see the `vigil-testdb` crate.

/// Runs each listed `async fn(&TestDb)` once per backend.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = vigil_testdb::sqlite().await;
                    assert_eq!(db.store.backend(), vigil_store::Backend::Sqlite);
                    super::$name(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = vigil_testdb::postgres().await else {
                        return;
                    };
                    assert_eq!(db.store.backend(), vigil_store::Backend::Postgres);
                    super::$name(&db).await;
                }
            )*
        }
    };
}

mod fixtures;

mod agent_events;
mod agents;
mod alerts;
mod audit;
mod compliance;
mod deployment_keys;
mod devices;
mod identity;
mod input;
mod install_jobs;
mod isolation;
mod leases;
mod maintenance;
mod migrations;
mod notify;
mod outbox_fairness;
mod peers;
mod pg_dump;
mod retention;
mod scans;
mod schema_version;
mod sqlite_file;
mod tasks;
mod two_factor;
mod updates;
mod upgrade;
