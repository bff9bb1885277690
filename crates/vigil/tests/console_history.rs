//! An agent's history and reachability timeline in a real browser: a real
//! `vigil server` with short liveness timings and one real enrolled agent
//! in a test network. The owner changes the security-scan policy in the
//! browser and the history names them and what changed; the agent is then
//! stopped until the server counts it as not communicating (history:
//! health change and suspended scan; timeline: an ongoing outage below
//! 100 %), and started again (history: back; timeline: the outage over).
//! The browser part is `tests/browser/history.mjs`, run once per phase;
//! the REST API (`/agents/{id}/history`, `/timeline`) is checked beside
//! it. Screenshots land in `target/console-screenshots/`.

mod common;

use common::browser::{browser_available, run_script};
use common::can_build_networks;
use common::compliance::{enrolled_agent, owner_api, start_server_with, EMAIL, PASSWORD};
use common::server::{spawn, wait_for, Api, Proc};
use common::vigil_bin;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_testnet::{NetSpec, TestNet};

const AGENT_HOST: &str = "198.51.100.10";
const AGENT_NAME: &str = "alpha-office";
/// The server counts an agent silent for longer as not communicating; it
/// calls in every second.
const SILENT_AFTER_SECS: &str = "6";

fn history(api: &Api<'_>, agent: &str) -> Vec<Value> {
    let page = api.get(&format!("/agents/{agent}/history?limit=100"));
    page["events"].as_array().cloned().unwrap_or_default()
}

/// Whether the history has an entry of `kind` whose detail is `detail`.
fn has_event(events: &[Value], kind: &str, detail: &str) -> bool {
    events
        .iter()
        .any(|e| e["kind"] == kind && e["detail"] == detail)
}

/// The agent's row of its timeline over the last 24 h.
fn agent_row(api: &Api<'_>, agent: &str) -> Value {
    let t = api.get(&format!("/agents/{agent}/timeline?window=24h"));
    assert_eq!(t["window"], "24h", "{t}");
    assert_eq!(
        t["to"].as_i64().unwrap() - t["from"].as_i64().unwrap(),
        86_400
    );
    let row = t["rows"][0].clone();
    assert_eq!(row["kind"], "agent", "{t}");
    row
}

