//! The web console in a real browser: a real `vigil server` and one real
//! enrolled agent (a port open on its host) in a test network; Debian's
//! headless chromium, driven
//! by playwright-core (`tests/browser/console.mjs`), runs inside the
//! scanner namespace and talks only to the server there. Screenshots of
//! each page land in `target/console-screenshots/`.

mod common;

use common::browser::{browser_available, run_script};
use common::can_build_networks;
use common::compliance::{add_viewer, enrolled_agent, owner_api, start_server, EMAIL, PASSWORD};
use vigil_testnet::{NetSpec, TestNet};

const AGENT_HOST: &str = "198.51.100.10";
const AGENT_NAME: &str = "alpha-office";
/// Open on the agent's host and not authorized by the policy the browser saves.
const OPEN_PORT: u16 = 8081;
const VIEWER: &str = "viewer@acme.test";

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
    add_viewer(&api, VIEWER);
    let (_agent, agent_id) = enrolled_agent(&net, dir, &api, AGENT_HOST, AGENT_NAME);

    run_script(
        &net,
        dir,
        "console.mjs",
        &[
            ("VIGIL_EMAIL", EMAIL.to_string()),
            ("VIGIL_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_VIEWER_EMAIL", VIEWER.to_string()),
            ("VIGIL_VIEWER_PASSWORD", PASSWORD.to_string()),
            ("VIGIL_AGENT_ID", agent_id),
            ("VIGIL_AGENT_NAME", AGENT_NAME.to_string()),
            ("VIGIL_OPEN_PORT", OPEN_PORT.to_string()),
        ],
    );
}
