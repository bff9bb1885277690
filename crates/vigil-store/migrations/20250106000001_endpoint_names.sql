-- Compliance on real networks (issue 15): a status for addresses where no
-- machine seems to be ('no_host': silent now and in every earlier
-- assessment, no name, not in AD), and where an endpoint's name came from.
-- A CHECK constraint cannot be changed in place in SQLite, so the table is
-- rebuilt (portable SQL: both databases run it), rows and indexes as before.
CREATE TABLE compliance_endpoints_v2 (
    assessment_id  TEXT     NOT NULL,
    account_id     TEXT     NOT NULL,
    seq            BIGINT   NOT NULL,
    name           TEXT     NOT NULL,
    name_key       TEXT     NOT NULL,
    -- 'ad' (the computer object), 'dns' (PTR), 'netbios' (node status),
    -- 'agent' (the host name in its identify reply); NULL: the name is the
    -- address.
    name_source    TEXT     CHECK (name_source IN ('ad', 'dns', 'netbios', 'agent')),
    dns_name       TEXT,
    dns_key        TEXT,
    addrs          TEXT     NOT NULL,
    addr_lo        TEXT,
    addr_hi        TEXT,
    status         TEXT     NOT NULL
                   CHECK (status IN ('managed_here', 'managed_elsewhere', 'no_agent',
                                     'unreachable', 'unresolved_ad', 'no_host')),
    os             TEXT,
    container      TEXT,
    ad_guid        TEXT,
    agent_id       TEXT,
    server_id      TEXT,
    agent_version  TEXT,
    identify       TEXT     CHECK (identify IN ('verified', 'unverified', 'forged', 'removed')),
    last_seen      BIGINT,
    disabled       BOOLEAN  NOT NULL,
    PRIMARY KEY (assessment_id, seq),
    FOREIGN KEY (assessment_id, account_id)
        REFERENCES compliance_assessments (id, account_id) ON DELETE CASCADE
);
-- Names of AD computers came from AD; the others were their address or a
-- reverse-DNS name (the only other name an earlier version found).
INSERT INTO compliance_endpoints_v2 (assessment_id, account_id, seq, name, name_key,
        name_source, dns_name, dns_key, addrs, addr_lo, addr_hi, status, os, container,
        ad_guid, agent_id, server_id, agent_version, identify, last_seen, disabled)
    SELECT assessment_id, account_id, seq, name, name_key,
        CASE WHEN ad_guid IS NOT NULL THEN 'ad'
             WHEN addrs NOT LIKE '%"' || name || '"%' THEN 'dns' END,
        dns_name, dns_key, addrs, addr_lo, addr_hi, status, os, container,
        ad_guid, agent_id, server_id, agent_version, identify, last_seen, disabled
    FROM compliance_endpoints;
DROP TABLE compliance_endpoints;
ALTER TABLE compliance_endpoints_v2 RENAME TO compliance_endpoints;
CREATE INDEX compliance_endpoints_status ON compliance_endpoints (assessment_id, status);
CREATE INDEX compliance_endpoints_name ON compliance_endpoints (assessment_id, name_key);
CREATE INDEX compliance_endpoints_dns_name ON compliance_endpoints (assessment_id, dns_key);
