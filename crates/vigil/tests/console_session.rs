//! Console sessions in a real browser: they end after the server's
//! session lifetime (here a few seconds) and the browser is sent to log in
//! again, then back to the page it asked for; the login form itself is
//! protected against cross-site posts. `tests/browser/session.mjs`.

mod common;

use common::browser::{browser_available, run_script};
use common::can_build_networks;
use common::compliance::{start_server_with, EMAIL, PASSWORD};
use vigil_testnet::{NetSpec, TestNet};

/// Short enough to wait out in the test.
const LIFETIME_SECS: u64 = 6;

#[test]
fn console_sessions_expire_and_login_is_csrf_protected() {
    if !can_build_networks() || !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    let lifetime = LIFETIME_SECS.to_string();
    let _server = start_server_with(&net, dir, &["--session-lifetime-secs", &lifetime], &[]);
    run_script(
        &net,
        dir,
        "session.mjs",
        &[
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_LIFETIME_SECS", lifetime),
        ],
    );
}
