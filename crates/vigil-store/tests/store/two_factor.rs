//! Two-factor login: a secret is enrolled, then confirmed; each code step
//! and each recovery code is accepted once, also when two replicas are
//! given the same one at once; another tenant's user is out of reach.

use crate::fixtures::*;
use vigil_store::{Role, StoreError, MAX_RECOVERY_CODES};
use vigil_testdb::TestDb;

backend_tests!(
    enrol_confirm_and_use_once,
    the_account_flag,
    other_tenants_are_not_found
);

const PASSWORD: &str = "correct horse battery";

async fn enrol_confirm_and_use_once(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let u = s
        .create_user(acme.id, "me@acme.test", PASSWORD, Role::Owner)
        .await
        .unwrap();
    assert_eq!(s.totp(acme.id, u.id).await.unwrap(), None);
    assert_eq!(
        s.two_factor_status(acme.id, u.id).await.unwrap(),
        (false, false)
    );
    assert_eq!(s.pending_totp(acme.id, u.id).await.unwrap(), None);

    s.start_totp(acme.id, u.id, "OLDSECRET").await.unwrap();
    s.start_totp(acme.id, u.id, "MZXW6YTBOI").await.unwrap();
    assert_eq!(
        s.pending_totp(acme.id, u.id).await.unwrap().as_deref(),
        Some("MZXW6YTBOI")
    );
    // Not on until confirmed, and only the secret still being enrolled.
    assert_eq!(s.totp(acme.id, u.id).await.unwrap(), None);
    let codes: Vec<String> = (0..10).map(|n| format!("CODE{n:06}")).collect();
    assert!(matches!(
        s.activate_totp(acme.id, u.id, "OLDSECRET", 100, &codes)
            .await,
        Err(StoreError::NotFound)
    ));
    let too_many: Vec<String> = (0..=MAX_RECOVERY_CODES).map(|n| n.to_string()).collect();
    assert!(matches!(
        s.activate_totp(acme.id, u.id, "MZXW6YTBOI", 100, &too_many)
            .await,
        Err(StoreError::Invalid(_))
    ));
    s.activate_totp(acme.id, u.id, "MZXW6YTBOI", 100, &codes)
        .await
        .unwrap();
    let on = s.totp(acme.id, u.id).await.unwrap().unwrap();
    assert_eq!(on.secret, "MZXW6YTBOI");
    assert_eq!(on.last_step, Some(100));
    assert!(
        !format!("{on:?}").contains("MZXW"),
        "Debug hides the secret"
    );
    assert_eq!(s.pending_totp(acme.id, u.id).await.unwrap(), None);
    assert_eq!(
        s.two_factor_status(acme.id, u.id).await.unwrap(),
        (false, true)
    );

    // Steps: only later ones, each once, even raced.
    assert!(!s.use_totp_step(acme.id, u.id, 100).await.unwrap());
    assert!(!s.use_totp_step(acme.id, u.id, 99).await.unwrap());
    let race = futures_race(s, acme.id, u.id, 101).await;
    assert_eq!(race, 1, "one of two concurrent uses of a step wins");
    assert!(s.use_totp_step(acme.id, u.id, 103).await.unwrap());
    assert!(!s.use_totp_step(acme.id, u.id, 102).await.unwrap());

    // Recovery codes: each once.
    assert_eq!(s.recovery_codes_left(acme.id, u.id).await.unwrap(), 10);
    assert!(s
        .use_recovery_code(acme.id, u.id, "CODE000003")
        .await
        .unwrap());
    assert!(!s
        .use_recovery_code(acme.id, u.id, "CODE000003")
        .await
        .unwrap());
    assert!(!s
        .use_recovery_code(acme.id, u.id, "NOTACODE")
        .await
        .unwrap());
    assert_eq!(s.recovery_codes_left(acme.id, u.id).await.unwrap(), 9);

    // Enrolling again replaces the secret and all recovery codes.
    s.start_totp(acme.id, u.id, "NEWSECRET").await.unwrap();
    assert_eq!(
        s.totp(acme.id, u.id).await.unwrap().unwrap().secret,
        "MZXW6YTBOI"
    );
    s.activate_totp(acme.id, u.id, "NEWSECRET", 200, &["FRESH00001".to_string()])
        .await
        .unwrap();
    assert_eq!(
        s.totp(acme.id, u.id).await.unwrap().unwrap().secret,
        "NEWSECRET"
    );
    assert!(!s
        .use_recovery_code(acme.id, u.id, "CODE000004")
        .await
        .unwrap());
    assert_eq!(s.recovery_codes_left(acme.id, u.id).await.unwrap(), 1);
}

/// Two concurrent uses of `step`: how many were accepted.
async fn futures_race(
    s: &vigil_store::Store,
    account: vigil_store::AccountId,
    user: vigil_store::UserId,
    step: i64,
) -> usize {
    let (a, b) = tokio::join!(
        s.use_totp_step(account, user, step),
        s.use_totp_step(account, user, step)
    );
    usize::from(a.unwrap()) + usize::from(b.unwrap())
}

async fn the_account_flag(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let u = s
        .create_user(acme.id, "me@acme.test", PASSWORD, Role::Viewer)
        .await
        .unwrap();
    assert!(!s.totp_required(acme.id).await.unwrap());
    s.set_totp_required(acme.id, true).await.unwrap();
    assert!(s.totp_required(acme.id).await.unwrap());
    assert_eq!(
        s.two_factor_status(acme.id, u.id).await.unwrap(),
        (true, false)
    );
    s.set_totp_required(acme.id, false).await.unwrap();
    assert_eq!(
        s.two_factor_status(acme.id, u.id).await.unwrap(),
        (false, false)
    );
}

async fn other_tenants_are_not_found(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let u = s
        .create_user(acme.id, "me@acme.test", PASSWORD, Role::Owner)
        .await
        .unwrap();
    s.start_totp(acme.id, u.id, "MZXW6YTBOI").await.unwrap();
    s.activate_totp(acme.id, u.id, "MZXW6YTBOI", 1, &["CODE000001".to_string()])
        .await
        .unwrap();
    assert_not_found(s.totp(other.id, u.id).await);
    assert_not_found(s.start_totp(other.id, u.id, "X").await);
    assert_not_found(s.pending_totp(other.id, u.id).await);
    assert_not_found(s.two_factor_status(other.id, u.id).await);
    assert_not_found(s.activate_totp(other.id, u.id, "MZXW6YTBOI", 2, &[]).await);
    assert!(!s.use_totp_step(other.id, u.id, 5).await.unwrap());
    assert!(!s
        .use_recovery_code(other.id, u.id, "CODE000001")
        .await
        .unwrap());
    assert_eq!(s.recovery_codes_left(other.id, u.id).await.unwrap(), 0);
}
