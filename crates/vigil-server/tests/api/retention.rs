//! The retention job in a running server: `kill -USR1` runs every rule at
//! once (the server's tick is an hour here, so nothing else would), the
//! metrics count the rows per table and the passes, and an agent that
//! re-sends a result whose task retention deleted is still told
//! "duplicate".

use crate::common::Server;
use serde_json::json;
use std::time::{Duration, Instant};
use vigil_core::{AccountKind, Condition};
use vigil_testdb::TestDb;

/// One test for both backends, one after the other: the signal goes to
/// the whole test process, so two of these side by side would each see
/// the other's passes.
#[tokio::test(flavor = "multi_thread")]
async fn sigusr1_runs_every_rule_and_a_pruned_tasks_result_stays_a_duplicate() {
    sigusr1_runs_every_rule(vigil_testdb::sqlite().await).await;
    if let Some(db) = vigil_testdb::postgres().await {
        sigusr1_runs_every_rule(db).await;
    }
}

/// The value of the metric line starting with `series` (0 when absent).
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn sigusr1_runs_every_rule(db: TestDb) {
    let s = Server::start_with(db, |cfg| {
        // No pass would start by itself during the test.
        cfg.tick = Duration::from_secs(3600);
        cfg.retention = Some(Duration::from_secs(24 * 3600));
    })
    .await;
    let a = s.tenant("Acme", AccountKind::Organization).await;
    let (id, credential) = s.enroll_agent(&a.owner, "edge", "extended").await;
    let agent: vigil_store::AgentId = id.parse().expect("agent id");
    let now = vigil_store::now_unix();
    // Handed out 8 days ago (a week is kept) and still open: its result
    // is taken, which completes it.
    let task = s
        .store()
        .create_task(
            a.id,
            agent,
            "agent_host",
            "self",
            "22",
            now - 8 * 86_400,
            now + 600,
            None,
        )
        .await
        .expect("task");
    let upload = json!({"upload_id": "u-1", "task_id": task.id.to_string(), "target": "self",
                        "addr": "127.0.0.1", "started_at": now, "finished_at": now,
                        "ports": [{"port": 22, "state": "open"}]});
    let first = s.upload(&id, &credential, &upload).await.ok(200);
    assert_eq!(first["status"], "stored", "{first}");
    // An alert over two days ago (a day is kept), and one still open.
    let old = s
        .store()
        .open_alert(
            a.id,
            agent,
            "agent_host",
            Condition::unauthorized_open(23),
            false,
            now - 3 * 86_400,
        )
        .await
        .expect("alert");
    s.store()
        .resolve_alert(a.id, old.id, now - 2 * 86_400)
        .await
        .expect("resolved");
    let open = s
        .store()
        .open_alert(
            a.id,
            agent,
            "agent_host",
            Condition::unauthorized_open(24),
            false,
            now - 3 * 86_400,
        )
        .await
        .expect("alert");

    let metrics = || async {
        s.console_get("/metrics", &[])
            .await
            .text()
            .await
            .expect("metrics")
    };
    assert_eq!(metric(&metrics().await, "vigil_retention_runs_total"), 0);
    let status = std::process::Command::new("kill")
        .args(["-USR1", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = metrics().await;
        if metric(&text, "vigil_retention_runs_total") >= 1 {
            break text;
        }
        assert!(Instant::now() < until, "no retention pass: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (table, rows) in [("scan_tasks", 1), ("alerts", 1), ("scan_results", 0)] {
        let series = format!("vigil_retention_pruned_rows_total{{table=\"{table}\"}}");
        assert_eq!(metric(&text, &series), rows, "{table}: {text}");
    }
    assert!(matches!(
        s.store().task(a.id, agent, task.id).await,
        Err(vigil_store::StoreError::NotFound)
    ));
    s.store()
        .alert(a.id, open.id)
        .await
        .expect("an open alert stays");
    // The agent did not hear the answer and sends its result again.
    let again = s.upload(&id, &credential, &upload).await.ok(200);
    assert_eq!(again["status"], "duplicate", "{again}");
    // A new result for a task that is not there is still refused.
    let mut other = upload.clone();
    other["upload_id"] = json!("u-2");
    s.upload(&id, &credential, &other)
        .await
        .assert_error(422, &["unknown task"]);
    let results = s.get_ok(&format!("/agents/{id}/results"), &a.owner).await;
    assert_eq!(results.as_array().map(Vec::len), Some(1), "{results}");
    s.shutdown().await;
}
