//! "Install agent" for endpoints without one: a push install over SSH, or
//! a one-line manual command.
//!
//! **Push install** (`POST /api/v1/compliance/install`): a background job
//! installs on each address, up to [`PARALLEL`] at a time: a fresh
//! single-use enrollment token, then over SSH ([`ssh`]) the agent binary is
//! streamed to `<install_dir>/vigil.new` and the setup script
//! ([`script::setup_script`]) enrolls the agent, writes
//! `vigil-agent.service` and starts it (systemd, or detached when the host
//! has no systemd). The SSH key is used for that job only and never stored.
//!
//! **Manual install** (`POST /api/v1/compliance/install-command`): a fresh
//! token in `curl … --pinnedpubkey … install.sh | sh -s -- TOKEN`. The
//! agent API serves the script ([`serve::install_script`]) and the binary
//! ([`serve::download`]); curl's `--pinnedpubkey` (the SHA-256 of the
//! certificate's public key, [`curl_pin`]) keeps the guarantee agents get
//! from their certificate pin, without any CA.
//!
//! The binary handed out is the server's own executable (the agent is the
//! same `vigil` binary), or `--agent-binary` for hosts of another platform.
//!
//! **Windows hosts** get `--agent-binary-windows` (`vigil.exe`, its SHA-256
//! computed once at start): the manual command is a line for an elevated
//! PowerShell that fetches `install.ps1` ([`ps1`]) over the pinned
//! connection; the push install first asks the SSH shell what it is
//! ([`ps1::SHELL_PROBE`]) and, on Windows' OpenSSH server, sends the binary
//! and the setup to `powershell` instead of `sh`.
//!
//! Jobs are kept in the database (`vigil_store::InstallJob`): any replica
//! answers for a job, and a job survives a restart of its server. A
//! running job holds a lease this server renews ([`keeper`]); a server
//! that stops ends its running jobs as *interrupted* at once, and a job
//! whose server died (its lease ran out) is ended so by whichever server
//! looks first — the SSH key is never stored, so it cannot go on: each
//! host it had not finished fails with the reason (its unused enrollment
//! token expires after an hour). Finished jobs are deleted by retention
//! after [`crate::retention::INSTALL_JOBS_KEPT`] (and beyond each
//! account's newest 20 at once).

mod installer;
mod ps1;
mod script;
pub(crate) mod serve;
pub(crate) mod service;
mod ssh;

use crate::app::App;
use base64::Engine;
pub(crate) use installer::{Installer, WindowsBinary, NO_WINDOWS_BINARY};
pub(crate) use ps1::WinLayout;
use script::sh_quote;
pub(crate) use script::Layout;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use vigil_core::netpolicy::{Destination, NetPolicy, Refusal};
use vigil_core::Plan;
use vigil_proto::api::{AgentStart, InstallHostView, InstallJobView, InstallRequest};
use vigil_proto::pin::CertPin;
use vigil_store::{
    now_unix, AccountId, InstallHost, InstallHostState, InstallJob, InstallJobId, StoreError,
    UnixTime,
};

pub(crate) use ssh::Login;

/// Where the agent API serves the install script and the binary.
pub(crate) const SCRIPT_PATH: &str = "/agent/v1/install.sh";
pub(crate) const DOWNLOAD_PATH: &str = "/agent/v1/download/vigil";
/// The same for Windows hosts.
pub(crate) const PS1_PATH: &str = "/agent/v1/install.ps1";
pub(crate) const DOWNLOAD_EXE_PATH: &str = "/agent/v1/download/vigil.exe";

/// Most addresses in one push-install request.
pub(crate) const MAX_HOSTS: usize = 256;
/// Hosts installed at the same time by one job.
const PARALLEL: usize = 8;
/// How long a push install's enrollment token lives.
const PUSH_TOKEN_TTL: Duration = Duration::from_secs(3600);
const UPLOAD_LIMIT: Duration = Duration::from_secs(600);
const SETUP_LIMIT: Duration = Duration::from_secs(180);
const PROBE_LIMIT: Duration = Duration::from_secs(60);

