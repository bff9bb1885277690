//! Windows: state under `%ProgramData%`, private files by a protected DACL,
//! facts from the computer name and the registry, listeners from the IP
//! helper's TCP tables, neighbours from its neighbour table
//! (`GetIpNetTable2`, IPv4 and IPv6 in one).
//!
//! How the identity file's protection is checked: [`private_file_check`]
//! reads the file's DACL back (`GetNamedSecurityInfoW`), turns it into SDDL
//! (`ConvertSecurityDescriptorToStringSecurityDescriptorW`) and calls it
//! private when every allow entry names SYSTEM or Administrators. What
//! [`create_private`] sets reads back as `D:P(A;;FA;;;SY)(A;;FA;;;BA)`.
//!
//! Wine (8) accepts the DACL but does not keep it: it reads back one made
//! from the Unix mode bits, so under Wine the check says "NOT private" and
//! says why. Wine's TCP table also names no owner (pid 0).

use super::{FileProtection, ListeningSocket, Neighbour, OsFacts};
use crate::AgentError;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::ptr;
use windows_sys::Win32::Foundation::{
    CloseHandle, LocalFree, ERROR_INSUFFICIENT_BUFFER, ERROR_MORE_DATA, ERROR_SUCCESS, HLOCAL,
    NO_ERROR,
};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetExtendedTcpTable, MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID, TCP_TABLE_OWNER_PID_LISTENER,
};
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
use windows_sys::Win32::Security::Authorization::{
    ConvertSecurityDescriptorToStringSecurityDescriptorW,
    ConvertStringSecurityDescriptorToSecurityDescriptorW, GetNamedSecurityInfoW,
    SetNamedSecurityInfoW, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION, PROTECTED_DACL_SECURITY_INFORMATION,
    PSECURITY_DESCRIPTOR,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};
use windows_sys::Win32::System::SystemInformation::{ComputerNameDnsHostname, GetComputerNameExW};
use windows_sys::Win32::System::Threading::{
    OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
};

/// SYSTEM and Administrators: full control; nothing inherited from the
/// directory (P), so users who may list `%ProgramData%` cannot read it.
const PRIVATE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// `%ProgramData%\Vigil\agent`, the folder asked of the shell
/// (`FOLDERID_ProgramData`) rather than the environment: a service's
/// environment need not have `PROGRAMDATA` (Wine's service manager sets it to
/// `C:\users\Public`), and the agent run from a console, the service and
/// the MSI must agree on one directory.
pub fn default_state_dir() -> PathBuf {
    program_data()
        .or_else(|| {
            std::env::var_os("PROGRAMDATA")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Vigil")
        .join("agent")
}

fn program_data() -> Option<PathBuf> {
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut raw: *mut u16 = ptr::null_mut();
    // SAFETY: `raw` receives a NUL-terminated string the shell allocated,
    // read once and freed with CoTaskMemFree (also on failure, as documented).
    unsafe {
        let hr = SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, ptr::null_mut(), &mut raw);
        let path = (hr >= 0 && !raw.is_null()).then(|| {
            let len = (0..).take_while(|&i| *raw.add(i) != 0).count();
            PathBuf::from(OsString::from_wide(std::slice::from_raw_parts(raw, len)))
        });
        CoTaskMemFree(raw.cast());
        path
    }
}

/// Creates (or truncates) `path` and gives it [`PRIVATE_SDDL`] before a
/// byte is written. The handle stays writable: access is checked when a
/// file is opened, not on each write.
pub(super) fn create_private(path: &Path) -> io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    set_private_dacl(path)?;
    Ok(file)
}

fn set_private_dacl(path: &Path) -> io::Result<()> {
    let sddl = wide(PRIVATE_SDDL.as_ref());
    let name = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: both strings are NUL-terminated; `sd` is freed with LocalFree below.
    let ok = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let _free = LocalMem(sd);
    let mut present = 0;
    let mut defaulted = 0;
    let mut dacl: *mut ACL = ptr::null_mut();
    // SAFETY: `sd` is a valid descriptor; `dacl` points into it.
    let ok = unsafe { GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `name` is NUL-terminated; `dacl` lives as long as `sd`.
    let rc = unsafe {
        SetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            dacl,
            ptr::null(),
        )
    };
    win32(rc)
}

/// The file's DACL in SDDL (see the module doc for what counts as private).
pub fn private_file_check(path: &Path) -> Result<FileProtection, AgentError> {
    let sddl = read_dacl_sddl(path).map_err(|e| AgentError::io("checking", path, e))?;
    let private = super::sddl_dacl_is_private(&sddl);
    let mut detail = format!("DACL {sddl}");
    if !private && under_wine() {
        detail += "; Wine does not keep file ACLs";
    }
    Ok(FileProtection { private, detail })
}

