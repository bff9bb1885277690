//! The device inventory: sweeps merged once per upload, a DHCP move keeps
//! the device, other accounts see nothing; each device's history records
//! what the sweeps saw change, newest first and bounded.

use crate::fixtures::*;
use vigil_core::lan::{Coverage, DeviceEventKind, InventoryChange, MacAddr, Sighting};
use vigil_core::Condition;
use vigil_store::DEVICE_EVENTS_KEPT;
use vigil_store::{AccountId, AgentId, DeviceId, NewNetworkSweep, Store, StoreError, SweepIngest};
use vigil_testdb::TestDb;

backend_tests!(
    sweeps_build_the_inventory_once_per_upload,
    devices_belong_to_their_account,
    bad_sweeps_are_refused,
    history_records_each_change_newest_first,
    history_keeps_the_newest_events_of_each_device,
    the_baseline_is_the_first_sweep,
    a_devices_alerts_are_found_by_its_target,
);

fn seen(ip: &str, mac: Option<&str>, ports: &[u16]) -> Sighting {
    Sighting {
        ip: ip.parse().unwrap(),
        mac: mac.map(|m| m.parse().unwrap()),
        open_ports: ports.to_vec(),
        name: None,
        name_source: None,
    }
}

fn sweep<'a>(upload: &'a str, sightings: &'a [Sighting]) -> NewNetworkSweep<'a> {
    NewNetworkSweep {
        upload_id: upload,
        task_id: "t",
        started_at: 10,
        finished_at: 20,
        report: "{\"swept\":[\"198.51.100.0/24\"]}",
        sightings,
        coverage: Coverage::Complete,
    }
}

fn vendor(m: MacAddr) -> Option<String> {
    (m.octets()[0] == 0).then(|| "Example Corp".to_string())
}

async fn sweeps_build_the_inventory_once_per_upload(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let (agent, _) = agent(s, &acme, "home").await;
    let first = [
        seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[80, 631]),
        seen("198.51.100.11", None, &[]),
    ];
    let out = s
        .ingest_network_sweep(acme.id, agent.id, &sweep("u1", &first), 100, vendor)
        .await
        .unwrap();
    let SweepIngest::Stored { changes, devices } = out else {
        panic!("stored");
    };
    assert_eq!(changes.len(), 2);
    assert_eq!(devices.len(), 2);
    // A re-send changes nothing.
    let again = s
        .ingest_network_sweep(acme.id, agent.id, &sweep("u1", &first), 150, vendor)
        .await
        .unwrap();
    assert_eq!(again, SweepIngest::Duplicate);
    let stored = s.devices(acme.id, agent.id).await.unwrap();
    assert_eq!(stored, devices);
    assert_eq!(stored[0].vendor.as_deref(), Some("Example Corp"));
    assert_eq!(stored[0].open_ports, vec![80, 631]);
    let report = s.network_sweep(acme.id, agent.id).await.unwrap().unwrap();
    assert_eq!((report.upload_id.as_str(), report.received_at), ("u1", 100));

    // A sweep that may have missed devices (the agent's neighbour table
    // overflowed) takes nobody for gone.
    let partial = NewNetworkSweep {
        coverage: Coverage::Partial,
        ..sweep("u1p", &first[..1])
    };
    let out = s
        .ingest_network_sweep(acme.id, agent.id, &partial, 150, vendor)
        .await
        .unwrap();
    let SweepIngest::Stored { changes, devices } = out else {
        panic!("stored");
    };
    assert_eq!(changes, vec![]);
    assert!(devices.iter().all(|d| d.present), "{devices:?}");

    // The DHCP server moves the printer; the other device is gone.
    let second = [seen("198.51.100.77", Some("00:1b:63:00:00:01"), &[80])];
    let out = s
        .ingest_network_sweep(acme.id, agent.id, &sweep("u2", &second), 200, vendor)
        .await
        .unwrap();
    let SweepIngest::Stored { changes, .. } = out else {
        panic!("stored");
    };
    let printer = &stored[0].id;
    assert!(changes.contains(&InventoryChange::Moved {
        id: printer.clone(),
        from: vec!["198.51.100.10".parse().unwrap()],
        to: vec!["198.51.100.77".parse().unwrap()],
    }));
    assert!(changes.contains(&InventoryChange::Left {
        id: stored[1].id.clone()
    }));
    // Listed by address: the one that left (.11) before the printer (.77).
    let now = s.devices(acme.id, agent.id).await.unwrap();
    assert_eq!(s.device_counts(acme.id, agent.id).await.unwrap(), (2, 1));
    assert_eq!(now.len(), 2);
    assert_eq!(now[1].address(), Some("198.51.100.77".parse().unwrap()));
    assert_eq!((now[1].first_seen, now[1].last_seen), (100, 200));
    assert!(!now[0].present && now[1].present);
    let one = s
        .device(acme.id, agent.id, printer.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(one, now[1]);
    assert_eq!(
        s.network_sweep(acme.id, agent.id)
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        "u2"
    );
}

