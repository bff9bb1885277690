//! Replicas and agent failover, end to end: two real `vigil server`
//! processes on one PostgreSQL database, presenting one TLS identity (B's
//! data directory gets a copy of A's `tls/` files), each told the other's
//! agent URL; one real agent enrolled with both URLs. Killing (-9) the
//! server the agent talks to moves it to the other one without a gap the
//! liveness sweeper would notice; the restarted server gets it back.
//!
//! Everything listens on 127.0.0.1 (free ports); PostgreSQL is the
//! throwaway cluster of `vigil-testdb`. Without PostgreSQL the test prints
//! `SKIPPED` and passes, unless `VIGIL_REQUIRE_POSTGRES=1`.

mod common;

use common::replica::Replica;
use common::server::{spawn, unix_now, wait_for};
use common::watch::Watch;
use common::{run_ok, vigil_bin};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_core::{AccountKind, Plan};
use vigil_store::AgentId;

/// An agent silent this long (seconds) is "not communicating": far longer
/// than a failover takes, far shorter than the test.
const SILENT_AFTER: u64 = 5;
/// How long a heartbeat may take to show.
const LIMIT: Duration = Duration::from_secs(20);

/// Lines of the agent's log saying it heartbeats via `url`.
fn heartbeating_via(log: &Path, url: &str) -> usize {
    let port = url.rsplit(':').next().unwrap_or(url);
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("heartbeating via") && l.contains(&format!("127.0.0.1:{port}")))
        .count()
}

#[test]
fn the_agent_fails_over_between_replicas_on_one_database() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = rt.block_on(vigil_testdb::postgres()) else {
        return;
    };
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("vigil-failover")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    eprintln!("failover working directory: {}", dir.display());

    let [mut a, mut b] = Replica::on_one_database(["a", "b"], dir, &db.url);
    for r in [&mut a, &mut b] {
        r.args = [
            "--heartbeat-secs",
            "1",
            "--tick-ms",
            "200",
            "--silent-after-secs",
        ]
        .map(String::from)
        .to_vec();
        r.args.push(SILENT_AFTER.to_string());
    }

    // A generates the TLS identity; B presents the same one.
    let (mut a_proc, pin) = a.start();
    b.share_identity(&a);
    let (_b_proc, b_pin) = b.start();
    assert_eq!(b_pin, pin, "replicas present one certificate");

    let account = rt
        .block_on(db.store.create_account("Acme", AccountKind::Organization))
        .expect("account");
    let token = rt
        .block_on(db.store.create_enrollment(
            account.id,
            "failover",
            Plan::Extended,
            Duration::from_secs(600),
        ))
        .expect("token");
    let state = dir.join("agent");
    let (url_a, url_b) = (a.agent_url(), b.agent_url());
    run_ok(
        Command::new(vigil_bin())
            .arg("agent")
            .arg("--state-dir")
            .arg(&state)
            .args(["enroll", "--server", &url_a, "--server", &url_b])
            .args(["--token", &token, "--pin", &pin]),
    );
    let identity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("identity.json")).expect("identity"),
    )
    .expect("json");
    assert_eq!(identity["server_url"], url_a.as_str(), "{identity}");
    assert_eq!(identity["fallback_urls"][0], url_b.as_str(), "{identity}");
    let mut announced = vec![url_a.clone(), url_b.clone()];
    announced.sort();
    assert_eq!(identity["announced_urls"], serde_json::json!(announced));
    let agent: AgentId = identity["agent_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("agent id");

    let agent_log = dir.join("agent.log");
    let mut cmd = Command::new(vigil_bin());
    cmd.arg("agent")
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--listen", "127.0.0.1:0"])
        .env("VIGIL_LOG", "info");
    let _agent = spawn(cmd, "agent", &agent_log);
    let watch = Watch {
        rt: &rt,
        store: &db.store,
        account: account.id,
        agent,
    };

    // The preferred server first.
    wait_for("heartbeats via A", Duration::from_secs(20), || {
        (heartbeating_via(&agent_log, &url_a) > 0).then_some(())
    });
    watch.seen_since(unix_now() + 1, "a heartbeat via A", LIMIT);

    // A dies without a word: the agent goes on via B.
    a_proc.kill();
    let killed = unix_now();
    wait_for("heartbeats via B", Duration::from_secs(10), || {
        (heartbeating_via(&agent_log, &url_b) > 0).then_some(())
    });
    watch.seen_since(killed + 2, "heartbeats via B after A died", LIMIT);
    watch.healthy_for(Duration::from_secs(SILENT_AFTER + 3));
    eprintln!("failed over to B ({:?})", started.elapsed());

    // A is back: still fine, and the agent returns to its preferred server
    // within ten heartbeats.
    let (_a_again, a_pin) = a.start();
    assert_eq!(a_pin, pin);
    wait_for("heartbeats via A again", Duration::from_secs(40), || {
        (heartbeating_via(&agent_log, &url_a) > 1).then_some(())
    });
    let back = unix_now();
    watch.seen_since(back + 1, "a heartbeat via A again", LIMIT);
    watch.healthy_for(Duration::from_secs(3));
    eprintln!("back with A ({:?})", started.elapsed());

    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("another certificate"), "{log}");
}
