//! What the engine needs from the operating system, in one place: a
//! non-blocking TCP socket, what a socket error code means, how many
//! connects may be in flight, and whether a refused socket can connect
//! again. `unix.rs` speaks errno, `windows.rs` Winsock; the rest of the
//! crate only sees [`SocketError`] and these functions.

#[cfg(unix)]
#[path = "unix.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

pub(crate) use imp::{classify, open_limit, tcp_socket, CONNECT_AGAIN_REPORTS_REFUSAL};

/// Raw sockets for the SYN engine: Linux only (`raw_linux.rs`); elsewhere
/// (`raw_other.rs`) they cannot be opened and the connect engine is used.
#[cfg(target_os = "linux")]
#[path = "raw_linux.rs"]
pub(crate) mod raw;
#[cfg(not(target_os = "linux"))]
#[path = "raw_other.rs"]
pub(crate) mod raw;

/// What one raw read returned: for IPv4 the whole packet (a raw IPv4
/// socket includes the IP header), for IPv6 the transport header on, with
/// the source from the socket address. (Only Linux reads any.)
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum Received<'a> {
    Tcp4(&'a [u8]),
    Icmp4(&'a [u8]),
    Tcp6(std::net::Ipv6Addr, &'a [u8]),
    Icmp6(&'a [u8]),
}

/// Why a raw probe could not be sent. (Only Linux sends any.)
#[derive(Debug)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum SendError {
    /// The kernel's own routing says no (what a connect would be told).
    HostUnreachable,
    NetUnreachable,
    /// A local firewall refused it.
    Prohibited,
    /// Buffers full: nothing was sent; try again shortly.
    Busy,
    Other(std::io::Error),
}

/// What a socket call's error code says, in the engine's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketError {
    /// A non-blocking connect started (EINPROGRESS / WSAEWOULDBLOCK).
    InProgress,
    /// A connect is already under way on this socket (EALREADY / WSAEALREADY).
    Already,
    /// The socket is connected (EISCONN / WSAEISCONN).
    IsConnected,
    /// The port answered with a reset: closed.
    Refused,
    /// No route to the host (EHOSTUNREACH, EHOSTDOWN / WSAEHOSTUNREACH, WSAEHOSTDOWN).
    HostUnreachable,
    /// No route to the network (ENETUNREACH, ENETDOWN / WSAENETUNREACH, WSAENETDOWN).
    NetUnreachable,
    /// A firewall said no (EACCES, EPERM / WSAEACCES).
    Prohibited,
    /// The handshake timed out in the kernel.
    TimedOut,
    /// Out of descriptors, ephemeral ports or buffers on this machine:
    /// says nothing about the target.
    LocalExhausted,
    /// Anything else.
    Other,
}

impl SocketError {
    /// Classifies an `io::Error` from a socket call.
    pub(crate) fn of(e: &std::io::Error) -> SocketError {
        e.raw_os_error().map_or(SocketError::Other, classify)
    }
}

/// How many connects may be in flight when the user gave no number.
pub(crate) fn auto_concurrency() -> usize {
    imp::auto_concurrency()
}
