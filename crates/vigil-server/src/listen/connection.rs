//! One connection: its TLS handshake, hyper serving it, and the watchdog
//! that closes it when the client takes too long.
//!
//! The watchdog reads the connection's [`Activity`], kept up to date by the
//! service (a request started, its response head returned) and by the
//! response bodies (a frame handed to hyper, the body finished), and asks
//! at each moment whose turn it is:
//!
//! * a handler runs, or a streaming body waits for its next chunk: the
//!   server's turn, no deadline (the request timeout bounds the handler);
//! * a body frame was handed to hyper and no new one is asked for: hyper
//!   is waiting to write it, the client's turn to read (`stalled` after
//!   the idle timeout);
//! * no request open: the client's turn to send the next request head
//!   (`header` timeout for the first, `idle` timeout after a response).
//!
//! On a deadline the connection is shut down gracefully (an idle HTTP/1
//! connection closes at once, HTTP/2 says GOAWAY) and dropped if that has
//! not ended it within [`CLOSE_GRACE`].

use super::{Listener, ListenerMetrics, Peer, Timeout};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a connection asked to close (a timeout, a shutdown with
/// nothing running) may take to do so before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The deadline a [`long_request`] route gets instead of the request timeout.
pub(crate) const LONG_REQUEST: Duration = Duration::from_secs(30 * 60);

/// What every connection of a listener shares.
pub(super) struct Shared {
    pub metrics: ListenerMetrics,
    name: &'static str,
    limits: super::HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    router: axum::Router,
}

impl Shared {
    pub(super) fn new(listener: Listener, router: axum::Router) -> Self {
        let limits = listener.limits;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // hyper's own header timer is a backstop: it starts once the first
        // bytes are in (and again whenever an HTTP/1 connection waits for
        // its next request); set past the watchdog's deadlines, so a
        // timeout is counted under its own name.
        let backstop = limits.header_timeout.max(limits.idle_timeout) + CLOSE_GRACE;
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(backstop);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .keep_alive_interval(limits.h2_keep_alive_interval)
            .keep_alive_timeout(Duration::from_secs(20));
        Shared {
            metrics: listener.metrics,
            name: listener.name,
            limits,
            tls: listener.tls.map(tokio_rustls::TlsAcceptor::from),
            builder,
            router,
        }
    }
}

/// Serves one accepted connection; `permit` is its place under the cap.
pub(super) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
) {
    let _open = Open::new(&shared.metrics, permit);
    let Some(acceptor) = &shared.tls else {
        return drive(tcp, peer, &shared, shutdown).await;
    };
    let handshake = tokio::time::timeout(shared.limits.tls_handshake_timeout, acceptor.accept(tcp));
    match handshake.await {
        Ok(Ok(stream)) => drive(stream, peer, &shared, shutdown).await,
        Ok(Err(e)) => {
            tracing::debug!(listener = shared.name, %peer, error = %e, "TLS handshake failed")
        }
        Err(_) => shared.metrics.timed_out(Timeout::TlsHandshake),
    }
}

/// Counts an open connection and holds its permit until dropped (also
/// when the task is aborted).
struct Open {
    metrics: ListenerMetrics,
    _permit: OwnedSemaphorePermit,
}

impl Open {
    fn new(metrics: &ListenerMetrics, permit: OwnedSemaphorePermit) -> Self {
        metrics.open.inc();
        Open {
            metrics: metrics.clone(),
            _permit: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

/// HTTP over `io` until the client closes, a deadline passes or shutdown.
async fn drive<S>(io: S, peer: SocketAddr, shared: &Shared, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        let router = shared.router.clone();
        let metrics = shared.metrics.clone();
        let limit = shared.limits.request_timeout;
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let running = Running::start(&activity);
            req.extensions_mut().insert(Peer(peer));
            req.extensions_mut().insert(ConnectInfo(peer));
            let call = within_budget(router.clone(), req, limit, metrics.clone());
            async move {
                let response = call.await;
                // The body is counted before the handler stops being:
                // the connection is never idle in between.
                let streaming = Streaming::start(running);
                Ok::<_, Infallible>(response.map(|b| Body::new(Tracked::new(b, streaming))))
            }
        })
    };
    let conn = shared.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let limits = shared.limits;
    let watchdog = watchdog(&activity, limits.header_timeout, limits.idle_timeout);
    tokio::pin!(watchdog);
    let mut closing: Option<Instant> = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    let hyper_timeout = e
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_timeout);
                    // (Counted already if the watchdog was closing it.)
                    if hyper_timeout && closing.is_none() {
                        shared.metrics.timed_out(Timeout::Header);
                    }
                    tracing::debug!(listener = shared.name, %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            why = &mut watchdog, if closing.is_none() => {
                tracing::debug!(listener = shared.name, %peer, timeout = why.label(), "closing a slow connection");
                shared.metrics.timed_out(why);
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + CLOSE_GRACE);
            }
            _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                // Running requests finish; the listener drops what is
                // still open after its drain grace.
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = sleep_until_some(closing) => return,
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves with the timeout that passed, once one has.
async fn watchdog(activity: &Activity, header: Duration, idle: Duration) -> Timeout {
    loop {
        match activity.deadline(header, idle) {
            // The server's turn: look again after a while (a deadline
            // counts from when the turn changed, so this is never late).
            None => tokio::time::sleep(idle.min(header)).await,
            Some((at, why)) if at <= Instant::now() => return why,
            Some((at, _)) => tokio::time::sleep_until(at).await,
        }
    }
}

