//! Alerts from the location's whole network, end to end: a real server and
//! agent on a bridged test LAN whose gateway is Debian's miniupnpd.
//!
//! - An unreviewed device's open port is *unauthorized* (the policy's
//!   default); *Approve device* authorizes what it has open, and the alert
//!   resolves.
//! - A monitored device that leaves the network raises *unreachable*.
//! - A port forward a host adds through UPnP (`upnpc`) that the policy does
//!   not authorize is an alert on the gateway's forwards; removing the
//!   forward resolves it.
//!
//! Everything runs in the test's own namespaces (198.51.100.0/24 and the
//! gateway's sealed 203.0.113.0/24 side).

mod common;

use common::can_build_networks;
use common::compliance::EMAIL;
use common::http::{console, console_session, field};
use common::lan::{add, login, start_agent, start_server, sweep, sweep_including, Host};
use common::server::{wait_for, Api};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::time::Duration;
use vigil_testnet::{miniupnpd_missing, upnp_add, upnp_delete, TestLan, UpnpGateway};

const SUBNET: &str = "198.51.100.0/24";
const AGENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const GATEWAY_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

const PRINTER: Host = Host {
    name: "printer",
    mac: [0x3c, 0xd9, 0x2b, 0x00, 0x00, 0x10],
    addr: Ipv4Addr::new(198, 51, 100, 10),
    ports: &[631],
};
/// Must always be reachable: monitored.
const ALARM: Host = Host {
    name: "alarm",
    mac: [0xb8, 0x27, 0xeb, 0x00, 0x00, 0x20],
    addr: Ipv4Addr::new(198, 51, 100, 20),
    ports: &[],
};
/// Opens a forward on the router through UPnP.
const PC: Host = Host {
    name: "pc",
    mac: [0x00, 0x1b, 0x63, 0x00, 0x00, 0x30],
    addr: Ipv4Addr::new(198, 51, 100, 30),
    ports: &[],
};

/// Whether miniupnpd can run here; fails instead when it must.
fn gateway_available() -> bool {
    let Some(missing) = miniupnpd_missing() else {
        return true;
    };
    assert!(
        std::env::var("VIGIL_REQUIRE_MINIUPNPD").as_deref() != Ok("1"),
        "VIGIL_REQUIRE_MINIUPNPD=1 but this needs {missing}"
    );
    eprintln!("SKIPPED: needs {missing}");
    false
}