/// Why an install request is refused or a host's install failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    /// Bad input, answered with a 4xx.
    #[error("{0}")]
    Invalid(String),
    /// Too many jobs running (for the account or the server): retry later.
    #[error("{0}")]
    Busy(String),
    /// A host's install failed; shown in the job.
    #[error("{0}")]
    Failed(String),
    /// The job could not be recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The error of each unfinished host of a job its server stopped.
const STOPPED: &str = "interrupted: the server stopped before this host's install finished; \
     the SSH key is not kept, so start the install again";
/// The same when the server died (its lease on the job ran out).
const STALLED: &str = "interrupted: the server running this job stopped or lost its database \
     before this host's install finished; the SSH key is not kept, so start the install again";

/// curl's `--pinnedpubkey` form of a certificate's key:
/// `sha256//` + base64 of the SHA-256 of its SubjectPublicKeyInfo.
pub(crate) fn curl_pin(cert_der: &[u8]) -> Result<String, String> {
    let der = rustls::pki_types::CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| format!("reading the certificate's public key: {e}"))?;
    let spki = cert.subject_public_key_info();
    let hash = Sha256::digest(spki.as_ref());
    Ok(format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    ))
}

/// A checked push-install request.
#[derive(Debug)]
pub(crate) struct Push {
    addrs: Vec<IpAddr>,
    login: Login,
    plan: Plan,
    layout: Layout,
    win_layout: WinLayout,
}

