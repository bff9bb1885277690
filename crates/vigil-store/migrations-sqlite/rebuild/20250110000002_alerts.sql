-- Run by crates/vigil-store/src/schema.rs (foreign keys off, one
-- transaction): alerts with 'process_changed' in the CHECK of its kind
-- (and the columns added since 20250107000002).
CREATE TABLE alerts_v2 (
    id           TEXT     PRIMARY KEY,
    account_id   TEXT     NOT NULL,
    agent_id     TEXT     NOT NULL,
    target       TEXT     NOT NULL,
    kind         TEXT     NOT NULL
                 CHECK (kind IN ('unauthorized_open', 'service_down', 'target_unreachable',
                                 'agent_not_communicating', 'new_device',
                                 'process_changed')),
    port         BIGINT   CHECK (port IS NULL OR (port >= 0 AND port <= 65535)),
    status       TEXT     NOT NULL CHECK (status IN ('open', 'resolved')),
    flapping     BOOLEAN  NOT NULL DEFAULT FALSE,
    raised_at    BIGINT   NOT NULL,
    resolved_at  BIGINT,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    ack_note     TEXT,
    last_event_seq BIGINT NOT NULL DEFAULT 0,
    resolution   TEXT,
    resolved_by  TEXT,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
INSERT INTO alerts_v2 (id, account_id, agent_id, target, kind, port, status, flapping,
                       raised_at, resolved_at, acknowledged_at, acknowledged_by, ack_note,
                       last_event_seq, resolution, resolved_by)
    SELECT id, account_id, agent_id, target, kind, port, status, flapping,
           raised_at, resolved_at, acknowledged_at, acknowledged_by, ack_note, last_event_seq,
           resolution, resolved_by
    FROM alerts;
DROP TABLE alerts;
ALTER TABLE alerts_v2 RENAME TO alerts;
CREATE UNIQUE INDEX alerts_one_open
    ON alerts (account_id, agent_id, target, kind, COALESCE(port, -1)) WHERE status = 'open';
CREATE INDEX alerts_account_raised ON alerts (account_id, raised_at);
CREATE UNIQUE INDEX alerts_id_account ON alerts (id, account_id);
CREATE INDEX alerts_account_status_raised ON alerts (account_id, status, raised_at);
CREATE INDEX alerts_agent_raised ON alerts (agent_id, raised_at);
CREATE INDEX alerts_agent_target ON alerts (agent_id, target, raised_at);
