//! `vigil server` replicas of one installation on 127.0.0.1: one database,
//! one TLS identity, each told the others' agent URLs.

use super::server::{spawn, wait_for, Proc};
use super::vigil_bin;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// `N` distinct ports on 127.0.0.1 that were free a moment ago.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let ports = free_port_list(N);
    std::array::from_fn(|i| ports[i])
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago.
pub fn free_port_list(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// One `vigil server` replica of a test.
pub struct Replica {
    pub name: &'static str,
    pub dir: PathBuf,
    pub api: SocketAddr,
    pub agent: SocketAddr,
    /// The agent API of every other replica.
    pub peers: Vec<SocketAddr>,
    pub db: String,
    /// More `vigil server` arguments.
    pub args: Vec<String>,
    /// `VIGIL_LOG`.
    pub log_filter: &'static str,
    starts: usize,
}

impl Replica {
    /// Replicas named `names` on free ports of 127.0.0.1, with their data
    /// directories under `dir`, on the database `db`.
    pub fn on_one_database<const N: usize>(
        names: [&'static str; N],
        dir: &std::path::Path,
        db: &str,
    ) -> [Replica; N] {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let ports = free_port_list(2 * N);
        let api = |i: usize| local(ports[2 * i]);
        let agent = |i: usize| local(ports[2 * i + 1]);
        std::array::from_fn(|i| Replica {
            name: names[i],
            dir: dir.join(names[i]),
            api: api(i),
            agent: agent(i),
            peers: (0..N).filter(|&j| j != i).map(agent).collect(),
            db: db.to_string(),
            args: Vec::new(),
            log_filter: "info",
            starts: 0,
        })
    }

    pub fn agent_url(&self) -> String {
        format!("https://{}", self.agent)
    }

    /// The log of the latest start.
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("server-{}.log", self.starts))
    }

    /// The logs of every start so far, oldest first.
    pub fn logs(&self) -> Vec<PathBuf> {
        (1..=self.starts)
            .map(|n| self.dir.join(format!("server-{n}.log")))
            .collect()
    }

    /// Presents `from`'s TLS identity (copies its `tls/` files): replicas
    /// share one certificate, the one agents pin.
    pub fn share_identity(&self, from: &Replica) {
        std::fs::create_dir_all(self.dir.join("tls")).expect("mkdir");
        for file in ["server.crt", "server.key"] {
            std::fs::copy(
                from.dir.join("tls").join(file),
                self.dir.join("tls").join(file),
            )
            .expect("copy the TLS identity");
        }
    }

    /// Starts the server and waits until both its listeners accept; returns
    /// the process and the pin it printed.
    pub fn start(&mut self) -> (Proc, String) {
        self.starts += 1;
        std::fs::create_dir_all(&self.dir).expect("data dir");
        let log = self.log();
        let mut cmd = Command::new(vigil_bin());
        cmd.args(["server", "--data-dir"])
            .arg(&self.dir)
            .args(["--db", &self.db])
            .args(["--listen", &self.api.to_string()])
            .args(["--agent-listen", &self.agent.to_string()])
            .args(["--agent-url", &self.agent_url()]);
        for peer in &self.peers {
            cmd.args(["--peer-agent-url", &format!("https://{peer}")]);
        }
        // The tests' webhook receivers and scanned "observed addresses"
        // are on loopback, which the default network policy refuses.
        cmd.args(["--allow-targets", "webhook,scan=127.0.0.0/8"]);
        cmd.args(&self.args).env("VIGIL_LOG", self.log_filter);
        let proc = spawn(cmd, "server", &log);
        let pin = wait_for(
            &format!("server {} to start", self.name),
            Duration::from_secs(30),
            || {
                let text = std::fs::read_to_string(&log).ok()?;
                let pin = text
                    .lines()
                    .find_map(|l| l.split("certificate pin ").nth(1))?
                    .trim_end_matches(')')
                    .to_string();
                let up = |a: SocketAddr| TcpStream::connect_timeout(&a, Duration::from_secs(1));
                (up(self.api).is_ok() && up(self.agent).is_ok()).then_some(pin)
            },
        );
        (proc, pin)
    }
}
