//! Network namespace plumbing: unique names, creation and deletion, running
//! commands (`ip -n`, `ip netns exec`) and entering a namespace with `setns`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};

use crate::TestNetError;

/// Where `ip netns add` bind-mounts the namespaces.
const NETNS_DIR: &str = "/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Serialises `ip netns add`: its first use sets up the /run/netns mount and
/// concurrent first uses can race.
static CREATE_LOCK: Mutex<()> = Mutex::new(());
static CLEAN_STALE: Once = Once::new();

/// A fresh base name `vt<pid>-<n>`. Namespace and interface names append one
/// letter (`s`/`t`), so the result must stay <= 14 chars (IFNAMSIZ - 1 = 15).
pub(crate) fn next_base() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 10_000;
    // pid_max is at most 4194304 (7 digits): 2 + 7 + 1 + 4 = 14.
    format!("vt{}-{}", std::process::id(), n)
}

/// A named network namespace that is deleted on drop.
#[derive(Debug)]
pub(crate) struct Namespace {
    name: String,
}

impl Namespace {
    /// `ip netns add NAME`, then bring `lo` up inside it.
    pub(crate) fn create(name: String) -> Result<Namespace, TestNetError> {
        CLEAN_STALE.call_once(remove_stale);
        {
            let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            run(Command::new("ip").args(["netns", "add", &name]))?;
        }
        let ns = Namespace { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`
    pub(crate) fn ip(&self, args: &[&str]) -> Result<(), TestNetError> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args)).map(drop)
    }

    /// A command running `program` inside this namespace.
    pub(crate) fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Run `f` on a helper thread that has entered this namespace.
    /// A panic inside `f` is propagated to the caller.
    pub(crate) fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, TestNetError> {
        let path = format!("{NETNS_DIR}/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(move || -> Result<T, TestNetError> {
                enter(&path).map_err(|source| TestNetError::Setns {
                    ns: self.name.clone(),
                    source,
                })?;
                Ok(f())
            });
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("vigil-testnet: warning: {e}");
        }
    }
}

/// Move the calling thread into the network namespace bound at `path`.
/// Threads it spawns afterwards inherit the namespace, as do child processes.
pub(crate) fn enter(path: &str) -> std::io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: plain syscall on a valid, open fd; affects only this thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Delete namespaces left behind by earlier processes of this crate that died
/// without running their destructors (names `vt<pid>-<n>s|t`, pid gone).
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = stale_pid(&name) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// The pid encoded in a name of the form `vt<pid>-<n>s` / `vt<pid>-<n>t`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("vt")?;
    let rest = rest.strip_suffix('s').or_else(|| rest.strip_suffix('t'))?;
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    pid.parse().ok()
}

/// Human-readable command line, for error messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run `cmd` to completion; non-zero exit is an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, TestNetError> {
    run_with_stdin(cmd, None)
}

/// Like [`run`], feeding `input` on stdin.
pub(crate) fn run_with_stdin(
    cmd: &mut Command,
    input: Option<&[u8]>,
) -> Result<Output, TestNetError> {
    let line = describe(cmd);
    let spawn_err = |source| TestNetError::Spawn {
        cmd: line.clone(),
        source,
    };
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error shows up as a failed exit status below.
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(TestNetError::Command {
            cmd: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_fit_interface_names() {
        let base = next_base();
        assert!(base.len() < 15, "{base}");
        assert_eq!(stale_pid(&format!("{base}s")), Some(std::process::id()));
        assert_eq!(stale_pid("vtfoo-1s"), None);
        assert_eq!(stale_pid("vt12-3x"), None);
        assert_eq!(stale_pid("other"), None);
    }
}
