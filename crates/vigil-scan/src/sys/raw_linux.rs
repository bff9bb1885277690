//! Linux raw sockets for the SYN engine: one raw TCP and one raw ICMP
//! socket per address family, batched sends (`sendmmsg`), non-blocking
//! reads, and a classic BPF filter on each so the kernel hands over only
//! what can be an answer (a busy server sees every TCP segment otherwise).
//!
//! Needs `CAP_NET_RAW`. Our source port is reserved with an ordinary bound
//! TCP socket for as long as the sockets live, so no connection of this
//! host is given the same port while the scan's answers arrive.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{Received, SendError};
use crate::syn::SYN_LEN;

type Probe = (IpAddr, [u8; SYN_LEN]);

fn send_error(e: io::Error) -> SendError {
    match e.raw_os_error() {
        Some(libc::EHOSTUNREACH | libc::EHOSTDOWN) => SendError::HostUnreachable,
        Some(libc::ENETUNREACH | libc::ENETDOWN) => SendError::NetUnreachable,
        Some(libc::EACCES | libc::EPERM) => SendError::Prohibited,
        Some(libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM) => SendError::Busy,
        _ => SendError::Other(e),
    }
}

struct Family {
    tcp: OwnedFd,
    icmp: OwnedFd,
    port: u16,
    /// Holds `port` (see the module comment).
    _reserved: socket2::Socket,
}

pub(crate) struct RawSockets {
    v4: Option<Family>,
    v6: Option<Family>,
}

/// Whether this process may open raw sockets (`CAP_NET_RAW`).
pub(crate) fn permitted() -> bool {
    raw(libc::AF_INET, libc::IPPROTO_TCP).is_ok()
}

fn raw(domain: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Large buffers: a full-range scan's answers arrive faster than one
/// thread reads them in bursts. `*BUFFORCE` passes `rmem_max` when the
/// process may (`CAP_NET_ADMIN`); otherwise the plain option's cap holds.
fn grow_buffers(fd: RawFd) {
    let size: libc::c_int = 8 << 20;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        if setsockopt(fd, libc::SOL_SOCKET, force, &size).is_err() {
            let _ = setsockopt(fd, libc::SOL_SOCKET, plain, &size);
        }
    }
}

