//! "Install agent" end to end: a real `vigil server` in the scanner
//! namespace push-installs an agent over SSH onto a test host in the target
//! namespace (a real OpenSSH `sshd` with a throwaway host key and
//! authorized key), and the manual one-line command installs one with
//! curl over the pinned TLS connection. Both agents land in temp
//! directories (the namespaces share this machine's filesystem: nothing is
//! written to /etc or /opt), enroll, run detached (no systemd here), and
//! are killed when the test ends.

mod common;

use common::server::{spawn, wait_for, Api, Proc};
use common::{can_build_networks, vigil_bin};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

const PASSWORD: &str = "correct horse battery staple";
/// The host with sshd.
const SSH_HOST: &str = "198.51.100.40";
/// The host of the manual install.
const MANUAL_HOST: &str = "198.51.100.41";

/// Kills the detached agent whose pid an install recorded, when dropped.
struct AgentPid(PathBuf);

impl Drop for AgentPid {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn tool_missing(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: {tool} is not installed (Debian: openssh-server openssh-client curl)");
    }
    !found
}

/// A copy of `vigil` without debug info, for `--agent-binary`: a tenth of
/// the size of the debug build, so the download is quick. The copy as is
/// when `strip` is missing.
fn small_agent_binary(dir: &Path) -> PathBuf {
    let path = dir.join("vigil-agent-binary");
    std::fs::copy(vigil_bin(), &path).unwrap();
    let _ = Command::new("strip")
        .arg("--strip-debug")
        .arg(&path)
        .status();
    path
}

fn start_server(net: &TestNet, dir: &Path, agent_binary: Option<&Path>) -> Proc {
    let db = format!("sqlite://{}", dir.join("vigil.db").display());
    common::run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", &db, "create-account", "--name", "Acme"])
            .args(["--kind", "organization", "--email", "owner@acme.test"])
            .env("VIGIL_PASSWORD", PASSWORD),
    );
    let mut cmd = net.scanner_cmd(vigil_bin());
    cmd.args(["server", "--data-dir"])
        .arg(dir.join("server"))
        .args(["--db", &db, "--listen", common::server::API])
        .args(["--agent-listen", &format!("{SCANNER_V4}:8443")])
        .args(["--heartbeat-secs", "1"])
        .args(agent_binary.map(|p| format!("--agent-binary={}", p.display())))
        .env("VIGIL_LOG", "info");
    let p = spawn(cmd, "server", &dir.join("server.log"));
    let api = Api { net, token: None };
    wait_for("the server", Duration::from_secs(20), || {
        (api.call("GET", "/openapi.json", None).0 == 200).then_some(())
    });
    p
}

fn login<'a>(net: &'a TestNet, email: &str) -> Api<'a> {
    let mut api = Api { net, token: None };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": email, "password": PASSWORD})),
    );
    api.token = Some(login["token"].as_str().unwrap().to_string());
    api
}

/// Assesses `host`'s /32 and returns its status.
fn assess(api: &Api, host: &str) -> String {
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(
            json!({"scope": {"ip": {"enabled": true, "ranges": [format!("{host}/32")]},
                              "agent_ports": [47760], "unreachable_port": 22},
                    "reassess": true}),
        ),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["assessment_id"].as_str().unwrap().to_string();
    let done = wait_for("the assessment", Duration::from_secs(60), || {
        let a = api.get(&format!("/compliance/assessments?assessment={id}"));
        (a["state"] != "running").then_some(a)
    });
    assert_eq!(done["state"], "done", "{done}");
    let page = api.get(&format!("/compliance/endpoints?assessment={id}"));
    page["endpoints"][0]["status"].as_str().unwrap().to_string()
}

fn keygen(path: &Path) -> String {
    common::run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "vigil-test", "-f"])
            .arg(path),
    );
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

