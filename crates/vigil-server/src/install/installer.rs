//! The installer's part of the server state ([`Installer`], held by
//! [`crate::app::App`], knowing nothing of it): the binaries handed out and
//! the push-install jobs this server runs (the jobs themselves are in the
//! store, see `vigil_store::InstallJob`).

use super::InstallError;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use vigil_store::{AccountId, InstallJobId, InstallJobLimits};

/// What one account may have: 4 jobs running at once (all replicas
/// together) and its newest 20 finished jobs kept for `GET
/// /compliance/install/{id}` (retention deletes older ones sooner).
pub(super) const ACCOUNT_LIMITS: InstallJobLimits = InstallJobLimits {
    running_per_account: 4,
    kept_per_account: 20,
};
/// Jobs running at once on this server (each holds up to
/// [`super::PARALLEL`] SSH sessions).
pub(super) const RUNNING_TOTAL: usize = 32;

/// The installer's part of the server state: what to hand out, and jobs.
pub(crate) struct Installer {
    /// curl's `--pinnedpubkey` value for the agent API certificate.
    pub curl_pin: String,
    binary: Option<PathBuf>,
    /// `--agent-binary-windows`; `None`: no Windows installs.
    windows: Option<WindowsBinary>,
    /// One permit per job running here ([`RUNNING_TOTAL`]).
    slots: Arc<Semaphore>,
    /// The jobs running here: their leases are renewed by this server, and
    /// its shutdown ends them as interrupted.
    running: Mutex<BTreeMap<InstallJobId, AccountId>>,
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
            slots: Arc::new(Semaphore::new(RUNNING_TOTAL)),
            running: Mutex::new(BTreeMap::new()),
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

    /// A slot for one more job on this server, held while it runs.
    pub(super) fn slot(&self) -> Result<OwnedSemaphorePermit, InstallError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            InstallError::Busy(format!(
                "{RUNNING_TOTAL} install jobs are running on this server; try again when one has finished"
            ))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<InstallJobId, AccountId>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that `job` of `account` runs here.
    pub(super) fn started(&self, account: AccountId, job: InstallJobId) {
        self.lock().insert(job, account);
    }

    /// Notes that `job` no longer runs here.
    pub(super) fn ended(&self, job: InstallJobId) {
        self.lock().remove(&job);
    }

    /// The jobs running here, with their accounts.
    pub(crate) fn running_here(&self) -> Vec<(AccountId, InstallJobId)> {
        self.lock().iter().map(|(j, a)| (*a, *j)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_running_here_are_bounded_and_tracked() {
        let installer = Installer::new("pin".into(), None, None);
        let slots: Vec<_> = (0..RUNNING_TOTAL)
            .map(|_| installer.slot().expect("room"))
            .collect();
        let err = installer.slot().unwrap_err();
        assert!(matches!(err, InstallError::Busy(_)), "{err}");
        assert!(err.to_string().contains("on this server"), "{err}");
        drop(slots);
        assert!(installer.slot().is_ok(), "a finished job frees its slot");
        let (a, job) = (AccountId::random(), InstallJobId::random());
        installer.started(a, job);
        assert_eq!(installer.running_here(), vec![(a, job)]);
        installer.ended(job);
        assert!(installer.running_here().is_empty());
    }
}