impl Push {
    pub fn check(req: &InstallRequest) -> Result<Push, InstallError> {
        if req.addresses.is_empty() {
            return Err(InstallError::Invalid(
                "addresses: give at least one IP address".into(),
            ));
        }
        if req.addresses.len() > MAX_HOSTS {
            return Err(InstallError::Invalid(format!(
                "addresses: {} given, at most {MAX_HOSTS} per request",
                req.addresses.len()
            )));
        }
        let mut addrs = Vec::new();
        for (i, text) in req.addresses.iter().enumerate() {
            let addr: IpAddr = text.trim().parse().map_err(|_| {
                InstallError::Invalid(format!("addresses[{i}]: {text:?} is not an IP address"))
            })?;
            let usable = match addr {
                IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
                IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
            };
            if !usable {
                return Err(InstallError::Invalid(format!(
                    "addresses[{i}]: {addr} is not a host address"
                )));
            }
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        Ok(Push {
            addrs,
            login: Login::check(&req.ssh)?,
            plan: req.plan.unwrap_or(Plan::Community),
            layout: Layout::new(
                req.install_dir.as_deref(),
                req.state_dir.as_deref(),
                req.unit_dir.as_deref(),
                req.start,
            )?,
            win_layout: WinLayout::new(
                req.windows_install_dir.as_deref(),
                req.windows_state_dir.as_deref(),
            )
            .map_err(|e| InstallError::Invalid(format!("windows_{e}")))?,
        })
    }
}

impl Push {
    /// Whether the operator's network policy lets the server SSH to every
    /// address (checked again when connecting).
    pub fn check_policy(&self, policy: &NetPolicy) -> Result<(), Refusal> {
        self.addrs
            .iter()
            .try_for_each(|a| policy.check(Destination::Ssh, *a))
    }
}

/// What the API and the console show of a job.
pub(crate) fn view(job: &InstallJob) -> InstallJobView {
    InstallJobView {
        id: job.id.to_string(),
        state: job.state.as_str().into(),
        created_at: job.created_at,
        finished_at: job.finished_at,
        hosts: job
            .hosts
            .iter()
            .map(|h| InstallHostView {
                address: h.address.clone(),
                state: h.state.as_str().into(),
                message: h.message.clone(),
                error: h.error.clone(),
                agent_id: h.agent_id.clone(),
                finished_at: h.finished_at,
            })
            .collect(),
    }
}

/// A job of `account` by the id in a URL; `None` for a malformed id, a
/// missing job and another account's alike.
pub(crate) async fn job(
    app: &App,
    account: AccountId,
    id: &str,
) -> Result<Option<InstallJobView>, StoreError> {
    let Ok(id) = id.parse::<InstallJobId>() else {
        return Ok(None);
    };
    match app.store.install_job(account, id).await {
        Ok(job) => Ok(Some(view(&job))),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `now + lease` in whole seconds (at least one).
fn lease_end(now: UnixTime, lease: Duration) -> UnixTime {
    now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX).max(1))
}

/// Starts a push-install job; its view, every host pending.
pub(crate) async fn start(
    app: &Arc<App>,
    account: AccountId,
    push: Push,
) -> Result<InstallJobView, InstallError> {
    let slot = app.install.slot()?;
    let now = now_unix();
    let addresses: Vec<String> = push.addrs.iter().map(ToString::to_string).collect();
    let job = app
        .store
        .start_install_job(
            account,
            &addresses,
            now,
            lease_end(now, app.cfg.leases.install),
            installer::ACCOUNT_LIMITS,
        )
        .await?
        .ok_or_else(|| {
            InstallError::Busy(format!(
                "{} install jobs of this account are running; try again when one has finished",
                installer::ACCOUNT_LIMITS.running_per_account
            ))
        })?;
    app.install.started(account, job.id);
    tracing::info!(job = %job.id, hosts = push.addrs.len(), user = push.login.user(),
        port = push.login.port(), "agent install job started");
    tokio::spawn(run(app.clone(), account, job.id, push, slot));
    Ok(view(&job))
}

async fn run(
    app: Arc<App>,
    account: AccountId,
    id: InstallJobId,
    push: Push,
    _slot: OwnedSemaphorePermit,
) {
    // However this ends (a panic included), the job no longer runs here:
    // its lease is no longer renewed, and a job left running is ended as
    // interrupted when the lease runs out.
    struct Ended<'a>(&'a App, InstallJobId);
    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.install.ended(self.1);
        }
    }
    let _ended = Ended(&app, id);
    let push = Arc::new(push);
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut hosts = tokio::task::JoinSet::new();
    for (index, addr) in push.addrs.iter().copied().enumerate() {
        let (app, push, permits) = (app.clone(), push.clone(), permits.clone());
        hosts.spawn(async move {
            let Ok(_permit) = permits.acquire().await else {
                return;
            };
            let mut host = InstallHost {
                address: addr.to_string(),
                state: InstallHostState::Running,
                message: None,
                error: None,
                agent_id: None,
                finished_at: None,
            };
            record_host(&app, account, id, index, &host).await;
            let result = install_host(&app, account, &push, addr).await;
            if let Err(e) = &result {
                tracing::warn!(job = %id, %addr, error = %e, "agent install failed");
            }
            host.finished_at = Some(now_unix());
            match result {
                Ok(done) => {
                    host.state = InstallHostState::Installed;
                    host.message = Some(done.message);
                    host.agent_id = done.agent_id;
                }
                Err(e) => {
                    host.state = InstallHostState::Failed;
                    host.error = Some(e.to_string());
                }
            }
            record_host(&app, account, id, index, &host).await;
        });
    }
    while hosts.join_next().await.is_some() {}
    match app.store.finish_install_job(account, id, now_unix()).await {
        Ok(true) => tracing::info!(job = %id, "agent install job finished"),
        Ok(false) => {
            tracing::warn!(job = %id, "agent install job finished after it was ended as interrupted")
        }
        Err(e) => {
            tracing::error!(job = %id, error = %e, "cannot record the end of an agent install job")
        }
    }
}

/// Writes where a host stands; a failure is logged (the install goes on).
async fn record_host(
    app: &App,
    account: AccountId,
    id: InstallJobId,
    index: usize,
    host: &InstallHost,
) {
    if let Err(e) = app.store.set_install_host(account, id, index, host).await {
        tracing::error!(job = %id, address = %host.address, error = %e, "cannot record an agent install's progress");
    }
}

