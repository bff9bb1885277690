//! The local-network sweep through the APIs: the policy's network targets
//! and their plan limits, the sweep handed out with the heartbeat, its
//! upload merged into the inventory once, and the inventory's REST views:
//! the list's filters and each device's history.

use crate::common::{facts, wait_tasks, Reply, Server, Tenant};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use vigil_core::AccountKind;

api_tests!(
    network_targets_follow_the_plan_limits,
    a_sweep_builds_the_inventory_once,
    devices_filter_and_keep_their_history,
    an_incomplete_sweep_takes_nobody_for_gone,
);

fn lan_policy(targets: Value) -> Value {
    json!({"enabled": true, "authorized": "", "monitored": "", "targets": targets,
           "interval": 60, "include_interfaces": ["docker0"]})
}

async fn agent(s: &Server, t: &Tenant) -> (String, String) {
    s.enroll_agent(&t.owner, "home", "extended").await
}

async fn network_targets_follow_the_plan_limits(s: Server) {
    let member = s.tenant("Member", AccountKind::Member).await;
    let org = s.tenant("Org", AccountKind::Organization).await;
    for (t, fits, too_big, limit) in [
        (&member, "198.18.0.0/22", "198.18.0.0/21", "/22"),
        (&org, "198.18.0.0/16", "198.18.0.0/15", "/16"),
    ] {
        let (id, _) = agent(&s, t).await;
        let path = format!("/agents/{id}/policy");
        let ok = lan_policy(json!(["local_network", {"network": fits}]));
        s.send(Method::PUT, &path, Some(&t.owner), Some(&ok))
            .await
            .ok(200);
        let stored = s.get_ok(&path, &t.owner).await;
        assert_eq!(stored["policy"]["targets"][1], json!({"network": fits}));
        assert_eq!(stored["policy"]["include_interfaces"], json!(["docker0"]));
        let big = lan_policy(json!([{"network": too_big}]));
        s.send(Method::PUT, &path, Some(&t.owner), Some(&big))
            .await
            .assert_error(422, &[limit]);
        assert_eq!(
            s.get_ok(&path, &t.owner).await["policy"],
            stored["policy"],
            "kept"
        );
    }
    let (id, _) = agent(&s, &org).await;
    let path = format!("/agents/{id}/policy");
    for (bad, needle) in [
        ("198.51.100.7/24", "198.51.100.0/24"),
        ("nas.lan", "not a network"),
        ("198.51.100.0/33", "CIDR"),
    ] {
        let body = lan_policy(json!([{"network": bad}]));
        s.send(Method::PUT, &path, Some(&org.owner), Some(&body))
            .await
            .assert_error(422, &[needle]);
    }
    s.shutdown().await;
}

pub fn sighting(ip: &str, mac: Option<&str>, ports: &[u16], name: Option<&str>) -> Value {
    json!({"ip": ip, "mac": mac, "open_ports": ports, "name": name,
           "name_source": name.map(|_| "mdns")})
}

async fn network_upload(s: &Server, id: &str, credential: &str, body: &Value) -> Reply {
    s.agent_post(id, credential, "/agent/v1/network", body)
        .await
}