// Classic BPF, as <linux/filter.h> spells it.
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const H: u16 = 0x08;
const B: u16 = 0x10;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MSH: u16 = 0xa0;
const JEQ: u16 = 0x10;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Keeps packets whose value loaded by `load` equals `want`. With
/// `ip_header`, offsets count from the end of the IPv4 header (raw IPv4
/// sockets see it; raw IPv6 sockets see the transport header only).
fn filter(fd: RawFd, ip_header: bool, load: u16, at: u32, want: u32) -> io::Result<()> {
    let mut prog = Vec::new();
    if ip_header {
        // X = 4 * (IHL of byte 0)
        prog.push(op(LDX | B | MSH, 0, 0, 0));
        prog.push(op(LD | load | IND, 0, 0, at));
    } else {
        prog.push(op(LD | load | ABS, 0, 0, at));
    }
    prog.push(op(JMP | JEQ, 0, 1, want));
    prog.push(op(RET, 0, 0, u32::MAX));
    prog.push(op(RET, 0, 0, 0));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

impl Family {
    fn open(v4: bool) -> io::Result<Family> {
        let (domain, icmp_proto, any): (i32, i32, IpAddr) = if v4 {
            (
                libc::AF_INET,
                libc::IPPROTO_ICMP,
                Ipv4Addr::UNSPECIFIED.into(),
            )
        } else {
            (
                libc::AF_INET6,
                libc::IPPROTO_ICMPV6,
                Ipv6Addr::UNSPECIFIED.into(),
            )
        };
        let reserved = socket2::Socket::new(
            socket2::Domain::for_address(SocketAddr::new(any, 0)),
            socket2::Type::STREAM.cloexec(),
            Some(socket2::Protocol::TCP),
        )?;
        if !v4 {
            reserved.set_only_v6(true)?;
        }
        reserved.bind(&SocketAddr::new(any, 0).into())?;
        let port = reserved.local_addr()?.as_socket().map_or(0, |a| a.port());
        let tcp = raw(domain, libc::IPPROTO_TCP)?;
        let icmp = raw(domain, icmp_proto)?;
        if !v4 {
            // The kernel fills in the TCP checksum at offset 16 (it knows
            // the source address it picks; IPv4's is computed by us).
            setsockopt(
                tcp.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_CHECKSUM,
                &16i32,
            )?;
        }
        // TCP: destination port (offset 2 of the TCP header) is ours.
        filter(tcp.as_raw_fd(), v4, H, 2, u32::from(port))?;
        // ICMP: only "destination unreachable" (type 3; ICMPv6 type 1).
        filter(icmp.as_raw_fd(), v4, B, 0, if v4 { 3 } else { 1 })?;
        for fd in [&tcp, &icmp] {
            grow_buffers(fd.as_raw_fd());
        }
        Ok(Family {
            tcp,
            icmp,
            port,
            _reserved: reserved,
        })
    }
}

impl RawSockets {
    /// Raw sockets for the families asked for.
    pub(crate) fn open(v4: bool, v6: bool) -> io::Result<RawSockets> {
        Ok(RawSockets {
            v4: v4.then(|| Family::open(true)).transpose()?,
            v6: v6.then(|| Family::open(false)).transpose()?,
        })
    }

    /// The source port probes of this family carry.
    pub(crate) fn our_port(&self, v4: bool) -> u16 {
        let family = if v4 { &self.v4 } else { &self.v6 };
        family.as_ref().map_or(0, |f| f.port)
    }

    /// Sends `probes` (destination, TCP segment) in as few system calls as
    /// it can. Returns how many were dealt with — sent, or failed with the
    /// error listed by index; the rest (buffers full) were not sent.
    pub(crate) fn send(&self, probes: &[Probe]) -> (usize, Vec<(usize, SendError)>) {
        let mut failed = Vec::new();
        let mut done = 0;
        while done < probes.len() {
            let v4 = probes[done].0.is_ipv4();
            let run = probes[done..]
                .iter()
                .take_while(|(a, _)| a.is_ipv4() == v4)
                .count();
            let family = if v4 { &self.v4 } else { &self.v6 };
            let Some(family) = family else {
                failed.push((
                    done,
                    SendError::Other(io::Error::other("address family not open")),
                ));
                done += 1;
                continue;
            };
            let slice = &probes[done..done + run];
            match send_run(family.tcp.as_raw_fd(), slice) {
                Ok(n) => done += n,
                Err(SendError::Busy) => return (done, failed),
                Err(e) => {
                    failed.push((done, e));
                    done += 1;
                }
            }
        }
        (done, failed)
    }

    /// Waits until an answer can be read, at most `timeout`.
    pub(crate) fn wait(&self, timeout: Duration) {
        let mut fds: Vec<libc::pollfd> = self
            .families()
            .flat_map(|f| [&f.tcp, &f.icmp])
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `fds` is a live array of `fds.len()` pollfds; a timeout
        // or EINTR just returns early, which the caller handles.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            );
        }
    }

    /// Reads every answer waiting (up to `limit` packets) into `on`.
    pub(crate) fn drain(
        &self,
        buf: &mut [u8],
        limit: usize,
        mut on: impl FnMut(Received<'_>),
    ) -> usize {
        let mut n = 0;
        if let Some(f) = &self.v4 {
            n += read_all(f.tcp.as_raw_fd(), buf, limit, |b, _| on(Received::Tcp4(b)));
            n += read_all(f.icmp.as_raw_fd(), buf, limit, |b, _| {
                on(Received::Icmp4(b))
            });
        }
        if let Some(f) = &self.v6 {
            n += read_all(f.tcp.as_raw_fd(), buf, limit, |b, from| {
                if let Some(src) = from {
                    on(Received::Tcp6(src, b));
                }
            });
            n += read_all(f.icmp.as_raw_fd(), buf, limit, |b, _| {
                on(Received::Icmp6(b))
            });
        }
        n
    }

    fn families(&self) -> impl Iterator<Item = &Family> {
        self.v4.iter().chain(self.v6.iter())
    }
}

/// `sendmmsg` of a run of one family; how many went out, or the first
/// one's error.
fn send_run(fd: RawFd, probes: &[Probe]) -> Result<usize, SendError> {
    const MAX: usize = 256;
    let probes = &probes[..probes.len().min(MAX)];
    // SAFETY: all-zero sockaddr_storage is a valid (unspecified) address.
    let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; probes.len()];
    let mut lens = Vec::with_capacity(probes.len());
    for ((ip, _), storage) in probes.iter().zip(addrs.iter_mut()) {
        // Port 0: raw sockets take the protocol from the socket.
        let sa: socket2::SockAddr = SocketAddr::new(*ip, 0).into();
        // SAFETY: SockAddr's storage holds `len()` valid bytes of a
        // sockaddr, which fits in sockaddr_storage.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sa.as_ptr().cast::<u8>(),
                (storage as *mut libc::sockaddr_storage).cast::<u8>(),
                sa.len() as usize,
            );
        }
        lens.push(sa.len());
    }
    let mut iovs: Vec<libc::iovec> = probes
        .iter()
        .map(|(_, p)| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = (0..probes.len())
        .map(|i| {
            // SAFETY: zeroed msghdr is valid; the pointers set below stay
            // alive (addrs, iovs) until sendmmsg returns.
            let mut m: libc::mmsghdr = unsafe { zeroed() };
            m.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
            m.msg_hdr.msg_namelen = lens[i];
            m.msg_hdr.msg_iov = &mut iovs[i];
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    // SAFETY: `msgs` holds `msgs.len()` initialised headers (see above).
    let rc = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    if rc < 0 {
        return Err(send_error(io::Error::last_os_error()));
    }
    Ok(rc as usize)
}

/// Reads datagrams until none is left (or `limit`), giving each with its
/// IPv6 source when the socket is IPv6.
fn read_all(
    fd: RawFd,
    buf: &mut [u8],
    limit: usize,
    mut on: impl FnMut(&[u8], Option<Ipv6Addr>),
) -> usize {
    let mut n = 0;
    while n < limit {
        // SAFETY: zeroed sockaddr_storage is valid to be written into.
        let mut from: libc::sockaddr_storage = unsafe { zeroed() };
        let mut from_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: buf and from are live and sized as passed.
        let got = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_storage).cast(),
                &mut from_len,
            )
        };
        if got < 0 {
            break; // EAGAIN: nothing more (any other error: try next time)
        }
        n += 1;
        let src = (i32::from(from.ss_family) == libc::AF_INET6).then(|| {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Ipv6Addr::from(sin6.sin6_addr.s6_addr)
        });
        on(&buf[..got as usize], src);
    }
    n
}

/// The source address the kernel will use towards `dst`, or the routing
/// error the kernel gives for it (the same one a connect would get).
pub(crate) fn route(dst: IpAddr) -> Result<IpAddr, SendError> {
    let any: IpAddr = if dst.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let udp = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(send_error)?;
    udp.connect(SocketAddr::new(dst, 9)).map_err(send_error)?;
    Ok(udp.local_addr().map_err(send_error)?.ip())
}
