//! SQLite specifics: the database file and its settings.

use vigil_core::AccountKind;
use vigil_store::Store;
use vigil_testdb::options;

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/vigil.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect_with(&url, options()).await.unwrap();
    assert!(path.is_file(), "database file created with its directories");
    let account = store
        .create_account("x", AccountKind::Member)
        .await
        .unwrap();

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    // The store's own connections enforce foreign keys: a user of a missing
    // account is refused even though SQLite defaults to not checking.
    let refused = store
        .create_user(
            vigil_store::AccountId::random(),
            "a@b.example",
            "password1",
            vigil_store::Role::Owner,
        )
        .await;
    assert!(
        matches!(refused, Err(vigil_store::StoreError::NotFound)),
        "{refused:?}"
    );
    assert!(store
        .create_user(
            account.id,
            "a@b.example",
            "password1",
            vigil_store::Role::Owner
        )
        .await
        .is_ok());
    pool.close().await;
    store.close().await;

    // Reopening an existing file keeps the data.
    let again = Store::connect_with(&url, options()).await.unwrap();
    assert_eq!(again.account(account.id).await.unwrap(), account);
}

#[tokio::test]
async fn default_options_hash_with_the_recommended_cost() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/vigil.db", dir.path().display());
    let store = Store::connect(&url).await.unwrap();
    let a = store
        .create_account("x", AccountKind::Member)
        .await
        .unwrap();
    let u = store
        .create_user(
            a.id,
            "slow@hash.example",
            "password1",
            vigil_store::Role::Owner,
        )
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert_eq!(
        store
            .verify_login("slow@hash.example", "password1")
            .await
            .unwrap(),
        Some(u)
    );
}
