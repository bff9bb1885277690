//! `vigil admin backup` and `vigil admin restore` of a SQLite database, with
//! the real binary: a backup taken while a writer writes is the database as
//! of one moment; a restore is refused while a `vigil server` uses the
//! database (as is a second server) and brings the backup's data back once
//! it stopped, keeping the replaced database; bad input is refused with
//! exit code 2 and leaves the database as it was; a database newer than
//! the binary is refused by `vigil admin` and `vigil server`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_core::AccountKind;
use vigil_store::{AccountId, Role, Store};

const PASSWORD: &str = "Backup-test-passw0rd";

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env_remove("VIGIL_DB")
        .env_remove("VIGIL_CONFIG")
        .output()
        .expect("run vigil")
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit code 2, and standard error naming `what`.
#[track_caller]
fn refused(out: Output, what: &str) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains(what), "expected {what:?} in: {}", text(&out));
    err
}

fn url(db: &Path) -> String {
    format!("sqlite://{}", db.display())
}

fn create_account(db: &Path, name: &str, email: &str) {
    ok(vigil(&[
        "admin",
        "--db",
        &url(db),
        "create-account",
        "--name",
        name,
        "--kind",
        "organization",
        "--email",
        email,
        "--password",
        PASSWORD,
    ]));
}

/// A `vigil server` on 127.0.0.1 ports, killed on drop.
struct Server {
    child: Child,
    api: SocketAddr,
}

