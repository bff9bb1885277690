//! Linux (and other Unixes, where `/proc` may be missing): state under
//! `/var/lib`, mode 0600 for private files, facts and listeners from `/proc`,
//! IPv4 neighbours from `/proc/net/arp` and IPv6 ones from rtnetlink.

use super::{FileProtection, ListeningSocket, Neighbour, OsFacts};
use crate::AgentError;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil-agent")
}

/// Creates (or truncates) `path` with mode 0600. The mode applies when the
/// file is created; a leftover temporary file is removed first so it
/// cannot keep a wider mode.
pub(super) fn create_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Only the Windows build can run under Wine.
/// Makes a rename in `dir` durable: fsync of the directory.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

pub fn under_wine() -> bool {
    false
}

/// Whether `exe` is a package manager's file: under `/usr` but not
/// `/usr/local` (the FHS leaves /usr to packages; local installs and the
/// install script use /usr/local or /opt).
pub fn packaged(exe: &Path) -> bool {
    exe.starts_with("/usr") && !exe.starts_with("/usr/local")
}

/// Puts `new` in place of `exe` (one rename: a process starting the agent
/// at any moment gets the old or the new binary, whole), keeping a copy of
/// `exe` as `previous`; `new` gets `exe`'s permissions.
pub fn replace_exe(new: &Path, exe: &Path, previous: &Path) -> std::io::Result<()> {
    let kept = previous.with_extension("tmp");
    fs::copy(exe, &kept)?;
    fs::File::open(&kept)?.sync_all()?;
    fs::rename(&kept, previous)?;
    fs::set_permissions(new, fs::metadata(exe)?.permissions())?;
    fs::rename(new, exe)?;
    sync_dir(exe.parent().unwrap_or(Path::new(".")))
}

/// Puts `previous` back as `exe` (one rename).
pub fn restore_exe(previous: &Path, exe: &Path) -> std::io::Result<()> {
    fs::rename(previous, exe)?;
    sync_dir(exe.parent().unwrap_or(Path::new(".")))
}

/// The file's permission bits: private when group and others have none.
pub fn private_file_check(path: &Path) -> Result<FileProtection, AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|e| AgentError::io("checking", path, e))?
        .permissions()
        .mode()
        & 0o7777;
    Ok(FileProtection {
        private: mode & 0o077 == 0,
        detail: format!("mode {mode:04o}"),
    })
}

pub fn os_facts() -> OsFacts {
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    OsFacts { hostname, os }
}

/// LISTEN sockets from `/proc/net/tcp{,6}`, each owner found by the socket
/// inode its `/proc/PID/fd/*` link names. Without root only this user's
/// processes can be looked into; the others' sockets come without a pid.
pub fn listening_sockets() -> Result<Vec<ListeningSocket>, AgentError> {
    use std::io::BufRead;
    let mut found = Vec::new();
    for (file, optional) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        // Read a line at a time: with thousands of connected sockets the
        // table is megabytes of text, of which only the LISTEN rows count.
        let rows = match fs::File::open(file) {
            Ok(f) => std::io::BufReader::with_capacity(64 * 1024, f),
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AgentError::io("reading", file, e)),
        };
        for line in rows.lines().skip(1) {
            let line = line.map_err(|e| AgentError::io("reading", file, e))?;
            found.extend(listen_row(&line));
        }
    }
    let wanted: HashSet<u64> = found.iter().map(|(_, inode)| *inode).collect();
    let owners = socket_owners(&wanted);
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    Ok(found
        .into_iter()
        .map(|(addr, inode)| {
            let pid = owners.get(&inode).copied();
            let process =
                pid.and_then(|p| names.entry(p).or_insert_with(|| process_name(p)).clone());
            ListeningSocket { addr, pid, process }
        })
        .collect())
}

/// The LISTEN rows of a `/proc/net/tcp` or `tcp6` table: local address and
/// socket inode. Lines that do not parse are skipped.
#[cfg(test)]
fn parse_proc_net_tcp(text: &str) -> Vec<(SocketAddr, u64)> {
    text.lines().skip(1).filter_map(listen_row).collect()
}

/// One row of the table: its local address and inode if it is a LISTEN
/// socket (state `0A`).
fn listen_row(line: &str) -> Option<(SocketAddr, u64)> {
    const LISTEN: &str = "0A";
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    let state = fields.nth(1)?;
    if state != LISTEN {
        return None;
    }
    let inode = fields.nth(5)?;
    Some((parse_hex_addr(local)?, inode.parse().ok()?))
}

