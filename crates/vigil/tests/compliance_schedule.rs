//! Scheduled compliance assessments, end to end: a real `vigil server` in
//! the scanner namespace with a schedule of every minute assesses a small
//! IP scope in the target namespace by itself, the history grows, and when
//! a host comes up between two runs (unreachable → no agent installed) the
//! contact whose rule asks for `compliance_changed` gets exactly one
//! summary on its webhook, and a contact that did not ask gets nothing.
//!
//! Takes up to about two minutes: schedules run on the minute.

mod common;

use common::can_build_networks;
use common::compliance::{owner_api, start_server_with};
use common::server::{unix_now, wait_for, webhook_receiver, Api};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

/// Up from the start, only port 135 open: no agent installed.
const STEADY: &str = "198.51.100.21";
/// Comes up between two scheduled runs.
const LATE: &str = "198.51.100.20";
/// 198.51.100.16 – .23; the addresses without a host drop everything.
const SCOPE: &str = "198.51.100.16/29";
/// One scheduled run: up to a minute until it is due, plus the assessment.
const ONE_RUN: Duration = Duration::from_secs(110);

/// The finished scheduled assessments, oldest first, once there are `n`.
fn scheduled_runs(api: &Api, n: usize) -> Vec<Value> {
    wait_for(
        &format!("{n} scheduled assessments"),
        ONE_RUN * u32::try_from(n).unwrap_or(1),
        || {
            let history = api.get("/compliance/history?limit=31");
            let mut done: Vec<Value> = history
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["trigger"] == "schedule" && a["state"] != "running")
                .cloned()
                .collect();
            done.reverse();
            (done.len() >= n).then_some(done)
        },
    )
}

fn changed_events(hooks: &Arc<Mutex<Vec<Value>>>) -> Vec<Value> {
    hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == "compliance_changed")
        .cloned()
        .collect()
}

