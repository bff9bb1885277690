//! The SQLite database file of a server: the lock that keeps it to one
//! server, online backups, and restores.
//!
//! A SQLite database serves one `vigil server`. The server holds a
//! [`DatabaseLock`] — an exclusive advisory lock on `<database>.lock`,
//! beside the file — for as long as it runs, so a second server on the same
//! file, or a restore, is refused instead of writing under its feet. The
//! lock file stays; the lock goes with its holder (the operating system
//! drops it when the process ends, however it ends).
//!
//! [`backup`] copies the database while a server runs and writes:
//! `VACUUM INTO` reads the database in one read transaction, so the copy is
//! the database as of one moment (in WAL mode the writers go on meanwhile).
//! The copy is written beside the destination, checked (`PRAGMA
//! integrity_check`, and that it is a Vigil database), synced and only then
//! given the destination's name.
//!
//! [`restore`] checks a backup first ([`check_backup`]: integrity, a Vigil
//! database, a schema this build knows), then takes the lock, copies the
//! backup beside the database, syncs it and renames it over the database.
//! The database it replaces is kept as `<database>.before-restore` (or
//! `.before-restore.N` when that name is taken), so a mistaken restore
//! loses nothing.

use crate::schema::{knows, newest_version};
use crate::{Backend, Result, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The first schema step of every Vigil database.
const FIRST_VERSION: i64 = 20250101000001;

/// The file a SQLite `url` names; `None` for an in-memory database or a
/// PostgreSQL URL (which has no file to lock or copy).
pub fn database_path(url: &str) -> Result<Option<PathBuf>> {
    if Backend::for_url(url)? != Backend::Sqlite
        || url.contains(":memory:")
        || url.contains("mode=memory")
    {
        return Ok(None);
    }
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::invalid(format!("bad database URL: {e}")))?;
    Ok(Some(opts.get_filename().to_path_buf()))
}

/// `<database>.lock`: the file [`DatabaseLock`] locks.
pub fn lock_path(database: &Path) -> PathBuf {
    with_suffix(database, ".lock")
}

/// `path` with `suffix` appended to its file name (`vigil.db` →
/// `vigil.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The exclusive lock of a SQLite database: held by the server that uses
/// it, and by a restore. Released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DatabaseLock {
    /// Locked while open: closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl DatabaseLock {
    /// Takes the lock of `database` (creating `<database>.lock`, and the
    /// directory, if missing) without waiting: [`StoreError::InUse`] when
    /// another process holds it.
    pub fn acquire(database: &Path) -> Result<DatabaseLock> {
        let path = lock_path(database);
        if let Some(dir) = parent(&path) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::file("creating the directory", dir, e))?;
        }
        let created = !path.exists();
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let mut file = match opened {
            Ok(f) => f,
            // Made by another user (root running `vigil admin`): reading
            // is enough to lock it.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(&path)
                .map_err(|e| StoreError::file("opening the lock file", &path, e))?,
            Err(e) => return Err(StoreError::file("opening the lock file", &path, e)),
        };
        if created {
            // The server's user must be able to open it too.
            same_owner(database, &path);
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(StoreError::InUse {
                    database: database.to_path_buf(),
                    lock: path,
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::file("locking", &path, e));
            }
        }
        // Who holds it, for the message of the next one that tries; only
        // a hint, so a failure to write it is no failure to lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        Ok(DatabaseLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`check_backup`] found in a database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The newest schema step recorded in it.
    pub schema_version: i64,
    /// The newest schema step this build knows: the file is upgraded to
    /// it when a server (or `vigil admin`) next opens it.
    pub newest_known: i64,
    /// The size of the file.
    pub bytes: u64,
}

