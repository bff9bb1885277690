//! Push install over SSH with the system's OpenSSH client (`ssh`).
//!
//! Why the OpenSSH client and not an SSH library (`russh`): it is what
//! the target hosts' admins already trust and configure, it speaks every
//! key type and host-key algorithm their sshd does, and it costs nothing
//! to build (russh and its crypto stack would add minutes to a cold CI
//! build on two cores). Ansible makes the same choice. The price is a
//! runtime dependency on `ssh` (Debian's `openssh-client`), reported
//! clearly when missing, and care with its options:
//!
//! * `-F none`: no user or system `ssh_config` changes what we run;
//! * key auth only, non-interactive: `BatchMode`, `IdentitiesOnly`, no
//!   agent, no password or keyboard-interactive prompts;
//! * the private key lives in a fresh 0700 temp directory as a 0600 file
//!   for the duration of one host's install, then is deleted; it is never
//!   stored or logged;
//! * host keys: with `known_hosts` given, `StrictHostKeyChecking=yes`
//!   against exactly those lines; without, the key is accepted on first use
//!   into a throwaway file (the fingerprint is reported in the job);
//! * `ConnectTimeout` and keepalives, and an overall timeout per step.
//!
//! The binary is streamed over `ssh`'s stdin (`cat > …`, or on Windows'
//! OpenSSH server a `powershell` that copies stdin to the file), so
//! neither scp nor an SFTP subsystem is needed on the host.

use super::InstallError;
use base64::Engine;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use vigil_proto::api::SshLogin;

/// Largest private key accepted (RSA 16384-bit keys are under 13 KiB).
const MAX_KEY_BYTES: usize = 16 << 10;
const MAX_KNOWN_HOSTS_BYTES: usize = 64 << 10;
/// Most of a failing command's stderr kept in an error.
const MAX_ERROR_CHARS: usize = 600;

/// SSH login details, checked.
#[derive(Clone)]
pub(crate) struct Login {
    user: String,
    port: u16,
    key: String,
    known_hosts: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}@…:{})", self.user, self.port)
    }
}

