//! Windows: console close and system shutdown beside Ctrl-C; private files
//! by the directory's ACL.

/// Resolves on Ctrl-C, Ctrl-Break, the console window closing, or the
/// system shutting down. (The agent's Windows service is stopped through
/// the service control manager instead; see `vigil agent service`.)
pub async fn shutdown_signal() {
    use tokio::signal::windows;
    let mut brk = windows::ctrl_break().ok();
    let mut close = windows::ctrl_close().ok();
    let mut shutdown = windows::ctrl_shutdown().ok();
    let pending = || std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match brk.as_mut() { Some(s) => { s.recv().await; } None => pending().await } } => {}
        _ = async { match close.as_mut() { Some(s) => { s.recv().await; } None => pending().await } } => {}
        _ = async { match shutdown.as_mut() { Some(s) => { s.recv().await; } None => pending().await } } => {}
    }
}

/// Options that create a new file. Windows has no mode bits: the files the
/// binary writes this way (the `ctl` login under `%APPDATA%`, `vigil up`'s
/// first login in its data directory) inherit their directory's ACL, which
/// for a user's profile is that user, SYSTEM and Administrators.
/// Windows cannot replace a process's image: starts `exe` with this
/// process's arguments as a new process, then this one exits (a
/// self-update's hand-over in a console; the service is restarted by the
/// service control manager instead). Returns only if starting failed.
pub fn exec_self(exe: &std::path::Path) -> anyhow::Error {
    match std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .spawn()
    {
        Ok(_) => std::process::exit(0),
        Err(e) => anyhow::anyhow!("cannot start the updated agent {}: {e}", exe.display()),
    }
}

pub fn private_file_options() -> std::fs::OpenOptions {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    opts
}

/// The agent as a Windows service, through the service control manager
/// (what `sc.exe create/start/stop/delete` do). The service runs as
/// LocalSystem and starts with the machine; the SCM restarts it 10 s after
/// it fails (the last failure action repeats).
pub mod service {
    use anyhow::{anyhow, bail, Context, Result};
    use std::ffi::{OsStr, OsString};
    use std::sync::{Arc, Mutex, OnceLock, PoisonError};
    use std::time::{Duration, Instant};
    use tokio::sync::watch;
    use windows_service::service::{
        Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceControl,
        ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceFailureActions,
        ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus,
        ServiceType,
    };
    use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    use windows_service::{define_windows_service, service_dispatcher};

    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;
    const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
    const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
    const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
    const ERROR_SERVICE_EXISTS: i32 = 1073;
    /// How long start, stop and uninstall wait for the service to get there.
    const WAIT: Duration = Duration::from_secs(30);

    /// Windows has services (see the Unix twin).
    pub fn available() -> Result<()> {
        Ok(())
    }

