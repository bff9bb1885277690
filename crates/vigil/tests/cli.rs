//! `vigil scan` on loopback: bad input is refused with exit code 2 and the
//! offending token named; every output format says what was found.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::thread;

fn vigil(args: &[&str]) -> Output {
    Command::new(common::vigil_bin())
        .args(args)
        .output()
        .expect("run vigil")
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

/// A loopback listener that sends `banner` to every client, and a loopback
/// port nobody listens on.
struct Loopback {
    open: u16,
    closed: u16,
    _listener: TcpListener,
}

fn loopback(banner: &'static [u8]) -> Loopback {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let open = listener.local_addr().expect("addr").port();
    let accept = listener.try_clone().expect("clone");
    thread::spawn(move || {
        for mut conn in accept.incoming().flatten() {
            let _ = conn.write_all(banner);
        }
    });
    // A port that was free a moment ago; nothing on loopback grabs it again
    // while the test runs.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a: SocketAddr| a.port())
        .expect("free port");
    Loopback {
        open,
        closed,
        _listener: listener,
    }
}

#[test]
fn bad_input_exits_2_and_names_the_token() {
    let cases: &[(&[&str], &str)] = &[
        (&["scan", "198.51.100.0/33", "-p", "22"], "198.51.100.0/33"),
        (&["scan", "1.2.3.4.5", "-p", "22"], "1.2.3.4.5"),
        (
            &["scan", "198.51.100.9-198.51.100.1", "-p", "22"],
            "198.51.100.9-198.51.100.1",
        ),
        (&["scan", "2001:db8::/64", "-p", "22"], "too many hosts"),
        (&["scan", "127.0.0.1", "-p", "22,70000"], "70000"),
        (&["scan", "127.0.0.1", "-p", "30-20"], "30-20"),
        (&["scan", "127.0.0.1", "-p", "ssh"], "ssh"),
        (&["scan", "127.0.0.1", "-p", ""], "port"),
        (&["scan", "127.0.0.1", "--top-ports", "0"], "--top-ports"),
        (
            &["scan", "127.0.0.1", "-p", "1", "--concurrency", "0"],
            "--concurrency",
        ),
        (
            &["scan", "127.0.0.1", "-p", "1", "--max-rate", "0"],
            "--max-rate",
        ),
        (
            &["scan", "127.0.0.1", "-p", "1", "--max-rate", "fast"],
            "fast",
        ),
        (&["scan", "-6", "127.0.0.1", "-p", "1"], "127.0.0.1"),
        (&["scan", "-4", "::1", "-p", "1"], "::1"),
        (
            &["scan", "no-such-host.invalid", "-p", "1"],
            "no-such-host.invalid",
        ),
        (&["scan", "-p", "22"], "TARGET"),
        (&["scan", "127.0.0.1", "--frobnicate"], "--frobnicate"),
        (
            &["scan", "127.0.0.1", "-p", "1", "--syn", "--banner"],
            "banners need",
        ),
        (
            &["scan", "127.0.0.1", "-p", "1", "--syn", "--connect"],
            "--connect",
        ),
    ];
    for (args, needle) in cases {
        let out = vigil(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: error does not name {needle:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn json_lines_show_open_ports_and_all_with_all() {
    let lo = loopback(b"");
    let ports = format!("{},{}", lo.open, lo.closed);
    let out = stdout(&vigil(&["scan", "127.0.0.1", "-p", &ports, "--json"]));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["addr"], "127.0.0.1");
    assert_eq!(lines[0]["port"], lo.open);
    assert_eq!(lines[0]["state"], "open");
    assert!(lines[0]["rtt_ms"].as_f64().is_some(), "{out}");

    let out = stdout(&vigil(&[
        "scan",
        "127.0.0.1",
        "-p",
        &ports,
        "--json",
        "--all",
    ]));
    let mut states: Vec<(u64, String)> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            (
                v["port"].as_u64().expect("port"),
                v["state"].as_str().expect("state").into(),
            )
        })
        .collect();
    states.sort();
    let mut expected = vec![
        (lo.open as u64, "open".to_string()),
        (lo.closed as u64, "closed".into()),
    ];
    expected.sort();
    assert_eq!(states, expected);
}

#[test]
fn csv_has_a_header_and_one_record_per_port() {
    let lo = loopback(b"");
    let ports = format!("{},{}", lo.open, lo.closed);
    let out = stdout(&vigil(&[
        "scan",
        "127.0.0.1",
        "-p",
        &ports,
        "--csv",
        "--all",
        "--connect",
    ]));
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let header = reader.headers().expect("header").clone();
    assert_eq!(&header[0], "addr");
    assert_eq!(&header[2], "state");
    let rows = csv_rows(&out);
    let mut expected = vec![
        (lo.open, "open".to_string(), "syn-ack".to_string()),
        (lo.closed, "closed".into(), "conn-refused".into()),
    ];
    expected.sort();
    assert_eq!(rows, expected);
}

/// `vigil scan --csv` records as (port, state, reason), sorted.
fn csv_rows(out: &str) -> Vec<(u16, String, String)> {
    let mut rows: Vec<(u16, String, String)> = csv::Reader::from_reader(out.as_bytes())
        .records()
        .map(|r| {
            let r = r.expect("record");
            (r[1].parse().expect("port"), r[2].into(), r[3].into())
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn table_lists_open_ports_and_a_summary() {
    let lo = loopback(b"");
    let ports = format!("{},{}", lo.open, lo.closed);
    let out = stdout(&vigil(&["scan", "127.0.0.1", "-p", &ports]));
    assert!(out.contains(&format!("{}/tcp", lo.open)), "{out}");
    assert!(!out.contains(&format!("{}/tcp", lo.closed)), "{out}");
    assert!(out.contains("1 open, 1 closed, 0 filtered"), "{out}");
}

#[test]
fn banner_shows_what_the_service_sends_first() {
    let lo = loopback(b"SSH-2.0-VigilTest\r\n");
    let port = lo.open.to_string();
    let out = stdout(&vigil(&[
        "scan",
        "127.0.0.1",
        "-p",
        &port,
        "--json",
        "--banner",
    ]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    let banner = v["banner"].as_str().expect("banner field");
    assert!(banner.starts_with("SSH-2.0-VigilTest"), "{out}");
    // Without --banner no connection data is read.
    let out = stdout(&vigil(&["scan", "127.0.0.1", "-p", &port, "--json"]));
    assert!(!out.contains("banner"), "{out}");
}

#[test]
fn nmap_xml_file_is_readable_and_matches() {
    let lo = loopback(b"");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("scan.xml");
    let ports = format!("{},{}", lo.open, lo.closed);
    stdout(&vigil(&[
        "scan",
        "127.0.0.1",
        "-p",
        &ports,
        "-oX",
        file.to_str().expect("utf-8 path"),
    ]));
    let xml = std::fs::read_to_string(&file).expect("XML written");
    assert!(xml.contains("<nmaprun"), "{xml}");
    let verdicts = common::parse_nmap_xml(&xml);
    let lo_ip = "127.0.0.1".parse().expect("ip");
    assert_eq!(verdicts[&(lo_ip, lo.open)].0, "open");
    assert_eq!(verdicts[&(lo_ip, lo.closed)].0, "closed");
}

#[test]
fn hostnames_resolve_and_top_ports_counts() {
    let out = stdout(&vigil(&[
        "scan",
        "localhost",
        "-4",
        "--top-ports",
        "10",
        "--json",
        "--all",
    ]));
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 10, "{out}");
    assert!(lines
        .iter()
        .all(|v| v["host"] == "localhost" && v["addr"] == "127.0.0.1"));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let uid = s.lines().find(|l| l.starts_with("Uid:"))?;
            uid.split_whitespace().nth(2).map(|e| e == "0")
        })
        .unwrap_or(false)
}

/// `vigil ARGS` run as `nobody` (no capabilities), or `None` when
/// `nobody` cannot run this build (a checkout in a home directory).
fn vigil_as_nobody(args: &[&str]) -> Option<Output> {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(common::vigil_bin())
        .args(args)
        .current_dir("/")
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(126) || err.contains("Permission denied") {
        eprintln!("note: nobody cannot run {}: {err}", common::vigil_bin());
        return None;
    }
    Some(out)
}

/// SYN probes: with raw sockets they find the same ports, with nmap
/// `-sS`'s reasons, and the summary names the engine; without
/// `CAP_NET_RAW`, `--syn` is refused with what to do and the default
/// falls back to connect probes.
#[test]
fn syn_probes_when_permitted_and_a_clear_refusal_when_not() {
    let lo = loopback(b"");
    let ports = format!("{},{}", lo.open, lo.closed);
    let unprivileged = |out: Option<Output>, syn: bool| {
        let Some(out) = out else { return };
        let err = String::from_utf8_lossy(&out.stderr);
        if syn {
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(
                err.contains("CAP_NET_RAW") && err.contains("connect"),
                "{err}"
            );
        } else {
            let text = stdout(&out);
            assert!(
                text.contains("with connect probes: 1 open, 1 closed"),
                "{text}"
            );
        }
    };
    if !is_root() {
        unprivileged(
            Some(vigil(&["scan", "127.0.0.1", "-p", &ports, "--syn"])),
            true,
        );
        unprivileged(Some(vigil(&["scan", "127.0.0.1", "-p", &ports])), false);
        return;
    }
    let out = stdout(&vigil(&[
        "scan",
        "127.0.0.1",
        "-p",
        &ports,
        "-sS",
        "--csv",
        "--all",
    ]));
    let rows = csv_rows(&out);
    let mut expected = vec![
        (lo.open, "open".to_string(), "syn-ack".to_string()),
        (lo.closed, "closed".into(), "reset".into()),
    ];
    expected.sort();
    assert_eq!(rows, expected);
    let auto = stdout(&vigil(&["scan", "127.0.0.1", "-p", &ports]));
    assert!(auto.contains("with SYN probes: 1 open, 1 closed"), "{auto}");
    let connect = stdout(&vigil(&["scan", "127.0.0.1", "-p", &ports, "-sT"]));
    assert!(
        connect.contains("with connect probes: 1 open, 1 closed"),
        "{connect}"
    );
    let port = lo.open.to_string();
    let xml = stdout(&vigil(&[
        "scan",
        "127.0.0.1",
        "-p",
        &port,
        "--syn",
        "-oX",
        "-",
    ]));
    assert!(xml.contains(r#"<scaninfo type="syn""#), "{xml}");
    unprivileged(
        vigil_as_nobody(&["scan", "127.0.0.1", "-p", &ports, "--syn"]),
        true,
    );
    unprivileged(vigil_as_nobody(&["scan", "127.0.0.1", "-p", &ports]), false);
}

/// A server told to use SYN probes without `CAP_NET_RAW` does not start,
/// and says why and what to do (auto would fall back to connect probes).
#[test]
fn a_server_told_to_use_syn_probes_without_raw_sockets_does_not_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).ok();
    let data = data.to_str().unwrap();
    let args = [
        "server",
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
        "--agent-listen",
        "127.0.0.1:0",
        "--scan-probes",
        "syn",
    ];
    let Some(out) = vigil_as_nobody(&args) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--scan-probes syn") && err.contains("CAP_NET_RAW"),
        "{err}"
    );
}