async fn a_sweep_builds_the_inventory_once(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let (id, credential) = agent(&s, &t).await;
    s.send(
        Method::PUT,
        &format!("/agents/{id}/policy"),
        Some(&t.owner),
        Some(&lan_policy(json!(["local_network", "agent_host"]))),
    )
    .await
    .ok(200);
    // The heartbeat hands out one sweep with what it covers.
    let tasks = wait_tasks(&s, &id, &credential, 2).await;
    let sweep = tasks
        .iter()
        .find(|t| t["target"] == "network")
        .unwrap_or_else(|| panic!("no network sweep: {tasks:?}"));
    assert_eq!(
        sweep["network"],
        json!({"local": true, "include_interfaces": ["docker0"], "networks": [],
               "max_addresses": 65536, "audit_gateway": true})
    );
    let host_task = tasks
        .iter()
        .find(|t| t["target"] == "self")
        .expect("host task");

    let upload = json!({
        "upload_id": "u1", "task_id": sweep["task_id"], "started_at": 10, "finished_at": 20,
        "interfaces": [{"name": "eth0", "kind": "ethernet", "mac": "00:1b:63:00:00:01",
                        "subnets": ["198.51.100.0/24"]},
                       {"name": "docker0", "kind": "virtual", "subnets": ["172.17.0.0/16"],
                        "excluded": "container bridge (docker0)"}],
        "swept": ["198.51.100.0/24"],
        "skipped": [],
        "devices": [sighting("198.51.100.10", Some("00:1b:63:00:00:10"), &[80, 631], Some("printer.local")),
                    sighting("198.51.100.11", None, &[], Some("bad\u{1b}name"))],
        "gateway": {"answered": ["upnp"], "forwards": [{"protocol": "tcp", "external_port": 3389,
                    "internal_client": "198.51.100.11", "internal_port": 3389,
                    "description": "rdp", "enabled": true, "source": "upnp"}]},
    });
    let ack = network_upload(&s, &id, &credential, &upload).await.ok(200);
    assert_eq!(ack["status"], "stored");
    let again = network_upload(&s, &id, &credential, &upload).await.ok(200);
    assert_eq!(again["status"], "duplicate");
    // A host scan's task takes no sweep.
    let mut wrong = upload.clone();
    wrong["upload_id"] = json!("u2");
    wrong["task_id"] = host_task["task_id"].clone();
    network_upload(&s, &id, &credential, &wrong)
        .await
        .assert_error(422, &["not a network sweep"]);

    let devices = s.get_ok(&format!("/agents/{id}/devices"), &t.owner).await;
    let list = devices.as_array().expect("devices");
    assert_eq!(list.len(), 2, "{devices:#}");
    assert_eq!(list[0]["address"], "198.51.100.10");
    assert_eq!(list[0]["mac"], "00:1b:63:00:00:10");
    assert_eq!(
        list[0]["vendor"],
        json!(vigil_oui::vendor([0x00, 0x1b, 0x63, 0, 0, 0x10]))
    );
    assert!(list[0]["vendor"].is_string(), "the registry knows 00:1b:63");
    assert_eq!(list[0]["open_ports"], json!([80, 631]));
    assert_eq!(list[0]["name"], "printer.local");
    assert_eq!(list[0]["name_source"], "mdns");
    assert_eq!(list[1]["name"], Value::Null, "an unclean name is dropped");
    let one = s
        .get_ok(
            &format!("/agents/{id}/devices/{}", list[0]["id"].as_str().unwrap()),
            &t.owner,
        )
        .await;
    assert_eq!(&one, &list[0]);
    let network = s.get_ok(&format!("/agents/{id}/network"), &t.owner).await;
    assert_eq!(network["devices"], 2);
    assert_eq!(network["swept"], json!(["198.51.100.0/24"]));
    assert_eq!(
        network["interfaces"][1]["excluded"],
        "container bridge (docker0)"
    );
    assert_eq!(network["gateway"]["forwards"][0]["external_port"], 3389);

    // Another account sees none of it.
    let other = s.tenant("Other", AccountKind::Organization).await;
    for path in [
        format!("/agents/{id}/devices"),
        format!("/agents/{id}/network"),
    ] {
        s.get(&path, &other.owner).await.assert_error(404, &[]);
    }
    s.shutdown().await;
}

/// A location whose agent's sweeps the test uploads, as the agent would:
/// each through a network task the server handed out.
pub struct Lan<'s> {
    s: &'s Server,
    pub agent: String,
    credential: String,
    owner: String,
    /// Tasks uploaded for.
    used: Vec<String>,
}

/// A policy sweeping the local network; `kinds`: its device kinds.
pub fn lan_only_policy(kinds: Value) -> Value {
    json!({"enabled": true, "authorized": "", "monitored": "", "targets": ["local_network"],
           "interval": 60, "device_kinds": kinds})
}