async fn devices_belong_to_their_account(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (agent, _) = agent(s, &acme, "home").await;
    let sightings = [seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[])];
    assert_not_found(
        s.ingest_network_sweep(other.id, agent.id, &sweep("u1", &sightings), 100, vendor)
            .await,
    );
    s.ingest_network_sweep(acme.id, agent.id, &sweep("u1", &sightings), 100, vendor)
        .await
        .unwrap();
    assert!(s.devices(other.id, agent.id).await.unwrap().is_empty());
    assert_eq!(s.device_counts(other.id, agent.id).await.unwrap(), (0, 0));
    assert!(s.network_sweep(other.id, agent.id).await.unwrap().is_none());
    let id = s.devices(acme.id, agent.id).await.unwrap()[0]
        .id
        .parse()
        .unwrap();
    assert_not_found(s.device(other.id, agent.id, id).await);
}

async fn bad_sweeps_are_refused(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let (agent, _) = agent(s, &acme, "home").await;
    let mut named = seen("198.51.100.10", None, &[]);
    named.name = Some("evil\u{7}".into());
    let cases: Vec<(NewNetworkSweep<'_>, &str)> = vec![
        (sweep("", &[]), "upload"),
        (
            NewNetworkSweep {
                finished_at: 5,
                ..sweep("u", &[])
            },
            "finish",
        ),
        (sweep("u", std::slice::from_ref(&named)), "device name"),
    ];
    for (bad, why) in cases {
        let err = s
            .ingest_network_sweep(acme.id, agent.id, &bad, 100, vendor)
            .await
            .expect_err(why);
        assert!(matches!(err, StoreError::Invalid(_)), "{why}: {err:?}");
    }
    assert!(s.devices(acme.id, agent.id).await.unwrap().is_empty());
}

/// `(kind, from, to)` of the device's history, newest first.
async fn history(
    s: &Store,
    account: AccountId,
    agent: AgentId,
    device: DeviceId,
) -> Vec<(DeviceEventKind, Vec<String>, Vec<String>)> {
    let text = |a: &[std::net::IpAddr]| a.iter().map(ToString::to_string).collect();
    s.device_history(account, agent, device, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            assert_eq!(e.device_id, device.to_string());
            (e.kind, text(&e.from), text(&e.to))
        })
        .collect()
}

fn id_of(devices: &[vigil_core::lan::Device], ip: &str) -> DeviceId {
    devices
        .iter()
        .find(|d| d.addresses.iter().any(|a| a.to_string() == ip))
        .unwrap_or_else(|| panic!("{ip} in {devices:?}"))
        .id
        .parse()
        .unwrap()
}

