//! End to end: a real `vigil server` and two real `vigil agent`s in network
//! namespaces, a real SMTP server (aiosmtpd) and a webhook receiver.
//!
//! Layout (see vigil-testnet): the server, the SMTP server and the webhook
//! receiver live in the "scanner" namespace (server agent API on
//! 198.18.0.1); both agents and the hosts they watch live in the "target"
//! namespace: agent "home" watches its own host 198.51.100.10, agent
//! "webshop" watches the host 198.51.100.20 and, from the server, the
//! location's observed address. Nothing leaves the namespaces.

mod common;

use common::server::{spawn, unix_now, wait_for, webhook_receiver, Api, Proc, API};
use common::{can_build_networks, smtp_available, stored_emails, vigil_bin};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

const HOME: &str = "198.51.100.10";
const SHOP: &str = "198.51.100.20";
/// A firewalled host (nft drops all TCP to it): probes vanish, so a scan of
/// it takes seconds (every probe times out, with retries).
const SILENT: &str = "198.51.100.30";
const SMTP_PORT: u16 = 2525;
const PASSWORD: &str = "correct horse battery staple";

struct World {
    dir: PathBuf,
    server_args: Vec<String>,
}

impl World {
    fn start_server(&self, net: &TestNet, log: &str) -> Proc {
        let mut cmd = net.scanner_cmd(vigil_bin());
        cmd.args(&self.server_args).env("VIGIL_LOG", "info");
        let p = spawn(cmd, "server", &self.dir.join(log));
        let api = Api { net, token: None };
        wait_for("the server's REST API", Duration::from_secs(20), || {
            (api.call("GET", "/openapi.json", None).0 == 200).then_some(())
        });
        p
    }

    fn start_agent(&self, net: &TestNet, name: &str, listen: &str) -> Proc {
        let mut cmd = net.target_cmd(vigil_bin());
        cmd.args(["agent", "--state-dir"])
            .arg(self.dir.join(name))
            .args(["run", "--listen", listen])
            .env("VIGIL_LOG", "info");
        spawn(cmd, "agent", &self.dir.join(format!("{name}.log")))
    }
}

