//! The console's contacts and notification rules in a real browser: a real
//! `vigil server` in the scanner namespace with a real SMTP server
//! (aiosmtpd) and a webhook receiver beside it, and two enrolled agents
//! whose names share a prefix (so a typed agent is ambiguous). The browser
//! (`tests/browser/contacts.mjs`) adds an email and a webhook contact
//! (refused input first), adds and deletes rules, presses "Send test
//! notification" on each and waits for the contact page to show the
//! delivery as sent; this test then checks that the mail and the webhook
//! POST really arrived. Screenshots land in `target/console-screenshots/`.

mod common;

use common::browser::{browser_available, run_script};
use common::compliance::{
    add_viewer, enrolled_agent, owner_api, start_server_with, EMAIL, PASSWORD,
};
use common::server::{spawn, wait_for, webhook_receiver};
use common::{can_build_networks, smtp_available, stored_emails};
use serde_json::Value;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

const OFFICE: (&str, &str) = ("198.51.100.10", "alpha-office");
const LAB: (&str, &str) = ("198.51.100.11", "alpha-lab");
/// The SMTP server's port, on 127.0.0.1 of the scanner namespace (a fresh
/// namespace: always free).
const SMTP_PORT: u16 = 2525;
const MAIL_TO: &str = "ops@acme.test";
const VIEWER: &str = "viewer@acme.test";

#[test]
fn contacts_and_test_notifications_in_a_real_browser() {
    if !can_build_networks() || !browser_available() || !smtp_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    for (host, _) in [OFFICE, LAB] {
        net.add_host(host.parse().unwrap()).unwrap();
    }

    let mail_dir = dir.join("mail");
    std::fs::create_dir_all(&mail_dir).unwrap();
    let mut smtp = net.scanner_cmd("python3");
    smtp.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vigil-notify/tests/smtp_server.py"
    ))
    .arg(&mail_dir)
    .args(["--port", &SMTP_PORT.to_string()]);
    let smtp_log = dir.join("smtp.log");
    let _smtp = spawn(smtp, "smtp", &smtp_log);
    wait_for("the SMTP server", Duration::from_secs(20), || {
        std::fs::read_to_string(&smtp_log)
            .is_ok_and(|l| l.contains("LISTENING"))
            .then_some(())
    });
    let (hook_addr, hooks) = webhook_receiver(&net);

    let port = SMTP_PORT.to_string();
    let _server = start_server_with(
        &net,
        dir,
        &[
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &port,
            "--smtp-security",
            "none",
            "--smtp-from",
            "vigil@acme.test",
        ],
        &[],
    );
    let api = owner_api(&net);
    add_viewer(&api, VIEWER);
    let (_office, office_id) = enrolled_agent(&net, dir, &api, OFFICE.0, OFFICE.1);
    let (_lab, lab_id) = enrolled_agent(&net, dir, &api, LAB.0, LAB.1);

    run_script(
        &net,
        dir,
        "contacts.mjs",
        &[
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_VIEWER_EMAIL", VIEWER.to_string()),
            ("VIGIL_VIEWER_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_MAIL_TO", MAIL_TO.to_string()),
            ("VIGIL_HOOK_URL", format!("http://{hook_addr}/hook")),
            ("VIGIL_OFFICE_NAME", OFFICE.1.to_string()),
            ("VIGIL_OFFICE_ID", office_id),
            ("VIGIL_LAB_NAME", LAB.1.to_string()),
            ("VIGIL_LAB_ID", lab_id),
        ],
    );

    // The browser saw both deliveries as sent: the SMTP server stored the
    // mail, the receiver got the POST, each exactly once.
    let tests: Vec<Value> = stored_emails(&mail_dir)
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Test notification for Ops mail"))
        })
        .collect();
    assert_eq!(tests.len(), 1, "one test mail: {tests:?}");
    assert_eq!(tests[0]["rcpt_tos"], serde_json::json!([MAIL_TO]));
    assert_eq!(tests[0]["mail_from"], "vigil@acme.test");
    assert!(
        tests[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains(&format!("Sent from Vigil by {EMAIL}"))),
        "{tests:?}"
    );
    let posts: Vec<Value> = hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == "test")
        .cloned()
        .collect();
    assert_eq!(posts.len(), 1, "one test webhook: {posts:?}");
    assert_eq!(posts[0]["title"], "Test notification for Ops hook");
    assert_eq!(posts[0]["account"], "Acme");
}