/// Keeps the jobs running here alive in the database (their leases,
/// renewed every third of `--lease-secs`), ends the jobs whose server died
/// as interrupted (at start, then every round), and when the server stops,
/// ends the jobs still running here as interrupted.
pub(crate) async fn keeper(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let lease = app.cfg.leases.install;
    let every = (lease / 3).max(Duration::from_secs(1));
    loop {
        let now = now_unix();
        for (account, id) in app.install.running_here() {
            if let Err(e) = app
                .store
                .renew_install_job(account, id, lease_end(now, lease))
                .await
            {
                tracing::warn!(job = %id, error = %e, "renewing an agent install job's lease failed");
            }
        }
        match app.store.interrupt_stalled_install_jobs(now, STALLED).await {
            Ok(ended) => {
                for (account, id) in ended {
                    tracing::warn!(%account, job = %id, "agent install job interrupted: its server stopped");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "looking for interrupted agent install jobs failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    for (account, id) in app.install.running_here() {
        match app
            .store
            .interrupt_install_job(account, id, now_unix(), STOPPED)
            .await
        {
            Ok(true) => {
                tracing::warn!(%account, job = %id, "agent install job interrupted by the shutdown")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(job = %id, error = %e, "cannot end an agent install job at shutdown")
            }
        }
    }
}

struct Installed {
    message: String,
    agent_id: Option<String>,
}

async fn install_host(
    app: &App,
    account: AccountId,
    push: &Push,
    addr: IpAddr,
) -> Result<Installed, InstallError> {
    let token = app
        .store
        .create_enrollment(account, &addr.to_string(), push.plan, PUSH_TOKEN_TTL)
        .await
        .map_err(|e| InstallError::Failed(format!("creating an enrollment token: {e}")))?;
    app.cfg
        .net_policy
        .check(Destination::Ssh, addr)
        .map_err(|r| InstallError::Failed(r.to_string()))?;
    let session = ssh::Session::new(&push.login, addr)?;
    let shell = ps1::parse_shell_probe(&session.probe(ps1::SHELL_PROBE, PROBE_LIMIT).await?);
    let out = if shell.is_windows() {
        install_windows(app, push, &session, shell, &token).await?
    } else {
        install_posix(app, push, &session, &token).await?
    };
    let mut notes: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("vigil-install: "))
        .map(str::to_string)
        .collect();
    if let Some(keys) = session.accepted_host_keys().await {
        notes.push(format!(
            "host key accepted on first use (no known_hosts given): {keys}"
        ));
    }
    Ok(Installed {
        message: notes.join("; "),
        agent_id: enrolled_agent(&out),
    })
}

/// Copies the binary with `cat`, runs the setup with `sh`; its stdout.
async fn install_posix(
    app: &App,
    push: &Push,
    session: &ssh::Session,
    token: &str,
) -> Result<String, InstallError> {
    let dir = &push.layout.install_dir;
    let upload = format!(
        "umask 022 && mkdir -p {} && cat > {}",
        sh_quote(dir),
        sh_quote(&format!("{dir}/{}", script::UPLOAD_NAME))
    );
    let binary = app.install.binary();
    session
        .run(
            "copying the agent binary",
            &upload,
            ssh::Input::File(&binary),
            UPLOAD_LIMIT,
        )
        .await?;
    let setup = script::setup_script(&push.layout, &app.agent_url, &app.pin.to_string());
    session
        .run(
            "the install script",
            &format!("sh -s -- {}", sh_quote(token)),
            ssh::Input::Text(&setup),
            SETUP_LIMIT,
        )
        .await
}

/// Windows' OpenSSH server (`shell` cmd or PowerShell): the binary and
/// then the setup go over stdin to `powershell`; its stdout.
async fn install_windows(
    app: &App,
    push: &Push,
    session: &ssh::Session,
    shell: ps1::RemoteShell,
    token: &str,
) -> Result<String, InstallError> {
    let windows = app.install.windows().map_err(|e| {
        InstallError::Failed(format!(
            "the host runs Windows ({shell:?} over SSH), but {e}"
        ))
    })?;
    session
        .run(
            "copying vigil.exe",
            &ps1::upload_command(&push.win_layout),
            ssh::Input::File(&windows.path),
            UPLOAD_LIMIT,
        )
        .await?;
    let setup = ps1::setup_ps1(
        &push.win_layout,
        &app.agent_url,
        &app.pin.to_string(),
        &windows.sha256,
    );
    let out = session
        .run(
            "the PowerShell install",
            &ps1::run_stdin_command(token),
            ssh::Input::Text(&setup),
            SETUP_LIMIT,
        )
        .await?;
    Ok(format!(
        "vigil-install: Windows host ({shell:?} shell over SSH)\n{out}"
    ))
}

/// The agent id in `vigil agent enroll`'s "enrolled as agent ID with server …".
fn enrolled_agent(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("enrolled as agent ")?;
        rest.split_whitespace().next().map(str::to_string)
    })
}

