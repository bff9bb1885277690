-- How many ports a result found open (issue 17, trends): counted from its
-- ports when it is stored, so "open ports over time" is summed in the
-- database without reading every result's port list. NULL for results
-- stored before; trends start with the first counted result.
ALTER TABLE scan_results ADD COLUMN open_count BIGINT;
CREATE INDEX scan_results_account_received ON scan_results (account_id, received_at);
