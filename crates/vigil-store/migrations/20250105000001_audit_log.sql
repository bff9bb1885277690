-- The audit log: every change an account's users make, and their logins
-- (failed ones too), with who, when (milliseconds) and from where. No
-- secrets: `detail` is a small JSON object of names and values that are
-- shown anyway. Entries go when their account does.
CREATE TABLE audit_log (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    at_ms       BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    user_id     TEXT,
    source      TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    detail      TEXT
);
CREATE INDEX audit_log_account_at ON audit_log (account_id, at_ms, id);
