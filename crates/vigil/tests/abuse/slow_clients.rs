//! See `main.rs`. Slow clients (issue 14, point 7): connections that
//! finish their TCP (and TLS) handshake and then send nothing must neither
//! stop a real agent's heartbeats nor stay open past the header timeout,
//! and a listener at its cap closes new connections at once; `/metrics`
//! shows the caps, the timeouts and the refusals.
//!
//! The real `vigil server` runs in the scanner namespace and a real agent
//! (heartbeat every second) in the target namespace; 2,000 idle TLS
//! connections come from the target namespace to the agent listener and a
//! few hundred idle plain ones from the scanner namespace to the REST
//! listener. Every loop is bounded in count and time.

use crate::common::can_build_networks;
use crate::common::compliance::{enrolled_agent, owner_api, start_server_with};
use crate::common::server::{wait_for, Api, Ns, API};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_testnet::{NetSpec, TestNet, SCANNER_V4};

/// The agent's host (target namespace).
const HOME: &str = "198.51.100.10";
/// Idle TLS connections to the agent listener.
const IDLE_TLS: usize = 2000;
/// Idle plain connections to the REST listener.
const IDLE_PLAIN: usize = 250;
/// The server's header and idle timeouts, in seconds.
const TIMEOUT_SECS: u64 = 10;
/// The caps: the agent's above the idle connections (they must not take
/// the agent's place), the REST one tested by going past it.
const AGENT_CAP: usize = 2500;
const REST_CAP: usize = 300;
/// Closing may come this much later than the timeout (2,000 at once).
const MARGIN: Duration = Duration::from_secs(4);

/// A connection the test holds open without a request, and what became of it.
struct Idle {
    stream: TcpStream,
    /// When its handshake (TCP, and TLS if any) was done.
    ready: Instant,
    /// When the server closed it.
    closed: Option<Instant>,
}