/// The agent's alerts, open and resolved: `(target, kind, port, status, title)`.
fn alerts(api: &Api<'_>, agent: &str) -> Vec<(String, String, Option<u64>, String, String)> {
    let list = api.get(&format!("/alerts?status=all&agent={agent}"));
    list.as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            (
                a["target"].as_str().unwrap().to_string(),
                a["kind"].as_str().unwrap().to_string(),
                a["port"].as_u64(),
                a["status"].as_str().unwrap().to_string(),
                a["title"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The status of the alert on `target` for `kind`/`port`, if any.
fn status(
    api: &Api<'_>,
    agent: &str,
    target: &str,
    kind: &str,
    port: Option<u64>,
) -> Option<String> {
    alerts(api, agent)
        .into_iter()
        .find(|a| a.0 == target && a.1 == kind && a.2 == port)
        .map(|a| a.3)
}

#[test]
fn devices_and_forwards_alert_and_resolve() {
    if !can_build_networks() || !gateway_available() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("vigil-lan-alerts")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    eprintln!("working directory: {}", dir.display());
    let mut lan = TestLan::new(SUBNET.parse().unwrap(), AGENT).expect("test LAN");
    lan.add_gateway(GATEWAY, GATEWAY_WAN).expect("gateway");
    let _upnp = UpnpGateway::start(&lan, &dir.join("upnp")).expect("miniupnpd");
    for h in [&PRINTER, &ALARM, &PC] {
        add(&mut lan, h);
    }
    upnp_add(&lan, PC.name, PC.addr, 3389, 3389, "TCP", "remote desktop").expect("upnpc -a");

    let _server = start_server(&lan, dir, AGENT);
    let token = login(&lan).token;
    let api = Api {
        net: &lan,
        token: token.clone(),
    };
    let (_agent, agent) = start_agent(&lan, dir, &api);
    // Nothing authorized: not on the location's public address, so not
    // forwarded to it either.
    let policy = |include: Vec<String>| {
        json!({"enabled": true, "authorized": "443", "monitored": "",
               "targets": ["local_network"], "interval": 60,
               "include_interfaces": include})
    };
    let (report, lan_iface) = sweep_including(&api, &agent, SUBNET, policy);
    // The gateway's forward is in the report, as UPnP told it.
    let gateway = &report["gateway"];
    assert!(
        gateway["answered"]
            .as_array()
            .unwrap()
            .contains(&json!("upnp")),
        "{report:#}"
    );
    assert_eq!(gateway["external_address"], GATEWAY_WAN.to_string());
    let forward = &gateway["forwards"][0];
    assert_eq!(
        (
            &forward["protocol"],
            &forward["external_port"],
            &forward["internal_client"],
            &forward["description"]
        ),
        (
            &json!("tcp"),
            &json!(3389),
            &json!(PC.addr.to_string()),
            &json!("remote desktop")
        ),
        "{report:#}"
    );

    // Alerts: the unreviewed printer's open port; the unauthorized forward.
    // The sweep's report is stored before its alerts are evaluated, so
    // they may come a moment after it shows.
    let printer_target = "device:3c:d9:2b:00:00:10";
    let open = Some("open".to_string());
    wait_for("the sweep's alerts", Duration::from_secs(10), || {
        let both = [(printer_target, Some(631)), ("forward:tcp", Some(3389))]
            .into_iter()
            .all(|(target, port)| status(&api, &agent, target, "unauthorized_open", port) == open);
        both.then_some(())
    });
    let titles: Vec<String> = alerts(&api, &agent).into_iter().map(|a| a.4).collect();
    assert!(
        titles
            .iter()
            .any(|t| t.contains("631/tcp")
                && t.contains("device 3c:d9:2b:00:00:10 (Hewlett Packard)")),
        "{titles:#?}"
    );
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("Router forwards TCP 3389 from outside, not authorized")),
        "{titles:#?}"
    );
    // Nothing about the alarm and the PC: no open ports.
    assert!(alerts(&api, &agent)
        .iter()
        .all(|a| !a.0.contains("b8:27:eb") && !a.0.contains("00:1b:63")));

    // The printer is approved, the alarm panel monitored; then the alarm
    // panel goes away and the forward is removed.
    let devices = api.get(&format!("/agents/{agent}/devices"));
    let id_of = |addr: Ipv4Addr| -> String {
        devices
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["address"] == addr.to_string())
            .and_then(|d| d["id"].as_str())
            .unwrap_or_else(|| panic!("{addr} in {devices:#}"))
            .to_string()
    };
    let printer_id = id_of(PRINTER.addr);
    let alarm_id = id_of(ALARM.addr);
    // The console's Devices tab: the inventory, the interfaces, the
    // gateway's forward, and *Approve device* (a form with its CSRF field).
    let session = console_session(&lan, EMAIL);
    let page = console(
        &lan,
        &session,
        "GET",
        &format!("/agents/{agent}/devices"),
        &[],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "Hewlett Packard",
        "3c:d9:2b:00:00:10",
        "Forwards TCP 3389 from outside to 198.51.100.30:3389",
        "remote desktop",
        "Approve device",
        lan_iface["name"].as_str().unwrap(),
    ] {
        assert!(page.body.contains(needle), "{needle:?} in {}", page.body);
    }
    // The agent's overview shows the forward beside the outside scan.
    let overview = console(&lan, &session, "GET", &format!("/agents/{agent}"), &[]);
    assert_eq!(overview.status, 200, "{}", overview.body);
    for needle in [
        "The router's port forwards",
        "Forwards TCP 3389 from outside to 198.51.100.30:3389",
        "added by UPnP",
    ] {
        assert!(
            overview.body.contains(needle),
            "{needle:?} in {}",
            overview.body
        );
    }
    let csrf = field(&page.body, "csrf");
    let approve = console(
        &lan,
        &session,
        "POST",
        &format!("/agents/{agent}/devices/{printer_id}/approve"),
        &[("csrf", &csrf)],
    );
    assert_eq!(approve.status, 303, "{}", approve.body);
    let forged = console(
        &lan,
        &session,
        "POST",
        &format!("/agents/{agent}/devices/{alarm_id}/approve"),
        &[("csrf", &"0".repeat(64))],
    );
    assert_eq!(forged.status, 403, "a forged form is refused");
    let approved = api.get(&format!("/agents/{agent}/devices/{printer_id}"));
    assert_eq!(
        (&approved["approved"], &approved["authorized"]),
        (&json!(true), &json!("631"))
    );
    assert_eq!(
        api.get(&format!("/agents/{agent}/devices/{alarm_id}"))["approved"],
        false
    );
    let monitored = api.ok(
        "PATCH",
        &format!("/agents/{agent}/devices/{alarm_id}"),
        Some(json!({"monitored": true, "kind": "alarm panel"})),
    );
    assert_eq!(monitored["monitored"], true);
    let (status_code, body) = api.call(
        "PATCH",
        &format!("/agents/{agent}/devices/{alarm_id}"),
        Some(json!({"authorized": "99999"})),
    );
    assert_eq!(status_code, 422, "{body}");
    drop(api);
    lan.remove_host(ALARM.name).expect("remove the alarm panel");
    upnp_delete(&lan, PC.name, 3389, "TCP").expect("upnpc -d");
    let api = Api { net: &lan, token };

    // Damping: a condition clears, and an unreachable target is raised,
    // after two sweeps in a row say so.
    let mut last = report;
    wait_for("the alerts to settle", Duration::from_secs(240), || {
        last = sweep(&api, &agent, Some(&last));
        let resolved = Some("resolved".to_string());
        let done = status(&api, &agent, printer_target, "unauthorized_open", Some(631)) == resolved
            && status(&api, &agent, "forward:tcp", "unauthorized_open", Some(3389)) == resolved
            && status(
                &api,
                &agent,
                "device:b8:27:eb:00:00:20",
                "target_unreachable",
                None,
            ) == Some("open".to_string());
        done.then_some(())
    });
    let forwards: &Value = &last["gateway"]["forwards"];
    assert_eq!(forwards, &json!([]), "{last:#}");
    let titles: Vec<String> = alerts(&api, &agent).into_iter().map(|a| a.4).collect();
    assert!(
        titles.iter().any(
            |t| t.contains("device b8:27:eb:00:00:20 (Raspberry Pi Foundation)")
                && t.contains("unreachable")
        ),
        "{titles:#?}"
    );
}
