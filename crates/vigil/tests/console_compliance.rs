//! The console's compliance pages in a real browser: a real `vigil server`
//! in the scanner namespace, and in the target namespace an agent enrolled
//! with it, an agent of another server, a host with only port 135, a host
//! with nothing listening and silent addresses (198.51.100.0/26). The
//! browser (`tests/browser/compliance.mjs`) saves the IP scope, watches the
//! assessment, drills down, searches, exports CSV, moves and installs
//! agents (both fail here: no peer, no SSH) and checks what a viewer may
//! do. Screenshots land in `target/console-screenshots/`.

mod common;

use common::browser::{browser_available, run_script};
use common::can_build_networks;
use common::compliance::{
    add_viewer, agent_of, enrolled_agent, owner_api, start_server, EMAIL, PASSWORD,
};
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

const OURS: &str = "198.51.100.10";
const ONLY_135: &str = "198.51.100.20";
const THEIRS: &str = "198.51.100.30";
const BARE: &str = "198.51.100.50";
const SCOPE: &str = "198.51.100.0/26";
const VIEWER: &str = "viewer@acme.test";
const OTHER_SERVER: &str = "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";

#[test]
fn compliance_pages_in_a_real_browser() {
    if !can_build_networks() || !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    for host in [OURS, ONLY_135, THEIRS, BARE] {
        net.add_host(host.parse().unwrap()).unwrap();
    }
    let _rpc = net
        .listen(format!("{ONLY_135}:135").parse().unwrap(), None)
        .unwrap();
    let _server = start_server(&net, dir);
    let api = owner_api(&net);
    add_viewer(&api, VIEWER);
    let (_ours, agent_id) = enrolled_agent(&net, dir, &api, OURS, "ours");
    let _theirs = agent_of(&net, dir, THEIRS, OTHER_SERVER, "theirs");
    // Wait for both identify listeners.
    std::thread::sleep(Duration::from_secs(1));

    let key = dir.join("client_key");
    common::run_ok(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "vigil-test", "-f"])
            .arg(&key),
    );

    run_script(
        &net,
        dir,
        "compliance.mjs",
        &[
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_VIEWER_EMAIL", VIEWER.to_string()),
            ("VIGIL_VIEWER_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_SCOPE", SCOPE.to_string()),
            ("VIGIL_OURS", OURS.to_string()),
            ("VIGIL_OURS_ID", agent_id),
            ("VIGIL_ONLY_135", ONLY_135.to_string()),
            ("VIGIL_BARE", BARE.to_string()),
            ("VIGIL_THEIRS", THEIRS.to_string()),
            ("VIGIL_SSH_KEY", key.display().to_string()),
        ],
    );
}
