//! The installer's part of the server state ([`Installer`], held by
//! [`crate::app::App`], knowing nothing of it): the binaries handed out and
//! the push-install jobs of every account.

use super::InstallError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use vigil_proto::api::{InstallHostView, InstallJobView};
use vigil_store::AccountId;

/// Finished jobs of one account kept for `GET /compliance/install/{id}`.
pub(super) const KEEP_PER_ACCOUNT: usize = 20;
/// Jobs one account may have running at once.
pub(super) const RUNNING_PER_ACCOUNT: usize = 4;
/// Jobs running at once on the server (each holds up to [`super::PARALLEL`]
/// SSH sessions).
pub(super) const RUNNING_TOTAL: usize = 32;

/// The installer's part of the server state: what to hand out, and jobs.
pub(crate) struct Installer {
    /// curl's `--pinnedpubkey` value for the agent API certificate.
    pub curl_pin: String,
    binary: Option<PathBuf>,
    /// `--agent-binary-windows`; `None`: no Windows installs.
    windows: Option<WindowsBinary>,
    jobs: Mutex<Vec<Job>>,
}

/// The Windows agent handed out, with the SHA-256 its installers check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowsBinary {
    pub path: PathBuf,
    /// Lower-case hex. Computed at start: a file replaced later fails the
    /// installers' check (nothing is installed) until the server restarts.
    pub sha256: String,
}