/// Wine's ntdll exports `wine_get_version`; Windows' does not.
/// Nothing to do: a directory cannot be opened like a file on Windows
/// (`File::open` of one is "Access denied"), and there is no directory
/// fsync to ask for; NTFS journals the rename (`MoveFileExW`) itself.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// An agent installed by the MSI may update itself too (a repair of the
/// MSI would bring its own version back, as for any self-updating app).
pub fn packaged(_exe: &Path) -> bool {
    false
}

/// Puts `new` in place of `exe`, which becomes `previous`. Windows lets a
/// running program's file be renamed but not overwritten: the running
/// binary moves aside, the new one takes its name.
pub fn replace_exe(new: &Path, exe: &Path, previous: &Path) -> io::Result<()> {
    match fs::remove_file(previous) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::rename(exe, previous)?;
    if let Err(e) = fs::rename(new, exe) {
        let _ = fs::rename(previous, exe);
        return Err(e);
    }
    Ok(())
}

/// Puts `previous` back as `exe`; the failed binary is moved aside first
/// (and deleted when no process holds it any more).
pub fn restore_exe(previous: &Path, exe: &Path) -> io::Result<()> {
    let failed = exe.with_extension("failed");
    let _ = fs::remove_file(&failed);
    fs::rename(exe, &failed)?;
    fs::rename(previous, exe)?;
    let _ = fs::remove_file(&failed);
    Ok(())
}

pub fn under_wine() -> bool {
    let ntdll = wide("ntdll.dll".as_ref());
    // SAFETY: NUL-terminated names; ntdll is loaded in every process.
    unsafe {
        let module = GetModuleHandleW(ntdll.as_ptr());
        !module.is_null() && GetProcAddress(module, c"wine_get_version".as_ptr().cast()).is_some()
    }
}

fn read_dacl_sddl(path: &Path) -> io::Result<String> {
    let name = wide(path.as_os_str());
    let mut sd: PSECURITY_DESCRIPTOR = ptr::null_mut();
    let mut dacl: *mut ACL = ptr::null_mut();
    // SAFETY: out-pointers are valid; `sd` is freed with LocalFree below.
    let rc = unsafe {
        GetNamedSecurityInfoW(
            name.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut dacl,
            ptr::null_mut(),
            &mut sd,
        )
    };
    win32(rc)?;
    let _free_sd = LocalMem(sd);
    let mut text: *mut u16 = ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: `sd` is valid; `text` is freed with LocalFree below.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            sd,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            &mut len,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    let _free_text = LocalMem(text.cast());
    // SAFETY: the call wrote `len` characters (with the NUL) at `text`.
    let chars = unsafe { std::slice::from_raw_parts(text, len as usize) };
    Ok(from_wide(chars))
}

pub fn os_facts() -> OsFacts {
    let hostname = computer_name()
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    const KEY: &str = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion";
    let value = |name: &str| registry_string(KEY, name);
    // Before 20H2 the release was in ReleaseId ("2004") only.
    let display = value("DisplayVersion").or_else(|| value("ReleaseId"));
    let os = super::windows_os_name(
        value("ProductName").as_deref(),
        display.as_deref(),
        value("CurrentBuildNumber").as_deref(),
    );
    OsFacts { hostname, os }
}