/// `0100007F:1F90` → 127.0.0.1:8080. The kernel prints each 32-bit word of
/// the address as a native-endian number, the port as a plain number.
fn parse_hex_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Which process holds each of the `wanted` socket inodes (the lowest pid
/// when a socket is shared after a fork).
fn socket_owners(wanted: &HashSet<u64>) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return owners;
    };
    let mut pids: Vec<u32> = procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        // Processes come and go, and others' fds need privileges: skip.
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|i| wanted.contains(i)) {
                owners.entry(inode).or_insert(pid);
            }
        }
    }
    owners
}

/// The executable's path, or the process name when the path is hidden.
fn process_name(pid: u32) -> Option<String> {
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        return Some(exe.to_string_lossy().into_owned());
    }
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim().to_string()).filter(|c| !c.is_empty())
}

/// The neighbour table: IPv4 entries from the ARP table in `/proc`, IPv6
/// entries by an rtnetlink dump (`RTM_GETNEIGH`; the kernel keeps no text
/// table for NDP). Either half is empty when it cannot be read.
///
/// The ARP table is read from `/proc/thread-self/net`, the calling
/// thread's network namespace (a thread that entered another one with
/// `setns` sees that one; `/proc/net` follows the process's main thread).
pub fn neighbours() -> Vec<Neighbour> {
    // rtnetlink says when each entry was last confirmed; /proc/net/arp
    // (the fallback) does not.
    let mut found = match netlink::neighbours(false) {
        Ok(v4) => v4,
        Err(e) => {
            tracing::debug!("reading the IPv4 neighbour table (rtnetlink): {e}");
            let arp = fs::read_to_string("/proc/thread-self/net/arp")
                .or_else(|_| fs::read_to_string("/proc/net/arp"));
            match arp {
                Ok(text) => parse_proc_net_arp(&text),
                Err(e) => {
                    tracing::debug!("reading /proc/net/arp: {e}");
                    Vec::new()
                }
            }
        }
    };
    match netlink::neighbours(true) {
        Ok(v6) => found.extend(v6),
        Err(e) => tracing::debug!("reading the IPv6 neighbour table (rtnetlink): {e}"),
    }
    found
}

/// The resolved rows of `/proc/net/arp` (see [`super::Neighbour`]):
///
/// ```text
/// IP address       HW type     Flags       HW address            Mask     Device
/// 198.51.100.2     0x1         0x2         02:5e:10:00:00:0b     *        eth0
/// ```
///
/// Flags 0x2 (`ATF_COM`) marks a completed entry; an incomplete one has 0x0
/// and a zero address. Lines that do not parse are skipped.
fn parse_proc_net_arp(text: &str) -> Vec<Neighbour> {
    const ATF_COM: u32 = 0x2;
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [ip, _hw_type, flags, mac, _mask, device] = fields[..] else {
                return None;
            };
            let flags = u32::from_str_radix(flags.strip_prefix("0x")?, 16).ok()?;
            if flags & ATF_COM == 0 {
                return None;
            }
            let mac = mac
                .split(':')
                .map(|octet| match octet.len() {
                    1 | 2 => u8::from_str_radix(octet, 16).ok(),
                    _ => None,
                })
                .collect::<Option<Vec<u8>>>()?;
            super::neighbour(ip.parse().ok()?, &mac, device)
        })
        .collect()
}

#[path = "listeners_linux.rs"]
mod listeners;
pub use listeners::ProcessLookup;

#[cfg(target_os = "linux")]
#[path = "arp_linux.rs"]
mod arp;
#[cfg(target_os = "linux")]
pub use arp::{neighbour_overflows, neighbour_room, ArpSocket};

