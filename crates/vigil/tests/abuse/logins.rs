//! Password guessing against the real server: a flood of wrong passwords
//! for one email, or one password over many emails from one address, is
//! answered 429 with `Retry-After` within milliseconds (no argon2 runs);
//! the right password waits out the backoff like any other, then works.
//! The console's login form behaves alike.

use super::common::can_build_networks;
use super::common::compliance::{start_server_with, EMAIL, PASSWORD};
use super::common::http::{
    console, console_form, console_login, console_session, field, form_body, http, Answer,
};
use super::common::server::Proc;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

fn rest_login(net: &TestNet, email: &str, password: &str) -> Answer {
    login_with(net, json!({"email": email, "password": password}))
}

fn login_with(net: &TestNet, body: Value) -> Answer {
    http(
        net,
        "POST",
        "/api/v1/login",
        &[("Content-Type", "application/json")],
        &body.to_string(),
    )
}

fn server(dir: &Path) -> Option<(TestNet, Proc)> {
    if !can_build_networks() {
        return None;
    }
    let net = TestNet::new(NetSpec::default()).unwrap();
    let proc = start_server_with(&net, dir, &[], &[]);
    Some((net, proc))
}

/// Refusals are answered without argon2: each in well under what one
/// (19 MiB) verification takes, and most in a few milliseconds.
fn assert_fast(refused: &[&Answer]) {
    assert!(!refused.is_empty());
    let slowest = refused.iter().map(|a| a.took).max().unwrap_or_default();
    let total: Duration = refused.iter().map(|a| a.took).sum();
    let mean = total / refused.len() as u32;
    assert!(
        slowest < Duration::from_millis(500) && mean < Duration::from_millis(60),
        "refusals took up to {slowest:?} (mean {mean:?})"
    );
}

#[test]
fn a_flood_of_wrong_passwords_for_one_email_is_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((net, _server)) = server(tmp.path()) else {
        return;
    };
    let flood: Vec<Answer> = (0..50)
        .map(|n| rest_login(&net, EMAIL, &format!("wrong password {n}")))
        .collect();
    let statuses: Vec<u16> = flood.iter().map(|a| a.status).collect();
    // The first five are checked (and wrong); then the account waits.
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    let refused: Vec<&Answer> = flood.iter().filter(|a| a.status == 429).collect();
    assert!(refused.len() >= 40, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    for a in &refused {
        assert!((1..=900).contains(&a.retry_after()));
        assert!(a.body.contains("too many login attempts"), "{}", a.body);
    }
    assert_fast(&refused);

    // The right password is refused too while the backoff lasts …
    let locked = rest_login(&net, EMAIL, PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(!locked.body.contains("token"), "{}", locked.body);
    // … and works once it has passed.
    std::thread::sleep(Duration::from_secs(locked.retry_after()) + Duration::from_millis(100));
    let ok = rest_login(&net, EMAIL, PASSWORD);
    assert_eq!(ok.status, 201, "{}", ok.body);
    // Success forgets the account's failures: a typo is a plain 401 again.
    assert_eq!(rest_login(&net, EMAIL, "typo").status, 401);
}

#[test]
fn one_address_trying_many_emails_is_refused_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((net, _server)) = server(tmp.path()) else {
        return;
    };
    let spray: Vec<Answer> = (0..30)
        .map(|n| rest_login(&net, &format!("user{n}@victim.test"), PASSWORD))
        .collect();
    let statuses: Vec<u16> = spray.iter().map(|a| a.status).collect();
    // Twenty are checked from one address; then it waits, whichever email.
    assert_eq!(&statuses[..20], &[401; 20], "{statuses:?}");
    let refused: Vec<&Answer> = spray.iter().filter(|a| a.status == 429).collect();
    assert!(refused.len() >= 8, "{statuses:?}");
    assert_fast(&refused);
    // Even a right password waits from this address.
    let from_here = rest_login(&net, EMAIL, PASSWORD);
    assert_eq!(from_here.status, 429, "{}", from_here.body);
    assert!(from_here.retry_after() >= 1);
}

#[test]
fn the_console_login_form_is_throttled_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((net, _server)) = server(tmp.path()) else {
        return;
    };
    let form = console_form(&net);
    let flood: Vec<Answer> = (0..30)
        .map(|n| console_login(&net, &form, EMAIL, &format!("wrong password {n}")))
        .collect();
    let statuses: Vec<u16> = flood.iter().map(|a| a.status).collect();
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(flood[0].body.contains("Wrong email or password."));
    let refused: Vec<&Answer> = flood.iter().filter(|a| a.status == 429).collect();
    assert!(refused.len() >= 20, "{statuses:?}");
    for a in &refused {
        assert!(
            a.body.contains("Too many login attempts. Please wait"),
            "{}",
            a.body
        );
        assert!(a.retry_after() >= 1);
    }
    assert_fast(&refused);

    let locked = console_login(&net, &form, EMAIL, PASSWORD);
    assert_eq!(locked.status, 429);
    assert_eq!(locked.cookie("vigil_session"), None);
    std::thread::sleep(Duration::from_secs(locked.retry_after()) + Duration::from_millis(100));
    let ok = console_login(&net, &form, EMAIL, PASSWORD);
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(ok
        .cookie("vigil_session")
        .is_some_and(|s| s.starts_with("vgl_")));
}

/// The `value` of the first hidden field `name` in a page.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn code_at(secret: &[u8], step: u64) -> String {
    format!("{:06}", vigil_core::totp::code(secret, step))
}

