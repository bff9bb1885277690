//! The browser harness of the console tests: Debian's headless chromium,
//! driven by playwright-core scripts in `tests/browser/`, run inside the
//! test network's scanner namespace (where the server listens), so the
//! browser reaches nothing but the server. Screenshots land in
//! `target/console-screenshots/`.
#![allow(dead_code)]

use super::server::API;
use std::path::{Path, PathBuf};
use std::time::Instant;
use vigil_testnet::TestNet;

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-screenshots")
}

/// True when chromium, node and the npm packages are there; CI
/// (`VIGIL_REQUIRE_BROWSER=1`) fails instead of skipping.
pub fn browser_available() -> bool {
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

/// Runs `tests/browser/{script}` with node in the scanner namespace, with
/// `VIGIL_URL`, `VIGIL_SCREENSHOTS`, `CHROMIUM`, `HOME` (= `dir`) and
/// `env` set; panics with its output and the server log when it fails.
pub fn run_script(net: &TestNet, dir: &Path, script: &str, env: &[(&str, String)]) {
    let shots = screenshots_dir();
    let started = Instant::now();
    let out = net
        .scanner_cmd("node")
        .arg(browser_dir().join(script))
        .env("VIGIL_URL", format!("http://{API}"))
        .env("VIGIL_SCREENSHOTS", &shots)
        .env("CHROMIUM", CHROMIUM)
        .env("HOME", dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
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
        "the browser script {script} failed ({}):\n{log}",
        out.status
    );
    eprintln!(
        "{script} passed in {:.1} s; screenshots in {}\n{}",
        started.elapsed().as_secs_f64(),
        shots.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}
