//! The device inventory: sweeps merged once per upload, a DHCP move keeps
//! the device, other accounts see nothing.

use crate::fixtures::*;
use vigil_core::lan::{InventoryChange, MacAddr, Sighting};
use vigil_store::{NewNetworkSweep, StoreError, SweepIngest};
use vigil_testdb::TestDb;

backend_tests!(
    sweeps_build_the_inventory_once_per_upload,
    devices_belong_to_their_account,
    bad_sweeps_are_refused,
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
