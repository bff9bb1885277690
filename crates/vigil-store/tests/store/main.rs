//! Integration tests of `vigil-store`: every scenario runs against a fresh
//! SQLite file (`…::sqlite::<name>`) and a fresh PostgreSQL database
//! (`…::postgres::<name>`); see `harness.rs`.

/// Runs each listed `async fn(&TestDb)` once per backend.
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::harness::sqlite().await;
                    assert_eq!(db.store.backend(), vigil_store::Backend::Sqlite);
                    super::$name(&db).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = crate::harness::postgres().await else {
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
mod harness;

mod agents;
mod identity;
mod input;
mod isolation;
mod notify;
mod scans;
mod sqlite_file;
mod tasks;
