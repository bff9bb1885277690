-- Compliance: finding the machines of a network that Vigil does not protect.
-- Portable SQL, as in the initial schema.

-- Per account: what an assessment covers, the AD bind password and the
-- schedule. `scope` is JSON of vigil_core::compliance::ComplianceScope (NULL
-- while only a schedule was saved), `schedule` JSON of ComplianceSchedule;
-- `next_run_at` is NULL while nothing is scheduled.
CREATE TABLE compliance_scopes (
    account_id   TEXT    PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    scope        TEXT,
    -- Stored as given: encrypting secrets at rest is a later step.
    ad_password  TEXT,
    schedule     TEXT,
    next_run_at  BIGINT,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX compliance_scopes_next_run ON compliance_scopes (next_run_at);

-- One run over the scope. `serial` numbers an account's assessments in the
-- order they started (it breaks ties of `started_at`). At most one runs.
CREATE TABLE compliance_assessments (
    id           TEXT     PRIMARY KEY,
    account_id   TEXT     NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    serial       BIGINT   NOT NULL,
    started_at   BIGINT   NOT NULL,
    finished_at  BIGINT,
    state        TEXT     NOT NULL CHECK (state IN ('running', 'done', 'cancelled', 'failed')),
    error        TEXT,
    total        BIGINT   NOT NULL CHECK (total >= 0),
    done         BIGINT   NOT NULL CHECK (done >= 0),
    on_demand    BOOLEAN  NOT NULL,
    trigger      TEXT     NOT NULL CHECK (trigger IN ('manual', 'schedule', 'scope_saved')),
    UNIQUE (id, account_id),
    UNIQUE (account_id, serial)
);
CREATE INDEX compliance_assessments_account_started
    ON compliance_assessments (account_id, started_at);
CREATE UNIQUE INDEX compliance_assessments_one_running
    ON compliance_assessments (account_id) WHERE state = 'running';

-- The machines an assessment found, in a stable order (`seq`). `addrs` is a
-- JSON array of address strings; `addr_lo` and `addr_hi` are the lowest and
-- highest of them as sortable text ('4' and 8 hex digits for IPv4, '6' and
-- 32 for IPv6), to narrow searches by range. `name_key` and `dns_key` are
-- the names lower-cased by the store (Unicode-aware, which SQLite's lower()
-- is not) for case-insensitive search and ordering.
CREATE TABLE compliance_endpoints (
    assessment_id  TEXT     NOT NULL,
    account_id     TEXT     NOT NULL,
    seq            BIGINT   NOT NULL,
    name           TEXT     NOT NULL,
    name_key       TEXT     NOT NULL,
    dns_name       TEXT,
    dns_key        TEXT,
    addrs          TEXT     NOT NULL,
    addr_lo        TEXT,
    addr_hi        TEXT,
    status         TEXT     NOT NULL
                   CHECK (status IN ('managed_here', 'managed_elsewhere', 'no_agent',
                                     'unreachable', 'unresolved_ad')),
    os             TEXT,
    container      TEXT,
    ad_guid        TEXT,
    agent_id       TEXT,
    server_id      TEXT,
    agent_version  TEXT,
    last_seen      BIGINT,
    disabled       BOOLEAN  NOT NULL,
    PRIMARY KEY (assessment_id, seq),
    FOREIGN KEY (assessment_id, account_id)
        REFERENCES compliance_assessments (id, account_id) ON DELETE CASCADE
);
CREATE INDEX compliance_endpoints_status ON compliance_endpoints (assessment_id, status);
CREATE INDEX compliance_endpoints_name ON compliance_endpoints (assessment_id, name_key);
CREATE INDEX compliance_endpoints_dns_name ON compliance_endpoints (assessment_id, dns_key);
