//! The console's alert pages in a real browser: a real `vigil server` and
//! one real enrolled agent whose host has two ports open that its policy
//! does not authorize, so the scan raises two alerts; a webhook contact
//! with a rule for every event receives their notifications. The browser
//! (`tests/browser/alerts.mjs`) lists and filters the alerts, acknowledges
//! one from the list and one from its page with a note, reads the history
//! (raised → notification queued → delivered → acknowledged) and checks
//! what a viewer may do. Screenshots land in `target/console-screenshots/`.

mod common;

use common::browser::{browser_available, run_script};
use common::can_build_networks;
use common::compliance::{add_viewer, enrolled_agent, owner_api, start_server, EMAIL, PASSWORD};
use common::server::{wait_for, webhook_receiver};
use serde_json::{json, Value};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

const AGENT_HOST: &str = "198.51.100.10";
const AGENT_NAME: &str = "alpha-office";
/// Open on the agent's host and not authorized: one alert each.
const NOTED_PORT: u16 = 8081;
const LISTED_PORT: u16 = 8082;
/// The agent's own identify listener, authorized with ssh.
const AUTHORIZED: &str = "22,47760";
const VIEWER: &str = "viewer@acme.test";
const HOOK_NAME: &str = "Ops hook";
const NOTE: &str = "Looking into it: someone started a test server on port 8081";

#[test]
fn alert_pages_in_a_real_browser() {
    if !can_build_networks() || !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(AGENT_HOST.parse().unwrap()).unwrap();
    let _open: Vec<_> = [NOTED_PORT, LISTED_PORT]
        .iter()
        .map(|p| {
            net.listen(format!("{AGENT_HOST}:{p}").parse().unwrap(), None)
                .unwrap()
        })
        .collect();
    let (hook_addr, hooks) = webhook_receiver(&net);
    let _server = start_server(&net, dir);
    let api = owner_api(&net);
    add_viewer(&api, VIEWER);
    let (_agent, agent_id) = enrolled_agent(&net, dir, &api, AGENT_HOST, AGENT_NAME);

    // Who is told, and the scan (both through the REST API).
    let hook = api.ok(
        "POST",
        "/contacts",
        Some(json!({
            "name": HOOK_NAME,
            "channel": "webhook",
            "address": format!("http://{hook_addr}/hook"),
        })),
    );
    api.ok(
        "POST",
        "/rules",
        Some(json!({"contact_id": hook["id"], "events": ["*"]})),
    );
    api.ok(
        "PUT",
        &format!("/agents/{agent_id}/policy"),
        Some(json!({
            "enabled": true,
            "authorized": AUTHORIZED,
            "monitored": "",
            "targets": ["agent_host"],
            "interval": 60,
        })),
    );

    // The scan finds both ports; each alert's notification is delivered.
    let alert_of = |port: u16| {
        let api = &api;
        wait_for(
            &format!("an alert for port {port}"),
            Duration::from_secs(150),
            move || {
                let alerts = api.get("/alerts?status=open");
                alerts.as_array().and_then(|list| {
                    list.iter()
                        .find(|a| a["port"] == port)
                        .map(|a| a["id"].as_str().unwrap().to_string())
                })
            },
        )
    };
    let noted = alert_of(NOTED_PORT);
    let listed = alert_of(LISTED_PORT);
    for (id, port) in [(&noted, NOTED_PORT), (&listed, LISTED_PORT)] {
        wait_for(
            &format!("the notification about port {port} delivered"),
            Duration::from_secs(60),
            || {
                let history = api.get(&format!("/alerts/{id}/history"));
                kinds(&history)
                    .contains(&"notification_delivered".to_string())
                    .then_some(())
            },
        );
        let received = hooks.lock().unwrap().clone();
        assert!(
            received.iter().any(|n| n["port"] == port),
            "the webhook got no notification about port {port}: {received:?}"
        );
    }

    run_script(
        &net,
        dir,
        "alerts.mjs",
        &[
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_VIEWER_EMAIL", VIEWER.to_string()),
            ("VIGIL_VIEWER_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_AGENT_NAME", AGENT_NAME.to_string()),
            ("VIGIL_NOTED_ALERT", noted.clone()),
            ("VIGIL_NOTED_PORT", NOTED_PORT.to_string()),
            ("VIGIL_LISTED_ALERT", listed.clone()),
            ("VIGIL_LISTED_PORT", LISTED_PORT.to_string()),
            ("VIGIL_HOOK_NAME", HOOK_NAME.to_string()),
            ("VIGIL_NOTE", NOTE.to_string()),
        ],
    );

    // What the browser did is what the API reports.
    let alert = api.get(&format!("/alerts/{noted}"));
    assert_eq!(alert["acknowledged_by"], EMAIL, "{alert}");
    assert_eq!(alert["ack_note"], NOTE, "{alert}");
    assert_eq!(alert["status"], "open", "{alert}");
    let history = api.get(&format!("/alerts/{noted}/history"));
    assert_eq!(
        kinds(&history),
        [
            "raised",
            "notification_queued",
            "notification_delivered",
            "acknowledged"
        ],
        "{history}"
    );
    let other = api.get(&format!("/alerts/{listed}"));
    assert_eq!(other["acknowledged_by"], EMAIL, "{other}");
    assert_eq!(other["ack_note"], Value::Null, "{other}");
    // Acknowledging tells nobody: one notification per alert.
    let received = hooks.lock().unwrap().clone();
    for port in [NOTED_PORT, LISTED_PORT] {
        let n = received.iter().filter(|n| n["port"] == port).count();
        assert_eq!(n, 1, "notifications about port {port}: {received:?}");
    }
}

fn kinds(history: &Value) -> Vec<String> {
    history
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| e["kind"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
