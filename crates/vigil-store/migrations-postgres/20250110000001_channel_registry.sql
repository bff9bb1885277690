-- Notification channels are listed once, in vigil-notify's registry (issue
-- 17): the store checks a contact's channel against it in Rust, so the
-- column's CHECK no longer lists them. SQLite rebuilds the table for this
-- (migrations-sqlite/, same version); PostgreSQL changes it in place.
ALTER TABLE contacts DROP CONSTRAINT contacts_channel_check;
ALTER TABLE contacts ADD CONSTRAINT contacts_channel_check CHECK (channel <> '');
