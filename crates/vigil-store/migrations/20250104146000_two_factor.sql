-- Two-factor login (TOTP) for console users. `totp_secret` is the
-- base32 secret authenticator apps share with the server; it is stored as
-- the other secrets the server must read back are stored today (in plain
-- text: encrypting them at rest is issue 14, point 11). `totp_pending`
-- holds a secret being enrolled until its first code confirms it.
-- `totp_last_step` is the last 30-second step whose code was accepted: a
-- code is accepted only for a later step, so none is used twice.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_pending TEXT;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- Single-use recovery codes, stored as SHA-256 hex (they are random, 50
-- bits: a fast hash is enough); `used_at` once spent.
CREATE TABLE recovery_codes (
    user_id     TEXT    NOT NULL,
    account_id  TEXT    NOT NULL,
    code_hash   TEXT    NOT NULL,
    used_at     BIGINT,
    PRIMARY KEY (user_id, code_hash),
    FOREIGN KEY (user_id, account_id) REFERENCES users (id, account_id) ON DELETE CASCADE
);

-- An owner may require two-factor login of every user of the account.
ALTER TABLE accounts ADD COLUMN require_totp BOOLEAN NOT NULL DEFAULT FALSE;