fn down_segments(row: &Value) -> Vec<Value> {
    row["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "down")
        .cloned()
        .collect()
}

/// Runs the agent enrolled in `dir/name` (again).
fn run_agent(net: &TestNet, dir: &Path, name: &str, log: &str) -> Proc {
    let mut cmd = net.target_cmd(vigil_bin());
    cmd.args(["agent", "--state-dir"])
        .arg(dir.join(name))
        .args(["run", "--listen", &format!("{AGENT_HOST}:47760")])
        .env("VIGIL_LOG", "info");
    spawn(cmd, "agent", &dir.join(log))
}

#[test]
fn history_and_timeline_in_a_real_browser() {
    if !can_build_networks() || !browser_available() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(AGENT_HOST.parse().unwrap()).unwrap();
    let _server = start_server_with(
        &net,
        dir,
        &[
            "--heartbeat-secs",
            "1",
            "--silent-after-secs",
            SILENT_AFTER_SECS,
            "--tick-ms",
            "250",
            "--sweep-ports",
            "22,80,443",
        ],
        &[],
    );
    let api = owner_api(&net);
    let (mut agent, agent_id) = enrolled_agent(&net, dir, &api, AGENT_HOST, AGENT_NAME);
    wait_for(
        "the agent's first heartbeat",
        Duration::from_secs(20),
        || {
            let a = api.get(&format!("/agents/{agent_id}"));
            (!a["last_seen_at"].is_null()).then_some(())
        },
    );

    // A first policy through the REST API: recorded as created, by the owner.
    api.ok(
        "PUT",
        &format!("/agents/{agent_id}/policy"),
        Some(json!({
            "enabled": true, "authorized": "22", "monitored": "",
            "targets": ["agent_host"], "interval": 60
        })),
    );
    let events = history(&api, &agent_id);
    assert_eq!(events[0]["kind"], "policy_changed", "{events:?}");
    assert_eq!(events[0]["actor"], EMAIL);
    assert_eq!(
        events[0]["detail"],
        "policy created: scan enabled; authorized ports 22; monitored ports none; \
         targets agent host; every 60 min"
    );
    let enrolled = events.last().unwrap();
    assert_eq!(enrolled["kind"], "enrolled");
    assert_eq!(enrolled["actor"], "system");
    assert_eq!(
        enrolled["detail"],
        format!("as \"{AGENT_NAME}\" on the extended plan")
    );

    let env = |phase: &str| {
        vec![
            ("VIGIL_PHASE", phase.to_string()),
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_AGENT_ID", agent_id.clone()),
            ("VIGIL_AGENT_NAME", AGENT_NAME.to_string()),
        ]
    };

    // 1. The owner changes the policy in the browser.
    run_script(&net, dir, "history.mjs", &env("policy"));
    let changed = "authorized ports added 80; monitored ports added 443; interval 60 → 45 min";
    let events = history(&api, &agent_id);
    assert_eq!(events[0]["kind"], "policy_changed", "{events:?}");
    assert_eq!(events[0]["actor"], EMAIL);
    assert_eq!(events[0]["detail"], changed);
    assert!(down_segments(&agent_row(&api, &agent_id)).is_empty());

    // 2. The agent stops: not communicating after the threshold.
    agent.kill();
    let silent = wait_for(
        "the agent to be counted as not communicating",
        Duration::from_secs(40),
        || {
            let events = history(&api, &agent_id);
            has_event(
                &events,
                "health_changed",
                "communicating → not communicating",
            )
            .then_some(events)
        },
    );
    assert!(
        has_event(
            &silent,
            "scan_suspended",
            "the agent is not communicating; scans resume when it is back"
        ),
        "{silent:?}"
    );
    // The alert is raised right after the health change is stored.
    let row = wait_for(
        "the outage in the timeline",
        Duration::from_secs(10),
        || {
            let row = agent_row(&api, &agent_id);
            (!down_segments(&row).is_empty()).then_some(row)
        },
    );
    let down = down_segments(&row);
    assert_eq!(down.len(), 1, "{row}");
    assert_eq!(down[0]["open"], true, "ongoing: {row}");
    assert!(row["up_percent"].as_f64().unwrap() < 100.0, "{row}");
    run_script(&net, dir, "history.mjs", &env("down"));

    // 3. The agent runs again: communicating, the outage over.
    let _agent = run_agent(&net, dir, AGENT_NAME, "alpha-office-again.log");
    wait_for(
        "the agent to communicate again",
        Duration::from_secs(40),
        || {
            has_event(
                &history(&api, &agent_id),
                "health_changed",
                "not communicating → communicating",
            )
            .then_some(())
        },
    );
    let row = wait_for("the outage to end", Duration::from_secs(10), || {
        let row = agent_row(&api, &agent_id);
        (down_segments(&row).iter().all(|d| d["open"] == false)).then_some(row)
    });
    let down = down_segments(&row);
    assert_eq!(down.len(), 1, "{row}");
    assert_eq!(down[0]["open"], false, "over: {row}");
    assert!(row["up_percent"].as_f64().unwrap() < 100.0, "{row}");
    run_script(&net, dir, "history.mjs", &env("back"));

    // Bad input and other agents.
    let (status, body) = api.call(
        "GET",
        &format!("/agents/{agent_id}/timeline?window=1y"),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("24h, 7d or 30d"));
    let (status, _) = api.call("GET", &format!("/agents/{agent_id}/history?limit=0"), None);
    assert_eq!(status, 422);
    let other = "00000000-0000-4000-8000-000000000000";
    for path in ["history", "timeline"] {
        let (status, _) = api.call("GET", &format!("/agents/{other}/{path}"), None);
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = api.call("GET", "/agents/not-an-id/history", None);
    assert_eq!(status, 400);
    eprintln!(
        "console_history passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
