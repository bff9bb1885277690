-- Devices that join a location's network raise 'new_device' alerts (issue
-- 16). SQLite rebuilds the table for this (migrations-sqlite/, same
-- version); PostgreSQL changes the constraint in place.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check
    CHECK (kind IN ('unauthorized_open', 'service_down', 'target_unreachable',
                    'agent_not_communicating', 'new_device'));
