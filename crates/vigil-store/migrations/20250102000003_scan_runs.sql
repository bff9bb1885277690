-- A due security-scan policy is held by the replica that claimed it until
-- `claimed_until`; that replica creates the run's scan tasks, then sets the
-- next run, which ends the claim and starts a new `run_id`. A replica that
-- dies holding it leaves `run_id` as it was, so the one that claims it
-- after the lease creates the tasks of the same run.
ALTER TABLE policies ADD COLUMN claimed_until BIGINT;
ALTER TABLE policies ADD COLUMN run_id TEXT;

-- The run a scheduled scan task belongs to: one task per agent, policy
-- target and run, however many replicas try. Tasks created outside the
-- schedule have none (NULLs never collide).
ALTER TABLE scan_tasks ADD COLUMN run_id TEXT;
CREATE UNIQUE INDEX scan_tasks_one_per_run ON scan_tasks (agent_id, target_key, run_id);
