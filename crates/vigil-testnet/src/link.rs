//! The link between the scanner and target namespaces: either a plain veth
//! pair, or two TUN devices joined by the `vigil-netem` relay process, which
//! adds latency and loss (this kernel has no `tc netem`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ns::Namespace;
use crate::{NetSpec, TestNetError};

/// Both veth ends get this MAC and ARP/NDP is switched off: every frame is
/// then addressed to the peer without neighbour resolution, so the link is
/// effectively layer 3 (like the TUN link) and a missing host is a silent
/// drop instead of an ARP failure ("host unreachable" after ~3 s).
const VETH_MAC: &str = "02:76:74:00:00:01";

/// How long the relay may take to print "ready".
const RELAY_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Create a veth pair `dev_s` (in `scanner`) <-> `dev_t` (in `target`), up.
pub(crate) fn veth(
    scanner: &Namespace,
    target: &Namespace,
    dev_s: &str,
    dev_t: &str,
) -> Result<(), TestNetError> {
    #[rustfmt::skip]
    scanner.ip(&[
        "link", "add", "name", dev_s, "address", VETH_MAC, "type", "veth",
        "peer", "name", dev_t, "address", VETH_MAC, "netns", target.name(),
    ])?;
    scanner.ip(&["link", "set", dev_s, "arp", "off", "up"])?;
    target.ip(&["link", "set", dev_t, "arp", "off", "up"])?;
    Ok(())
}

/// A running `vigil-netem` process. Dropping it stops the relay.
#[derive(Debug)]
pub(crate) struct Relay {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Relay {
    /// Start the relay with TUN `dev_s` in `scanner` and `dev_t` in `target`
    /// and wait until both devices exist. Links are left down.
    pub(crate) fn start(
        scanner: &Namespace,
        target: &Namespace,
        dev_s: &str,
        dev_t: &str,
        spec: &NetSpec,
    ) -> Result<Relay, TestNetError> {
        let bin = find_relay_binary()?;
        let delay_ms = spec.rtt.as_secs_f64() * 1000.0 / 2.0;
        let mut cmd = Command::new(&bin);
        cmd.args(["--ns-a", scanner.name(), "--dev-a", dev_s])
            .args(["--ns-b", target.name(), "--dev-b", dev_t])
            .args(["--delay-ms", &delay_ms.to_string()])
            .args(["--loss", &spec.loss.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| TestNetError::Spawn {
            cmd: bin.display().to_string(),
            source,
        })?;
        let stdin = child.stdin.take();
        let mut relay = Relay { child, stdin };

        // Collect stderr (for error messages) and forward it to ours.
        let stderr_buf = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = relay.child.stderr.take() {
            let buf = Arc::clone(&stderr_buf);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("vigil-netem: {line}");
                    let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
                    buf.push_str(&line);
                    buf.push('\n');
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = relay.child.stdout.take() {
            std::thread::spawn(move || {
                let mut line = String::new();
                let res = BufReader::new(stdout).read_line(&mut line).map(|_| line);
                let _ = tx.send(res);
            });
        }
        let reason = match rx.recv_timeout(RELAY_READY_TIMEOUT) {
            Ok(Ok(line)) if line.trim() == "ready" => return Ok(relay),
            Ok(Ok(line)) if line.is_empty() => "exited before becoming ready".to_string(),
            Ok(Ok(line)) => format!("unexpected output {:?}", line.trim()),
            Ok(Err(e)) => format!("reading its stdout: {e}"),
            Err(_) => format!("not ready after {RELAY_READY_TIMEOUT:?}"),
        };
        relay.stop();
        // Give the stderr forwarder a moment to catch the last lines.
        std::thread::sleep(Duration::from_millis(20));
        let stderr = stderr_buf.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Err(TestNetError::Relay {
            reason: format!("{}: {reason}", bin.display()),
            stderr: stderr.trim().to_string(),
        })
    }

    /// Close stdin, send SIGTERM, wait (SIGKILL after a second).
    fn stop(&mut self) {
        drop(self.stdin.take());
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling our own, not yet reaped, child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                _ => return,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Locate the `vigil-netem` binary: `$VIGIL_NETEM`, next to the current
/// executable or in its parent directory (integration tests live in
/// `target/<profile>/deps/`), then `$PATH`.
pub(crate) fn find_relay_binary() -> Result<PathBuf, TestNetError> {
    const NAME: &str = "vigil-netem";
    if let Some(path) = std::env::var_os("VIGIL_NETEM") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TestNetError::RelayNotFound {
                searched: format!("VIGIL_NETEM={}", path.display()),
            })
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent();
        for _ in 0..2 {
            if let Some(d) = dir {
                candidates.push(d.join(NAME));
                dir = d.parent();
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&paths).map(|d| d.join(NAME)));
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let searched = candidates
        .iter()
        .take(2)
        .map(|p| p.display().to_string())
        .chain(std::iter::once("$PATH".to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(TestNetError::RelayNotFound { searched })
}
