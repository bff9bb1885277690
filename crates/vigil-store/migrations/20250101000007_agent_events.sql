-- An agent's history: what changed, when and who did it. Portable SQL, as
-- in the initial schema.
--
-- `kind` is the spelling of vigil_core::history::AgentEventKind (checked
-- by the store, not here, so a new kind needs no table rebuild); `actor`
-- a user's email or 'system'; `detail` a short summary for people.
-- `seq` numbers an agent's events in the order they were recorded, to
-- order events of the same second (concurrent records may share one).
CREATE TABLE agent_events (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL,
    agent_id    TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    at          BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
-- Pages newest first; the next `seq` of an agent.
CREATE INDEX agent_events_agent_at ON agent_events (agent_id, at, seq);
CREATE INDEX agent_events_agent_seq ON agent_events (agent_id, seq);

-- The reachability timeline reads one agent's alerts over a time window.
CREATE INDEX alerts_agent_raised ON alerts (agent_id, raised_at);
