//! Windows: Winsock error codes and a fixed concurrency.
//!
//! `io::Error::raw_os_error()` on Windows is the Winsock code (10061 for a
//! refused connect), not an errno: the C runtime's `libc::E*` numbers of
//! the windows-gnu target would never match, so codes come from
//! `windows-sys`.

use super::SocketError;
use std::net::SocketAddr;
use windows_sys::Win32::Networking::WinSock as ws;

/// Winsock reports a refused connect only asynchronously (through the
/// socket's error after it polls writable), and a socket whose connect
/// failed must be closed, not connected again: no socket reuse and no
/// second-connect check here.
pub(crate) const CONNECT_AGAIN_REPORTS_REFUSAL: bool = false;

/// A non-blocking TCP socket for `addr`'s family (socket2 creates Windows
/// sockets non-inheritable already).
pub(crate) fn tcp_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

pub(crate) fn classify(code: i32) -> SocketError {
    match code {
        ws::WSAEWOULDBLOCK | ws::WSAEINPROGRESS => SocketError::InProgress,
        ws::WSAEALREADY => SocketError::Already,
        ws::WSAEISCONN => SocketError::IsConnected,
        ws::WSAECONNREFUSED => SocketError::Refused,
        ws::WSAEHOSTUNREACH | ws::WSAEHOSTDOWN => SocketError::HostUnreachable,
        ws::WSAENETUNREACH | ws::WSAENETDOWN => SocketError::NetUnreachable,
        ws::WSAEACCES => SocketError::Prohibited,
        ws::WSAETIMEDOUT => SocketError::TimedOut,
        ws::WSAEMFILE | ws::WSAENOBUFS | ws::WSAEADDRINUSE | ws::WSAEADDRNOTAVAIL => {
            SocketError::LocalExhausted
        }
        _ => SocketError::Other,
    }
}

/// Windows has no per-process descriptor limit like `RLIMIT_NOFILE`.
pub(crate) fn open_limit() -> Option<u64> {
    None
}

/// Windows bounds outbound connects by its dynamic port range (49152–65535
/// by default: 16,384 ports shared by every program on the machine), not by
/// a descriptor limit. Half of it leaves the other programs room; refused
/// and reset (linger 0) probes leave no TIME_WAIT behind, so the ports free
/// up as answers come in. A scan that still runs out gets WSAENOBUFS /
/// WSAEADDRINUSE, which the engine treats as local exhaustion and retries.
const DEFAULT_CONCURRENCY: usize = 8_192;

pub(crate) fn auto_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winsock_classification() {
        let cases = [
            (10035, SocketError::InProgress), // WSAEWOULDBLOCK
            (10037, SocketError::Already),
            (10056, SocketError::IsConnected),
            (10061, SocketError::Refused),
            (10065, SocketError::HostUnreachable),
            (10064, SocketError::HostUnreachable),
            (10051, SocketError::NetUnreachable),
            (10050, SocketError::NetUnreachable),
            (10013, SocketError::Prohibited),
            (10060, SocketError::TimedOut),
            (10024, SocketError::LocalExhausted),
            (10055, SocketError::LocalExhausted),
            (10048, SocketError::LocalExhausted),
            (10049, SocketError::LocalExhausted),
            (10022, SocketError::Other), // WSAEINVAL
        ];
        for (code, want) in cases {
            assert_eq!(classify(code), want, "Winsock code {code}");
        }
    }
}
