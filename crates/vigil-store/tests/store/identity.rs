//! Migrations, accounts, users and passwords, API tokens.

use crate::fixtures::*;
use vigil_core::AccountKind;
use vigil_store::{AccountId, Role, StoreError, UserId, API_TOKEN_PREFIX};
use vigil_testdb::TestDb;

backend_tests!(
    migrations_are_idempotent,
    accounts_and_users,
    login_checks_passwords,
    api_tokens_authenticate_and_revoke,
);

async fn migrations_are_idempotent(db: &TestDb) {
    let a = db
        .store
        .create_account("Before", AccountKind::Member)
        .await
        .unwrap();
    // Connecting again runs the migrator again: nothing to do, data kept.
    let second = db.reconnect().await;
    let third = db.reconnect().await;
    assert_eq!(second.account(a.id).await.unwrap(), a);
    let b = third
        .create_account("After", AccountKind::Organization)
        .await
        .unwrap();
    assert_eq!(db.store.account(b.id).await.unwrap().name, "After");
    second.close().await;
    third.close().await;
    // The first store is unaffected by the others closing.
    assert_eq!(db.store.account(a.id).await.unwrap(), a);
}

async fn accounts_and_users(db: &TestDb) {
    let s = &db.store;
    let member = s
        .create_account("  Alice ", AccountKind::Member)
        .await
        .unwrap();
    assert_eq!(member.name, "Alice");
    assert_eq!(member.kind, AccountKind::Member);
    assert!(member.created_at > 0);
    assert_eq!(s.account(member.id).await.unwrap(), member);
    assert_not_found(s.account(AccountId::random()).await);

    let org = account(s, "Acme").await;
    let owner = s
        .create_user(org.id, "Owner@Acme.Example", "correct horse", Role::Owner)
        .await
        .unwrap();
    assert_eq!(owner.email, "owner@acme.example");
    assert_eq!(owner.account_id, org.id);
    assert_eq!(owner.role, Role::Owner);

    // Emails are unique across accounts, case-insensitively.
    for (acct, email) in [
        (org.id, "owner@acme.example"),
        (member.id, "OWNER@acme.example"),
    ] {
        match s
            .create_user(acct, email, "another password", Role::Viewer)
            .await
        {
            Err(StoreError::Conflict) => {}
            other => panic!("duplicate email {email}: {other:?}"),
        }
    }
    // A user of an account that does not exist.
    assert_not_found(
        s.create_user(
            AccountId::random(),
            "x@acme.example",
            "password1",
            Role::Admin,
        )
        .await,
    );

    let viewer = s
        .create_user(org.id, "viewer@acme.example", "password1", Role::Viewer)
        .await
        .unwrap();
    let users = s.users(org.id).await.unwrap();
    assert_eq!(users, vec![owner.clone(), viewer.clone()]);
    assert!(s.users(member.id).await.unwrap().is_empty());

    let promoted = s.set_role(org.id, viewer.id, Role::Admin).await.unwrap();
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(s.user(org.id, viewer.id).await.unwrap().role, Role::Admin);
    assert_not_found(s.set_role(org.id, UserId::random(), Role::Admin).await);
    assert_not_found(s.user(org.id, UserId::random()).await);
}

async fn login_checks_passwords(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let user = s
        .create_user(org.id, "ops@acme.example", "s3cret password", Role::Admin)
        .await
        .unwrap();

    assert_eq!(
        s.verify_login("ops@acme.example", "s3cret password")
            .await
            .unwrap(),
        Some(user.clone())
    );
    // The email is matched case-insensitively, the password exactly.
    assert_eq!(
        s.verify_login(" OPS@Acme.example ", "s3cret password")
            .await
            .unwrap(),
        Some(user.clone())
    );
    for (email, password) in [
        ("ops@acme.example", "s3cret Password"),
        ("ops@acme.example", ""),
        ("nobody@acme.example", "s3cret password"),
        ("not an email", "s3cret password"),
        ("", ""),
    ] {
        assert_eq!(
            s.verify_login(email, password).await.unwrap(),
            None,
            "{email:?} / {password:?}"
        );
    }
    let huge = "x".repeat(vigil_store::limits::MAX_PASSWORD_LEN + 1);
    assert_eq!(
        s.verify_login("ops@acme.example", &huge).await.unwrap(),
        None
    );

    // The stored hash is argon2id, never the password.
    let hash: String = match &db.url {
        u if u.starts_with("sqlite") => {
            let pool = sqlx::SqlitePool::connect(u).await.unwrap();
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.id.to_string())
                .fetch_one(&pool)
                .await
                .unwrap()
        }
        u => {
            let pool = sqlx::PgPool::connect(u).await.unwrap();
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.id.to_string())
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("s3cret"));

    s.set_password(org.id, user.id, "new password!")
        .await
        .unwrap();
    assert_eq!(
        s.verify_login("ops@acme.example", "s3cret password")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.verify_login("ops@acme.example", "new password!")
            .await
            .unwrap(),
        Some(user)
    );
}

async fn api_tokens_authenticate_and_revoke(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let user = s
        .create_user(org.id, "ci@acme.example", "password123", Role::Admin)
        .await
        .unwrap();
    let (token, plaintext) = s.create_api_token(org.id, user.id, "CI").await.unwrap();
    assert!(plaintext.starts_with(API_TOKEN_PREFIX), "{plaintext}");
    assert_eq!(plaintext.len(), API_TOKEN_PREFIX.len() + 43);
    assert_eq!(token.name, "CI");
    assert_eq!(token.user_id, user.id);
    assert_eq!(token.last_used_at, None);
    assert_eq!(token.revoked_at, None);

    let (who, acct) = s
        .authenticate_token(&plaintext)
        .await
        .unwrap()
        .expect("valid token");
    assert_eq!(who, user);
    assert_eq!(acct, org.id);
    let listed = s.api_tokens(org.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "last_used_at updated");

    // Near misses do not authenticate.
    let mut tampered = plaintext.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        "",
        "vgl_",
        tampered.as_str(),
        &plaintext[..plaintext.len() - 1],
        &plaintext.replacen("vgl_", "vge_", 1),
        &format!("{plaintext} "),
    ] {
        assert_eq!(s.authenticate_token(bad).await.unwrap(), None, "{bad:?}");
    }

    // A second token keeps working when the first is revoked.
    let (_, other) = s.create_api_token(org.id, user.id, "laptop").await.unwrap();
    s.revoke_token(org.id, token.id).await.unwrap();
    assert_eq!(s.authenticate_token(&plaintext).await.unwrap(), None);
    assert!(s.authenticate_token(&other).await.unwrap().is_some());
    let revoked_at = s
        .api_tokens(org.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == token.id)
        .unwrap()
        .revoked_at;
    assert!(revoked_at.is_some());
    // Revoking twice is fine and keeps the first time.
    s.revoke_token(org.id, token.id).await.unwrap();
    let again = s
        .api_tokens(org.id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.id == token.id)
        .unwrap()
        .revoked_at;
    assert_eq!(again, revoked_at);
    assert_not_found(
        s.revoke_token(org.id, vigil_store::ApiTokenId::random())
            .await,
    );
    // Tokens only for existing users of the account.
    assert_not_found(s.create_api_token(org.id, UserId::random(), "x").await);
}
