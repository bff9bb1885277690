//! The soak's own connection to the server's database: the clock of the
//! stored history (every stored time moved one day back, which is what a
//! day passing does to it as the server sees it) and row counts.
//!
//! Only history is aged: when things happened (results received, tasks
//! handed out, alerts raised and resolved, notifications queued and sent,
//! entries of the audit log and of agents' and devices' histories, tokens
//! and jobs), and when each policy runs next (a day has passed: every
//! policy is due, so each simulated day every agent's policy runs once).
//! What the server keeps as "now" is left alone — when each agent last
//! called in, leases and claims, sessions, retry times — so liveness and
//! the outbox go on as in a real deployment. A table added later and left
//! out of [`AGED`] shows as growth in the per-table counts of the report.
//!
//! Ageing rewrites every row of history once a day, which a real server
//! never does: on SQLite the write-ahead log grows to hold it, so after
//! ageing the bench checkpoints it and truncates it
//! (`wal_checkpoint(TRUNCATE)`); the WAL measured at the end of a day is
//! then what the server's own writes of that day left in it.

use anyhow::{Context, Result};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Every stored time of history, by table: (column, units per second).
pub const AGED: &[(&str, &[(&str, i64)])] = &[
    (
        "scan_results",
        &[("started_at", 1), ("finished_at", 1), ("received_at", 1)],
    ),
    (
        "scan_tasks",
        &[("created_at", 1), ("expires_at", 1), ("completed_at", 1)],
    ),
    (
        "alerts",
        &[("raised_at", 1), ("resolved_at", 1), ("acknowledged_at", 1)],
    ),
    ("alert_events", &[("occurred_at", 1), ("retry_at", 1)]),
    (
        "outbox",
        &[("created_at", 1), ("sent_at", 1), ("dropped_at", 1)],
    ),
    ("held_notices", &[("held_at", 1)]),
    ("policies", &[("next_run_at", 1)]),
    ("agent_events", &[("at", 1)]),
    ("agents", &[("enrolled_at", 1)]),
    ("audit_log", &[("at_ms", 1000)]),
    ("target_states", &[("updated_at", 1)]),
    ("devices", &[("first_seen", 1), ("last_seen", 1)]),
    ("device_events", &[("at", 1)]),
    (
        "network_sweeps",
        &[("started_at", 1), ("finished_at", 1), ("received_at", 1)],
    ),
    ("network_uploads", &[("received_at", 1)]),
    (
        "enrollment_tokens",
        &[("created_at", 1), ("expires_at", 1), ("used_at", 1)],
    ),
    ("deployment_key_uses", &[("used_at", 1)]),
    (
        "compliance_assessments",
        &[("started_at", 1), ("finished_at", 1)],
    ),
    ("install_jobs", &[("created_at", 1), ("finished_at", 1)]),
    ("install_job_hosts", &[("finished_at", 1)]),
];

pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// A small pool on the server's database (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Db> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("database URL {url}"))?
                .busy_timeout(Duration::from_secs(60));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .with_context(|| format!("opening {url}"))?;
            Ok(Db::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect(url)
                .await
                .with_context(|| format!("connecting to {url}"))?;
            Ok(Db::Postgres(pool))
        }
    }

    /// Moves every stored time of history `secs` into the past; the rows
    /// touched.
    pub async fn age(&self, secs: i64) -> Result<u64> {
        let mut rows = 0;
        for (table, columns) in AGED {
            let set: Vec<String> = columns
                .iter()
                .map(|(c, unit)| format!("{c} = {c} - {}", secs * unit))
                .collect();
            let sql = format!("UPDATE {table} SET {}", set.join(", "));
            rows += self.execute(&sql).await.with_context(|| sql.clone())?;
        }
        if let Db::Sqlite(p) = self {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(p)
                .await
                .context("checkpointing the WAL")?;
        }
        Ok(rows)
    }

    async fn execute(&self, sql: &str) -> Result<u64> {
        Ok(match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await?.rows_affected(),
        })
    }

    /// How many rows `table` has.
    pub async fn count(&self, table: &str) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        Ok(match self {
            Db::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await?,
            Db::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await?,
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}
