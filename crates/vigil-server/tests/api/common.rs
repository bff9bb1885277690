//! A real server on loopback, accounts made through the store, and a
//! small client that keeps every answer (status, content type, text) for
//! the assertions.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tempfile::TempDir;
use vigil_core::{AccountKind, PortList};
use vigil_server::{Running, ServerConfig};
use vigil_store::{AccountId, Role, Store};
use vigil_testdb::TestDb;

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A started server and clients for both of its listeners.
pub struct Server {
    running: Running,
    /// `http://127.0.0.1:<port>/api/v1`
    api: String,
    /// `https://127.0.0.1:<port>`
    agent: String,
    http: Client,
    agent_http: Client,
    _dir: TempDir,
    /// Outlives `running`: dropping it may remove the database.
    _db: TestDb,
}

/// An account and its first owner's API token.
pub struct Tenant {
    pub id: AccountId,
    pub owner: String,
}

/// An answer, read completely.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics (showing the answer) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {self:?}"))
    }

    /// Asserts a success status and returns the JSON body.
    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {self:?}");
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// The message of an `{"error": "..."}` body; panics when the body is
    /// not one (an error answer must tell the client what went wrong).
    pub fn error_message(&self) -> String {
        let body: Value = serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!("error answer is not JSON ({e}), expected {{\"error\": …}}: {self:?}")
        });
        let msg = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("error answer has no \"error\" string: {self:?}"));
        assert!(!msg.trim().is_empty(), "empty error message: {self:?}");
        assert!(
            self.content_type.starts_with("application/json"),
            "error answer is not labelled JSON: {self:?}"
        );
        msg.to_string()
    }

    /// Asserts `status` and an error body whose message contains every
    /// one of `needles` (case-insensitive); returns the message.
    pub fn assert_error(&self, status: u16, needles: &[&str]) -> String {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {self:?}");
        let msg = self.error_message();
        let lower = msg.to_lowercase();
        for needle in needles {
            assert!(
                lower.contains(&needle.to_lowercase()),
                "error message {msg:?} should mention {needle:?} ({self:?})"
            );
        }
        msg
    }

    /// Asserts a 4xx status (never a 5xx, never a success) and an error
    /// body mentioning every one of `needles`; returns the message.
    pub fn assert_client_error(&self, needles: &[&str]) -> String {
        assert!(
            self.status.is_client_error(),
            "expected a 4xx answer: {self:?}"
        );
        self.assert_error(self.status.as_u16(), needles)
    }
}

impl Server {
    /// Starts a server on two ephemeral loopback ports with `db` (a fresh
    /// database from `vigil-testdb`, with cheap password hashing).
    pub async fn start(db: TestDb) -> Server {
        Server::start_with(db, |_| {}).await
    }

    /// [`Server::start`] with the configuration changed by `configure`.
    pub async fn start_with(db: TestDb, configure: impl FnOnce(&mut ServerConfig)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = db.store.clone();
        Server::start_in(db, dir, store, configure).await
    }

    /// Stops the server (as `vigil server` does on SIGTERM) and starts a
    /// new one on the same database and data directory (new ports), with
    /// the configuration changed by `configure`.
    pub async fn restart_with(self, configure: impl FnOnce(&mut ServerConfig)) -> Server {
        let Server {
            running, _dir, _db, ..
        } = self;
        // The shutdown closed its store: the new server opens its own.
        running.shutdown().await;
        let store = Store::connect_with(&_db.url, vigil_testdb::options())
            .await
            .expect("the database opens again");
        Server::start_in(_db, _dir, store, configure).await
    }

    async fn start_in(
        db: TestDb,
        dir: TempDir,
        store: Store,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Server {
        let mut cfg = ServerConfig::new(dir.path(), db.url.clone());
        cfg.api_listen = ([127, 0, 0, 1], 0).into();
        cfg.agent_listen = ([127, 0, 0, 1], 0).into();
        // Should a scan ever be scheduled, keep it to one port.
        cfg.sweep_ports = PortList::parse("1").expect("port list");
        // Every peer of these tests (LDAP listeners, webhooks, peers) is on
        // loopback, which the default network policy refuses.
        let mut policy = vigil_core::netpolicy::NetPolicy::default();
        policy
            .add(vigil_core::netpolicy::Verdict::Allow, "all=loopback")
            .expect("rule");
        cfg.net_policy = std::sync::Arc::new(policy);
        configure(&mut cfg);
        let running = vigil_server::start_with_store(cfg, store)
            .await
            .expect("server starts");
        let api = format!("http://{}/api/v1", running.api_addr);
        let agent = format!("https://{}", running.agent_addr);
        let http = Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        // The agent API's certificate is self-signed; real agents pin it.
        let agent_http = Client::builder()
            .timeout(Duration::from_secs(10))
            .danger_accept_invalid_certs(true)
            .build()
            .expect("HTTPS client");
        Server {
            running,
            api,
            agent,
            http,
            agent_http,
            _dir: dir,
            _db: db,
        }
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }

    pub fn store(&self) -> &Store {
        &self.running.store
    }

    /// A new account with one owner, logged in.
    pub async fn tenant(&self, name: &str, kind: AccountKind) -> Tenant {
        let account = self
            .store()
            .create_account(name, kind)
            .await
            .expect("create account");
        let owner = self.user(account.id, Role::Owner).await;
        Tenant {
            id: account.id,
            owner,
        }
    }

    /// A new user of `account` with `role`, logged in through the API;
    /// returns the API token.
    pub async fn user(&self, account: AccountId, role: Role) -> String {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4());
        self.store()
            .create_user(account, &email, PASSWORD, role)
            .await
            .expect("create user");
        self.login(&email, PASSWORD).await
    }

