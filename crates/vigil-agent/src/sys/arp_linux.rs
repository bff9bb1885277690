//! ARP on a Linux packet socket, and the neighbour table's room and
//! overflows (see `crate::arp` for why a sweep cares).
//!
//! The socket is `AF_PACKET`/`SOCK_DGRAM` bound to one interface and to
//! the ARP ethertype: the kernel adds and strips the Ethernet header, and
//! only that interface's ARP frames are read. std has no packet sockets;
//! `libc` is used directly (a few calls, each checked).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A packet socket for ARP on one interface.
pub struct ArpSocket {
    fd: OwnedFd,
    ifindex: i32,
}

fn arp_protocol() -> u16 {
    (libc::ETH_P_ARP as u16).to_be()
}

fn link_addr(ifindex: i32, to: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = arp_protocol();
    addr.sll_ifindex = ifindex;
    if let Some(mac) = to {
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac);
    }
    addr
}

impl ArpSocket {
    /// Opens the socket on `interface`; fails without `CAP_NET_RAW`
    /// (`PermissionDenied`) or when there is no such interface.
    pub fn open(interface: &str) -> io::Result<ArpSocket> {
        let name = CString::new(interface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        let ifindex = i32::try_from(ifindex)
            .ok()
            .filter(|i| *i > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such interface"))?;
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                i32::from(arp_protocol()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let addr = link_addr(ifindex, None);
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ArpSocket { fd, ifindex })
    }

    /// Broadcasts one ARP packet. A full send queue is waited out briefly
    /// (a burst can outrun a slow link); past that the packet is dropped,
    /// and the next round asks again.
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        let to = link_addr(self.ifindex, Some([0xff; 6]));
        for _ in 0..20 {
            // SAFETY: `packet` and `to` are valid for the lengths given.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    libc::MSG_DONTWAIT,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            let full =
                e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS);
            if !full {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Reads one packet into `buf`, waiting at most `timeout`; `None` when
    /// none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if ready == 0 {
            return Ok(None);
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }
}

/// How many more entries the IPv4 neighbour table takes before the kernel
/// refuses new ones: `gc_thresh3` less the entries it holds (both global
/// to the machine). `None` where either cannot be read (a network
/// namespace other than the first shows neither).
pub fn neighbour_room() -> Option<usize> {
    let limit: usize = fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stats = fs::read_to_string("/proc/net/stat/arp_cache").ok()?;
    let entries = column(&stats, "entries")?.into_iter().max()?;
    Some(limit.saturating_sub(entries as usize))
}

/// How many times the kernel has refused a neighbour entry since boot
/// (`table_fulls`, IPv4 and IPv6, summed over CPUs); `None` where the
/// counters cannot be read.
pub fn neighbour_overflows() -> Option<u64> {
    let mut total = None;
    for path in ["/proc/net/stat/arp_cache", "/proc/net/stat/ndisc_cache"] {
        if let Some(per_cpu) = fs::read_to_string(path)
            .ok()
            .and_then(|t| column(&t, "table_fulls"))
        {
            *total.get_or_insert(0) += per_cpu.iter().sum::<u64>();
        }
    }
    total
}

/// One column of a `/proc/net/stat/*_cache` table (a header line, then a
/// row of hex counters per CPU).
fn column(text: &str, name: &str) -> Option<Vec<u64>> {
    let mut lines = text.lines();
    let at = lines.next()?.split_whitespace().position(|h| h == name)?;
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| u64::from_str_radix(l.split_whitespace().nth(at)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_column_of_every_cpu() {
        let text = "entries  allocs   table_fulls\n\
                    00000402 00741a8e 000078d2\n\
                    00000402 007396c6 00000010\n";
        assert_eq!(column(text, "entries"), Some(vec![0x402, 0x402]));
        assert_eq!(column(text, "table_fulls"), Some(vec![0x78d2, 0x10]));
        assert_eq!(column(text, "nothing"), None);
        assert_eq!(column("entries\n0000zz\n", "entries"), None);
    }

    #[test]
    fn no_such_interface_is_an_error_not_a_panic() {
        let e = ArpSocket::open("vigil-nope0").err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::NotFound));
        assert!(ArpSocket::open("bad\0name").is_err());
    }
}
