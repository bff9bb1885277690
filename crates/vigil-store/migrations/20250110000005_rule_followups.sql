-- Reminders and escalation of notification rules (issue 17): repeat an
-- open, unacknowledged alert's notice every N minutes, and notify more
-- contacts after N minutes (`escalation`: JSON of
-- [vigil_core::followup::EscalationStep], '[]' for none). Checked by the store.
ALTER TABLE notification_rules ADD COLUMN remind_every_minutes BIGINT;
ALTER TABLE notification_rules ADD COLUMN escalation TEXT NOT NULL DEFAULT '[]';
