-- Ports a result counts without listing them (issue 19): more than 25
-- filtered (or unreachable) ports are only counted, as nmap's "Not shown:
-- 65530 filtered tcp ports" does. A full sweep of an address that drops
-- everything used to store 65,535 "filtered" entries, about 2 MB, in every
-- result. NULL for results stored before, which listed them all.
ALTER TABLE scan_results ADD COLUMN filtered_count BIGINT;
ALTER TABLE scan_results ADD COLUMN unreachable_count BIGINT;

-- The outside-scan schedule of an account (issue 19): how many of the most
-- common ports every scan of an observed address probes, and over how many
-- hours the rest of the range is spread, a slice per run (0: the whole
-- range every run). No row: the defaults (1,000 and 24).
CREATE TABLE outside_schedules (
    account_id       TEXT   NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    top_ports        BIGINT NOT NULL,
    full_range_hours BIGINT NOT NULL
);

-- How many observed-address scans a policy's runs created: which slice of
-- the range the next one probes.
ALTER TABLE policies ADD COLUMN outside_runs BIGINT NOT NULL DEFAULT 0;
