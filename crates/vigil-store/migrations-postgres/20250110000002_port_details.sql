-- What listens on an open port (issue 17 point 5) is stored inside each
-- result's JSON port list, so it needs no column. What it adds is a kind of
-- alert: 'process_changed' (an authorized port of the agent's host now
-- served by another program). SQLite rebuilds the table for this
-- (migrations-sqlite/, same version); PostgreSQL changes the constraint in place.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('unauthorized_open', 'service_down', 'target_unreachable',
                    'agent_not_communicating', 'new_device', 'process_changed'));
