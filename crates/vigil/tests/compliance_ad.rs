//! Compliance assessment of an Active Directory scope joined with an IP
//! scope, end to end, against a real directory: Samba AD DC in the target
//! namespace (LDAPS, its own DNS server), a real `vigil server` in the
//! scanner namespace that resolves computer names through that DNS server,
//! and test hosts with agents of this server and of another one.
//!
//! Checked: paging and base DNs and the extra filter select exactly the
//! computers they should; every status appears and is right, AD computers
//! and IP results are joined by dNSHostName so both sides appear once; AD
//! attributes (GUID, container, OS, disabled) reach the endpoint list and
//! its search; an AD computer whose agent stops answering stays managed
//! here (known by GUID); a wrong password or an untrusted certificate
//! fails the assessment with a message that says so.

mod common;

use common::compliance::{
    agent_of, enrolled_agent, names, owner_api, save_and_assess, start_server_with, wait_done,
};
use common::server::{Api, Proc};
use serde_json::{json, Value};
use std::net::IpAddr;
use vigil_testdir::{Computer, DcOptions, SambaDc};
use vigil_testnet::{NetSpec, TestNet};

const DC: &str = "198.51.100.53";
/// WS-OURS: an agent of this server; inside the IP range.
const OURS: &str = "198.51.100.10";
/// WS-BARE: only port 135 answers; inside the IP range.
const BARE: &str = "198.51.100.20";
/// Not in AD: only port 135; inside the IP range.
const IP_ONLY: &str = "198.51.100.25";
/// SRV-THEIRS: an agent of another server; inside the IP range.
const THEIRS: &str = "198.51.100.30";
/// WS-DOWN: its name resolves, nothing answers; outside the IP range.
const DOWN: &str = "198.51.100.40";
/// WS-OUTSIDE: only port 135; outside the IP range.
const OUTSIDE: &str = "198.51.100.70";
const RANGE: &str = "198.51.100.0/27";
const OTHER_SERVER: &str = "0b4c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";
const WORKSTATIONS: &str = "OU=Workstations,DC=example,DC=test";
const SERVERS: &str = "OU=Servers,DC=example,DC=test";

fn computer(name: &str, ou: &str, dns: Option<&str>, os: &str) -> Computer {
    Computer {
        ou: Some(ou.into()),
        dns_host_name: dns.map(str::to_owned),
        operating_system: Some(os.into()),
        ..Computer::new(name)
    }
}

fn endpoint<'a>(page: &'a Value, name: &str) -> &'a Value {
    page["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name} in {page}"))
}

fn scope(dc: &SambaDc, ca_cert: Option<&str>) -> Value {
    json!({
        "ad": {
            "url": dc.ldaps_url(),
            "bind": {"method": "simple", "bind_dn": dc.bind_dn()},
            "base_dns": [WORKSTATIONS, SERVERS],
            "filter": "(!(cn=WS-EXCLUDED))",
            "ca_cert": ca_cert,
        },
        "ip": {"enabled": true, "ranges": [RANGE]},
        "agent_ports": [47760],
        "unreachable_port": 135,
    })
}