async fn history_records_each_change_newest_first(db: &TestDb) {
    use DeviceEventKind::*;
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let (other_agent, _) = agent(s, &acme, "office").await;
    let (agent, _) = agent(s, &acme, "home").await;
    let printer = seen("198.51.100.10", Some("00:1b:63:00:00:01"), &[631]);
    let tv = seen("198.51.100.11", Some("00:1b:63:00:00:02"), &[]);
    let ingest = |upload: &'static str, sightings: Vec<Sighting>, at: i64| async move {
        s.ingest_network_sweep(acme.id, agent.id, &sweep(upload, &sightings), at, vendor)
            .await
            .unwrap()
    };
    ingest("u1", vec![printer.clone(), tv.clone()], 100).await;
    let devices = s.devices(acme.id, agent.id).await.unwrap();
    let (p, t) = (
        id_of(&devices, "198.51.100.10"),
        id_of(&devices, "198.51.100.11"),
    );
    assert_eq!(
        history(s, acme.id, agent.id, p).await,
        vec![(Joined, vec![], vec![])]
    );
    // DHCP moves the printer; the TV is off.
    let moved = seen("198.51.100.77", Some("00:1b:63:00:00:01"), &[631]);
    ingest("u2", vec![moved.clone()], 200).await;
    // A re-sent upload records nothing again.
    assert_eq!(
        ingest("u2", vec![moved.clone()], 250).await,
        SweepIngest::Duplicate
    );
    // The TV is back; nothing changes for the printer.
    ingest("u3", vec![moved, tv], 300).await;
    assert_eq!(
        history(s, acme.id, agent.id, p).await,
        vec![
            (
                Moved,
                vec!["198.51.100.10".to_string()],
                vec!["198.51.100.77".to_string()]
            ),
            (Joined, vec![], vec![]),
        ]
    );
    let events = s.device_history(acme.id, agent.id, t, 1000).await.unwrap();
    let kinds: Vec<(DeviceEventKind, i64)> = events.iter().map(|e| (e.kind, e.at)).collect();
    assert_eq!(kinds, vec![(Returned, 300), (Left, 200), (Joined, 100)]);
    // The limit takes the newest.
    let newest = s.device_history(acme.id, agent.id, t, 1).await.unwrap();
    assert_eq!(newest, events[..1].to_vec());
    for bad in [0, 1001] {
        assert_invalid(s.device_history(acme.id, agent.id, t, bad).await);
    }
    // Another account, another agent of the same account, a device that
    // does not exist: not found.
    let other = account(s, "Other").await;
    assert_not_found(s.device_history(other.id, agent.id, t, 10).await);
    assert_not_found(s.device_history(acme.id, other_agent.id, t, 10).await);
    assert_not_found(
        s.device_history(acme.id, agent.id, DeviceId::random(), 10)
            .await,
    );
}

async fn history_keeps_the_newest_events_of_each_device(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let (agent, _) = agent(s, &acme, "home").await;
    let phone = seen("198.51.100.20", Some("00:1b:63:00:00:20"), &[]);
    let nas = seen("198.51.100.21", Some("00:1b:63:00:00:21"), &[445]);
    // The phone comes and goes every sweep; the NAS stays.
    let sweeps = DEVICE_EVENTS_KEPT + 5;
    for i in 0..sweeps {
        let upload = format!("u{i}");
        let sightings = if i % 2 == 0 {
            vec![phone.clone(), nas.clone()]
        } else {
            vec![nas.clone()]
        };
        s.ingest_network_sweep(
            acme.id,
            agent.id,
            &sweep(&upload, &sightings),
            1000 + i,
            vendor,
        )
        .await
        .unwrap();
    }
    let devices = s.devices(acme.id, agent.id).await.unwrap();
    let phone_id = id_of(&devices, "198.51.100.20");
    let nas_id = id_of(&devices, "198.51.100.21");
    let kept = s
        .device_history(acme.id, agent.id, phone_id, 1000)
        .await
        .unwrap();
    assert_eq!(
        kept.len() as i64,
        DEVICE_EVENTS_KEPT,
        "one event per sweep, bounded"
    );
    // The newest are kept: the last sweep (even: seen again) first, and the
    // oldest kept is the one from sweep `sweeps - KEPT`; *joined* is gone.
    assert_eq!(kept[0].at, 1000 + sweeps - 1);
    let last = if (sweeps - 1) % 2 == 0 {
        DeviceEventKind::Returned
    } else {
        DeviceEventKind::Left
    };
    assert_eq!(kept[0].kind, last);
    assert_eq!(kept.last().unwrap().at, 1000 + sweeps - DEVICE_EVENTS_KEPT);
    assert!(kept.iter().all(|e| e.kind != DeviceEventKind::Joined));
    assert!(kept.windows(2).all(|w| w[0].at > w[1].at), "newest first");
    // The other device's history is its own.
    let nas_events = s
        .device_history(acme.id, agent.id, nas_id, 1000)
        .await
        .unwrap();
    assert_eq!(nas_events.len(), 1);
    assert_eq!(
        (nas_events[0].kind, nas_events[0].at),
        (DeviceEventKind::Joined, 1000)
    );
}

