//! Server-side request forgery: a tenant names destinations (webhooks,
//! peer servers, compliance ranges, its directory, SSH install hosts) on
//! the server's own loopback, link-local or metadata addresses, by address
//! or by a name that resolves there. The real server with its default
//! network policy refuses each when saved (403 naming the rule) and, for
//! what was saved under a laxer policy, when connecting; a listener on the
//! server's loopback counts that nothing ever reaches it.

use crate::common::can_build_networks;
use crate::common::compliance::{owner_api, restart_server, start_server_with, wait_done};
use crate::common::server::{wait_for, Api};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

/// A listener on the loopback of the namespace the server runs in,
/// counting the connections it accepts.
fn loopback_listener(net: &TestNet) -> (u16, Arc<AtomicUsize>) {
    let listener = net
        .in_scanner(|| TcpListener::bind("127.0.0.1:0"))
        .expect("namespace")
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, count)
}

/// Asserts a refusal: 403 and every needle in the message.
fn refused(api: &Api<'_>, method: &str, path: &str, body: Value, needles: &[&str]) {
    let (status, answer) = api.call(method, path, Some(body.clone()));
    assert_eq!(status, 403, "{method} {path} {body}: {answer}");
    let msg = answer["error"].as_str().unwrap_or_default();
    for needle in needles {
        assert!(msg.contains(needle), "{path}: {needle:?} not in {msg:?}");
    }
}

/// A scope whose directory is `localhost:port` (simple bind, with password).
fn directory_on_loopback(port: u16) -> Value {
    json!({"scope": {"ad": {"url": format!("ldaps://localhost:{port}"),
                            "bind": {"method": "simple", "bind_dn": "svc@example.test"},
                            "base_dns": ["DC=example,DC=test"]},
                     "agent_ports": [47760]},
           "ad_password": "secret"})
}

fn ssh_key(dir: &Path) -> String {
    let path = dir.join("id_ed25519");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .output()
        .expect("ssh-keygen runs (Debian: openssh-client)");
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(path).expect("key")
}

#[test]
fn internal_destinations_are_refused_when_saved() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    let (port, reached) = loopback_listener(&net);
    let _server = start_server_with(&net, dir, &[], &[]);
    let api = owner_api(&net);

    // Webhooks: loopback by address, by name and IPv4-mapped; link-local,
    // the metadata address, a private range (refused for webhooks).
    for (url, rule) in [
        (format!("http://127.0.0.1:{port}/hook"), "loopback"),
        (format!("http://localhost:{port}/hook"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/hook"), "loopback"),
        (format!("http://0.0.0.0:{port}/hook"), "loopback"),
        ("http://169.254.169.254/latest/meta-data/".into(), "169.254"),
        ("http://[fe80::1]/hook".into(), "link-local"),
        ("http://10.1.2.3/hook".into(), "private"),
    ] {
        let body = json!({"name": "x", "channel": "webhook", "address": url});
        refused(
            &api,
            "POST",
            "/contacts",
            body,
            &[rule, "webhook destinations"],
        );
    }
    assert!(api.get("/contacts").as_array().unwrap().is_empty());
    // A webhook elsewhere is fine: the policy is not "refuse everything".
    let ok = json!({"name": "ok", "channel": "webhook", "address": "http://198.51.100.20/hook"});
    assert_eq!(api.call("POST", "/contacts", Some(ok)).0, 201);

    // Peer servers.
    let peer =
        json!({"name": "p", "api_url": format!("http://localhost:{port}"), "api_token": "vgl_x"});
    refused(
        &api,
        "POST",
        "/compliance/peers",
        peer,
        &["loopback", "peer"],
    );

    // Compliance ranges and the directory.
    let scope = |ranges: Value| json!({"scope": {"ip": {"enabled": true, "ranges": ranges}, "agent_ports": [47760]}});
    refused(
        &api,
        "PUT",
        "/compliance/scope",
        scope(json!(["127.0.0.0/30"])),
        &["loopback"],
    );
    refused(
        &api,
        "PUT",
        "/compliance/scope",
        scope(json!(["169.254.169.250-169.254.169.255"])),
        &["169.254"],
    );
    let ad = directory_on_loopback(port);
    refused(&api, "PUT", "/compliance/scope", ad, &["loopback", "ldap"]);
    assert_eq!(api.call("GET", "/compliance/scope", None).0, 404);

    // SSH installs.
    let install = json!({"addresses": ["127.0.0.1"], "ssh": {"private_key": ssh_key(dir)}});
    refused(
        &api,
        "POST",
        "/compliance/install",
        install,
        &["loopback", "ssh"],
    );

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "nothing reached loopback"
    );
}

/// Destinations saved while the operator allowed loopback are refused at
/// connect time once the policy no longer allows them: the check is on the
/// address connected to, not only on what was typed.
#[test]
fn saved_destinations_are_checked_again_when_connecting() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    let (port, reached) = loopback_listener(&net);
    let lax = [
        "--allow-targets",
        "webhook,ldap=loopback",
        "--tick-ms",
        "200",
    ];
    let mut server = start_server_with(&net, dir, &lax, &[]);
    let api = owner_api(&net);
    let hook = json!({"name": "hook", "channel": "webhook",
                      "address": format!("http://localhost:{port}/hook")});
    let (status, contact) = api.call("POST", "/contacts", Some(hook));
    assert_eq!(status, 201, "{contact}");
    let ad = directory_on_loopback(port);
    let (status, body) = api.call("PUT", "/compliance/scope", Some(ad));
    assert_eq!(status, 200, "{body}");
    server.kill();

    let _server = restart_server(&net, dir, &["--tick-ms", "200"]);
    let api = owner_api(&net);
    let id = contact["id"].as_str().unwrap();
    let (status, body) = api.call("POST", &format!("/contacts/{id}/test"), None);
    assert_eq!(status, 202, "{body}");
    let log = dir.join("server-restarted.log");
    wait_for(
        "the refused delivery in the log",
        Duration::from_secs(20),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("refused for webhook destinations")
                .then_some(())
        },
    );

    let (status, body) = api.call("POST", "/compliance/assessments", None);
    assert!((200..300).contains(&status), "{status} {body}");
    let done = wait_done(&api, body["id"].as_str().unwrap());
    assert_eq!(done["state"], "failed", "{done}");
    let error = done["error"].as_str().unwrap_or_default();
    assert!(error.contains("refused for ldap destinations"), "{error}");

    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "nothing reached loopback"
    );
}
