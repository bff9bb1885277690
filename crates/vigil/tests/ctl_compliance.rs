//! `vigil ctl compliance` end to end: the real binary against a real server
//! in the scanner namespace, assessing hosts in the target namespace —
//! the scope (flags, a TOML file, the AD password from standard input),
//! `assess --wait` with plain progress lines, status, endpoint searches and
//! the CSV export, the schedule and the history; every answer checked by
//! its exit code and output.

mod common;

use common::compliance::{start_server, EMAIL, PASSWORD};
use common::server::{wait_for, API};
use common::{can_build_networks, vigil_bin, Out};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet};

/// Only port 135 open: no agent installed.
const RPC: &str = "198.51.100.20";
/// Nothing open (but up): no agent installed.
const BARE: &str = "198.51.100.21";
/// 198.51.100.16 – .23; the other six addresses drop everything.
const SCOPE: &str = "198.51.100.16/29";

struct World<'a> {
    net: &'a TestNet,
    config: PathBuf,
}

impl World<'_> {
    /// `vigil ctl ARGS` in the scanner namespace (where the API listens).
    fn ctl_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let mut cmd = self.net.scanner_cmd(vigil_bin());
        for var in ["VIGIL_TOKEN", "VIGIL_PASSWORD", "VIGIL_AD_PASSWORD"] {
            cmd.env_remove(var);
        }
        cmd.arg("ctl")
            .args(args)
            .env("VIGIL_SERVER", format!("http://{API}"))
            .env("VIGIL_CTL_CONFIG", &self.config)
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run vigil ctl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        Out::from(child.wait_with_output().expect("wait for vigil ctl"))
    }

    fn ctl(&self, args: &[&str]) -> Out {
        self.ctl_with(args, &[], None)
    }
}