impl<'s> Lan<'s> {
    /// Enrolls an agent of `t` with `policy`.
    pub async fn start(s: &'s Server, t: &Tenant, policy: &Value) -> Lan<'s> {
        let (agent, credential) = s.enroll_agent(&t.owner, "home", "extended").await;
        s.send(
            Method::PUT,
            &format!("/agents/{agent}/policy"),
            Some(&t.owner),
            Some(policy),
        )
        .await
        .ok(200);
        Lan {
            s,
            agent,
            credential,
            owner: t.owner.clone(),
            used: Vec::new(),
        }
    }

    /// One sweep that saw `devices` (sightings), stored by the server.
    pub async fn sweep(&mut self, devices: Vec<Value>) {
        self.sweep_reporting(devices, None).await;
    }

    /// One sweep as [`Lan::sweep`], `incomplete` for the reason the agent
    /// gives when it may have missed devices.
    pub async fn sweep_reporting(&mut self, devices: Vec<Value>, incomplete: Option<&str>) {
        if !self.used.is_empty() {
            // The previous sweep's task is done: ask for the next one.
            self.s
                .send(
                    Method::POST,
                    &format!("/agents/{}/scan", self.agent),
                    Some(&self.owner),
                    None,
                )
                .await
                .ok(202);
        }
        let until = Instant::now() + Duration::from_secs(30);
        let task = loop {
            let reply = self
                .s
                .heartbeat(&self.agent, &self.credential, &facts("h", "o", "v"))
                .await
                .ok(200);
            let fresh = reply["tasks"].as_array().and_then(|tasks| {
                tasks
                    .iter()
                    .filter(|t| t["target"] == "network")
                    .filter_map(|t| t["task_id"].as_str())
                    .find(|id| !self.used.iter().any(|u| u == id))
                    .map(str::to_string)
            });
            if let Some(task) = fresh {
                break task;
            }
            assert!(Instant::now() < until, "no network task came: {reply}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let upload = json!({
            "upload_id": format!("u{}", self.used.len()), "task_id": task,
            "started_at": 10, "finished_at": 20,
            "interfaces": [{"name": "eth0", "kind": "ethernet", "subnets": ["198.51.100.0/24"]}],
            "swept": ["198.51.100.0/24"], "skipped": [], "devices": devices,
            "incomplete": incomplete,
        });
        let ack = network_upload(self.s, &self.agent, &self.credential, &upload)
            .await
            .ok(200);
        assert_eq!(ack["status"], "stored", "{ack}");
        self.used.push(task);
    }

    /// The id of the device at `address`.
    pub async fn device_id(&self, address: &str) -> String {
        let list = self
            .s
            .get_ok(&format!("/agents/{}/devices", self.agent), &self.owner)
            .await;
        list.as_array()
            .expect("devices")
            .iter()
            .find(|d| d["address"] == address)
            .and_then(|d| d["id"].as_str())
            .unwrap_or_else(|| panic!("no device at {address}: {list:#}"))
            .to_string()
    }
}

pub const PRINTER_MAC: &str = "3c:d9:2b:00:00:10";
pub const PI_MAC: &str = "b8:27:eb:00:00:20";
pub const LAPTOP_MAC: &str = "00:1b:63:00:00:30";

/// The scenario the list and history tests share: a baseline sweep with a
/// printer (631 and 9100 open) and a Raspberry Pi; then the printer moves
/// (DHCP), the Pi is gone and a laptop (22 open) joins.
pub async fn two_sweeps(lan: &mut Lan<'_>) {
    lan.sweep(vec![
        sighting("198.51.100.10", Some(PRINTER_MAC), &[631, 9100], None),
        sighting("198.51.100.20", Some(PI_MAC), &[], None),
    ])
    .await;
    lan.sweep(vec![
        sighting("198.51.100.77", Some(PRINTER_MAC), &[631, 9100], None),
        sighting(
            "198.51.100.30",
            Some(LAPTOP_MAC),
            &[22],
            Some("laptop.local"),
        ),
    ])
    .await;
}

/// A sweep the agent says may have missed devices takes nobody for gone:
/// a monitored device it did not see is still present, with no alert; the
/// next complete sweep that misses it does both.
async fn an_incomplete_sweep_takes_nobody_for_gone(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let mut lan = Lan::start(&s, &t, &lan_only_policy(json!([]))).await;
    let printer = sighting("198.51.100.10", Some(PRINTER_MAC), &[], None);
    let pi = sighting("198.51.100.20", Some(PI_MAC), &[], None);
    lan.sweep(vec![printer.clone(), pi]).await;
    let agent = lan.agent.clone();
    let pi_id = lan.device_id("198.51.100.20").await;
    s.send(
        Method::PATCH,
        &format!("/agents/{agent}/devices/{pi_id}"),
        Some(&t.owner),
        Some(&json!({"monitored": true})),
    )
    .await
    .ok(200);
    let why = "the neighbour table was full 12 times during the sweep";
    let pi_state = || async {
        let d = s
            .get_ok(&format!("/agents/{agent}/devices/{pi_id}"), &t.owner)
            .await;
        let alerts = s
            .get_ok(&format!("/alerts?status=all&agent={agent}"), &t.owner)
            .await;
        let unreachable = alerts.as_array().expect("alerts").iter().any(|a| {
            a["kind"] == "target_unreachable" && a["target"] == format!("device:{PI_MAC}")
        });
        (d["present"].as_bool().expect("present"), unreachable)
    };
    for _ in 0..2 {
        lan.sweep_reporting(vec![printer.clone()], Some(why)).await;
        let network = s
            .get_ok(&format!("/agents/{agent}/network"), &t.owner)
            .await;
        assert_eq!(network["incomplete"], why, "{network:#}");
        assert_eq!(pi_state().await, (true, false));
    }
    // Damping raises after two sweeps that say so.
    for _ in 0..2 {
        lan.sweep(vec![printer.clone()]).await;
    }
    let network = s
        .get_ok(&format!("/agents/{agent}/network"), &t.owner)
        .await;
    assert!(network.get("incomplete").is_none(), "{network:#}");
    assert_eq!(pi_state().await, (false, true));
}

fn addresses(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = list
        .as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|d| d["address"].as_str().expect("address").to_string())
        .collect();
    out.sort();
    out
}