/// A real sshd on `SSH_HOST:22` in the target namespace, accepting root
/// with `authorized` only. Returns it and the known_hosts line of its key.
fn start_sshd(net: &TestNet, dir: &Path, authorized: &str) -> (Proc, String) {
    let ssh = dir.join("sshd");
    std::fs::create_dir_all(&ssh).unwrap();
    let host_pub = keygen(&ssh.join("host_key"));
    std::fs::write(ssh.join("authorized_keys"), authorized).unwrap();
    let config = format!(
        "ListenAddress {SSH_HOST}:22\n\
         HostKey {host}\n\
         AuthorizedKeysFile {auth}\n\
         PidFile {pid}\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         LogLevel VERBOSE\n",
        host = ssh.join("host_key").display(),
        auth = ssh.join("authorized_keys").display(),
        pid = ssh.join("sshd.pid").display(),
    );
    std::fs::write(ssh.join("sshd_config"), config).unwrap();
    // sshd's privilege separation directory (Debian's package creates it at
    // boot through systemd-tmpfiles, which does not run in CI containers).
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut cmd = net.target_cmd("/usr/sbin/sshd");
    cmd.args(["-D", "-e", "-f"]).arg(ssh.join("sshd_config"));
    let p = spawn(cmd, "sshd", &dir.join("sshd.log"));
    let addr: std::net::SocketAddr = format!("{SSH_HOST}:22").parse().unwrap();
    wait_for("sshd", Duration::from_secs(10), || {
        net.in_scanner(move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
        })
        .unwrap()
        .then_some(())
    });
    let mut words = host_pub.split_whitespace();
    let known = format!(
        "{SSH_HOST} {} {}\n",
        words.next().unwrap(),
        words.next().unwrap()
    );
    (p, known)
}

fn wait_job(api: &Api, id: &str) -> Value {
    wait_for("the install job", Duration::from_secs(120), || {
        let job = api.get(&format!("/compliance/install/{id}"));
        (job["state"] == "done").then_some(job)
    })
}

/// Whether systemd runs on this machine: then `start: auto` would use the
/// machine's systemd, so the test asks for `detached` explicitly.
fn start_mode() -> &'static str {
    if Path::new("/run/systemd/system").exists() {
        "detached"
    } else {
        "auto"
    }
}

#[test]
fn push_install_over_ssh_makes_a_no_agent_host_managed_here() {
    if !can_build_networks() || tool_missing("sshd") || tool_missing("ssh") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(SSH_HOST.parse().unwrap()).unwrap();
    // The default agent binary: the server's own executable.
    let _server = start_server(&net, dir, None);
    let api = login(&net, "owner@acme.test");
    let client_pub = keygen(&dir.join("client_key"));
    let key = std::fs::read_to_string(dir.join("client_key")).unwrap();
    let wrong_key = {
        keygen(&dir.join("wrong_key"));
        std::fs::read_to_string(dir.join("wrong_key")).unwrap()
    };
    let (_sshd, known_hosts) = start_sshd(&net, dir, &client_pub);

    assert_eq!(assess(&api, SSH_HOST), "no_agent");

    let target = dir.join("host");
    let install_dir = target.join("opt vigil");
    let request = |private_key: &str| {
        json!({
            "addresses": [SSH_HOST],
            "ssh": {"user": "root", "private_key": private_key, "known_hosts": known_hosts},
            "install_dir": install_dir.display().to_string(),
            "state_dir": target.join("state").display().to_string(),
            "unit_dir": target.join("units").display().to_string(),
            "start": start_mode(),
        })
    };

    // Bad input is refused before anything starts.
    let (status, body) = api.call(
        "POST",
        "/compliance/install",
        Some(json!({"addresses": ["web01"], "ssh": {"private_key": key}})),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("not an IP address"));
    let (status, body) = api.call(
        "POST",
        "/compliance/install",
        Some(json!({"addresses": [SSH_HOST], "ssh": {"user": "root"}})),
    );
    assert!(status == 422 || status == 400, "{status} {body}");
    assert!(
        body["error"].as_str().unwrap().contains("private_key"),
        "{body}"
    );
    let mut relative = request(&key);
    relative["install_dir"] = json!("opt/vigil");
    let (status, body) = api.call("POST", "/compliance/install", Some(relative));
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("install_dir"));
    // Viewers may not install.
    api.ok(
        "POST",
        "/users",
        Some(json!({"email": "viewer@acme.test", "password": PASSWORD, "role": "viewer"})),
    );
    let viewer = login(&net, "viewer@acme.test");
    let (status, _) = viewer.call("POST", "/compliance/install", Some(request(&key)));
    assert_eq!(status, 403);
    let (status, _) = viewer.call("POST", "/compliance/install-command", Some(json!({})));
    assert_eq!(status, 403);

    // A key the host does not accept: a clear failure.
    let job = api.ok("POST", "/compliance/install", Some(request(&wrong_key)));
    assert_eq!(job["hosts"][0]["state"], "pending", "{job}");
    let job = wait_job(&api, job["id"].as_str().unwrap());
    let host = &job["hosts"][0];
    assert_eq!(host["state"], "failed", "{job}");
    let error = host["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("SSH to root@{SSH_HOST}:22 failed"))
            && error.contains("Permission denied"),
        "{error}"
    );
    assert!(!job.to_string().contains("PRIVATE KEY"), "{job}");
    assert!(!install_dir.exists());

    // The right key: installed, enrolled, running.
    let job = api.ok("POST", "/compliance/install", Some(request(&key)));
    let job = wait_job(&api, job["id"].as_str().unwrap());
    let _agent = AgentPid(install_dir.join("vigil-agent.pid"));
    let host = &job["hosts"][0];
    assert_eq!(host["state"], "installed", "{job}");
    let message = host["message"].as_str().unwrap();
    assert!(message.contains("started the agent detached"), "{message}");
    if start_mode() == "auto" {
        assert!(message.contains("systemd was not found"), "{message}");
    }
    let agent_id = host["agent_id"].as_str().unwrap().to_string();
    assert!(install_dir.join("vigil").is_file());
    let unit = std::fs::read_to_string(target.join("units/vigil-agent.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart=\"{}/vigil\" agent --state-dir \"{}\" run",
            install_dir.display(),
            target.join("state").display()
        )),
        "{unit}"
    );

    // The server lists it, and it calls in.
    let agent = wait_for("the agent's heartbeat", Duration::from_secs(20), || {
        let agent = api.get(&format!("/agents/{agent_id}"));
        agent["last_seen_at"].is_i64().then_some(agent)
    });
    assert_eq!(agent["name"], SSH_HOST, "{agent}");
    assert_eq!(agent["public_addr"], SSH_HOST, "{agent}");

    // And the host is now managed here.
    assert_eq!(assess(&api, SSH_HOST), "managed_here");
}

