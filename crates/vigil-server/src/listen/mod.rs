//! Serving HTTP connections on the server's two listeners: the REST API and
//! web console (plain TCP) and the agent API (TLS). Both go through
//! [`serve`], so a slow or silent client meets the same limits on either.
//!
//! Why a loop of our own and not `axum::serve`: axum's loop has no
//! connection cap, no header-read timer and no idle timeout, and the agent
//! listener needs a TLS handshake in the loop anyway. hyper does the HTTP
//! (hyper-util's `auto` builder: HTTP/1.1 and HTTP/2); this module decides
//! how many connections are served and how long each may take:
//!
//! | limit | what it bounds | default |
//! |---|---|---|
//! | cap ([`HttpLimits::max_connections`], [`HttpLimits::agent_max_connections`]) | connections served at once, per listener | 1,024 / 16,384 |
//! | TLS handshake ([`HttpLimits::tls_handshake_timeout`]) | accept → handshake done (agent listener) | 10 s |
//! | header ([`HttpLimits::header_timeout`]) | connection ready → first request head read | 20 s |
//! | idle ([`HttpLimits::idle_timeout`]) | response sent → next request head read; a response the client stops reading | 45 s |
//! | request ([`HttpLimits::request_timeout`]) | request head read → response head (the body upload included) | 60 s |
//!
//! **At the cap, new connections are accepted and closed at once** rather
//! than left in the kernel's backlog: the client learns at once (an agent
//! fails over to another replica, or retries at its next heartbeat, with its
//! results spooled), the refusals can be counted, and the listener never
//! looks dead to a load balancer's health check while it sheds load. The
//! agent listener has its own, larger cap, so a flood of the REST listener
//! (or of the agent one) never takes the other's connections; both caps
//! together stay under half the process's open-file limit
//! ([`HttpLimits::fit_to_open_files`]), the rest being left to the database
//! pool, scans and files.
//!
//! The timeouts are kept by a watchdog on each connection
//! ([`connection`]): hyper's own header-read timer starts only once the
//! `auto` builder has seen the first bytes (it reads them to tell HTTP/1
//! from HTTP/2, without a timer), and HTTP/1 in hyper has no idle timeout
//! of its own. Streaming responses (the compliance CSV export, agent
//! downloads) are not cut by the request timeout, which ends at the
//! response head; while they stream, only a client that stops reading
//! them is (after the idle timeout). A handler that legitimately runs
//! longer (moving agents asks peer servers one agent at a time) takes the
//! [`long_request`] layer.
//!
//! `/metrics` shows, per listener (`rest`, `agent`): the cap, the open
//! connections, the connections refused at the cap, those closed by each
//! timeout and the requests answered 503 for the request timeout.
//!
//! On shutdown the listener stops accepting, asks every connection to
//! finish (an idle one closes at once, a running request completes), and
//! drops what is still open after [`DRAIN_GRACE`].

mod connection;

pub(crate) use connection::long_request;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// The TCP peer of a connection, put into every request of it (also as
/// axum's `ConnectInfo<SocketAddr>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// How long the listeners wait for open connections at shutdown: below
/// the server's own shutdown grace (10 s), so a listener ends by itself.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_secs(8);

/// The connection limits of both listeners (`vigil server
/// --max-connections`, `--agent-max-connections`, `--header-timeout-secs`,
/// `--request-timeout-secs`, `--idle-timeout-secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections the REST listener (API, console, `/metrics`) serves at
    /// once; more are closed at once. Browsers hold about six each.
    pub max_connections: usize,
    /// Connections the agent listener serves at once. An agent holds one
    /// (two for a moment when a result upload meets a heartbeat): size it
    /// above the number of agents.
    pub agent_max_connections: usize,
    /// Accept → TLS handshake done (agent listener).
    pub tls_handshake_timeout: Duration,
    /// A new connection (after its TLS handshake) must have sent its first
    /// request head within this; a silent or trickling client is closed.
    pub header_timeout: Duration,
    /// Request head read → response head: the handler, reading the request
    /// body included. Answered `503` with a JSON error when it runs out.
    /// Streaming response bodies are not bounded by it.
    pub request_timeout: Duration,
    /// After a response, the next request head must be read within this,
    /// or the connection is closed (HTTP/1 keep-alive and HTTP/2 without
    /// open streams). Also: a response the client has stopped reading for
    /// this long. Longer than the agents' heartbeat (30 s by default), so
    /// an agent's next heartbeat reuses its connection.
    pub idle_timeout: Duration,
    /// HTTP/2: requests one connection may run at once.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: ping the client this often; one that does not answer within
    /// 20 s is dropped (a half-open connection).
    pub h2_keep_alive_interval: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            agent_max_connections: 16_384,
            tls_handshake_timeout: Duration::from_secs(10),
            // Apache's mod_reqtimeout starts at 20 s; a real client sends
            // its head within milliseconds of connecting.
            header_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(45),
            h2_max_concurrent_streams: 64,
            h2_keep_alive_interval: Duration::from_secs(30),
        }
    }
}

/// The two caps together take at most this share (1/n) of the open-file
/// limit; the rest stays for database connections, scans and files.
const OPEN_FILES_SHARE: u64 = 2;

impl HttpLimits {
    /// These limits with both caps lowered, in proportion, to fit half of
    /// `open_files` (the process's open-file limit) when they do not.
    /// Returns whether they were lowered.
    pub fn fit_to_open_files(&mut self, open_files: Option<u64>) -> bool {
        let Some(open_files) = open_files else {
            return false;
        };
        let budget = u128::from((open_files / OPEN_FILES_SHARE).max(2));
        let rest = self.max_connections as u128;
        let agent = self.agent_max_connections as u128;
        let total = rest + agent;
        if total <= budget {
            return false;
        }
        let scale = |n: u128| usize::try_from((n * budget / total).max(1)).unwrap_or(1);
        self.max_connections = scale(rest);
        self.agent_max_connections = scale(agent);
        true
    }
}

