//! Finding Samba, provisioning a domain, and the smb.conf each DC runs with.
//!
//! `samba-tool domain provision` takes ~20 s of CPU (it loads the whole AD
//! schema). Its output holds no absolute path except `etc/smb.conf`, which
//! is rewritten for every DC anyway, so a test process provisions once per
//! (address, password) into a template directory and copies it (`cp -a`,
//! ~0.1 s) for each DC. Templates are removed when the process exits, and
//! ones (and DC directories) left by killed processes are removed by the
//! next process.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use vigil_testnet::TestNet;

use crate::{cmd, DirError, DOMAIN, NETBIOS_NAME, REALM};

/// The system Python, for which Debian installs Samba's modules.
pub(crate) const PYTHON: &str = "/usr/bin/python3";
/// Environment variable that turns "Samba unavailable" into a failure.
pub const REQUIRE_ENV: &str = "VIGIL_REQUIRE_SAMBA";

const TEMPLATE_PREFIX: &str = "vigil-samba-tpl-";
const DC_PREFIX: &str = "vigil-samba-dc-";
const INSTALL: &str = "Debian 12: apt-get install -y samba-ad-dc samba-ad-provision";

/// Paths of the Samba programs.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub(crate) samba: PathBuf,
    pub(crate) samba_tool: PathBuf,
}

/// Checks once per process that Samba AD DC can run here: root with
/// network namespaces, `samba` and `samba-tool`, Samba's Python modules and
/// the provisioning data (Debian: packages samba-ad-dc, samba-ad-provision).
pub(crate) fn tools() -> Result<Tools, DirError> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    TOOLS.get_or_init(find_tools).clone().map_err(|why| {
        if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
            DirError::Required(why)
        } else {
            DirError::Unavailable(why)
        }
    })
}