async fn the_baseline_is_the_first_sweep(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (agent, _) = agent(s, &acme, "home").await;
    assert_eq!(s.network_baseline(acme.id, agent.id).await.unwrap(), None);
    let one = [seen("198.51.100.10", None, &[])];
    for (upload, at) in [("u1", 500), ("u2", 900)] {
        s.ingest_network_sweep(acme.id, agent.id, &sweep(upload, &one), at, vendor)
            .await
            .unwrap();
        assert_eq!(
            s.network_baseline(acme.id, agent.id).await.unwrap(),
            Some(500)
        );
    }
    assert_eq!(s.network_baseline(other.id, agent.id).await.unwrap(), None);
}

async fn a_devices_alerts_are_found_by_its_target(db: &TestDb) {
    let s = &db.store;
    let acme = account(s, "Acme").await;
    let other = account(s, "Other").await;
    let (office, _) = agent(s, &acme, "office").await;
    let (agent, _) = agent(s, &acme, "home").await;
    let target = "device:00:1b:63:00:00:01";
    let raised = s
        .open_alert(
            acme.id,
            agent.id,
            target,
            Condition::new_device(),
            false,
            100,
        )
        .await
        .unwrap();
    let port = s
        .open_alert(
            acme.id,
            agent.id,
            target,
            Condition::unauthorized_open(23),
            false,
            200,
        )
        .await
        .unwrap();
    s.resolve_alert(acme.id, raised.id, 300).await.unwrap();
    // Not this device's: another target, the same target at another agent.
    s.open_alert(
        acme.id,
        agent.id,
        "device:00:1b:63:00:00:02",
        Condition::new_device(),
        false,
        150,
    )
    .await
    .unwrap();
    s.open_alert(
        acme.id,
        office.id,
        target,
        Condition::new_device(),
        false,
        150,
    )
    .await
    .unwrap();
    let found = s
        .target_alerts(acme.id, agent.id, target, 10)
        .await
        .unwrap();
    let ids: Vec<_> = found.iter().map(|a| a.id).collect();
    assert_eq!(ids, vec![port.id, raised.id], "newest first");
    assert_eq!(found[1].resolved_at, Some(300));
    assert_eq!(
        s.target_alerts(acme.id, agent.id, target, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .target_alerts(other.id, agent.id, target, 10)
        .await
        .unwrap()
        .is_empty());
    assert_invalid(s.target_alerts(acme.id, agent.id, target, 0).await);
    // The devices with an open *new device* alert: not the resolved one,
    // not another agent's, not another condition's.
    assert_eq!(
        s.open_alert_targets(acme.id, agent.id, Condition::new_device())
            .await
            .unwrap(),
        vec!["device:00:1b:63:00:00:02".to_string()]
    );
    assert_eq!(
        s.open_alert_targets(acme.id, agent.id, Condition::unauthorized_open(23))
            .await
            .unwrap(),
        vec![target.to_string()]
    );
    assert!(s
        .open_alert_targets(other.id, agent.id, Condition::new_device())
        .await
        .unwrap()
        .is_empty());
}
