//! The REST and agent APIs against a real server on loopback: tenancy,
//! roles, bad input, agent credentials and the OpenAPI document. Every
//! scenario runs against a fresh SQLite file (`…::sqlite::<name>`) and a
//! fresh PostgreSQL database (`…::postgres::<name>`); see the
//! `vigil-testdb` crate.

/// Runs each listed `async fn(Server)` once per backend, each time on a
/// server of its own with a fresh database: started by
/// `Server::start`, or by `start = f` (an `async fn(TestDb) -> Server` of
/// the calling module, e.g. one that configures the server), in modules
/// named `sqlite` and `postgres` unless `in a, b` names them.
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        api_tests!(start = crate::common::Server::start, in sqlite, postgres: $($name),*);
    };
    (start = $start:path: $($name:ident),* $(,)?) => {
        api_tests!(start = $start, in sqlite, postgres: $($name),*);
    };
    (start = $start:path, in $sqlite:ident, $postgres:ident: $($name:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let db = vigil_testdb::sqlite().await;
                    assert_eq!(db.store.backend(), vigil_store::Backend::Sqlite);
                    super::$name($start(db).await).await;
                }
            )*
        }

        mod $postgres {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let Some(db) = vigil_testdb::postgres().await else {
                        return;
                    };
                    assert_eq!(db.store.backend(), vigil_store::Backend::Postgres);
                    super::$name($start(db).await).await;
                }
            )*
        }
    };
}

mod agent_auth;
mod alert_endings;
mod alerts;
mod audit;
mod bad_input;
mod common;
mod compliance_csv;
mod compliance_scope;
mod console_cookies;
mod console_devices;
mod deployment_keys;
mod devices;
mod followup;
mod install_jobs;
mod install_windows;
mod login_tokens;
mod maintenance;
mod openapi;
mod outside_schedule;
mod retention;
mod roles;
mod tenancy;
mod trends;
