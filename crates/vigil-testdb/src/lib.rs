//! Fresh, migrated Vigil databases for tests: a SQLite file in a temporary
//! directory ([`sqlite`]), or a database in a throwaway PostgreSQL cluster
//! ([`postgres`]), so one test body can run against both backends.
//!
//! ```no_run
//! # async fn scenario(db: &vigil_testdb::TestDb) {}
//! # async fn run() {
//! scenario(&vigil_testdb::sqlite().await).await;
//! if let Some(db) = vigil_testdb::postgres().await {
//!     scenario(&db).await;
//! }
//! # }
//! ```
//!
//! PostgreSQL: one cluster per test binary, started on first use from the
//! PostgreSQL binaries (`VIGIL_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin`, else `PATH`), run as the `postgres` system
//! user when the tests run as root, listening on 127.0.0.1 and a free port
//! with trust authentication and its socket in its temporary directory.
//! Each test gets its own database. The cluster is stopped and deleted when
//! the test binary exits (an `atexit` hook stops it; a
//! watchdog process covers a test binary that is killed).
//! [`TestDb::stop_server`] and [`TestDb::start_server`] stop that cluster like
//! a crash and start it again (same port, same data), for tests of how the
//! server copes with a database that goes away and comes back.
//!
//! `VIGIL_TEST_POSTGRES_URL=postgres://user@host:port/db` uses an existing
//! server instead (the user needs CREATEDB; each test's database is dropped
//! afterwards). Without PostgreSQL the tests print `SKIPPED` and pass, unless
//! `VIGIL_REQUIRE_POSTGRES=1`, which makes them fail.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use sqlx::Connection as _;
use vigil_store::{PasswordCost, Store, StoreOptions};

/// Options for stores under test: cheap password hashing.
pub fn options() -> StoreOptions {
    StoreOptions {
        password_cost: PasswordCost::INSECURE_FAST_FOR_TESTS,
        max_connections: Some(10),
        ..StoreOptions::default()
    }
}

/// A fresh, migrated database. Dropping it removes the database.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// Keeps the cluster alive while the test runs.
    LocalPostgres(Arc<Cluster>),
    ExternalPostgres {
        admin_url: String,
        database: String,
    },
}

/// Why [`TestDb::stop_server`] or [`TestDb::start_server`] did not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerControlError {
    /// This database is not in a cluster of this crate (SQLite, or the
    /// server of `VIGIL_TEST_POSTGRES_URL`, which is not ours to stop): a
    /// test that needs it should print `SKIPPED` and pass.
    #[error("{0}")]
    Unsupported(String),
    /// `pg_ctl` failed.
    #[error("{0}")]
    Failed(String),
}

impl TestDb {
    /// Whether [`TestDb::stop_server`] and [`TestDb::start_server`] can work:
    /// the database is in the throwaway cluster of this crate. The reason
    /// otherwise.
    pub fn server_control(&self) -> Result<(), ServerControlError> {
        self.cluster().map(|_| ())
    }

    /// Stops the PostgreSQL server of this database like a crash
    /// (`pg_ctl stop -m immediate`: every connection is cut, no shutdown
    /// checkpoint) and waits until it is gone. Until
    /// [`TestDb::start_server`], connections are refused.
    ///
    /// The cluster is shared by every test of the test binary: stop it only
    /// in a test binary of its own (or in tests that run one at a time).
    /// These calls block (they run `pg_ctl`): from an async test, call them
    /// through `spawn_blocking`.
    pub fn stop_server(&self) -> Result<(), ServerControlError> {
        self.cluster()?.stop().map_err(ServerControlError::Failed)
    }

    /// Starts the server again after [`TestDb::stop_server`], on the same
    /// port and data directory, and waits until it accepts connections
    /// (after its crash recovery). Does nothing if it is running.
    pub fn start_server(&self) -> Result<(), ServerControlError> {
        self.cluster()?
            .start_again()
            .map_err(ServerControlError::Failed)
    }

    /// [`TestDb::stop_server`], `down_for`, [`TestDb::start_server`].
    pub fn restart_server(&self, down_for: Duration) -> Result<(), ServerControlError> {
        self.stop_server()?;
        std::thread::sleep(down_for);
        self.start_server()
    }

