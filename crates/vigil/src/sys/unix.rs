//! Unix: SIGTERM beside Ctrl-C, and mode 0600 files.

/// Resolves on Ctrl-C or SIGTERM (how systemd and container runtimes stop us).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// Replaces this process with `exe`, given this process's arguments (a
/// self-update's hand-over: same process id, so systemd sees the service
/// go on). Returns only if that failed.
pub fn exec_self(exe: &std::path::Path) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::anyhow!("cannot start the updated agent {}: {err}", exe.display())
}

/// Options that create a new file readable and writable by its owner only.
pub fn private_file_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true).mode(0o600);
    opts
}

/// `vigil agent service`: Windows services only. On Linux the agent runs
/// from a systemd unit (`vigil-agent.service`), so each of these refuses
/// with the same usage error (exit code 2).
pub mod service {
    use anyhow::Result;
    use std::ffi::OsString;

    fn windows_only() -> anyhow::Error {
        crate::cmd::usage(
            "`vigil agent service` is Windows only; on Linux use the systemd unit \
             (vigil-agent.service, `systemctl start vigil-agent`)",
        )
    }

    pub fn available() -> Result<()> {
        Err(windows_only())
    }

    pub fn install(_name: &str, _display: &str, _about: &str, _command: &[OsString]) -> Result<()> {
        Err(windows_only())
    }

    pub fn uninstall(_name: &str) -> Result<()> {
        Err(windows_only())
    }

    pub fn start(_name: &str) -> Result<()> {
        Err(windows_only())
    }

    pub fn stop(_name: &str) -> Result<()> {
        Err(windows_only())
    }

    pub fn status(_name: &str) -> Result<Option<String>> {
        Err(windows_only())
    }

    pub fn run(_name: &str, _body: crate::sys::ServiceBody) -> Result<()> {
        Err(windows_only())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn every_service_command_is_a_usage_error() {
            let errors = [
                super::available().unwrap_err(),
                super::install("n", "d", "a", &[]).unwrap_err(),
                super::uninstall("n").unwrap_err(),
                super::start("n").unwrap_err(),
                super::stop("n").unwrap_err(),
                super::status("n").unwrap_err(),
                super::run("n", Box::new(|_| Ok(()))).unwrap_err(),
            ];
            for e in errors {
                assert!(
                    e.downcast_ref::<crate::cmd::UsageError>().is_some(),
                    "{e:#}"
                );
                assert!(e.to_string().contains("Windows only"), "{e:#}");
            }
        }
    }
}
