//! The `vigil server` under test, in the scanner namespace with its
//! embedded SQLite database, driven through its REST API; and real agents
//! enrolled with it, in the target namespace.

use crate::agents::procs::{self, Child};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_testnet::{TestNet, SCANNER_V4};

/// The REST API, inside the scanner namespace (a fresh namespace: free).
const API: &str = "127.0.0.1:18080";
const EMAIL: &str = "owner@bench.test";
const PASSWORD: &str = "correct horse battery staple";

/// A running server and a logged-in REST client.
pub struct Server<'a> {
    net: &'a TestNet,
    vigil: PathBuf,
    dir: PathBuf,
    token: String,
    pub server_id: String,
    child: Child,
    agents: Vec<Child>,
}

impl<'a> Server<'a> {
    /// Creates an account, starts `vigil server` in the scanner namespace
    /// (REST API on [`API`], agent API on the scanner address) and logs in.
    pub fn start(net: &'a TestNet, vigil: &Path, dir: &Path) -> Result<Server<'a>> {
        let db = format!("sqlite://{}", dir.join("vigil.db").display());
        let out = Command::new(vigil)
            .args(["admin", "--db", &db, "create-account", "--name", "Bench"])
            .args(["--kind", "organization", "--email", EMAIL])
            .env("VIGIL_PASSWORD", PASSWORD)
            .output()
            .context("running vigil admin create-account")?;
        if !out.status.success() {
            bail!(
                "vigil admin create-account failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cmd = net.scanner_cmd(vigil);
        cmd.args(["server", "--data-dir"])
            .arg(dir)
            .args(["--db", &db, "--listen", API])
            .args(["--agent-listen", &format!("{SCANNER_V4}:8443")])
            .env("VIGIL_LOG", "info");
        let child = Child::spawn("vigil server", cmd, &dir.join("server.log"))?;
        let mut server = Server {
            net,
            vigil: vigil.to_path_buf(),
            dir: dir.to_path_buf(),
            token: String::new(),
            server_id: String::new(),
            child,
            agents: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.request("GET", "/healthz", None)?.0 != 200 {
            server.child.check_running()?;
            super::check_interrupted()?;
            if Instant::now() > deadline {
                bail!("the server did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let login = server.call(
            "POST",
            "/api/v1/login",
            Some(json!({"email": EMAIL, "password": PASSWORD})),
        )?;
        server.token = login["token"].as_str().context("login token")?.to_string();
        server.server_id = server.call("GET", "/api/v1/server", None)?["server_id"]
            .as_str()
            .context("server_id")?
            .to_string();
        Ok(server)
    }

    /// Enrolls a real agent (token from `POST /enrollments`, then the
    /// command it returns) and runs it in the target namespace with its
    /// identify listener on `addr`.
    pub fn enroll_agent(&mut self, addr: IpAddr) -> Result<()> {
        let name = format!("agent-{}", self.agents.len());
        let e = self.call(
            "POST",
            "/api/v1/enrollments",
            Some(json!({"name": name, "plan": "extended"})),
        )?;
        let command = e["command"].as_str().context("enrollment command")?;
        // `vigil agent enroll --server … --token … --pin …`
        let words: Vec<&str> = command.split_whitespace().skip(2).collect();
        let state = self.dir.join(&name);
        let out = self
            .net
            .target_cmd(&self.vigil)
            .args(["agent", "--state-dir"])
            .arg(&state)
            .args(&words)
            .output()
            .context("running vigil agent enroll")?;
        if !out.status.success() {
            bail!(
                "vigil agent enroll failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let listen = SocketAddr::new(addr, super::network::AGENT_PORT);
        let mut cmd = self.net.target_cmd(&self.vigil);
        cmd.args(["agent", "--state-dir"]).arg(&state).args([
            "run",
            "--listen",
            &listen.to_string(),
        ]);
        let log = self.dir.join(format!("{name}.log"));
        self.agents
            .push(Child::spawn("vigil agent run", cmd, &log)?);
        Ok(())
    }

    /// Saves `scope` with *Save and re-assess* and waits until the
    /// assessment ends; returns it and the wall time from the request to
    /// the first poll that saw it finished (polled every 20 ms), plus the
    /// time until its progress first showed a total (probing under way).
    pub fn assess(&self, body: Value, limit: Duration) -> Result<Assessed> {
        let cpu_before = procs::cpu_secs(self.child.pid()).unwrap_or(0.0);
        let machine_before = procs::machine_cpu().map_or(0.0, |m| m.busy);
        let started = Instant::now();
        let (status, answer) = self.request("PUT", "/api/v1/compliance/scope", Some(body))?;
        if status != 202 {
            bail!("PUT /compliance/scope answered {status}: {answer}");
        }
        let answer: Value = serde_json::from_str(&answer)?;
        let id = answer["assessment_id"]
            .as_str()
            .context("assessment_id")?
            .to_string();
        let (mut probing, mut probed) = (None, None);
        loop {
            let a = self.call(
                "GET",
                &format!("/api/v1/compliance/assessments?assessment={id}"),
                None,
            )?;
            if a["state"] != "running" {
                let wall = started.elapsed();
                return Ok(Assessed {
                    wall,
                    server_cpu: procs::cpu_secs(self.child.pid()).unwrap_or(0.0) - cpu_before,
                    machine_busy: procs::machine_cpu().map_or(0.0, |m| m.busy) - machine_before,
                    until_probing: probing,
                    until_probed: probed,
                    view: a,
                });
            }
            let (done, total) = (
                a["done"].as_u64().unwrap_or(0),
                a["total"].as_u64().unwrap_or(0),
            );
            if probing.is_none() && total > 0 && done > 0 {
                probing = Some(started.elapsed());
            }
            if probed.is_none() && total > 0 && done == total {
                probed = Some(started.elapsed());
            }
            super::check_interrupted()?;
            if started.elapsed() > limit {
                bail!("assessment {id} still running after {limit:?}: {a}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory peak (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        procs::memory(self.child.pid()).map(|m| m.hwm_kib as f64 / 1024.0)
    }

    /// A request whose answer must be 2xx JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, text) = self.request(method, path, body)?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: {text}"))
    }

    /// Status and body; status 0 if nothing answered.
    ///
    /// Hand-written HTTP/1.1, one request per connection: the socket must
    /// be opened on a thread inside the scanner namespace, which an HTTP
    /// client library's connection pool would not do.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, String)> {
        let addr: SocketAddr = API.parse()?;
        let connected = self
            .net
            .in_scanner(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))?;
        let Ok(mut stream) = connected else {
            return Ok((0, String::new()));
        };
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = if self.token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {}\r\n", self.token)
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        for a in &mut self.agents {
            a.stop(libc::SIGTERM, Duration::from_secs(2));
        }
        self.child.stop(libc::SIGTERM, Duration::from_secs(5));
    }
}

/// A finished assessment.
pub struct Assessed {
    pub wall: Duration,
    /// CPU seconds the server used meanwhile.
    pub server_cpu: f64,
    /// CPU seconds the whole machine was busy meanwhile (everything: the
    /// server, the bench, the test network's listeners, other processes).
    pub machine_busy: f64,
    /// When progress first showed addresses probed (after the AD read and
    /// name resolution, and the first probing pass); `None` if the
    /// assessment ended before a poll saw it.
    pub until_probing: Option<Duration>,
    /// When progress first showed every address probed (the endpoints
    /// are then joined and stored). The server writes progress at most
    /// every 500 ms, so both marks are late by up to that much.
    pub until_probed: Option<Duration>,
    pub view: Value,
}

impl Assessed {
    pub fn counts(&self) -> Result<super::network::Counts> {
        serde_json::from_value(self.view["counts"].clone())
            .with_context(|| format!("counts in {}", self.view))
    }
}
