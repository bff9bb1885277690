//! A Vigil server and a real enrolled agent on a bridged test LAN
//! (`vigil_testnet::TestLan`): both run in the LAN's agent namespace, the
//! test's clients connect from there too.
#![allow(dead_code)]

use super::compliance::{create_account, EMAIL, PASSWORD};
use super::server::{spawn, wait_for, Api, Proc, API};
use super::{run_ok, vigil_bin};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use vigil_testnet::TestLan;

/// A host of the test LAN: name, MAC, address, listening ports.
pub struct Host {
    pub name: &'static str,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub ports: &'static [u16],
}

pub fn mac_text(mac: [u8; 6]) -> String {
    let parts: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// The vendor of `mac` as the IEEE registry file says (MA-L, 24 bits).
pub fn registry_vendor(mac: [u8; 6]) -> Option<String> {
    if mac[0] & 0x02 != 0 {
        return None;
    }
    let prefix = format!("{:02X}{:02X}{:02X}", mac[0], mac[1], mac[2]);
    let mut rows = csv::Reader::from_path("/usr/share/ieee-data/oui.csv").expect("oui.csv");
    rows.records()
        .map(|r| r.expect("row"))
        .find(|r| r[1] == prefix)
        .map(|r| r[2].trim().to_string())
}

pub fn add(lan: &mut TestLan, h: &Host) {
    lan.add_host(h.name, h.mac, h.addr).expect("host");
    for &p in h.ports {
        lan.listen(h.name, p).expect("listener");
    }
}

pub fn start_server(lan: &TestLan, dir: &Path, agent_addr: Ipv4Addr) -> Proc {
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    create_account(&db, "Acme", EMAIL);
    let mut cmd = lan.agent_cmd(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(dir)
        .args(["--db", &db, "--listen", API])
        .args(["--agent-listen", &format!("{agent_addr}:8443")])
        .args(["--heartbeat-secs", "1", "--tick-ms", "200"])
        .env("VIGIL_LOG", "info");
    let p = spawn(cmd, "server", &dir.join("server.log"));
    let api = Api {
        net: lan,
        token: None,
    };
    wait_for("the server", Duration::from_secs(20), || {
        (api.call("GET", "/openapi.json", None).0 == 200).then_some(())
    });
    p
}

pub fn login(lan: &TestLan) -> Api<'_> {
    let mut api = Api {
        net: lan,
        token: None,
    };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": EMAIL, "password": PASSWORD})),
    );
    api.token = login["token"].as_str().map(str::to_string);
    api
}

/// Enrolls a real agent through the REST API and runs it in the agent
/// namespace; returns it and its id.
pub fn start_agent(lan: &TestLan, dir: &Path, api: &Api<'_>) -> (Proc, String) {
    let e = api.ok(
        "POST",
        "/enrollments",
        Some(json!({"name": "home", "plan": "extended"})),
    );
    let command = e["command"].as_str().expect("command").to_string();
    let words: Vec<&str> = command.split_whitespace().collect();
    let state = dir.join("agent");
    run_ok(
        lan.agent_cmd(vigil_bin())
            .args(["agent", "--state-dir"])
            .arg(&state)
            .args(&words[2..]),
    );
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("identity.json")).unwrap())
            .unwrap();
    let id = identity["agent_id"].as_str().unwrap().to_string();
    let mut cmd = lan.agent_cmd(vigil_bin());
    cmd.args(["agent", "--state-dir"])
        .arg(&state)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("VIGIL_LOG", "info");
    (spawn(cmd, "agent", &dir.join("agent.log")), id)
}

/// Asks for a sweep now and waits for its report (a newer upload than
/// `after`, by its receive time and upload).
pub fn sweep(api: &Api<'_>, agent: &str, after: Option<&Value>) -> Value {
    wait_for("the scan to be accepted", Duration::from_secs(30), || {
        // 409 while the previous sweep's task is still out.
        (api.call("POST", &format!("/agents/{agent}/scan"), None).0 == 202).then_some(())
    });
    wait_for("a network sweep", Duration::from_secs(120), || {
        let (status, view) = api.call("GET", &format!("/agents/{agent}/network"), None);
        (status == 200 && Some(&view) != after).then_some(view)
    })
}

/// The inventory as `address → (mac, vendor, open ports, present, id)`.
pub type Inventory = BTreeMap<String, (Value, Value, Vec<u64>, bool, String)>;