#[test]
fn ctl_compliance_scope_assess_search_schedule_history() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    for host in [RPC, BARE] {
        net.add_host(host.parse().unwrap()).unwrap();
    }
    let _rpc = net
        .listen(format!("{RPC}:135").parse().unwrap(), None)
        .unwrap();
    let _server = start_server(&net, dir);
    let w = World {
        net: &net,
        config: dir.join("ctl.json"),
    };
    w.ctl_with(
        &["login", "--email", EMAIL],
        &[("VIGIL_PASSWORD", PASSWORD)],
        None,
    )
    .ok();

    // Nothing saved yet.
    w.ctl(&["compliance", "scope", "show"])
        .fails(2, "no compliance scope saved yet");
    w.ctl(&["compliance", "status"])
        .fails(2, "no assessment has run yet");
    assert!(w
        .ctl(&["compliance", "history"])
        .ok()
        .contains("no assessment has run yet"));

    // Bad input is refused before anything is sent, naming the value.
    w.ctl(&["compliance", "scope", "set", "--range", "2001:db8::/104"])
        .fails(2, "2001:db8::/104");
    w.ctl(&["compliance", "scope", "set", "--range", "198.51.100.0/33"])
        .fails(2, "198.51.100.0/33");
    w.ctl(&["compliance", "scope", "show"])
        .fails(2, "no compliance scope saved yet");

    // Save only, from flags.
    let saved = w.ctl(&[
        "compliance",
        "scope",
        "set",
        "--range",
        SCOPE,
        "--agent-port",
        "47760",
        "--unreachable-port",
        "135",
    ]);
    assert_eq!(saved.ok(), "scope saved\n");
    let shown = w.ctl(&["compliance", "scope", "show"]).ok();
    assert!(
        shown.contains(SCOPE) && shown.contains("port 135"),
        "{shown}"
    );
    assert!(shown.contains("on demand"), "{shown}");

    // The AD bind password comes from standard input, never the command line.
    let out = w.ctl_with(
        &[
            "compliance",
            "scope",
            "set",
            "--ad-url",
            "ldaps://dc.example.test",
            "--ad-bind-dn",
            "svc@example.test",
            "--ad-base-dn",
            "OU=Computers,DC=example,DC=test",
            "--ad-password-stdin",
        ],
        &[],
        Some("s3cret\n"),
    );
    out.ok();
    let view = w.ctl(&["--json", "compliance", "scope", "show"]).json();
    assert_eq!(view["has_ad_password"], true, "{view}");
    assert_eq!(view["scope"]["ad"]["url"], "ldaps://dc.example.test");
    assert!(!view.to_string().contains("s3cret"));
    let shown = w.ctl(&["compliance", "scope", "show"]).ok();
    assert!(shown.contains("password stored"), "{shown}");
    w.ctl(&["compliance", "scope", "set", "--no-ad"]).ok();
    let view = w.ctl(&["--json", "compliance", "scope", "show"]).json();
    assert_eq!(view["scope"]["ad"], Value::Null, "{view}");
    assert_eq!(view["has_ad_password"], false, "{view}");

    // A whole scope from a TOML file.
    let file = dir.join("scope.toml");
    std::fs::write(
        &file,
        format!(
            "agent_ports = [47760]\nunreachable_port = 135\non_demand = true\n\
             [ip]\nenabled = true\nranges = [\"{SCOPE}\"]\n"
        ),
    )
    .unwrap();
    let file_arg = file.display().to_string();
    w.ctl(&["compliance", "scope", "set", "--file", &file_arg])
        .ok();
    let view = w.ctl(&["--json", "compliance", "scope", "show"]).json();
    assert_eq!(view["scope"]["ip"]["ranges"], json!([SCOPE]), "{view}");

    // Assess and wait: plain progress lines (no terminal), then the counts.
    let out = w.ctl(&["compliance", "assess", "--wait"]).ok();
    assert!(out.contains("state:") && out.contains("done"), "{out}");
    let counts_line = |status: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{status} ")))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(counts_line("no_agent"), "2", "{out}");
    assert_eq!(counts_line("no_host"), "6", "{out}");
    assert_eq!(counts_line("managed_here"), "0", "{out}");
    assert!(!out.contains('\u{1b}'), "no terminal escapes: {out:?}");

    let status = w.ctl(&["--json", "compliance", "status"]).json();
    assert_eq!(status["state"], "done");
    assert_eq!(status["counts"]["no_agent"], 2, "{status}");

    // Endpoint searches.
    let table = w
        .ctl(&["compliance", "endpoints", "--status", "no_agent"])
        .ok();
    assert!(table.contains(RPC) && table.contains(BARE), "{table}");
    assert!(table.contains("2 of 2 matching endpoints"), "{table}");
    let page = w
        .ctl(&[
            "--json",
            "compliance",
            "endpoints",
            "--name",
            "198.51.100.2*",
        ])
        .json();
    // The two hosts; the silent addresses only when asked for.
    assert_eq!(page["total"], 2, "{page}");
    let page = w
        .ctl(&[
            "--json",
            "compliance",
            "endpoints",
            "--name",
            "198.51.100.2*",
            "--status",
            "no_host",
        ])
        .json();
    assert_eq!(page["total"], 2, "{page}");
    let page = w
        .ctl(&[
            "--json",
            "compliance",
            "endpoints",
            "--name",
            "198.51.100.2",
        ])
        .json();
    assert_eq!(page["total"], 0, "an incomplete name finds nothing: {page}");
    let page = w
        .ctl(&[
            "--json",
            "compliance",
            "endpoints",
            "--ip",
            "198.51.100.16-198.51.100.19",
            "--status",
            "unreachable",
            "--seen-before",
            "2999-01-01",
        ])
        .json();
    assert!(page["total"].as_u64().unwrap() <= 4, "{page}");
    w.ctl(&["compliance", "endpoints", "--status", "lost"])
        .fails(2, "lost");
    w.ctl(&["compliance", "endpoints", "--seen-after", "yesterday"])
        .fails(2, "--seen-after");
    let csv_path = dir.join("no-agent.csv");
    let csv_arg = csv_path.display().to_string();
    w.ctl(&[
        "compliance",
        "endpoints",
        "--status",
        "no_agent",
        "--csv",
        &csv_arg,
    ])
    .ok();
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("name,dns_name,addresses,status"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains(&format!("{RPC},,{RPC},no_agent")), "{csv}");

    // Save and re-assess.
    let out = w
        .ctl(&[
            "compliance",
            "scope",
            "set",
            "--unreachable-port",
            "135",
            "--reassess",
        ])
        .ok();
    assert!(
        out.contains("assessment") && out.contains("started"),
        "{out}"
    );

    // The schedule.
    let shown = w.ctl(&["compliance", "schedule", "show"]).ok();
    assert!(shown.contains("disabled"), "{shown}");
    w.ctl(&["compliance", "schedule", "set"])
        .fails(2, "--every");
    w.ctl(&["compliance", "schedule", "set", "--every", "0"])
        .fails(2, "out of range");
    w.ctl(&["compliance", "schedule", "set", "--daily", "25:00"])
        .fails(2, "25:00");
    w.ctl(&["compliance", "schedule", "set", "--weekly", "someday"])
        .fails(2, "someday");
    let out = w
        .ctl(&[
            "compliance",
            "schedule",
            "set",
            "--weekly",
            "mon",
            "--at",
            "02:30",
        ])
        .ok();
    assert!(out.contains("weekly on Monday at 02:30 UTC"), "{out}");
    let out = w
        .ctl(&["compliance", "schedule", "set", "--every", "720"])
        .ok();
    assert!(
        out.contains("every 720 min") && out.contains("enabled"),
        "{out}"
    );
    let view = w.ctl(&["--json", "compliance", "schedule", "show"]).json();
    assert_eq!(
        view["next_run_at"].as_i64().unwrap() % (720 * 60),
        0,
        "{view}"
    );
    let out = w.ctl(&["compliance", "schedule", "set", "--disable"]).ok();
    assert!(
        out.contains("disabled") && out.contains("every 720 min"),
        "{out}"
    );

    // The history: the re-assessment (maybe still running) and the manual one.
    let api_history = wait_for(
        "both assessments in the history",
        Duration::from_secs(60),
        || {
            let h = w.ctl(&["--json", "compliance", "history"]).json();
            let done = h
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["state"] == "done")
                .count();
            (done >= 2).then_some(h)
        },
    );
    assert_eq!(api_history[0]["trigger"], "scope_saved", "{api_history}");
    assert_eq!(api_history[1]["trigger"], "manual", "{api_history}");
    let table = w.ctl(&["compliance", "history", "--limit", "5"]).ok();
    assert!(table.starts_with("STARTED"), "{table}");
    assert!(
        table.contains("scope_saved") && table.contains("manual"),
        "{table}"
    );
    w.ctl(&["compliance", "history", "--limit", "0"])
        .fails(2, "limit 0");

    // Acting on the results: compliance_move.rs and compliance_install.rs
    // run these for real; here, the CLI around them.
    assert_eq!(
        w.ctl(&["--json", "compliance", "peers", "list"]).json(),
        json!([])
    );
    w.ctl(&["compliance", "peers", "add", "b", "http://198.51.100.99"])
        .fails(2, "VIGIL_PEER_TOKEN");
    // Not an agent of another server in the latest assessment: the table
    // says why, and the exit status says it failed.
    let moved = w.ctl(&["compliance", "move", "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"]);
    assert!(moved.stdout.contains("error"), "{moved}");
    moved.fails(1, "1 of 1 moves failed");
    let cmd = w
        .ctl(&[
            "--json",
            "compliance",
            "install-command",
            "--install-dir",
            "/opt/v",
        ])
        .json();
    let line = cmd["command"].as_str().unwrap();
    assert!(
        line.starts_with("curl ") && line.contains("--pinnedpubkey 'sha256//"),
        "{line}"
    );
    let text = w.ctl(&["compliance", "install-command"]).ok();
    assert!(
        text.contains("single-use") && text.contains("| sh -s -- 'vge_"),
        "{text}"
    );
    w.ctl(&[
        "compliance",
        "install",
        "198.51.100.40",
        "--ssh-key",
        "/nonexistent/key",
    ])
    .fails(2, "--ssh-key /nonexistent/key");
    w.ctl(&[
        "compliance",
        "install-status",
        "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3",
    ])
    .fails(2, "");
}
