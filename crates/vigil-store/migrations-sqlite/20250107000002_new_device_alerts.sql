-- Devices that join a location's network raise 'new_device' alerts (issue
-- 16). SQLite cannot change a CHECK constraint in place: src/schema.rs
-- rebuilds the alerts table (rebuild/20250107000002_alerts.sql) with
-- foreign keys off, which a migration cannot do inside the transaction
-- sqlx runs it in, just before this version is recorded. PostgreSQL
-- changes the constraint in place (migrations-postgres/, same version).
SELECT 1;
