//! What the agent asks of the operating system, behind one set of
//! functions: `linux.rs` and `windows.rs` each provide all of them, so the
//! rest of the agent (and `vigil agent`) never needs a `cfg`.
//!
//! * [`default_state_dir`]: where identity and spool live by default.
//! * [`write_private`] / [`private_file_check`]: the identity file holds the
//!   agent's credential, so only the agent's account and administrators may
//!   read it (mode 0600 on Linux, a protected DACL on Windows); the check
//!   reads the protection back, for tests and `vigil agent status`.
//! * [`sync_dir`]: makes a rename durable where the OS lets a directory be
//!   flushed (Linux).
//! * [`os_facts`]: the hostname and OS name the server shows.
//! * [`replace_exe`] / [`restore_exe`] / [`packaged`]: self-update's
//!   replacement of the agent's own binary (`crate::update`).
//! * [`listening_sockets`]: the TCP listeners of this machine with the
//!   process that owns each; [`ProcessLookup`]: that process's name,
//!   user, executable and command line (`crate::listeners` builds on both).
//! * [`under_wine`]: whether this is Windows as Wine emulates it (which
//!   lacks some of the above), so tests and `status` can say so.
//! * [`neighbours`]: the neighbour table (ARP for IPv4, NDP for IPv6): the
//!   hosts on directly connected links this machine has heard from lately,
//!   with their MAC addresses. `crate::lan` builds on it.
//! * [`ArpSocket`], [`neighbour_room`], [`neighbour_overflows`]: ARP
//!   requests on a packet socket (Linux), and how full the neighbour table
//!   is, for `crate::arp` and the sweep's windows.
//!
//! The few pure helpers that only one platform calls live here, so their
//! tests run on every platform.

use crate::AgentError;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

#[cfg(unix)]
#[path = "linux.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;

pub use imp::{
    default_state_dir, listening_sockets, neighbour_overflows, neighbour_room, neighbours,
    os_facts, packaged, private_file_check, replace_exe, restore_exe, sync_dir, under_wine,
    ArpSocket, ProcessLookup,
};

/// A TCP socket in the LISTEN state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListeningSocket {
    pub addr: SocketAddr,
    /// The owning process; `None` when the OS would not say (another
    /// user's process seen without privileges).
    pub pid: Option<u32>,
    /// The owner's executable path, or its name when the path is hidden.
    pub process: Option<String>,
}

/// The machine as the server shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsFacts {
    pub hostname: String,
    /// e.g. "Debian GNU/Linux 12 (bookworm)", "Windows 10 Pro 22H2 (build 19045)".
    pub os: String,
}

/// A host on a directly connected link, as the OS neighbour table lists it.
/// Only entries that name a real host are kept: resolved (reachable,
/// stale, delay, probe or permanent; not incomplete or failed), with a
/// unicast 6-byte MAC and a unicast IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Neighbour {
    pub ip: IpAddr,
    /// Lower-case colon form, `02:5e:10:00:00:0b`.
    pub mac: String,
    /// The interface's name as [`crate::lan::Interface::name`] gives it
    /// (`eth0`; on Windows the adapter's alias, `Ethernet 2`).
    pub interface: String,
    /// How long ago the OS last confirmed the host reachable (an answer to
    /// its address resolution, or traffic from it); `None` when the OS
    /// does not say. An entry stays resolved for up to a minute after the
    /// host left, so a sweep trusts an entry only if it was confirmed
    /// during the sweep.
    #[serde(default)]
    pub confirmed_ago: Option<std::time::Duration>,
}

/// How a file is protected, as read back from the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProtection {
    /// Only the owner (Linux) or SYSTEM and Administrators (Windows) have access.
    pub private: bool,
    /// What was read: `mode 0600`, or the DACL in SDDL.
    pub detail: String,
}

impl std::fmt::Display for FileProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.private {
            "private"
        } else {
            "NOT private"
        };
        write!(f, "{} ({verdict})", self.detail)
    }
}

/// Replaces `path` atomically with `bytes`, readable only as
/// [`FileProtection::private`] says. The temporary file is protected
/// before the secret is written into it, and a rename keeps its protection.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = imp::create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    };
    write().map_err(|e| AgentError::io("writing", path, e))
}

/// Whether an SDDL DACL grants access to SYSTEM and Administrators only:
/// every allow ACE names one of them (deny ACEs only take access away). A
/// missing or NULL DACL grants everyone everything.
#[cfg_attr(not(windows), allow(dead_code))]
fn sddl_dacl_is_private(sddl: &str) -> bool {
    let Some(dacl) = sddl.find("D:").map(|i| &sddl[i + 2..]) else {
        return false;
    };
    // Another part (S: for the SACL) may follow the DACL's ACEs.
    let Some(first) = dacl.find('(') else {
        return false; // "D:P" with no ACE grants nothing, but nobody can use the file either.
    };
    let mut rest = &dacl[first..];
    let mut any = false;
    while let Some(body) = rest.strip_prefix('(') {
        let Some(end) = body.find(')') else {
            return false;
        };
        let fields: Vec<&str> = body[..end].split(';').collect();
        let [kind, _flags, _rights, _object, _inherited, sid, ..] = fields[..] else {
            return false;
        };
        if kind.starts_with('A') || kind == "XA" || kind == "ZA" {
            let privileged = matches!(sid, "SY" | "BA" | "S-1-5-18" | "S-1-5-32-544");
            if !privileged {
                return false;
            }
            any = true;
        }
        rest = &body[end + 1..];
    }
    any
}