impl Login {
    /// Refuses what cannot work before any job starts: a user name that is
    /// not one, port 0, a missing, malformed or passphrase-protected key.
    pub fn check(login: &SshLogin) -> Result<Login, InstallError> {
        let user = login.user.trim();
        let user_ok = !user.is_empty()
            && user.len() <= 32
            && !user.starts_with('-')
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !user_ok {
            return Err(InstallError::Invalid(format!(
                "ssh.user {:?} is not a user name (letters, digits, `_`, `-`, `.`; at most 32)",
                login.user
            )));
        }
        if login.port == 0 {
            return Err(InstallError::Invalid("ssh.port must be 1 to 65535".into()));
        }
        let key = check_key(&login.private_key)?;
        let known_hosts = match login.known_hosts.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k) if k.len() > MAX_KNOWN_HOSTS_BYTES => {
                return Err(InstallError::Invalid(
                    "ssh.known_hosts is larger than 64 KiB".into(),
                ))
            }
            Some(k) if k.contains('\0') => {
                return Err(InstallError::Invalid(
                    "ssh.known_hosts must be text in known_hosts format".into(),
                ))
            }
            Some(k) => Some(format!("{k}\n")),
        };
        Ok(Login {
            user: user.to_string(),
            port: login.port,
            key,
            known_hosts,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn verifies_host_keys(&self) -> bool {
        self.known_hosts.is_some()
    }
}

/// The key with Unix line ends and a final newline (ssh insists on both).
fn check_key(key: &str) -> Result<String, InstallError> {
    let invalid = |why: &str| InstallError::Invalid(format!("ssh.private_key: {why}"));
    let key = key.replace("\r\n", "\n");
    let key = key.trim();
    if key.is_empty() {
        return Err(invalid(
            "missing; give an unencrypted private key (OpenSSH or PEM format)",
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid("larger than 16 KiB"));
    }
    let first = key.lines().next().unwrap_or_default();
    if !(first.starts_with("-----BEGIN ") && first.ends_with("PRIVATE KEY-----")) {
        return Err(invalid(
            "not a private key; expected `-----BEGIN OPENSSH PRIVATE KEY-----` or a PEM private key",
        ));
    }
    if first.contains("ENCRYPTED") || key.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(invalid(
            "the key is protected by a passphrase; give an unencrypted key",
        ));
    }
    if first == "-----BEGIN OPENSSH PRIVATE KEY-----" && openssh_key_cipher(key)? != "none" {
        return Err(invalid(
            "the key is protected by a passphrase; give an unencrypted key",
        ));
    }
    Ok(format!("{key}\n"))
}

/// The cipher name in an `openssh-key-v1` key ("none" when unencrypted).
fn openssh_key_cipher(key: &str) -> Result<String, InstallError> {
    let malformed = || InstallError::Invalid("ssh.private_key: a malformed OpenSSH key".into());
    let body: String = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| malformed())?;
    let rest = bytes
        .strip_prefix(b"openssh-key-v1\0")
        .ok_or_else(malformed)?;
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(malformed)?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let name = rest.get(4..4 + len).ok_or_else(malformed)?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// What a remote command reads on its stdin.
pub(crate) enum Input<'a> {
    File(&'a Path),
    Text(&'a str),
}

/// The key and known-hosts files of one host's install, in a private temp
/// directory removed on drop.
pub(crate) struct Session {
    dir: tempfile::TempDir,
    login: Login,
    addr: IpAddr,
}

impl Session {
    pub fn new(login: &Login, addr: IpAddr) -> Result<Session, InstallError> {
        let dir = tempfile::Builder::new()
            .prefix("vigil-install-")
            .tempdir()
            .map_err(|e| InstallError::Failed(format!("creating a temp directory: {e}")))?;
        write_private(&dir.path().join("key"), &login.key)?;
        write_private(
            &dir.path().join("known_hosts"),
            login.known_hosts.as_deref().unwrap_or_default(),
        )?;
        Ok(Session {
            dir,
            login: login.clone(),
            addr,
        })
    }

    fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    fn command(&self, remote: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        let strict = if self.login.verifies_host_keys() {
            "yes"
        } else {
            "accept-new"
        };
        cmd.args(["-F", "none", "-T", "-i"])
            .arg(self.dir.path().join("key"))
            .arg("-p")
            .arg(self.login.port.to_string())
            .arg("-l")
            .arg(&self.login.user);
        for opt in [
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityAgent=none",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "PubkeyAuthentication=yes",
            "ConnectTimeout=10",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=4",
            "ControlMaster=no",
            "ControlPath=none",
            "ForwardAgent=no",
            "ForwardX11=no",
            "UpdateHostKeys=no",
            "GlobalKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            &format!("StrictHostKeyChecking={strict}"),
        ] {
            cmd.arg("-o").arg(opt);
        }
        cmd.arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .arg("--")
            .arg(self.addr.to_string())
            .arg(remote)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `remote` on the host with `input` on its stdin; its stdout on
    /// success, a readable failure otherwise (never the key).
    pub async fn run(
        &self,
        what: &str,
        remote: &str,
        input: Input<'_>,
        limit: Duration,
    ) -> Result<String, InstallError> {
        let mut child = self.command(remote).spawn().map_err(|e| {
            InstallError::Failed(if e.kind() == std::io::ErrorKind::NotFound {
                "the OpenSSH client (`ssh`) is not installed on the server".into()
            } else {
                format!("cannot run ssh: {e}")
            })
        })?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| InstallError::Failed("ssh has no stdin".into()))?;
        let feed = async move {
            let result = match input {
                Input::Text(text) => stdin.write_all(text.as_bytes()).await,
                Input::File(path) => match tokio::fs::File::open(path).await {
                    Ok(mut f) => tokio::io::copy(&mut f, &mut stdin).await.map(|_| ()),
                    Err(e) => Err(e),
                },
            };
            drop(stdin);
            result
        };
        let (fed, out) = tokio::time::timeout(limit, async {
            tokio::join!(feed, child.wait_with_output())
        })
        .await
        .map_err(|_| InstallError::Failed(format!("{what} did not finish within {limit:?}")))?;
        let out = out.map_err(|e| InstallError::Failed(format!("ssh: {e}")))?;
        let stderr = tail(&String::from_utf8_lossy(&out.stderr));
        let target = self.target();
        match out.status.code() {
            Some(0) => {}
            Some(255) => return Err(self.ssh_failed(&stderr)),
            code => {
                let code = code.map_or("a signal".to_string(), |c| format!("status {c}"));
                return Err(InstallError::Failed(format!(
                    "{what} on {target} failed with {code}: {stderr}"
                )));
            }
        }
        // A broken pipe with a zero exit means the remote side did not read
        // everything: report it rather than trust a partial upload.
        fed.map_err(|e| InstallError::Failed(format!("{what} on {target}: sending data: {e}")))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn target(&self) -> String {
        format!("{}@{}:{}", self.login.user, self.addr, self.login.port)
    }

    fn ssh_failed(&self, stderr: &str) -> InstallError {
        let why = if stderr.is_empty() {
            "no reason given"
        } else {
            stderr
        };
        InstallError::Failed(format!("SSH to {} failed: {why}", self.target()))
    }

    /// Runs `remote` with nothing on stdin and returns its stdout whatever
    /// its exit status: a shell that does not understand the command still
    /// answers. Only SSH's own failure (status 255) is an error.
    pub async fn probe(&self, remote: &str, limit: Duration) -> Result<String, InstallError> {
        let mut cmd = self.command(remote);
        cmd.stdin(Stdio::null());
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .map_err(|_| InstallError::Failed(format!("SSH did not answer within {limit:?}")))?
            .map_err(|e| {
                InstallError::Failed(if e.kind() == std::io::ErrorKind::NotFound {
                    "the OpenSSH client (`ssh`) is not installed on the server".into()
                } else {
                    format!("cannot run ssh: {e}")
                })
            })?;
        if out.status.code() == Some(255) {
            return Err(self.ssh_failed(&tail(&String::from_utf8_lossy(&out.stderr))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The fingerprints of the host keys accepted on first use, if any.
    pub async fn accepted_host_keys(&self) -> Option<String> {
        if self.login.verifies_host_keys() {
            return None;
        }
        let out = tokio::process::Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(self.known_hosts())
            .kill_on_drop(true)
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let prints: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        (!prints.is_empty()).then(|| prints.join(", "))
    }
}

fn write_private(path: &Path, body: &str) -> Result<(), InstallError> {
    use std::io::Write;
    let write = || -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(path)?.write_all(body.as_bytes())
    };
    write().map_err(|e| InstallError::Failed(format!("writing {}: {e}", path.display())))
}

/// The last lines of a command's stderr, at most [`MAX_ERROR_CHARS`].
fn tail(text: &str) -> String {
    let text = text.trim();
    let start = text
        .char_indices()
        .rev()
        .nth(MAX_ERROR_CHARS - 1)
        .map_or(0, |(i, _)| i);
    text[start..].trim().replace('\n', " | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(key: &str) -> SshLogin {
        SshLogin {
            user: "root".into(),
            port: 22,
            private_key: key.into(),
            known_hosts: None,
        }
    }

    fn openssh_key(cipher: &str) -> String {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend((cipher.len() as u32).to_be_bytes());
        raw.extend(cipher.as_bytes());
        raw.extend([0u8; 40]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        format!("-----BEGIN OPENSSH PRIVATE KEY-----\r\n{b64}\r\n-----END OPENSSH PRIVATE KEY-----")
    }

    #[test]
    fn keys_are_checked_and_normalized() {
        let ok = Login::check(&login(&openssh_key("none"))).expect("valid");
        assert!(ok.key.ends_with("-----END OPENSSH PRIVATE KEY-----\n"));
        assert!(!ok.key.contains('\r'));
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----";
        Login::check(&login(pem)).expect("PEM is fine");
        for (key, why) in [
            ("", "missing"),
            ("ssh-ed25519 AAAA user@host", "not a private key"),
            (&openssh_key("aes256-ctr"), "passphrase"),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----",
                "passphrase",
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----",
                "malformed",
            ),
        ] {
            let err = Login::check(&login(key)).expect_err(why).to_string();
            assert!(
                err.contains("ssh.private_key") && err.contains(why),
                "{err}"
            );
        }
    }

    #[test]
    fn users_and_ports_are_checked() {
        let key = openssh_key("none");
        for user in ["", "-oProxyCommand=x", "a b", "root;id", &"u".repeat(33)] {
            let mut l = login(&key);
            l.user = user.into();
            let err = Login::check(&l).expect_err(user).to_string();
            assert!(err.contains("ssh.user"), "{err}");
        }
        let mut l = login(&key);
        l.port = 0;
        assert!(Login::check(&l).is_err());
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let key = openssh_key("none");
        let l = login(&key);
        assert!(!format!("{l:?}").contains("openssh-key") && !format!("{l:?}").contains("AAAA"));
        let checked = Login::check(&l).expect("valid");
        assert!(!format!("{checked:?}").contains("BEGIN"));
    }

    #[test]
    fn stderr_tails_are_short_and_one_line() {
        assert_eq!(tail("a\nb\n"), "a | b");
        let long = "x".repeat(5000);
        assert_eq!(tail(&long).len(), MAX_ERROR_CHARS);
    }
}
