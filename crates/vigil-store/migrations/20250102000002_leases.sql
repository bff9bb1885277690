-- Work several server replicas share through the database is claimed with
-- row leases. Scans the server runs itself (an agent's observed address)
-- are claimed by one replica until `claimed_until` (unix seconds); when it
-- dies, another one claims the task after that.
ALTER TABLE scan_tasks ADD COLUMN claimed_until BIGINT;
CREATE INDEX scan_tasks_server_side ON scan_tasks (target_key, completed_at);

-- A running compliance assessment is held by the replica running it until
-- `lease_until`, which that replica keeps moving; past it, another replica
-- ends the assessment as interrupted and runs it again.
ALTER TABLE compliance_assessments ADD COLUMN lease_until BIGINT;

-- Each write of a target's evaluation state bumps its version; a writer
-- that read an older version retries, so two replicas evaluating results
-- of one target at once do not lose each other's changes.
ALTER TABLE target_states ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