fn find_tools() -> Result<Tools, String> {
    if !vigil_testnet::require_root() {
        return Err("needs root with `ip` and permission to create network namespaces".into());
    }
    let samba = find_program("samba").ok_or(format!("`samba` not found ({INSTALL})"))?;
    let samba_tool =
        find_program("samba-tool").ok_or(format!("`samba-tool` not found ({INSTALL})"))?;
    let out = std::process::Command::new(PYTHON)
        .args([
            "-I",
            "-c",
            "import samba.samdb, samba.param; print(samba.param.setup_dir())",
        ])
        .output()
        .map_err(|e| format!("cannot run {PYTHON}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{PYTHON} cannot import Samba's modules ({INSTALL}): {}",
            cmd::tail(&String::from_utf8_lossy(&out.stderr), 3)
        ));
    }
    let setup = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !setup.join("ad-schema").is_dir() {
        return Err(format!("no AD schema in {} ({INSTALL})", setup.display()));
    }
    Ok(Tools { samba, samba_tool })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A fresh copy of a provisioned domain in `dest` (which must exist and be
/// empty), provisioning it first if this process has not yet done so for
/// this address and password. Returns how long provisioning took (zero
/// when a template was reused).
pub(crate) fn provisioned_copy(
    net: &TestNet,
    tools: &Tools,
    addr: IpAddr,
    password: &str,
    dest: &Path,
) -> Result<Duration, DirError> {
    // Held while provisioning: a second DC started concurrently waits and
    // copies instead of provisioning again on the same two cores.
    let mut templates = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
    let key = (addr, password.to_string());
    let mut took = Duration::ZERO;
    let template = match templates.iter().find(|(k, _)| *k == key) {
        Some((_, dir)) => dir.clone(),
        None => {
            let started = Instant::now();
            let dir = provision(net, tools, addr, password)?;
            took = started.elapsed();
            templates.push((key, dir.clone()));
            dir
        }
    };
    drop(templates);
    let src = format!("{}/.", template.display());
    cmd::run(
        std::process::Command::new("cp")
            .args(["-a", "--reflink=auto", &src])
            .arg(dest),
        None,
    )?;
    Ok(took)
}

type TemplateKey = (IpAddr, String);
static TEMPLATES: Mutex<Vec<(TemplateKey, PathBuf)>> = Mutex::new(Vec::new());

fn provision(
    net: &TestNet,
    tools: &Tools,
    addr: IpAddr,
    password: &str,
) -> Result<PathBuf, DirError> {
    static SETUP: std::sync::Once = std::sync::Once::new();
    // SAFETY: registering a plain extern "C" fn.
    SETUP.call_once(|| unsafe {
        libc::atexit(remove_templates);
    });
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{TEMPLATE_PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DirError::io(format!("creating {}", dir.display()), e))?;
    // An empty configuration, so nothing from /etc/samba/smb.conf leaks in.
    let empty = dir.join("empty.conf");
    std::fs::write(&empty, "").map_err(|e| DirError::io("writing empty.conf", e))?;
    let host_ip = match addr {
        IpAddr::V4(a) => format!("--host-ip={a}"),
        IpAddr::V6(a) => format!("--host-ip6={a}"),
    };
    // In the target namespace: provisioning looks at the local interfaces
    // and must never see (or reach) the host's.
    let mut provision = net.target_cmd(&tools.samba_tool);
    provision
        .args(["domain", "provision", "--configfile"])
        .arg(&empty)
        .arg(format!("--targetdir={}", dir.display()))
        .args([
            &format!("--realm={REALM}"),
            &format!("--domain={DOMAIN}"),
            &format!("--host-name={NETBIOS_NAME}"),
            &host_ip,
            "--server-role=dc",
            "--dns-backend=SAMBA_INTERNAL",
            // LMDB: measured ~20% faster bulk adds than TDB, growing less
            // with the directory size.
            "--backend-store=mdb",
            &format!("--adminpass={password}"),
        ]);
    if let Err(e) = cmd::run(&mut provision, None) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

extern "C" fn remove_templates() {
    // try_lock: never block process exit.
    if let Ok(templates) = TEMPLATES.try_lock() {
        for (_, dir) in templates.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Prefix of a DC's own directory: `vigil-samba-dc-<pid>-<random>`.
pub(crate) fn dc_dir_prefix() -> String {
    format!("{DC_PREFIX}{}-", std::process::id())
}

/// Once per process: remove the templates and DC directories of earlier
/// processes that were killed (their pid is gone). Their samba processes
/// are gone too: `samba -i` exits when its stdin (a pipe from the killed
/// process) closes.
pub(crate) fn remove_stale_dirs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = stale_pid(&name) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// The pid in `vigil-samba-tpl-<pid>-<n>` or `vigil-samba-dc-<pid>-<x>`.
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(TEMPLATE_PREFIX)
        .or_else(|| name.strip_prefix(DC_PREFIX))?;
    let (pid, suffix) = rest.split_once('-')?;
    if suffix.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The configuration a DC in `dir` runs with: everything (state, sockets,
/// pid files, logs) inside `dir`, so DCs never share files with each other
/// or with a system Samba; listening on `addr` only.
pub(crate) fn smb_conf(dir: &Path, addr: IpAddr, own_tls: bool) -> String {
    let d = dir.display();
    let realm_lower = REALM.to_ascii_lowercase();
    // Without these, Samba generates key, certificate and CA in
    // private/tls on first start (no subjectAltName).
    let tls_files = if own_tls {
        format!(
            "\ttls keyfile = {d}/private/tls/key.pem\n\ttls certfile = {d}/private/tls/cert.pem\n\
             \ttls cafile = {d}/private/tls/ca.pem\n"
        )
    } else {
        String::new()
    };
    format!(
        "\
# Written by vigil-testdir.
[global]
\tnetbios name = {NETBIOS_NAME}
\trealm = {REALM}
\tworkgroup = {DOMAIN}
\tserver role = active directory domain controller
\tinterfaces = {addr}
\tbind interfaces only = yes
\t# No forwarding of unknown DNS names, no dynamic DNS updates, no
\t# KCC topology runs: a lone DC in a namespace without a way out.
\tdns forwarder =
\tserver services = -dnsupdate -kcc
\tprivate dir = {d}/private
\tbinddns dir = {d}/bind-dns
\tlock directory = {d}
\tstate directory = {d}/state
\tcache directory = {d}/cache
\tpid directory = {d}/run
\tncalrpc dir = {d}/run/ncalrpc
\twinbindd socket directory = {d}/run/winbindd
\tntp signd socket directory = {d}/run/ntp_signd
\tlog file = {d}/log.%m
\ttls enabled = yes
{tls_files}
[sysvol]
\tpath = {d}/state/sysvol
\tread only = No

[netlogon]
\tpath = {d}/state/sysvol/{realm_lower}/scripts
\tread only = No
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_template_names() {
        assert_eq!(stale_pid("vigil-samba-tpl-123-0"), Some(123));
        assert_eq!(stale_pid("vigil-samba-dc-77-Ab3xYz"), Some(77));
        assert_eq!(stale_pid("vigil-samba-tpl-123"), None);
        assert_eq!(stale_pid("vigil-samba-tpl-123-"), None);
        assert_eq!(stale_pid("vigil-samba-tpl-x-1"), None);
        assert_eq!(stale_pid("other-123-0"), None);
    }

    #[test]
    fn smb_conf_keeps_everything_in_the_directory() {
        let conf = smb_conf(Path::new("/tmp/dc"), "198.51.100.53".parse().unwrap(), true);
        assert!(conf.contains("\tinterfaces = 198.51.100.53\n"));
        assert!(conf.contains("\tbind interfaces only = yes\n"));
        for line in conf.lines().filter(|l| l.contains(" = /")) {
            assert!(line.contains("= /tmp/dc"), "{line}");
        }
        assert!(conf.contains("\ttls certfile = /tmp/dc/private/tls/cert.pem\n"));
        let generated = smb_conf(
            Path::new("/tmp/dc"),
            "198.51.100.53".parse().unwrap(),
            false,
        );
        assert!(generated.contains("\ttls enabled = yes\n") && !generated.contains("tls certfile"));
    }
}
