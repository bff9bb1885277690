//! The schema and how a database gets to it.
//!
//! Portable migrations both databases run live in `migrations/`; the few
//! steps that need one database's own SQL in `migrations-sqlite/` and
//! `migrations-postgres/`. Versions are unique over the three directories,
//! and a database runs the common steps and its own in version order.
//!
//! SQLite cannot change a CHECK constraint in place: the table is rebuilt,
//! which is only safe with foreign keys off (dropping the old table would
//! otherwise cascade to the tables referencing it), and SQLite ignores that
//! switch inside a transaction, while sqlx runs every SQLite migration in
//! one. So a rebuild is a step of this module ([`REBUILDS`]), run on its own
//! connection between the migrations before and after its version; the
//! version's file in `migrations-sqlite/` only records it.

use crate::{Backend, Pool, Result, StoreError};
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::{Connection, Executor, Row};

static COMMON: Migrator = sqlx::migrate!("./migrations");
static SQLITE: Migrator = sqlx::migrate!("./migrations-sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations-postgres");

/// A SQLite table rebuilt at `version`: done when its `CREATE TABLE`
/// contains `done_when`; `sql` builds `<table>_v2`, copies the rows, drops
/// the old table, renames the new one and recreates its indexes.
struct Rebuild {
    version: i64,
    table: &'static str,
    done_when: &'static str,
    sql: &'static str,
}

/// Every rebuild, in version order.
const REBUILDS: &[Rebuild] = &[
    Rebuild {
        version: 20250107000002,
        table: "alerts",
        done_when: "'new_device'",
        sql: include_str!("../migrations-sqlite/rebuild/20250107000002_alerts.sql"),
    },
    Rebuild {
        version: 20250110000001,
        table: "contacts",
        done_when: "channel <> ''",
        sql: include_str!("../migrations-sqlite/rebuild/20250110000001_contacts.sql"),
    },
    Rebuild {
        version: 20250110000002,
        table: "alerts",
        done_when: "'process_changed'",
        sql: include_str!("../migrations-sqlite/rebuild/20250110000002_alerts.sql"),
    },
];

type Resolved<'s> = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::result::Result<Vec<Migration>, sqlx::error::BoxDynError>,
            > + Send
            + 's,
    >,
>;

/// Migrations already resolved (embedded above), for [`Migrator::new`].
#[derive(Debug)]
struct Embedded(Vec<Migration>);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Resolved<'s> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// The migrations of `own` and the common ones with a version in `range`.
async fn migrator(own: &Migrator, range: std::ops::RangeInclusive<i64>) -> Result<Migrator> {
    let mut all: Vec<Migration> = COMMON
        .iter()
        .chain(own.iter())
        .filter(|m| range.contains(&m.version))
        .cloned()
        .collect();
    all.sort_by_key(|m| m.version);
    Ok(Migrator::new(Embedded(all)).await?)
}

/// The newest schema version this build knows for `backend`.
pub(crate) fn newest_version(backend: Backend) -> i64 {
    let own = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    COMMON
        .iter()
        .chain(own.iter())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Whether `version` is a schema step this build knows for `backend`.
pub(crate) fn knows(backend: Backend, version: i64) -> bool {
    let own = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    COMMON
        .iter()
        .chain(own.iter())
        .any(|m| m.version == version)
}

/// The newest schema version recorded in the database (`None`: no
/// migration ever ran there).
async fn recorded_version(pool: &Pool) -> Result<Option<i64>> {
    let sqlite = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1";
    let table: Option<String> = match pool {
        Pool::Sqlite(p) => {
            sqlx::query_scalar(sqlite)
                .bind("_sqlx_migrations")
                .fetch_optional(p)
                .await?
        }
        Pool::Postgres(p) => {
            sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind("_sqlx_migrations")
                .fetch_one(p)
                .await?
        }
    };
    if table.is_none() {
        return Ok(None);
    }
    let sql = "SELECT MAX(version) FROM _sqlx_migrations";
    Ok(match pool {
        Pool::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        Pool::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
    })
}

/// Brings the database to version `last` (`i64::MAX`: the newest). A
/// database a newer vigil migrated is refused before anything runs
/// ([`StoreError::SchemaTooNew`]): its schema is not this build's to change.
pub(crate) async fn migrate(pool: &Pool, last: i64) -> Result<()> {
    let backend = match pool {
        Pool::Sqlite(_) => Backend::Sqlite,
        Pool::Postgres(_) => Backend::Postgres,
    };
    let known = newest_version(backend);
    if let Some(found) = recorded_version(pool).await?.filter(|v| *v > known) {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    match pool {
        Pool::Postgres(p) => migrator(&POSTGRES, i64::MIN..=last).await?.run(p).await?,
        Pool::Sqlite(p) => {
            let mut from = i64::MIN;
            for r in REBUILDS.iter().filter(|r| r.version <= last) {
                let mut before = migrator(&SQLITE, from..=r.version - 1).await?;
                // Newer versions may be applied already (a database that
                // has had this rebuild): that is no error here.
                before.set_ignore_missing(true);
                before.run(p).await?;
                rebuild(p, r).await?;
                from = r.version;
            }
            // Migrator::run skips what is applied: the earlier steps again
            // are no-ops, and a rebuild's own version is recorded here.
            migrator(&SQLITE, i64::MIN..=last).await?.run(p).await?;
        }
    }
    Ok(())
}

/// Runs `r` unless done: foreign keys off on one connection, the rebuild
/// in one transaction, foreign keys checked before it commits.
async fn rebuild(pool: &sqlx::SqlitePool, r: &Rebuild) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let current: Option<String> =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
            .bind(r.table)
            .fetch_optional(&mut *conn)
            .await?;
    match current {
        Some(sql) if !sql.contains(r.done_when) => {}
        // Done before, or a table this version does not know: nothing to do.
        _ => return Ok(()),
    }
    conn.execute("PRAGMA foreign_keys = OFF").await?;
    let outcome = async {
        let mut tx = conn.begin().await?;
        tx.execute(r.sql).await?;
        let broken = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut *tx)
            .await?;
        if let Some(row) = broken.first() {
            let table: String = row.try_get(0).unwrap_or_default();
            return Err(StoreError::invalid(format!(
                "rebuilding {} would break a reference from {table}; nothing was changed",
                r.table
            )));
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    // Back on whatever happened: the pool reuses this connection.
    conn.execute("PRAGMA foreign_keys = ON").await?;
    outcome
}
