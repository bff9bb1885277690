-- Console sessions are API tokens that expire: at `expires_at` (unix
-- seconds), or after `idle_timeout` seconds without use (counted from
-- `last_used_at`, else `created_at`). Both NULL for API tokens made to last.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE api_tokens ADD COLUMN idle_timeout BIGINT;
