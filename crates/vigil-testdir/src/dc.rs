//! A running Samba AD DC: start, readiness, directory operations, stop.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use vigil_testnet::TestNet;

use crate::computers::{check_name, to_ldif, Computer};
use crate::provision::{self, PYTHON};
use crate::{cmd, tls, DirError, NETBIOS_NAME, REALM};

/// The sam.ldb helper, run with [`PYTHON`] from the DC's directory.
const SAMDB_PY: &str = include_str!("samdb.py");
const SAMDB_PY_FILE: &str = "samdb.py";
/// Its exit status for "no such computer".
const SAMDB_NOT_FOUND: i32 = 3;

/// How a [`SambaDc`] is started.
#[derive(Debug, Clone)]
pub struct DcOptions {
    /// Password of `Administrator`. Samba's default policy wants at least 7
    /// characters from three of: upper case, lower case, digits, symbols.
    pub admin_password: String,
    /// How long to wait for LDAP to answer after `samba` was started.
    pub startup_timeout: Duration,
    /// Let Samba generate its own TLS certificate on first start, as a DC
    /// provisioned the default way has it: the host name only in the
    /// subject CN, no subjectAltName (so no client can check it by name).
    /// Default: a test CA's certificate with the DC's name and address as
    /// SANs ([`SambaDc::ca_cert_pem`]).
    pub samba_generated_tls: bool,
}

impl Default for DcOptions {
    fn default() -> Self {
        DcOptions {
            admin_password: "Vigil-Test-Pass1".to_string(),
            startup_timeout: Duration::from_secs(120),
            samba_generated_tls: false,
        }
    }
}

/// Where the time went while starting a [`SambaDc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DcTimings {
    /// `samba-tool domain provision`; zero when this process had already
    /// provisioned for the same address and password (template copied).
    pub provision: Duration,
    /// Copying the domain, writing configuration and certificates.
    pub prepare: Duration,
    /// From starting `samba` until LDAP and LDAPS answer.
    pub start: Duration,
}

/// A Samba AD domain controller for `EXAMPLE.TEST` running in the target
/// namespace of a [`TestNet`]; see the crate docs. Dropping it stops samba
/// and deletes its directory.
pub struct SambaDc {
    addr: IpAddr,
    ns: String,
    password: String,
    ca_pem: String,
    timings: DcTimings,
    stdin: Option<ChildStdin>,
    child: Child,
    // Declared last: removed after samba has stopped.
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for SambaDc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SambaDc")
            .field("addr", &self.addr)
            .field("ns", &self.ns)
            .field("dir", &self.dir.path())
            .field("pid", &self.child.id())
            .finish()
    }
}

impl SambaDc {
    /// Provisions (or copies, see [`DcTimings::provision`]) the domain,
    /// starts `samba` in `net`'s target namespace listening on `addr` only
    /// (which this adds with [`TestNet::add_host`]), and waits until LDAP
    /// and LDAPS answer from the scanner namespace.
    ///
    /// [`DirError::Unavailable`] (or [`DirError::Required`] with
    /// `VIGIL_REQUIRE_SAMBA=1`) when Samba cannot run here.
    pub fn start(net: &TestNet, addr: IpAddr, opts: &DcOptions) -> Result<SambaDc, DirError> {
        let tools = provision::tools()?;
        provision::remove_stale_dirs();
        net.add_host(addr)?;
        let dir = tempfile::Builder::new()
            .prefix(&provision::dc_dir_prefix())
            .tempdir()
            .map_err(|e| DirError::io("creating the DC's directory", e))?;
        let provision =
            provision::provisioned_copy(net, &tools, addr, &opts.admin_password, dir.path())?;

        let prepared = Instant::now();
        let conf = dir.path().join("etc/smb.conf");
        let own_tls = !opts.samba_generated_tls;
        std::fs::write(&conf, provision::smb_conf(dir.path(), addr, own_tls))
            .map_err(|e| DirError::io(format!("writing {}", conf.display()), e))?;
        for sub in ["run", "cache"] {
            let path = dir.path().join(sub);
            std::fs::create_dir_all(&path)
                .map_err(|e| DirError::io(format!("creating {}", path.display()), e))?;
        }
        let ca_pem = if own_tls {
            tls::write(&dir.path().join("private/tls"), addr, &host_fqdn())?.ca_pem
        } else {
            String::new()
        };
        let helper = dir.path().join(SAMDB_PY_FILE);
        std::fs::write(&helper, SAMDB_PY)
            .map_err(|e| DirError::io(format!("writing {}", helper.display()), e))?;
        let prepare = prepared.elapsed();

        let started = Instant::now();
        let log_path = dir.path().join("samba.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| DirError::io(format!("creating {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| DirError::io("duplicating the log file handle", e))?;
        // `ip netns exec` execs samba in place, so `child` is samba itself.
        // -i: foreground, and exit when stdin reaches EOF, which it does
        // when this process dies, however it dies. -M single: one process
        // for all AD services (plus smbd and winbindd), light on 2 cores.
        let mut child = net
            .target_cmd(&tools.samba)
            .args(["-i", "-M", "single", "--configfile"])
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| DirError::io("starting samba", e))?;
        let stdin = child.stdin.take();
        let mut dc = SambaDc {
            addr,
            ns: net.target_ns().to_string(),
            password: opts.admin_password.clone(),
            ca_pem,
            timings: DcTimings {
                provision,
                prepare,
                start: Duration::ZERO,
            },
            stdin,
            child,
            dir,
        };
        dc.wait_ready(net, opts.startup_timeout)?;
        // Kerberos (GSSAPI) LDAP binds need ldap/ SPNs on the DC account.
        dc.samdb(&["dc-spns"], None)?;
        dc.timings.start = started.elapsed();
        Ok(dc)
    }

