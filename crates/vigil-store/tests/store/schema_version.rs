//! A database a newer vigil migrated is refused when opened, with a message
//! that says what to do, and left exactly as it was.

use crate::fixtures::*;
use vigil_store::{Backend, Store, StoreError};
use vigil_testdb::{options, TestDb};

backend_tests!(a_database_of_a_newer_vigil_is_refused_and_left_alone);

/// A schema step no build of this vigil has.
const FUTURE: i64 = 20990101000000;

async fn a_database_of_a_newer_vigil_is_refused_and_left_alone(db: &TestDb) {
    let acme = account(&db.store, "Acme").await;
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                  execution_time) VALUES ($1, 'from the future', TRUE, $2, 0)";
    let steps = "SELECT COUNT(*) FROM _sqlx_migrations";
    let recorded = match db.store.backend() {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query(insert)
                .bind(FUTURE)
                .bind(vec![0u8; 48])
                .execute(&pool)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(steps).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query(insert)
                .bind(FUTURE)
                .bind(vec![0u8; 48])
                .execute(&pool)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(steps).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    };

    let refused = Store::connect_with(&db.url, options()).await;
    let e = match refused {
        Err(e @ StoreError::SchemaTooNew { .. }) => e,
        other => panic!("expected SchemaTooNew, got {other:?}"),
    };
    let StoreError::SchemaTooNew { found, known } = e else {
        unreachable!()
    };
    assert_eq!(found, FUTURE);
    assert!((20250110000005..FUTURE).contains(&known), "{known}");
    assert_eq!(
        e.to_string(),
        format!(
            "the database is at schema version {FUTURE}, newer than this vigil {} knows \
             (up to {known}): upgrade vigil or restore a backup made by this version",
            env!("CARGO_PKG_VERSION")
        )
    );

    // Nothing was changed: the steps are as they were, the data is there.
    let after: i64 = match db.store.backend() {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(steps).fetch_one(&pool).await.unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(steps).fetch_one(&pool).await.unwrap()
        }
    };
    assert_eq!(after, recorded);
    assert_eq!(db.store.account(acme.id).await.unwrap(), acme);
}