/// Copies the SQLite database `database` into a new file `to` while
/// servers may be using it (see the [module](self) documentation). An
/// existing `to` is replaced only with `overwrite`; the database must be a
/// Vigil database. Nothing is written at `to` unless the copy checked out.
pub async fn backup(database: &Path, to: &Path, overwrite: bool) -> Result<BackupInfo> {
    if !database.is_file() {
        return Err(StoreError::invalid(format!(
            "there is no database at {}: give the --db URL of the server",
            database.display()
        )));
    }
    if to.is_dir() {
        return Err(StoreError::invalid(format!(
            "{} is a directory: give the backup's file name",
            to.display()
        )));
    }
    if to.exists() {
        if same_file(database, to) {
            return Err(StoreError::invalid(format!(
                "{} is the database itself: give another file for the backup",
                to.display()
            )));
        }
        if !overwrite {
            return Err(StoreError::invalid(format!(
                "{} exists already: give a new file name, or --force to replace it",
                to.display()
            )));
        }
    }
    let mut live = SqliteConnectOptions::new()
        .filename(database)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    // Any Vigil database is worth a copy, even one a failed upgrade left.
    let vigil = vigil_schema(&mut live, false).await;
    if let Err(e) = vigil {
        let _ = live.close().await;
        return Err(not_vigil(database, e));
    }
    let tmp = temp_beside(to)?;
    let copied = async {
        let target = tmp.to_str().ok_or_else(|| {
            StoreError::invalid(format!("{}: the path is not UTF-8", to.display()))
        })?;
        // One read transaction: the copy is the database as of its start.
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&mut live)
            .await?;
        live.close().await?;
        // Self-contained, whatever journal mode the copy inherited.
        let copy = SqliteConnectOptions::new()
            .filename(&tmp)
            .journal_mode(SqliteJournalMode::Delete)
            .connect()
            .await?;
        copy.close().await?;
        let mut info = inspect(&tmp, false).await?;
        sync_file(&tmp)?;
        place(&tmp, to, overwrite)?;
        info.bytes = std::fs::metadata(to)
            .map_err(|e| StoreError::file("reading", to, e))?
            .len();
        Ok(info)
    }
    .await;
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

/// Checks that `file` is a Vigil database this build can use: a SQLite
/// file that passes `PRAGMA integrity_check`, holds Vigil's schema (every
/// step of it one this build knows, none unfinished) and is not newer than
/// this build ([`StoreError::SchemaTooNew`]). Opens the file read-only and
/// changes nothing.
pub async fn check_backup(file: &Path) -> Result<BackupInfo> {
    if !file.is_file() {
        return Err(StoreError::invalid(format!(
            "there is no file {}",
            file.display()
        )));
    }
    let wal = with_suffix(file, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(StoreError::invalid(format!(
            "{} has a write-ahead log beside it ({}): it is a database in use, or a copy \
             taken while it was, whose latest changes are not in the file itself; make \
             a backup of it with `vigil admin backup` and restore that",
            file.display(),
            wal.display()
        )));
    }
    let info = inspect(file, true).await?;
    if info.schema_version > info.newest_known {
        return Err(StoreError::SchemaTooNew {
            found: info.schema_version,
            known: info.newest_known,
        });
    }
    Ok(info)
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The backup that is now the database.
    pub info: BackupInfo,
    /// Where the database that was replaced is kept (`None`: there was
    /// none).
    pub kept: Option<PathBuf>,
    /// The replaced database still has its write-ahead log beside it
    /// (`<kept>-wal`; it could not be folded into the file, e.g. because
    /// the database was damaged): keep both files together.
    pub kept_wal: bool,
}

/// Makes the backup `from` the database `database` (see the
/// [module](self) documentation): refused while a server uses it
/// ([`StoreError::InUse`]) and for a backup [`check_backup`] refuses; the
/// database is untouched then.
pub async fn restore(database: &Path, from: &Path) -> Result<Restored> {
    if database.exists() && same_file(database, from) {
        return Err(StoreError::invalid(format!(
            "{} is the database itself: give the backup file to restore",
            from.display()
        )));
    }
    let info = check_backup(from).await?;
    let _lock = DatabaseLock::acquire(database)?;
    let tmp = temp_beside(database)?;
    let copy = (|| {
        std::fs::copy(from, &tmp)
            .map_err(|e| StoreError::file("copying the backup to", &tmp, e))?;
        // Whoever runs the restore (root, often), the server's user must
        // be able to write the database as before.
        if let Ok(meta) = std::fs::metadata(database) {
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
            same_owner(database, &tmp);
        }
        sync_file(&tmp)
    })();
    if let Err(e) = copy {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let kept = match keep_current(database) {
        Ok(kept) => kept,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    // Under the lock nobody has the database open: what is left beside it
    // belongs to the replaced file and would be applied to the restored
    // one (a stale WAL) if it stayed.
    for suffix in ["-wal", "-journal", "-shm"] {
        let stale = with_suffix(database, suffix);
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::file("removing", &stale, e));
            }
        }
    }
    if let Err(e) = std::fs::rename(&tmp, database) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StoreError::file(
            "renaming the restored copy to",
            database,
            e,
        ));
    }
    sync_dir(database);
    let kept_wal = match &kept {
        Some(k) => !fold_wal(k).await,
        None => false,
    };
    Ok(Restored {
        info,
        kept,
        kept_wal,
    })
}

