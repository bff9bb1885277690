//! The outside-scan schedule end to end: an account spreads its sweep range
//! over a day, and the server's real scans of an agent's observed address
//! (loopback here) probe the policy's ports, the ports with an alert and
//! one slice of the range per run.

use crate::common::{facts, Server};
use crate::console_devices::{field, with_csrf, Browser};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use vigil_core::{AccountKind, PortList};
use vigil_store::Role;

api_tests!(start = super::start: outside_scans_probe_what_matters_and_a_slice_per_run);

/// The sweep range of these tests: 5,000 ports, so at least 1,000 a slice
/// makes five slices (unprivileged ports, below the ephemeral range).
const RANGE: &str = "10001-15000";

async fn start(db: vigil_testdb::TestDb) -> Server {
    Server::start_with(db, |cfg| {
        cfg.sweep_ports = PortList::parse(RANGE).expect("range");
    })
    .await
}

/// Waits (up to 60 s) for a result of the agent's observed address other
/// than those in `seen` (results of one second are in no set order).
async fn new_result(s: &Server, token: &str, agent: &str, seen: &[&Value]) -> Value {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let results = s.get_ok(&format!("/agents/{agent}/results"), token).await;
        let new = results.as_array().expect("results").iter().find(|r| {
            r["target"] == "observed_address" && seen.iter().all(|old| old["id"] != r["id"])
        });
        if let Some(r) = new {
            return r.clone();
        }
        assert!(Instant::now() < until, "no new result: {results}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The agent's unauthorized-port alert for `port`, whatever its status.
async fn unauthorized_alert(s: &Server, token: &str, agent: &str, port: u16) -> Value {
    let alerts = s.get_ok(&format!("/alerts?agent={agent}"), token).await;
    alerts
        .as_array()
        .expect("alerts")
        .iter()
        .find(|a| a["kind"] == "unauthorized_open" && a["port"] == port)
        .cloned()
        .unwrap_or_else(|| panic!("no alert for {port}: {alerts}"))
}

/// Runs the agent's scan now (the scheduler's next round).
async fn scan_now(s: &Server, token: &str, agent: &str) {
    let path = format!("/agents/{agent}/scan");
    s.send(Method::POST, &path, Some(token), None).await.ok(202);
}

fn open_ports(result: &Value) -> Vec<u16> {
    result["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter(|p| p["state"] == "open")
        .filter_map(|p| p["port"].as_u64()?.try_into().ok())
        .collect()
}

async fn outside_scans_probe_what_matters_and_a_slice_per_run(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let owner = t.owner.as_str();
    let path = "/outside-schedule";

    // The defaults: nmap's top 1,000 every run, the range over a day.
    let schedule = s.get_ok(path, owner).await;
    assert_eq!(
        schedule,
        json!({"top_ports": 1000, "full_range_hours": 24}),
        "{schedule}"
    );
    // A period past a week, or not a number of ports, is refused; viewers
    // may only read. Nothing changes.
    let week = json!({"top_ports": 10, "full_range_hours": 169});
    let refused = s.send(Method::PUT, path, Some(owner), Some(&week)).await;
    assert_eq!(refused.status.as_u16(), 422, "{refused:?}");
    assert!(refused.text.contains("a week"), "{refused:?}");
    let huge = json!({"top_ports": 70000, "full_range_hours": 24});
    let refused = s.send(Method::PUT, path, Some(owner), Some(&huge)).await;
    assert!(refused.status.is_client_error(), "{refused:?}");
    let viewer = s.user(t.id, Role::Viewer).await;
    let spread = json!({"top_ports": 0, "full_range_hours": 24});
    s.send(Method::PUT, path, Some(&viewer), Some(&spread))
        .await
        .ok(403);
    assert_eq!(s.get_ok(path, &viewer).await, schedule);
    // No common ports, the range over a day.
    let set = s
        .send(Method::PUT, path, Some(owner), Some(&spread))
        .await
        .ok(200);
    assert_eq!(set, spread);
    assert_eq!(s.get_ok(path, owner).await, spread);
    // Another account keeps its own (the defaults).
    let other = s.tenant("Other", AccountKind::Member).await;
    assert_eq!(s.get_ok(path, &other.owner).await, schedule);

    // Something listens in the first slice.
    let mut listener = None;
    for port in 10500..11000 {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            listener = Some((l, port));
            break;
        }
    }
    let (listener, listening) = listener.expect("a free port in 10500-10999");

    // An agent on loopback: the server scans its observed address, hourly.
    let (agent, credential) = s.enroll_agent(owner, "home", "extended").await;
    s.heartbeat(&agent, &credential, &facts("home", "linux", "0.2.0"))
        .await
        .ok(200);
    let policy = json!({"enabled": true, "authorized": "", "monitored": "14999",
                        "targets": ["observed_address"], "interval": 60});
    s.send(
        Method::PUT,
        &format!("/agents/{agent}/policy"),
        Some(owner),
        Some(&policy),
    )
    .await
    .ok(200);

    // Run 1: slice 1 of 5 (an hour's runs over a day would be 24 slices,
    // but a slice is at least 1,000 ports) and the monitored port.
    let first = new_result(&s, owner, &agent, &[]).await;
    assert_eq!(first["probed_ports"], "10001-11000,14999", "{first}");
    assert_eq!(first["probed_count"], 1001, "{first}");
    let open = open_ports(&first);
    assert!(open.contains(&listening), "{listening} open in {first}");

    // Run 2 (scan now): slice 2, the monitored port, and what was open.
    scan_now(&s, owner, &agent).await;
    let second = new_result(&s, owner, &agent, &[&first]).await;
    let want = PortList::from_ports(open.iter().copied())
        .union(&PortList::parse("11001-12000,14999").expect("list"));
    assert_eq!(second["probed_ports"], want.to_string(), "{second}");
    assert!(open_ports(&second).contains(&listening), "{second}");
    assert_eq!(
        unauthorized_alert(&s, owner, &agent, listening).await["status"],
        "open"
    );

    // It closes. Runs 3 and 4 still probe it, although neither slice has
    // it and run 3 did not find it open: its alert ends after two scans
    // without it (the damping), and only then is it left to its slice.
    drop(listener);
    let mut seen = vec![first.clone(), second.clone()];
    for (run, slice) in [(3, "12001-13000"), (4, "13001-14000")] {
        scan_now(&s, owner, &agent).await;
        let refs: Vec<&Value> = seen.iter().collect();
        let result = new_result(&s, owner, &agent, &refs).await;
        let probed =
            PortList::parse(result["probed_ports"].as_str().expect("list")).expect("port list");
        assert!(probed.contains(listening), "run {run}: {result}");
        assert!(
            probed.contains(slice.split('-').next().unwrap().parse().unwrap()),
            "run {run}: {result}"
        );
        assert!(
            !open_ports(&result).contains(&listening),
            "run {run}: {result}"
        );
        seen.push(result);
    }
    let ended = unauthorized_alert(&s, owner, &agent, listening).await;
    assert_eq!(ended["status"], "resolved", "{ended}");
    assert_eq!(ended["resolution"], "cleared", "{ended}");

    // The change is in the audit log, with who made it.
    let audit = s.get_ok("/audit", owner).await;
    let change = audit
        .as_array()
        .expect("audit")
        .iter()
        .find(|e| e["action"] == "outside_schedule.update")
        .cloned()
        .expect("outside_schedule.update in the audit log");
    assert_eq!(change["detail"], spread, "{change}");

    // The console: the agents page says what outside scans probe and
    // links the page whose form changes it; bad input changes nothing.
    let email = s.get_ok("/me", owner).await["user"]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let browser = Browser::login(&s, &email).await;
    let agents = browser.get("/agents").await.page();
    assert!(
        agents.contains("the top 0 ports at every run, the rest of the range over 24 h")
            && agents.contains("href=\"/outside-schedule\""),
        "{agents}"
    );
    let page = browser.get("/outside-schedule").await.page();
    let csrf = field(&page, "csrf");
    for (top, hours, why) in [("100", "200", "a week"), ("-1", "0", "whole number")] {
        let form = with_csrf(&csrf, &[("top_ports", top), ("full_range_hours", hours)]);
        let refused = browser.post("/outside-schedule", &form).await;
        assert_eq!(refused.status, 200, "{refused:?}");
        assert!(refused.body.contains(why), "{why}: {}", refused.body);
    }
    assert_eq!(s.get_ok(path, owner).await, spread);
    let form = with_csrf(&csrf, &[("top_ports", "100"), ("full_range_hours", "0")]);
    let saved = browser.post("/outside-schedule", &form).await;
    assert_eq!(saved.status, 303, "{saved:?}");
    assert_eq!(
        saved.location.as_deref(),
        Some("/outside-schedule?done=saved")
    );
    let whole = json!({"top_ports": 100, "full_range_hours": 0});
    assert_eq!(s.get_ok(path, owner).await, whole);
    let page = browser.get("/outside-schedule?done=saved").await.page();
    assert!(
        page.contains("Outside scans changed.")
            && page.contains("the top 100 ports and the whole range at every run"),
        "{page}"
    );
}
