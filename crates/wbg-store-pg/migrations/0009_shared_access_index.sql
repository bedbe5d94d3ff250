-- The forensics access index moves into the store, brought up to the integrated log by one node at a time (and
-- before every read of it): every node of one database reads it, where each node used to read the whole log and
-- keep a copy of its own. One row per (waybill, principal): the most it was shown (2 full,
-- 1 masked), its first access, its latest, its first full view, how many; and each principal's distinct waybills
-- shown in full and at all. Filled from the entries already integrated, by the rule of `AuditEntry::access`: an
-- allowed read with a full or masked view (the account), or an allowed export row (`export:<id>`, shown in full).
CREATE TABLE access (
    waybill TEXT NOT NULL, principal TEXT NOT NULL, view SMALLINT NOT NULL, first_seq BIGINT NOT NULL,
    first_at BIGINT NOT NULL, last_at BIGINT NOT NULL, full_seq BIGINT, reads BIGINT NOT NULL,
    PRIMARY KEY (waybill, principal));
CREATE TABLE access_principals (name TEXT PRIMARY KEY, shown_full BIGINT NOT NULL, shown_any BIGINT NOT NULL);
INSERT INTO access (waybill, principal, view, first_seq, first_at, last_at, full_seq, reads)
    SELECT waybill, principal, max(view), min(seq), (array_agg(time ORDER BY seq))[1], max(time),
           min(seq) FILTER (WHERE view = 2), count(*)
    FROM (SELECT seq, e->>'waybill' AS waybill, (e->>'time')::bigint AS time,
                 CASE WHEN e->>'action' = 'export' THEN 'export:' || substr(e->>'detail', 8) ELSE e->>'account' END
                     AS principal,
                 CASE WHEN e->>'action' = 'export' OR e->>'view' = 'full' THEN 2 ELSE 1 END AS view
          FROM (SELECT seq, convert_from(entry, 'UTF8')::jsonb AS e FROM audit_entries) x
          WHERE e->>'decision' = 'allow' AND e->>'waybill' IS NOT NULL
            AND ((e->>'action' = 'export' AND starts_with(e->>'detail', 'export='))
                 OR (e->>'action' = 'view' AND e->>'view' IN ('full', 'masked')))) a
    GROUP BY waybill, principal;
INSERT INTO access_principals (name, shown_full, shown_any)
    SELECT principal, count(*) FILTER (WHERE view = 2), count(*) FROM access GROUP BY principal;
-- Where the index has read the log to: every integrated entry so far.
CREATE TABLE access_head (id INT PRIMARY KEY CHECK (id = 1), through BIGINT NOT NULL);
INSERT INTO access_head (id, through) SELECT 1, size FROM audit_head;
