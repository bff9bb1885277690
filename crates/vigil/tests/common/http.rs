//! Raw HTTP/1.1 to the server's REST listener (the REST API and the web
//! console), from inside the scanner namespace: status, headers and body as
//! a client sees them, and the console's form logins and CSRF fields.
#![allow(dead_code)]

use super::compliance::PASSWORD;
use super::server::{Ns, API};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A response as the client saw it, and how long it took.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub took: Duration,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn retry_after(&self) -> u64 {
        self.header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After in a {} answer", self.status))
    }

    /// The value of a cookie the answer sets.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }
}

/// One HTTP/1.1 request to the server's REST listener, from inside the
/// scanner namespace (so from 127.0.0.1).
pub fn http(
    net: &dyn Ns,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let addr: SocketAddr = API.parse().expect("addr");
    let started = Instant::now();
    let mut stream = net.connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let took = started.elapsed();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
        took,
    }
}

/// The console's login form: its CSRF token and the cookie it is bound to.
pub fn console_form(net: &dyn Ns) -> (String, String) {
    let page = http(net, "GET", "/login", &[], "");
    assert_eq!(page.status, 200);
    let nonce = page.cookie("vigil_login").expect("login cookie");
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_string();
    (nonce, token)
}

/// `application/x-www-form-urlencoded` of `fields`.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(n, v)| format!("{}={}", enc(n), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn field(page: &str, name: &str) -> String {
    page.split(&format!("name=\"{name}\" value=\""))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        .to_string()
}

/// A console request of a logged-in browser.
pub fn console(
    net: &dyn Ns,
    session: &str,
    method: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Answer {
    let cookie = format!("vigil_session={session}");
    let body = form_body(form);
    http(
        net,
        method,
        path,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        &body,
    )
}

/// Posts the console's login form (`form` from [`console_form`]).
pub fn console_login(net: &dyn Ns, form: &(String, String), email: &str, password: &str) -> Answer {
    let body = form_body(&[("csrf", &form.1), ("email", email), ("password", password)]);
    let cookie = format!("vigil_login={}", form.0);
    http(
        net,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &cookie),
        ],
        &body,
    )
}

/// The console session of `email` (a user without two-factor login).
pub fn console_session(net: &dyn Ns, email: &str) -> String {
    let ok = console_login(net, &console_form(net), email, PASSWORD);
    assert_eq!(ok.status, 303, "{}", ok.body);
    ok.cookie("vigil_session").expect("session cookie")
}
