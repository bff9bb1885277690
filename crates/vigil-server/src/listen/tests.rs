//! The listener on 127.0.0.1 with short limits, talked to over raw sockets.

use super::*;
use axum::routing::get;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

#[test]
fn caps_fit_half_the_open_file_limit() {
    let limits = |rest, agent| HttpLimits {
        max_connections: rest,
        agent_max_connections: agent,
        ..HttpLimits::default()
    };
    // (caps, open-file limit) → caps, lowered?
    let cases = [
        ((1024, 16_384), None, (1024, 16_384), false),
        ((1024, 16_384), Some(1_048_576), (1024, 16_384), false),
        ((1024, 16_384), Some(34_816), (1024, 16_384), false),
        ((1024, 16_384), Some(4096), (120, 1927), true),
        ((1024, 16_384), Some(1024), (30, 481), true),
        ((1, 1), Some(0), (1, 1), false),
        ((10, 10), Some(4), (1, 1), true),
        ((usize::MAX, usize::MAX), Some(100), (25, 25), true),
    ];
    for ((rest, agent), open, (want_rest, want_agent), lowered) in cases {
        let mut l = limits(rest, agent);
        assert_eq!(
            l.fit_to_open_files(open),
            lowered,
            "{rest} {agent} {open:?}"
        );
        assert_eq!(
            (l.max_connections, l.agent_max_connections),
            (want_rest, want_agent),
            "{rest} {agent} {open:?}"
        );
    }
}

const HEADER: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(800);
const REQUEST: Duration = Duration::from_millis(600);

fn test_limits(cap: usize) -> HttpLimits {
    HttpLimits {
        max_connections: cap,
        header_timeout: HEADER,
        idle_timeout: IDLE,
        request_timeout: REQUEST,
        ..HttpLimits::default()
    }
}

/// A body of `chunks` chunks of `size` bytes, `gap` apart (forever if `None`).
fn chunked(size: usize, gap: Duration, chunks: Option<usize>) -> axum::body::Body {
    let stream = futures::stream::unfold(0usize, move |n| async move {
        if chunks.is_some_and(|c| n >= c) {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(gap).await;
        }
        Some((Ok::<_, std::io::Error>(vec![b'x'; size]), n + 1))
    });
    axum::body::Body::from_stream(stream)
}

fn router() -> axum::Router {
    axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/long",
            get(|| async {
                tokio::time::sleep(REQUEST * 2).await;
                "long"
            })
            .route_layer(axum::middleware::from_fn(long_request)),
        )
        .route(
            "/peer",
            get(
                |axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<SocketAddr>| async move {
                    addr.ip().to_string()
                },
            ),
        )
        // Chunks slower than the idle timeout: the server's turn, not cut.
        .route("/trickle", get(|| async { chunked(10, IDLE + IDLE / 2, Some(3)) }))
        // More than any socket buffer, for a client that never reads.
        .route(
            "/flood",
            get(|| async { chunked(1 << 16, Duration::ZERO, None) }),
        )
}

struct Server {
    addr: SocketAddr,
    registry: Registry,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(cap: usize) -> Server {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let metrics = ConnectionMetrics::default();
        let mut registry = Registry::with_prefix("vigil");
        metrics.register(&mut registry);
        let listener = Listener {
            name: "t",
            cap,
            tls: None,
            limits: test_limits(cap),
            metrics: metrics.listener("t"),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(tcp, listener, router(), stopped));
        Server {
            addr,
            registry,
            stop,
            task,
        }
    }

    fn sample(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    }

    fn timed_out(&self, timeout: &str) -> f64 {
        self.sample(&format!(
            "vigil_http_connections_timed_out_total{{listener=\"t\",timeout=\"{timeout}\"}}"
        ))
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
}

/// Sends `GET path` (keep-alive) and reads the whole response; its status
/// line and body.
async fn get_on(conn: &mut TcpStream, path: &str) -> (String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let status = head.lines().next().unwrap_or("").to_string();
        let lower = head.to_ascii_lowercase();
        if let Some(len) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
        {
            if body.len() >= len.trim().parse::<usize>().unwrap() {
                return (status, body.to_string());
            }
        } else if lower.contains("transfer-encoding: chunked") && body.ends_with("0\r\n\r\n") {
            return (status, body.to_string());
        }
    }
}