#[test]
fn ad_scope_joined_with_ip_scope_finds_every_status() {
    if let Err(e) = vigil_testdir::check_available() {
        assert!(e.is_unavailable(), "{e}");
        eprintln!("SKIPPED: {e}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    let dc = SambaDc::start(&net, DC.parse().unwrap(), &DcOptions::default()).unwrap();
    for host in [OURS, BARE, IP_ONLY, THEIRS, OUTSIDE] {
        net.add_host(host.parse().unwrap()).unwrap();
    }
    let _rpc: Vec<_> = [BARE, IP_ONLY, OUTSIDE]
        .iter()
        .map(|h| {
            net.listen(format!("{h}:135").parse().unwrap(), None)
                .unwrap()
        })
        .collect();

    let ws = "Workstations";
    dc.add_computers(&[
        computer(
            "WS-OURS",
            ws,
            Some("ws-ours.example.test"),
            "Windows 11 Pro",
        ),
        computer(
            "WS-BARE",
            ws,
            Some("ws-bare.example.test"),
            "Windows 10 Pro",
        ),
        computer(
            "WS-DOWN",
            ws,
            Some("ws-down.example.test"),
            "Windows 11 Pro",
        ),
        computer(
            "WS-OUTSIDE",
            ws,
            Some("ws-outside.example.test"),
            "Windows 11 Pro",
        ),
        computer(
            "WS-GHOST",
            ws,
            Some("ws-ghost.example.test"),
            "Windows 11 Pro",
        ),
        Computer {
            disabled: true,
            ..computer("WS-NODNS", ws, None, "Windows 10 Pro")
        },
        computer(
            "WS-EXCLUDED",
            ws,
            Some("ws-excluded.example.test"),
            "Windows 11 Pro",
        ),
        computer(
            "SRV-THEIRS",
            "Servers",
            Some("srv-theirs.example.test"),
            "Windows Server 2022",
        ),
        computer("LAB-1", "Lab", Some("lab-1.example.test"), "Windows 11 Pro"),
    ])
    .unwrap();
    let ip = |s: &str| -> Vec<IpAddr> { vec![s.parse().unwrap()] };
    let (ours, bare, theirs, down, outside, lab) = (
        ip(OURS),
        ip(BARE),
        ip(THEIRS),
        ip(DOWN),
        ip(OUTSIDE),
        ip(IP_ONLY),
    );
    dc.set_dns_records(&[
        ("ws-ours.example.test", &ours),
        ("ws-bare.example.test", &bare),
        ("srv-theirs.example.test", &theirs),
        ("ws-down.example.test", &down),
        ("ws-outside.example.test", &outside),
        ("ws-excluded.example.test", &outside),
        // Outside the base DNs: must not claim IP_ONLY.
        ("lab-1.example.test", &lab),
    ])
    .unwrap();
    net.set_scanner_dns(DC.parse().unwrap()).unwrap();

    // For the Kerberos part: the server's krb5.conf and ticket cache (empty
    // until `kinit` runs).
    let krb5_conf = dir.join("krb5.conf");
    std::fs::write(&krb5_conf, krb5_conf_text()).unwrap();
    let ccache = dir.join("krb5cc");
    let ccache = format!("FILE:{}", ccache.display());
    let krb_env = [
        ("KRB5_CONFIG", krb5_conf.to_str().unwrap()),
        ("KRB5CCNAME", ccache.as_str()),
    ];
    // The one tenant may bind with the server's Kerberos ticket.
    let _server = start_server_with(&net, dir, &["--gssapi-account", "all"], &krb_env);
    let api = owner_api(&net);
    let server_id = api.get("/server")["server_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut ours_agent, ours_id): (Proc, String) = enrolled_agent(&net, dir, &api, OURS, "ours");
    let _theirs_agent = agent_of(&net, dir, THEIRS, OTHER_SERVER, "theirs");
    std::thread::sleep(std::time::Duration::from_secs(1));

    // The DC's certificate comes from a private CA: without it, no trust.
    let failed = save_and_assess(&api, scope(&dc, None), Some(dc.password()));
    assert_eq!(failed["state"], "failed", "{failed}");
    let msg = failed["error"].as_str().unwrap();
    assert!(
        msg.contains("cannot connect to ldaps://") && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    // A wrong password is named as such.
    let failed = save_and_assess(
        &api,
        scope(&dc, Some(dc.ca_cert_pem())),
        Some("wrong password"),
    );
    assert_eq!(failed["state"], "failed", "{failed}");
    let msg = failed["error"].as_str().unwrap();
    assert!(msg.contains("invalid credentials"), "{msg}");
    // A CA certificate that is not one is refused when saved.
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": scope(&dc, Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))})),
    );
    assert_eq!(status, 422, "{body}");

    let done = save_and_assess(
        &api,
        scope(&dc, Some(dc.ca_cert_pem())),
        Some(dc.password()),
    );
    assert_eq!(done["state"], "done", "{done}");
    // Once done, progress counts endpoints: 7 AD computers and the 29
    // addresses none of them claims (of 32 in the range + 2 outside).
    assert_eq!(
        (&done["done"], &done["total"]),
        (&json!(36), &json!(36)),
        "{done}"
    );
    let counts = &done["counts"];
    assert_eq!(counts["managed_here"], 1, "{done}");
    assert_eq!(counts["managed_elsewhere"], 1, "{done}");
    assert_eq!(counts["no_agent"], 3, "{done}");
    // WS-DOWN (AD says it exists); the 28 silent addresses of the range
    // are no host at address.
    assert_eq!(counts["unreachable"], 1, "{done}");
    assert_eq!(counts["no_host"], 28, "{done}");
    assert_eq!(counts["unresolved_ad"], 2, "{done}");

    // Both sides once: 7 AD computers, 29 addresses no computer claims.
    let all = api.get(
        "/compliance/endpoints?limit=1000&status=managed_here,managed_elsewhere,no_agent,\
         unreachable,unresolved_ad,no_host",
    );
    assert_eq!(all["total"], 36, "{all}");
    for gone in ["WS-EXCLUDED", "LAB-1"] {
        assert!(
            !names(&all).contains(&gone.to_string()),
            "{gone} is out of scope"
        );
    }
    for claimed in [OURS, BARE, THEIRS, DOWN, OUTSIDE] {
        assert!(
            !names(&all).contains(&claimed.to_string()),
            "{claimed} listed twice"
        );
    }

    let ws_ours = endpoint(&all, "WS-OURS");
    assert_eq!(ws_ours["status"], "managed_here", "{ws_ours}");
    assert_eq!(ws_ours["agent_id"], ours_id.as_str());
    assert_eq!(ws_ours["server_id"], server_id.as_str());
    assert_eq!(ws_ours["addrs"], json!([OURS]));
    assert_eq!(ws_ours["dns_name"], "ws-ours.example.test");
    assert_eq!(ws_ours["container"], WORKSTATIONS);
    assert_eq!(ws_ours["os"], "Windows 11 Pro");
    assert_eq!(
        ws_ours["ad_guid"],
        dc.object_guid("WS-OURS").unwrap().to_string()
    );
    let theirs_ep = endpoint(&all, "SRV-THEIRS");
    assert_eq!(theirs_ep["status"], "managed_elsewhere");
    assert_eq!(theirs_ep["server_id"], OTHER_SERVER);
    assert_eq!(theirs_ep["container"], SERVERS);
    assert_eq!(endpoint(&all, "WS-BARE")["status"], "no_agent");
    assert_eq!(endpoint(&all, "WS-OUTSIDE")["status"], "no_agent");
    assert_eq!(endpoint(&all, IP_ONLY)["status"], "no_agent");
    assert_eq!(endpoint(&all, "WS-DOWN")["status"], "unreachable");
    let ghost = endpoint(&all, "WS-GHOST");
    assert_eq!(ghost["status"], "unresolved_ad");
    assert_eq!(ghost["addrs"], json!([]));
    let nodns = endpoint(&all, "WS-NODNS");
    assert_eq!(nodns["status"], "unresolved_ad");
    assert_eq!(nodns["disabled"], true);
    assert_eq!(ws_ours["disabled"], false);

    // Search by what AD told: names with wildcards, container, OS.
    let mut ws_names = names(&api.get("/compliance/endpoints?name=WS-*"));
    ws_names.sort();
    assert_eq!(
        ws_names,
        [
            "WS-BARE",
            "WS-DOWN",
            "WS-GHOST",
            "WS-NODNS",
            "WS-OURS",
            "WS-OUTSIDE"
        ]
    );
    assert_eq!(api.get("/compliance/endpoints?name=WS-OUR")["total"], 0);
    assert_eq!(
        names(&api.get(&format!("/compliance/endpoints?container={SERVERS}"))),
        ["SRV-THEIRS"]
    );
    let mut win10 = names(&api.get("/compliance/endpoints?os=Windows%2010*"));
    win10.sort();
    assert_eq!(win10, ["WS-BARE", "WS-NODNS"]);
    let csv = api.raw("GET", "/compliance/endpoints.csv?status=unresolved_ad");
    assert!(
        csv.contains("WS-GHOST") && csv.contains("WS-NODNS"),
        "{csv}"
    );

    // The agent of WS-OURS stops answering: the computer is still ours,
    // known by its AD GUID, not "no agent".
    ours_agent.kill();
    let id = api.ok("POST", "/compliance/assessments", None)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = wait_done(&api, &id);
    assert_eq!(again["state"], "done", "{again}");
    assert_eq!(again["counts"]["managed_here"], 1, "{again}");
    let page = api.get("/compliance/endpoints?name=WS-OURS");
    assert_eq!(page["endpoints"][0]["status"], "managed_here", "{page}");
    assert_eq!(page["endpoints"][0]["agent_id"], ours_id.as_str());

    kerberos(&net, &api, &dc, &krb_env);
}

fn krb5_conf_text() -> String {
    format!(
        "[libdefaults]\n default_realm = EXAMPLE.TEST\n dns_lookup_kdc = false\n          dns_lookup_realm = false\n rdns = false\n\n[realms]\n EXAMPLE.TEST = {{\n  kdc = {DC}\n }}\n\n\
         [domain_realm]\n .example.test = EXAMPLE.TEST\n example.test = EXAMPLE.TEST\n"
    )
}

/// GSSAPI: without a ticket the bind fails and says so; after `kinit`
/// (as an operator would, or a keytab-fed renewer) the same scope reads
/// the directory over plain ldap:// with Kerberos encryption.
#[cfg(feature = "gssapi")]
fn kerberos(net: &TestNet, api: &Api<'_>, dc: &SambaDc, env: &[(&str, &str)]) {
    use std::io::Write as _;
    let scope = json!({
        "ad": {
            "url": format!("ldap://{}", dc.host_name()),
            "bind": {"method": "gssapi"},
            "base_dns": [SERVERS],
        },
        "ip": {"enabled": false, "ranges": []},
        "agent_ports": [47760],
        "unreachable_port": 135,
    });
    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(json!({"scope": scope, "reassess": true})),
    );
    assert_eq!(status, 202, "{body}");
    let no_ticket = wait_done(api, body["assessment_id"].as_str().unwrap());
    assert_eq!(no_ticket["state"], "failed", "{no_ticket}");
    let msg = no_ticket["error"].as_str().unwrap();
    assert!(msg.contains("Kerberos ticket"), "{msg}");

    let mut kinit = net
        .scanner_cmd("kinit")
        .arg(format!("Administrator@{}", vigil_testdir::REALM))
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kinit (krb5-user) runs");
    writeln!(kinit.stdin.take().unwrap(), "{}", dc.password()).unwrap();
    let out = kinit.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kinit: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let id = api.ok("POST", "/compliance/assessments", None)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_done(api, &id);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["counts"]["managed_elsewhere"], 1, "{done}");
    assert_eq!(
        names(&api.get("/compliance/endpoints")),
        ["SRV-THEIRS"],
        "only the Servers OU, read with Kerberos"
    );
}

/// Without the `gssapi` feature, GSSAPI scopes are refused when saved.
#[cfg(not(feature = "gssapi"))]
fn kerberos(_: &TestNet, api: &Api<'_>, dc: &SambaDc, _: &[(&str, &str)]) {
    let scope = json!({
        "ad": {
            "url": format!("ldap://{}", dc.host_name()),
            "bind": {"method": "gssapi"},
            "base_dns": [SERVERS],
        },
        "agent_ports": [47760],
    });
    let (status, body) = api.call("PUT", "/compliance/scope", Some(json!({"scope": scope})));
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not available in this build"),
        "{body}"
    );
    assert_ne!(
        std::env::var("VIGIL_REQUIRE_GSSAPI").as_deref(),
        Ok("1"),
        "VIGIL_REQUIRE_GSSAPI=1: run with --features vigil/gssapi"
    );
}
