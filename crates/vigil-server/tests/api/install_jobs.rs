//! Push-install jobs outlive their server: a finished job reads the same
//! after a restart, a job cut short by the shutdown says it was
//! interrupted (each unfinished host failed, with why), and a job whose
//! server died (its lease ran out) is ended so when a server starts. The
//! SSH peers are on loopback: a port nobody listens on, and a listener that
//! accepts and never answers (an install that hangs in its SSH handshake).

use crate::common::{Server, Tenant};
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_core::AccountKind;
use vigil_store::{InstallJobLimits, InstallJobState};

api_tests!(
    a_job_survives_a_restart_and_one_cut_short_is_interrupted,
    a_job_whose_server_died_is_interrupted_when_a_server_starts,
);

/// A fresh, unencrypted ed25519 key (the API refuses anything else).
fn private_key(dir: &std::path::Path) -> String {
    let path = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs (Debian: openssh-client)");
    assert!(status.success());
    std::fs::read_to_string(path).expect("the key")
}

/// Starts a push install of 127.0.0.1 on `port`; the job's id.
async fn push(s: &Server, t: &Tenant, key: &str, port: u16) -> String {
    let body = json!({
        "addresses": ["127.0.0.1"],
        "ssh": {"user": "vigil-test", "port": port, "private_key": key},
    });
    let job = s
        .send(
            Method::POST,
            "/compliance/install",
            Some(&t.owner),
            Some(&body),
        )
        .await
        .ok(202);
    assert_eq!(job["state"], "running", "{job}");
    job["id"].as_str().expect("job id").to_string()
}

/// Polls the job until `done` says it is as wanted; fails after 30 s.
async fn wait_job(s: &Server, t: &Tenant, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let job = s
            .get_ok(&format!("/compliance/install/{id}"), &t.owner)
            .await;
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < until, "the job never got there: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_job_survives_a_restart_and_one_cut_short_is_interrupted(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let key = private_key(dir.path());
    // Nobody listens here: the install fails at once.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let failed_id = push(&s, &t, &key, refused).await;
    let failed = wait_job(&s, &t, &failed_id, |j| j["state"] == "done").await;
    assert_eq!(failed["hosts"][0]["state"], "failed", "{failed}");
    // Accepts and never says a word: the install hangs in the handshake.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let silent_port = silent.local_addr().expect("its address").port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            open.push(conn);
        }
    });
    let cut_id = push(&s, &t, &key, silent_port).await;
    wait_job(&s, &t, &cut_id, |j| j["hosts"][0]["state"] == "running").await;

    let s = s.restart_with(|_| {}).await;
    // Its token is in the database: it still works.
    let token = t.owner.clone();
    let cut = s
        .get_ok(&format!("/compliance/install/{cut_id}"), &token)
        .await;
    assert_eq!(cut["state"], "interrupted", "{cut}");
    assert!(cut["finished_at"].is_i64(), "{cut}");
    let host = &cut["hosts"][0];
    assert_eq!(host["state"], "failed", "{cut}");
    let why = host["error"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("interrupted: the server stopped")
            && why.contains("start the install again"),
        "{cut}"
    );
    // The finished job reads exactly as before.
    let again = s
        .get_ok(&format!("/compliance/install/{failed_id}"), &token)
        .await;
    assert_eq!(again, failed);
    // The console's page of the job shows it too.
    let page = s
        .console_get(
            &format!("/compliance/install/{cut_id}"),
            &[("cookie", &format!("vigil_session={token}"))],
        )
        .await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    assert!(html.contains("interrupted"), "{html}");
    // Another account sees neither.
    let other = s.tenant("Other", AccountKind::Organization).await;
    for id in [&cut_id, &failed_id] {
        let reply = s
            .get(&format!("/compliance/install/{id}"), &other.owner)
            .await;
        assert_eq!(reply.status, 404, "{reply:?}");
    }
    held.abort();
    s.shutdown().await;
}

async fn a_job_whose_server_died_is_interrupted_when_a_server_starts(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    // As a server killed mid-install leaves it: running, its lease over.
    let now = vigil_store::now_unix();
    let limits = InstallJobLimits {
        running_per_account: 4,
        kept_per_account: 20,
    };
    let addresses = vec!["198.51.100.7".to_string(), "198.51.100.8".to_string()];
    let job = s
        .store()
        .start_install_job(t.id, &addresses, now - 120, now - 60, limits)
        .await
        .expect("stored")
        .expect("room");
    let s = s.restart_with(|_| {}).await;
    // Its token is in the database: it still works.
    let token = t.owner.clone();
    let id = job.id.to_string();
    let until = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let j = s.get_ok(&format!("/compliance/install/{id}"), &token).await;
        if j["state"] != "running" {
            break j;
        }
        assert!(Instant::now() < until, "never interrupted: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ended["state"], "interrupted", "{ended}");
    for host in ended["hosts"].as_array().expect("hosts") {
        assert_eq!(host["state"], "failed", "{ended}");
        let why = host["error"].as_str().unwrap_or_default();
        assert!(why.contains("stopped or lost its database"), "{ended}");
    }
    let stored = s.store().install_job(t.id, job.id).await.expect("kept");
    assert_eq!(stored.state, InstallJobState::Interrupted);
    s.shutdown().await;
}
