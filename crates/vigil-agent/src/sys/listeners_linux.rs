//! Linux: the facts of a listening socket's process, from `/proc/PID/`:
//! the short name (`comm`), the effective user (`status`'s `Uid:` line,
//! named by `/etc/passwd`), the executable (`exe`) and the command line
//! (`cmdline`). The socket → pid half is `listening_sockets` in `linux.rs`.
//!
//! User names come from a small `/etc/passwd` parser rather than the
//! `uzers` crate: it is not in the workspace, and `getpwuid` through NSS
//! could block on a directory service (LDAP, SSSD) in the scan's path. A
//! uid `/etc/passwd` does not name is shown as the number.

use std::collections::HashMap;
use std::fs;
use vigil_core::listener::{join_cmdline, ProcessInfo};

/// Looks processes up, each pid once per pass, the user table read once.
#[derive(Debug, Default)]
pub struct ProcessLookup {
    users: Option<HashMap<u32, String>>,
    seen: HashMap<u32, Option<ProcessInfo>>,
}

impl ProcessLookup {
    pub fn new() -> ProcessLookup {
        ProcessLookup::default()
    }

    /// The process `pid`, if it still exists; facts it hides (another
    /// user's `exe` without privileges) are left out.
    pub fn info(&mut self, pid: u32) -> Option<ProcessInfo> {
        if let Some(known) = self.seen.get(&pid) {
            return known.clone();
        }
        let found = self.read(pid);
        self.seen.insert(pid, found.clone());
        found
    }

    fn read(&mut self, pid: u32) -> Option<ProcessInfo> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let exe = fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        let name = fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|c| c.trim_end_matches('\n').to_string())
            .filter(|c| !c.is_empty())
            .or_else(|| status_field(&status, "Name:").map(str::to_string))
            .unwrap_or_default();
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .and_then(|raw| join_cmdline(&raw));
        let user = effective_uid(&status).map(|uid| {
            let users = self.users.get_or_insert_with(|| {
                parse_passwd(&fs::read_to_string("/etc/passwd").unwrap_or_default())
            });
            users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
        });
        Some(ProcessInfo {
            name,
            pid,
            user,
            exe,
            cmdline,
        })
    }
}

/// The value after `key` on its line of `/proc/PID/status`.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// `Uid:\treal\teffective\tsaved\tfs`: the effective one, as `ps` shows.
fn effective_uid(status: &str) -> Option<u32> {
    status_field(status, "Uid:")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// uid → name from `/etc/passwd` (`name:x:uid:gid:...`); the first name
/// of a uid wins, as with `getpwuid`. Lines that do not parse are skipped.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut users = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let (false, Ok(uid)) = (name.is_empty(), uid.parse::<u32>()) {
            users.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_names_uids() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    # comment\n\
                    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                    toor:x:0:0::/root:/bin/sh\n\
                    broken line\n\
                    :x:5:5::/:/bin/sh\n\
                    bad:x:notanumber:1::/:/bin/sh\n";
        let users = parse_passwd(text);
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn status_gives_the_effective_uid() {
        let status = "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\n\
                      Uid:\t0\t65534\t65534\t65534\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(65534));
        assert_eq!(status_field(status, "Name:"), Some("python3"));
        assert_eq!(effective_uid("Name:\tx\n"), None);
        assert_eq!(effective_uid("Uid:\t1000\n"), None);
    }

    #[test]
    fn looks_up_this_process() {
        let mut lookup = ProcessLookup::new();
        let me = lookup.info(std::process::id()).expect("this process");
        assert_eq!(me.pid, std::process::id());
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(me.exe.as_deref(), exe.to_str());
        assert!(!me.name.is_empty());
        assert!(me.cmdline.is_some());
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let users = parse_passwd(&fs::read_to_string("/etc/passwd").unwrap_or_default());
        let want = users.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
        assert_eq!(me.user, Some(want));
        assert_eq!(lookup.info(u32::MAX), None);
    }
}
