//! One TCP connect attempt and what it tells us.

use crate::sys::{self, SocketError};
use crate::timing::Timing;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bounds for reading a service's greeting after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BannerConfig {
    pub timeout: Duration,
    pub max_bytes: usize,
}

impl Default for BannerConfig {
    fn default() -> Self {
        BannerConfig {
            timeout: Duration::from_millis(1000),
            max_bytes: 256,
        }
    }
}

/// The outcome of one attempt.
#[derive(Debug)]
pub enum Answer {
    Open {
        rtt: Duration,
        banner: Option<Vec<u8>>,
    },
    Closed {
        rtt: Duration,
    },
    /// The network said no route (EHOSTUNREACH / ENETUNREACH); nmap's reason name.
    Unreachable(&'static str),
    /// An ICMP "administratively prohibited" or a local firewall (EACCES / EPERM).
    Prohibited,
    /// Nothing came back before the timeout.
    NoResponse,
    /// Out of local resources (file descriptors, ephemeral ports, buffers):
    /// not an answer from the target, try again later.
    LocalExhausted,
    /// The kernel connected the socket to itself (scanning our own ephemeral
    /// range on loopback); says nothing about the port.
    SelfConnect,
    Cancelled,
}

/// Connects once to `addr`, waiting as long as the host's adaptive timeout allows.
pub async fn connect_once(
    addr: SocketAddr,
    timing: &Timing,
    banner: Option<BannerConfig>,
    cancel: &CancellationToken,
    pool: &SocketPool,
) -> Answer {
    let start = Instant::now();
    let socket = match start_connect(addr, pool) {
        Ok(Started::Refused) => {
            return Answer::Closed {
                rtt: start.elapsed(),
            }
        }
        Ok(Started::Pending(s)) => s,
        Err(e) => return classify_error(&e),
    };
    let stream = match TcpStream::from_std(socket.into()) {
        Ok(s) => s,
        Err(e) => return classify_error(&e),
    };
    // The host's timeout shrinks as answers arrive, so a probe sent before
    // the first answer re-checks it at least every `min_timeout`.
    let recheck = timing.config().min_timeout;
    let result = loop {
        let deadline = start + timing.timeout(addr.ip());
        let wake = deadline.min(Instant::now() + recheck);
        tokio::select! {
            r = stream.writable() => break r.and_then(|()| connect_result(&stream)),
            _ = cancel.cancelled() => return Answer::Cancelled,
            _ = tokio::time::sleep_until(wake) => {
                if Instant::now() >= start + timing.timeout(addr.ip()) {
                    return Answer::NoResponse;
                }
            }
        }
    };
    let rtt = start.elapsed();
    match result {
        Ok(()) => {
            if stream.local_addr().ok() == Some(addr) {
                return Answer::SelfConnect;
            }
            // Close with RST: no FIN exchange and no TIME_WAIT, so ephemeral
            // ports are free again at once (nmap does the same). Only
            // established connections need it.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            let banner = match banner {
                Some(cfg) => read_banner(stream, cfg).await,
                None => None,
            };
            Answer::Open { rtt, banner }
        }
        Err(e) => match SocketError::of(&e) {
            SocketError::Refused => Answer::Closed { rtt },
            _ => classify_error(&e),
        },
    }
}

enum Started {
    /// Refused before we looked away: the answer is already known.
    Refused,
    /// Handshake under way (or already complete).
    Pending(socket2::Socket),
}

/// Sockets whose connect was refused, ready to connect again.
///
/// Linux lets a TCP socket whose connect failed connect again, so a scan of
/// mostly closed ports needs no `socket`/`close` per port (a third of the
/// kernel time of a 0 ms full-range scan). One pool per shard thread; it
/// stays empty where the OS does not allow it
/// ([`sys::CONNECT_AGAIN_REPORTS_REFUSAL`]).
#[derive(Default)]
pub struct SocketPool {
    v4: RefCell<Vec<socket2::Socket>>,
    v6: RefCell<Vec<socket2::Socket>>,
}

impl SocketPool {
    const CAP: usize = 64;

    fn list(&self, addr: SocketAddr) -> &RefCell<Vec<socket2::Socket>> {
        if addr.is_ipv4() {
            &self.v4
        } else {
            &self.v6
        }
    }

    fn take(&self, addr: SocketAddr) -> Option<socket2::Socket> {
        self.list(addr).borrow_mut().pop()
    }

