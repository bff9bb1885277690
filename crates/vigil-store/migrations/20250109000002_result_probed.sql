-- What a scan probed (issue 17), beside the ports it keeps: a result
-- stores its open, filtered and unreachable ports but not the thousands of
-- closed ones, so their count is not what was swept. `probed_count` is the
-- number of ports the scan reported on, `probed_ports` the same set as a
-- port list ("1-65535"), NULL when too long to be worth showing. Both NULL
-- for results stored before this version. Portable SQL, run by both
-- databases.
ALTER TABLE scan_results ADD COLUMN probed_count BIGINT;
ALTER TABLE scan_results ADD COLUMN probed_ports TEXT;
