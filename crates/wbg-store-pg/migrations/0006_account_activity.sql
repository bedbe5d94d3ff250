-- when each account was last active, for dormancy
CREATE TABLE account_activity (account_id TEXT PRIMARY KEY, last_seen_at BIGINT NOT NULL);
-- Since when activity is recorded: an account never seen is idle from then at the latest.
INSERT INTO account_activity VALUES ('*', (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
