//! The location's whole network, end to end: a real `vigil server` and a
//! real enrolled `vigil agent` on a bridged test LAN (network namespaces,
//! each host with its own MAC), a security policy with the *local network*
//! target, and the device inventory the agent's sweeps build.
//!
//! Ground truth is the LAN the test built: every host's address and MAC,
//! the ports it listens on, and each MAC's vendor read by the test itself
//! from the IEEE registry file (Debian's `ieee-data`). Between two sweeps
//! a host joins, one changes its address (as a DHCP renewal does) and one
//! leaves: the inventory follows, the moved host keeping its identity.
//!
//! Everything runs inside the test's own namespaces on 198.51.100.0/24;
//! nothing is routed anywhere else.

mod common;

use common::lan::{
    add, expect_host, inventory, login, mac_text, registry_vendor, start_agent, start_server,
    sweep, sweep_including, swept_devices, Host, SweptDevices,
};
use common::server::Api;
use common::{can_build_networks, run_ok};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use vigil_testnet::TestLan;

const SUBNET: &str = "198.51.100.0/24";
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

const PRINTER: Host = Host {
    name: "printer",
    mac: [0x3c, 0xd9, 0x2b, 0x00, 0x00, 0x10],
    addr: Ipv4Addr::new(198, 51, 100, 10),
    ports: &[631, 9100],
};
const CAMERA: Host = Host {
    name: "camera",
    mac: [0xb8, 0x27, 0xeb, 0x00, 0x00, 0x11],
    addr: Ipv4Addr::new(198, 51, 100, 11),
    ports: &[554],
};
/// Answers every probe with a reset: a device without open ports.
const NAS: Host = Host {
    name: "nas",
    mac: [0x00, 0x00, 0x0c, 0x00, 0x00, 0x12],
    addr: Ipv4Addr::new(198, 51, 100, 12),
    ports: &[],
};
/// A phone's randomized (locally administered) MAC: no vendor.
const PHONE: Host = Host {
    name: "phone",
    mac: [0x02, 0x42, 0x00, 0x00, 0x00, 0x13],
    addr: Ipv4Addr::new(198, 51, 100, 13),
    ports: &[],
};
/// Drops every TCP packet: no port answers, only ARP finds it.
const ALARM: Host = Host {
    name: "alarm",
    mac: [0x00, 0x1b, 0x63, 0x00, 0x00, 0x15],
    addr: Ipv4Addr::new(198, 51, 100, 15),
    ports: &[],
};
/// Joins between the sweeps.
const LAPTOP: Host = Host {
    name: "laptop",
    mac: [0x00, 0x1b, 0x63, 0x00, 0x00, 0x14],
    addr: Ipv4Addr::new(198, 51, 100, 14),
    ports: &[22],
};
/// Where the printer's address moves.
const PRINTER_MOVED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 50);