    fn cluster(&self) -> Result<&Cluster, ServerControlError> {
        match &self.guard {
            Guard::LocalPostgres(c) => Ok(c),
            Guard::Sqlite(_) => Err(ServerControlError::Unsupported(
                "a SQLite database has no server to stop".into(),
            )),
            Guard::ExternalPostgres { .. } => Err(ServerControlError::Unsupported(
                "VIGIL_TEST_POSTGRES_URL names an external PostgreSQL server, \
                 which the tests do not stop or start"
                    .into(),
            )),
        }
    }

    /// Another store on the same database (runs the migrations again).
    pub async fn reconnect(&self) -> Store {
        Store::connect_with(&self.url, options())
            .await
            .expect("reconnect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Guard::ExternalPostgres {
            admin_url,
            database,
        } = &self.guard
        {
            let (admin_url, database) = (admin_url.clone(), database.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
                        let _ = sqlx::query(&sql).execute(&mut conn).await;
                        let _ = conn.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A fresh SQLite database in a temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::Builder::new()
        .prefix("vigil-test-")
        .tempdir()
        .expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let store = Store::connect_with(&url, options())
        .await
        .expect("connect sqlite");
    TestDb {
        store,
        url,
        guard: Guard::Sqlite(dir),
    }
}

/// A fresh PostgreSQL database, or `None` (after printing `SKIPPED`) when no
/// PostgreSQL is available and `VIGIL_REQUIRE_POSTGRES` is not `1`.
pub async fn postgres() -> Option<TestDb> {
    let (admin_url, guard_for) = if let Ok(url) = std::env::var("VIGIL_TEST_POSTGRES_URL") {
        (url, None)
    } else {
        match cluster() {
            Ok(c) => (c.admin_url(), Some(c)),
            Err(why) => {
                if std::env::var("VIGIL_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "VIGIL_REQUIRE_POSTGRES=1 but no PostgreSQL server could be started: {why}\n\
                         Install PostgreSQL (Debian: apt-get install postgresql) or set \
                         VIGIL_TEST_POSTGRES_URL."
                    );
                }
                skipped(&why);
                return None;
            }
        }
    };
    let database = format!("vigil_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL admin database: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{database}\""))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {database}: {e}"));
    let _ = admin.close().await;
    let url = with_database(&admin_url, &database);
    let guard = match guard_for {
        Some(c) => Guard::LocalPostgres(c),
        None => Guard::ExternalPostgres {
            admin_url,
            database,
        },
    };
    let store = Store::connect_with(&url, options())
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    Some(TestDb { store, url, guard })
}

/// `admin_url` with its database path replaced by `database`.
pub fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

fn skipped(why: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Written to the real stderr (not the captured test output) so it shows.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL backend tests ({why}); set VIGIL_REQUIRE_POSTGRES=1 to fail instead"
        );
    });
    println!("SKIPPED: {why}");
}

// ----- the throwaway cluster ---------------------------------------------------

enum ClusterState {
    NotStarted,
    Running(Arc<Cluster>),
    Failed(String),
}

static CLUSTER: Mutex<ClusterState> = Mutex::new(ClusterState::NotStarted);

fn cluster() -> Result<Arc<Cluster>, String> {
    let mut state = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    match &*state {
        ClusterState::Running(c) => return Ok(Arc::clone(c)),
        ClusterState::Failed(why) => return Err(why.clone()),
        ClusterState::NotStarted => {}
    }
    let result = Cluster::start();
    *state = match &result {
        Ok(c) => {
            extern "C" fn stop_at_exit() {
                // Drops the last `Arc<Cluster>` held here: stops and deletes it.
                if let Ok(mut s) = CLUSTER.lock() {
                    *s = ClusterState::Failed("the test binary is exiting".into());
                }
            }
            // SAFETY: registering a plain `extern "C" fn` without arguments.
            unsafe {
                libc::atexit(stop_at_exit);
            }
            ClusterState::Running(Arc::clone(c))
        }
        Err(why) => ClusterState::Failed(why.clone()),
    };
    result
}

