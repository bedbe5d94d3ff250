-- Schema 5: a token's expiry and issuer (tokens issued before it never expire).
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN issued_by TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS tokens_account ON tokens(account_id);
