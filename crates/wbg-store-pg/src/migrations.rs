//! Versioned schema migrations, embedded in the binary and applied in order, each in its own transaction with
//! its version recorded in `wbg_migrations`; `wbguard migrate` runs them, and so does a start-up that asks.

/// `(version, description, SQL)`, in order. A released migration is never edited: a change is a new one.
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
    "initial schema: vault, accounts, waybills, blind index, audit log partitioned by day, cases, privacy numbers",
    r#"
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
"#,
    ),
    (
        2,
        "accounts remember when their status last changed (a reinstatement that every node's engine can tell)",
        r#"
ALTER TABLE accounts ADD COLUMN status_since BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET status_since = created_at;
"#,
    ),
    (
        3,
        "audit entries are queued under numbers from a sequence and integrated into the log in batches, so no append waits on a global row lock",
        r#"
CREATE SEQUENCE audit_seq_alloc AS BIGINT MINVALUE 0 START WITH 0 CACHE 1;
SELECT setval('audit_seq_alloc', (SELECT size FROM audit_head WHERE id = 1), false);
-- Entries committed by writers and not yet integrated. A void row (a number whose writer never committed) is
-- kept after integration, so a writer that commits late finds its number taken and fails.
CREATE TABLE audit_queue (
    seq BIGINT PRIMARY KEY, entry BYTEA NOT NULL, void BOOLEAN NOT NULL DEFAULT false,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
"#,
    ),
    (
        4,
        "customer-service tickets registered by the carrier's ticketing system, and the waybills each concerns",
        r#"
CREATE TABLE tickets (
    id TEXT PRIMARY KEY, opened_at BIGINT NOT NULL, closed_at BIGINT, assignee TEXT,
    reads INT NOT NULL DEFAULT 0);
CREATE TABLE ticket_waybills (ticket TEXT NOT NULL REFERENCES tickets(id), no TEXT NOT NULL, PRIMARY KEY (ticket, no));
"#,
    ),
    (
        5,
        "tokens carry an expiry and how they were issued",
        r#"
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN issued_by TEXT NOT NULL DEFAULT '';
CREATE INDEX tokens_account ON tokens (account_id);
"#,
    ),
    (
        6,
        "when each account was last active, for dormancy",
        r#"
CREATE TABLE account_activity (account_id TEXT PRIMARY KEY, last_seen_at BIGINT NOT NULL);
-- Since when activity is recorded: an account never seen is idle from then at the latest.
INSERT INTO account_activity VALUES ('*', (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
"#,
    ),
    (
        7,
        "alerts carry their audit seqs and triage; the audit log gets a search index, filled from the entries already integrated",
        r#"
ALTER TABLE alerts ADD COLUMN audit_seqs BIGINT[] NOT NULL DEFAULT '{}';
ALTER TABLE alerts ADD COLUMN state TEXT NOT NULL DEFAULT 'new';
ALTER TABLE alerts ADD COLUMN assignee TEXT;
ALTER TABLE alerts ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
UPDATE alerts SET updated_at = at;
CREATE INDEX alerts_state ON alerts (state, id);
CREATE TABLE alert_history (
    alert_id BIGINT NOT NULL, at BIGINT NOT NULL, by TEXT NOT NULL, state TEXT NOT NULL, assignee TEXT,
    reason TEXT NOT NULL, note TEXT, audit_seq BIGINT NOT NULL, id BIGSERIAL);
CREATE INDEX alert_history_alert ON alert_history (alert_id, at, id);
-- What a search filters on, one row per integrated entry (written by the integrator in the same transaction).
CREATE TABLE audit_index (
    seq BIGINT PRIMARY KEY, time BIGINT NOT NULL, account TEXT NOT NULL, waybill TEXT, action TEXT NOT NULL,
    decision TEXT NOT NULL);
INSERT INTO audit_index (seq, time, account, waybill, action, decision)
    SELECT seq, (e->>'time')::bigint, e->>'account', e->>'waybill', e->>'action', e->>'decision'
    FROM (SELECT seq, convert_from(entry, 'UTF8')::jsonb AS e FROM audit_entries) x;
CREATE INDEX audit_index_account ON audit_index (account, time, seq);
CREATE INDEX audit_index_waybill ON audit_index (waybill, time, seq) WHERE waybill IS NOT NULL;
CREATE INDEX audit_index_action ON audit_index (action, time, seq);
CREATE INDEX audit_index_time ON audit_index (time, seq);
CREATE INDEX audit_index_denied ON audit_index (time, seq) WHERE decision = 'deny';
"#,
    ),
];
