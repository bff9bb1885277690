-- Deployment keys: reusable enrollment secrets for mass roll-outs (GPO,
-- MSI). One key enrolls many agents until it expires, is revoked or has
-- been used `max_uses` times (NULL: no limit). Only the SHA-256 of the
-- secret is kept, as for enrollment tokens. `use_count` is raised by the
-- same conditional UPDATE that admits an enrollment, so the limit holds
-- under concurrent enrollments.
CREATE TABLE deployment_keys (
    id            TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name          TEXT    NOT NULL,
    key_hash      TEXT    NOT NULL UNIQUE,
    plan          TEXT    NOT NULL CHECK (plan IN ('community', 'extended')),
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    max_uses      BIGINT  CHECK (max_uses IS NULL OR max_uses > 0),
    use_count     BIGINT  NOT NULL DEFAULT 0,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    UNIQUE (id, account_id)
);
CREATE INDEX deployment_keys_account ON deployment_keys (account_id);

-- One row per agent a key enrolled: when, from where, as which host.
CREATE TABLE deployment_key_uses (
    agent_id    TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    key_id      TEXT    NOT NULL,
    used_at     BIGINT  NOT NULL,
    peer_addr   TEXT,
    hostname    TEXT,
    FOREIGN KEY (key_id, account_id) REFERENCES deployment_keys (id, account_id) ON DELETE CASCADE,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX deployment_key_uses_key ON deployment_key_uses (key_id, used_at);
