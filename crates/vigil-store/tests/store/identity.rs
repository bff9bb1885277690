//! Migrations, accounts, users and passwords, API tokens.

use crate::fixtures::*;
use std::time::Duration;
use vigil_core::AccountKind;
use vigil_store::{AccountId, Role, StoreError, TokenExpiry, UserId, API_TOKEN_PREFIX};
use vigil_testdb::TestDb;

backend_tests!(
    migrations_are_idempotent,
    accounts_and_users,
    login_checks_passwords,
    api_tokens_authenticate_and_revoke,
    session_tokens_expire,
    console_key_is_shared_and_stable,
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

/// Console sessions: refused once past their lifetime or idle limit, and
/// pruned then; tokens made to last stay.
async fn session_tokens_expire(db: &TestDb) {
    let s = &db.store;
    let org = account(s, "Acme").await;
    let user = s
        .create_user(org.id, "web@acme.example", "password123", Role::Viewer)
        .await
        .unwrap();
    let long = Duration::from_secs(3600);
    let short = Duration::from_secs(1);
    let expiring = |lifetime, idle| TokenExpiry {
        lifetime: Some(lifetime),
        idle: Some(idle),
    };
    let (lasting, lasting_secret) = s.create_api_token(org.id, user.id, "CI").await.unwrap();
    assert_eq!(lasting.expires_at, None);
    let (session, ok) = s
        .create_token_expiring(org.id, user.id, "console session", expiring(long, long))
        .await
        .unwrap();
    let expires = session.expires_at.expect("a session expires");
    assert!((3599..=3601).contains(&(expires - session.created_at)));
    let (_, dies) = s
        .create_token_expiring(org.id, user.id, "console session", expiring(short, long))
        .await
        .unwrap();
    let (_, idles) = s
        .create_token_expiring(org.id, user.id, "console session", expiring(long, short))
        .await
        .unwrap();
    let (_, revoked) = s
        .create_token_expiring(org.id, user.id, "console session", expiring(long, long))
        .await
        .unwrap();
    s.revoke_token_secret(&revoked).await.unwrap();
    for secret in [&lasting_secret, &ok] {
        assert!(s.authenticate_token(secret).await.unwrap().is_some());
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for secret in [&dies, &idles, &revoked] {
        assert_eq!(s.authenticate_token(secret).await.unwrap(), None);
    }
    for secret in [&lasting_secret, &ok] {
        assert!(s.authenticate_token(secret).await.unwrap().is_some());
    }
    assert_eq!(s.prune_expired_tokens(now()).await.unwrap(), 3);
    let left: Vec<_> = s.api_tokens(org.id).await.unwrap();
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(s.prune_expired_tokens(now()).await.unwrap(), 0);
    // A lifetime beyond what the database holds is refused, not wrapped.
    let huge = expiring(Duration::from_secs(u64::MAX), long);
    assert_invalid(s.create_token_expiring(org.id, user.id, "x", huge).await);
}

async fn console_key_is_shared_and_stable(db: &TestDb) {
    let key = db.store.console_key().await.unwrap();
    assert_ne!(key, [0u8; 32]);
    assert_eq!(db.store.console_key().await.unwrap(), key);
    let other = db.reconnect().await;
    assert_eq!(other.console_key().await.unwrap(), key);
    other.close().await;
    // Not the installation id's bytes: a key of its own.
    let id = db.store.server_id().await.unwrap();
    assert_ne!(&key[..16], id.as_bytes());
}