/// One listener: its name in metrics and logs, its cap, and TLS if any.
pub(crate) struct Listener {
    pub name: &'static str,
    pub cap: usize,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: HttpLimits,
    pub metrics: ListenerMetrics,
}

/// Serves `router` on `tcp` until `shutdown`, then drains (see the module
/// documentation).
pub(crate) async fn serve(
    tcp: TcpListener,
    listener: Listener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = listener.name;
    let cap = listener.cap.max(1);
    listener.metrics.cap.set(gauge_value(cap));
    let permits = Arc::new(Semaphore::new(cap));
    let shared = Arc::new(connection::Shared::new(listener, router));
    let mut connections = JoinSet::new();
    let mut refusals = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause, do not spin.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // At the cap: closed at once (see the module documentation).
            drop(stream);
            shared.metrics.refused.inc();
            refusals.refused(name, cap);
            continue;
        };
        // Answers are small and follow a small write (a TLS session
        // ticket): without this, Nagle and the client's delayed ACK hold
        // the first answer on a new connection ~40 ms.
        let _ = stream.set_nodelay(true);
        connections.spawn(connection::serve(
            stream,
            peer,
            shared.clone(),
            permit,
            shutdown.clone(),
        ));
    }
    drop(tcp);
    let grace = tokio::time::sleep(DRAIN_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() { break },
            _ = &mut grace => {
                tracing::warn!(listener = name, open = connections.len(), "connections still open at shutdown were dropped");
                connections.abort_all();
                break;
            }
        }
    }
}

/// Logs refusals at the cap at most every [`RefusalLog::EVERY`], with
/// how many there were: a flood must not flood the log too.
#[derive(Default)]
struct RefusalLog {
    since: Option<Instant>,
    count: u64,
}

impl RefusalLog {
    const EVERY: Duration = Duration::from_secs(10);

    fn refused(&mut self, listener: &'static str, cap: usize) {
        self.count += 1;
        if self.since.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        tracing::warn!(
            listener,
            cap,
            refused = self.count,
            "connection cap reached: new connections are closed at once \
             (raise --max-connections / --agent-max-connections if this is not an attack)"
        );
        self.since = Some(Instant::now());
        self.count = 0;
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Why the server closed a connection before the client did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// The TLS handshake took longer than its timeout.
    TlsHandshake,
    /// No complete first request head within the header timeout.
    Header,
    /// No next request head within the idle timeout.
    Idle,
    /// The client stopped reading a response for the idle timeout.
    Stalled,
}

impl Timeout {
    const ALL: [Timeout; 4] = [
        Timeout::TlsHandshake,
        Timeout::Header,
        Timeout::Idle,
        Timeout::Stalled,
    ];

    fn label(self) -> &'static str {
        match self {
            Timeout::TlsHandshake => "tls_handshake",
            Timeout::Header => "header",
            Timeout::Idle => "idle",
            Timeout::Stalled => "stalled",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    listener: &'static str,
    timeout: &'static str,
}

/// The connection metrics of both listeners, part of `/metrics`.
#[derive(Default)]
pub(crate) struct ConnectionMetrics {
    cap: Family<ListenerLabels, Gauge>,
    open: Family<ListenerLabels, Gauge>,
    refused: Family<ListenerLabels, Counter>,
    timed_out: Family<TimeoutLabels, Counter>,
    request_timeouts: Family<ListenerLabels, Counter>,
}

impl ConnectionMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connection_limit",
            "Connections a listener (rest, agent) serves at once; more are closed at once",
            self.cap.clone(),
        );
        registry.register(
            "http_connections",
            "Connections a listener (rest, agent) serves now",
            self.open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections closed at once because their listener was at its cap",
            self.refused.clone(),
        );
        registry.register(
            "http_connections_timed_out",
            "Connections the server closed for a timeout, by listener and timeout \
             (tls_handshake, header, idle, stalled: the client stopped reading)",
            self.timed_out.clone(),
        );
        registry.register(
            "http_requests_timed_out",
            "Requests answered 503 because they ran past the request timeout, by listener",
            self.request_timeouts.clone(),
        );
    }

    /// The metrics of the listener `name`, every series shown from the start.
    pub(crate) fn listener(&self, name: &'static str) -> ListenerMetrics {
        let labels = ListenerLabels { listener: name };
        let timed_out = Timeout::ALL.map(|t| {
            self.timed_out
                .get_or_create(&TimeoutLabels {
                    listener: name,
                    timeout: t.label(),
                })
                .clone()
        });
        ListenerMetrics {
            cap: self.cap.get_or_create(&labels).clone(),
            open: self.open.get_or_create(&labels).clone(),
            refused: self.refused.get_or_create(&labels).clone(),
            timed_out,
            request_timeouts: self.request_timeouts.get_or_create(&labels).clone(),
        }
    }
}

/// Handles on one listener's series (cheap clones of shared counters).
#[derive(Clone)]
pub(crate) struct ListenerMetrics {
    cap: Gauge,
    open: Gauge,
    refused: Counter,
    /// In the order of [`Timeout::ALL`].
    timed_out: [Counter; 4],
    request_timeouts: Counter,
}

impl ListenerMetrics {
    fn timed_out(&self, why: Timeout) {
        if let Some(i) = Timeout::ALL.iter().position(|t| *t == why) {
            self.timed_out[i].inc();
        }
    }
}

#[cfg(test)]
mod tests;