/// A running PostgreSQL cluster in a temporary directory; dropping it stops
/// the server and deletes the directory.
struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    watchdog: Mutex<Option<Child>>,
    /// Held while `pg_ctl` stops or starts the server.
    control: Mutex<()>,
}

/// Where the PostgreSQL programs are (`pg_dump`, `pg_restore`, `createdb`
/// … beside `initdb`): `VIGIL_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else the directory on `PATH` that has them.
pub fn postgres_bin() -> Option<PathBuf> {
    find_pg_bin()
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

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

impl Cluster {
    fn start() -> Result<Arc<Cluster>, String> {
        let bin = find_pg_bin().ok_or_else(|| {
            "PostgreSQL binaries (initdb, pg_ctl) not found in $VIGIL_PG_BIN, \
             /usr/lib/postgresql/*/bin or $PATH"
                .to_owned()
        })?;
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = std::env::temp_dir().join(format!(
            "vigil-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            as_postgres,
            watchdog: Mutex::new(None),
            control: Mutex::new(()),
        };
        // From here on, dropping `cluster` cleans up.
        if as_postgres {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&cluster.dir),
                "chown postgres (the tests run as root and PostgreSQL refuses root; \
                 is there a `postgres` system user?)",
            )?;
        }
        cluster.spawn_watchdog();
        let data = cluster.dir.join("data");
        run(
            cluster.pg_command("initdb").arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
            "initdb",
        )?;
        let mut last_error = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(Arc::new(cluster)),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `pg_ctl start` on `self.port`, waiting until the server accepts
    /// connections. The server gets a process group of its own, so that a
    /// Ctrl-C of the tests reaches it only through the exit hooks.
    ///
    /// Fast and not crash-safe against the machine failing (no fsync, no
    /// full-page writes), but safe against the server process failing,
    /// which is what [`TestDb::stop_server`] imitates: with
    /// `synchronous_commit` on (the default), a commit is written to the
    /// operating system before it is acknowledged (only written: with fsync
    /// off that is cheap), so an immediate stop loses nothing a client was
    /// told is committed, as with a production server. (Off, the commits of
    /// the last few hundred milliseconds before the stop would vanish.)
    fn pg_ctl_start(&self) -> Result<(), String> {
        let server_options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off \
             -c full_page_writes=off -c max_connections=400 -c shared_buffers=32MB",
            self.port,
            self.dir.display()
        );
        run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(["-w", "-t", "60", "-o", &server_options, "start"])
                .process_group(0),
            "pg_ctl start",
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    fn running(&self) -> bool {
        self.data_dir().join("postmaster.pid").exists()
    }

    /// Stops the server at once, like a crash (see [`TestDb::stop_server`]).
    fn stop(&self) -> Result<(), String> {
        let _control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        // `-w` waits until postmaster.pid is gone, so the port is free (and
        // the watchdog and `Drop` know there is nothing left to stop).
        run(
            self.pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"]),
            "pg_ctl stop -m immediate",
        )
    }

    /// Starts the stopped server again, on the same port (see
    /// [`TestDb::start_server`]). The watchdog and `Drop` read the new
    /// postmaster's pid from postmaster.pid when they need it.
    fn start_again(&self) -> Result<(), String> {
        let _control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        if self.running() {
            return Ok(());
        }
        self.pg_ctl_start()
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
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

    /// Stops the server and deletes the directory should this process die
    /// without running its exit hooks (killed, aborted).
    fn spawn_watchdog(&self) {
        let script = r#"
            while kill -0 "$1" 2>/dev/null; do sleep 1; done
            if [ -f "$2/data/postmaster.pid" ]; then
                kill -QUIT "$(head -n 1 "$2/data/postmaster.pid")" 2>/dev/null
                sleep 2
            fi
            rm -rf "$2"
        "#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("vigil-pg-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        if let Ok(child) = child {
            *self.watchdog.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running() {
            let _ = self
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "30", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:1", "t1"),
            "postgres://u@h:1/t1"
        );
    }
}
