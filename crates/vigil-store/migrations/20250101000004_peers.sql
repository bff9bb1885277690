-- Moving agents between Vigil servers. Portable SQL, as in the initial schema.

-- On the destination: other Vigil servers an account trusts, with an API
-- token of that server, so it can ask them to hand their agents over.
-- `server_id` is what the peer's agents report in identify answers.
CREATE TABLE compliance_peers (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    api_url     TEXT    NOT NULL,
    -- Stored as given: encrypting secrets at rest is a later step.
    api_token   TEXT    NOT NULL,
    server_id   TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (account_id, server_id)
);

-- On the source: the latest move instruction of an agent, handed out with
-- its heartbeats while pending (`moved_at` NULL and not expired). When the
-- agent reports that it moved, `moved_at` / `moved_to` are set, the token
-- is cleared and the agent is removed.
CREATE TABLE agent_moves (
    agent_id          TEXT    PRIMARY KEY,
    account_id        TEXT    NOT NULL,
    server_url        TEXT    NOT NULL,
    pin               TEXT    NOT NULL,
    enrollment_token  TEXT    NOT NULL,
    requested_at      BIGINT  NOT NULL,
    expires_at        BIGINT  NOT NULL,
    moved_at          BIGINT,
    moved_to          TEXT,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