/// The URL of the install script for `layout` (defaults left out).
pub(crate) fn script_url(agent_url: &str, layout: &Layout) -> String {
    let mut query = Vec::new();
    for (name, value, default) in [
        (
            "install_dir",
            layout.install_dir.as_str(),
            script::DEFAULT_INSTALL_DIR,
        ),
        ("state_dir", &layout.state_dir, script::DEFAULT_STATE_DIR),
        ("unit_dir", &layout.unit_dir, script::DEFAULT_UNIT_DIR),
        (
            "start",
            layout.start.as_str(),
            AgentStart::default().as_str(),
        ),
    ] {
        if value != default {
            query.push(format!("{name}={}", percent_encode(value)));
        }
    }
    let base = format!("{}{SCRIPT_PATH}", agent_url.trim_end_matches('/'));
    if query.is_empty() {
        base
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

/// The URL of the Windows install script for `layout` (defaults left out).
pub(crate) fn ps1_url(agent_url: &str, layout: &WinLayout) -> String {
    let query: Vec<String> = [
        ("install_dir", &layout.install_dir),
        ("state_dir", &layout.state_dir),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some(format!("{name}={}", percent_encode(value.as_ref()?))))
    .collect();
    let base = format!("{}{PS1_PATH}", agent_url.trim_end_matches('/'));
    if query.is_empty() {
        base
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

/// The one-line manual install for an elevated Windows PowerShell.
pub(crate) fn windows_command(pin: &CertPin, ps1_url: &str, token: &str) -> String {
    ps1::one_liner(&pin.to_string(), ps1_url, token)
}

/// The one-line manual install command.
pub(crate) fn command(curl_pin: &str, script_url: &str, token: &str) -> String {
    format!(
        "curl -fsS --insecure --pinnedpubkey {} {} | sh -s -- {}",
        sh_quote(curl_pin),
        sh_quote(script_url),
        sh_quote(token)
    )
}

/// Percent-encodes all but RFC 3986's unreserved characters and `/`.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::api::SshLogin;

    fn request(addresses: &[&str]) -> InstallRequest {
        InstallRequest {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            ssh: SshLogin {
                user: "root".into(),
                port: 22,
                private_key: "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
                    .into(),
                known_hosts: None,
            },
            plan: None,
            install_dir: None,
            state_dir: None,
            unit_dir: None,
            start: AgentStart::Auto,
            windows_install_dir: None,
            windows_state_dir: None,
        }
    }

    #[test]
    fn addresses_are_checked_and_deduplicated() {
        let push = Push::check(&request(&["198.51.100.7", " 198.51.100.7", "2001:db8::1"]))
            .expect("valid");
        assert_eq!(push.addrs.len(), 2);
        assert_eq!(push.plan, Plan::Community);
        for (bad, why) in [
            (vec![], "at least one"),
            (
                vec!["web01"],
                "addresses[0]: \"web01\" is not an IP address",
            ),
            (
                vec!["198.51.100.7", "0.0.0.0"],
                "addresses[1]: 0.0.0.0 is not a host",
            ),
            (vec!["ff02::1"], "not a host"),
        ] {
            let err = Push::check(&request(&bad)).expect_err(why).to_string();
            assert!(err.contains(why), "{err}");
        }
        let many: Vec<String> = (0..=MAX_HOSTS)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(Push::check(&request(&many)).is_err());
    }

    #[test]
    fn curl_pin_hashes_the_public_key() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["vigil.test".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let expected = format!(
            "sha256//{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(
                rcgen::PublicKeyData::subject_public_key_info(&key)
            ))
        );
        assert_eq!(curl_pin(cert.der()).expect("pin"), expected);
        assert!(curl_pin(b"not a certificate").is_err());
    }

    #[test]
    fn the_command_and_script_url() {
        let layout = Layout::new(None, None, None, AgentStart::Auto).expect("defaults");
        let url = script_url("https://vigil.test:8443/", &layout);
        assert_eq!(url, "https://vigil.test:8443/agent/v1/install.sh");
        let custom =
            Layout::new(Some("/tmp/a b&c"), None, None, AgentStart::Detached).expect("valid");
        assert_eq!(
            script_url("https://vigil.test:8443", &custom),
            "https://vigil.test:8443/agent/v1/install.sh?install_dir=/tmp/a%20b%26c&start=detached"
        );
        assert_eq!(
            command("sha256//AB=", &url, "vge_x"),
            "curl -fsS --insecure --pinnedpubkey 'sha256//AB=' \
             'https://vigil.test:8443/agent/v1/install.sh' | sh -s -- 'vge_x'"
        );
    }

    #[test]
    fn the_enrolled_agent_id_is_read_from_the_output() {
        let out = "vigil-install: x\nenrolled as agent 0b4c1d2e-aa with server 11-22\n";
        assert_eq!(enrolled_agent(out).as_deref(), Some("0b4c1d2e-aa"));
        let windows = "vigil-install: x\r\nenrolled as agent 0b4c1d2e-bb with server 11\r\n";
        assert_eq!(enrolled_agent(windows).as_deref(), Some("0b4c1d2e-bb"));
        assert_eq!(enrolled_agent("nothing"), None);
    }

    #[test]
    fn windows_push_dirs_are_checked() {
        let mut req = request(&["198.51.100.7"]);
        req.windows_install_dir = Some("D:\\Vigil".into());
        let push = Push::check(&req).expect("valid");
        assert_eq!(push.win_layout.install_dir.as_deref(), Some("D:\\Vigil"));
        req.windows_state_dir = Some("/var/lib/x".into());
        let err = Push::check(&req).expect_err("not Windows").to_string();
        assert!(err.starts_with("windows_state_dir \"/var/lib/x\""), "{err}");
    }

    #[test]
    fn the_windows_binary_is_hashed_and_the_ps1_url_built() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vigil.exe");
        std::fs::write(&path, b"MZ").expect("write");
        let bin = WindowsBinary::load(&path).expect("a file");
        assert_eq!(bin.sha256, installer::hex(&Sha256::digest(b"MZ")));
        assert_eq!(bin.sha256.len(), 64);
        let err = WindowsBinary::load(dir.path()).expect_err("a directory");
        assert!(err.contains("is not a file"), "{err}");
        let none = Installer::new(String::new(), None, None);
        assert!(none
            .windows()
            .expect_err("none")
            .to_string()
            .contains("--agent-binary-windows"));
        let layout = WinLayout::new(Some("C:\\My Apps\\V&gil"), None).expect("valid");
        assert_eq!(
            ps1_url("https://vigil.test:8443/", &layout),
            "https://vigil.test:8443/agent/v1/install.ps1?install_dir=C%3A%5CMy%20Apps%5CV%26gil"
        );
        assert_eq!(
            ps1_url("https://vigil.test:8443", &WinLayout::default()),
            "https://vigil.test:8443/agent/v1/install.ps1"
        );
    }
}
