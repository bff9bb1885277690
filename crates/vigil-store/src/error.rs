//! The one error type of the store.

use thiserror::Error;

/// Everything a store method can fail with.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The row does not exist, or it belongs to another account (the two are
    /// deliberately indistinguishable).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (for example a duplicate email address).
    #[error("conflict: a record with the same unique key already exists")]
    Conflict,
    /// The input was rejected before reaching the database; the message says why.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Any other database failure (connection, I/O, corrupt row, ...).
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Too many password checks are running and waiting: try again shortly.
    #[error("the server is busy checking other passwords; try again in a moment")]
    Busy,
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was upgraded by a newer vigil: this one does not know
    /// its schema and leaves it alone.
    #[error(
        "the database is at schema version {found}, newer than this vigil {} knows \
         (up to {known}): upgrade vigil or restore a backup made by this version",
        env!("CARGO_PKG_VERSION")
    )]
    SchemaTooNew {
        /// The newest schema version recorded in the database.
        found: i64,
        /// The newest schema version of this build.
        known: i64,
    },
    /// Another process holds the lock of a SQLite database (a running
    /// server, or a restore): see [`crate::sqlite_file::DatabaseLock`].
    #[error(
        "the SQLite database {} is in use by another vigil server or restore{}, which holds \
         {}: stop it first (a SQLite database serves one server; replicas share a PostgreSQL \
         database)",
        database.display(),
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        lock.display()
    )]
    InUse {
        database: std::path::PathBuf,
        lock: std::path::PathBuf,
        /// The process id the holder wrote into the lock file, if readable.
        holder: Option<u32>,
    },
    /// A file operation on a database, its backup or its lock failed.
    #[error("{action} {}: {source}", path.display())]
    File {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A tenant-scoped update or delete that touched no row found nothing to
/// change (missing, or another tenant's): [`StoreError::NotFound`].
pub(crate) fn found(rows_affected: u64) -> Result<()> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

impl StoreError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        StoreError::Invalid(msg.into())
    }

    pub(crate) fn file(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::File {
            action,
            path: path.into(),
            source,
        }
    }

    /// A value read from the database could not be decoded.
    pub(crate) fn corrupt(what: &str, value: &str) -> Self {
        StoreError::Database(sqlx::Error::Decode(
            format!("invalid {what} {value:?} stored in the database").into(),
        ))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    StoreError::Conflict
                } else if db.is_foreign_key_violation() {
                    // A referenced row (account, user, agent, contact) does not
                    // exist *in this account*: the composite foreign keys make a
                    // cross-tenant reference look exactly like a missing one.
                    StoreError::NotFound
                } else if db.is_check_violation() {
                    StoreError::Invalid(db.message().to_owned())
                } else {
                    StoreError::Database(sqlx::Error::Database(db))
                }
            }
            other => StoreError::Database(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_not_found_is_not_found() {
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::NotFound
        ));
    }

    #[test]
    fn other_errors_are_database_errors() {
        let e = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Database(sqlx::Error::PoolTimedOut)));
        assert!(e.to_string().starts_with("database error"), "{e}");
    }

    #[test]
    fn messages() {
        assert_eq!(
            StoreError::invalid("name is empty").to_string(),
            "invalid input: name is empty"
        );
        let c = StoreError::corrupt("plan", "gold").to_string();
        assert!(c.contains("\"gold\""), "{c}");
    }
}
