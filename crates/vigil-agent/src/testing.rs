//! Test helpers: a TLS server with a fresh self-signed certificate, and on
//! top of it a fake Vigil server that speaks the agent API, records what
//! the agent sends and hands out the tasks a test defines. Fake servers
//! may share a certificate (replicas of one server) and can be taken down
//! and brought back on the same address.
//!
//! The fake server speaks just enough HTTP/1.1 for `reqwest`: one request
//! per connection, bodies sized by `content-length`.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use vigil_proto::agent::{
    EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, MoveInstruction, MovedNotice,
    ResultUpload, ScanTask, UploadAck, UploadStatus, ENROLL_PATH, HEARTBEAT_PATH, MOVED_PATH,
    RESULTS_PATH,
};
use vigil_proto::pin::CertPin;

/// A fresh self-signed certificate and its key.
#[derive(Clone)]
pub struct TestCert {
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

impl TestCert {
    pub fn new() -> Self {
        let cert = rcgen::generate_simple_self_signed(vec!["vigil-server".into()]).expect("cert");
        TestCert {
            cert: cert.cert.der().clone(),
            key: cert.signing_key.serialize_der(),
        }
    }

    pub fn pin(&self) -> CertPin {
        CertPin::of_der(self.cert.as_ref())
    }

    fn acceptor(&self) -> TlsAcceptor {
        let key = PrivateKeyDer::try_from(self.key.clone()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![self.cert.clone()], key)
        .expect("server config");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// Accepts TLS connections on `listener`, handing each to `serve`;
/// counts TCP connections in `accepted`.
fn accept_loop<F, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    serve: Arc<F>,
    accepted: Arc<AtomicUsize>,
) -> JoinHandle<()>
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    })
}

/// Serves TLS on 127.0.0.1 with a fresh self-signed certificate, handing
/// each accepted connection to `serve`. Returns the address and the
/// certificate's pin.
pub async fn tls_server<F, Fut>(serve: F) -> (SocketAddr, CertPin)
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cert = TestCert::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    accept_loop(listener, cert.acceptor(), Arc::new(serve), Arc::default());
    (addr, cert.pin())
}

/// Everything the fake server saw, with the time it arrived.
#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Heartbeats and the tasks each one was answered with.
    pub heartbeats: Vec<(Instant, Heartbeat, Vec<ScanTask>)>,
    pub uploads: Vec<(Instant, ResultUpload)>,
    pub enrolls: Vec<EnrollRequest>,
    pub moved: Vec<MovedNotice>,
}

impl Log {
    pub fn uploads_of(&self, task_id: &str) -> usize {
        self.uploads
            .iter()
            .filter(|(_, u)| u.task_id == task_id)
            .count()
    }
}

/// What the fake server answers with, set by the test.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Handed out in every heartbeat response, as a real server re-sends
    /// open tasks until their result arrives.
    pub tasks: Vec<ScanTask>,
    pub heartbeat_secs: u64,
    /// Handed out in every heartbeat response.
    pub move_to: Option<MoveInstruction>,
    /// The answer to every enrollment; `None` refuses it (403).
    pub enroll: Option<EnrollResponse>,
    /// Handed out in every heartbeat response: the replicas.
    pub server_urls: Vec<String>,
}

/// A fake Vigil server on 127.0.0.1.
pub struct FakeServer {
    pub url: String,
    pub pin: CertPin,
    pub log: watch::Sender<Log>,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    script: Arc<Script>,
    /// Answers every request with 503 while set.
    failing: Arc<AtomicBool>,
    /// The accept loop; `None` while the server is down.
    accepting: Mutex<Option<JoinHandle<()>>>,
    /// TCP connections accepted (TLS handshakes tried).
    accepted: Arc<AtomicUsize>,
}

impl FakeServer {
    pub async fn start(script: Script) -> Self {
        Self::start_with(script, &TestCert::new()).await
    }