fn computer_name() -> Option<String> {
    let mut len = 0u32;
    // SAFETY: a NULL buffer of size 0 asks for the size.
    unsafe { GetComputerNameExW(ComputerNameDnsHostname, ptr::null_mut(), &mut len) };
    let mut buf = vec![0u16; len.max(1) as usize];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` holds `len` characters.
    let ok = unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut len) };
    (ok != 0)
        .then(|| from_wide(&buf[..len as usize]))
        .filter(|n| !n.is_empty())
}

/// A REG_SZ value under HKLM, or `None` when it is missing.
fn registry_string(key: &str, value: &str) -> Option<String> {
    let (key, value) = (wide(key.as_ref()), wide(value.as_ref()));
    let mut bytes = 0u32;
    // SAFETY: NULL data asks for the size in bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            ptr::null_mut(),
            ptr::null_mut(),
            &mut bytes,
        )
    };
    if rc != ERROR_SUCCESS && rc != ERROR_MORE_DATA {
        return None;
    }
    let mut buf = vec![0u16; (bytes as usize).div_ceil(2).max(1)];
    let mut bytes = (buf.len() * 2) as u32;
    // SAFETY: `buf` holds `bytes` bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ,
            ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    (rc == ERROR_SUCCESS).then(|| from_wide(&buf[..(bytes as usize / 2).min(buf.len())]))
}

/// The IPv4 and IPv6 listener tables (one call each), with each owner's
/// executable path where this account may query it (a service running as
/// SYSTEM may query all).
pub fn listening_sockets() -> Result<Vec<ListeningSocket>, AgentError> {
    let table_err = |e| AgentError::io("calling", "GetExtendedTcpTable", e);
    let mut found: Vec<(SocketAddr, u32)> = Vec::new();
    let v4 = tcp_table(AF_INET).map_err(table_err)?;
    // SAFETY: the table holds MIB_TCPROW_OWNER_PID rows (checked length).
    for row in unsafe { rows::<MIB_TCPROW_OWNER_PID>(&v4) } {
        let ip = Ipv4Addr::from(row.dwLocalAddr.to_ne_bytes());
        let addr = SocketAddrV4::new(ip, port(row.dwLocalPort));
        found.push((addr.into(), row.dwOwningPid));
    }
    let v6 = tcp_table(AF_INET6).map_err(table_err)?;
    // SAFETY: the table holds MIB_TCP6ROW_OWNER_PID rows (checked length).
    for row in unsafe { rows::<MIB_TCP6ROW_OWNER_PID>(&v6) } {
        let ip = Ipv6Addr::from(row.ucLocalAddr);
        let addr = SocketAddrV6::new(ip, port(row.dwLocalPort), 0, row.dwLocalScopeId);
        found.push((addr.into(), row.dwOwningPid));
    }
    let mut names: HashMap<u32, Option<String>> = HashMap::new();
    Ok(found
        .into_iter()
        .map(|(addr, pid)| {
            let process = names
                .entry(pid)
                .or_insert_with(|| process_image(pid))
                .clone();
            ListeningSocket {
                addr,
                pid: Some(pid),
                process,
            }
        })
        .collect())
}

/// The port sits in the low 16 bits, in network byte order.
fn port(raw: u32) -> u16 {
    u16::from_be(raw as u16)
}

/// One `GetExtendedTcpTable` answer, in u32s so the rows are aligned. The
/// table may grow between the size query and the call: ask again.
fn tcp_table(family: u16) -> io::Result<Vec<u32>> {
    let mut bytes = 0u32;
    for _ in 0..8 {
        let mut buf = vec![0u32; (bytes as usize).div_ceil(4).max(1)];
        bytes = (buf.len() * 4) as u32;
        // SAFETY: `buf` holds `bytes` bytes.
        let rc = unsafe {
            GetExtendedTcpTable(
                buf.as_mut_ptr().cast(),
                &mut bytes,
                0,
                u32::from(family),
                TCP_TABLE_OWNER_PID_LISTENER,
                0,
            )
        };
        match rc {
            NO_ERROR => return Ok(buf),
            ERROR_INSUFFICIENT_BUFFER => continue,
            err => return Err(io::Error::from_raw_os_error(err as i32)),
        }
    }
    Err(io::Error::other("the TCP table kept growing"))
}

/// The rows of a MIB_TCP(6)TABLE_OWNER_PID: a u32 count, then the rows
/// (4-byte aligned, so they start right after it).
///
/// # Safety
/// `table` must be what GetExtendedTcpTable wrote for rows of type `R`.
unsafe fn rows<R: Copy>(table: &[u32]) -> &[R] {
    let count = table.first().copied().unwrap_or(0) as usize;
    let room = (table.len().saturating_sub(1) * 4) / std::mem::size_of::<R>();
    // SAFETY: bounded by the buffer; R is plain data with 4-byte alignment.
    unsafe { std::slice::from_raw_parts(table.as_ptr().add(1).cast(), count.min(room)) }
}

/// Looks processes up, each pid once per pass: the image's path and file
/// name (`OpenProcess` + `QueryFullProcessImageNameW`). The user and the
/// command line would need another process's PEB or token: left out.
#[derive(Debug, Default)]
pub struct ProcessLookup {
    seen: HashMap<u32, Option<vigil_core::listener::ProcessInfo>>,
}

impl ProcessLookup {
    pub fn new() -> ProcessLookup {
        ProcessLookup::default()
    }

    /// The process `pid`, if this account may open it.
    pub fn info(&mut self, pid: u32) -> Option<vigil_core::listener::ProcessInfo> {
        self.seen
            .entry(pid)
            .or_insert_with(|| {
                let exe = process_image(pid)?;
                Some(vigil_core::listener::ProcessInfo {
                    name: image_name(&exe).to_string(),
                    pid,
                    user: None,
                    exe: Some(exe),
                    cmdline: None,
                })
            })
            .clone()
    }
}

/// `C:\\Windows\\System32\\svchost.exe` → `svchost.exe`.
fn image_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// The full path of a process's executable, if this account may ask.
fn process_image(pid: u32) -> Option<String> {
    // SAFETY: plain calls; the handle is closed below.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if handle.is_null() {
        return None;
    }
    let mut buf = vec![0u16; 32768];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` holds `len` characters.
    let ok = unsafe {
        QueryFullProcessImageNameW(handle, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len)
    };
    // SAFETY: `handle` came from OpenProcess.
    unsafe { CloseHandle(handle) };
    (ok != 0).then(|| from_wide(&buf[..len as usize]))
}

