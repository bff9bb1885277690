//! `vigil server --config`: the README's example names every flag and
//! parses; a server runs from a file, variables and flags win over it; a
//! bad file stops it with the file's line and key, touching no data.

mod common;

use common::replica::free_ports;
use common::server::{spawn, wait_for};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn vigil(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::vigil_bin());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run vigil")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "vigil failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The ```toml block of the README's "Configuration file" section.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let section = readme
        .split_once("## Configuration file")
        .map(|(_, rest)| rest)
        .expect("the README has a Configuration file section");
    let block = section
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("the section has a toml block");
    block.to_string()
}

/// `key = value  # source` lines of `--print-config`, commented-out ones too.
fn printed_keys(printed: &str) -> Vec<(String, String)> {
    printed
        .lines()
        .filter(|l| !l.starts_with("# vigil"))
        .filter_map(|l| {
            let l = l.strip_prefix("# ").unwrap_or(l);
            let (key, rest) = l.split_once(" = ")?;
            Some((key.to_string(), rest.to_string()))
        })
        .collect()
}

#[test]
fn the_readme_example_parses_and_names_every_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example = readme_example();
    let file = dir.path().join("server.toml");
    std::fs::write(&file, &example).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let shown = stdout(&vigil(&["server", "--config", path, "--print-config"], &[]));
    assert!(
        shown.contains(&format!("data_dir = \"/var/lib/vigil\"  # file {path}:2")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("smtp_security = \"starttls\"  # file {path}:")),
        "{shown}"
    );

    // With every commented-out key switched on (its secret files made),
    // every flag comes from the file: the example names them all, and
    // each of its sample values is valid.
    let all_on: String = example
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| !k.contains(' ')) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, &all_on).expect("write");
    std::fs::write(dir.path().join("smtp-password"), "pw\n").expect("write");
    std::fs::write(dir.path().join("metrics-token"), "tok\n").expect("write");
    let shown = stdout(&vigil(&["server", "--config", path, "--print-config"], &[]));
    let keys = printed_keys(&shown);
    assert!(keys.len() > 40, "{shown}");
    for (key, rest) in keys {
        // --secrets-key is the hidden inline form of secrets_key_file.
        if key == "secrets_key" {
            continue;
        }
        assert!(
            rest.contains("# file "),
            "the README's example lacks `{key}`: {rest}"
        );
    }
    assert!(!shown.contains("pw\""), "a secret was printed:\n{shown}");
}

/// GET `path` on 127.0.0.1:`port`: the status code, if anything answers.
fn get(port: u16, path: &str) -> Option<u16> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

fn write_config(path: &Path, data: &Path, listen: u16, agent: u16, extra: &str) {
    std::fs::write(
        path,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{listen}\"\nagent_listen = \"127.0.0.1:{agent}\"\n\
             tick_ms = 200\n{extra}",
            data.display()
        ),
    )
    .expect("write config");
}

#[test]
fn a_server_runs_from_its_file_and_variables_win_over_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let config = dir.path().join("server.toml");
    let [from_file, from_env, agent] = free_ports::<3>();
    write_config(
        &config,
        &data,
        from_file,
        agent,
        "[smtp]\nfrom = \"alerts@example.test\"\n",
    );
    let path = config.to_str().expect("utf-8 path");

    let mut cmd = Command::new(common::vigil_bin());
    cmd.args(["server", "--config", path]);
    let log = dir.path().join("server.log");
    let mut server = spawn(cmd, "vigil server", &log);
    wait_for(
        "/readyz on the file's port",
        Duration::from_secs(30),
        || (get(from_file, "/readyz") == Some(200)).then_some(()),
    );
    assert!(
        data.join("vigil.db").exists(),
        "the file's data_dir is used"
    );
    server.kill();

    // VIGIL_LISTEN wins over the file's listen.
    let env_listen = format!("127.0.0.1:{from_env}");
    let mut cmd = Command::new(common::vigil_bin());
    cmd.args(["server", "--config", path])
        .env("VIGIL_LISTEN", &env_listen);
    let mut server = spawn(cmd, "vigil server", &log);
    wait_for(
        "/readyz on the variable's port",
        Duration::from_secs(30),
        || (get(from_env, "/readyz") == Some(200)).then_some(()),
    );
    assert_eq!(
        get(from_file, "/readyz"),
        None,
        "the file's port is not used"
    );
    server.kill();

    let shown = stdout(&vigil(
        &[
            "server",
            "--config",
            path,
            "--print-config",
            "--heartbeat-secs",
            "7",
        ],
        &[("VIGIL_LISTEN", &env_listen)],
    ));
    assert!(
        shown.contains(&format!(
            "listen = \"{env_listen}\"  # environment VIGIL_LISTEN"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("heartbeat_secs = 7  # command line"),
        "{shown}"
    );
    assert!(
        shown.contains("smtp_from = \"alerts@example.test\"  # file "),
        "{shown}"
    );
}

#[test]
fn a_bad_file_names_its_line_and_key_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let config = dir.path().join("server.toml");
    let [listen, agent] = free_ports::<2>();
    write_config(&config, &data, listen, agent, "");
    let path = config.to_str().expect("utf-8 path");
    // A database with an account in it.
    let db = format!("sqlite://{}", data.join("vigil.db").display());
    std::fs::create_dir_all(&data).expect("data dir");
    stdout(&vigil(
        &[
            "admin",
            "--db",
            &db,
            "create-account",
            "--name",
            "Acme",
            "--email",
            "o@acme.test",
        ],
        &[("VIGIL_PASSWORD", "a long enough password")],
    ));
    let before = std::fs::read(data.join("vigil.db")).expect("db");

    write_config(
        &config,
        &data,
        listen,
        agent,
        "heartbeat_secs = \"often\"\nretention_dayz = 5\n",
    );
    let out = vigil(&["server", "--config", path], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{path}:5: `heartbeat_secs`: invalid value 'often'"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{path}:6: unknown key `retention_dayz` (did you mean `retention_days`?)"
        )),
        "{err}"
    );
    assert_eq!(get(listen, "/readyz"), None, "nothing was started");
    assert_eq!(
        std::fs::read(data.join("vigil.db")).expect("db"),
        before,
        "the database is untouched"
    );

    // The agent's file is checked the same way.
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        "state_dir = \"/tmp/x\"\nlisten = \"nowhere\"\n",
    )
    .expect("write");
    let out = vigil(
        &[
            "agent",
            "run",
            "--config",
            agent_config.to_str().expect("path"),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2: `listen`: invalid value 'nowhere'"),
        "{err}"
    );
}