/// Where the requests of one connection are.
struct Activity {
    state: Mutex<State>,
}

struct State {
    /// Requests whose handler runs (no response head yet).
    handlers: usize,
    /// Response bodies not finished.
    bodies: usize,
    /// Of those, bodies waiting for their next chunk from the server.
    producing: usize,
    /// When the connection was last without requests and bodies.
    idle_since: Instant,
    /// When a body last handed hyper a frame (or a head was returned).
    last_frame: Instant,
    /// Whether a request was received yet.
    served: bool,
}

impl Activity {
    fn new() -> Self {
        let now = Instant::now();
        Activity {
            state: Mutex::new(State {
                handlers: 0,
                bodies: 0,
                producing: 0,
                idle_since: now,
                last_frame: now,
                served: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few counters, valid after any panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the client's time is up, and which timeout that is; `None`
    /// while it is the server's turn.
    fn deadline(&self, header: Duration, idle: Duration) -> Option<(Instant, Timeout)> {
        let s = self.lock();
        if s.handlers > 0 || s.producing > 0 {
            None
        } else if s.bodies > 0 {
            Some((s.last_frame + idle, Timeout::Stalled))
        } else if !s.served {
            Some((s.idle_since + header, Timeout::Header))
        } else {
            Some((s.idle_since + idle, Timeout::Idle))
        }
    }
}

impl State {
    fn maybe_idle(&mut self) {
        if self.handlers == 0 && self.bodies == 0 {
            self.idle_since = Instant::now();
        }
    }
}

/// A request whose handler runs, until it is dropped.
struct Running(Arc<Activity>);

impl Running {
    fn start(activity: &Arc<Activity>) -> Self {
        let mut s = activity.lock();
        s.handlers += 1;
        s.served = true;
        drop(s);
        Running(activity.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.handlers -= 1;
        s.maybe_idle();
    }
}

/// A response body being sent, until it is dropped (hyper drops it when
/// it has ended, or when the connection goes).
struct Streaming {
    activity: Arc<Activity>,
    /// Whether this body's last poll waited for the server.
    producing: bool,
}

impl Streaming {
    fn start(running: Running) -> Self {
        let activity = running.0.clone();
        let mut s = activity.lock();
        s.bodies += 1;
        s.last_frame = Instant::now();
        drop(s);
        drop(running);
        Streaming {
            activity,
            producing: false,
        }
    }

    /// A poll of the body returned; `pending`: it waits for the server.
    fn polled(&mut self, pending: bool) {
        let mut s = self.activity.lock();
        match (self.producing, pending) {
            (false, true) => s.producing += 1,
            (true, false) => s.producing -= 1,
            _ => {}
        }
        if !pending {
            s.last_frame = Instant::now();
        }
        self.producing = pending;
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let mut s = self.activity.lock();
        if self.producing {
            s.producing -= 1;
        }
        s.bodies -= 1;
        s.maybe_idle();
    }
}

/// A response body that reports its progress to the connection's watchdog.
struct Tracked {
    inner: Body,
    streaming: Streaming,
}

impl Tracked {
    fn new(inner: Body, streaming: Streaming) -> Self {
        Tracked { inner, streaming }
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        this.streaming.polled(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The deadline of one request, which a [`long_request`] route moves.
#[derive(Clone)]
struct Budget(Arc<Mutex<Instant>>);

impl Budget {
    fn deadline(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn extend(&self, to: Instant) {
        let mut at = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *at = (*at).max(to);
    }
}

/// Runs the request through `router`, answering `503` if no response head
/// is ready within the request's budget. (A small loop rather than
/// tower-http's `TimeoutLayer`: the deadline can move, and the answer is
/// the API's JSON error, which agents read as "try again".)
async fn within_budget(
    router: axum::Router,
    mut req: hyper::Request<Incoming>,
    limit: Duration,
    metrics: ListenerMetrics,
) -> Response {
    let budget = Budget(Arc::new(Mutex::new(Instant::now() + limit)));
    req.extensions_mut().insert(budget.clone());
    let call = router.oneshot(req);
    tokio::pin!(call);
    loop {
        let deadline = budget.deadline();
        tokio::select! {
            response = &mut call => return response.unwrap_or_else(|never| match never {}),
            _ = tokio::time::sleep_until(deadline) => {
                if budget.deadline() <= Instant::now() {
                    metrics.request_timeouts.inc();
                    return too_slow(limit);
                }
            }
        }
    }
}

fn too_slow(limit: Duration) -> Response {
    let body = vigil_proto::api::ErrorBody {
        error: format!(
            "the request took longer than {} s; try again later",
            limit.as_secs()
        ),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        axum::Json(body),
    )
        .into_response()
}

/// Route layer (`axum::middleware::from_fn(long_request)`) for handlers
/// that legitimately run longer than the request timeout: their deadline
/// becomes [`LONG_REQUEST`] from now.
pub(crate) async fn long_request(req: Request, next: Next) -> Response {
    if let Some(budget) = req.extensions().get::<Budget>() {
        budget.extend(Instant::now() + LONG_REQUEST);
    }
    next.run(req).await
}