    /// A server presenting `cert` (a replica of another server with it).
    pub async fn start_with(script: Script, cert: &TestCert) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = FakeServer {
            url: format!("https://{addr}"),
            pin: cert.pin(),
            log: watch::Sender::new(Log::default()),
            addr,
            acceptor: cert.acceptor(),
            script: Arc::new(script),
            failing: Arc::new(AtomicBool::new(false)),
            accepting: Mutex::new(None),
            accepted: Arc::default(),
        };
        server.accept(listener);
        server
    }

    fn accept(&self, listener: TcpListener) {
        let (script, log, failing) = (self.script.clone(), self.log.clone(), self.failing.clone());
        let serve = move |tls| answer(tls, script.clone(), log.clone(), failing.clone());
        let task = accept_loop(
            listener,
            self.acceptor.clone(),
            Arc::new(serve),
            self.accepted.clone(),
        );
        *self.accepting.lock().expect("lock") = Some(task);
    }

    /// Stops listening: connections are refused until [`FakeServer::up`].
    pub async fn down(&self) {
        let task = self.accepting.lock().expect("lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address.
    pub async fn up(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind again");
        self.accept(listener);
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// While `failing`, every request is answered with 503.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Waits up to `limit` until the log satisfies `cond`; returns a copy.
    pub async fn wait_for(&self, limit: Duration, what: &str, cond: impl Fn(&Log) -> bool) -> Log {
        let mut rx = self.log.subscribe();
        let found = tokio::time::timeout(limit, rx.wait_for(|l| cond(l)))
            .await
            .map(|log| log.map(|log| log.clone()));
        match found {
            Ok(Ok(log)) => log,
            _ => panic!("timed out waiting for {what}: {:#?}", *self.log.borrow()),
        }
    }
}

/// Answers one request on `tls`.
async fn answer(
    tls: TlsStream<TcpStream>,
    script: Arc<Script>,
    log: watch::Sender<Log>,
    failing: Arc<AtomicBool>,
) {
    let mut conn = BufReader::new(tls);
    let Some((path, body)) = read_request(&mut conn).await else {
        return;
    };
    if failing.load(Ordering::SeqCst) {
        respond(&mut conn, "503 Service Unavailable", br#"{"error":"down"}"#).await;
        return;
    }
    let now = Instant::now();
    let reply = if path == HEARTBEAT_PATH {
        let hb: Heartbeat = serde_json::from_slice(&body).expect("heartbeat body");
        let (tasks, heartbeat_secs) = (script.tasks.clone(), script.heartbeat_secs);
        log.send_modify(|l| l.heartbeats.push((now, hb, tasks.clone())));
        serde_json::to_vec(&HeartbeatResponse {
            tasks,
            heartbeat_secs,
            observed_addr: "127.0.0.1".into(),
            move_to: script.move_to.clone(),
            server_urls: script.server_urls.clone(),
            update_key: None,
            update: None,
        })
    } else if path == RESULTS_PATH {
        let up: ResultUpload = serde_json::from_slice(&body).expect("upload body");
        let mut status = UploadStatus::Stored;
        log.send_modify(|l| {
            if l.uploads.iter().any(|(_, u)| u.upload_id == up.upload_id) {
                status = UploadStatus::Duplicate;
            } else {
                l.uploads.push((now, up));
            }
        });
        serde_json::to_vec(&UploadAck { status })
    } else if path == ENROLL_PATH {
        let req: EnrollRequest = serde_json::from_slice(&body).expect("enroll body");
        log.send_modify(|l| l.enrolls.push(req));
        match &script.enroll {
            Some(resp) => serde_json::to_vec(resp),
            None => {
                respond(
                    &mut conn,
                    "403 Forbidden",
                    br#"{"error":"unknown enrollment token"}"#,
                )
                .await;
                return;
            }
        }
    } else if path == MOVED_PATH {
        let notice: MovedNotice = serde_json::from_slice(&body).expect("moved body");
        log.send_modify(|l| l.moved.push(notice));
        Ok(b"{}".to_vec())
    } else {
        panic!("unexpected request for {path}");
    };
    let body = reply.expect("json");
    respond(&mut conn, "200 OK", &body).await;
}

async fn respond(conn: &mut BufReader<TlsStream<TcpStream>>, status: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let tls = conn.get_mut();
    let _ = tls.write_all(head.as_bytes()).await;
    let _ = tls.write_all(body).await;
    let _ = tls.shutdown().await;
}

/// Reads one request: its path and body.
async fn read_request(conn: &mut BufReader<TlsStream<TcpStream>>) -> Option<(String, Vec<u8>)> {
    let mut line = String::new();
    conn.read_line(&mut line).await.ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).await.ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.ok()?;
    Some((path, body))
}