fn alerts(api: &Api, agent: &str) -> Vec<Value> {
    api.get(&format!("/alerts?status=all&agent={agent}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find_alert(
    api: &Api,
    agent: &str,
    kind: &str,
    port: Option<u16>,
    status: &str,
) -> Option<Value> {
    alerts(api, agent)
        .into_iter()
        .find(|a| a["kind"] == kind && a["status"] == status && port.is_none_or(|p| a["port"] == p))
}

fn results(api: &Api, agent: &str) -> Vec<Value> {
    api.get(&format!("/agents/{agent}/results?limit=1000"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Asks for a scan now and waits until its result (a new one) is stored.
fn scan_and_wait(api: &Api, agent: &str) {
    let before = results(api, agent).len();
    wait_for("the scan to be accepted", Duration::from_secs(15), || {
        let (status, _) = api.call("POST", &format!("/agents/{agent}/scan"), None);
        // 409 while the previous task is still out is fine: retry.
        (status == 202).then_some(())
    });
    wait_for("a new scan result", Duration::from_secs(20), || {
        (results(api, agent).len() > before).then_some(())
    });
}

fn count(items: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    items.iter().filter(|v| pred(v)).count()
}

#[test]
fn server_agents_alerts_and_notifications_end_to_end() {
    if !can_build_networks() || !smtp_available() {
        eprintln!("SKIPPED: needs root, network namespaces and python3-aiosmtpd");
        return;
    }
    // VIGIL_E2E_KEEP=1 keeps the logs, databases and mail for inspection.
    let tmp = tempfile::Builder::new()
        .prefix("vigil-e2e")
        .disable_cleanup(std::env::var_os("VIGIL_E2E_KEEP").is_some())
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path().to_path_buf();
    eprintln!("e2e working directory: {}", dir.display());
    let net = TestNet::new(NetSpec::default()).expect("test network");
    for host in [HOME, SHOP, SILENT] {
        net.add_host(host.parse().expect("ip")).expect("host");
    }
    net.filter_host(SILENT.parse().expect("ip"))
        .expect("filter");
    // Agents reach the server from HOME: the location's public address.
    let route = String::from_utf8_lossy(
        &net.target_cmd("ip")
            .args(["route", "show", &format!("{SCANNER_V4}/32")])
            .output()
            .expect("ip route")
            .stdout,
    )
    .to_string();
    let dev = route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .expect("route device")
        .to_string();
    common::run_ok(net.target_cmd("ip").args([
        "route",
        "replace",
        &format!("{SCANNER_V4}/32"),
        "dev",
        &dev,
        "src",
        HOME,
    ]));

    let home_ssh = net
        .listen(format!("{HOME}:22").parse().unwrap(), None)
        .unwrap();
    let mut home_https = Some(
        net.listen(format!("{HOME}:443").parse().unwrap(), None)
            .unwrap(),
    );
    let _shop_http = net
        .listen(format!("{SHOP}:80").parse().unwrap(), None)
        .unwrap();
    let (hook_addr, hooks) = webhook_receiver(&net);
    let mail_dir = dir.join("mail");
    std::fs::create_dir_all(&mail_dir).unwrap();

    let db = format!("sqlite://{}", dir.join("server/vigil.db").display());
    std::fs::create_dir_all(dir.join("server")).unwrap();
    common::run_ok(
        Command::new(vigil_bin())
            .args(["admin", "--db", &db, "create-account", "--name", "Acme"])
            .args(["--kind", "organization", "--email", "owner@acme.test"])
            .env("VIGIL_PASSWORD", PASSWORD),
    );
    let world = World {
        server_args: [
            "server",
            "--data-dir",
            &dir.join("server").display().to_string(),
            "--db",
            &db,
            "--listen",
            API,
            "--agent-listen",
            &format!("{SCANNER_V4}:8443"),
            "--heartbeat-secs",
            "1",
            "--tick-ms",
            "200",
            "--silent-after-secs",
            "8",
            "--abandoned-after-secs",
            "20",
            "--sweep-ports",
            "1-1024",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            &SMTP_PORT.to_string(),
            "--smtp-security",
            "none",
            "--smtp-from",
            "vigil@acme.test",
        ]
        .map(String::from)
        .to_vec(),
        dir: dir.clone(),
    };
    let mut server = world.start_server(&net, "server.log");

    let mut api = Api {
        net: &net,
        token: None,
    };
    let login = api.ok(
        "POST",
        "/login",
        Some(json!({"email": "owner@acme.test", "password": PASSWORD})),
    );
    api.token = Some(login["token"].as_str().expect("token").to_string());

    // Who is told: one email contact and one webhook, every event of every agent.
    for (name, channel, address) in [
        ("ops mail", "email", "ops@acme.test".to_string()),
        ("ops hook", "webhook", format!("http://{hook_addr}/hook")),
    ] {
        let c = api.ok(
            "POST",
            "/contacts",
            Some(json!({"name": name, "channel": channel, "address": address})),
        );
        api.ok(
            "POST",
            "/rules",
            Some(json!({"contact_id": c["id"], "events": ["*"]})),
        );
    }

    // Enroll both agents for real, with the command the server prints.
    let mut agents = Vec::new();
    let mut procs = Vec::new();
    for (name, listen) in [
        ("home", format!("{HOME}:47760")),
        ("webshop", format!("{SHOP}:47760")),
    ] {
        let e = api.ok(
            "POST",
            "/enrollments",
            Some(json!({"name": name, "plan": "extended"})),
        );
        let command = e["command"].as_str().expect("command").to_string();
        assert!(
            command.starts_with("vigil agent enroll --server https://198.18.0.1:8443 --token vge_"),
            "{command}"
        );
        let words: Vec<&str> = command.split_whitespace().collect();
        common::run_ok(
            net.target_cmd(vigil_bin())
                .args(["agent", "--state-dir"])
                .arg(dir.join(name))
                .args(&words[2..]),
        );
        let id: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(name).join("identity.json")).expect("identity"),
        )
        .expect("identity json");
        agents.push(id["agent_id"].as_str().expect("agent id").to_string());
        procs.push(world.start_agent(&net, name, &listen));
    }
    let (home, shop) = (agents[0].clone(), agents[1].clone());
    let mut shop_proc = procs.pop().expect("shop");

    // Heartbeats record what the agent is and where it is.
    let agent = wait_for("home's first heartbeat", Duration::from_secs(15), || {
        let a = api.get(&format!("/agents/{home}"));
        a["hostname"].is_string().then_some(a)
    });
    assert_eq!(agent["public_addr"], HOME, "{agent}");
    assert_eq!(agent["version"], env!("CARGO_PKG_VERSION"));
    // The agent answers identify requests on its communication port with
    // its id and the id of the server that manages it.
    let server_id = api.get("/server")["server_id"]
        .as_str()
        .expect("server id")
        .to_string();
    let reply = common::identify_from_scanner(&net, format!("{HOME}:47760").parse().unwrap());
    assert_eq!(reply.agent_id, home);
    assert_eq!(reply.server_id, server_id);

    api.ok(
        "PUT",
        &format!("/agents/{home}/policy"),
        Some(
            json!({"enabled": true, "authorized": "22", "monitored": "443",
                    "targets": ["agent_host"], "interval": 60}),
        ),
    );
    api.ok(
        "PUT",
        &format!("/agents/{shop}/policy"),
        Some(json!({"enabled": true, "authorized": "", "monitored": "80",
                    "targets": [{"host": SHOP}, "observed_address"], "interval": 60})),
    );
    // First scans: home's own host (by the agent), the shop host (by the
    // shop agent) and the location's address (by the server).
    wait_for("first results", Duration::from_secs(30), || {
        let h = results(&api, &home);
        let s = results(&api, &shop);
        let targets: Vec<&str> = s.iter().filter_map(|r| r["target"].as_str()).collect();
        (!h.is_empty()
            && targets.contains(&"observed_address")
            && targets.contains(&"host:198.51.100.20"))
        .then_some(())
    });
    let first = &results(&api, &home)[0];
    assert_eq!(first["addr"], HOME, "{first}");
    let open: Vec<u64> = first["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "open")
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert!(open.contains(&22) && open.contains(&443), "{first}");
    assert!(alerts(&api, &home).is_empty(), "{:?}", alerts(&api, &home));

    // 1. An unauthorized port opens: one alert, one webhook — and one email
    //    later, because the SMTP server is still down (outage).
    let telnet = net
        .listen(format!("{HOME}:23").parse().unwrap(), None)
        .unwrap();
    scan_and_wait(&api, &home);
    // The result is visible a moment before its evaluation raised the alert.
    let alert = wait_for(
        "an unauthorized-port alert for 23",
        Duration::from_secs(10),
        || find_alert(&api, &home, "unauthorized_open", Some(23), "open"),
    );
    assert!(
        alert["title"].as_str().unwrap().contains("23/tcp"),
        "{alert}"
    );
    let is_telnet_hook = |v: &Value| {
        v["event"] == "unauthorized_port_open"
            && v["port"] == 23
            && v["agent_id"] == home.as_str()
            && v["severity"] == "critical"
    };
    wait_for("the webhook for port 23", Duration::from_secs(15), || {
        (count(&hooks.lock().unwrap(), is_telnet_hook) == 1).then_some(())
    });
    // Another scan with the port still open: no second alert, no repeat.
    scan_and_wait(&api, &home);
    assert_eq!(
        count(&alerts(&api, &home), |a| a["kind"] == "unauthorized_open"),
        1
    );
    // Closed and filtered ports never alert (1-1024 minus 22, 23, 443 are closed).
    assert_eq!(alerts(&api, &home).len(), 1, "{:?}", alerts(&api, &home));

    // 2. The server dies while an agent scans; the result is spooled and
    //    delivered once after the restart. The slow scan of SILENT makes
    //    "while it scans" certain: the server is killed as soon as the agent
    //    logs that this scan started.
    api.ok(
        "PUT",
        &format!("/agents/{shop}/policy"),
        Some(json!({"enabled": true, "authorized": "", "monitored": "80",
                    "targets": [{"host": SHOP}, "observed_address", {"host": SILENT}],
                    "interval": 60})),
    );
    let shop_log = dir.join("webshop.log");
    wait_for(
        "the agent to start scanning the silent host",
        Duration::from_secs(20),
        || {
            let log = std::fs::read_to_string(&shop_log).unwrap_or_default();
            log.lines()
                .any(|l| l.contains("scan started") && l.contains(SILENT))
                .then_some(())
        },
    );
    server.kill();
    let killed_at = unix_now();
    let spool = dir.join("webshop").join("spool");
    let spooled = wait_for(
        "the result in the agent's spool",
        Duration::from_secs(30),
        || {
            let n = std::fs::read_dir(&spool)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                        .count()
                })
                .unwrap_or(0);
            (n > 0).then_some(n)
        },
    );
    assert!(spooled >= 1);
    assert_eq!(api.call("GET", "/me", None).0, 0, "the server is down");
    let _server = world.start_server(&net, "server-restarted.log");
    // The SMTP server comes back too (the outage ends).
    let mut smtp = net.scanner_cmd("python3");
    smtp.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vigil-notify/tests/smtp_server.py"
    ))
    .arg(&mail_dir)
    .args(["--port", &SMTP_PORT.to_string()]);
    let _smtp = spawn(smtp, "smtp", &dir.join("smtp.log"));
    let silent = wait_for(
        "the spooled result after the restart",
        Duration::from_secs(30),
        || {
            let r: Vec<Value> = results(&api, &shop)
                .into_iter()
                .filter(|r| r["target"] == format!("host:{SILENT}"))
                .collect();
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(silent.len(), 1, "delivered exactly once: {silent:?}");
    // Everything filtered: only the monitored port is listed, the rest is
    // counted, as nmap's "Not shown: N filtered tcp ports".
    let listed: Vec<(u64, &str)> = silent[0]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| Some((p["port"].as_u64()?, p["state"].as_str()?)))
        .collect();
    assert_eq!(listed, [(80, "filtered")], "{:?}", silent[0]);
    let probed = silent[0]["probed_count"].as_u64().expect("probed_count");
    assert!(probed > 25, "{:?}", silent[0]);
    assert_eq!(
        silent[0]["filtered_not_listed"],
        probed - 1,
        "{:?}",
        silent[0]
    );
    assert_eq!(silent[0]["unreachable_not_listed"], 0, "{:?}", silent[0]);
    assert!(
        silent[0]["received_at"].as_i64().unwrap() >= killed_at,
        "{:?}",
        silent[0]
    );
    wait_for("the spool to empty", Duration::from_secs(15), || {
        let n = std::fs::read_dir(&spool)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0);
        (n == 0).then_some(())
    });

    // 3. A monitored service stops: "service down" after the damping
    //    threshold, then "recovered" when it is back.
    drop(home_https.take());
    wait_for("service down on 443", Duration::from_secs(60), || {
        scan_and_wait(&api, &home);
        find_alert(&api, &home, "service_down", Some(443), "open")
    });
    home_https = Some(
        net.listen(format!("{HOME}:443").parse().unwrap(), None)
            .unwrap(),
    );
    wait_for("443 recovered", Duration::from_secs(60), || {
        scan_and_wait(&api, &home);
        find_alert(&api, &home, "service_down", Some(443), "resolved")
    });
    let kinds = |event: &str| {
        let event = event.to_string();
        let home = home.clone();
        move |v: &Value| v["event"] == event.as_str() && v["agent_id"] == home.as_str()
    };
    wait_for(
        "down and recovered webhooks",
        Duration::from_secs(15),
        || {
            let h = hooks.lock().unwrap();
            (count(&h, kinds("service_down")) == 1 && count(&h, kinds("service_recovered")) == 1)
                .then_some(())
        },
    );

    // The port-23 email survived the SMTP outage and the server restart:
    // exactly one arrives (the first try failed before the kill).
    let telnet_mail = |m: &Value| {
        // The webshop's scan of its observed address (this same namespace)
        // can raise its own port-23 alert: only the home agent's counts.
        m["subject"]
            .as_str()
            .is_some_and(|s| s.contains("23/tcp") && s.contains("(agent \"home\")"))
            && m["rcpt_tos"][0] == "ops@acme.test"
    };
    wait_for("the port-23 email", Duration::from_secs(60), || {
        (count(&stored_emails(&mail_dir), telnet_mail) >= 1).then_some(())
    });
    let mails = stored_emails(&mail_dir);
    assert_eq!(count(&mails, telnet_mail), 1, "{mails:?}");
    assert_eq!(count(&hooks.lock().unwrap(), is_telnet_hook), 1);
    assert!(
        mails.iter().any(|m| m["subject"]
            .as_str()
            .is_some_and(|s| s.contains("443/tcp down"))),
        "{mails:?}"
    );
    drop(telnet);

    // 4. An agent stops communicating: alert, and its scan is suspended.
    shop_proc.kill();
    wait_for("webshop not communicating", Duration::from_secs(30), || {
        find_alert(&api, &shop, "agent_not_communicating", None, "open")
    });
    let a = api.get(&format!("/agents/{shop}"));
    assert_eq!(a["health"], "not_communicating", "{a}");
    assert_eq!(a["scan"]["state"], "suspended", "{a}");
    assert!(
        a["scan"]["reason"]
            .as_str()
            .unwrap()
            .contains("not communicating"),
        "{a}"
    );
    wait_for(
        "the not-communicating webhook",
        Duration::from_secs(15),
        || {
            let h = hooks.lock().unwrap();
            (count(&h, |v| {
                v["event"] == "agent_not_communicating" && v["agent_id"] == shop.as_str()
            }) == 1)
                .then_some(())
        },
    );

    // 5. Back to the Community plan: the scan is disabled, with the reason.
    let a = api.ok(
        "PATCH",
        &format!("/agents/{home}"),
        Some(json!({"plan": "community"})),
    );
    assert_eq!(a["scan"]["state"], "disabled", "{a}");
    assert!(
        a["scan"]["reason"]
            .as_str()
            .unwrap()
            .contains("Extended plan"),
        "{a}"
    );
    let (status, body) = api.call("POST", &format!("/agents/{home}/scan"), None);
    assert_eq!(status, 409, "{body}");
    let before = results(&api, &home).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(results(&api, &home).len(), before, "no scans on Community");

    // 6. Silent beyond the abandonment period: the scan is disabled (and
    //    switched off), with the reason, and the contacts are told.
    let a = wait_for("webshop abandoned", Duration::from_secs(40), || {
        let a = api.get(&format!("/agents/{shop}"));
        (a["health"] == "abandoned").then_some(a)
    });
    assert_eq!(a["scan"]["state"], "disabled", "{a}");
    assert!(
        a["scan"]["reason"].as_str().unwrap().contains("abandoned"),
        "{a}"
    );
    // The sweeper (every tick) switches the policy off.
    wait_for("the policy switched off", Duration::from_secs(10), || {
        let p = api.get(&format!("/agents/{shop}/policy"));
        (p["policy"]["enabled"] == false).then_some(())
    });
    wait_for("the scan-disabled webhook", Duration::from_secs(15), || {
        let h = hooks.lock().unwrap();
        (count(&h, |v| {
            v["event"] == "scan_disabled" && v["agent_id"] == shop.as_str()
        }) == 1)
            .then_some(())
    });
    drop((home_ssh, home_https, procs));
}