    pub fn install(name: &str, display: &str, about: &str, command: &[OsString]) -> Result<()> {
        let (exe, args) = command.split_first().context("no executable to install")?;
        let info = ServiceInfo {
            name: name.into(),
            display_name: display.into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: exe.into(),
            launch_arguments: args.to_vec(),
            dependencies: vec![],
            account_name: None, // LocalSystem
            account_password: None,
        };
        let manager =
            manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
        let service = manager
            .create_service(
                &info,
                ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS,
            )
            .map_err(|e| match code(&e) {
                Some(ERROR_SERVICE_EXISTS) => anyhow!(
                    "service {name} is already installed: run `vigil agent service uninstall` first"
                ),
                _ => explain(e, "creating the service"),
            })?;
        // Niceties: the service works without them (Wine lacks some).
        if let Err(e) = service.set_description(about) {
            let e = anyhow::Error::new(e);
            tracing::warn!("service {name}: cannot set its description: {e:#}");
        }
        let restart = ServiceAction {
            action_type: ServiceActionType::Restart,
            delay: Duration::from_secs(10),
        };
        let actions = ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart; 3]),
        };
        if let Err(e) = service.update_failure_actions(actions) {
            let e = anyhow::Error::new(e);
            tracing::warn!("service {name}: cannot set restart on failure: {e:#}");
        }
        // An agent that stops with an error (not only a crash) is restarted too.
        if let Err(e) = service.set_failure_actions_on_non_crash_failures(true) {
            let e = anyhow::Error::new(e);
            tracing::warn!("service {name}: cannot set restart after an error exit: {e:#}");
        }
        Ok(())
    }

    /// Stops the service if it runs, then deletes it.
    pub fn uninstall(name: &str) -> Result<()> {
        let access = ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE;
        let service = open(name, access)?;
        stop_and_wait(name, &service)?;
        // The SCM removes it once every handle to it is closed.
        service
            .delete()
            .map_err(|e| explain(e, "deleting the service"))
    }

    pub fn start(name: &str) -> Result<()> {
        let service = open(name, ServiceAccess::START | ServiceAccess::QUERY_STATUS)?;
        match service.start::<&OsStr>(&[]) {
            Ok(()) => {}
            Err(e) if code(&e) == Some(ERROR_SERVICE_ALREADY_RUNNING) => return Ok(()),
            Err(e) => return Err(explain(e, "starting the service")),
        }
        let status = wait_for(&service, |s| s != ServiceState::StartPending)?;
        match status.current_state {
            ServiceState::Running => Ok(()),
            ServiceState::Stopped => bail!(
                "service {name} stopped right after starting ({})",
                exit_text(&status.exit_code)
            ),
            other => bail!("service {name} is {other:?} after {WAIT:?}"),
        }
    }

    pub fn stop(name: &str) -> Result<()> {
        let service = open(name, ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
        stop_and_wait(name, &service)
    }

    /// State, process and command line; `None` when not installed.
    pub fn status(name: &str) -> Result<Option<String>> {
        let manager = manager(ServiceManagerAccess::CONNECT)?;
        let access = ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
        let service = match manager.open_service(name, access) {
            Ok(s) => s,
            Err(e) if code(&e) == Some(ERROR_SERVICE_DOES_NOT_EXIST) => return Ok(None),
            Err(e) => return Err(explain(e, "opening the service")),
        };
        let status = service
            .query_status()
            .map_err(|e| explain(e, "querying the service"))?;
        let config = service
            .query_config()
            .map_err(|e| explain(e, "reading the service's configuration"))?;
        let mut text = format!("service: {name}\nstate:   {:?}", status.current_state);
        if let Some(pid) = status.process_id {
            text += &format!(" (pid {pid})");
        }
        if status.current_state == ServiceState::Stopped {
            text += &format!(", {}", exit_text(&status.exit_code));
        }
        text += &format!(
            "\nstart:   {:?}\ncommand: {}",
            config.start_type,
            config.executable_path.display()
        );
        Ok(Some(text))
    }

    /// Hands the process to the service control manager, which calls
    /// `service_main` on its own thread; returns when the service stopped.
    pub fn run(name: &str, body: crate::sys::ServiceBody) -> Result<()> {
        *lock(&JOB) = Some((name.to_string(), body));
        match service_dispatcher::start(name, ffi_service_main) {
            Ok(()) => {}
            Err(e) if code(&e) == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => {
                return Err(crate::cmd::usage(
                    "`service-run` is what the service control manager starts; \
                     in a console use `vigil agent run`",
                ))
            }
            Err(e) => return Err(explain(e, "connecting to the service control manager")),
        }
        lock(&OUTCOME)
            .take()
            .unwrap_or_else(|| Err(anyhow!("the service control manager never started {name}")))
    }

    type Job = (String, crate::sys::ServiceBody);
    /// The dispatcher calls a plain function: the job reaches it here.
    static JOB: Mutex<Option<Job>> = Mutex::new(None);
    static OUTCOME: Mutex<Option<Result<()>>> = Mutex::new(None);

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    define_windows_service!(ffi_service_main, service_main);

    fn service_main(_args: Vec<OsString>) {
        let Some((name, body)) = lock(&JOB).take() else {
            return;
        };
        let outcome = serve(&name, body);
        if let Err(e) = &outcome {
            tracing::error!("service {name}: {e:#}");
        }
        *lock(&OUTCOME) = Some(outcome);
    }

    /// Reports Running, runs `body` until Stop or Shutdown, reports Stopped.
    fn serve(name: &str, body: crate::sys::ServiceBody) -> Result<()> {
        let (stop, shutdown) = watch::channel(false);
        let handle = Arc::new(OnceLock::<service_control_handler::ServiceStatusHandle>::new());
        let for_handler = Arc::clone(&handle);
        let handler = move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                if let Some(h) = for_handler.get() {
                    let _ = h.set_service_status(state(
                        ServiceState::StopPending,
                        ServiceExitCode::Win32(0),
                    ));
                }
                stop.send_replace(true);
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let status = service_control_handler::register(name, handler)
            .context("registering the service control handler")?;
        let _ = handle.set(status);
        status
            .set_service_status(state(ServiceState::Running, ServiceExitCode::Win32(0)))
            .context("reporting Running")?;
        tracing::info!("service {name} running");
        let outcome = body(shutdown);
        // A service-specific exit code tells the SCM the agent failed
        // (so its failure actions restart it).
        let exit = match outcome {
            Ok(()) => ServiceExitCode::Win32(0),
            Err(_) => ServiceExitCode::ServiceSpecific(1),
        };
        // Logged before Stopped is reported: once its last service has
        // stopped, the service manager may end the process at any moment.
        tracing::info!("service {name} stopped");
        status
            .set_service_status(state(ServiceState::Stopped, exit))
            .context("reporting Stopped")?;
        outcome
    }

    fn state(current_state: ServiceState, exit_code: ServiceExitCode) -> ServiceStatus {
        let (controls_accepted, wait_hint) = match current_state {
            ServiceState::Running => (
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
                Duration::ZERO,
            ),
            ServiceState::StopPending => (ServiceControlAccept::empty(), WAIT),
            _ => (ServiceControlAccept::empty(), Duration::ZERO),
        };
        ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state,
            controls_accepted,
            exit_code,
            checkpoint: 0,
            wait_hint,
            process_id: None,
        }
    }

    fn stop_and_wait(name: &str, service: &Service) -> Result<()> {
        match service.stop() {
            Ok(_) => {}
            Err(e) if code(&e) == Some(ERROR_SERVICE_NOT_ACTIVE) => return Ok(()),
            Err(e) => return Err(explain(e, "stopping the service")),
        }
        let status = wait_for(service, |s| s == ServiceState::Stopped)?;
        if status.current_state != ServiceState::Stopped {
            bail!(
                "service {name} is still {:?} after {WAIT:?}",
                status.current_state
            );
        }
        Ok(())
    }

    /// Polls until `done(state)` or [`WAIT`] has passed; the last status.
    fn wait_for(service: &Service, done: impl Fn(ServiceState) -> bool) -> Result<ServiceStatus> {
        let deadline = Instant::now() + WAIT;
        loop {
            let status = service
                .query_status()
                .map_err(|e| explain(e, "querying the service"))?;
            if done(status.current_state) || Instant::now() >= deadline {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn manager(access: ServiceManagerAccess) -> Result<ServiceManager> {
        ServiceManager::local_computer(None::<&str>, access)
            .map_err(|e| explain(e, "opening the service control manager"))
    }

    fn open(name: &str, access: ServiceAccess) -> Result<Service> {
        manager(ServiceManagerAccess::CONNECT)?
            .open_service(name, access)
            .map_err(|e| match code(&e) {
                Some(ERROR_SERVICE_DOES_NOT_EXIST) => {
                    anyhow!("service {name} is not installed (`vigil agent service install`)")
                }
                _ => explain(e, "opening the service"),
            })
    }

    fn exit_text(code: &ServiceExitCode) -> String {
        match code {
            ServiceExitCode::Win32(0) => "exit code 0".into(),
            ServiceExitCode::Win32(1077) => "never started".into(),
            ServiceExitCode::Win32(c) => format!("Windows error {c}"),
            ServiceExitCode::ServiceSpecific(c) => {
                format!("agent error {c}; see the log files in the state directory's logs folder")
            }
        }
    }

    fn code(e: &windows_service::Error) -> Option<i32> {
        match e {
            windows_service::Error::Winapi(io) => io.raw_os_error(),
            _ => None,
        }
    }

    fn explain(e: windows_service::Error, what: &str) -> anyhow::Error {
        if code(&e) == Some(ERROR_ACCESS_DENIED) {
            return anyhow!("{what}: access denied (run it as Administrator)");
        }
        anyhow::Error::new(e).context(what.to_string())
    }
}
