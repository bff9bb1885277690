-- Alert acknowledgements and each alert's history. Portable SQL, as in the
-- initial schema.

-- Who said "I am on it" (the user's email as it was), when, and their note.
-- `last_event_seq` numbers the alert's history (`alert_events.seq`): every
-- change bumps it in the transaction that records the event, which also
-- serializes concurrent writers of one alert.
ALTER TABLE alerts ADD COLUMN acknowledged_at BIGINT;
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN ack_note TEXT;
ALTER TABLE alerts ADD COLUMN last_event_seq BIGINT NOT NULL DEFAULT 0;
-- The target of the composite foreign key below (id alone is the primary key).
CREATE UNIQUE INDEX alerts_id_account ON alerts (id, account_id);
-- Pages of one status, newest first.
CREATE INDEX alerts_account_status_raised ON alerts (account_id, status, raised_at);

-- What happened to an alert, in order (`seq` from 1). `kind` is one of:
--   raised, resolved, flapping_started, flapping_stopped;
--   acknowledged: `actor` (email) and `detail` (the note, if any);
--   notification_queued: `detail` is the notification's title;
--   notification_delivered, notification_failed: `attempt`, and for a
--   failure `error` and `retry_at` (NULL: given up).
-- Notification events keep the contact's name and channel as they were:
-- the contact may be renamed or deleted later.
CREATE TABLE alert_events (
    alert_id      TEXT    NOT NULL,
    account_id    TEXT    NOT NULL,
    seq           BIGINT  NOT NULL,
    occurred_at   BIGINT  NOT NULL,
    kind          TEXT    NOT NULL
                  CHECK (kind IN ('raised', 'resolved', 'flapping_started', 'flapping_stopped',
                                  'acknowledged', 'notification_queued',
                                  'notification_delivered', 'notification_failed')),
    actor         TEXT,
    detail        TEXT,
    contact_id    TEXT,
    contact_name  TEXT,
    channel       TEXT,
    attempt       BIGINT,
    error         TEXT,
    retry_at      BIGINT,
    PRIMARY KEY (alert_id, seq),
    FOREIGN KEY (alert_id, account_id) REFERENCES alerts (id, account_id) ON DELETE CASCADE
);

-- The history of alerts raised before this migration: raised, and resolved.
INSERT INTO alert_events (alert_id, account_id, seq, occurred_at, kind)
    SELECT id, account_id, 1, raised_at, 'raised' FROM alerts;
INSERT INTO alert_events (alert_id, account_id, seq, occurred_at, kind)
    SELECT id, account_id, 2, resolved_at, 'resolved' FROM alerts
    WHERE status = 'resolved' AND resolved_at IS NOT NULL;
UPDATE alerts SET last_event_seq =
    CASE WHEN status = 'resolved' AND resolved_at IS NOT NULL THEN 2 ELSE 1 END;

-- The alert a notification is about (NULL for other notifications), so
-- deliveries land in the alert's history.
ALTER TABLE outbox ADD COLUMN alert_id TEXT REFERENCES alerts (id) ON DELETE SET NULL;
CREATE INDEX outbox_alert ON outbox (alert_id);
