-- Maintenance windows and agent tags (issue 17). Portable SQL, run by both
-- databases.
--
-- An agent's tags: a JSON array of normalized tags
-- (vigil_core::maintenance::normalize_tags), e.g. ["office","paris"].
ALTER TABLE agents ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- `spec` is the window as the tenant saved it (JSON of
-- vigil_core::maintenance::Window, checked by the store). `open_start` is
-- the start of the occurrence the server last saw open (NULL when closed):
-- a change of it is a window starting or ending, told once.
CREATE TABLE maintenance_windows (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    spec        TEXT    NOT NULL,
    open_start  BIGINT,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT
);
CREATE INDEX maintenance_windows_account ON maintenance_windows (account_id);

-- Notices about an alert that were not sent because its agent was in
-- maintenance: `phase` is 'open' (raised in a window) or 'resolved' (ended
-- in one, after its opening was told). Once no window covers the agent,
-- what is still true is told and the row goes.
CREATE TABLE held_notices (
    alert_id    TEXT    PRIMARY KEY REFERENCES alerts (id) ON DELETE CASCADE,
    account_id  TEXT    NOT NULL,
    agent_id    TEXT    NOT NULL,
    phase       TEXT    NOT NULL,
    held_at     BIGINT  NOT NULL,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX held_notices_agent ON held_notices (agent_id, account_id);
