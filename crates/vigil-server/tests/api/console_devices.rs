//! The console's device pages over HTTP, as a browser without JavaScript
//! uses them: the list's filters (with their counts) and links, a device's
//! page (what the sweeps found, its ports judged under its policy, its
//! history and alerts), and its policy form (CSRF, bad input refused with
//! the reason and the typed values, viewers refused). The location is
//! seeded through the agent API like a real agent's sweeps
//! (`devices::Lan`).

use crate::common::{Server, PASSWORD};
use crate::devices::{lan_only_policy, two_sweeps, Lan, LAPTOP_MAC, PI_MAC, PRINTER_MAC};
use reqwest::{redirect, Client, Method};
use serde_json::{json, Value};
use vigil_core::AccountKind;
use vigil_store::Role;

api_tests!(device_pages_filter_show_and_change_devices);

/// A console session of one user: its cookie and the pages' CSRF token.
pub(crate) struct Browser<'s> {
    s: &'s Server,
    http: Client,
    cookie: String,
}

/// A page as the browser got it.
#[derive(Debug)]
pub(crate) struct Got {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

impl Got {
    pub(crate) fn page(self) -> String {
        assert_eq!(self.status, 200, "{self:?}");
        self.body
    }
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

/// The value of the first `name` field of a page.
pub(crate) fn field(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        .to_string()
}

impl<'s> Browser<'s> {
    /// Logs `email` in through the login form.
    pub(crate) async fn login(s: &'s Server, email: &str) -> Browser<'s> {
        let http = Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .expect("client");
        let form = http
            .get(s.console_url("/login"))
            .send()
            .await
            .expect("login page");
        let nonce = set_cookie(&form, "vigil_login").expect("login cookie");
        let csrf = field(&form.text().await.expect("body"), "csrf");
        let done = http
            .post(s.console_url("/login"))
            .header(reqwest::header::COOKIE, format!("vigil_login={nonce}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .expect("login");
        assert_eq!(done.status().as_u16(), 303, "login of {email}");
        let session = set_cookie(&done, "vigil_session").expect("session cookie");
        Browser {
            s,
            http,
            cookie: format!("vigil_session={session}"),
        }
    }

    async fn send(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Got {
        let mut req = self
            .http
            .request(method.clone(), self.s.console_url(path))
            .header(reqwest::header::COOKIE, &self.cookie);
        if method == Method::POST {
            req = req.form(form);
        }
        let resp = req.send().await.expect("console request");
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.expect("body");
        Got {
            status,
            location,
            body,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Got {
        self.send(Method::GET, path, &[]).await
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Got {
        self.send(Method::POST, path, form).await
    }
}

/// A form: the CSRF token, then `fields`.
pub(crate) fn with_csrf<'a>(
    csrf: &'a str,
    fields: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    form
}

/// The device ids a list page links to, in page order.
fn linked(page: &str, agent: &str) -> Vec<String> {
    let prefix = format!("href=\"/agents/{agent}/devices/");
    page.split(&prefix)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

async fn device_pages_filter_show_and_change_devices(s: Server) {
    let t = s.tenant("Acme", AccountKind::Organization).await;
    let (owner_email, viewer_email) = ("owner@acme.example", "viewer@acme.example");
    for (email, role) in [(owner_email, Role::Owner), (viewer_email, Role::Viewer)] {
        s.store()
            .create_user(t.id, email, PASSWORD, role)
            .await
            .expect("user");
    }
    let policy = lan_only_policy(json!([{"name": "printer", "authorized": "631"}]));
    let mut lan = Lan::start(&s, &t, &policy).await;
    two_sweeps(&mut lan).await;
    let agent = lan.agent.clone();
    let printer = lan.device_id("198.51.100.77").await;
    let pi = lan.device_id("198.51.100.20").await;
    let laptop = lan.device_id("198.51.100.30").await;
    let owner = Browser::login(&s, owner_email).await;
    let viewer = Browser::login(&s, viewer_email).await;

    // The list: every row links to its device; the filters list what the
    // REST API's would, and the quick filters count them.
    let list = |q: &str| format!("/agents/{agent}/devices{q}");
    let all = owner.get(&list("")).await.page();
    let mut everyone = linked(&all, &agent);
    everyone.sort();
    let mut want = vec![printer.clone(), pi.clone(), laptop.clone()];
    want.sort();
    assert_eq!(everyone, want, "{all}");
    for counted in [
        "All (3)",
        "New (1)",
        "Unreviewed (3)",
        "With unauthorized ports (2)",
        "Present (2)",
        "Gone (1)",
    ] {
        assert!(all.contains(counted), "{counted:?} in {all}");
    }
    for (q, want) in [
        ("?review=new", vec![&laptop]),
        ("?review=unreviewed&show=gone", vec![&pi]),
        ("?ports=unauthorized&vendor=", vec![&laptop, &printer]),
        ("?show=present&review=new&ports=unauthorized", vec![&laptop]),
    ] {
        let page = owner.get(&list(q)).await.page();
        let mut shown = linked(&page, &agent);
        shown.sort();
        let mut want: Vec<String> = want.into_iter().cloned().collect();
        want.sort();
        assert_eq!(shown, want, "{q}");
    }
    let apple = vigil_oui::vendor([0x00, 0x1b, 0x63, 0, 0, 0x30]).expect("a vendor");
    let needle = apple.split_whitespace().next().unwrap().to_lowercase();
    let by_vendor = owner.get(&list(&format!("?vendor={needle}"))).await.page();
    assert_eq!(linked(&by_vendor, &agent), vec![laptop.clone()]);
    assert!(
        owner
            .get(&list("?review=approved"))
            .await
            .page()
            .contains("No devices."),
        "nobody approved anything yet"
    );

    // The printer's page: what the sweeps found, its ports under its
    // policy (unreviewed: all unauthorized), its history.
    let page_of = |device: &str| format!("/agents/{agent}/devices/{device}");
    let page = owner.get(&page_of(&printer)).await.page();
    let hp = vigil_oui::vendor([0x3c, 0xd9, 0x2b, 0, 0, 0x10]).expect("a vendor");
    for needle in [
        "198.51.100.77",
        PRINTER_MAC,
        hp,
        "badge good\">present",
        "9100/tcp",
        "Not reviewed: every open port is unauthorized",
        "Moved to another address",
        "moved from 198.51.100.10 to 198.51.100.77",
        "Joined the network",
        "Save device policy",
    ] {
        assert!(page.contains(needle), "{needle:?} in {page}");
    }
    assert_eq!(
        page.matches("badge bad\">unauthorized").count(),
        2,
        "{page}"
    );
    // The Pi is gone; the laptop has its new-device alert, linked.
    let pi_page = owner.get(&page_of(&pi)).await.page();
    assert!(pi_page.contains("badge warn\">gone"), "{pi_page}");
    assert!(pi_page.contains(PI_MAC), "{pi_page}");
    assert!(pi_page.contains("Left the network"), "{pi_page}");
    let laptop_page = owner.get(&page_of(&laptop)).await.page();
    for needle in [
        LAPTOP_MAC,
        "laptop.local",
        "(from mDNS)",
        "badge warn\">new",
        "on the network",
        "href=\"/alerts/",
    ] {
        assert!(laptop_page.contains(needle), "{needle:?} in {laptop_page}");
    }

    // The policy form, as the REST API's PATCH applies it.
    let csrf = field(&page, "csrf");
    let save = format!("{}/policy", page_of(&printer));
    let rest = format!("/agents/{agent}/devices/{printer}");
    let before = s.get_ok(&rest, &t.owner).await;
    let refused: [(&[(&str, &str)], &str); 3] = [
        (
            &[("authorized_from", "own"), ("authorized", "631,99999")],
            "Authorized ports",
        ),
        (
            &[("authorized", "631")],
            "Choose where its authorized ports come from",
        ),
        (
            &[("authorized_from", "kind"), ("kind", &"k".repeat(65))],
            "1 to 64 characters",
        ),
    ];
    for (fields, needle) in refused {
        let got = owner.post(&save, &with_csrf(&csrf, fields)).await;
        assert_eq!(got.status, 422, "{fields:?}: {got:?}");
        assert!(got.body.contains(needle), "{needle:?} in {}", got.body);
        if let Some((_, typed)) = fields.iter().find(|(n, _)| *n == "authorized") {
            assert_eq!(
                field(&got.body, "authorized"),
                *typed,
                "the typed value stays"
            );
        }
    }
    assert_eq!(s.get_ok(&rest, &t.owner).await, before, "nothing changed");
    // Without the session's CSRF token, or as a viewer: refused.
    let good = [
        ("approved", "on"),
        ("kind", "printer"),
        ("authorized_from", "own"),
        ("authorized", "631, 9100"),
        ("monitored", "on"),
    ];
    let forged = "0".repeat(64);
    assert_eq!(
        owner.post(&save, &with_csrf(&forged, &good)).await.status,
        403
    );
    let viewer_page = viewer.get(&page_of(&printer)).await.page();
    assert!(
        viewer_page.contains("Viewers may only read"),
        "{viewer_page}"
    );
    assert!(!viewer_page.contains("Save device policy"), "{viewer_page}");
    let viewer_csrf = field(&viewer_page, "csrf");
    assert_eq!(
        viewer
            .post(&save, &with_csrf(&viewer_csrf, &good))
            .await
            .status,
        403
    );
    assert_eq!(s.get_ok(&rest, &t.owner).await, before, "nothing changed");
    // Another tenant's agent, a device that does not exist: not found.
    let nobody = "8d6c0c1e-0000-4000-8000-000000000001";
    let form = with_csrf(&csrf, &good);
    let missing = owner
        .post(&format!("/agents/{agent}/devices/{nobody}/policy"), &form)
        .await;
    assert_eq!(missing.status, 404, "{missing:?}");
    assert_eq!(owner.get(&page_of(nobody)).await.status, 404);
    assert_eq!(
        owner
            .get(&format!("/agents/{agent}/devices/x"))
            .await
            .status,
        404
    );
    let other = s.tenant("Other", AccountKind::Organization).await;
    s.store()
        .create_user(other.id, "owner@other.example", PASSWORD, Role::Owner)
        .await
        .expect("user");
    let stranger = Browser::login(&s, "owner@other.example").await;
    assert_eq!(stranger.get(&page_of(&printer)).await.status, 404);
    let stranger_csrf = field(&stranger.get("/agents").await.page(), "csrf");
    assert_eq!(
        stranger
            .post(&save, &with_csrf(&stranger_csrf, &good))
            .await
            .status,
        404
    );
    assert_eq!(s.get_ok(&rest, &t.owner).await, before, "nothing changed");

    // Saved: the REST API sees it, and the page judges 9100 authorized.
    let saved = owner.post(&save, &form).await;
    assert_eq!(saved.status, 303, "{saved:?}");
    assert_eq!(
        saved.location.as_deref(),
        Some(format!("{}?done=saved", page_of(&printer)).as_str())
    );
    let after: Value = s.get_ok(&rest, &t.owner).await;
    assert_eq!(
        (
            &after["approved"],
            &after["kind"],
            &after["authorized"],
            &after["monitored"]
        ),
        (
            &json!(true),
            &json!("printer"),
            &json!("631,9100"),
            &json!(true)
        )
    );
    let page = owner
        .get(&format!("{}?done=saved", page_of(&printer)))
        .await
        .page();
    assert!(page.contains("Device policy saved."), "{page}");
    assert!(page.contains("Its own list: 631,9100."), "{page}");
    assert_eq!(page.matches("badge good\">authorized").count(), 2, "{page}");
    assert!(!page.contains("badge bad\">unauthorized"), "{page}");
    // Back to its kind's ports: 9100 is unauthorized again.
    let by_kind = with_csrf(
        &csrf,
        &[
            ("approved", "on"),
            ("kind", "printer"),
            ("authorized_from", "kind"),
        ],
    );
    assert_eq!(owner.post(&save, &by_kind).await.status, 303);
    assert_eq!(s.get_ok(&rest, &t.owner).await["authorized"], Value::Null);
    let page = owner.get(&page_of(&printer)).await.page();
    assert!(page.contains("Its kind “printer”: 631."), "{page}");
    assert_eq!(
        page.matches("badge bad\">unauthorized").count(),
        1,
        "{page}"
    );

    // *Approve device* from the laptop's page: back to the page, no longer
    // new, and its new-device alert is over.
    let approve = owner
        .post(
            &format!("{}/approve", page_of(&laptop)),
            &[("csrf", csrf.as_str()), ("from", "device")],
        )
        .await;
    assert_eq!(approve.status, 303, "{approve:?}");
    assert_eq!(
        approve.location.as_deref(),
        Some(format!("{}?done=approved", page_of(&laptop)).as_str())
    );
    let laptop_page = owner.get(&page_of(&laptop)).await.page();
    assert!(!laptop_page.contains("badge warn\">new"), "{laptop_page}");
    assert!(
        laptop_page.contains("badge good\">resolved"),
        "{laptop_page}"
    );
    assert!(linked(&owner.get(&list("?review=new")).await.page(), &agent).is_empty());
    let approved = owner.get(&list("?review=approved")).await.page();
    let mut shown = linked(&approved, &agent);
    shown.sort();
    let mut want = vec![printer.clone(), laptop.clone()];
    want.sort();
    assert_eq!(shown, want);
    s.shutdown().await;
}
