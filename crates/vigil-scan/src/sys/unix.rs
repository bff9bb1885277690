//! Unix: errno codes, `RLIMIT_NOFILE`, and Linux's reusable refused sockets.

use super::SocketError;
use std::net::SocketAddr;

/// Linux lets a TCP socket whose connect was refused connect again, and a
/// second `connect` on a socket whose handshake already failed reports the
/// refusal synchronously: the engine's two fast paths (socket reuse and the
/// second-connect check) rely on both.
pub(crate) const CONNECT_AGAIN_REPORTS_REFUSAL: bool = true;

/// A non-blocking, close-on-exec TCP socket for `addr`'s family.
pub(crate) fn tcp_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )
}

pub(crate) fn classify(code: i32) -> SocketError {
    match code {
        libc::EINPROGRESS => SocketError::InProgress,
        libc::EALREADY => SocketError::Already,
        libc::EISCONN => SocketError::IsConnected,
        libc::ECONNREFUSED => SocketError::Refused,
        libc::EHOSTUNREACH | libc::EHOSTDOWN => SocketError::HostUnreachable,
        libc::ENETUNREACH | libc::ENETDOWN => SocketError::NetUnreachable,
        libc::EACCES | libc::EPERM => SocketError::Prohibited,
        libc::ETIMEDOUT => SocketError::TimedOut,
        libc::EMFILE
        | libc::ENFILE
        | libc::ENOBUFS
        | libc::ENOMEM
        | libc::EADDRNOTAVAIL
        | libc::EAGAIN
        | libc::EADDRINUSE => SocketError::LocalExhausted,
        _ => SocketError::Other,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new
/// soft limit (1024 if it cannot be read).
pub(crate) fn open_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Some(1024);
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// Descriptors kept for the rest of the process (stdio, output files, resolver, runtime).
const RESERVED_FDS: u64 = 128;
/// Above this, more parallel connects stop paying off: the kernel's ephemeral
/// port range (28k by default) and the CPU become the limit.
const MAX_AUTO_CONCURRENCY: u64 = 10_000;

/// The open-file limit (after raising it) less a reserve, capped.
pub(crate) fn auto_concurrency() -> usize {
    concurrency_for_limit(open_limit().unwrap_or(1024))
}

fn concurrency_for_limit(nofile: u64) -> usize {
    nofile
        .saturating_sub(RESERVED_FDS)
        .clamp(16, MAX_AUTO_CONCURRENCY) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_follows_the_fd_limit() {
        assert_eq!(concurrency_for_limit(1024), 896);
        assert_eq!(concurrency_for_limit(100), 16);
        assert_eq!(concurrency_for_limit(1 << 20), 10_000);
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = open_limit();
        assert!(open_limit() >= before);
    }

    #[test]
    fn errno_classification() {
        let cases = [
            (libc::EINPROGRESS, SocketError::InProgress),
            (libc::ECONNREFUSED, SocketError::Refused),
            (libc::EHOSTUNREACH, SocketError::HostUnreachable),
            (libc::EHOSTDOWN, SocketError::HostUnreachable),
            (libc::ENETUNREACH, SocketError::NetUnreachable),
            (libc::EMFILE, SocketError::LocalExhausted),
            (libc::EADDRNOTAVAIL, SocketError::LocalExhausted),
            (libc::EACCES, SocketError::Prohibited),
            (libc::ETIMEDOUT, SocketError::TimedOut),
            (libc::EINVAL, SocketError::Other),
        ];
        for (code, want) in cases {
            assert_eq!(classify(code), want, "errno {code}");
        }
    }
}