impl WindowsBinary {
    /// Checks `path` is a file and hashes it.
    pub fn load(path: &Path) -> Result<WindowsBinary, String> {
        use std::io::Read;
        let why = |e: std::io::Error| format!("the Windows agent binary {}: {e}", path.display());
        if !path.is_file() {
            return Err(format!(
                "the Windows agent binary {} is not a file",
                path.display()
            ));
        }
        let mut file = std::fs::File::open(path).map_err(why)?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = file.read(&mut buf).map_err(why)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        Ok(WindowsBinary {
            path: path.to_path_buf(),
            sha256: hex(&hash.finalize()),
        })
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why there is nothing to install on Windows.
pub(crate) const NO_WINDOWS_BINARY: &str = "this server has no Windows agent: start it with \
     --agent-binary-windows PATH (the Windows build of vigil.exe)";

struct Job {
    account: AccountId,
    view: InstallJobView,
}

impl Installer {
    /// `binary`: the agent binary to hand out; `None` for this executable.
    /// `windows`: the Windows agent, if any.
    pub fn new(
        curl_pin: String,
        binary: Option<PathBuf>,
        windows: Option<WindowsBinary>,
    ) -> Installer {
        Installer {
            curl_pin,
            binary,
            windows,
            jobs: Mutex::new(Vec::new()),
        }
    }

    /// The Windows agent, or why there is none.
    pub fn windows(&self) -> Result<&WindowsBinary, InstallError> {
        self.windows
            .as_ref()
            .ok_or_else(|| InstallError::Failed(NO_WINDOWS_BINARY.into()))
    }

    /// The agent binary. By default the running executable through
    /// `/proc/self/exe`, which stays readable even if the file on disk is
    /// replaced by an upgrade while the server runs.
    pub fn binary(&self) -> PathBuf {
        if let Some(path) = &self.binary {
            return path.clone();
        }
        let proc_exe = PathBuf::from("/proc/self/exe");
        if proc_exe.exists() {
            return proc_exe;
        }
        std::env::current_exe().unwrap_or(proc_exe)
    }

    /// A job of `account`; another account's is `None` like a missing one.
    pub fn job(&self, account: AccountId, id: &str) -> Option<InstallJobView> {
        self.lock()
            .iter()
            .find(|j| j.account == account && j.view.id == id)
            .map(|j| j.view.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a running job: at most [`RUNNING_PER_ACCOUNT`] per account and
    /// [`RUNNING_TOTAL`] in all run at once; each account keeps its last
    /// [`KEEP_PER_ACCOUNT`] finished jobs (one account's jobs never push
    /// out another's).
    pub(super) fn insert(
        &self,
        account: AccountId,
        view: InstallJobView,
    ) -> Result<(), InstallError> {
        let mut jobs = self.lock();
        let running = |j: &&Job| j.view.finished_at.is_none();
        if jobs.iter().filter(running).count() >= RUNNING_TOTAL {
            return Err(InstallError::Busy(format!(
                "{RUNNING_TOTAL} install jobs are running on this server; try again when one has finished"
            )));
        }
        let ours = |j: &&Job| j.account == account;
        if jobs.iter().filter(ours).filter(running).count() >= RUNNING_PER_ACCOUNT {
            return Err(InstallError::Busy(format!(
                "{RUNNING_PER_ACCOUNT} install jobs of this account are running; try again when one has finished"
            )));
        }
        let finished = jobs.iter().filter(ours).filter(|j| !running(j)).count();
        let mut excess = (finished + 1).saturating_sub(KEEP_PER_ACCOUNT);
        // Oldest first: the list is in insertion order.
        jobs.retain(|j| {
            let forget = excess > 0 && j.account == account && j.view.finished_at.is_some();
            if forget {
                excess -= 1;
            }
            !forget
        });
        jobs.push(Job { account, view });
        Ok(())
    }

    pub(super) fn update(&self, id: &str, f: impl FnOnce(&mut InstallJobView)) {
        if let Some(job) = self.lock().iter_mut().find(|j| j.view.id == id) {
            f(&mut job.view);
        }
    }

    pub(super) fn update_host(&self, id: &str, index: usize, f: impl FnOnce(&mut InstallHostView)) {
        self.update(id, |view| {
            if let Some(host) = view.hosts.get_mut(index) {
                f(host);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: String, finished: bool) -> InstallJobView {
        InstallJobView {
            id,
            state: if finished { "done" } else { "running" }.into(),
            created_at: 0,
            finished_at: finished.then_some(1),
            hosts: Vec::new(),
        }
    }

    #[test]
    fn jobs_are_bounded_per_account_and_in_all() {
        let installer = Installer::new("pin".into(), None, None);
        let (a, b) = (AccountId::random(), AccountId::random());
        // Account B's history survives any number of account A's jobs.
        installer.insert(b, view("b-0".into(), true)).expect("room");
        for i in 0..500 {
            installer
                .insert(a, view(format!("a-{i}"), true))
                .expect("finished jobs make room");
        }
        assert!(installer.job(b, "b-0").is_some());
        assert!(installer.job(a, "a-499").is_some());
        assert!(installer.job(a, "a-479").is_none(), "only the last 20 kept");
        assert_eq!(installer.lock().len(), KEEP_PER_ACCOUNT + 1);
        // Running jobs: a per-account cap, then a global one.
        for i in 0..RUNNING_PER_ACCOUNT {
            installer
                .insert(a, view(format!("ra-{i}"), false))
                .expect("room");
        }
        let err = installer.insert(a, view("ra-x".into(), false)).unwrap_err();
        assert!(matches!(err, InstallError::Busy(_)), "{err}");
        let mut accounts = 0;
        loop {
            let other = AccountId::random();
            let mut busy = None;
            for i in 0..RUNNING_PER_ACCOUNT {
                if let Err(e) = installer.insert(other, view(format!("o-{accounts}-{i}"), false)) {
                    busy = Some(e);
                    break;
                }
            }
            accounts += 1;
            if let Some(e) = busy {
                assert!(e.to_string().contains("on this server"), "{e}");
                break;
            }
            assert!(accounts < 100, "no global cap");
        }
        let running = installer
            .lock()
            .iter()
            .filter(|j| j.view.finished_at.is_none())
            .count();
        assert_eq!(running, RUNNING_TOTAL);
    }
}
