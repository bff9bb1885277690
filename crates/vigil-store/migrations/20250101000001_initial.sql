-- Vigil store schema. Portable SQL: the same file runs on SQLite and PostgreSQL.
--
-- Conventions: ids are UUID text, timestamps are BIGINT unix seconds, JSON is TEXT.
-- Tenant-owned rows reference their parents through composite foreign keys
-- (id, account_id), so the database itself refuses a row that points at
-- another account's agent, user or contact.

CREATE TABLE accounts (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('member', 'organization')),
    created_at  BIGINT  NOT NULL
);

CREATE TABLE users (
    id             TEXT    PRIMARY KEY,
    account_id     TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email          TEXT    NOT NULL UNIQUE,
    password_hash  TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at     BIGINT  NOT NULL,
    UNIQUE (id, account_id)
);
CREATE INDEX users_account ON users (account_id);

CREATE TABLE api_tokens (
    id            TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    token_hash    TEXT    NOT NULL UNIQUE,
    created_at    BIGINT  NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    FOREIGN KEY (user_id, account_id) REFERENCES users (id, account_id) ON DELETE CASCADE
);
CREATE INDEX api_tokens_account ON api_tokens (account_id);

CREATE TABLE enrollment_tokens (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash  TEXT    NOT NULL UNIQUE,
    agent_name  TEXT    NOT NULL,
    plan        TEXT    NOT NULL CHECK (plan IN ('community', 'extended')),
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used_at     BIGINT,
    agent_id    TEXT
);
CREATE INDEX enrollment_tokens_account ON enrollment_tokens (account_id);

CREATE TABLE agents (
    id               TEXT    PRIMARY KEY,
    account_id       TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name             TEXT    NOT NULL,
    plan             TEXT    NOT NULL CHECK (plan IN ('community', 'extended')),
    credential_hash  TEXT    NOT NULL,
    enrolled_at      BIGINT  NOT NULL,
    last_seen_at     BIGINT,
    public_addr      TEXT,
    version          TEXT,
    os               TEXT,
    hostname         TEXT,
    removed_at       BIGINT,
    last_health      TEXT    NOT NULL DEFAULT 'communicating'
                     CHECK (last_health IN ('communicating', 'not_communicating', 'abandoned')),
    UNIQUE (id, account_id)
);
CREATE INDEX agents_account ON agents (account_id);

CREATE TABLE policies (
    agent_id     TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL,
    policy       TEXT    NOT NULL,
    updated_at   BIGINT  NOT NULL,
    next_run_at  BIGINT,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX policies_next_run ON policies (next_run_at);

CREATE TABLE scan_results (
    id           TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL,
    agent_id     TEXT    NOT NULL,
    upload_id    TEXT    NOT NULL,
    target       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT  NOT NULL,
    ports        TEXT    NOT NULL,
    received_at  BIGINT  NOT NULL,
    UNIQUE (agent_id, upload_id),
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX scan_results_agent_finished ON scan_results (agent_id, finished_at);

CREATE TABLE target_states (
    agent_id    TEXT    NOT NULL,
    account_id  TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, target),
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);

CREATE TABLE alerts (
    id           TEXT     PRIMARY KEY,
    account_id   TEXT     NOT NULL,
    agent_id     TEXT     NOT NULL,
    target       TEXT     NOT NULL,
    kind         TEXT     NOT NULL
                 CHECK (kind IN ('unauthorized_open', 'service_down', 'target_unreachable',
                                 'agent_not_communicating')),
    port         BIGINT   CHECK (port IS NULL OR (port >= 0 AND port <= 65535)),
    status       TEXT     NOT NULL CHECK (status IN ('open', 'resolved')),
    flapping     BOOLEAN  NOT NULL DEFAULT FALSE,
    raised_at    BIGINT   NOT NULL,
    resolved_at  BIGINT,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
-- At most one open alert per condition of a target.
CREATE UNIQUE INDEX alerts_one_open
    ON alerts (account_id, agent_id, target, kind, COALESCE(port, -1)) WHERE status = 'open';
CREATE INDEX alerts_account_raised ON alerts (account_id, raised_at);

CREATE TABLE contacts (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    channel     TEXT    NOT NULL
                CHECK (channel IN ('email', 'webhook', 'slack', 'teams', 'discord', 'ntfy')),
    address     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (id, account_id)
);
CREATE INDEX contacts_account ON contacts (account_id);

CREATE TABLE notification_rules (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    contact_id  TEXT    NOT NULL,
    agent_id    TEXT,
    events      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    FOREIGN KEY (contact_id, account_id) REFERENCES contacts (id, account_id) ON DELETE CASCADE,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
CREATE INDEX notification_rules_account ON notification_rules (account_id);

CREATE TABLE outbox (
    id               TEXT    PRIMARY KEY,
    account_id       TEXT    NOT NULL,
    contact_id       TEXT    NOT NULL,
    dedupe_key       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    -- NULL once the sender gave up.
    next_attempt_at  BIGINT,
    claimed_until    BIGINT,
    sent_at          BIGINT,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    UNIQUE (account_id, contact_id, dedupe_key),
    FOREIGN KEY (contact_id, account_id) REFERENCES contacts (id, account_id) ON DELETE CASCADE
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;
