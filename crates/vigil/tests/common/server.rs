//! A Vigil server in the scanner namespace of a test network, driven
//! through its REST API, and child processes that die with the test.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vigil_testnet::{TestLan, TestNet};

/// A network namespace the test's clients connect from: the scanner
/// namespace of a [`TestNet`], the agent namespace of a [`TestLan`].
pub trait Ns: Sync {
    fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream>;
}

impl Ns for TestNet {
    fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.in_scanner(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
            .expect("namespace")
    }
}

impl Ns for TestLan {
    fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        self.in_agent(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)))
            .expect("namespace")
    }
}

/// Where tests run the server's REST API, inside the scanner namespace
/// (a fresh namespace: the port is always free).
pub const API: &str = "127.0.0.1:18080";

/// A child process killed (and reaped) on drop.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `cmd` with its output in `log`. Stdin is a pipe held open until
/// the process is killed (the SMTP server exits when its stdin closes).
pub fn spawn(mut cmd: Command, name: &'static str, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("log file");
    cmd.stdin(Stdio::piped())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { child }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Polls `f` every 100 ms until it returns `Some`, failing after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A REST client whose connections are opened inside the scanner namespace.
///
/// Hand-written HTTP/1.1 (one request per connection, `Connection: close`):
/// the socket must be created on a thread inside the namespace, which an
/// HTTP client library's own connection pool would not do.
pub struct Api<'a> {
    pub net: &'a dyn Ns,
    pub token: Option<String>,
}

impl Api<'_> {
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.request(method, path, body);
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, json)
    }

    /// The body of a successful request as text (e.g. CSV).
    pub fn raw(&self, method: &str, path: &str) -> String {
        let (status, text) = self.request(method, path, None);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {text}"
        );
        text
    }

    /// Status and body text; status 0 if the server could not be reached.
    pub fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        self.request_to(API, method, path, body)
    }

    /// [`Api::request`] to the REST API on `api` (another server of the test).
    pub fn request_to(
        &self,
        api: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let addr: SocketAddr = api.parse().expect("addr");
        let mut stream = match self.net.connect(addr) {
            Ok(s) => s,
            Err(e) => return (0, json!({ "error": e.to_string() }).to_string()),
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} /api/v1{path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut response = String::new();
        if stream.read_to_string(&mut response).is_err() {
            return (0, String::new());
        }
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    pub fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {json}"
        );
        json
    }

    pub fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None)
    }
}

/// Records every POST body it receives.
pub fn webhook_receiver(net: &TestNet) -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let listener = net
        // The scanner's own test address: loopback webhooks are refused
        // by the server's default network policy.
        .in_scanner(|| TcpListener::bind((vigil_testnet::SCANNER_V4, 0)))
        .expect("namespace")
        .expect("bind webhook receiver");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    sink.lock().expect("lock").push(v);
                }
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (addr, seen)
}
