-- alerts carry their audit seqs and triage; the audit log gets a search index, filled from the entries already integrated
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
