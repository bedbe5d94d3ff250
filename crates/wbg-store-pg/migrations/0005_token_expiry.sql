-- tokens carry an expiry and how they were issued
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN issued_by TEXT NOT NULL DEFAULT '';
CREATE INDEX tokens_account ON tokens (account_id);