pub fn inventory(api: &Api<'_>, agent: &str) -> Inventory {
    let devices = api.get(&format!("/agents/{agent}/devices"));
    devices
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            let ports = d["open_ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_u64().unwrap())
                .collect();
            (
                d["address"].as_str().unwrap().to_string(),
                (
                    d["mac"].clone(),
                    d["vendor"].clone(),
                    ports,
                    d["present"].as_bool().unwrap(),
                    d["id"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

pub fn expect_host(inv: &Inventory, h: &Host, addr: Ipv4Addr) {
    let (mac, vendor, ports, present, _) = inv
        .get(&addr.to_string())
        .unwrap_or_else(|| panic!("{} ({addr}) missing: {inv:#?}", h.name));
    assert_eq!(mac, &json!(mac_text(h.mac)), "{}", h.name);
    assert_eq!(vendor, &json!(registry_vendor(h.mac)), "{}", h.name);
    let want: Vec<u64> = h.ports.iter().map(|&p| u64::from(p)).collect();
    assert_eq!(ports, &want, "{}", h.name);
    assert!(present, "{}", h.name);
}

/// Sets the agent's policy to `policy(include_interfaces)` and sweeps;
/// when the interface on `subnet` is left out by default (a veth is a
/// virtual link), includes it, as a user would, and sweeps again. Returns
/// the latest sweep's report and that interface.
pub fn sweep_including(
    api: &Api<'_>,
    agent: &str,
    subnet: &str,
    policy: impl Fn(Vec<String>) -> Value,
) -> (Value, Value) {
    let path = format!("/agents/{agent}/policy");
    api.ok("PUT", &path, Some(policy(vec![])));
    let mut report = sweep(api, agent, None);
    let iface = report["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["subnets"].as_array().unwrap().contains(&json!(subnet)))
        .unwrap_or_else(|| panic!("no interface on {subnet}: {report:#}"))
        .clone();
    if iface["excluded"].is_string() {
        assert!(
            !report["swept"].as_array().unwrap().contains(&json!(subnet)),
            "left out, so not swept: {report:#}"
        );
        let name = iface["name"].as_str().unwrap().to_string();
        api.ok("PUT", &path, Some(policy(vec![name])));
        report = sweep(api, agent, Some(&report));
    }
    (report, iface)
}

/// What `vigil agent sweep --json` printed: each device as (address, MAC,
/// open ports). Fails on an incomplete sweep.
pub type SweptDevices = std::collections::BTreeSet<(String, Option<String>, Vec<u64>)>;

pub fn swept_devices(json: &str) -> SweptDevices {
    let out: Value = serde_json::from_str(json).expect("sweep JSON");
    assert!(out["incomplete"].is_null(), "{out:#}");
    out["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            let ports = d["open_ports"]
                .as_array()
                .map_or(Vec::new(), |p| p.iter().filter_map(Value::as_u64).collect());
            (
                d["ip"].as_str().expect("ip").to_string(),
                d["mac"].as_str().map(str::to_string),
                ports,
            )
        })
        .collect()
}

/// A device as a finished sweep saw it: address, MAC, open ports.
pub fn sighting(ip: &str, mac: &str, ports: &[u16]) -> vigil_core::lan::Sighting {
    vigil_core::lan::Sighting {
        ip: ip.parse().expect("ip"),
        mac: Some(mac.parse().expect("mac")),
        open_ports: ports.to_vec(),
        name: None,
        name_source: None,
    }
}

/// Stores finished sweeps of `agent`'s location — `(upload id, finished
/// at, sightings)`, oldest first — straight into the SQLite database at
/// `db` (the agent API needs a real sweep; the store is what it feeds),
/// and returns the location's devices afterwards.
pub fn store_sweeps(
    db: &Path,
    agent: &str,
    sweeps: &[(&str, i64, Vec<vigil_core::lan::Sighting>)],
) -> Vec<vigil_core::lan::Device> {
    use vigil_store::{NewNetworkSweep, Store};
    let vendor = |m: vigil_core::lan::MacAddr| vigil_oui::vendor(m.octets()).map(str::to_string);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("the server's database");
        let agent = store
            .agents_all_accounts()
            .await
            .expect("agents")
            .into_iter()
            .find(|a| a.id.to_string() == agent)
            .expect("the enrolled agent");
        for (upload, at, sightings) in sweeps {
            let sweep = NewNetworkSweep {
                upload_id: upload,
                task_id: "seeded",
                started_at: at - 10,
                finished_at: *at,
                report: "{}",
                sightings,
                coverage: vigil_core::lan::Coverage::Complete,
            };
            store
                .ingest_network_sweep(agent.account_id, agent.id, &sweep, *at, vendor)
                .await
                .expect("sweep stored");
        }
        let devices = store
            .devices(agent.account_id, agent.id)
            .await
            .expect("devices");
        store.close().await;
        devices
    })
}
