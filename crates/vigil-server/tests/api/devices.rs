//! The local-network sweep through the APIs: the policy's network targets
//! and their plan limits, the sweep handed out with the heartbeat, its
//! upload merged into the inventory once, and the inventory's REST views.

use crate::common::{wait_tasks, Reply, Server, Tenant};
use reqwest::Method;
use serde_json::{json, Value};
use vigil_core::AccountKind;

api_tests!(
    network_targets_follow_the_plan_limits,
    a_sweep_builds_the_inventory_once,
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

fn sighting(ip: &str, mac: Option<&str>, ports: &[u16], name: Option<&str>) -> Value {
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
