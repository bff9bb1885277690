//! The console at scale, in a real browser: 10,000 agents (seeded through
//! the store, with a mix of last contacts) and a real compliance assessment
//! of a whole IPv4 /16 (65,536 endpoints: a few hosts answer on port 135,
//! the rest of the range is silent) in a test network. The browser
//! (`tests/browser/scale.mjs`) pages, searches and filters both lists,
//! follows the dashboard's cards, exports the CSV and checks the pages stay
//! usable at 1280 and 375 px; it prints how long each page took.

mod common;

use common::browser::{browser_available, run_script};
use common::can_build_networks;
use common::compliance::{owner_api, start_server, EMAIL, PASSWORD};
use common::server::wait_for;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_core::Plan;
use vigil_store::{Heartbeat, Store};
use vigil_testnet::{NetSpec, TestNet};

const AGENTS: usize = 10_000;
/// Every `SILENT_EVERY`th agent was last seen an hour ago (not
/// communicating with the default 10 minutes), every `ABANDONED_EVERY`th
/// 40 days ago (abandoned after 30); the rest just now.
const SILENT_EVERY: usize = 10;
const ABANDONED_EVERY: usize = 25;
/// The assessed range: a /16, routed to the target namespace, silent but
/// for [`ANSWERING`] hosts that listen on port 135.
const RANGE: &str = "198.19.0.0/16";
const ANSWERING: [&str; 5] = [
    "198.19.0.10",
    "198.19.7.7",
    "198.19.128.1",
    "198.19.200.200",
    "198.19.255.254",
];

#[derive(Default)]
struct Seeded {
    online: usize,
    silent: usize,
    abandoned: usize,
}

/// The last contact of agent `i`, `now` being the current time.
fn last_contact(i: usize, now: i64) -> i64 {
    if i.is_multiple_of(ABANDONED_EVERY) {
        now - 40 * 24 * 3600
    } else if i.is_multiple_of(SILENT_EVERY) {
        now - 3600
    } else {
        now
    }
}

/// Enrolls [`AGENTS`] agents named `agent-00000`… straight through the
/// store (as 10,000 `vigil agent enroll` would, minus the processes; a few
/// writers at a time) and gives them their last contact.
fn seed_agents(dir: &Path) -> Seeded {
    const WRITERS: usize = 4;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.join("vigil.db").display());
        let store = Store::connect(&url).await.unwrap();
        let owner = store
            .verify_login(EMAIL, PASSWORD)
            .await
            .unwrap()
            .expect("the owner logs in");
        let account = owner.account_id;
        let now = vigil_store::now_unix();
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let store = store.clone();
            writers.spawn(async move {
                for i in (w..AGENTS).step_by(WRITERS) {
                    let name = format!("agent-{i:05}");
                    let ttl = Duration::from_secs(600);
                    let token = store
                        .create_enrollment(account, &name, Plan::Extended, ttl)
                        .await
                        .unwrap();
                    let (agent, _) = store.redeem_enrollment(&token, now).await.unwrap();
                    let hostname = format!("host-{i:05}.acme.test");
                    let hb = Heartbeat {
                        now: last_contact(i, now),
                        hostname: Some(&hostname),
                        ..Default::default()
                    };
                    store
                        .record_heartbeat(account, agent.id, &hb)
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        store.close().await;
        let mut seeded = Seeded::default();
        for i in 0..AGENTS {
            match now - last_contact(i, now) {
                0 => seeded.online += 1,
                3600 => seeded.silent += 1,
                _ => seeded.abandoned += 1,
            }
        }
        seeded
    })
}

#[test]
fn console_pages_stay_usable_at_scale() {
    if !can_build_networks() || !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.route_range(RANGE.parse().unwrap()).unwrap();
    let mut listeners = Vec::new();
    for host in ANSWERING {
        net.add_host(host.parse().unwrap()).unwrap();
        listeners.push(
            net.listen(format!("{host}:135").parse().unwrap(), None)
                .unwrap(),
        );
    }
    let _server = start_server(&net, dir);

    let started = Instant::now();
    let seeded = seed_agents(dir);
    eprintln!("seeded {AGENTS} agents in {:?}", started.elapsed());

    let api = owner_api(&net);
    api.ok(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": {"ip": {"enabled": true, "ranges": [RANGE]}}})),
    );
    let started = Instant::now();
    let id = api.ok("POST", "/compliance/assessments", Some(json!({})))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_for("the /16 assessment", Duration::from_secs(300), || {
        let a = api.get(&format!("/compliance/assessments?assessment={id}"));
        (a["state"] != "running").then_some(a)
    });
    assert_eq!(done["state"], "done", "{done}");
    eprintln!("assessed {RANGE} in {:?}", started.elapsed());
    let counts = &done["counts"];
    let total: u64 = [
        "managed_here",
        "managed_elsewhere",
        "no_agent",
        "unreachable",
        "unresolved_ad",
        "no_host",
    ]
    .iter()
    .map(|k| counts[k].as_u64().unwrap_or(0))
    .sum();
    let range: ipnet::IpNet = RANGE.parse().unwrap();
    let size = 1u64 << (32 - range.prefix_len());
    assert_eq!(
        total, size,
        "every address of the range is an endpoint: {done}"
    );
    assert_eq!(counts["no_agent"], ANSWERING.len(), "{done}");

    run_script(
        &net,
        dir,
        "scale.mjs",
        &[
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_AGENTS", AGENTS.to_string()),
            ("VIGIL_ONLINE", seeded.online.to_string()),
            ("VIGIL_SILENT", seeded.silent.to_string()),
            ("VIGIL_ABANDONED", seeded.abandoned.to_string()),
            ("VIGIL_ENDPOINTS", total.to_string()),
            ("VIGIL_NO_HOST", counts["no_host"].to_string()),
            ("VIGIL_NO_AGENT", ANSWERING.join(",")),
        ],
    );
}