/// The OS line for Windows from the registry's CurrentVersion values.
/// Windows 11 still says "Windows 10" in `ProductName`; its build number
/// (22000 and up) is how Microsoft tells them apart.
#[cfg_attr(not(windows), allow(dead_code))]
fn windows_os_name(
    product: Option<&str>,
    display_version: Option<&str>,
    build: Option<&str>,
) -> String {
    let build_no = build.and_then(|b| b.trim().parse::<u32>().ok());
    let mut name = product
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("Windows")
        .to_string();
    if build_no.is_some_and(|b| b >= 22000) {
        if let Some(edition) = name.strip_prefix("Windows 10") {
            name = format!("Windows 11{edition}");
        }
    }
    if let Some(v) = display_version.map(str::trim).filter(|v| !v.is_empty()) {
        name = format!("{name} {v}");
    }
    if let Some(b) = build.map(str::trim).filter(|b| !b.is_empty()) {
        name = format!("{name} (build {b})");
    }
    name
}

/// The lower-case colon form of a 6-byte MAC address.
pub(crate) fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// A neighbour-table entry when it names a real host: a 6-byte MAC that is
/// neither zero (what an unresolved entry shows) nor a group address
/// (multicast, broadcast: Windows lists those as permanent entries), and a
/// unicast IP address (not multicast, broadcast or unspecified).
fn neighbour(ip: IpAddr, mac: &[u8], interface: &str) -> Option<Neighbour> {
    let mac: [u8; 6] = mac.try_into().ok()?;
    let group = mac[0] & 0x01 != 0;
    if mac == [0; 6] || group {
        return None;
    }
    let unicast = match ip {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    };
    unicast.then(|| Neighbour {
        ip,
        mac: mac_text(mac),
        interface: interface.to_string(),
        confirmed_ago: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_real_hosts_only() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let host = [0x02, 0x5E, 0x10, 0, 0, 0x0B];
        let found = neighbour(ip("198.51.100.2"), &host, "eth0").expect("a host");
        assert_eq!(found.mac, "02:5e:10:00:00:0b");
        assert_eq!(found.interface, "eth0");
        let cases: [(&str, &[u8]); 9] = [
            ("198.51.100.2", &[0; 6]),                             // unresolved
            ("198.51.100.2", &[0xff; 6]),                          // broadcast MAC
            ("224.0.0.22", &[0x01, 0x00, 0x5e, 0x00, 0x00, 0x16]), // multicast
            ("224.0.0.22", &host),
            ("255.255.255.255", &host),
            ("0.0.0.0", &host),
            ("ff02::1", &host),
            ("198.51.100.2", &host[..4]), // not EUI-48
            ("198.51.100.2", &[0x02, 0x5e, 0x10, 0, 0, 0x0b, 0, 0]),
        ];
        for (addr, mac) in cases {
            assert_eq!(neighbour(ip(addr), mac, "eth0"), None, "{addr} {mac:02x?}");
        }
        assert!(neighbour(ip("fe80::5e:10ff:fe00:b"), &host, "eth0").is_some());
        assert!(neighbour(ip("2001:db8::2"), &host, "eth0").is_some());
    }

    #[test]
    fn sddl_private_only_for_system_and_administrators() {
        let cases = [
            ("D:P(A;;FA;;;SY)(A;;FA;;;BA)", true),
            ("O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)S:NO_ACCESS_CONTROL", true),
            ("D:P(A;;FA;;;S-1-5-18)(A;;FA;;;S-1-5-32-544)", true),
            ("D:P(D;;FA;;;WD)(A;;FA;;;SY)", true),
            ("D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)", false),
            (
                "D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)",
                false,
            ),
            ("D:(A;;FA;;;WD)", false),
            ("D:NO_ACCESS_CONTROL", false),
            ("D:P", false),
            ("", false),
            ("D:P(A;;FA;;;SY", false),
            ("D:P(A;;FA)", false),
        ];
        for (sddl, want) in cases {
            assert_eq!(sddl_dacl_is_private(sddl), want, "{sddl}");
        }
    }

    #[test]
    fn windows_os_names() {
        let cases = [
            (
                (Some("Windows 10 Pro"), Some("22H2"), Some("19045")),
                "Windows 10 Pro 22H2 (build 19045)",
            ),
            (
                (Some("Windows 10 Pro"), Some("23H2"), Some("22631")),
                "Windows 11 Pro 23H2 (build 22631)",
            ),
            (
                (
                    Some("Windows Server 2022 Standard"),
                    Some("21H2"),
                    Some("20348"),
                ),
                "Windows Server 2022 Standard 21H2 (build 20348)",
            ),
            (
                (Some("Microsoft Windows 10"), None, Some("19043")),
                "Microsoft Windows 10 (build 19043)",
            ),
            ((None, None, None), "Windows"),
            ((Some(" "), Some(""), Some("")), "Windows"),
        ];
        for ((product, display, build), want) in cases {
            assert_eq!(windows_os_name(product, display, build), want);
        }
    }

    #[test]
    fn write_private_replaces_and_protects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.json");
        write_private(&path, b"one").expect("write");
        write_private(&path, b"two").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let protection = private_file_check(&path).expect("check");
        assert!(protection.private || under_wine(), "{protection}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["secret.json"], "no temporary file left");
    }

    #[test]
    fn default_state_dir_is_absolute() {
        assert!(default_state_dir().is_absolute());
    }

    #[test]
    fn os_facts_name_the_machine() {
        let facts = os_facts();
        assert!(!facts.os.is_empty());
    }
}
