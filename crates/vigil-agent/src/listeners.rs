//! Which process listens on an open port of this host.
//!
//! One attribution pass ([`attribute`]) reads the OS's listening sockets
//! once ([`crate::sys::listening_sockets`]: on Linux one walk of
//! `/proc/*/fd` builds the socket inode → pid map; on Windows one
//! `GetExtendedTcpTable`), matches each open port to the socket that
//! accepts connections to the scanned address, and looks each owning
//! process up once ([`crate::sys::ProcessLookup`]). The scan task runs it
//! only for the agent's own host, and only when ports are open.

use crate::sys::{self, ListeningSocket, ProcessLookup};
use crate::AgentError;
use std::collections::BTreeMap;
use std::net::IpAddr;
use vigil_core::listener::ProcessInfo;

/// The socket of `sockets` that takes connections to `addr`:`port`: one
/// bound to exactly that address, else to the wildcard of its family, else
/// (IPv4) to the IPv6 wildcard, which takes IPv4 too unless `V6ONLY`.
pub fn owner(sockets: &[ListeningSocket], addr: IpAddr, port: u16) -> Option<&ListeningSocket> {
    let mapped = |a: IpAddr| match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    };
    let addr = mapped(addr);
    let on_port = || sockets.iter().filter(|s| s.addr.port() == port);
    let rank = |s: &ListeningSocket| {
        let bound = mapped(s.addr.ip());
        if bound == addr {
            Some(0)
        } else if bound.is_unspecified() && bound.is_ipv4() == addr.is_ipv4() {
            Some(1)
        } else if bound.is_unspecified() && addr.is_ipv4() {
            Some(2)
        } else {
            None
        }
    };
    on_port()
        .filter_map(|s| Some((rank(s)?, s)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, s)| s)
}

/// The processes listening on `ports` of `addr` (this host's address):
/// ports whose owner the OS would not name are left out.
pub fn attribute(addr: IpAddr, ports: &[u16]) -> Result<BTreeMap<u16, ProcessInfo>, AgentError> {
    if ports.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sockets = sys::listening_sockets()?;
    let mut lookup = ProcessLookup::new();
    Ok(ports
        .iter()
        .filter_map(|&port| {
            let pid = owner(&sockets, addr, port)?.pid?;
            Some((port, lookup.info(pid)?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(addr: &str, pid: u32) -> ListeningSocket {
        ListeningSocket {
            addr: addr.parse().expect("addr"),
            pid: Some(pid),
            process: None,
        }
    }

    #[test]
    fn the_most_specific_socket_owns_the_port() {
        let sockets = [
            sock("[::]:80", 1),
            sock("0.0.0.0:80", 2),
            sock("192.0.2.5:80", 3),
            sock("[::]:22", 4),
            sock("127.0.0.1:8080", 5),
            sock("[::1]:9000", 6),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let pid = |a: &str, p: u16| owner(&sockets, ip(a), p).and_then(|s| s.pid);
        assert_eq!(pid("192.0.2.5", 80), Some(3));
        assert_eq!(pid("192.0.2.9", 80), Some(2));
        assert_eq!(pid("2001:db8::1", 80), Some(1));
        assert_eq!(pid("192.0.2.5", 22), Some(4)); // dual-stack wildcard
        assert_eq!(pid("::ffff:127.0.0.1", 8080), Some(5));
        assert_eq!(pid("192.0.2.5", 8080), None); // loopback only
        assert_eq!(pid("127.0.0.1", 9000), None);
        assert_eq!(pid("::1", 9000), Some(6));
        assert_eq!(pid("127.0.0.1", 443), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn attributes_this_processes_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let found = attribute("127.0.0.1".parse().expect("ip"), &[port]).expect("attribute");
        let me = found.get(&port).expect("attributed");
        assert_eq!(me.pid, std::process::id());
        assert_eq!(
            me.exe.as_deref(),
            std::env::current_exe().expect("exe").to_str()
        );
        assert!(attribute("127.0.0.1".parse().expect("ip"), &[])
            .expect("empty")
            .is_empty());
    }
}