#[test]
fn scheduled_assessments_keep_history_and_notify_status_changes() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(STEADY.parse().unwrap()).unwrap();
    let _steady_rpc = net
        .listen(format!("{STEADY}:135").parse().unwrap(), None)
        .unwrap();
    let (hook_addr, hooks) = webhook_receiver(&net);
    // Ticks of 200 ms: a due schedule starts within a fraction of a second.
    let _server = start_server_with(&net, dir, &["--tick-ms", "200"], &[]);
    let api = owner_api(&net);

    // Who is told: a webhook that opted in to compliance changes, and one
    // that only wants an agent event.
    let wants = api.ok(
        "POST",
        "/contacts",
        Some(json!({"name": "compliance hook", "channel": "webhook",
                    "address": format!("http://{hook_addr}/compliance")})),
    );
    api.ok(
        "POST",
        "/rules",
        Some(json!({"contact_id": wants["id"], "events": ["compliance_changed"]})),
    );
    let other = api.ok(
        "POST",
        "/contacts",
        Some(json!({"name": "agents hook", "channel": "webhook",
                    "address": format!("http://{hook_addr}/agents")})),
    );
    api.ok(
        "POST",
        "/rules",
        Some(json!({"contact_id": other["id"], "events": ["agent_back"]})),
    );

    // No schedule yet: disabled, nothing planned.
    let none = api.get("/compliance/schedule");
    assert_eq!(none["schedule"]["enabled"], false, "{none}");
    assert_eq!(none["next_run_at"], Value::Null);

    // Save only (no assessment yet), then schedule every minute.
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [SCOPE]},
                              "agent_ports": [47760], "unreachable_port": 135}})),
    );
    assert_eq!(status, 200, "{body}");
    for (bad, needle) in [
        (json!({"enabled": true, "every_minutes": 0}), "out of range"),
        (
            json!({"enabled": true, "every_minutes": 5, "daily_at": "02:00"}),
            "not both",
        ),
        (json!({"enabled": true, "daily_at": "25:00"}), "25:00"),
        (json!({"enabled": true}), "needs an interval"),
        (json!({"enabled": true, "every_minute": 5}), "every_minute"),
    ] {
        let (status, body) = api.call("PUT", "/compliance/schedule", Some(bad.clone()));
        assert!(status == 422 || status == 400, "{bad}: {status} {body}");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{bad}: {msg}");
    }
    let saved = api.ok(
        "PUT",
        "/compliance/schedule",
        Some(json!({"enabled": true, "every_minutes": 1})),
    );
    assert_eq!(saved["schedule"]["every_minutes"], 1, "{saved}");
    let next = saved["next_run_at"].as_i64().unwrap();
    assert_eq!(next % 60, 0, "runs on the minute: {saved}");
    assert!(next > unix_now() - 1 && next <= unix_now() + 60, "{saved}");
    assert_eq!(api.get("/compliance/schedule"), saved);

    // The first run happens by itself; the first assessment ever tells no one.
    let runs = scheduled_runs(&api, 1);
    let first = &runs[0];
    assert_eq!(first["state"], "done", "{first}");
    assert_eq!(first["counts"]["no_agent"], 1, "{first}");
    assert_eq!(first["counts"]["no_host"], 7, "{first}");

    // A host comes up (only port 135 open) before the next run.
    net.add_host(LATE.parse().unwrap()).unwrap();
    let _late_rpc = net
        .listen(format!("{LATE}:135").parse().unwrap(), None)
        .unwrap();
    let runs = scheduled_runs(&api, 2);
    let second = &runs[1];
    assert_eq!(second["state"], "done", "{second}");
    assert_eq!(second["counts"]["no_agent"], 2, "{second}");
    assert_eq!(second["counts"]["no_host"], 6, "{second}");
    assert!(
        second["started_at"].as_i64().unwrap() >= first["finished_at"].as_i64().unwrap(),
        "runs do not overlap: {runs:?}"
    );

    // Exactly one summary, to the contact that asked for it.
    let changed = wait_for(
        "the compliance_changed webhook",
        Duration::from_secs(20),
        || {
            let got = changed_events(&hooks);
            (!got.is_empty()).then_some(got)
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let all = hooks.lock().unwrap().clone();
    assert_eq!(all.len(), 1, "one notification in all: {all:?}");
    let n = &changed[0];
    assert_eq!(n["title"], "1 endpoint changed compliance status", "{n}");
    assert_eq!(n["severity"], "warning", "{n}");
    assert_eq!(n["account"], "Acme");
    assert_eq!(n["agent_id"], second["id"], "{n}");
    let details = n["details"].as_str().unwrap();
    assert!(
        details.contains(&format!("{LATE}: no_host → no_agent")),
        "{details}"
    );
    assert!(!details.contains(STEADY), "{details}");

    // The history lists every run, newest first, with counts.
    let history = api.get("/compliance/history");
    let entries = history.as_array().unwrap();
    assert!(entries.len() >= 2, "{history}");
    let ids: Vec<&Value> = entries.iter().map(|e| &e["id"]).collect();
    let (pos_first, pos_second) = (
        ids.iter().position(|id| **id == first["id"]).unwrap(),
        ids.iter().position(|id| **id == second["id"]).unwrap(),
    );
    assert!(pos_second < pos_first, "newest first: {history}");
    assert_eq!(
        api.get("/compliance/history?limit=1")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for bad in ["0", "1000"] {
        let (status, body) = api.call("GET", &format!("/compliance/history?limit={bad}"), None);
        assert_eq!(status, 422, "{body}");
    }

    // Switched off: nothing planned, the settings kept.
    let off = api.ok(
        "PUT",
        "/compliance/schedule",
        Some(json!({"enabled": false, "every_minutes": 1})),
    );
    assert_eq!(off["next_run_at"], Value::Null, "{off}");
    assert_eq!(off["schedule"]["every_minutes"], 1);
}