    /// `POST /login`; returns the token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .send(
                Method::POST,
                "/login",
                None,
                Some(&json!({"email": email, "password": password})),
            )
            .await;
        let body = reply.ok(201);
        body["token"]
            .as_str()
            .unwrap_or_else(|| panic!("login answer without token: {reply:?}"))
            .to_string()
    }

    /// A REST call: `path` is below `/api/v1`, `body` is sent as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.api));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        read(req).await
    }

    /// A REST call with a raw body and content type (`None`: no header).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        read(req).await
    }

    /// `GET` with a raw `Authorization` header value.
    pub async fn get_authorized_as(&self, path: &str, authorization: &str) -> Reply {
        let req = self
            .http
            .get(format!("{}{path}", self.api))
            .header(reqwest::header::AUTHORIZATION, authorization);
        read(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// `GET` that must succeed; the JSON body.
    pub async fn get_ok(&self, path: &str, token: &str) -> Value {
        self.get(path, token).await.ok(200)
    }

    /// `POST /enrollments` for an agent named `name` on `plan`; the token.
    pub async fn enrollment(&self, token: &str, name: &str, plan: &str) -> String {
        let reply = self
            .send(
                Method::POST,
                "/enrollments",
                Some(token),
                Some(&json!({"name": name, "plan": plan})),
            )
            .await;
        reply.ok(201)["token"]
            .as_str()
            .expect("enrollment token")
            .to_string()
    }

    /// `GET` on the agent API (`path` from `/agent/v1/…`).
    pub async fn agent_get(&self, path: &str) -> Reply {
        read(self.agent_http.get(format!("{}{path}", self.agent))).await
    }

    /// What agents pin: `sha256:<hex>`.
    pub fn pin(&self) -> String {
        self.running.pin.to_string()
    }

    /// `POST /agent/v1/enroll` with `facts`.
    pub async fn redeem(&self, enrollment: &str, facts: &Value) -> Reply {
        let req = self
            .agent_http
            .post(format!("{}/agent/v1/enroll", self.agent))
            .json(&json!({"token": enrollment, "facts": facts}));
        read(req).await
    }

    /// Enrolls an agent for real (enrollment token, then the agent API);
    /// returns its id and credential.
    pub async fn enroll_agent(&self, token: &str, name: &str, plan: &str) -> (String, String) {
        let enrollment = self.enrollment(token, name, plan).await;
        let reply = self.redeem(&enrollment, &facts("h", "o", "v")).await;
        let body = reply.ok(200);
        let id = body["agent_id"].as_str().expect("agent_id").to_string();
        let credential = body["credential"].as_str().expect("credential").to_string();
        (id, credential)
    }

    /// `POST /agent/v1/heartbeat` with a raw `Authorization` value.
    pub async fn heartbeat_as(&self, authorization: Option<&str>, body: &Value) -> Reply {
        let mut req = self
            .agent_http
            .post(format!("{}/agent/v1/heartbeat", self.agent))
            .json(body);
        if let Some(auth) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        read(req).await
    }

    /// The URL of a console page (outside `/api/v1`).
    pub fn console_url(&self, path: &str) -> String {
        let base = self.api.trim_end_matches(vigil_proto::api::API_PREFIX);
        format!("{base}{path}")
    }

    /// `GET` of a console page (outside `/api/v1`) with extra headers.
    pub async fn console_get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let base = self.api.trim_end_matches(vigil_proto::api::API_PREFIX);
        let mut req = self.http.get(format!("{base}{path}"));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("console request")
    }

    /// `POST /agent/v1/results` as agent `id` with `credential`.
    pub async fn upload(&self, id: &str, credential: &str, body: &Value) -> Reply {
        self.agent_post(id, credential, "/agent/v1/results", body)
            .await
    }

    /// `POST` of `body` to the agent API's `path` as agent `id` with `credential`.
    pub async fn agent_post(&self, id: &str, credential: &str, path: &str, body: &Value) -> Reply {
        let req = self
            .agent_http
            .post(format!("{}{path}", self.agent))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {id}:{credential}"),
            )
            .json(body);
        read(req).await
    }

    /// `POST /agent/v1/heartbeat` as agent `id` with `credential`.
    pub async fn heartbeat(&self, id: &str, credential: &str, facts: &Value) -> Reply {
        let auth = format!("Bearer {id}:{credential}");
        self.heartbeat_as(Some(&auth), &json!({"facts": facts, "spooled": 0}))
            .await
    }
}

