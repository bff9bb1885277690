-- Nothing grows forever (issue 18 point 6): the retention job prunes every
-- table that grows with time, oldest first, in small batches; these
-- indexes let each batch find its oldest rows without a table scan. The
-- rules are in crates/vigil-store/src/retention.rs.
CREATE INDEX scan_tasks_created ON scan_tasks (created_at);
CREATE INDEX network_uploads_received ON network_uploads (received_at);
CREATE INDEX outbox_created ON outbox (created_at);
-- The console lists a contact's newest deliveries, which retention keeps.
CREATE INDEX outbox_contact_created ON outbox (contact_id, created_at);
CREATE INDEX alerts_resolved ON alerts (resolved_at) WHERE status = 'resolved';
CREATE INDEX agent_events_at ON agent_events (at);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX devices_gone ON devices (last_seen) WHERE present = FALSE;
CREATE INDEX enrollment_tokens_expires ON enrollment_tokens (expires_at);

-- Agent push-install jobs (compliance "install the agent on machines
-- without one"), kept across restarts. A running job holds a lease its
-- server renews; a job whose lease ran out lost its server (stopped or
-- killed) and is ended as interrupted, with the reason on each host that
-- had not finished. The SSH key is never stored: an interrupted job cannot
-- be resumed, only started again.
CREATE TABLE install_jobs (
    id           TEXT    PRIMARY KEY,
    account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    state        TEXT    NOT NULL CHECK (state IN ('running', 'done', 'interrupted')),
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT,
    lease_until  BIGINT,
    UNIQUE (id, account_id)
);
CREATE INDEX install_jobs_account ON install_jobs (account_id, created_at);
CREATE INDEX install_jobs_running ON install_jobs (lease_until) WHERE state = 'running';
CREATE INDEX install_jobs_finished ON install_jobs (finished_at) WHERE state <> 'running';

-- One row per address of a job, in the order the request gave them.
CREATE TABLE install_job_hosts (
    job_id       TEXT    NOT NULL,
    account_id   TEXT    NOT NULL,
    seq          BIGINT  NOT NULL,
    address      TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'installed', 'failed')),
    message      TEXT,
    error        TEXT,
    agent_id     TEXT,
    finished_at  BIGINT,
    PRIMARY KEY (job_id, seq),
    FOREIGN KEY (job_id, account_id) REFERENCES install_jobs (id, account_id) ON DELETE CASCADE
);
