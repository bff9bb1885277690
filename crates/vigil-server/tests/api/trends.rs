//! Exposure trends: results and unauthorized-port alerts add up per day in
//! the API (`/trends`, `/agents/{id}/trends`) and the console's charts;
//! another tenant's agent is not found; a bad window says what to write.

use crate::alert_endings::upload;
use crate::common::{wait_tasks, Server};
use crate::console_devices::Browser;
use reqwest::Method;
use serde_json::json;
use vigil_core::{AccountKind, PortList};

api_tests!(start = super::start: trends_count_open_ports_and_unauthorized_alerts);

async fn start(db: vigil_testdb::TestDb) -> Server {
    Server::start_with(db, |cfg| {
        cfg.sweep_ports = PortList::parse("8000-8100").expect("sweep");
    })
    .await
}

async fn trends_count_open_ports_and_unauthorized_alerts(s: Server) {
    let t = s.tenant("Org", AccountKind::Organization).await;
    let other = s.tenant("Other", AccountKind::Organization).await;
    let owner = t.owner.as_str();
    let (agent, credential) = s.enroll_agent(owner, "office", "extended").await;
    let policy = json!({"enabled": true, "authorized": "22", "monitored": "",
                        "targets": ["agent_host"], "interval": 60});
    s.send(
        Method::PUT,
        &format!("/agents/{agent}/policy"),
        Some(owner),
        Some(&policy),
    )
    .await
    .ok(200);
    // Nothing yet: 30 days, none scanned.
    let empty = s.get_ok("/trends", owner).await;
    let days = empty["days"].as_array().expect("days");
    assert_eq!(days.len(), 30, "{empty}");
    assert!(days.iter().all(|d| d["open_ports"].is_null()), "{empty}");

    // One scan: 22 (authorized), 8080 and 8090 open: 3 open, 2 unauthorized.
    let task = wait_tasks(&s, &agent, &credential, 1).await[0].clone();
    s.upload(
        &agent,
        &credential,
        &upload(&task, "t-1", &[22, 8080, 8090], &[]),
    )
    .await
    .ok(200);
    for path in [
        "/trends".to_string(),
        format!("/agents/{agent}/trends?window=7d"),
    ] {
        let trend = s.get_ok(&path, owner).await;
        let today = trend["days"]
            .as_array()
            .and_then(|d| d.last())
            .expect("today");
        assert_eq!(today["open_ports"], 3, "{path}: {trend}");
        assert_eq!(today["unauthorized"], 2, "{path}: {trend}");
    }
    assert_eq!(
        s.get_ok(&format!("/agents/{agent}/trends?window=90d"), owner)
            .await["days"]
            .as_array()
            .map(Vec::len),
        Some(90)
    );
    s.get(&format!("/agents/{agent}/trends?window=1y"), owner)
        .await
        .assert_client_error(&["1y", "7d, 30d or 90d"]);
    s.get(&format!("/agents/{agent}/trends"), &other.owner)
        .await
        .assert_error(404, &[]);
    assert!(
        s.get_ok("/trends", &other.owner).await["days"]
            .as_array()
            .expect("days")
            .iter()
            .all(|d| d["open_ports"].is_null() && d["unauthorized"] == 0),
        "another tenant sees none of it"
    );

    // The console draws both, with the numbers under the chart.
    let email = s.get_ok("/me", owner).await["user"]["email"]
        .as_str()
        .expect("email")
        .to_string();
    let browser = Browser::login(&s, &email).await;
    for path in ["/".to_string(), format!("/agents/{agent}")] {
        let page = browser.get(&path).await.page();
        assert!(page.contains("Exposure, last 30 days"), "{path}");
        assert!(
            page.contains("today 3 open ports, 2 unauthorized-port alerts"),
            "{path}: {page}"
        );
        assert!(page.contains("<svg class=\"trend\""), "{path}");
    }
    s.shutdown().await;
}