#[test]
fn manual_install_command_works_with_the_pinned_key() {
    if !can_build_networks() || tool_missing("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(MANUAL_HOST.parse().unwrap()).unwrap();
    let binary = small_agent_binary(dir);
    let _server = start_server(&net, dir, Some(&binary));
    let api = login(&net, "owner@acme.test");
    let target = dir.join("host");
    let install_dir = target.join("opt");

    let cmd = api.ok(
        "POST",
        "/compliance/install-command",
        Some(json!({
            "name": "laptop",
            "install_dir": install_dir.display().to_string(),
            "state_dir": target.join("state").display().to_string(),
            "unit_dir": target.join("units").display().to_string(),
            "start": "detached",
        })),
    );
    let command = cmd["command"].as_str().unwrap();
    let pinned = cmd["pinned_pubkey"].as_str().unwrap();
    assert!(pinned.starts_with("sha256//"), "{cmd}");
    assert!(
        command.starts_with(&format!(
            "curl -fsS --insecure --pinnedpubkey '{pinned}' 'https://{SCANNER_V4}:8443/agent/v1/install.sh?"
        )) && command.ends_with(&format!("| sh -s -- '{}'", cmd["token"].as_str().unwrap())),
        "{command}"
    );

    // curl refuses a server whose key is not the pinned one.
    let wrong = format!("sha256//{}=", "A".repeat(43));
    let out = net
        .target_cmd("curl")
        .args(["-fsS", "--insecure", "--pinnedpubkey", &wrong])
        .arg(cmd["script_url"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pinned"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The command as given, on the host (curl runs there).
    let out = net
        .target_cmd("sh")
        .arg("-c")
        .arg(command)
        .output()
        .unwrap();
    let _agent = AgentPid(install_dir.join("vigil-agent.pid"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("started the agent detached"), "{stdout}");
    assert!(target.join("units/vigil-agent.service").is_file());
    assert!(
        std::fs::read(install_dir.join("vigil")).unwrap() == std::fs::read(&binary).unwrap(),
        "the installed binary is the configured --agent-binary"
    );

    let agents = wait_for("the agent's heartbeat", Duration::from_secs(20), || {
        let agents = api.get("/agents");
        let seen = agents.as_array().unwrap().iter().any(|a| {
            a["name"] == "laptop" && a["public_addr"] == MANUAL_HOST && a["last_seen_at"].is_i64()
        });
        seen.then_some(agents)
    });
    assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");

    // The token was single-use: running the command again fails, and the
    // agent installed first keeps running.
    let out = net
        .target_cmd("sh")
        .arg("-c")
        .arg(command)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("enrollment failed"), "{stderr}");
    let pid = std::fs::read_to_string(install_dir.join("vigil-agent.pid")).unwrap();
    assert!(
        Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the first agent was stopped"
    );
}
