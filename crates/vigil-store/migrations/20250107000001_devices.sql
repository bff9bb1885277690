-- The location's whole network (issue 16): the devices a local-network
-- sweep found, per agent, and the latest sweep's report (interfaces,
-- networks swept and left out, the gateway's port forwards).
CREATE TABLE devices (
    id           TEXT     PRIMARY KEY,
    account_id   TEXT     NOT NULL,
    agent_id     TEXT     NOT NULL,
    -- Lower-case colon form; NULL for a device known by address only.
    mac          TEXT,
    vendor       TEXT,
    -- JSON array of the addresses of the latest sweep that saw it.
    addresses    TEXT     NOT NULL,
    -- The first of them, for sorting and search.
    ip           TEXT     NOT NULL,
    name         TEXT,
    name_source  TEXT,
    first_seen   BIGINT   NOT NULL,
    last_seen    BIGINT   NOT NULL,
    -- "22,80,443"; "" for none.
    open_ports   TEXT     NOT NULL,
    present      BOOLEAN  NOT NULL,
    -- What users decided: reviewed, its kind, its own authorized ports
    -- (NULL: its kind's), whether its disappearance alerts.
    approved     BOOLEAN  NOT NULL DEFAULT FALSE,
    kind         TEXT,
    authorized   TEXT,
    monitored    BOOLEAN  NOT NULL DEFAULT FALSE,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX devices_agent ON devices (agent_id, account_id);
CREATE UNIQUE INDEX devices_agent_mac ON devices (agent_id, mac);

CREATE TABLE network_sweeps (
    agent_id     TEXT     PRIMARY KEY,
    account_id   TEXT     NOT NULL,
    upload_id    TEXT     NOT NULL,
    task_id      TEXT     NOT NULL,
    started_at   BIGINT   NOT NULL,
    finished_at  BIGINT   NOT NULL,
    received_at  BIGINT   NOT NULL,
    -- JSON: interfaces, swept, skipped, gateway.
    report       TEXT     NOT NULL,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);

-- Upload ids of every network sweep stored, so a re-send is a duplicate.
CREATE TABLE network_uploads (
    agent_id     TEXT     NOT NULL,
    account_id   TEXT     NOT NULL,
    upload_id    TEXT     NOT NULL,
    received_at  BIGINT   NOT NULL,
    PRIMARY KEY (agent_id, upload_id),
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
