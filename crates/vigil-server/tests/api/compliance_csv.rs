//! `GET /compliance/endpoints.csv`: spreadsheet-safe cells (no formula
//! injection from endpoint names) and exports longer than one store page,
//! complete and in the list's order.

use crate::common::Server;
use vigil_core::compliance::{Endpoint, EndpointStatus};
use vigil_core::AccountKind;
use vigil_store::{now_unix, AccountId, AssessmentState, AssessmentTrigger};

api_tests!(
    csv_cells_that_start_like_formulas_are_quoted,
    csv_exports_of_many_pages_are_complete_and_in_order,
);

/// A finished assessment of `account` with `endpoints`.
async fn assessment(s: &Server, account: AccountId, endpoints: &[Endpoint]) {
    let store = s.store();
    let id = store
        .start_assessment(
            account,
            true,
            AssessmentTrigger::Manual,
            endpoints.len() as u64,
            now_unix(),
        )
        .await
        .expect("start assessment");
    assert!(store
        .put_endpoints(account, id, endpoints)
        .await
        .expect("put endpoints"));
    store
        .finish_assessment(account, id, AssessmentState::Done, None, now_unix())
        .await
        .expect("finish assessment");
}

/// The CSV of `path` (a 200 labelled CSV): the header and the rows.
async fn csv(s: &Server, path: &str, token: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let reply = s.get(path, token).await;
    assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
    assert!(
        reply.content_type.starts_with("text/csv"),
        "not CSV: {reply:?}"
    );
    let mut reader = csv::Reader::from_reader(reply.text.as_bytes());
    let header = reader
        .headers()
        .expect("CSV header")
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("CSV row").iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

async fn csv_cells_that_start_like_formulas_are_quoted(s: Server) {
    let org = s.tenant("Acme", AccountKind::Organization).await;
    let names = [
        "=1+1",
        "@SUM(A1)",
        "+cmd|' /C calc'!A0",
        "-2",
        "\tx",
        "\rx",
        "web-01",
        "a=1",
    ];
    let endpoints: Vec<Endpoint> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut e = Endpoint::new(*name, EndpointStatus::NoAgent);
            e.addrs = vec![format!("192.0.2.{}", i + 1).parse().unwrap()];
            e.os = Some("=HYPERLINK(\"http://evil.example\",\"x\")".into());
            e
        })
        .collect();
    assessment(&s, org.id, &endpoints).await;

    let (header, rows) = csv(&s, "/compliance/endpoints.csv", &org.owner).await;
    assert_eq!(header[0], "name");
    assert_eq!(header[4], "os");
    let mut got: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    got.sort_unstable();
    let mut want = vec![
        "'=1+1",
        "'@SUM(A1)",
        "'+cmd|' /C calc'!A0",
        "'-2",
        "'\tx",
        "'\rx",
        "web-01",
        "a=1",
    ];
    want.sort_unstable();
    assert_eq!(got, want);
    for row in &rows {
        assert_eq!(
            row[4], "'=HYPERLINK(\"http://evil.example\",\"x\")",
            "{row:?}"
        );
        assert!(row[2].starts_with("192.0.2."), "{row:?}");
        assert_eq!(row[3], "no_agent", "{row:?}");
    }

    // The search still applies (name patterns match the stored name).
    let (_, rows) = csv(&s, "/compliance/endpoints.csv?name=%3D1%2B1", &org.owner).await;
    let got: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(got, ["'=1+1"]);
    s.shutdown().await;
}

async fn csv_exports_of_many_pages_are_complete_and_in_order(s: Server) {
    let org = s.tenant("Acme", AccountKind::Organization).await;
    // Stored in reverse, so the export's order is the list's, not storage's.
    let endpoints: Vec<Endpoint> = (0u32..2500)
        .rev()
        .map(|i| {
            let status = if i % 2 == 0 {
                EndpointStatus::NoAgent
            } else {
                EndpointStatus::Unreachable
            };
            let mut e = Endpoint::new(format!("host-{i:04}"), status);
            e.addrs = vec![std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                0x0a00_0000 | i,
            ))];
            e
        })
        .collect();
    assessment(&s, org.id, &endpoints).await;
    let names = |rows: &[Vec<String>]| rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    let expect = |range: &mut dyn Iterator<Item = u32>| {
        range.map(|i| format!("host-{i:04}")).collect::<Vec<_>>()
    };

    let (header, rows) = csv(&s, "/compliance/endpoints.csv", &org.owner).await;
    assert_eq!(header.len(), 14);
    assert_eq!(names(&rows), expect(&mut (0..2500)));
    assert_eq!(rows[1234][2], "10.0.4.210");
    assert_eq!(rows[1234][3], "no_agent");

    // A filter over several pages.
    let (_, rows) = csv(
        &s,
        "/compliance/endpoints.csv?status=unreachable",
        &org.owner,
    )
    .await;
    assert_eq!(names(&rows), expect(&mut (1..2500).step_by(2)));

    // Offset and limit, across a page boundary.
    let (_, rows) = csv(
        &s,
        "/compliance/endpoints.csv?offset=500&limit=1200",
        &org.owner,
    )
    .await;
    assert_eq!(names(&rows), expect(&mut (500..1700)));
    let (_, rows) = csv(&s, "/compliance/endpoints.csv?offset=2499", &org.owner).await;
    assert_eq!(names(&rows), ["host-2499"]);
    let (header, rows) = csv(&s, "/compliance/endpoints.csv?offset=9999", &org.owner).await;
    assert_eq!((header.len(), rows.len()), (14, 0));

    // A bad search is still an error answer, not a broken download.
    s.get("/compliance/endpoints.csv?limit=0", &org.owner)
        .await
        .assert_client_error(&["limit"]);
    s.get("/compliance/endpoints.csv?status=bogus", &org.owner)
        .await
        .assert_client_error(&["status"]);
    s.shutdown().await;
}