/// Other Unixes: no packet sockets here, no neighbour-table counters.
#[cfg(not(target_os = "linux"))]
mod arp {
    pub struct ArpSocket;
    impl ArpSocket {
        pub fn open(_interface: &str) -> std::io::Result<ArpSocket> {
            Err(std::io::ErrorKind::Unsupported.into())
        }
        pub fn send(&self, _packet: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        pub fn recv(
            &self,
            _buf: &mut [u8],
            _timeout: std::time::Duration,
        ) -> std::io::Result<Option<usize>> {
            Ok(None)
        }
    }
    pub fn neighbour_room() -> Option<usize> {
        None
    }
    pub fn neighbour_overflows() -> Option<u64> {
        None
    }
}
#[cfg(not(target_os = "linux"))]
pub use arp::{neighbour_overflows, neighbour_room, ArpSocket};

/// IPv6 neighbours by rtnetlink, where there is rtnetlink.
#[cfg(target_os = "linux")]
mod netlink {
    use super::Neighbour;
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
    use std::collections::HashMap;
    use std::io;
    use std::net::IpAddr;

    /// Resolved IPv6 (`v6`) or IPv4 entries of the calling thread's
    /// network namespace, each with its interface's name (a second dump,
    /// of the links) and when it was last confirmed.
    pub(super) fn neighbours(v6: bool) -> io::Result<Vec<Neighbour>> {
        let mut request = NeighbourMessage::default();
        request.header.family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let entries = dump(RouteNetlinkMessage::GetNeighbour(request))?;
        let names: HashMap<u32, String> =
            dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
                .into_iter()
                .filter_map(|m| match m {
                    RouteNetlinkMessage::NewLink(link) => {
                        let name = link.attributes.into_iter().find_map(|a| match a {
                            LinkAttribute::IfName(name) => Some(name),
                            _ => None,
                        })?;
                        Some((link.header.index, name))
                    }
                    _ => None,
                })
                .collect();
        Ok(entries
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => entry(n, &names),
                _ => None,
            })
            .collect())
    }

    fn entry(n: NeighbourMessage, names: &HashMap<u32, String>) -> Option<Neighbour> {
        let resolved = matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
        );
        if !resolved {
            return None;
        }
        let mut ip = None;
        let mut mac = None;
        let mut confirmed_ago = None;
        for attribute in n.attributes {
            match attribute {
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                    ip = Some(IpAddr::V6(a))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                    ip = Some(IpAddr::V4(a))
                }
                NeighbourAttribute::LinkLayerAddress(bytes) => mac = Some(bytes),
                // In clock ticks (USER_HZ, 100 a second on Linux).
                NeighbourAttribute::CacheInfo(info) => {
                    confirmed_ago = Some(std::time::Duration::from_millis(
                        u64::from(info.confirmed) * 10,
                    ));
                }
                _ => {}
            }
        }
        let interface = names.get(&n.header.ifindex)?;
        let mut found = super::super::neighbour(ip?, &mac?, interface)?;
        found.confirmed_ago = confirmed_ago;
        Some(found)
    }

    /// Sends one dump request and collects the answers up to `NLMSG_DONE`.
    fn dump(request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        const SEQUENCE: u32 = 1;
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.header.sequence_number = SEQUENCE;
        message.finalize();
        let mut buf = vec![0; message.buffer_len()];
        message.serialize(&mut buf);
        socket.send(&buf, 0)?;
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut answers = Vec::new();
        loop {
            let (datagram, _) = socket.recv_from_full()?;
            if datagram.is_empty() {
                return Err(invalid("rtnetlink closed the dump early".into()));
            }
            let mut rest = &datagram[..];
            while !rest.is_empty() {
                // Each message starts with its length (u32, native order);
                // the next starts at the following 4-byte boundary.
                let len = rest
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| u32::from_ne_bytes(b) as usize)
                    .filter(|len| (16..=rest.len()).contains(len))
                    .ok_or_else(|| invalid("a truncated rtnetlink message".into()))?;
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len])
                    .map_err(|e| invalid(format!("an rtnetlink message: {e}")))?;
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
                if message.header.sequence_number != SEQUENCE {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::Error(e) => return Err(e.to_io()),
                    _ => {}
                }
            }
        }
    }
}

/// Other Unixes have no rtnetlink: IPv4 neighbours only.
#[cfg(not(target_os = "linux"))]
mod netlink {
    pub(super) fn neighbours(_v6: bool) -> std::io::Result<Vec<super::Neighbour>> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "no rtnetlink on this system",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARP: &str = "IP address       HW type     Flags       HW address            Mask     Device
198.51.100.2     0x1         0x2         02:5E:10:00:00:0b     *        eth0
198.51.100.9     0x1         0x0         00:00:00:00:00:00     *        eth0
198.51.100.7     0x1         0x6         3c:22:fb:1:a:ff       *        eth0
203.0.113.1      0x1         0x2         00:1b:63:84:45:e6     *        wlan0
203.0.113.5      0x1         0x2         00:00:00:00:00:00     *        wlan0
198.18.0.4       0x20        0x2         80:00:00:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0f:5e:a1 *  ib0
203.0.113.6      0x1         0xZ         00:1b:63:84:45:e7     *        wlan0
garbage
203.0.113.7      0x1         0x2         00:1b:63:84:45:e8     *
";