#[test]
fn two_factor_login_needs_the_code_once_set_up() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((net, _server)) = server(tmp.path()) else {
        return;
    };
    // Set up two-factor login in the console, as the owner.
    let session = console_session(&net, EMAIL);
    let page = console(&net, &session, "GET", "/account/two-factor", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = field(&page.body, "csrf");
    let enrol = console(
        &net,
        &session,
        "POST",
        "/account/two-factor/start",
        &[("csrf", &csrf)],
    );
    assert_eq!(enrol.status, 200, "{}", enrol.body);
    assert!(enrol.body.contains("<svg"), "a QR code");
    let secret_text = enrol
        .body
        .split("id=\"totp-secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the key as text");
    let secret = vigil_core::totp::from_base32(secret_text).expect("base32");
    let wrong = console(
        &net,
        &session,
        "POST",
        "/account/two-factor/confirm",
        &[("csrf", &csrf), ("code", "000000x")],
    );
    assert_eq!(wrong.status, 422);
    let enrolled_step = vigil_core::totp::step(unix_now());
    let on = console(
        &net,
        &session,
        "POST",
        "/account/two-factor/confirm",
        &[("csrf", &csrf), ("code", &code_at(&secret, enrolled_step))],
    );
    assert_eq!(on.status, 200, "{}", on.body);
    let recovery: Vec<String> = on
        .body
        .split("<li><code>")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(str::to_string)
        .collect();
    assert_eq!(recovery.len(), 10, "{}", on.body);

    // REST: the password alone is not enough.
    let no_code = rest_login(&net, EMAIL, PASSWORD);
    assert_eq!(no_code.status, 401, "{}", no_code.body);
    assert!(no_code.body.contains("totp"), "{}", no_code.body);
    assert!(!no_code.body.contains("vgl_"));
    let bad = login_with(
        &net,
        json!({"email": EMAIL, "password": PASSWORD, "totp": "123456x"}),
    );
    assert_eq!(bad.status, 401);
    // A code the app shows (the next step's: the enrolment used this one).
    let code = code_at(&secret, enrolled_step + 1);
    let with_code = login_with(
        &net,
        json!({"email": EMAIL, "password": PASSWORD, "totp": code}),
    );
    assert_eq!(with_code.status, 201, "{}", with_code.body);
    let owner_token = serde_json::from_str::<Value>(&with_code.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // The same code cannot be used twice.
    let replay = login_with(
        &net,
        json!({"email": EMAIL, "password": PASSWORD, "totp": code}),
    );
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(replay.body.contains("already used"), "{}", replay.body);
    // A wrong password with a right code is still wrong.
    let code2 = code_at(&secret, enrolled_step + 1);
    let wrong_pw = login_with(
        &net,
        json!({"email": EMAIL, "password": "nope nope", "totp": code2}),
    );
    assert_eq!(wrong_pw.status, 401);
    // Recovery codes work once each.
    let rc = json!({"email": EMAIL, "password": PASSWORD, "totp": recovery[0]});
    assert_eq!(login_with(&net, rc.clone()).status, 201);
    assert_eq!(login_with(&net, rc).status, 401);

    // The console asks for the code after the password.
    let (nonce, token) = console_form(&net);
    let cookie = format!("vigil_login={nonce}");
    let form_headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie.as_str()),
    ];
    let step1 = http(
        &net,
        "POST",
        "/login",
        &form_headers,
        &form_body(&[("csrf", &token), ("email", EMAIL), ("password", PASSWORD)]),
    );
    assert_eq!(step1.status, 200, "{}", step1.body);
    assert_eq!(step1.cookie("vigil_session"), None);
    let ticket = field(&step1.body, "ticket");
    let bad_code = http(
        &net,
        "POST",
        "/login",
        &form_headers,
        &form_body(&[("csrf", &token), ("ticket", &ticket), ("code", "000000")]),
    );
    assert_eq!(bad_code.status, 401);
    assert_eq!(bad_code.cookie("vigil_session"), None);
    // A forged ticket is refused.
    let forged = ticket.replacen('.', ".0", 1);
    let forged = http(
        &net,
        "POST",
        "/login",
        &form_headers,
        &form_body(&[
            ("csrf", &token),
            ("ticket", &forged),
            ("code", &recovery[1]),
        ]),
    );
    assert_eq!(forged.status, 403);
    let in_with_recovery = http(
        &net,
        "POST",
        "/login",
        &form_headers,
        &form_body(&[
            ("csrf", &token),
            ("ticket", &ticket),
            ("code", &recovery[1]),
        ]),
    );
    assert_eq!(in_with_recovery.status, 303, "{}", in_with_recovery.body);
    assert!(in_with_recovery.cookie("vigil_session").is_some());

    // The owner requires it of everyone: a viewer without it is sent to
    // set it up, and cannot log in to the REST API until then.
    let add = http(
        &net,
        "POST",
        "/api/v1/users",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {owner_token}")),
        ],
        &json!({"email": "viewer@acme.test", "password": PASSWORD, "role": "viewer"}).to_string(),
    );
    assert_eq!(add.status, 201, "{}", add.body);
    let required = console(
        &net,
        &session,
        "POST",
        "/account/two-factor/require",
        &[("csrf", &csrf), ("required", "1")],
    );
    assert_eq!(required.status, 303, "{}", required.body);
    let viewer = console_session(&net, "viewer@acme.test");
    let home = console(&net, &viewer, "GET", "/agents", &[]);
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/account/two-factor"));
    let setup = console(&net, &viewer, "GET", "/account/two-factor", &[]);
    assert_eq!(setup.status, 200);
    assert!(setup.body.contains("requires two-factor login"));
    let rest = rest_login(&net, "viewer@acme.test", PASSWORD);
    assert_eq!(rest.status, 403, "{}", rest.body);
    assert!(!rest.body.contains("vgl_"));
}