/// Gives the current database (and its write-ahead log or journal) the
/// first free `<database>.before-restore[.N]` name, without ever leaving
/// `database` missing: the file is linked (copied where the file system
/// has no hard links), its log moved. `None` when there is no database.
fn keep_current(database: &Path) -> Result<Option<PathBuf>> {
    if !database.exists() {
        return Ok(None);
    }
    let kept = (0..1000)
        .map(|n| match n {
            0 => with_suffix(database, ".before-restore"),
            n => with_suffix(database, &format!(".before-restore.{n}")),
        })
        .find(|p| !p.exists() && !with_suffix(p, "-wal").exists())
        .ok_or_else(|| {
            StoreError::invalid(format!(
                "{}.before-restore … .999 all exist: move old ones away first",
                database.display()
            ))
        })?;
    if std::fs::hard_link(database, &kept).is_err() {
        std::fs::copy(database, &kept)
            .map_err(|e| StoreError::file("keeping the replaced database as", &kept, e))?;
        sync_file(&kept)?;
    }
    for suffix in ["-wal", "-journal"] {
        let log = with_suffix(database, suffix);
        if log.exists() {
            let to = with_suffix(&kept, suffix);
            std::fs::rename(&log, &to)
                .map_err(|e| StoreError::file("keeping the replaced database's log as", &to, e))?;
        }
    }
    sync_dir(database);
    Ok(Some(kept))
}

/// Folds the write-ahead log of the kept database into its file and leaves
/// it in rollback-journal mode, so it is one self-contained file (a backup
/// [`restore`] accepts). Best effort: false when its log is still there.
async fn fold_wal(kept: &Path) -> bool {
    let wal = with_suffix(kept, "-wal");
    if !wal.exists() {
        return true;
    }
    let folded = async {
        let c = SqliteConnectOptions::new()
            .filename(kept)
            .journal_mode(SqliteJournalMode::Delete)
            .connect()
            .await?;
        c.close().await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let _ = std::fs::remove_file(with_suffix(kept, "-shm"));
    folded.is_ok() && !wal.exists()
}

/// Reads a database file without changing it: its size, its integrity and
/// its Vigil schema version. `strict`: a schema step that did not finish or
/// that this build does not know is an error too (not only a file without
/// Vigil's schema).
async fn inspect(file: &Path, strict: bool) -> Result<BackupInfo> {
    let bytes = std::fs::metadata(file)
        .map_err(|e| StoreError::file("reading", file, e))?
        .len();
    let mut header = [0u8; 16];
    match File::open(file).and_then(|mut f| f.read_exact(&mut header)) {
        Ok(()) if &header == b"SQLite format 3\0" => {}
        Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            return Err(StoreError::file("reading", file, e));
        }
        _ => {
            return Err(StoreError::invalid(format!(
                "{} is not a SQLite database",
                file.display()
            )));
        }
    }
    // Immutable: no lock, no -shm or journal created beside the file.
    let mut c = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .immutable(true)
        .connect()
        .await?;
    let checked = async {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut c)
            .await
            .map_err(|e| StoreError::invalid(format!("{} is damaged: {e}", file.display())))?;
        if problems != ["ok"] {
            let some: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
            return Err(StoreError::invalid(format!(
                "{} is damaged: PRAGMA integrity_check reports {} problem(s): {}",
                file.display(),
                problems.len(),
                some.join("; ")
            )));
        }
        vigil_schema(&mut c, strict)
            .await
            .map_err(|e| not_vigil(file, e))
    }
    .await;
    let _ = c.close().await;
    Ok(BackupInfo {
        schema_version: checked?,
        newest_known: newest_version(Backend::Sqlite),
        bytes,
    })
}

/// Why a database does not hold Vigil's schema.
enum NotVigil {
    /// No Vigil schema at all.
    Foreign,
    /// A schema step was started and did not finish.
    Unfinished(i64),
    /// A step no build of Vigil has (and older than this one's newest).
    Unknown(i64),
    Database(sqlx::Error),
}