#[test]
fn the_agent_inventories_its_lan_and_follows_changes() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("vigil-lan")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    eprintln!("working directory: {}", dir.display());
    let mut lan = TestLan::new(SUBNET.parse().unwrap(), AGENT).expect("test LAN");
    for h in [&PRINTER, &CAMERA, &NAS, &PHONE, &ALARM] {
        add(&mut lan, h);
    }
    run_ok(lan.host_cmd(ALARM.name, "nft").args([
        "add table inet alarm { chain input { type filter hook input priority 0; \
         meta l4proto tcp drop; }; }",
    ]));
    let _server = start_server(&lan, dir, AGENT);
    let token = login(&lan).token;
    let api = Api {
        net: &lan,
        token: token.clone(),
    };
    let (_agent, agent) = start_agent(&lan, dir, &api);

    // The local network is never swept unless a user asks.
    let policy = |include: Vec<String>| {
        json!({"enabled": true, "authorized": "", "monitored": "",
               "targets": ["local_network"], "interval": 60,
               "include_interfaces": include})
    };
    let (report, lan_iface) = sweep_including(&api, &agent, SUBNET, policy);
    assert!(
        report["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "loopback" && i["excluded"].is_string()),
        "loopback is listed and left out: {report:#}"
    );
    assert_eq!(report["swept"], json!([SUBNET]), "{report:#}");

    // Every host, with its MAC, vendor and open ports; the agent's own host
    // too, with the MAC of its interface.
    let inv = inventory(&api, &agent);
    for h in [&PRINTER, &CAMERA, &NAS, &PHONE, &ALARM] {
        expect_host(&inv, h, h.addr);
    }
    let own = &inv[&AGENT.to_string()];
    assert_eq!(own.0, lan_iface["mac"], "the agent's host: {inv:#?}");
    let truth: BTreeSet<String> = [
        PRINTER.addr,
        CAMERA.addr,
        NAS.addr,
        PHONE.addr,
        ALARM.addr,
        AGENT,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(inv.keys().cloned().collect::<BTreeSet<_>>(), truth);
    let printer_id = inv[&PRINTER.addr.to_string()].4.clone();
    let camera_id = inv[&CAMERA.addr.to_string()].4.clone();

    // A laptop joins, the printer gets a new address, the camera leaves.
    drop(api);
    add(&mut lan, &LAPTOP);
    lan.set_host_addr(PRINTER.name, PRINTER_MOVED)
        .expect("move");
    lan.remove_host(CAMERA.name).expect("remove");
    let api = Api { net: &lan, token };
    sweep(&api, &agent, Some(&report));
    let inv = inventory(&api, &agent);
    expect_host(&inv, &LAPTOP, LAPTOP.addr);
    expect_host(&inv, &PRINTER, PRINTER_MOVED);
    assert_eq!(inv[&PRINTER_MOVED.to_string()].4, printer_id, "same device");
    assert!(
        !inv.contains_key(&PRINTER.addr.to_string()),
        "the old address is no device of its own: {inv:#?}"
    );
    let camera = &inv[&CAMERA.addr.to_string()];
    assert_eq!(
        (camera.3, &camera.4),
        (false, &camera_id),
        "the camera left"
    );

    // The laptop is new: the first sweep was the baseline, so it is the
    // only *new device* alert, until someone approves it.
    let alerts = api.get(&format!("/alerts?status=all&agent={agent}"));
    let new_devices: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "new_device")
        .collect();
    assert_eq!(new_devices.len(), 1, "{alerts:#}");
    let laptop_target = format!("device:{}", mac_text(LAPTOP.mac));
    assert_eq!(new_devices[0]["target"], json!(laptop_target));
    assert_eq!(new_devices[0]["status"], "open");
    let title = new_devices[0]["title"].as_str().unwrap();
    assert!(
        title.starts_with("New device 00:1b:63:00:00:14 (Apple, Inc.)"),
        "{title}"
    );
    let laptop_id = inv[&LAPTOP.addr.to_string()].4.clone();
    api.ok(
        "POST",
        &format!("/agents/{agent}/devices/{laptop_id}/approve"),
        None,
    );
    let alert = api.get(&format!(
        "/alerts/{}",
        new_devices[0]["id"].as_str().unwrap()
    ));
    assert_eq!(alert["status"], "resolved", "{alert:#}");

    // One device by id; filters; the CLI shows the same inventory.
    let one = api.get(&format!("/agents/{agent}/devices/{printer_id}"));
    assert_eq!(one["addresses"], json!([PRINTER_MOVED.to_string()]));
    let gone = api.get(&format!("/agents/{agent}/devices?present=false"));
    assert_eq!(gone.as_array().unwrap().len(), 1, "{gone:#}");
    let vendor = registry_vendor(LAPTOP.mac).expect("the laptop's vendor");
    let by_vendor = api.get(&format!(
        "/agents/{agent}/devices?vendor={}",
        vendor
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(',')
    ));
    assert!(
        by_vendor
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["vendor"] == json!(vendor)),
        "{by_vendor:#}"
    );
    let (status, _) = api.call("GET", &format!("/agents/{agent}/devices/nope"), None);
    assert_eq!(status, 400);

    // `vigil agent sweep` by hand finds what the agent reported, whether
    // it finds hosts by ARP or, as without CAP_NET_RAW, by connect probes
    // alone (from a cold neighbour table: only entries the sweep itself
    // confirmed count, and the alarm panel answers nothing but ARP).
    let present: SweptDevices = inv
        .iter()
        .filter(|(_, d)| d.3)
        .map(|(ip, d)| (ip.clone(), d.0.as_str().map(str::to_string), d.2.clone()))
        .collect();
    assert_eq!(present.len(), 6, "{inv:#?}");
    for how in [None, Some("--no-arp")] {
        if how.is_some() {
            run_ok(lan.agent_cmd("ip").args(["neigh", "flush", "all"]));
        }
        let mut cmd = lan.agent_cmd(common::vigil_bin());
        cmd.args(["agent", "sweep", "--network", SUBNET, "--json"])
            .args(how);
        let got = swept_devices(&run_ok(&mut cmd));
        assert_eq!(got, present, "vigil agent sweep {how:?}");
    }
}