impl Idle {
    /// Reads what is there (TLS session tickets); notes EOF or a reset.
    fn poll(&mut self, buf: &mut [u8]) {
        while self.closed.is_none() {
            match self.stream.read(buf) {
                Ok(0) => self.closed = Some(Instant::now()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = Some(Instant::now()),
            }
        }
    }
}

/// Opens `n` connections to `addr` on `threads` threads (started in the
/// caller's namespace), each made non-blocking once ready; with `tls`, the
/// TLS handshake is done first and nothing is sent after it.
fn open_idle(
    addr: SocketAddr,
    n: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    threads: usize,
) -> Vec<Idle> {
    let per_thread = n.div_ceil(threads);
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let tls = tls.clone();
            let count = per_thread.min(n.saturating_sub(t * per_thread));
            std::thread::spawn(move || {
                (0..count)
                    .map(|_| open_one(addr, tls.as_ref()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().expect("opening thread"))
        .collect()
}

fn open_one(addr: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> Idle {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    if let Some(config) = tls {
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let mut conn =
            rustls::ClientConnection::new(config.clone(), name).expect("TLS client state");
        while conn.is_handshaking() {
            conn.complete_io(&mut stream)
                .unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"));
        }
        while conn.wants_write() {
            conn.write_tls(&mut stream).expect("TLS write");
        }
        stream.flush().expect("flush");
    }
    stream.set_nonblocking(true).expect("non-blocking");
    Idle {
        stream,
        ready: Instant::now(),
        closed: None,
    }
}

/// The agent's `last_seen_at` (unix seconds).
fn last_seen(api: &Api, agent: &str) -> i64 {
    api.get(&format!("/agents/{agent}"))["last_seen_at"]
        .as_i64()
        .unwrap_or(0)
}

fn unix_now() -> i64 {
    crate::common::server::unix_now()
}

/// `GET /metrics` on the REST listener (scanner namespace).
fn scrape(net: &dyn Ns) -> String {
    let addr: SocketAddr = API.parse().expect("addr");
    let mut stream = net.connect(addr).expect("connect to the REST listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.starts_with("HTTP/1.1 200 "), "{response}");
    body.to_string()
}

/// The value of `series` (name and labels exactly as exposed) in `/metrics`.
fn metric(api: &Api, series: &str) -> f64 {
    let text = scrape(api.net);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

/// Polls every idle connection until all are closed or `limit` has
/// passed, checking the agent's heartbeats on the way (every 500 ms: the
/// agent was heard from within 3 s). Returns the lags seen.
fn watch_until_closed(conns: &mut [&mut Idle], api: &Api, agent: &str, limit: Duration) -> i64 {
    let start = Instant::now();
    let mut buf = vec![0u8; 16 << 10];
    let mut worst_lag = 0;
    let mut next_check = Instant::now();
    loop {
        for c in conns.iter_mut() {
            c.poll(&mut buf);
        }
        let open = conns.iter().filter(|c| c.closed.is_none()).count();
        if Instant::now() >= next_check {
            let lag = unix_now() - last_seen(api, agent);
            worst_lag = worst_lag.max(lag);
            assert!(
                lag <= 3,
                "the agent was last heard from {lag} s ago with {open} idle connections open"
            );
            next_check = Instant::now() + Duration::from_millis(500);
        }
        if open == 0 || start.elapsed() > limit {
            return worst_lag;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts each connection was closed by the server between the timeout
/// and the timeout plus [`MARGIN`] after it was ready.
fn assert_closed_by_timeout(what: &str, conns: &[Idle]) {
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    let still_open = conns.iter().filter(|c| c.closed.is_none()).count();
    assert_eq!(
        still_open,
        0,
        "{still_open} of {} {what} still open",
        conns.len()
    );
    let held: Vec<Duration> = conns
        .iter()
        .filter_map(|c| Some(c.closed?.duration_since(c.ready)))
        .collect();
    let (min, max) = (held.iter().min(), held.iter().max());
    let (Some(&min), Some(&max)) = (min, max) else {
        panic!("no {what}");
    };
    eprintln!("{what}: closed {min:?} to {max:?} after their handshake");
    assert!(
        min + Duration::from_millis(500) >= timeout,
        "{what}: one was closed after {min:?}, before the {timeout:?} timeout"
    );
    assert!(
        max <= timeout + MARGIN,
        "{what}: one was closed only after {max:?}"
    );
}

#[test]
fn idle_connections_neither_stop_agents_nor_stay_open() {
    if !can_build_networks() {
        return;
    }
    // The test holds ~2,600 sockets itself.
    let open_files = vigil_scan::raise_nofile_limit().unwrap_or(u64::MAX);
    assert!(
        open_files > (IDLE_TLS + REST_CAP + 300) as u64,
        "the open-file limit ({open_files}) is too low for this test"
    );
    let tmp = tempfile::Builder::new()
        .prefix("vigil-slow-clients")
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    let net = TestNet::new(NetSpec::default()).expect("test network");
    net.add_host(HOME.parse().expect("ip")).expect("host");
    let timeout = TIMEOUT_SECS.to_string();
    let _server = start_server_with(
        &net,
        dir,
        &[
            "--heartbeat-secs",
            "1",
            "--tick-ms",
            "200",
            "--header-timeout-secs",
            &timeout,
            "--idle-timeout-secs",
            &timeout,
            "--max-connections",
            &REST_CAP.to_string(),
            "--agent-max-connections",
            &AGENT_CAP.to_string(),
        ],
        &[],
    );
    let api = owner_api(&net);
    let (_agent, agent) = enrolled_agent(&net, dir, &api, HOME, "home");
    wait_for(
        "the agent's first heartbeats",
        Duration::from_secs(20),
        || (unix_now() - last_seen(&api, &agent) <= 1).then_some(()),
    );
    let identity: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("home/identity.json")).expect("identity"),
    )
    .expect("identity JSON");
    let pin = identity["pin"].as_str().expect("pin").parse().expect("pin");
    let tls = Arc::new(vigil_agent::pinning::client_config(pin).expect("TLS config"));

    // 2,000 TLS connections to the agent listener from the agent's
    // network, a few hundred plain ones to the REST listener.
    let agent_addr = SocketAddr::new(IpAddr::V4(SCANNER_V4), 8443);
    let started = Instant::now();
    let mut tls_idle = net
        .in_target(|| open_idle(agent_addr, IDLE_TLS, Some(tls.clone()), 16))
        .expect("namespace");
    let rest_addr: SocketAddr = API.parse().expect("addr");
    let mut plain_idle = net
        .in_scanner(|| open_idle(rest_addr, IDLE_PLAIN, None, 4))
        .expect("namespace");
    eprintln!(
        "{} TLS and {} plain idle connections opened in {:?}",
        tls_idle.len(),
        plain_idle.len(),
        started.elapsed()
    );
    // All are held at once (plus the agent's own connection): opening
    // them takes seconds, well under the timeout.
    let open = metric(&api, "vigil_http_connections{listener=\"agent\"}");
    assert!(open >= IDLE_TLS as f64, "{open} agent connections open");

    // (a) The agent keeps being heard while they are open, and (b) they
    // are closed after the timeout.
    let limit = Duration::from_secs(TIMEOUT_SECS) + MARGIN + Duration::from_secs(5);
    let mut all: Vec<&mut Idle> = tls_idle.iter_mut().chain(plain_idle.iter_mut()).collect();
    let lag = watch_until_closed(&mut all, &api, &agent, limit);
    eprintln!("the agent was never more than {lag} s behind");
    assert_closed_by_timeout("idle TLS connections", &tls_idle);
    assert_closed_by_timeout("idle plain connections", &plain_idle);

    // (c) /metrics: the caps and the closes by the header timeout.
    let header = |listener: &str| {
        metric(
            &api,
            &format!(
                "vigil_http_connections_timed_out_total{{listener=\"{listener}\",timeout=\"header\"}}"
            ),
        )
    };
    assert!(header("agent") >= IDLE_TLS as f64, "{}", header("agent"));
    assert!(header("rest") >= IDLE_PLAIN as f64, "{}", header("rest"));
    for (listener, cap) in [("agent", AGENT_CAP), ("rest", REST_CAP)] {
        let series = format!("vigil_http_connection_limit{{listener=\"{listener}\"}}");
        assert_eq!(metric(&api, &series), cap as f64, "{series}");
    }
    let open = metric(&api, "vigil_http_connections{listener=\"agent\"}");
    assert!(open <= 2.0, "{open} agent connections still open");

    // Past the REST cap, connections are closed at once; the agent, on its
    // own listener, is still heard meanwhile.
    let extra = 20;
    let seen_before = last_seen(&api, &agent);
    let mut full = net
        .in_scanner(|| open_idle(rest_addr, REST_CAP + extra, None, 4))
        .expect("namespace");
    let mut buf = vec![0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(2);
    let refused = loop {
        full.iter_mut().for_each(|c| c.poll(&mut buf));
        let closed = full.iter().filter(|c| c.closed.is_some()).count();
        if closed >= extra || Instant::now() > deadline {
            break closed;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused, extra, "connections past the cap closed at once");
    std::thread::sleep(Duration::from_secs(2));
    let mut rest: Vec<&mut Idle> = full.iter_mut().filter(|c| c.closed.is_none()).collect();
    assert_eq!(rest.len(), REST_CAP, "the others are held");
    // (The REST listener is full: wait for the timeout before asking it.)
    let mut buf = vec![0u8; 1024];
    let until = Instant::now() + Duration::from_secs(TIMEOUT_SECS) + MARGIN;
    while rest.iter().any(|c| c.closed.is_none()) && Instant::now() < until {
        rest.iter_mut().for_each(|c| c.poll(&mut buf));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        last_seen(&api, &agent) > seen_before + 2,
        "heartbeats went on"
    );
    let refused = metric(
        &api,
        "vigil_http_connections_refused_total{listener=\"rest\"}",
    );
    assert!(refused >= extra as f64, "{refused} refused");
    assert_eq!(
        metric(
            &api,
            "vigil_http_connections_refused_total{listener=\"agent\"}"
        ),
        0.0
    );
}
