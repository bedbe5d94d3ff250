-- audit entries are queued under numbers from a sequence and integrated into the log in batches, so no append waits on a global row lock
CREATE SEQUENCE audit_seq_alloc AS BIGINT MINVALUE 0 START WITH 0 CACHE 1;
SELECT setval('audit_seq_alloc', (SELECT size FROM audit_head WHERE id = 1), false);
-- Entries committed by writers and not yet integrated. A void row (a number whose writer never committed) is
-- kept after integration, so a writer that commits late finds its number taken and fails.
CREATE TABLE audit_queue (
    seq BIGINT PRIMARY KEY, entry BYTEA NOT NULL, void BOOLEAN NOT NULL DEFAULT false,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
