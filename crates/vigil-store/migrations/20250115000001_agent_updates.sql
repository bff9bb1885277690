-- Agent self-update (issue 18): which agents an owner rolled the server's
-- agent build out to, and how each update went; and per account whether
-- every agent gets the server's build as soon as it ships one.
CREATE TABLE agent_updates (
    agent_id    TEXT    NOT NULL PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Rolled out to this agent and not installed yet.
    requested   BOOLEAN NOT NULL DEFAULT FALSE,
    -- The version of the last offer and where it stands
    -- (offered, installing, updated, failed), with the agent's words.
    version     TEXT,
    state       TEXT,
    detail      TEXT,
    updated_at  BIGINT
);
CREATE INDEX agent_updates_account ON agent_updates (account_id);

CREATE TABLE update_settings (
    account_id  TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    auto_update BOOLEAN NOT NULL DEFAULT FALSE
);
