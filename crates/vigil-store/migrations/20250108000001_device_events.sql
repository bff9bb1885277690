-- The history of each device of a location's inventory (issue 16): one
-- row per change a sweep saw (vigil_core::lan::InventoryChange), written
-- in the sweep's transaction. Portable SQL, run by both databases.
--
-- `seq` numbers a device's events in the order they were stored (the
-- newest is the highest); each device keeps its newest events only (the
-- store deletes older ones as it adds, see device_events.rs). `kind` is
-- the spelling of vigil_core::lan::DeviceEventKind (checked by the store,
-- not here, so a new kind needs no table rebuild); `detail` a JSON object,
-- e.g. a move's addresses {"from": [...], "to": [...]}.
CREATE TABLE device_events (
    device_id   TEXT    NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    account_id  TEXT    NOT NULL,
    agent_id    TEXT    NOT NULL,
    at          BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    PRIMARY KEY (device_id, seq),
    FOREIGN KEY (agent_id, account_id) REFERENCES agents (id, account_id) ON DELETE CASCADE
);
-- Deleting an agent (its account) finds its events.
CREATE INDEX device_events_agent ON device_events (agent_id, account_id);

-- A device's alerts are found by their target (device:<mac or address>).
CREATE INDEX alerts_agent_target ON alerts (agent_id, target, raised_at);
