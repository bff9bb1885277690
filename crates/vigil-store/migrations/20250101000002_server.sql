-- What the server needs on top of the initial schema. Portable SQL, as there.

-- Facts about this installation, e.g. its id ('server_id').
CREATE TABLE server_meta (
    key    TEXT  PRIMARY KEY,
    value  TEXT  NOT NULL
);

-- Scans the server asked an agent to run. `target_key` names the policy
-- target (PolicyTarget::key), `target` the address or host to scan, `ports`
-- the ports to probe; open while not completed and not expired.
CREATE TABLE scan_tasks (
    id            TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL,
    agent_id      TEXT    NOT NULL,
    target_key    TEXT    NOT NULL,
    target        TEXT    NOT NULL,
    ports         TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    completed_at  BIGINT,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX scan_tasks_agent_completed ON scan_tasks (agent_id, completed_at);

-- The address a result's target resolved to, and the task it answers (if any).
ALTER TABLE scan_results ADD COLUMN addr TEXT;
ALTER TABLE scan_results ADD COLUMN task_id TEXT;