    #[test]
    fn arp_rows_resolved_only() {
        let found = parse_proc_net_arp(ARP);
        let want = [
            ("198.51.100.2", "02:5e:10:00:00:0b", "eth0"),
            ("198.51.100.7", "3c:22:fb:01:0a:ff", "eth0"),
            ("203.0.113.1", "00:1b:63:84:45:e6", "wlan0"),
        ]
        .map(|(ip, mac, interface)| Neighbour {
            ip: ip.parse().expect("ip"),
            mac: mac.into(),
            interface: interface.into(),
            confirmed_ago: None,
        });
        assert_eq!(found, want);
        assert_eq!(parse_proc_net_arp(""), []);
        assert_eq!(parse_proc_net_arp(ARP.lines().next().expect("header")), []);
    }

    #[test]
    fn reads_this_machines_neighbour_table() {
        // Whatever this machine's table holds, reading it must not fail,
        // and every entry must be a real one.
        for n in neighbours() {
            assert_eq!(n.mac, n.mac.to_lowercase(), "{n:?}");
            assert_ne!(n.mac, "00:00:00:00:00:00", "{n:?}");
            assert!(!n.interface.is_empty(), "{n:?}");
        }
        netlink::neighbours(true).expect("an rtnetlink dump");
    }

    // Captured on x86_64, so the addresses are little-endian words.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 48213 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20117 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C350 01 00000000:00000000 02:0009A7C4 00000000     0        0 51622 2 0000000000000000 20 4 30 10 -1
   3: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21508 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 48999 1 0000000000000000 100 0 0 10 0
   2: B80D0120000000000000000001000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 100 0 0 10 0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_listen_rows_only() {
        let v4 = parse_proc_net_tcp(TCP);
        assert_eq!(
            v4,
            [
                ("127.0.0.1:8080".parse().expect("addr"), 48213),
                ("0.0.0.0:22".parse().expect("addr"), 20117),
            ]
        );
        let v6 = parse_proc_net_tcp(TCP6);
        assert_eq!(
            v6,
            [
                ("[::1]:631".parse().expect("addr"), 21508),
                ("[::]:8080".parse().expect("addr"), 48999),
                ("[2001:db8::1]:443".parse().expect("addr"), 7),
            ]
        );
    }

    #[test]
    fn bad_addresses_are_skipped() {
        for text in [
            "",
            "0100007F",
            "0100007F:",
            "0100007G:0016",
            "01007F:0016",
            "0100007F:10000",
        ] {
            assert_eq!(parse_hex_addr(text), None, "{text:?}");
        }
    }

    #[test]
    fn finds_this_process_listening() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind v4");
        let v6 = std::net::TcpListener::bind("[::1]:0").ok(); // no IPv6 in some sandboxes
        let sockets = listening_sockets().expect("list");
        let mine = |addr: SocketAddr| {
            sockets
                .iter()
                .find(|s| s.addr == addr)
                .unwrap_or_else(|| panic!("{addr} not in {sockets:?}"))
        };
        let found = mine(v4.local_addr().expect("addr"));
        assert_eq!(found.pid, Some(std::process::id()));
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(found.process.as_deref(), exe.to_str());
        if let Some(v6) = v6 {
            assert_eq!(
                mine(v6.local_addr().expect("addr")).pid,
                Some(std::process::id())
            );
        }
    }

    #[test]
    fn private_files_have_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        fs::write(&path, b"x").expect("write");
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let open = private_file_check(&path).expect("check");
        assert_eq!(
            open,
            FileProtection {
                private: false,
                detail: "mode 0644".into()
            }
        );
        super::super::write_private(&path, b"y").expect("write private");
        let closed = private_file_check(&path).expect("check");
        assert_eq!(
            closed,
            FileProtection {
                private: true,
                detail: "mode 0600".into()
            }
        );
    }
}