async fn devices_filter_and_keep_their_history(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let policy = lan_only_policy(json!([{"name": "printer", "authorized": "631"}]));
    let mut lan = Lan::start(&s, &t, &policy).await;
    two_sweeps(&mut lan).await;
    let agent = lan.agent.clone();
    let printer = lan.device_id("198.51.100.77").await;
    let pi = lan.device_id("198.51.100.20").await;
    let laptop = lan.device_id("198.51.100.30").await;

    // History, newest first, with the move's addresses.
    let history = |device: &str, q: &str| format!("/agents/{agent}/devices/{device}/history{q}");
    let h = s.get_ok(&history(&printer, ""), &t.owner).await;
    let events = h["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "{h:#}");
    assert_eq!(events[0]["kind"], "moved");
    assert_eq!(events[0]["from"], json!(["198.51.100.10"]));
    assert_eq!(events[0]["to"], json!(["198.51.100.77"]));
    assert_eq!(
        events[0]["detail"],
        "moved from 198.51.100.10 to 198.51.100.77"
    );
    assert_eq!(
        (&events[1]["kind"], &events[1]["from"]),
        (&json!("joined"), &json!([]))
    );
    assert!(events[0]["at"].as_i64() >= events[1]["at"].as_i64());
    let kinds = |h: &Value| -> Vec<String> {
        h["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        kinds(&s.get_ok(&history(&pi, ""), &t.owner).await),
        ["left", "joined"]
    );
    assert_eq!(
        kinds(&s.get_ok(&history(&pi, "?limit=1"), &t.owner).await),
        ["left"]
    );
    assert_eq!(
        kinds(&s.get_ok(&history(&laptop, ""), &t.owner).await),
        ["joined"]
    );
    // Bad input is refused, and says why.
    s.get(&history(&pi, "?limit=0"), &t.owner)
        .await
        .assert_error(422, &["limit"]);
    s.get(&history(&pi, "?limit=many"), &t.owner)
        .await
        .assert_client_error(&["limit"]);
    s.get(&history(&pi, "?since=1"), &t.owner)
        .await
        .assert_client_error(&["since"]);
    s.get(&history("nas", ""), &t.owner)
        .await
        .assert_error(400, &["device"]);
    let nobody = "8d6c0c1e-0000-4000-8000-000000000001";
    s.get(&history(nobody, ""), &t.owner)
        .await
        .assert_error(404, &[]);
    let other = s.tenant("Other", AccountKind::Organization).await;
    s.get(&history(&pi, ""), &other.owner)
        .await
        .assert_error(404, &[]);

    // The list's filters.
    let list = |q: &str| format!("/agents/{agent}/devices{q}");
    let shown = |q: &'static str| {
        let (s, path, owner) = (&s, list(q), &t.owner);
        async move { addresses(&s.get_ok(&path, owner).await) }
    };
    assert_eq!(
        shown("").await,
        ["198.51.100.20", "198.51.100.30", "198.51.100.77"]
    );
    assert_eq!(shown("?new=true").await, ["198.51.100.30"]);
    assert_eq!(
        shown("?new=false").await,
        ["198.51.100.20", "198.51.100.77"]
    );
    assert_eq!(
        shown("?approved=false").await,
        ["198.51.100.20", "198.51.100.30", "198.51.100.77"]
    );
    // Unreviewed: every open port is unauthorized; the gone Pi exposes nothing.
    assert_eq!(
        shown("?unauthorized=true").await,
        ["198.51.100.30", "198.51.100.77"]
    );
    assert_eq!(shown("?present=false").await, ["198.51.100.20"]);
    let apple = vigil_oui::vendor([0x00, 0x1b, 0x63, 0, 0, 0x30]).expect("a vendor");
    let needle = apple.split_whitespace().next().unwrap().to_uppercase();
    let by_vendor = s
        .get_ok(&list(&format!("?vendor={needle}")), &t.owner)
        .await;
    assert_eq!(addresses(&by_vendor), ["198.51.100.30"], "{needle}");
    assert_eq!(
        shown("?new=true&unauthorized=true&present=true").await,
        ["198.51.100.30"]
    );
    s.get(&list("?new=maybe"), &t.owner)
        .await
        .assert_client_error(&["new"]);
    s.get(&list("?unreviewed=true"), &t.owner)
        .await
        .assert_client_error(&["unreviewed"]);

    // Decisions change what the filters list: the printer's kind allows
    // 631 only (9100 still unauthorized); its own list allows both.
    let patch = |device: &str, body: Value| {
        let (s, path, owner) = (&s, format!("/agents/{agent}/devices/{device}"), &t.owner);
        async move {
            s.send(Method::PATCH, &path, Some(owner), Some(&body))
                .await
                .ok(200)
        }
    };
    patch(&printer, json!({"kind": "printer"})).await;
    assert_eq!(
        shown("?unauthorized=true").await,
        ["198.51.100.30", "198.51.100.77"]
    );
    patch(&printer, json!({"authorized": "631,9100"})).await;
    assert_eq!(shown("?unauthorized=true").await, ["198.51.100.30"]);
    assert_eq!(
        shown("?unauthorized=false").await,
        ["198.51.100.20", "198.51.100.77"]
    );
    // The laptop's new-device alert is open until someone approves it,
    // here through PATCH.
    let new_device_alert = || {
        let (s, owner, agent) = (&s, &t.owner, &agent);
        async move {
            let alerts = s
                .get_ok(&format!("/alerts?status=all&agent={agent}"), owner)
                .await;
            alerts
                .as_array()
                .expect("alerts")
                .iter()
                .find(|a| a["kind"] == "new_device")
                .map(|a| (a["target"].clone(), a["status"].clone()))
        }
    };
    assert_eq!(
        new_device_alert().await,
        Some((json!(format!("device:{LAPTOP_MAC}")), json!("open")))
    );
    patch(&laptop, json!({"approved": true})).await;
    assert!(shown("?new=true").await.is_empty());
    assert_eq!(shown("?approved=true").await, ["198.51.100.30"]);
    assert_eq!(
        new_device_alert().await,
        Some((json!(format!("device:{LAPTOP_MAC}")), json!("resolved")))
    );
    s.shutdown().await;
}
