-- Fair delivery between accounts (issue 14, point 8).
--
-- The outbox worker counts, per account and contact, what waits and what
-- is being sent, and claims per contact; the per-account cap on queued
-- notifications counts an account's pending rows. Both read only rows
-- not yet sent, by account and contact.
CREATE INDEX outbox_pending ON outbox (account_id, contact_id, next_attempt_at)
    WHERE sent_at IS NULL;
-- The rate limit on test notifications counts an account's recent rows.
CREATE INDEX outbox_recent ON outbox (account_id, created_at);
-- Set when a notification was given up unsent because its account had
-- too many queued (the oldest make room for the newest); its error says so.
ALTER TABLE outbox ADD COLUMN dropped_at BIGINT;