/// Frees memory the API allocated with LocalAlloc when dropped.
struct LocalMem(*mut core::ffi::c_void);

impl Drop for LocalMem {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from an API that documents LocalFree.
            unsafe { LocalFree(self.0 as HLOCAL) };
        }
    }
}

fn win32(rc: u32) -> io::Result<()> {
    if rc == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc as i32))
    }
}

fn wide(s: &std::ffi::OsStr) -> Vec<u16> {
    s.encode_wide().chain(std::iter::once(0)).collect()
}

/// Text up to the first NUL.
fn from_wide(chars: &[u16]) -> String {
    let end = chars.iter().position(|&c| c == 0).unwrap_or(chars.len());
    OsString::from_wide(&chars[..end])
        .to_string_lossy()
        .into_owned()
}

/// The IP helper's neighbour table (`GetIpNetTable2`), asked for IPv4 and
/// IPv6 one after the other: Wine (8) answers `AF_UNSPEC` with
/// ERROR_INVALID_FUNCTION, and `AF_INET6` too, so there only IPv4 comes
/// back. Each entry's interface is named by its alias (what
/// `Get-NetAdapter` calls the name, and netdev the friendly name):
/// `ConvertInterfaceLuidToAlias`. A family whose table cannot be read adds
/// nothing.
pub fn neighbours() -> Vec<Neighbour> {
    let mut aliases: HashMap<u32, String> = HashMap::new();
    let mut found = Vec::new();
    for family in [AF_INET, AF_INET6] {
        match ip_net_table(family, &mut aliases) {
            Ok(entries) => found.extend(entries),
            Err(e) => tracing::debug!("GetIpNetTable2 (address family {family}): {e}"),
        }
    }
    found
}

/// The resolved entries of one family's neighbour table, the table freed
/// with `FreeMibTable`.
fn ip_net_table(family: u16, aliases: &mut HashMap<u32, String>) -> io::Result<Vec<Neighbour>> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        FreeMibTable, GetIpNetTable2, MIB_IPNET_ROW2, MIB_IPNET_TABLE2,
    };
    use windows_sys::Win32::Networking::WinSock::{
        NlnsDelay, NlnsPermanent, NlnsProbe, NlnsReachable, NlnsStale,
    };
    let mut table: *mut MIB_IPNET_TABLE2 = ptr::null_mut();
    // SAFETY: on success `table` points to a table the API allocated,
    // freed with FreeMibTable below.
    let rc = unsafe { GetIpNetTable2(family, &mut table) };
    if rc != NO_ERROR || table.is_null() {
        return Err(io::Error::from_raw_os_error(rc as i32));
    }
    // SAFETY: the table holds NumEntries rows from `Table` on; it lives
    // until FreeMibTable, after the last use of `rows`.
    let rows: &[MIB_IPNET_ROW2] = unsafe {
        let count = (*table).NumEntries as usize;
        std::slice::from_raw_parts(ptr::addr_of!((*table).Table).cast(), count)
    };
    let resolved = [
        NlnsReachable,
        NlnsStale,
        NlnsDelay,
        NlnsProbe,
        NlnsPermanent,
    ];
    let mut found = Vec::new();
    for row in rows.iter().filter(|row| resolved.contains(&row.State)) {
        let mac = row
            .PhysicalAddress
            .get(..row.PhysicalAddressLength as usize);
        let (Some(mac), Some(ip)) = (mac, row_ip(row)) else {
            continue;
        };
        let interface = aliases
            .entry(row.InterfaceIndex)
            .or_insert_with(|| interface_alias(&row.InterfaceLuid, row.InterfaceIndex));
        if let Some(mut n) = super::neighbour(ip, mac, interface) {
            // SAFETY: a plain u32 union; LastReachable is the member the
            // API fills for a reachable entry (milliseconds since then).
            // Stale, delay and probe entries were not confirmed lately.
            n.confirmed_ago = if row.State == NlnsReachable {
                let ms = unsafe { row.ReachabilityTime.LastReachable };
                Some(std::time::Duration::from_millis(u64::from(ms)))
            } else if row.State == NlnsPermanent {
                None
            } else {
                Some(std::time::Duration::MAX)
            };
            found.push(n);
        }
    }
    // SAFETY: allocated by GetIpNetTable2; `rows` is not used past here.
    unsafe { FreeMibTable(table.cast()) };
    Ok(found)
}

