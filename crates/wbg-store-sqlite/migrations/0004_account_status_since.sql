-- Schema 4: when an account's status last changed (a reinstatement the engine can tell).
ALTER TABLE accounts ADD COLUMN status_since INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET status_since = created_at;
