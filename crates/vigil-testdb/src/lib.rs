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
    LocalPostgres(#[allow(dead_code)] Arc<Cluster>),
    ExternalPostgres {
        admin_url: String,
        database: String,
    },
}

impl TestDb {
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
fn with_database(admin_url: &str, database: &str) -> String {
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
            let server_options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=400 -c shared_buffers=32MB",
                cluster.port,
                cluster.dir.display()
            );
            let started = run(
                cluster
                    .pg_command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(cluster.dir.join("server.log"))
                    .args(["-w", "-t", "60", "-o", &server_options, "start"])
                    .process_group(0),
                "pg_ctl start",
            );
            match started {
                Ok(()) => return Ok(Arc::new(cluster)),
                Err(e) => {
                    let log =
                        std::fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default();
                    last_error = format!("{e}\nserver log:\n{log}");
                }
            }
        }
        Err(last_error)
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
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let _ = self
                .pg_command("pg_ctl")
                .arg("-D")
                .arg(&data)
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
