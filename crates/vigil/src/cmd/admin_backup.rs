//! `vigil admin backup FILE` and `vigil admin restore FILE`: a SQLite
//! database's online backup and its restore (`vigil_store::sqlite_file`
//! does the work and the checks). A PostgreSQL database is backed up and
//! restored with PostgreSQL's own tools, `pg_dump` and `pg_restore`: these
//! commands say how instead (exit code 2).

use super::usage;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_store::sqlite_file::{self, BackupInfo};
use vigil_store::StoreError;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup to write: a new file (a SQLite database, checked before it gets this name).
    file: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (made by `vigil admin backup`). It is checked first; the
    /// database it replaces is kept as <database>.before-restore.
    file: PathBuf,
}

/// `vigil admin --db URL backup FILE`.
pub fn backup(db: &str, args: BackupArgs) -> Result<ExitCode> {
    let database = sqlite_database(db, "backup")?;
    let info = super::runtime()?
        .block_on(sqlite_file::backup(&database, &args.file, args.force))
        .map_err(|e| refused(e, "backup"))?;
    println!(
        "backed up {} to {} ({} bytes, schema version {}, integrity checked)",
        database.display(),
        args.file.display(),
        info.bytes,
        info.schema_version
    );
    Ok(ExitCode::SUCCESS)
}

/// `vigil admin --db URL restore FILE`.
pub fn restore(db: &str, args: RestoreArgs) -> Result<ExitCode> {
    let database = sqlite_database(db, "restore")?;
    let restored = super::runtime()?
        .block_on(sqlite_file::restore(&database, &args.file))
        .map_err(|e| refused(e, "restore"))?;
    println!(
        "restored {} into {} ({})",
        args.file.display(),
        database.display(),
        schema(&restored.info)
    );
    match &restored.kept {
        Some(kept) if restored.kept_wal => println!(
            "the database it replaced is kept as {} with its write-ahead log {}-wal \
             (keep the two files together)",
            kept.display(),
            kept.display()
        ),
        Some(kept) => {
            println!(
                "the database it replaced is kept as {}; to undo this restore:",
                kept.display()
            );
            println!(
                "  vigil admin --db {} restore {}",
                shell_word(db),
                shell_word(&kept.display().to_string())
            );
        }
        None => println!("there was no database at {} before", database.display()),
    }
    Ok(ExitCode::SUCCESS)
}

fn schema(info: &BackupInfo) -> String {
    if info.schema_version < info.newest_known {
        format!(
            "schema version {}; the next start of vigil upgrades it to {}",
            info.schema_version, info.newest_known
        )
    } else {
        format!("schema version {}, this vigil's", info.schema_version)
    }
}

/// The SQLite file of `db`; for PostgreSQL, what to run instead.
fn sqlite_database(db: &str, what: &str) -> Result<PathBuf> {
    let path = sqlite_file::database_path(db).map_err(|e| match e {
        StoreError::Invalid(msg) => usage(format!("--db: {msg}")),
        e => anyhow::Error::new(e),
    })?;
    match path {
        Some(path) => Ok(path),
        None if vigil_store::Backend::for_url(db).ok() == Some(vigil_store::Backend::Postgres) => {
            Err(usage(postgres_advice(db, what)))
        }
        None => Err(usage(format!(
            "--db {db} is an in-memory database: there is nothing to {what}"
        ))),
    }
}

/// How to back up or restore a PostgreSQL database with its own tools.
fn postgres_advice(db: &str, what: &str) -> String {
    let url = shell_word(&without_password(db));
    if what == "backup" {
        format!(
            "--db is a PostgreSQL database: back it up with PostgreSQL's pg_dump, which \
             takes a consistent snapshot while the servers run:\n  \
             pg_dump --format=custom --file=FILE {url}\n\
             (README, \"Backups and upgrades\")"
        )
    } else {
        format!(
            "--db is a PostgreSQL database: restore a pg_dump backup with PostgreSQL's \
             pg_restore into a new, empty database, then start the servers with --db \
             naming it:\n  \
             createdb --maintenance-db=postgres://USER@HOST/postgres --owner=USER NEW_DATABASE\n  \
             pg_restore --no-owner --exit-on-error --single-transaction \
             --dbname=postgres://USER@HOST/NEW_DATABASE FILE\n\
             (README, \"Backups and upgrades\"; the database now in --db {url} stays as it is)"
        )
    }
}

/// A store error as the command's answer: input to change (exit code 2)
/// or a failure (exit code 1).
fn refused(e: StoreError, what: &str) -> anyhow::Error {
    match e {
        StoreError::Invalid(msg) => usage(format!("{what} refused: {msg}")),
        e @ StoreError::InUse { .. } => usage(format!("{what} refused: {e}")),
        e @ StoreError::SchemaTooNew { .. } => usage(format!("{what} refused: {e}")),
        e => anyhow::Error::new(e).context(format!("{what} failed")),
    }
}

/// `url` with its password (if any) left out, for printing.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    let plain = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,%".contains(c));
    if plain && !s.is_empty() {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_advice_names_the_tools_without_the_password() {
        let advice = postgres_advice("postgres://vigil:s3cret@db.example/vigil", "backup");
        assert!(advice.contains("pg_dump --format=custom"), "{advice}");
        assert!(
            advice.contains("postgres://vigil@db.example/vigil"),
            "{advice}"
        );
        assert!(!advice.contains("s3cret"), "{advice}");
        let advice = postgres_advice("postgres://vigil@db.example/vigil", "restore");
        assert!(advice.contains("pg_restore --no-owner"), "{advice}");
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_word("sqlite:///var/lib/vigil.db"),
            "sqlite:///var/lib/vigil.db"
        );
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("x?mode=rwc"), "'x?mode=rwc'");
    }

    #[test]
    fn paths_are_not_postgres() {
        assert!(sqlite_database("sqlite://x/vigil.db", "backup").is_ok());
        let e = sqlite_database("postgres://u@h/db", "backup").unwrap_err();
        assert!(e.downcast_ref::<super::super::UsageError>().is_some());
        assert!(sqlite_database("sqlite::memory:", "backup").is_err());
    }
}
