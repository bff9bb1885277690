//! Test helpers: a TLS server with a fresh self-signed certificate, and on
//! top of it a fake Vigil server that speaks the agent API, records what
//! the agent sends and hands out the tasks a test defines.
//!
//! The fake server speaks just enough HTTP/1.1 for `reqwest`: one request
//! per connection, bodies sized by `content-length`.

use rustls::pki_types::PrivateKeyDer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use vigil_proto::agent::{
    EnrollRequest, EnrollResponse, Heartbeat, HeartbeatResponse, MoveInstruction, MovedNotice,
    ResultUpload, ScanTask, UploadAck, UploadStatus, ENROLL_PATH, HEARTBEAT_PATH, MOVED_PATH,
    RESULTS_PATH,
};
use vigil_proto::pin::CertPin;

/// Serves TLS on 127.0.0.1 with a fresh self-signed certificate, handing
/// each accepted connection to `serve`. Returns the address and the
/// certificate's pin.
pub async fn tls_server<F, Fut>(serve: F) -> (SocketAddr, CertPin)
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let cert = rcgen::generate_simple_self_signed(vec!["vigil-server".into()]).expect("cert");
    let der = cert.cert.der().clone();
    let pin = CertPin::of_der(der.as_ref());
    let key = PrivateKeyDer::try_from(cert.signing_key.serialize_der()).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, serve) = (acceptor.clone(), serve.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    (addr, pin)
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
}

/// A fake Vigil server on 127.0.0.1.
pub struct FakeServer {
    pub url: String,
    pub pin: CertPin,
    pub log: watch::Sender<Log>,
}

impl FakeServer {
    pub async fn start(script: Script) -> Self {
        let script = Arc::new(script);
        let log = watch::Sender::new(Log::default());
        let l = log.clone();
        let (addr, pin) = tls_server(move |tls| answer(tls, script.clone(), l.clone())).await;
        FakeServer {
            url: format!("https://{addr}"),
            pin,
            log,
        }
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
async fn answer(tls: TlsStream<TcpStream>, script: Arc<Script>, log: watch::Sender<Log>) {
    let mut conn = BufReader::new(tls);
    let Some((path, body)) = read_request(&mut conn).await else {
        return;
    };
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