    fn wait_ready(&mut self, net: &TestNet, timeout: Duration) -> Result<(), DirError> {
        let deadline = Instant::now() + timeout;
        let (ldap, ldaps) = (
            SocketAddr::new(self.addr, 389),
            SocketAddr::new(self.addr, 636),
        );
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.startup_error(format!("samba exited ({status})")));
            }
            let ready = net.in_scanner(move || {
                ldap_root_dse_answers(ldap)
                    && TcpStream::connect_timeout(&ldaps, Duration::from_secs(1)).is_ok()
            })?;
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.startup_error(format!(
                    "LDAP on {ldap} and LDAPS on {ldaps} not answering after {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn startup_error(&self, reason: String) -> DirError {
        let log = self.log_path();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        DirError::Startup {
            reason,
            log: log.display().to_string(),
            tail: cmd::tail(&text, 30),
        }
    }

    /// The address the DC listens on (in the target namespace).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// `ldaps://ADDR:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}", SocketAddr::new(self.addr, 636))
    }

    /// `ldap://ADDR:389`. Samba refuses simple binds over it ("Transport
    /// encryption required"): use [`SambaDc::ldaps_url`] or StartTLS.
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}", SocketAddr::new(self.addr, 389))
    }

    /// `DC=example,DC=test`.
    pub fn base_dn(&self) -> String {
        base_dn()
    }

    /// `CN=Administrator,CN=Users,DC=example,DC=test`.
    pub fn bind_dn(&self) -> String {
        format!("CN=Administrator,CN=Users,{}", base_dn())
    }

    /// The administrator password ([`DcOptions::admin_password`]).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The DC's DNS name, `dc1.example.test` (a SAN of its certificate,
    /// besides its IP address; there is no DNS resolution for it outside
    /// the DC's own DNS server).
    pub fn host_name(&self) -> String {
        host_fqdn()
    }

    /// PEM of the CA that issued the DC's LDAPS certificate: trust exactly
    /// this to verify the DC (by IP address or [`SambaDc::host_name`]).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where the time went in [`SambaDc::start`].
    pub fn timings(&self) -> DcTimings {
        self.timings
    }

    /// The DC's directory (configuration, databases, logs); deleted on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// samba's own output (`samba -i`); per-service logs are `log.*` next
    /// to it.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("samba.log")
    }

    /// Creates `computers` (and the OUs they need) in one go, written
    /// straight into the DC's database through Samba's own directory
    /// modules while it runs, like `samba-tool` does; the objects are
    /// visible over LDAP as soon as this returns. About 5 ms of CPU per
    /// computer, rising slowly with the directory's size. Stops at the first
    /// object that cannot be added (e.g. a duplicate name); the ones before
    /// it stay.
    pub fn add_computers(&self, computers: &[Computer]) -> Result<(), DirError> {
        if computers.is_empty() {
            return Ok(());
        }
        let ldif = to_ldif(&base_dn(), computers)?;
        self.samdb(&["add"], Some(ldif.as_bytes())).map(drop)
    }

    /// The `objectGUID` of computer `name`, as Samba itself renders it (the
    /// canonical form AD shows; on the wire it is 16 bytes in the
    /// mixed-endian layout that `Uuid::from_bytes_le` reads).
    pub fn object_guid(&self, name: &str) -> Result<uuid::Uuid, DirError> {
        check_name(name)?;
        let out = self.samdb(&["guid", name], None)?;
        let text = out.trim();
        uuid::Uuid::parse_str(text).map_err(|e| DirError::Command {
            cmd: "sam.ldb helper guid".into(),
            status: "0".into(),
            stderr: format!("unexpected GUID {text:?}: {e}"),
        })
    }

    /// Sets or clears ACCOUNTDISABLE (0x2) in computer `name`'s
    /// `userAccountControl`.
    pub fn set_disabled(&self, name: &str, disabled: bool) -> Result<(), DirError> {
        check_name(name)?;
        let flag = if disabled { "1" } else { "0" };
        self.samdb(&["disable", name, flag], None).map(drop)
    }

    /// Sets the DNS records of host names in the domain's zone, served by
    /// the DC's own DNS server on [`SambaDc::addr`] port 53 (as AD-joined
    /// machines register themselves): each `(fqdn, addresses)` replaces the
    /// name's A/AAAA records. Point a namespace's resolver at the DC with
    /// [`vigil_testnet::TestNet::set_scanner_dns`].
    pub fn set_dns_records(&self, records: &[(&str, &[IpAddr])]) -> Result<(), DirError> {
        let mut lines = String::new();
        for (name, addrs) in records {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
            if !valid {
                return Err(DirError::InvalidInput(format!(
                    "DNS name {name:?}: letters, digits, '-' and '.' only"
                )));
            }
            lines.push_str(name);
            for a in addrs.iter() {
                lines.push(' ');
                lines.push_str(&a.to_string());
            }
            lines.push('\n');
        }
        self.samdb(&["dns"], Some(lines.as_bytes())).map(drop)
    }

    /// Runs the sam.ldb helper in the target namespace; returns its stdout.
    fn samdb(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, DirError> {
        let mut command = cmd::in_ns(&self.ns, PYTHON);
        command
            // Index lists are large, short-lived allocations; keeping them
            // off mmap saves ~3/4 of the kernel time of a bulk add.
            .env("MALLOC_MMAP_THRESHOLD_", "33554432")
            .env("MALLOC_TRIM_THRESHOLD_", "268435456")
            .arg("-I")
            .arg(self.dir.path().join(SAMDB_PY_FILE))
            .arg(self.dir.path().join("etc/smb.conf"))
            .args(args);
        let out = cmd::output(&mut command, input)?;
        match out.status.code() {
            Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            Some(SAMDB_NOT_FOUND) => Err(DirError::NoSuchComputer(
                args.get(1).copied().unwrap_or_default().to_string(),
            )),
            _ => Err(cmd::failed(&command, &out)),
        }
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        // EOF on stdin makes `samba -i` shut down; SIGTERM to the process
        // group covers a samba that is busy, SIGKILL one that hangs.
        drop(self.stdin.take());
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscalls on the process group we created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        if !wait_for(&mut self.child, Duration::from_secs(10)) {
            // SAFETY: as above.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = self.child.wait();
        }
        // smbd and winbindd run in sessions of their own and exit when
        // samba does; wait for them so the directory can be removed.
        for name in ["smbd.pid", "winbindd.pid"] {
            let pid_file = self.dir.path().join("run").join(name);
            if let Some(pid) = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
            {
                stop_pid(pid);
            }
        }
    }
}

