//! Test servers and fixtures.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use vigil_notify::{EventKind, Notification, OccurredAt, Severity};

pub fn notification() -> Notification {
    Notification {
        event: EventKind::UnauthorizedPortOpen,
        severity: Severity::Critical,
        account: "Acme Corp".into(),
        agent_name: "office-gw".into(),
        agent_id: "a1b2c3".into(),
        target: Some("203.0.113.7".into()),
        port: Some(23),
        occurred_at: OccurredAt::Unix(1_777_636_800),
        title: "Port 23/tcp open on 203.0.113.7".into(),
        details: "Telnet answers on a port the policy does not allow.\nClose it or allow it in the console.".into(),
        dedupe_key: "acme/office-gw/203.0.113.7/unauthorized/23".into(),
        console_url: Some("https://vigil.example/conditions/42".into()),
        delivery_id: None,
        ack_url: None,
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Vigil Test Private CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "vigil-test-server");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        TestPki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the server certificate and key; returns their paths.
    pub fn write_server_files(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("server.crt");
        let key = dir.join("server.key");
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

// ---------------------------------------------------------------- SMTP (aiosmtpd)

pub enum SmtpMode<'a> {
    Plain,
    StartTls(&'a TestPki),
    ImplicitTls(&'a TestPki),
}

/// `tests/smtp_server.py` running on 127.0.0.1; killed on drop.
pub struct SmtpServer {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    messages: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn python() -> String {
    std::env::var("VIGIL_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether python3 with aiosmtpd is there; panics when it is required and missing.
fn smtp_server_available() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = AVAILABLE.get_or_init(|| {
        match Command::new(python())
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "`{} -c 'import aiosmtpd'` failed: {}",
                python(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run `{}`: {e}", python())),
        }
    });
    match result {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("VIGIL_REQUIRE_SMTP").as_deref() == Ok("1") {
                panic!(
                    "VIGIL_REQUIRE_SMTP=1 but the test SMTP server cannot run: {why}. \
                     Install it with `pip install aiosmtpd`."
                );
            }
            eprintln!(
                "SKIPPED: SMTP integration test needs python3 with aiosmtpd ({why}); \
                 `pip install aiosmtpd`, or set VIGIL_REQUIRE_SMTP=1 to make this a failure"
            );
            false
        }
    }
}

impl SmtpServer {
    /// Starts the server, or returns `None` (after printing SKIPPED) when python3
    /// or aiosmtpd is missing and `VIGIL_REQUIRE_SMTP` is not 1.
    pub fn start(mode: SmtpMode<'_>, auth: Option<(&str, &str)>) -> Option<SmtpServer> {
        if !smtp_server_available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let messages = dir.path().join("messages");
        std::fs::create_dir(&messages).unwrap();
        let log = dir.path().join("server.log");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(script).arg(&messages);
        match mode {
            SmtpMode::Plain => {}
            SmtpMode::StartTls(pki) => {
                let (cert, key) = pki.write_server_files(dir.path());
                cmd.arg("--starttls").arg(cert).arg(key);
            }
            SmtpMode::ImplicitTls(pki) => {
                let (cert, key) = pki.write_server_files(dir.path());
                cmd.arg("--implicit-tls").arg(cert).arg(key);
            }
        }
        if let Some((user, password)) = auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(port) = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "test SMTP server did not start (got {line:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Some(SmtpServer {
            child,
            _stdin: stdin,
            port,
            messages,
            log,
            _dir: dir,
        })
    }

    /// The messages stored so far, oldest first.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.messages)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until `n` messages are stored (the server writes them before it answers 250,
    /// so after a successful send they are already there).
    pub fn wait_for_messages(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {n} messages, have {}; server log:\n{}",
                    got.len(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- HTTP (hyper)

/// One request the HTTP server received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the HTTP server answers to every request.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A hyper HTTP/1.1 server on 127.0.0.1 recording every request; stops on drop.
pub struct HttpServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
    tls: bool,
}

impl HttpServer {
    pub async fn start(reply: Reply) -> HttpServer {
        Self::start_inner(reply, None).await
    }

    /// HTTPS with `pki`'s server certificate.
    pub async fn start_tls(reply: Reply, pki: &TestPki) -> HttpServer {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Self::start_inner(
            reply,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_inner(reply: Reply, tls: Option<tokio_rustls::TlsAcceptor>) -> HttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let is_tls = tls.is_some();
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let reply = reply.clone();
                let recorded = recorded.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, reply.clone(), recorded.clone())
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            // A client that rejects our certificate aborts the handshake.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let io = hyper_util::rt::TokioIo::new(stream);
                                let _ = http.serve_connection(io, service).await;
                            }
                        }
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = http.serve_connection(io, service).await;
                        }
                    }
                });
            }
        });
        HttpServer {
            addr,
            requests,
            task,
            tls: is_tls,
        }
    }

    /// `http(s)://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request received.
    pub fn single_request(&self) -> Captured {
        let r = self.requests();
        assert_eq!(r.len(), 1, "expected one request, got {r:#?}");
        r.into_iter().next().unwrap()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    reply: Reply,
    recorded: Arc<Mutex<Vec<Captured>>>,
) -> Result<hyper::Response<http_body_util::Full<hyper::body::Bytes>>, hyper::Error> {
    use http_body_util::BodyExt;
    let method = req.method().to_string();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req.into_body().collect().await?.to_bytes().to_vec();
    recorded.lock().unwrap().push(Captured {
        method,
        uri,
        headers,
        body,
    });
    tokio::time::sleep(reply.delay).await;
    let mut response = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    Ok(response
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            reply.body.clone(),
        )))
        .unwrap())
}
