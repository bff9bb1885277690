-- The verdict on the identify reply of an endpoint (issue 14, point 10):
-- 'verified' (an agent of this server, proven by the MAC of the sweep's
-- challenge), 'unverified' (an agent of another server), 'forged' (a reply
-- in the name of an agent of this server without valid proof: counted as
-- no agent), 'removed' (a proven agent the account removed). NULL when no
-- reply was checked (no agent answered, or an agent known from the
-- database, and every endpoint stored before this column).
ALTER TABLE compliance_endpoints ADD COLUMN identify TEXT
    CHECK (identify IN ('verified', 'unverified', 'forged', 'removed'));
