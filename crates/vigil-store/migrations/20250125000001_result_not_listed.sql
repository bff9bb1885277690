-- Ports a result counts without listing them (issue 19): more than 25
-- filtered (or unreachable) ports are only counted, as nmap's "Not shown:
-- 65530 filtered tcp ports" does. A full sweep of an address that drops
-- everything used to store 65,535 "filtered" entries, about 2 MB, in every
-- result. NULL for results stored before, which listed them all.
ALTER TABLE scan_results ADD COLUMN filtered_count BIGINT;
ALTER TABLE scan_results ADD COLUMN unreachable_count BIGINT;
