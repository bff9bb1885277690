//! CSV injection: a host on a scanned network answers the identify probe
//! with spreadsheet formulas for its agent id, server id and version. They
//! reach the compliance CSV export as text a spreadsheet will not run: each
//! such cell starts with `'`.

use crate::common::can_build_networks;
use crate::common::compliance::{owner_api, start_server, wait_done};
use crate::identify::{fake_agent, PORT};
use serde_json::json;
use vigil_proto::identify::IdentifyReply;
use vigil_testnet::{NetSpec, TestNet};

const HOSTILE: &str = "198.51.100.40";

#[test]
fn formulas_from_a_scanned_host_are_inert_in_the_csv_export() {
    if !can_build_networks() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).unwrap();
    net.add_host(HOSTILE.parse().unwrap()).unwrap();
    let _server = start_server(&net, dir);
    let api = owner_api(&net);
    let formulas = IdentifyReply {
        agent_id: "=HYPERLINK(\"http://evil.example/\",\"open\")".into(),
        server_id: "+cmd|' /C calc'!A0".into(),
        version: "@SUM(1+1)".into(),
        mac: None,
        // A host name may start with '-' and names the endpoint.
        hostname: Some("-2-3".into()),
    };
    fake_agent(&net, HOSTILE, formulas.to_line());

    let (status, body) = api.call(
        "PUT",
        "/compliance/scope",
        Some(
            json!({"scope": {"ip": {"enabled": true, "ranges": [HOSTILE]},
                              "agent_ports": [PORT]},
                    "reassess": true}),
        ),
    );
    assert_eq!(status, 202, "{body}");
    let done = wait_done(&api, body["assessment_id"].as_str().unwrap());
    assert_eq!(done["counts"]["managed_elsewhere"], 1, "{done}");

    let csv = api.raw("GET", "/compliance/endpoints.csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().expect("one endpoint").unwrap();
    let cell = |name: &str| {
        let i = header.iter().position(|h| h == name).unwrap();
        row.get(i).unwrap().to_string()
    };
    assert_eq!(cell("agent_id"), format!("'{}", formulas.agent_id));
    assert_eq!(cell("server_id"), format!("'{}", formulas.server_id));
    assert_eq!(cell("agent_version"), format!("'{}", formulas.version));
    assert_eq!(cell("name"), "'-2-3");
    assert_eq!(cell("name_source"), "agent");
    // Every cell of the export: none starts like a formula.
    for record in csv::Reader::from_reader(csv.as_bytes()).records() {
        for value in record.unwrap().iter() {
            assert!(
                !value.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{value:?} in {csv}"
            );
        }
    }
}
