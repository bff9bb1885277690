-- Why an alert is over (issue 17): `resolution` is the spelling of
-- vigil_core::Resolution ('cleared': the condition stopped;
-- 'policy_changed': the policy no longer makes it a problem, e.g. the open
-- port is now authorized; 'not_scanned': its port left the scan), checked
-- by the store, not here, so a new reason needs no table rebuild on SQLite;
-- `resolved_by` the email of the user whose change ended it, when one did.
-- Both NULL for open alerts and for alerts resolved before this version
-- (their reason was not recorded). Portable SQL, run by both databases.
ALTER TABLE alerts ADD COLUMN resolution TEXT;
ALTER TABLE alerts ADD COLUMN resolved_by TEXT;