/// Heartbeats as agent `id` until the server hands out at least `n` tasks
/// (the scheduler creates them on its next round); fails after 30 s.
pub async fn wait_tasks(s: &Server, id: &str, credential: &str, n: usize) -> Vec<Value> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = s
            .heartbeat(id, credential, &facts("h", "o", "v"))
            .await
            .ok(200);
        let tasks = reply["tasks"].as_array().cloned().unwrap_or_default();
        if tasks.len() >= n {
            return tasks;
        }
        assert!(
            std::time::Instant::now() < until,
            "{n} tasks never came: {reply}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Agent facts as JSON.
pub fn facts(hostname: &str, os: &str, version: &str) -> Value {
    json!({"hostname": hostname, "os": os, "version": version})
}

/// A valid policy scanning the agent's own host (the agent runs that scan,
/// so nothing is scanned during a test).
pub fn policy(enabled: bool, authorized: &str, interval: u32) -> Value {
    json!({
        "enabled": enabled,
        "authorized": authorized,
        "monitored": "443",
        "targets": ["agent_host"],
        "interval": interval,
    })
}

/// The `id` strings of a JSON array of records.
pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array: {list}"))
        .iter()
        .map(|item| {
            item["id"]
                .as_str()
                .unwrap_or_else(|| panic!("record without id: {item}"))
                .to_string()
        })
        .collect()
}

async fn read(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("request reaches the server");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.expect("answer body");
    Reply {
        status,
        content_type,
        text,
    }
}

/// Records of one account, made through the API (the alert through the
/// store: raising one for real takes scans).
pub struct Records {
    pub agent: String,
    pub credential: String,
    pub contact: String,
    pub rule: String,
    pub alert: String,
}

impl Server {
    /// An enrolled Extended agent with an enabled policy, an email contact,
    /// a rule sending that agent's events to it, and an open alert.
    pub async fn records(&self, tenant: &Tenant, label: &str) -> Records {
        let token = tenant.owner.as_str();
        let (agent, credential) = self
            .enroll_agent(token, &format!("{label}-agent"), "extended")
            .await;
        self.send(
            Method::PUT,
            &format!("/agents/{agent}/policy"),
            Some(token),
            Some(&policy(true, "22,80", 60)),
        )
        .await
        .ok(200);
        let contact = self
            .send(
                Method::POST,
                "/contacts",
                Some(token),
                Some(&json!({
                    "name": format!("{label} ops"),
                    "channel": "email",
                    "address": format!("ops@{label}.example.com"),
                })),
            )
            .await
            .ok(201)["id"]
            .as_str()
            .expect("contact id")
            .to_string();
        let rule = self
            .send(
                Method::POST,
                "/rules",
                Some(token),
                Some(&json!({
                    "contact_id": contact,
                    "agent_id": agent,
                    "events": ["service_down", "agent_back"],
                })),
            )
            .await
            .ok(201)["id"]
            .as_str()
            .expect("rule id")
            .to_string();
        let alert = self
            .store()
            .open_alert(
                tenant.id,
                agent.parse().expect("agent id"),
                "agent_host",
                vigil_core::Condition::unauthorized_open(8080),
                false,
                vigil_store::now_unix(),
            )
            .await
            .expect("open alert")
            .id
            .to_string();
        Records {
            agent,
            credential,
            contact,
            rule,
            alert,
        }
    }

    /// What the account's owner sees of its records: compare before and
    /// after requests that must change nothing.
    pub async fn snapshot(&self, token: &str, r: &Records) -> Vec<(String, Value)> {
        let paths = [
            "/me".to_string(),
            "/users".to_string(),
            "/agents".to_string(),
            format!("/agents/{}", r.agent),
            format!("/agents/{}/policy", r.agent),
            format!("/agents/{}/results", r.agent),
            "/contacts".to_string(),
            format!("/contacts/{}", r.contact),
            "/rules".to_string(),
            "/alerts".to_string(),
        ];
        let mut out = Vec::new();
        for path in paths {
            let body = self.get_ok(&path, token).await;
            out.push((path, body));
        }
        // Token lists carry `last_used_at`, which moves with use; the rest
        // must not.
        let tokens = self.get_ok("/tokens", token).await;
        let tokens: Vec<Value> = tokens
            .as_array()
            .expect("token list")
            .iter()
            .map(|t| json!([t["id"], t["name"], t["revoked_at"]]))
            .collect();
        out.push(("/tokens".into(), Value::Array(tokens)));
        out
    }
}