/// The schema version of a connected Vigil database (`strict`: see
/// [`inspect`]).
async fn vigil_schema(c: &mut SqliteConnection, strict: bool) -> Result<i64, NotVigil> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name IN ('_sqlx_migrations', 'accounts', 'agents')",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(NotVigil::Database)?;
    if tables.len() != 3 {
        return Err(NotVigil::Foreign);
    }
    let steps: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *c)
            .await
            .map_err(NotVigil::Database)?;
    if steps.first().map(|s| s.0) != Some(FIRST_VERSION) {
        return Err(NotVigil::Foreign);
    }
    if !strict {
        return Ok(steps.last().map_or(FIRST_VERSION, |s| s.0));
    }
    if let Some((v, _)) = steps.iter().find(|(_, done)| !done) {
        return Err(NotVigil::Unfinished(*v));
    }
    let newest = newest_version(Backend::Sqlite);
    if let Some((v, _)) = steps
        .iter()
        .find(|(v, _)| *v <= newest && !knows(Backend::Sqlite, *v))
    {
        return Err(NotVigil::Unknown(*v));
    }
    Ok(steps.last().map_or(FIRST_VERSION, |s| s.0))
}

fn not_vigil(file: &Path, why: NotVigil) -> StoreError {
    let file = file.display();
    match why {
        NotVigil::Foreign => StoreError::invalid(format!(
            "{file} is a SQLite database, but not a Vigil database (it has no Vigil schema)"
        )),
        NotVigil::Unfinished(v) => StoreError::invalid(format!(
            "{file}: schema step {v} was started and did not finish (an upgrade failed \
             there); use a backup from before that upgrade"
        )),
        NotVigil::Unknown(v) => StoreError::invalid(format!(
            "{file} has schema step {v}, which no release of this vigil has: it was not \
             made by a release of Vigil this one can read"
        )),
        NotVigil::Database(e) => StoreError::invalid(format!("{file}: cannot read it: {e}")),
    }
}

/// A new file name beside `path` (same directory, so a rename is atomic).
fn temp_beside(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::invalid(format!("{}: give a file name", path.display())))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    Ok(match parent(path) {
        Some(dir) => dir.join(tmp),
        None => PathBuf::from(tmp),
    })
}

/// `path`'s directory, unless it is the current one.
fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
}

/// Gives `tmp` the name `to`: replacing it only with `overwrite`, else
/// refusing a `to` that appeared meanwhile (a hard link never replaces).
fn place(tmp: &Path, to: &Path, overwrite: bool) -> Result<()> {
    if overwrite {
        std::fs::rename(tmp, to).map_err(|e| StoreError::file("renaming the backup to", to, e))?;
    } else {
        match std::fs::hard_link(tmp, to) {
            Ok(()) => {
                let _ = std::fs::remove_file(tmp);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StoreError::invalid(format!(
                    "{} exists already: give a new file name, or --force to replace it",
                    to.display()
                )));
            }
            // No hard links on this file system: rename, after looking.
            Err(_) if !to.exists() => std::fs::rename(tmp, to)
                .map_err(|e| StoreError::file("renaming the backup to", to, e))?,
            Err(e) => return Err(StoreError::file("naming the backup", to, e)),
        }
    }
    sync_dir(to);
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::file("syncing", path, e))
}

/// Gives `path` the owner and group of `like` (Unix, when allowed: root
/// restoring a database a service user owns). Best effort.
fn same_owner(like: &Path, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(like) {
            let _ = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()));
        }
    }
    #[cfg(not(unix))]
    let _ = (like, path);
}

/// Makes a rename in `path`'s directory durable (Unix; elsewhere the
/// rename itself is).
fn sync_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = parent(path).unwrap_or(Path::new("."));
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_urls() {
        assert_eq!(
            database_path("sqlite://data/vigil.db").unwrap(),
            Some(PathBuf::from("data/vigil.db"))
        );
        assert_eq!(
            database_path("sqlite:///var/lib/vigil/vigil.db?mode=rwc").unwrap(),
            Some(PathBuf::from("/var/lib/vigil/vigil.db"))
        );
        assert_eq!(database_path("sqlite::memory:").unwrap(), None);
        assert_eq!(database_path("postgres://u@h/db").unwrap(), None);
        assert!(database_path("mysql://u@h/db").is_err());
        assert_eq!(
            lock_path(Path::new("/d/vigil.db")),
            PathBuf::from("/d/vigil.db.lock")
        );
    }

    #[test]
    fn a_second_lock_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub/vigil.db");
        let first = DatabaseLock::acquire(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("sub/vigil.db.lock"));
        match DatabaseLock::acquire(&db) {
            Err(StoreError::InUse { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()))
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        DatabaseLock::acquire(&db).unwrap();
    }
}
