-- initial schema: vault, accounts, waybills, blind index, audit log partitioned by day, cases, privacy numbers
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE wrapped_keys (id TEXT PRIMARY KEY, wrapped BYTEA NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE shredded_keys (id TEXT PRIMARY KEY, at BIGINT NOT NULL);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, outlet TEXT, merchant TEXT,
    status TEXT NOT NULL, status_reason TEXT, created_at BIGINT NOT NULL);
CREATE TABLE tokens (
    hash BYTEA PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), created_at BIGINT NOT NULL);
CREATE TABLE waybills (
    no TEXT PRIMARY KEY, merchant TEXT NOT NULL, origin_outlet TEXT NOT NULL,
    destination_outlet TEXT NOT NULL, courier TEXT, status TEXT NOT NULL, created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, signed_at BIGINT, bucket BIGINT NOT NULL, sealed BYTEA NOT NULL);
CREATE INDEX waybills_merchant ON waybills (merchant, created_at);
CREATE INDEX waybills_bucket ON waybills (bucket);
CREATE TABLE waybill_events (
    id BIGSERIAL, no TEXT NOT NULL, at BIGINT NOT NULL, type TEXT NOT NULL, outlet TEXT NOT NULL,
    courier TEXT, actor TEXT NOT NULL);
CREATE INDEX waybill_events_no ON waybill_events (no, id);
CREATE TABLE blind_index (token BYTEA NOT NULL, no TEXT NOT NULL, party SMALLINT NOT NULL, kind SMALLINT NOT NULL);
CREATE INDEX blind_index_token ON blind_index (token);
CREATE INDEX blind_index_no ON blind_index (no);
-- The audit log's sequencer: one row, locked by every append, so that all guard nodes write one order.
CREATE TABLE audit_head (
    id INT PRIMARY KEY CHECK (id = 1), size BIGINT NOT NULL, frontier BYTEA NOT NULL, last_leaf BYTEA);
INSERT INTO audit_head (id, size, frontier) VALUES (1, 0, '\x');
-- Entries partitioned by the UTC day they were made; `nodes` holds the Merkle nodes the append completed,
-- level 0 (the leaf hash) first, as in the embedded store.
CREATE TABLE audit_entries (
    seq BIGINT NOT NULL, day DATE NOT NULL, entry BYTEA NOT NULL, nodes BYTEA NOT NULL,
    PRIMARY KEY (seq, day)) PARTITION BY RANGE (day);
CREATE TABLE audit_entries_default PARTITION OF audit_entries DEFAULT;
CREATE INDEX audit_entries_seq ON audit_entries (seq);
CREATE TABLE audit_checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, account TEXT NOT NULL, kind TEXT NOT NULL,
    severity TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX alerts_account ON alerts (account, at);
CREATE TABLE canaries (no TEXT PRIMARY KEY, principal TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE cases (
    kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (kind, id));
CREATE TABLE label_prints (no TEXT PRIMARY KEY, prints INT NOT NULL, last_at BIGINT NOT NULL);
CREATE TABLE privacy_numbers (
    number TEXT PRIMARY KEY, retired BOOLEAN NOT NULL DEFAULT false, waybill_no TEXT, courier TEXT,
    bound_at BIGINT);
CREATE INDEX privacy_numbers_waybill ON privacy_numbers (waybill_no);
CREATE TABLE privacy_waiting (waybill_no TEXT PRIMARY KEY, courier TEXT NOT NULL, since BIGINT NOT NULL);