/// The row's IP address, by its family.
fn row_ip(row: &windows_sys::Win32::NetworkManagement::IpHelper::MIB_IPNET_ROW2) -> Option<IpAddr> {
    // SAFETY: `si_family` says which member of the union the API filled.
    unsafe {
        match row.Address.si_family {
            AF_INET => {
                let raw = row.Address.Ipv4.sin_addr.S_un.S_addr;
                Some(IpAddr::V4(Ipv4Addr::from(raw.to_ne_bytes())))
            }
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
                row.Address.Ipv6.sin6_addr.u.Byte,
            ))),
            _ => None,
        }
    }
}

/// An interface's alias (`Ethernet 2`), or its index when it has none.
fn interface_alias(
    luid: &windows_sys::Win32::NetworkManagement::Ndis::NET_LUID_LH,
    index: u32,
) -> String {
    use windows_sys::Win32::NetworkManagement::IpHelper::ConvertInterfaceLuidToAlias;
    use windows_sys::Win32::NetworkManagement::Ndis::IF_MAX_STRING_SIZE;
    let mut buf = vec![0u16; IF_MAX_STRING_SIZE as usize + 1];
    // SAFETY: `buf` holds `buf.len()` characters.
    let rc = unsafe { ConvertInterfaceLuidToAlias(luid, buf.as_mut_ptr(), buf.len()) };
    Some(from_wide(&buf))
        .filter(|alias| rc == NO_ERROR && !alias.is_empty())
        .unwrap_or_else(|| format!("interface {index}"))
}

/// ARP requests need a raw socket Windows does not give; a sweep probes
/// with connects instead (Windows sizes its neighbour cache by memory, so
/// it needs no windows either).
pub struct ArpSocket;

impl ArpSocket {
    pub fn open(_interface: &str) -> io::Result<ArpSocket> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub fn send(&self, _packet: &[u8]) -> io::Result<()> {
        Ok(())
    }

    pub fn recv(
        &self,
        _buf: &mut [u8],
        _timeout: std::time::Duration,
    ) -> io::Result<Option<usize>> {
        Ok(None)
    }
}

/// Windows does not publish a neighbour-table limit.
pub fn neighbour_room() -> Option<usize> {
    None
}

/// Nor counts refusals.
pub fn neighbour_overflows() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_get_a_protected_dacl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        super::super::write_private(&path, b"x").expect("write");
        let check = private_file_check(&path).expect("check");
        if !under_wine() {
            assert!(check.detail.starts_with("DACL D:P"), "{check}");
            assert!(check.private, "{check}");
        }
    }

    #[test]
    fn reads_the_neighbour_table() {
        // Whatever the table holds, reading it must not fail, and every
        // entry must be a real one.
        for n in neighbours() {
            assert_ne!(n.mac, "00:00:00:00:00:00", "{n:?}");
            assert!(!n.interface.is_empty(), "{n:?}");
        }
    }

    #[test]
    fn finds_this_process_listening() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let sockets = listening_sockets().expect("list");
        let found = sockets.iter().find(|s| s.addr == addr).expect("listed");
        let pid = if under_wine() { 0 } else { std::process::id() };
        assert_eq!(found.pid, Some(pid));
    }

    #[test]
    fn looks_up_this_process() {
        assert_eq!(
            image_name(r"C:\Windows\System32\svchost.exe"),
            "svchost.exe"
        );
        assert_eq!(image_name("vigil.exe"), "vigil.exe");
        let me = ProcessLookup::new()
            .info(std::process::id())
            .expect("this process");
        assert_eq!(me.pid, std::process::id());
        let exe = std::env::current_exe().expect("exe");
        let name = exe.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(me.name.eq_ignore_ascii_case(name), "{me:?}");
        assert_eq!((me.user, me.cmdline), (None, None));
    }
}
