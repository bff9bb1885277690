//! Installing the Windows agent: `GET /agent/v1/install.ps1` carries the
//! certificate pin and the SHA-256 of the `vigil.exe` that
//! `GET /agent/v1/download/vigil.exe` serves, and
//! `POST /compliance/install-command` with `platform: windows` gives the
//! PowerShell line. Without `--agent-binary-windows` all of them say so.

use crate::common::Server;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use vigil_core::AccountKind;

api_tests!(without_a_windows_binary_every_windows_install_says_so);

/// Stands in for vigil.exe (UTF-8, so the test client reads it as text).
const EXE: &[u8] = b"MZ this is not really vigil.exe\r\n";

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A server (SQLite) handing out [`EXE`] as the Windows agent.
async fn windows_server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join("vigil.exe");
    std::fs::write(&exe, EXE).expect("write exe");
    let db = vigil_testdb::sqlite().await;
    let server = Server::start_with(db, |cfg| cfg.agent_binary_windows = Some(exe)).await;
    (server, dir)
}

/// The value of `$name = '…'` in the script.
fn assigned<'a>(script: &'a str, name: &str) -> &'a str {
    let prefix = format!("${name} = '");
    script
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no ${name} in\n{script}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_script_pins_the_certificate_and_checks_the_served_binary() {
    let (s, _dir) = windows_server().await;
    let exe = s.agent_get("/agent/v1/download/vigil.exe").await;
    assert_eq!(exe.status, 200, "{exe:?}");
    assert_eq!(exe.content_type, "application/octet-stream");
    assert_eq!(exe.text.as_bytes(), EXE, "the configured file is served");

    let reply = s.agent_get("/agent/v1/install.ps1").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.content_type.starts_with("text/plain"), "{reply:?}");
    let script = &reply.text;
    assert_eq!(assigned(script, "pin"), s.pin());
    // The hash the script checks is the SHA-256 of what is served.
    let served = upper_hex(&Sha256::digest(exe.text.as_bytes()));
    assert_eq!(assigned(script, "binarySha256"), served);
    // The certificate check compares with the pin's hex.
    let pin_hex = s.pin()["sha256:".len()..].to_ascii_uppercase();
    assert!(script.contains(&format!("-eq '{pin_hex}' }}")), "{script}");
    assert!(assigned(script, "download").ends_with("/agent/v1/download/vigil.exe"));
    assert!(script.contains("param([Parameter(Mandatory)][string]$Token)"));
    assert!(script.contains("$installDir = (Join-Path $env:ProgramFiles 'Vigil')"));

    let custom = s
        .agent_get(
            "/agent/v1/install.ps1?install_dir=D%3A%5CApps%5CVigil&state_dir=D%3A%5Cstate%5C",
        )
        .await;
    assert_eq!(custom.status, 200, "{custom:?}");
    assert_eq!(assigned(&custom.text, "installDir"), "D:\\Apps\\Vigil");
    assert_eq!(assigned(&custom.text, "stateDir"), "D:\\state");

    for (query, needle) in [
        ("install_dir=%2Fopt%2Fvigil", "install_dir"),
        ("state_dir=C%3A%5Ca%5C..%5CWindows", "`..`"),
        ("install_dir=C%3A%5Cit%27s", "install_dir"),
        ("unit_dir=%2Fetc", "unit_dir"),
    ] {
        let reply = s.agent_get(&format!("/agent/v1/install.ps1?{query}")).await;
        reply.assert_client_error(&[needle]);
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn install_command_for_windows_is_a_pinned_powershell_line() {
    let (s, _dir) = windows_server().await;
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let reply = s
        .send(
            Method::POST,
            "/compliance/install-command",
            Some(&t.owner),
            Some(&json!({"platform": "windows"})),
        )
        .await;
    let view = reply.ok(201);
    let token = view["token"].as_str().expect("token");
    assert!(token.starts_with("vge_"), "{view}");
    let command = view["command"].as_str().expect("command");
    let script_url = view["script_url"].as_str().expect("script_url");
    assert!(script_url.ends_with("/agent/v1/install.ps1"), "{view}");
    assert_eq!(view["platform"], "windows");
    assert_eq!(view["cert_pin"], s.pin());
    let sha = hex_lower(&Sha256::digest(EXE));
    assert_eq!(view["binary_sha256"], sha.as_str());
    assert!(command.starts_with(
        "[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12; "
    ));
    assert!(
        command.contains(&format!("DownloadString('{script_url}')")),
        "{command}"
    );
    assert!(command.contains(&format!("-Token '{token}'")), "{command}");
    let pin_hex = s.pin()["sha256:".len()..].to_ascii_uppercase();
    assert!(command.contains(&format!("-eq '{pin_hex}'")), "{command}");
    assert!(!command.contains('\n'));

    // The script the line fetches is the one served.
    let path = script_url.split_once("/agent/v1/").expect("agent path").1;
    let script = s.agent_get(&format!("/agent/v1/{path}")).await;
    assert_eq!(script.status, 200);

    let custom = s
        .send(
            Method::POST,
            "/compliance/install-command",
            Some(&t.owner),
            Some(&json!({"platform": "windows", "install_dir": "E:\\Vigil"})),
        )
        .await
        .ok(201);
    assert!(
        custom["script_url"]
            .as_str()
            .expect("url")
            .ends_with("/agent/v1/install.ps1?install_dir=E%3A%5CVigil"),
        "{custom}"
    );

    // The Linux line is unchanged (and the default).
    let linux = s
        .send(
            Method::POST,
            "/compliance/install-command",
            Some(&t.owner),
            Some(&json!({})),
        )
        .await
        .ok(201);
    assert_eq!(linux["platform"], "linux");
    assert!(linux["command"]
        .as_str()
        .expect("command")
        .starts_with("curl "));
    assert!(linux.get("binary_sha256").is_none(), "{linux}");

    for (body, needles) in [
        (
            json!({"platform": "windows", "install_dir": "/opt/vigil"}),
            vec!["install_dir", "drive letter"],
        ),
        (
            json!({"platform": "windows", "unit_dir": "/etc/systemd/system"}),
            vec!["unit_dir", "VigilAgent"],
        ),
        (
            json!({"platform": "windows", "start": "detached"}),
            vec!["start", "service"],
        ),
        (json!({"platform": "beos"}), vec!["platform"]),
    ] {
        let reply = s
            .send(
                Method::POST,
                "/compliance/install-command",
                Some(&t.owner),
                Some(&body),
            )
            .await;
        reply.assert_client_error(&needles);
    }
    s.shutdown().await;
}

fn hex_lower(bytes: &[u8]) -> String {
    upper_hex(bytes).to_ascii_lowercase()
}

async fn without_a_windows_binary_every_windows_install_says_so(s: Server) {
    for path in ["/agent/v1/install.ps1", "/agent/v1/download/vigil.exe"] {
        let reply = s.agent_get(path).await;
        reply.assert_error(404, &["--agent-binary-windows"]);
    }
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let reply = s
        .send(
            Method::POST,
            "/compliance/install-command",
            Some(&t.owner),
            Some(&json!({"platform": "windows"})),
        )
        .await;
    reply.assert_error(422, &["--agent-binary-windows"]);
    s.shutdown().await;
}