    fn put(&self, addr: SocketAddr, sock: socket2::Socket) {
        if !sys::CONNECT_AGAIN_REPORTS_REFUSAL {
            return;
        }
        let mut list = self.list(addr).borrow_mut();
        if list.len() < Self::CAP {
            list.push(sock);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.v4.borrow().len() + self.v6.borrow().len()
    }
}

/// Starts a non-blocking connect, answering at once when the port refused
/// before `connect` returned.
///
/// `tokio::net::TcpSocket::connect` would always register the socket with
/// the reactor first. On a fast link the RST of a closed port is usually
/// processed before `connect` returns, so on Linux asking again (a second
/// `connect` reports how the first ended, and resets a refused socket for
/// reuse) answers most closed ports without touching epoll. Windows
/// reports refusals only asynchronously: there the first `connect` is all.
fn start_connect(addr: SocketAddr, pool: &SocketPool) -> std::io::Result<Started> {
    if let Some(sock) = pool.take(addr) {
        match try_connect(addr, sock, pool) {
            Err(e) if SocketError::of(&e) == SocketError::IsConnected => {
                // Not reusable after all; fall back to a fresh socket.
                tracing::debug!("pooled socket refused to reconnect");
            }
            other => return other,
        }
    }
    try_connect(addr, sys::tcp_socket(addr)?, pool)
}

fn try_connect(
    addr: SocketAddr,
    sock: socket2::Socket,
    pool: &SocketPool,
) -> std::io::Result<Started> {
    let target = addr.into();
    let kind = |r: &std::io::Result<()>| r.as_ref().err().map(SocketError::of);
    let first = sock.connect(&target);
    match kind(&first) {
        None => return Ok(Started::Pending(sock)),
        Some(SocketError::InProgress) if !sys::CONNECT_AGAIN_REPORTS_REFUSAL => {
            return Ok(Started::Pending(sock))
        }
        Some(SocketError::InProgress) => {}
        Some(SocketError::Refused) => {
            pool.put(addr, sock);
            return Ok(Started::Refused);
        }
        Some(_) => return first.map(|()| Started::Pending(sock)),
    }
    let second = sock.connect(&target);
    match kind(&second) {
        Some(SocketError::Refused) => {
            pool.put(addr, sock);
            Ok(Started::Refused)
        }
        // Still in progress, or already connected.
        None
        | Some(SocketError::Already)
        | Some(SocketError::InProgress)
        | Some(SocketError::IsConnected) => Ok(Started::Pending(sock)),
        Some(_) => second.map(|()| Started::Pending(sock)),
    }
}

/// After the socket became writable: connected, or the handshake's error.
fn connect_result(stream: &TcpStream) -> std::io::Result<()> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    // Writable without an error means connected; `peer_addr` confirms it
    // (ENOTCONN would be a spurious wake-up, reported as an error).
    stream.peer_addr().map(drop)
}

fn classify_error(e: &std::io::Error) -> Answer {
    match SocketError::of(e) {
        SocketError::HostUnreachable => Answer::Unreachable("host-unreach"),
        SocketError::NetUnreachable => Answer::Unreachable("net-unreach"),
        SocketError::Prohibited => Answer::Prohibited,
        SocketError::LocalExhausted => Answer::LocalExhausted,
        SocketError::TimedOut => Answer::NoResponse,
        // A refusal is handled before this; the rest were not expected here.
        SocketError::Refused
        | SocketError::InProgress
        | SocketError::Already
        | SocketError::IsConnected
        | SocketError::Other => {
            tracing::debug!(error = %e, "unexpected connect error, counting as no response");
            Answer::NoResponse
        }
    }
}

async fn read_banner(mut stream: TcpStream, cfg: BannerConfig) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; cfg.max_bytes];
    let mut filled = 0;
    let deadline = Instant::now() + cfg.timeout;
    while filled < buf.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[filled..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => filled += n,
        }
    }
    buf.truncate(filled);
    (!buf.is_empty()).then_some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimingConfig;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn open_closed_and_banner_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        tokio::spawn(async move {
            // Keep accepting after an error: Winsock may fail an accept
            // whose client already reset (the probes close with RST).
            loop {
                match listener.accept().await {
                    Ok((mut s, _)) => {
                        let _ = s.write_all(b"SSH-2.0-test\r\n").await;
                    }
                    Err(e) => eprintln!("accept: {e}"),
                }
            }
        });
        // A port we know is closed: bind, learn its number, drop it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let timing = Timing::new(TimingConfig::default());
        let cancel = CancellationToken::new();
        let pool = SocketPool::default();
        match connect_once(open, &timing, Some(BannerConfig::default()), &cancel, &pool).await {
            Answer::Open { banner, .. } => {
                assert_eq!(banner.as_deref(), Some(&b"SSH-2.0-test\r\n"[..]))
            }
            other => panic!("expected open, got {other:?}"),
        }
        assert!(matches!(
            connect_once(closed, &timing, None, &cancel, &pool).await,
            Answer::Closed { .. }
        ));
        // The refused socket is reused (where the OS allows it), and still
        // tells open from closed.
        let pooled = usize::from(sys::CONNECT_AGAIN_REPORTS_REFUSAL);
        assert_eq!(pool.len(), pooled);
        for _ in 0..3 {
            let answer = connect_once(open, &timing, None, &cancel, &pool).await;
            assert!(matches!(answer, Answer::Open { .. }), "{answer:?}");
            assert!(matches!(
                connect_once(closed, &timing, None, &cancel, &pool).await,
                Answer::Closed { .. }
            ));
        }
    }

    #[test]
    fn error_classification() {
        let cases = [
            (SocketError::HostUnreachable, "unreachable host-unreach"),
            (SocketError::NetUnreachable, "unreachable net-unreach"),
            (SocketError::LocalExhausted, "exhausted"),
            (SocketError::Prohibited, "prohibited"),
            (SocketError::TimedOut, "no response"),
        ];
        let code = |want: SocketError| {
            (0..20_000)
                .find(|&n| sys::classify(n) == want)
                .expect("a code for every kind")
        };
        for (kind, want) in cases {
            let got = match classify_error(&std::io::Error::from_raw_os_error(code(kind))) {
                Answer::Unreachable(r) => format!("unreachable {r}"),
                Answer::LocalExhausted => "exhausted".into(),
                Answer::Prohibited => "prohibited".into(),
                Answer::NoResponse => "no response".into(),
                other => format!("{other:?}"),
            };
            assert_eq!(got, want, "{kind:?}");
        }
    }
}
