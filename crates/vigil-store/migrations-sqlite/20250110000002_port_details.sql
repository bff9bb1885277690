-- 'process_changed' alerts (issue 17 point 5; what listens on a port is
-- stored inside each result's JSON port list and needs no column). SQLite
-- cannot change a CHECK constraint in place: src/schema.rs rebuilds the
-- alerts table (rebuild/20250110000002_alerts.sql) with foreign keys off,
-- just before this version is recorded. PostgreSQL changes the constraint
-- in place (migrations-postgres/, same version).
SELECT 1;
