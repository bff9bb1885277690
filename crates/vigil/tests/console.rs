//! The web console in a real browser: a real `vigil server` and one real
//! enrolled agent (a port open on its host) in a test network; Debian's
//! headless chromium, driven
//! by playwright-core (`tests/browser/console.mjs`), runs inside the
//! scanner namespace and talks only to the server there. Screenshots of
//! each page land in `target/console-screenshots/`.

mod common;

use common::can_build_networks;
use common::compliance::{enrolled_agent, owner_api, start_server, EMAIL, PASSWORD};
use common::server::API;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_testnet::{NetSpec, TestNet};

const AGENT_HOST: &str = "198.51.100.10";
const AGENT_NAME: &str = "alpha-office";
/// Open on the agent's host and not authorized by the policy the browser saves.
const OPEN_PORT: u16 = 8081;
const VIEWER: &str = "viewer@acme.test";
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

/// True when chromium, node and the npm packages are there; CI
/// (`VIGIL_REQUIRE_BROWSER=1`) fails instead of skipping.
fn browser_available() -> bool {
    let missing: Vec<&str> = [
        (!Path::new(CHROMIUM).exists()).then_some("chromium (apt install chromium)"),
        (!browser_dir().join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci --prefix crates/vigil/tests/browser)"),
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("node (apt install nodejs)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("VIGIL_REQUIRE_BROWSER").is_none(),
        "VIGIL_REQUIRE_BROWSER is set but these are missing: {missing:?}"
    );
    eprintln!("SKIPPED: the browser test needs {missing:?}");
    false
}

#[test]
fn console_in_a_real_browser() {
    if !can_build_networks() || !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(AGENT_HOST.parse().unwrap()).unwrap();
    let _open = net
        .listen(format!("{AGENT_HOST}:{OPEN_PORT}").parse().unwrap(), None)
        .unwrap();
    let _server = start_server(&net, dir);
    let api = owner_api(&net);
    api.ok(
        "POST",
        "/users",
        Some(json!({"email": VIEWER, "password": PASSWORD, "role": "viewer"})),
    );
    let (_agent, agent_id) = enrolled_agent(&net, dir, &api, AGENT_HOST, AGENT_NAME);

    let shots = screenshots_dir();
    let started = Instant::now();
    let out = net
        .scanner_cmd("node")
        .arg(browser_dir().join("console.mjs"))
        .env("VIGIL_URL", format!("http://{API}"))
        .env("VIGIL_EMAIL", EMAIL)
        .env("VIGIL_PASSWORD", PASSWORD)
        .env("VIGIL_VIEWER_EMAIL", VIEWER)
        .env("VIGIL_VIEWER_PASSWORD", PASSWORD)
        .env("VIGIL_AGENT_ID", &agent_id)
        .env("VIGIL_AGENT_NAME", AGENT_NAME)
        .env("VIGIL_OPEN_PORT", OPEN_PORT.to_string())
        .env("VIGIL_SCREENSHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .env("HOME", dir)
        .output()
        .expect("run node");
    let log = format!(
        "stdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
    assert!(
        out.status.success(),
        "the browser script failed ({}):\n{log}",
        out.status
    );
    eprintln!(
        "browser script passed in {:.1} s; screenshots in {}\n{}",
        started.elapsed().as_secs_f64(),
        shots.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}
