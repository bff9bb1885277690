//! One TCP connect attempt and what it tells us.

use crate::timing::Timing;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
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
) -> Answer {
    let socket = match new_socket(addr) {
        Ok(s) => s,
        Err(e) => return classify_error(&e),
    };
    let start = Instant::now();
    let connect = socket.connect(addr);
    tokio::pin!(connect);
    // The host's timeout shrinks as answers arrive, so a probe sent before
    // the first answer re-checks it at least every `min_timeout`.
    let recheck = timing.config().min_timeout;
    let result = loop {
        let deadline = start + timing.timeout(addr.ip());
        let wake = deadline.min(Instant::now() + recheck);
        tokio::select! {
            r = &mut connect => break r,
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
        Ok(stream) => {
            if stream.local_addr().ok() == Some(addr) {
                return Answer::SelfConnect;
            }
            let banner = match banner {
                Some(cfg) => read_banner(stream, cfg).await,
                None => None,
            };
            Answer::Open { rtt, banner }
        }
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Answer::Closed { rtt },
        Err(e) => classify_error(&e),
    }
}

fn new_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(
        domain,
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )?;
    // Close with RST: no FIN exchange and no TIME_WAIT, so ephemeral ports
    // are free again at once (nmap does the same).
    sock.set_linger(Some(Duration::ZERO))?;
    Ok(TcpSocket::from_std_stream(sock.into()))
}

fn classify_error(e: &std::io::Error) -> Answer {
    match e.raw_os_error() {
        Some(libc::EHOSTUNREACH) | Some(libc::EHOSTDOWN) => Answer::Unreachable("host-unreach"),
        Some(libc::ENETUNREACH) | Some(libc::ENETDOWN) => Answer::Unreachable("net-unreach"),
        Some(libc::EACCES) | Some(libc::EPERM) => Answer::Prohibited,
        Some(libc::ETIMEDOUT) => Answer::NoResponse,
        Some(libc::EMFILE)
        | Some(libc::ENFILE)
        | Some(libc::ENOBUFS)
        | Some(libc::ENOMEM)
        | Some(libc::EADDRNOTAVAIL)
        | Some(libc::EAGAIN)
        | Some(libc::EADDRINUSE) => Answer::LocalExhausted,
        _ => {
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
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"SSH-2.0-test\r\n").await;
            }
        });
        // A port we know is closed: bind, learn its number, drop it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let timing = Timing::new(TimingConfig::default());
        let cancel = CancellationToken::new();
        match connect_once(open, &timing, Some(BannerConfig::default()), &cancel).await {
            Answer::Open { banner, .. } => {
                assert_eq!(banner.as_deref(), Some(&b"SSH-2.0-test\r\n"[..]))
            }
            other => panic!("expected open, got {other:?}"),
        }
        assert!(matches!(
            connect_once(closed, &timing, None, &cancel).await,
            Answer::Closed { .. }
        ));
    }

    #[test]
    fn errno_classification() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        assert!(matches!(
            classify_error(&e(libc::EHOSTUNREACH)),
            Answer::Unreachable("host-unreach")
        ));
        assert!(matches!(
            classify_error(&e(libc::ENETUNREACH)),
            Answer::Unreachable("net-unreach")
        ));
        assert!(matches!(
            classify_error(&e(libc::EMFILE)),
            Answer::LocalExhausted
        ));
        assert!(matches!(
            classify_error(&e(libc::EADDRNOTAVAIL)),
            Answer::LocalExhausted
        ));
        assert!(matches!(
            classify_error(&e(libc::EACCES)),
            Answer::Prohibited
        ));
        assert!(matches!(
            classify_error(&e(libc::ETIMEDOUT)),
            Answer::NoResponse
        ));
    }
}
