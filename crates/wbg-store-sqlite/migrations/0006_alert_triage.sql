-- Schema 6: alerts carry their audit seqs and triage (their history is in the `alert_history` table).
ALTER TABLE alerts ADD COLUMN audit_seqs TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN state TEXT NOT NULL DEFAULT 'new';
ALTER TABLE alerts ADD COLUMN assignee TEXT;
ALTER TABLE alerts ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET updated_at = at;
