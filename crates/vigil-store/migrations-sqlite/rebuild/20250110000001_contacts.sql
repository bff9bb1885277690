-- Run by crates/vigil-store/src/schema.rs (foreign keys off, one
-- transaction): contacts without the list of channels in the CHECK of its
-- channel (the registry in vigil-notify is the list).
CREATE TABLE contacts_v2 (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    channel     TEXT    NOT NULL CHECK (channel <> ''),
    address     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    UNIQUE (id, account_id)
);
INSERT INTO contacts_v2 (id, account_id, name, channel, address, created_at)
    SELECT id, account_id, name, channel, address, created_at FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_v2 RENAME TO contacts;
CREATE INDEX contacts_account ON contacts (account_id);