impl Server {
    fn start(dir: &Path, db: &Path) -> Server {
        let out = dir.join(format!("server-{}.out", rand::random::<u32>()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["server", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--db", &url(db)])
            .args(["--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"])
            .env_remove("VIGIL_CONFIG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .spawn()
            .expect("start vigil server");
        let started = Instant::now();
        let api = loop {
            let banner = std::fs::read_to_string(&out).unwrap_or_default();
            let addr = banner
                .split("REST API:  http://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|a| a.parse().ok());
            if let Some(addr) = addr {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(out.with_extension("err")).unwrap_or_default();
                panic!("vigil server exited ({status}): {err}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no banner from vigil server"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Server { child, api }
    }

    /// SIGTERM (a clean shutdown, as a service manager stops it) and wait.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = wait_exit(&mut self.child, Duration::from_secs(30));
        assert!(status.success(), "vigil server stopped with {status}");
    }

    /// Whether `POST /api/v1/login` as `email` succeeds (else it must be
    /// refused as a bad login, 401).
    fn login(&self, email: &str) -> bool {
        let body = serde_json::json!({"email": email, "password": PASSWORD}).to_string();
        let mut s = TcpStream::connect_timeout(&self.api, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.api,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status: u16 = answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        match status {
            200..=299 => true,
            401 => false,
            _ => panic!("login as {email}: {answer}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, failing after `limit` (killing it).
/// Runs `vigil server` on `db`, which must refuse to start: its exit status
/// and standard error.
fn server_refused(data_dir: &Path, db: &Path) -> (std::process::ExitStatus, String) {
    let mut server = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["server", "--data-dir"])
        .arg(data_dir)
        .args(["--db", &url(db)])
        .args(["--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"])
        .env_remove("VIGIL_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut server, Duration::from_secs(30));
    let mut err = String::new();
    if let Some(mut stderr) = server.stderr.take() {
        stderr.read_to_string(&mut err).unwrap();
    }
    (status, err)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The names in `dir` (to see that a refused command left nothing behind).
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn restore_is_refused_while_a_server_runs_and_brings_the_data_back_after() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("vigil.db");
    let backup = dir.join("monday.vigil-backup");
    create_account(&db, "Acme", "alice@acme.example");

    let server = Server::start(dir, &db);
    assert!(server.login("alice@acme.example"));
    // Backed up while the server runs.
    let said = ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "backup",
        backup.to_str().unwrap(),
    ]));
    assert!(said.starts_with("backed up "), "{said}");
    assert!(said.contains("integrity checked"), "{said}");
    // Then a change the backup does not have.
    create_account(&db, "Beta", "bob@beta.example");
    assert!(server.login("bob@beta.example"));

    // The server holds the database: restore is refused, nothing changes.
    let before = names(dir);
    let err = refused(
        vigil(&[
            "admin",
            "--db",
            &url(&db),
            "restore",
            backup.to_str().unwrap(),
        ]),
        "is in use by another vigil server",
    );
    assert!(err.contains("vigil.db.lock"), "{err}");
    assert!(
        err.contains(&format!("(pid {})", server.child.id())),
        "names the server's pid: {err}"
    );
    assert_eq!(names(dir), before);
    assert!(
        server.login("bob@beta.example"),
        "the database is as it was"
    );

    // So is a second server on the same file.
    let (status, err) = server_refused(&dir.join("data2"), &db);
    assert!(!status.success(), "a second server started: {err}");
    assert!(err.contains("is in use by another vigil server"), "{err}");

    // Once the server stopped, the restore goes through.
    server.stop();
    let said = ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "restore",
        backup.to_str().unwrap(),
    ]));
    let kept = dir.join("vigil.db.before-restore");
    assert!(
        said.contains(&kept.display().to_string()),
        "says where the replaced database is: {said}"
    );
    assert!(kept.is_file());
    let server = Server::start(dir, &db);
    assert!(server.login("alice@acme.example"), "the backup's data");
    assert!(!server.login("bob@beta.example"), "made after the backup");
    server.stop();

    // The mistaken restore is undone from what it kept.
    let said = ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "restore",
        kept.to_str().unwrap(),
    ]));
    assert!(said.contains("vigil.db.before-restore.1"), "{said}");
    let server = Server::start(dir, &db);
    assert!(server.login("bob@beta.example"), "back again");
    assert!(server.login("alice@acme.example"));
    server.stop();
}

#[test]
fn bad_input_is_refused_with_exit_code_2_and_the_database_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("vigil.db");
    create_account(&db, "Acme", "alice@acme.example");
    let good = dir.join("good.backup");
    ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "backup",
        good.to_str().unwrap(),
    ]));

    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "not a database at all, just some text\n").unwrap();
    let empty = dir.join("empty.backup");
    std::fs::write(&empty, "").unwrap();
    let other = dir.join("other.sqlite");
    let future = dir.join("future.backup");
    std::fs::copy(&good, &future).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::ConnectOptions;
        use std::str::FromStr;
        let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(&url(&other))
            .unwrap()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE recipes (name TEXT)")
            .execute(&mut c)
            .await
            .unwrap();
        let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(&url(&future))
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (20990101000000, 'from the future', TRUE, X'00', 0)",
        )
        .execute(&mut c)
        .await
        .unwrap();
    });

    let live = std::fs::read(&db).unwrap();
    let listing = names(dir);
    let missing = dir.join("missing.backup");
    for (file, what) in [
        (&missing, "there is no file"),
        (&text_file, "is not a SQLite database"),
        (&empty, "is not a SQLite database"),
        (&other, "not a Vigil database"),
        (
            &future,
            "is at schema version 20990101000000, newer than this vigil",
        ),
        (&db, "is the database itself"),
    ] {
        let err = refused(
            vigil(&[
                "admin",
                "--db",
                &url(&db),
                "restore",
                file.to_str().unwrap(),
            ]),
            what,
        );
        assert!(err.starts_with("error: restore refused: "), "{err}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            live,
            "{what}: database changed"
        );
        assert_eq!(names(dir), listing, "{what}: files left behind");
    }

    // Backups: never over an existing file without --force.
    let before = std::fs::read(&text_file).unwrap();
    refused(
        vigil(&[
            "admin",
            "--db",
            &url(&db),
            "backup",
            text_file.to_str().unwrap(),
        ]),
        "exists already: give a new file name, or --force",
    );
    assert_eq!(std::fs::read(&text_file).unwrap(), before);
    refused(
        vigil(&["admin", "--db", &url(&db), "backup", dir.to_str().unwrap()]),
        "is a directory",
    );
    refused(
        vigil(&["admin", "--db", &url(&db), "backup", db.to_str().unwrap()]),
        "is the database itself",
    );
    refused(
        vigil(&["admin", "--db", &url(&missing), "backup", "x.backup"]),
        "there is no database at",
    );
    assert!(!missing.exists(), "no database created by a backup");
    refused(
        vigil(&["admin", "--db", &url(&other), "backup", "x.backup"]),
        "not a Vigil database",
    );
    assert_eq!(names(dir), listing, "files left behind");
    assert_eq!(std::fs::read(&db).unwrap(), live);
    // With --force the file is replaced by a backup that restores.
    ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "backup",
        "--force",
        text_file.to_str().unwrap(),
    ]));
    let said = ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "restore",
        text_file.to_str().unwrap(),
    ]));
    assert!(said.contains("this vigil's"), "{said}");

    // PostgreSQL has its own tools.
    let err = refused(
        vigil(&[
            "admin",
            "--db",
            "postgres://vigil:s3cret@db.example/vigil",
            "backup",
            "x",
        ]),
        "pg_dump --format=custom",
    );
    assert!(!err.contains("s3cret"), "{err}");
    refused(
        vigil(&[
            "admin",
            "--db",
            "postgres://vigil@db.example/vigil",
            "restore",
            "x",
        ]),
        "pg_restore",
    );
}