/// Waits for the server to close `conn` (EOF or reset), discarding what
/// it sends; how long that took.
async fn closed_after(conn: &mut TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match timeout(within, conn.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {within:?}"),
        }
    }
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = Server::start(8).await;
    let mut conn = server.connect().await;
    let took = closed_after(&mut conn, Duration::from_secs(5)).await;
    assert!(took >= HEADER - Duration::from_millis(50), "{took:?}");
    assert_eq!(server.timed_out("header"), 1.0);
    assert_eq!(server.timed_out("idle"), 0.0);
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(8).await;
    let mut conn = server.connect().await;
    // Requests keep it open past the header timeout.
    for _ in 0..3 {
        tokio::time::sleep(HEADER / 2).await;
        assert_eq!(get_on(&mut conn, "/ok").await.1, "ok");
    }
    let peer = get_on(&mut conn, "/peer").await.1;
    assert_eq!(peer, "127.0.0.1", "ConnectInfo is set");
    let took = closed_after(&mut conn, Duration::from_secs(5)).await;
    assert!(took >= IDLE - Duration::from_millis(50), "{took:?}");
    assert_eq!(server.timed_out("idle"), 1.0);
    assert_eq!(server.timed_out("header"), 0.0);
}

#[tokio::test]
async fn past_the_cap_connections_are_closed_at_once() {
    let server = Server::start(2).await;
    let mut held = vec![server.connect().await, server.connect().await];
    // Both are being served (a request each proves the accept happened).
    for conn in &mut held {
        assert_eq!(get_on(conn, "/ok").await.1, "ok");
    }
    let mut third = server.connect().await;
    let took = closed_after(&mut third, Duration::from_secs(1)).await;
    assert!(took < Duration::from_millis(300), "{took:?}");
    assert_eq!(
        server.sample("vigil_http_connections_refused_total{listener=\"t\"}"),
        1.0
    );
    assert_eq!(
        server.sample("vigil_http_connection_limit{listener=\"t\"}"),
        2.0
    );
    assert_eq!(server.sample("vigil_http_connections{listener=\"t\"}"), 2.0);
    // A place freed is a place taken.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if server.sample("vigil_http_connections{listener=\"t\"}") < 2.0 {
            again = Some(server.connect().await);
            break;
        }
    }
    let mut again = again.expect("the closed connection's place is freed");
    assert_eq!(get_on(&mut again, "/ok").await.1, "ok");
}

#[tokio::test]
async fn a_slow_handler_is_answered_503_unless_its_route_is_long() {
    let server = Server::start(8).await;
    let mut conn = server.connect().await;
    let start = Instant::now();
    let (status, body) = get_on(&mut conn, "/slow").await;
    assert!(status.contains(" 503 "), "{status}");
    assert!(body.contains("took longer than"), "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        server.sample("vigil_http_requests_timed_out_total{listener=\"t\"}"),
        1.0
    );
    // The connection still serves; a long route runs past the limit.
    let (status, body) = get_on(&mut conn, "/long").await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "long");
}

#[tokio::test]
async fn a_slow_stream_is_not_cut_and_a_client_that_stops_reading_is() {
    let server = Server::start(8).await;
    let mut conn = server.connect().await;
    // Gaps longer than the idle timeout while the server produces.
    let (status, body) = get_on(&mut conn, "/trickle").await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body.matches("xxxxxxxxxx").count(), 3, "{body}");
    assert_eq!(server.timed_out("stalled"), 0.0);
    // A client that asks for an endless body and reads none of it.
    let mut lazy = server.connect().await;
    lazy.write_all(b"GET /flood HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut waited = Duration::ZERO;
    while server.timed_out("stalled") < 1.0 {
        assert!(waited < Duration::from_secs(10), "never closed as stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    closed_after(&mut lazy, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn shutdown_lets_running_requests_finish_and_closes_idle_connections() {
    let server = Server::start(8).await;
    let mut idle = server.connect().await;
    assert_eq!(get_on(&mut idle, "/ok").await.1, "ok");
    let mut busy = server.connect().await;
    busy.write_all(b"GET /long HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop.send(true).unwrap();
    let took = closed_after(&mut idle, Duration::from_secs(2)).await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    let mut answer = String::new();
    timeout(Duration::from_secs(5), busy.read_to_string(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.ends_with("long"), "{answer}");
    timeout(Duration::from_secs(2), server.task)
        .await
        .expect("the listener ends")
        .unwrap();
    // New connections are no longer accepted.
    assert!(TcpStream::connect(server.addr).await.is_err());
}
