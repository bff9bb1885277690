//! A stolen database: the secrets the server reads back (here the AD bind
//! password and a webhook URL, whose path is the hook's password) are sealed with the key in `<data-dir>/secrets.key`, so the
//! database files never hold them in clear; `vigil admin reseal-secrets`
//! moves them to a new key after a rotation.

use crate::common::can_build_networks;
use crate::common::compliance::{owner_api, restart_server, start_server_with};
use crate::common::{run_ok, vigil_bin};
use serde_json::json;
use std::process::Command;
use vigil_testnet::{NetSpec, TestNet};

const SECRET: &str = "Sup3r-secret-bind-password";

fn database_holds(dir: &std::path::Path, needle: &str) -> bool {
    ["vigil.db", "vigil.db-wal"].iter().any(|f| {
        std::fs::read(dir.join(f))
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

fn reseal(dir: &std::path::Path) -> String {
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", &db, "reseal-secrets", "--data-dir"])
            .arg(dir),
    )
}

#[test]
fn stored_secrets_are_sealed_and_keys_rotate() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    let mut server = start_server_with(&net, dir, &[], &[]);
    let api = owner_api(&net);
    let scope = json!({"scope": {"ad": {"url": "ldaps://198.51.100.9",
                                        "bind": {"method": "simple", "bind_dn": "svc@example.test"},
                                        "base_dns": ["DC=example,DC=test"]},
                                 "agent_ports": [47760]},
                       "ad_password": SECRET});
    let (status, body) = api.call("PUT", "/compliance/scope", Some(scope));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        api.get("/compliance/scope")["has_ad_password"],
        true,
        "stored"
    );
    let hook = "http://198.51.100.20/hook/HOOKSECRET-4711";
    let contact = json!({"name": "ops", "channel": "webhook", "address": hook});
    let (status, body) = api.call("POST", "/contacts", Some(contact));
    assert_eq!(status, 201, "{body}");
    assert_eq!(api.get("/contacts")[0]["address"], hook, "read back whole");
    assert!(
        !database_holds(dir, SECRET),
        "the password is in the database in clear"
    );
    assert!(
        !database_holds(dir, "HOOKSECRET"),
        "the hook URL is in the database in clear"
    );
    // The check can fail: the bind DN, not a secret, is there in clear.
    assert!(database_holds(dir, "svc@example.test"));

    assert!(
        reseal(dir).starts_with("0 secrets sealed"),
        "already current"
    );
    // Rotation: a new key first, the old one after it.
    let key_file = dir.join("secrets.key");
    let old = std::fs::read_to_string(&key_file).unwrap();
    let new_key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 7 + 3) as u8))
        .collect();
    std::fs::write(&key_file, format!("{new_key}\n{old}")).unwrap();
    // As the README says: restart with both keys, then reseal.
    server.kill();
    let _server = restart_server(&net, dir, &[]);
    assert!(reseal(dir).starts_with("2 secrets sealed"));
    assert!(!database_holds(dir, SECRET));
    let api = owner_api(&net);
    assert_eq!(
        api.get("/contacts")[0]["address"],
        hook,
        "the server opens it"
    );

    // Without the key file, resealing is refused with a reason.
    let bare = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    let out = Command::new(vigil_bin())
        .args(["admin", "--db", &db, "reseal-secrets", "--data-dir"])
        .arg(bare.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secrets key"));
}
