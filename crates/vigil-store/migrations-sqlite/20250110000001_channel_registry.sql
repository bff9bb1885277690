-- Notification channels are listed once, in vigil-notify's registry (issue
-- 17): the store checks a contact's channel against it in Rust, so the
-- column's CHECK no longer lists them. SQLite cannot change a CHECK
-- constraint in place: src/schema.rs rebuilds the contacts table
-- (rebuild/20250110000001_contacts.sql) with foreign keys off, just before
-- this version is recorded. PostgreSQL changes the constraint in place
-- (migrations-postgres/, same version).
SELECT 1;
