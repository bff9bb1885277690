//! A throwaway PostgreSQL cluster for `--db postgres`, on 127.0.0.1 and a
//! free port, with trust authentication and its socket in its own
//! temporary directory. Adapted from `vigil-testdb` (whose cluster is
//! private to it): the binaries are `$VIGIL_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`; the tools run as the
//! `postgres` system user when the bench runs as root (PostgreSQL refuses
//! root).
//!
//! Unlike the test cluster, durability is left on (fsync, full page
//! writes); only `synchronous_commit = off`, which matches the embedded
//! SQLite database's `synchronous = NORMAL` in WAL mode (a commit is not
//! waited for on disk; a crash of the machine may lose the last ones,
//! never corrupt). Dropping the cluster stops it and deletes its
//! directory; a watchdog process does so if the bench is killed.

use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Settings appended to `postgresql.conf`.
const SETTINGS: &str = "
listen_addresses = '127.0.0.1'
max_connections = 200
synchronous_commit = off
";

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Option<std::process::Child>,
}

fn find_pg_bin() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(d) = std::env::var("VIGIL_PG_BIN") {
        let d = PathBuf::from(d);
        return has_tools(&d).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).find(|d| has_tools(d)))
}

/// Runs `cmd` to completion; its output on failure.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot run"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Cluster {
    pub fn start() -> Result<Cluster> {
        let bin = find_pg_bin().context(
            "PostgreSQL binaries (initdb, pg_ctl) not found in $VIGIL_PG_BIN, \
             /usr/lib/postgresql/*/bin or $PATH (Debian: apt-get install postgresql)",
        )?;
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        // Not inside the bench's own (root-only) temporary directory: the
        // postgres user must reach it.
        let dir = std::env::temp_dir().join(format!(
            "vigil-bench-pg-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            as_postgres,
            watchdog: None,
        };
        // From here on, dropping `cluster` cleans up.
        if as_postgres {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&cluster.dir),
                "chown postgres (PostgreSQL refuses to run as root; is there a `postgres` user?)",
            )?;
        }
        cluster.spawn_watchdog();
        let data = cluster.data();
        run(
            cluster
                .pg_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"]),
            "initdb",
        )?;
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .with_context(|| format!("reading {}", conf.display()))?;
        text.push_str(SETTINGS);
        text.push_str(&format!(
            "unix_socket_directories = '{}'\n",
            cluster.dir.display()
        ));
        // Root writes it; the owner (postgres) stays.
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;

        let mut last_error = None;
        for _ in 0..5 {
            cluster.port = super::procs::free_port()?;
            let started = run(
                cluster
                    .pg_command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(cluster.log())
                    .args(["-w", "-t", "60", "-o", &format!("-p {}", cluster.port)])
                    .arg("start")
                    // Not in the terminal's process group: Ctrl-C goes to
                    // the bench, which stops the cluster in order.
                    .process_group(0),
                "pg_ctl start",
            );
            match started {
                Ok(_) => return Ok(cluster),
                Err(e) => {
                    let log = std::fs::read_to_string(cluster.log()).unwrap_or_default();
                    last_error = Some(e.context(format!("server log:\n{log}")));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("pg_ctl start failed")))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The cluster's server log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The URL of `database` for `vigil --db`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn create_database(&self, name: &str) -> Result<()> {
        run(
            self.pg_command("createdb")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .arg(name),
            "createdb",
        )
        .map(|_| ())
    }

    /// The size of `database` in bytes (`pg_database_size`).
    pub fn database_size(&self, database: &str) -> Option<u64> {
        run(
            self.pg_command("psql")
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .args(["-d", database, "-Atc"])
                .arg(format!("SELECT pg_database_size('{database}')")),
            "psql",
        )
        .ok()?
        .trim()
        .parse()
        .ok()
    }

    /// "PostgreSQL 15.x" as `postgres --version` says it.
    pub fn version(&self) -> String {
        run(
            Command::new(self.bin.join("postgres")).arg("--version"),
            "postgres",
        )
        .map(|v| {
            v.trim()
                .trim_start_matches("postgres (PostgreSQL) ")
                .to_string()
        })
        .map(|v| format!("PostgreSQL {v}"))
        .unwrap_or_else(|_| "PostgreSQL".into())
    }

    /// The postmaster's pid (the first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// A PostgreSQL tool, run as the `postgres` user when we are root.
    fn pg_command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(&self.dir);
        cmd
    }

    /// Stops the cluster and deletes its directory should the bench die
    /// without dropping it (killed). Polls once a second while the bench
    /// lives.
    fn spawn_watchdog(&mut self) {
        let script = r#"
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            if [ -f "$2/data/postmaster.pid" ]; then
                kill -QUIT "$(head -n 1 "$2/data/postmaster.pid")" 2>/dev/null
                sleep 2
            fi
            rm -rf "$2"
        "#;
        self.watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("vigil-bench-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        if data.join("postmaster.pid").exists() {
            let _ = self
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "-t", "30", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
