//! `vigil ctl` end to end: a real `vigil server` process, a real agent
//! enrolled with the command `ctl enroll` prints, and every answer checked
//! by its exit code and message.

mod common;

use common::Out;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const OWNER_PASSWORD: &str = "correct horse battery";

/// Environment that would change what the commands do.
const VIGIL_ENV: &[&str] = &[
    "VIGIL_SERVER",
    "VIGIL_TOKEN",
    "VIGIL_PASSWORD",
    "VIGIL_CTL_CONFIG",
    "VIGIL_DB",
    "VIGIL_DATA_DIR",
    "VIGIL_AGENT_DIR",
    "VIGIL_SMTP_HOST",
];

fn vigil() -> Command {
    let mut cmd = Command::new(common::vigil_bin());
    for var in VIGIL_ENV {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// `N` distinct loopback ports nothing listens on right now (all held
/// until every one is picked, so they differ).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("local addr").port())
}

/// A running `vigil server` on free loopback ports, killed on drop.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
    api: String,
}

impl Server {
    /// Creates the accounts `(name, kind, owner email)` offline, then starts the server.
    fn start(accounts: &[(&str, &str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = format!("sqlite://{}", dir.path().join("vigil.db").display());
        for (name, kind, email) in accounts {
            let out = vigil()
                .args(["admin", "--db", &db, "create-account", "--name", name])
                .args(["--kind", kind, "--email", email])
                .env("VIGIL_PASSWORD", OWNER_PASSWORD)
                .output()
                .expect("run vigil admin");
            Out::from(out).ok();
        }
        let [api_port, agent_port] = free_ports();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = vigil()
            .arg("server")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{api_port}")])
            .args(["--agent-listen", &format!("127.0.0.1:{agent_port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vigil server");
        let mut server = Server {
            child,
            dir,
            api: format!("http://127.0.0.1:{api_port}"),
        };
        server.wait_healthy(api_port);
        server
    }

    fn wait_healthy(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("the server exited with {status}:\n{}", self.log());
            }
            if healthz(port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not answer /healthz within 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `vigil ctl ARGS` against this server, with the login saved in `config`.
    fn ctl(&self, config: &str, args: &[&str]) -> Out {
        self.ctl_with(config, args, &[], None)
    }

    fn ctl_with(
        &self,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Out {
        let mut cmd = vigil();
        cmd.arg("ctl")
            .args(args)
            .env("VIGIL_SERVER", &self.api)
            .env("VIGIL_CTL_CONFIG", self.path(config))
            .envs(env.iter().copied());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run vigil ctl");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        Out::from(child.wait_with_output().expect("wait for vigil ctl"))
    }

    /// Logs `email` in, saving the token in `config`.
    fn login(&self, config: &str, email: &str, password: &str) -> String {
        self.ctl_with(
            config,
            &["login", "--email", email],
            &[("VIGIL_PASSWORD", password)],
            None,
        )
        .ok()
    }

    /// `ctl enroll`, then `vigil agent enroll` with the printed command; the agent's id.
    fn enroll_agent(&self, config: &str, name: &str) -> String {
        let text = self
            .ctl(config, &["enroll", "--name", name, "--plan", "extended"])
            .ok();
        assert!(
            text.contains("vigil agent enroll --server https://") && text.contains("--pin sha256:"),
            "no enrollment command in:\n{text}"
        );
        let line = text
            .lines()
            .find(|l| l.contains("vigil agent enroll"))
            .expect("command line");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&words[..3], ["vigil", "agent", "enroll"], "{line}");
        let state_dir = self.path(&format!("agent-{name}"));
        let out = vigil()
            .arg("agent")
            .arg("--state-dir")
            .arg(&state_dir)
            .args(&words[2..])
            .output()
            .expect("run vigil agent enroll");
        let enrolled = Out::from(out).ok();
        let id = enrolled
            .split_whitespace()
            .nth(3)
            .expect("agent id in the enroll output")
            .to_string();
        assert!(enrolled.starts_with("enrolled as agent "), "{enrolled}");
        id
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when `GET /healthz` answers 200 "ok".
fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("config file")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn organization_workflow_end_to_end() {
    let server = Server::start(&[("Acme", "organization", "owner@acme.test")]);
    let owner = "owner.json";

    // Before login: a hint, exit 2.
    server
        .ctl(owner, &["whoami"])
        .fails(2, "run `vigil ctl login");
    // A wrong password (on standard input) is refused and saves nothing.
    server
        .ctl_with(
            owner,
            &["login", "--email", "owner@acme.test", "--password-stdin"],
            &[],
            Some("wrong password\n"),
        )
        .fails(2, "wrong email or password");
    assert!(!server.path(owner).exists());

    let text = server.login(owner, "owner@acme.test", OWNER_PASSWORD);
    assert!(
        text.contains("as owner@acme.test (owner) in account Acme"),
        "{text}"
    );
    assert_eq!(mode(&server.path(owner)), 0o600);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(server.path(owner)).unwrap()).unwrap();
    assert_eq!(saved["server"], server.api.as_str());
    assert!(
        saved["token"].as_str().unwrap().starts_with("vgl_"),
        "{saved}"
    );

    let me = server.ctl(owner, &["whoami"]).ok();
    assert!(
        me.contains("owner@acme.test (owner) in account Acme (organization"),
        "{me}"
    );
    let me = server.ctl(owner, &["whoami", "--json"]).json();
    assert_eq!(me["user"]["email"], "owner@acme.test");
    assert_eq!(me["account"]["kind"], "organization");

    // A real agent, enrolled with the printed command, shows up.
    let agent = server.enroll_agent(owner, "web-1");
    let list = server.ctl(owner, &["agents", "list"]).ok();
    let row = list
        .lines()
        .find(|l| l.starts_with(&agent))
        .unwrap_or_else(|| panic!("agent {agent} not listed:\n{list}"));
    assert!(row.contains("web-1") && row.contains("extended"), "{row}");
    // `vigil ctl agents` alone lists, as `agents list` does.
    assert_eq!(server.ctl(owner, &["agents"]).ok(), list);
    assert_eq!(
        server.ctl(owner, &["contacts"]).ok(),
        server.ctl(owner, &["contacts", "list"]).ok()
    );
    let agents = server.ctl(owner, &["agents", "list", "--json"]).json();
    assert_eq!(agents.as_array().map(Vec::len), Some(1), "{agents}");
    assert_eq!(agents[0]["id"], agent.as_str());

    // Policies: bad input is named, a new policy needs an interval, and an
    // organization may pick any number of minutes.
    server
        .ctl(
            owner,
            &["policy", "set", &agent, "--authorized", "22,70000"],
        )
        .fails(2, "70000");
    server
        .ctl(owner, &["policy", "set", &agent, "--authorized", "22"])
        .fails(2, "15, 30, 60, 120, 360, 720, 1440");
    server
        .ctl(owner, &["policy", "show", &agent])
        .fails(2, "no security scan policy");
    let set = server
        .ctl(
            owner,
            &[
                "policy",
                "set",
                &agent,
                "--interval",
                "45",
                "--authorized",
                "22,443",
            ],
        )
        .ok();
    assert!(set.contains("45 min") && set.contains("22,443"), "{set}");
    assert!(set.contains("scan:"), "{set}");
    let shown = server
        .ctl(owner, &["policy", "show", &agent, "--json"])
        .json();
    assert_eq!(shown["policy"]["interval"], 45);
    assert_eq!(shown["policy"]["authorized"], "22,443");
    assert_eq!(
        shown["policy"]["targets"],
        serde_json::json!(["agent_host"])
    );
    // A change keeps the rest.
    let set = server
        .ctl(
            owner,
            &["policy", "set", &agent, "--disable", "--target", "NAS.lan"],
        )
        .ok();
    assert!(
        set.contains("enabled:     no") && set.contains("nas.lan"),
        "{set}"
    );
    assert!(set.contains("45 min") && set.contains("22,443"), "{set}");

    let results = server.ctl(owner, &["results", &agent]).ok();
    assert!(results.contains("no security scan results"), "{results}");
    server
        .ctl(
            owner,
            &["agents", "show", "00000000-0000-4000-8000-000000000000"],
        )
        .fails(2, "no agent 00000000-0000-4000-8000-000000000000");

    // Contacts and rules.
    let contact = server
        .ctl(
            owner,
            &[
                "contacts",
                "add",
                "--name",
                "Ops",
                "--channel",
                "email",
                "--address",
                "ops@acme.test",
                "--json",
            ],
        )
        .json();
    let contact = contact["id"].as_str().expect("contact id").to_string();
    let contacts = server.ctl(owner, &["contacts", "list"]).ok();
    assert!(
        contacts.contains(&contact) && contacts.contains("ops@acme.test"),
        "{contacts}"
    );
    server
        .ctl(
            owner,
            &[
                "contacts",
                "add",
                "--name",
                "X",
                "--channel",
                "email",
                "--address",
                "not an address",
            ],
        )
        .fails(2, "not an address");
    // A channel with several fields: the others as --field; secrets never come back.
    let chat = server
        .ctl(
            owner,
            &[
                "contacts",
                "add",
                "--name",
                "Chat",
                "--channel",
                "telegram",
                "--address",
                "-1001234",
                "--field",
                "bot_token=123:SECRETTOKEN",
                "--json",
            ],
        )
        .json();
    assert!(!chat.to_string().contains("SECRETTOKEN"), "{chat}");
    assert_eq!(chat["secrets"][0], "bot_token", "{chat}");
    let chat_id = chat["id"].as_str().expect("contact id").to_string();
    let updated = server
        .ctl(owner, &["contacts", "update", &chat_id, "--name", "Chat 2"])
        .ok();
    assert!(updated.contains("Chat 2 (telegram -1001234)"), "{updated}");
    server
        .ctl(
            owner,
            &[
                "contacts",
                "add",
                "--name",
                "X",
                "--channel",
                "telegram",
                "--address",
                "-1",
                "-f",
                "colour=red",
            ],
        )
        .fails(2, "telegram has no field \"colour\"");
    server
        .ctl(
            owner,
            &[
                "contacts",
                "add",
                "--name",
                "X",
                "--channel",
                "pager",
                "--address",
                "-1",
            ],
        )
        .fails(2, "pager");
    server.ctl(owner, &["contacts", "remove", &chat_id]).ok();
    let rule = server
        .ctl(
            owner,
            &["rules", "add", "--contact", &contact, "--events", "*"],
        )
        .ok();
    assert!(rule.contains("added rule"), "{rule}");
    let rules = server.ctl(owner, &["rules", "list", "--json"]).json();
    let events = rules[0]["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e == "unauthorized_port_open"),
        "{rules}"
    );
    // Reminders and escalation: bad numbers named, good ones shown.
    server
        .ctl(
            owner,
            &[
                "rules",
                "add",
                "--contact",
                &contact,
                "--events",
                "*",
                "--remind-every",
                "2",
            ],
        )
        .fails(2, "remind every 5");
    server
        .ctl(
            owner,
            &[
                "rules",
                "add",
                "--contact",
                &contact,
                "--events",
                "*",
                "--escalate",
                "soon",
            ],
        )
        .fails(2, "MINUTES:CONTACT");
    let escalating = server
        .ctl(
            owner,
            &[
                "rules",
                "add",
                "--contact",
                &contact,
                "--events",
                "service_down",
                "--remind-every",
                "10",
                "--escalate",
                &format!("30:{contact}"),
            ],
        )
        .ok();
    assert!(
        escalating.contains("reminds every 10 min until acknowledged")
            && escalating.contains(&format!("escalates after 30 min to {contact}")),
        "{escalating}"
    );
    let listed = server.ctl(owner, &["rules", "list"]).ok();
    assert!(listed.contains("reminds every 10 min"), "{listed}");
    let id = escalating
        .split_whitespace()
        .nth(2)
        .expect("rule id")
        .trim_end_matches(':')
        .to_string();
    server.ctl(owner, &["rules", "remove", &id]).ok();
    let rules = server.ctl(owner, &["rules", "list"]).ok();
    assert!(
        rules.contains("Ops") && rules.contains("all agents"),
        "{rules}"
    );
    let rule_id = rules
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    server.ctl(owner, &["rules", "remove", rule_id]).ok();
    server.ctl(owner, &["contacts", "remove", &contact]).ok();
    let contacts = server.ctl(owner, &["contacts", "list"]).ok();
    assert!(!contacts.contains(&contact), "{contacts}");

    // No alerts on a fresh server; JSON is an array.
    let alerts = server.ctl(owner, &["alerts"]).ok();
    assert!(alerts.contains("no open alerts"), "{alerts}");
    let alerts = server
        .ctl(owner, &["alerts", "--status", "all", "--json"])
        .json();
    assert!(alerts.is_array(), "{alerts}");

    // A viewer reads but may not change anything.
    let added = server
        .ctl_with(
            owner,
            &[
                "users",
                "add",
                "--email",
                "viewer@acme.test",
                "--role",
                "viewer",
            ],
            &[("VIGIL_PASSWORD", "viewer password 1")],
            None,
        )
        .ok();
    assert!(added.contains("viewer@acme.test (viewer)"), "{added}");
    let viewer = "viewer.json";
    server.login(viewer, "viewer@acme.test", "viewer password 1");
    server.ctl(viewer, &["agents", "list"]).ok();
    server
        .ctl(
            viewer,
            &[
                "contacts",
                "add",
                "--name",
                "V",
                "--channel",
                "email",
                "--address",
                "v@acme.test",
            ],
        )
        .fails(2, "viewer");

    // Tokens: a created one works on its own, a revoked one no longer does.
    let token = server.ctl(owner, &["tokens", "create", "ci"]).ok();
    let token = token.trim();
    assert!(token.starts_with("vgl_"), "{token}");
    let with_token =
        |args: &[&str]| server.ctl_with("none.json", args, &[("VIGIL_TOKEN", token)], None);
    with_token(&["whoami"]).ok();
    let tokens = server.ctl(owner, &["tokens", "list", "--json"]).json();
    let ci = tokens
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "ci"))
        .expect("token ci listed");
    server
        .ctl(owner, &["tokens", "revoke", ci["id"].as_str().unwrap()])
        .ok();
    with_token(&["whoami"]).fails(2, "run `vigil ctl login`");

    // Logging out forgets the token.
    server.ctl(owner, &["logout"]).ok();
    assert!(!server.path(owner).exists());
    server.ctl(owner, &["whoami"]).fails(2, "vigil ctl login");
}

#[test]
fn member_accounts_get_member_intervals() {
    let server = Server::start(&[("Home", "member", "me@home.test")]);
    let cfg = "member.json";
    server.login(cfg, "me@home.test", OWNER_PASSWORD);
    let agent = server.enroll_agent(cfg, "nas");
    server
        .ctl(cfg, &["policy", "set", &agent, "--interval", "45"])
        .fails(2, "15, 30, 60, 120, 360, 720, 1440");
    server
        .ctl(cfg, &["policy", "show", &agent])
        .fails(2, "no security scan policy");
    let set = server
        .ctl(cfg, &["policy", "set", &agent, "--interval", "30"])
        .ok();
    assert!(set.contains("30 min"), "{set}");
}

/// Stores two sweeps of `agent`'s location straight into the server's
/// database (the agent API needs a real sweep; the store is what it
/// feeds): a baseline with a printer (631 and 9100 open) and a Raspberry
/// Pi, then the printer moved by DHCP, the Pi gone and a laptop (22 open)
/// joined. Returns the ids of the printer, the Pi and the laptop.
fn seed_devices(server: &Server, agent: &str) -> (String, String, String) {
    use common::lan::{sighting as seen, store_sweeps};
    let now = vigil_store::now_unix();
    let devices = store_sweeps(
        &server.path("vigil.db"),
        agent,
        &[
            (
                "u1",
                now - 100,
                vec![
                    seen("198.51.100.10", "3c:d9:2b:00:00:10", &[631, 9100]),
                    seen("198.51.100.20", "b8:27:eb:00:00:20", &[]),
                ],
            ),
            (
                "u2",
                now - 50,
                vec![
                    seen("198.51.100.77", "3c:d9:2b:00:00:10", &[631, 9100]),
                    seen("198.51.100.30", "00:1b:63:00:00:30", &[22]),
                ],
            ),
        ],
    );
    let id = |ip: &str| {
        devices
            .iter()
            .find(|d| d.address().map(|a| a.to_string()).as_deref() == Some(ip))
            .map(|d| d.id.clone())
            .unwrap_or_else(|| panic!("{ip} in {devices:?}"))
    };
    (
        id("198.51.100.77"),
        id("198.51.100.20"),
        id("198.51.100.30"),
    )
}

/// The addresses of a `devices list` table, sorted.
fn listed(table: &str) -> Vec<String> {
    let mut out: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

#[test]
fn devices_list_filters_and_history() {
    let server = Server::start(&[("Acme", "organization", "owner@acme.test")]);
    let cfg = "owner.json";
    server.login(cfg, "owner@acme.test", OWNER_PASSWORD);
    let agent = server.enroll_agent(cfg, "home");
    let (printer, pi, laptop) = seed_devices(&server, &agent);
    let list = |flags: &[&str]| {
        let mut args = vec!["devices", "list", agent.as_str()];
        args.extend_from_slice(flags);
        server.ctl(cfg, &args).ok()
    };

    // The filters, alone and combined.
    let all = list(&[]);
    assert_eq!(
        listed(&all),
        ["198.51.100.20", "198.51.100.30", "198.51.100.77"],
        "{all}"
    );
    let cases: &[(&[&str], &[&str])] = &[
        (&["--new"], &["198.51.100.30"]),
        (
            &["--unreviewed"],
            &["198.51.100.20", "198.51.100.30", "198.51.100.77"],
        ),
        // Unreviewed, no policy: any open port is unauthorized; the gone
        // Pi exposes nothing.
        (&["--unauthorized"], &["198.51.100.30", "198.51.100.77"]),
        (&["--gone"], &["198.51.100.20"]),
        (&["--vendor", "HEWLETT"], &["198.51.100.77"]),
        (&["--unauthorized", "--vendor", "apple"], &["198.51.100.30"]),
        (&["--new", "--gone"], &[]),
    ];
    for (flags, want) in cases {
        let out = list(flags);
        assert_eq!(listed(&out), *want, "{flags:?}:\n{out}");
    }
    assert!(list(&["--approved"]).contains("no devices"));
    let json = server
        .ctl(cfg, &["devices", "list", &agent, "--new", "--json"])
        .json();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json[0]["id"], laptop.as_str());
    server
        .ctl(
            cfg,
            &["devices", "list", &agent, "--approved", "--unreviewed"],
        )
        .fails(2, "cannot be used with");

    // The history, newest first.
    let history = |device: &str, flags: &[&str]| {
        let mut args = vec!["devices", "history", agent.as_str(), device];
        args.extend_from_slice(flags);
        server.ctl(cfg, &args)
    };
    let text = history(&printer, &[]).ok();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two events:\n{text}");
    assert!(
        lines[1].contains("moved")
            && lines[1].contains("moved from 198.51.100.10 to 198.51.100.77"),
        "{text}"
    );
    assert!(lines[2].contains("joined the network"), "{text}");
    let text = history(&pi, &["--limit", "1"]).ok();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("left the network"), "{text}");
    let json = history(&pi, &["--json"]).json();
    let kinds: Vec<&str> = json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["left", "joined"], "{json}");
    history(&pi, &["--limit", "0"]).fails(2, "limit must be between 1 and 1000");
    let nobody = "00000000-0000-4000-8000-000000000000";
    history(nobody, &[]).fails(2, &format!("no device {nobody} of agent {agent}"));

    // Approved: no longer new.
    server
        .ctl(cfg, &["devices", "approve", &agent, &laptop])
        .ok();
    assert!(list(&["--new"]).contains("no devices"));
    assert_eq!(listed(&list(&["--approved"])), ["198.51.100.30"]);
    // Its open port is its own now: only the printer is exposed.
    assert_eq!(listed(&list(&["--unauthorized"])), ["198.51.100.77"]);
}

#[test]
fn unreachable_server_and_missing_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ctl.json");
    let ctl = |args: &[&str]| {
        let out = vigil()
            .arg("ctl")
            .args(args)
            .env("VIGIL_CTL_CONFIG", &config)
            .output()
            .expect("run vigil ctl");
        Out::from(out)
    };
    let [port] = free_ports();
    let nobody = format!("http://127.0.0.1:{port}");
    ctl(&["--server", &nobody, "--token", "vgl_x", "agents", "list"])
        .fails(1, &format!("cannot reach the Vigil server at {nobody}"));
    ctl(&["--server", &nobody, "agents", "list"]).fails(2, "run `vigil ctl login");
    ctl(&["--server", "127.0.0.1:8080", "--token", "vgl_x", "whoami"])
        .fails(2, "http://127.0.0.1:8080");
    // Bad flags fail before anything is sent.
    ctl(&[
        "--server", &nobody, "--token", "vgl_x", "policy", "set", "a", "--target", "my nas",
    ])
    .fails(2, "\"my nas\"");
    // A login saved for one server is not sent to another.
    std::fs::write(
        &config,
        format!(r#"{{"server": "{nobody}", "token": "vgl_x"}}"#),
    )
    .unwrap();
    ctl(&["whoami"]).fails(1, &format!("cannot reach the Vigil server at {nobody}"));
    ctl(&["--server", "http://127.0.0.1:9", "whoami"])
        .fails(2, "not logged in to http://127.0.0.1:9");
}

#[test]
fn tags_and_maintenance_windows() {
    let server = Server::start(&[("Ops", "organization", "ops@ops.test")]);
    let cfg = "ops.json";
    server.login(cfg, "ops@ops.test", OWNER_PASSWORD);
    let agent = server.enroll_agent(cfg, "branch-1");

    // Tags: added normalized, listed, filtered, removed; bad ones named.
    let tagged = server
        .ctl(cfg, &["agents", "tag", &agent, "Office,paris"])
        .ok();
    assert!(tagged.contains("tags: office,paris"), "{tagged}");
    server
        .ctl(cfg, &["agents", "tag", &agent, "not ok"])
        .fails(2, "not ok");
    let list = server.ctl(cfg, &["agents", "list", "--tag", "office"]).ok();
    assert!(
        list.contains("branch-1") && list.contains("office,paris"),
        "{list}"
    );
    let none = server
        .ctl(cfg, &["agents", "list", "--tag", "lab", "--json"])
        .json();
    assert_eq!(none, serde_json::json!([]));
    let left = server
        .ctl(cfg, &["agents", "tag", &agent, "--remove", "paris"])
        .ok();
    assert!(left.contains("tags: office"), "{left}");

    // A weekly range must be a range; a cron window every minute for an
    // hour is open now.
    server
        .ctl(
            cfg,
            &[
                "maintenance",
                "add",
                "--name",
                "always",
                "--days",
                "0,1,2,3,4,5,6",
                "--from",
                "00:00",
                "--to",
                "00:00",
                "--tag",
                "office",
            ],
        )
        .fails(2, "a weekly window needs a time range");
    let added = server
        .ctl(
            cfg,
            &[
                "maintenance",
                "add",
                "--name",
                "patch night",
                "--cron",
                "* * * * *",
                "--duration",
                "60",
                "--time-zone",
                "Europe/Paris",
                "--tag",
                "office",
            ],
        )
        .ok();
    assert!(
        added.contains("added maintenance window \"patch night\"")
            && added.contains("open now")
            && added.contains("covers 1 agent"),
        "{added}"
    );
    server
        .ctl(
            cfg,
            &[
                "maintenance",
                "add",
                "--name",
                "x",
                "--start",
                "2026-01-01T00:00",
                "--end",
                "2026-01-01T01:00",
                "--time-zone",
                "Mars/Base",
            ],
        )
        .fails(2, "Mars/Base");
    server
        .ctl(cfg, &["maintenance", "add", "--name", "x"])
        .fails(2, "say when");
    let windows = server.ctl(cfg, &["maintenance", "list", "--json"]).json();
    let id = windows[0]["id"].as_str().expect("id").to_string();
    assert!(windows[0]["open"].is_object(), "{windows}");
    let shown = server.ctl(cfg, &["agents", "show", &agent]).ok();
    assert!(shown.contains("\"patch night\" until"), "{shown}");
    let removed = server.ctl(cfg, &["maintenance", "remove", &id]).ok();
    assert!(removed.contains("removed maintenance window"), "{removed}");
    let shown = server.ctl(cfg, &["agents", "show", &agent]).ok();
    assert!(!shown.contains("patch night"), "{shown}");
}
