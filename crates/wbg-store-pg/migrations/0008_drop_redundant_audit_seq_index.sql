-- every lookup of an audit entry by number is served by the primary key (seq, day), whose leading column is seq; the separate index on seq only cost each integrated entry one more index insert
DROP INDEX IF EXISTS audit_entries_seq;