/// Root restoring the database of a server that runs as another user
/// leaves it that user's, with its mode: the server can write it again.
#[test]
fn a_restore_keeps_the_owner_and_mode_of_the_database() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to give the database another owner");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("vigil.db");
    create_account(&db, "Acme", "alice@acme.example");
    let backup = dir.join("b.db");
    ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "backup",
        backup.to_str().unwrap(),
    ]));
    let (uid, gid) = (65534, 65534);
    std::os::unix::fs::chown(&db, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::metadata(&backup).unwrap().uid(), 0);

    ok(vigil(&[
        "admin",
        "--db",
        &url(&db),
        "restore",
        backup.to_str().unwrap(),
    ]));
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_database_newer_than_the_binary_is_refused_by_admin_and_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("vigil.db");
    create_account(&db, "Acme", "alice@acme.example");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url(&db)).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (20990101000000, 'from the future', TRUE, X'00', 0)",
        )
        .execute(&mut c)
        .await
        .unwrap();
    });
    let message = format!(
        "the database is at schema version 20990101000000, newer than this vigil {} knows",
        env!("CARGO_PKG_VERSION")
    );
    let err = refused(
        vigil(&[
            "admin",
            "--db",
            &url(&db),
            "create-account",
            "--name",
            "Beta",
            "--email",
            "bob@beta.example",
            "--password",
            PASSWORD,
        ]),
        &message,
    );
    assert!(
        err.contains("upgrade vigil or restore a backup made by this version"),
        "{err}"
    );
    let (status, err) = server_refused(&dir.join("data"), &db);
    assert!(!status.success(), "the server started: {err}");
    assert!(err.contains(&message), "{err}");
}

/// A writer commits an account, then its user, one after the other, as
/// fast as it can; backups taken meanwhile must each hold a prefix of that
/// sequence (no account without those before it, no user of an account
/// after the last one), pass the integrity check and open as a database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_while_a_writer_writes_is_the_database_of_one_moment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let db = dir.join("vigil.db");
    let store = Store::connect_with(&url(&db), vigil_testdb::options())
        .await
        .unwrap();
    // Some bulk, so a copy takes a while.
    let bulk = store
        .create_account("Bulk", AccountKind::Organization)
        .await
        .unwrap();
    for i in 0..300 {
        store
            .record_audit(
                bulk.id,
                &vigil_store::NewAuditEntry {
                    actor: "bulk@example.test",
                    user_id: None,
                    source: None,
                    action: "bulk.write",
                    target: Some(&format!("{i:05}{}", "x".repeat(400))),
                    detail: None,
                },
            )
            .await
            .unwrap();
    }

    let written: Arc<Mutex<Vec<AccountId>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, written, stop) = (store.clone(), written.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let a = store
                    .create_account(&format!("w{i:06}"), AccountKind::Member)
                    .await
                    .unwrap();
                written.lock().unwrap().push(a.id);
                store
                    .create_user(
                        a.id,
                        &format!("w{i:06}@example.test"),
                        PASSWORD,
                        Role::Viewer,
                    )
                    .await
                    .unwrap();
                i += 1;
            }
        })
    };
    let count = || written.lock().unwrap().len();
    while count() < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut taken = Vec::new();
    for n in 0..4 {
        let file = dir.join(format!("b{n}.db"));
        let start = count();
        let (u, f) = (url(&db), file.clone());
        let out = tokio::task::spawn_blocking(move || {
            vigil(&["admin", "--db", &u, "backup", f.to_str().unwrap()])
        })
        .await
        .unwrap();
        let end = count();
        ok(out);
        taken.push((file, start, end));
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let written = written.lock().unwrap().clone();
    assert!(
        taken.iter().any(|(_, start, end)| end > start),
        "the writer wrote during a backup: {taken:?}"
    );

    for (file, start, end) in taken {
        let copy = Store::connect_with(&url(&file), vigil_testdb::options())
            .await
            .unwrap_or_else(|e| panic!("{} opens: {e}", file.display()));
        let pool = sqlx::SqlitePool::connect(&url(&file)).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        let bulk_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(bulk_rows, 300);
        // The accounts it has are the first k written, for one k.
        let mut present = Vec::new();
        for id in &written {
            present.push(copy.account(*id).await.is_ok());
        }
        let k = present.iter().take_while(|p| **p).count();
        println!(
            "{}: {k} of the writer's accounts (it had committed {start} when the backup \
             started, {end} when it ended)",
            file.display()
        );
        assert!(
            present[k..].iter().all(|p| !p),
            "{}: accounts missing before others present: {present:?}",
            file.display()
        );
        // Committed before the backup began; at most the one being
        // recorded when it ended is past `end`.
        assert!(
            (start..=end + 1).contains(&k),
            "{}: {k} accounts, the writer had {start} to {end}",
            file.display()
        );
        // Every account but the last has its user; the last may not yet.
        for (j, id) in written[..k].iter().enumerate() {
            let users = copy.users(*id).await.unwrap().len();
            if j + 1 < k {
                assert_eq!(users, 1, "{}: account {j} without its user", file.display());
            } else {
                assert!(users <= 1);
            }
        }
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(
            users == k as i64 || users + 1 == k as i64,
            "{}: {users} users of {k} accounts",
            file.display()
        );
        pool.close().await;
        copy.close().await;
    }
    store.close().await;
}
