-- accounts remember when their status last changed (a reinstatement that every node's engine can tell)
ALTER TABLE accounts ADD COLUMN status_since BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET status_since = created_at;