/// Wait up to `timeout` for `child` to exit.
fn wait_for(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Give a (non-child) process of ours 5 s to exit, then SIGKILL it.
fn stop_pid(pid: libc::pid_t) {
    let alive = || Path::new(&format!("/proc/{pid}")).exists();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        // SAFETY: plain syscall; the pid comes from this DC's own pid file.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Anonymous LDAP search of the root DSE (base "", scope base,
/// `(objectClass=*)`): true once a SearchResultEntry comes back, i.e. the
/// LDAP service has opened the directory.
fn ldap_root_dse_answers(addr: SocketAddr) -> bool {
    #[rustfmt::skip]
    const SEARCH: [u8; 39] = [
        0x30, 0x25,                         // LDAPMessage
        0x02, 0x01, 0x01,                   //   messageID 1
        0x63, 0x20,                         //   SearchRequest
        0x04, 0x00,                         //     baseObject ""
        0x0a, 0x01, 0x00,                   //     scope baseObject
        0x0a, 0x01, 0x00,                   //     derefAliases never
        0x02, 0x01, 0x00,                   //     sizeLimit 0
        0x02, 0x01, 0x00,                   //     timeLimit 0
        0x01, 0x01, 0x00,                   //     typesOnly false
        0x87, 0x0b, b'o', b'b', b'j', b'e', b'c', b't', b'C', b'l', b'a', b's', b's',
        0x30, 0x00,                         //     attributes: none
    ];
    let talk = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(&SEARCH)?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        // messageID 1 followed by the SearchResultEntry tag (0x64), after
        // a short or long-form length.
        Ok(buf[..n].windows(4).any(|w| w == [0x02, 0x01, 0x01, 0x64]))
    };
    talk().unwrap_or(false)
}

fn base_dn() -> String {
    REALM
        .split('.')
        .map(|part| format!("DC={}", part.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

fn host_fqdn() -> String {
    format!("{NETBIOS_NAME}.{REALM}").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(base_dn(), "DC=example,DC=test");
        assert_eq!(host_fqdn(), "dc1.example.test");
    }
}
