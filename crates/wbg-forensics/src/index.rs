//! The access index: who was shown which waybill, how much of it, and when — one row per (waybill, principal),
//! kept in its own SQLite file beside the data and brought up to date from the audit log, so that attribution
//! looks a leak's waybills up instead of scanning the log.
//!
//! The index is derived data: it is rebuilt from the audit log by deleting its file, and the evidence a report
//! cites is read back from the log itself with inclusion proofs, so a tampered index can hide a suspect but can
//! never invent one.
use crate::ForensicsError;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use wbg_audit::{AuditEntry, EntryAccess, EntryHead};

/// The index file's name inside a data directory.
pub const INDEX_FILE: &str = "forensics.db";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS principals (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    full INTEGER NOT NULL DEFAULT 0, seen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS access (
    waybill TEXT NOT NULL, principal INTEGER NOT NULL, view INTEGER NOT NULL,
    first_seq INTEGER NOT NULL, first_at INTEGER NOT NULL, last_at INTEGER NOT NULL,
    full_seq INTEGER, reads INTEGER NOT NULL,
    PRIMARY KEY (waybill, principal)) WITHOUT ROWID;
"#;

/// Records that every audit entry before `through` is indexed.
fn set_through(conn: &Connection, through: u64) -> Result<(), ForensicsError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('through', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![through as i64],
    )?;
    Ok(())
}

/// How much personal data a principal was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    /// The masked view.
    Masked = 1,
    /// Every field in clear.
    Full = 2,
}

impl Shown {
    fn from_code(c: i64) -> Shown {
        if c >= 2 {
            Shown::Full
        } else {
            Shown::Masked
        }
    }
}

/// One access to add: principal `principal` was shown waybill `waybill` in `shown` by audit entry `seq`.
#[derive(Debug, Clone)]
pub struct Access {
    /// Audit sequence number.
    pub seq: u64,
    /// When (ms).
    pub at: i64,
    /// Who: an account id, or `export:<id>` for an export file.
    pub principal: String,
    /// The waybill.
    pub waybill: String,
    /// How much.
    pub shown: Shown,
}

impl Access {
    /// The access an audit entry records, if it records one: an allowed read with a masked or full view, or a
    /// row of an export file (`action` `export`, `detail` `export=<id>`), whose principal is the file
    /// (`export:<id>`), not the account that downloaded it: several files of the same rows are told apart by it.
    pub fn from_entry(e: &AuditEntry) -> Option<Access> {
        Access::of(e.seq, e.time, e.access()?)
    }

    /// [`Access::from_entry`] from what the indexes read of a stored entry ([`AuditEntry::head`]).
    pub fn from_head(e: &EntryHead<'_>) -> Option<Access> {
        Access::of(e.seq, e.time, e.access()?)
    }

    fn of(seq: u64, at: i64, a: EntryAccess) -> Option<Access> {
        Some(Access {
            seq,
            at,
            principal: a.principal,
            waybill: a.waybill,
            shown: if a.full { Shown::Full } else { Shown::Masked },
        })
    }
}

/// One principal's access to one waybill.
#[derive(Debug, Clone, Copy)]
pub struct Posting {
    /// The principal's index id.
    pub principal: u32,
    /// The most it was shown.
    pub shown: Shown,
    /// Its first access's audit seq and time.
    pub first_seq: u64,
    /// Time of the first access (ms).
    pub first_at: i64,
    /// Time of the latest access (ms).
    pub last_at: i64,
    /// The first full view's audit seq, if it had one.
    pub full_seq: Option<u64>,
}

/// A principal and its totals: distinct waybills shown in full and at all.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// Account id, or `export:<id>`.
    pub name: String,
    /// Distinct waybills shown in full.
    pub full: u64,
    /// Distinct waybills shown masked or full.
    pub seen: u64,
}

/// Where [`crate::rank`] finds who was shown a waybill: the guard's own [`AccessIndex`] beside an embedded store,
/// or a [`SharedPostings`] read from a store that keeps the index itself.
pub trait Postings {
    /// Every principal's access to `waybill`.
    fn postings(&self, waybill: &str) -> Result<Vec<Posting>, ForensicsError>;
    /// A principal by the id its postings carry.
    fn principal(&self, id: u32) -> Option<&Principal>;
}

impl Postings for AccessIndex {
    fn postings(&self, waybill: &str) -> Result<Vec<Posting>, ForensicsError> {
        AccessIndex::postings(self, waybill)
    }

    fn principal(&self, id: u32) -> Option<&Principal> {
        AccessIndex::principal(self, id)
    }
}

/// The postings of some waybills, read from a store's own access index ([`wbg_store::SharedAccess`]): the
/// principals are numbered in order of their first access among these rows.
#[derive(Debug, Default)]
pub struct SharedPostings {
    by_waybill: HashMap<String, Vec<Posting>>,
    principals: Vec<Principal>,
}

impl SharedPostings {
    /// The postings of `shared`'s rows; a principal the store gave no totals for counts as shown nothing else.
    pub fn new(shared: wbg_store::SharedAccess) -> SharedPostings {
        let mut rows = shared.rows;
        rows.sort_by(|a, b| (a.first_seq, &a.principal).cmp(&(b.first_seq, &b.principal)));
        let totals: HashMap<String, (u64, u64)> = shared
            .principals
            .into_iter()
            .map(|p| (p.name, (p.full, p.seen)))
            .collect();
        let mut ids: HashMap<String, u32> = HashMap::new();
        let mut out = SharedPostings::default();
        for r in rows {
            let id = match ids.get(&r.principal) {
                Some(id) => *id,
                None => {
                    let id = out.principals.len() as u32;
                    let (full, seen) = totals.get(&r.principal).copied().unwrap_or_default();
                    out.principals.push(Principal {
                        name: r.principal.clone(),
                        full,
                        seen,
                    });
                    ids.insert(r.principal, id);
                    id
                }
            };
            out.by_waybill.entry(r.waybill).or_default().push(Posting {
                principal: id,
                shown: if r.full { Shown::Full } else { Shown::Masked },
                first_seq: r.first_seq,
                first_at: r.first_at,
                last_at: r.last_at,
                full_seq: r.full_seq,
            });
        }
        out
    }
}

impl Postings for SharedPostings {
    fn postings(&self, waybill: &str) -> Result<Vec<Posting>, ForensicsError> {
        Ok(self.by_waybill.get(waybill).cloned().unwrap_or_default())
    }

    fn principal(&self, id: u32) -> Option<&Principal> {
        self.principals.get(id as usize)
    }
}

/// The audit seq the file's next catch-up starts from (every entry before it is indexed).
fn through_in(conn: &Connection) -> Result<u64, ForensicsError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = 'through'", [], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .unwrap_or(0) as u64)
}

/// Every principal, by name and by id, as the file has them.
fn read_principals(
    conn: &Connection,
) -> Result<(HashMap<String, u32>, Vec<Principal>), ForensicsError> {
    let mut stmt = conn.prepare("SELECT id, name, full, seen FROM principals ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let (mut ids, mut principals) = (HashMap::new(), Vec::new());
    for row in rows {
        let (id, name, full, seen) = row?;
        if id as usize != principals.len() {
            return Err(ForensicsError::Index("principal ids are not dense".into()));
        }
        ids.insert(name.clone(), id as u32);
        principals.push(Principal {
            name,
            full: full as u64,
            seen: seen as u64,
        });
    }
    Ok((ids, principals))
}

/// The access index over one data directory.
pub struct AccessIndex {
    conn: Connection,
    ids: HashMap<String, u32>,
    principals: Vec<Principal>,
    /// Where this handle last saw the index stand: another handle moved it on if the file says otherwise.
    through: u64,
}

impl std::fmt::Debug for AccessIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessIndex")
            .field("principals", &self.principals.len())
            .finish_non_exhaustive()
    }
}

impl AccessIndex {
    /// Opens (or creates) the index file at `path`.
    pub fn open(path: &Path) -> Result<AccessIndex, ForensicsError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -262_144)?;
        conn.execute_batch(SCHEMA)?;
        let mut index = AccessIndex {
            conn,
            ids: HashMap::new(),
            principals: Vec::new(),
            through: 0,
        };
        index.load_principals()?;
        Ok(index)
    }

    /// Opens the index of data directory `dir`.
    pub fn open_in(dir: &Path) -> Result<AccessIndex, ForensicsError> {
        AccessIndex::open(&dir.join(INDEX_FILE))
    }

    fn load_principals(&mut self) -> Result<(), ForensicsError> {
        (self.ids, self.principals) = read_principals(&self.conn)?;
        self.through = self.indexed_through()?;
        Ok(())
    }

    /// The audit seq the next catch-up starts from (every entry before it is indexed).
    pub fn indexed_through(&self) -> Result<u64, ForensicsError> {
        through_in(&self.conn)
    }

    /// Indexes the audit entries appended since the last catch-up (at most `max` of them, when given), `BATCH`
    /// at a time, each batch with its new starting point in one transaction. `progress(done, total)` is told
    /// after each batch. Returns the number of entries read.
    pub fn catch_up(
        &mut self,
        store: &dyn wbg_store::Store,
        max: Option<u64>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ForensicsError> {
        const BATCH: usize = 20_000;
        let start = self.indexed_through()?;
        let mut end = store.audit_size()?;
        if let Some(max) = max {
            end = end.min(start.saturating_add(max));
        }
        let mut from = start;
        while from < end {
            let want = BATCH.min(usize::try_from(end - from).unwrap_or(BATCH));
            let entries = store.committed_entries(from, want)?;
            let Some(last) = entries.last().map(|e| e.seq()) else {
                break;
            };
            let mut accesses = Vec::with_capacity(entries.len());
            for committed in &entries {
                let entry = committed.head().map_err(|source| ForensicsError::Entry {
                    seq: committed.seq(),
                    source,
                })?;
                accesses.extend(Access::from_head(&entry));
            }
            self.add(&accesses, Some(last + 1))?;
            from = last + 1;
            progress(from - start, end - start);
        }
        Ok(from - start)
    }

    /// Adds accesses in one transaction, and records `through` as the next seq to index when given. With
    /// `through`, accesses from entries another handle on the same file indexed meanwhile are left out, so that
    /// an entry is counted once.
    pub fn add(&mut self, accesses: &[Access], through: Option<u64>) -> Result<(), ForensicsError> {
        // Immediate: the starting point read below is still the file's when the rows are written.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let stands = through_in(&tx)?;
        if stands != self.through {
            // Another handle indexed meanwhile, and may have numbered new principals.
            (self.ids, self.principals) = read_principals(&tx)?;
        }
        let done = if through.is_some() { stands } else { 0 };
        let accesses = accesses.iter().filter(|a| a.seq >= done);
        let mut grown: HashMap<u32, (u64, u64)> = HashMap::new();
        {
            let mut new_principal =
                tx.prepare_cached("INSERT INTO principals (id, name) VALUES (?1, ?2)")?;
            let mut get =
                tx.prepare_cached("SELECT view FROM access WHERE waybill = ?1 AND principal = ?2")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO access (waybill, principal, view, first_seq, first_at, last_at, full_seq, reads) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, 1)",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE access SET view = max(view, ?3), last_at = max(last_at, ?4), \
                 full_seq = coalesce(full_seq, ?5), reads = reads + 1 WHERE waybill = ?1 AND principal = ?2",
            )?;
            for a in accesses {
                let id = match self.ids.get(&a.principal) {
                    Some(id) => *id,
                    None => {
                        let id = self.principals.len() as u32;
                        new_principal.execute(params![id, a.principal])?;
                        self.ids.insert(a.principal.clone(), id);
                        self.principals.push(Principal {
                            name: a.principal.clone(),
                            ..Principal::default()
                        });
                        id
                    }
                };
                let full_seq = (a.shown == Shown::Full).then_some(a.seq as i64);
                let had: Option<i64> = get
                    .query_row(params![a.waybill, id], |r| r.get(0))
                    .optional()?;
                let g = grown.entry(id).or_default();
                match had {
                    None => {
                        insert.execute(params![
                            a.waybill,
                            id,
                            a.shown as i64,
                            a.seq as i64,
                            a.at,
                            full_seq
                        ])?;
                        g.1 += 1;
                        if a.shown == Shown::Full {
                            g.0 += 1;
                        }
                    }
                    Some(v) => {
                        update.execute(params![a.waybill, id, a.shown as i64, a.at, full_seq])?;
                        if a.shown == Shown::Full && Shown::from_code(v) != Shown::Full {
                            g.0 += 1;
                        }
                    }
                }
            }
            let mut bump = tx.prepare_cached(
                "UPDATE principals SET full = full + ?2, seen = seen + ?3 WHERE id = ?1",
            )?;
            for (id, (full, seen)) in &grown {
                bump.execute(params![id, *full as i64, *seen as i64])?;
            }
            if let Some(t) = through {
                set_through(&tx, t.max(done))?;
            }
        }
        tx.commit()?;
        self.through = through.map_or(stands, |t| t.max(done));
        for (id, (full, seen)) in grown {
            if let Some(p) = self.principals.get_mut(id as usize) {
                p.full += full;
                p.seen += seen;
            }
        }
        Ok(())
    }

    /// Every principal's access to `waybill`.
    pub fn postings(&self, waybill: &str) -> Result<Vec<Posting>, ForensicsError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT principal, view, first_seq, first_at, last_at, full_seq FROM access WHERE waybill = ?1",
        )?;
        let rows = stmt.query_map(params![waybill], |r| {
            Ok(Posting {
                principal: r.get::<_, i64>(0)? as u32,
                shown: Shown::from_code(r.get(1)?),
                first_seq: r.get::<_, i64>(2)? as u64,
                first_at: r.get(3)?,
                last_at: r.get(4)?,
                full_seq: r.get::<_, Option<i64>>(5)?.map(|s| s as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A principal by index id.
    pub fn principal(&self, id: u32) -> Option<&Principal> {
        self.principals.get(id as usize)
    }

    /// Number of principals known.
    pub fn principal_count(&self) -> usize {
        self.principals.len()
    }

    /// Rows in the index (distinct waybill-principal pairs); a full count, for reports and benches.
    pub fn rows(&self) -> Result<u64, ForensicsError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM access", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// Loads rows already sorted by `(waybill, principal)` with no repeats straight into an empty index: the
    /// bulk path for building a large index at once (benchmarks, a rebuild). The ids the rows use are named
    /// afterwards with [`AccessIndex::set_principals`], once their totals are known; until then the index
    /// counts as covering nothing.
    pub fn bulk_load(
        &mut self,
        rows: &mut dyn Iterator<Item = (String, u32, Posting)>,
    ) -> Result<u64, ForensicsError> {
        if !self.principals.is_empty() {
            return Err(ForensicsError::Index(
                "bulk load needs an empty index".into(),
            ));
        }
        let mut n = 0u64;
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            let tx = self.conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO access (waybill, principal, view, first_seq, first_at, last_at, full_seq, reads) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
                )?;
                for (waybill, id, p) in rows.by_ref().take(1_000_000) {
                    insert.execute(params![
                        waybill,
                        id,
                        p.shown as i64,
                        p.first_seq as i64,
                        p.first_at,
                        p.last_at,
                        p.full_seq.map(|s| s as i64)
                    ])?;
                    n += 1;
                }
            }
            tx.commit()?;
        }
        Ok(n)
    }

    /// Completes a bulk load: id `i` is `principals[i]`, with its totals (replacing any names held), and every
    /// audit entry before `through` is indexed.
    pub fn set_principals(
        &mut self,
        principals: &[Principal],
        through: u64,
    ) -> Result<(), ForensicsError> {
        let tx = self.conn.transaction()?;
        set_through(&tx, through)?;
        tx.execute("DELETE FROM principals", [])?;
        for (id, p) in principals.iter().enumerate() {
            tx.execute(
                "INSERT INTO principals (id, name, full, seen) VALUES (?1, ?2, ?3, ?4)",
                params![id as i64, p.name, p.full as i64, p.seen as i64],
            )?;
        }
        tx.commit()?;
        self.load_principals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wbg_store::prelude::*;

    fn access(seq: u64, who: &str, wb: &str, shown: Shown) -> Access {
        Access {
            seq,
            at: seq as i64 * 1000,
            principal: who.into(),
            waybill: wb.into(),
            shown,
        }
    }

    #[test]
    fn repeated_reads_fold_into_one_row_and_totals_count_distinct_waybills() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = AccessIndex::open_in(dir.path()).unwrap();
        ix.add(
            &[
                access(1, "C1", "W1", Shown::Masked),
                access(2, "C1", "W1", Shown::Full),
                access(3, "C1", "W1", Shown::Full),
                access(4, "C1", "W2", Shown::Masked),
                access(5, "S1", "W1", Shown::Masked),
            ],
            Some(6),
        )
        .unwrap();
        drop(ix);
        let ix = AccessIndex::open_in(dir.path()).unwrap();
        assert_eq!(ix.indexed_through().unwrap(), 6);
        let c1 = ix.principal(0).unwrap();
        assert_eq!((c1.name.as_str(), c1.full, c1.seen), ("C1", 1, 2));
        let mut p = ix.postings("W1").unwrap();
        p.sort_by_key(|p| p.principal);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].shown, Shown::Full);
        assert_eq!(
            (p[0].first_seq, p[0].full_seq, p[0].last_at),
            (1, Some(2), 3000)
        );
        assert_eq!(p[1].shown, Shown::Masked);
        assert_eq!(ix.rows().unwrap(), 3);
    }

    #[test]
    fn entries_another_handle_indexed_meanwhile_are_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AccessIndex::open_in(dir.path()).unwrap();
        let mut b = AccessIndex::open_in(dir.path()).unwrap();
        let first = [
            access(0, "C1", "W1", Shown::Masked),
            access(1, "C1", "W1", Shown::Full),
            access(2, "C1", "W2", Shown::Full),
        ];
        a.add(&first, Some(3)).unwrap();
        // `b` read the log from 0 before `a` committed: entries 0–2 again, then entry 3.
        let mut again = first.to_vec();
        again.push(access(3, "C1", "W3", Shown::Masked));
        b.add(&again, Some(4)).unwrap();
        let ix = AccessIndex::open_in(dir.path()).unwrap();
        assert_eq!(ix.indexed_through().unwrap(), 4);
        let c1 = ix.principal(0).unwrap();
        assert_eq!((c1.full, c1.seen), (2, 3));
        let w1 = ix.postings("W1").unwrap();
        assert_eq!((w1.len(), w1[0].first_seq, w1[0].full_seq), (1, 0, Some(1)));
        let reads: i64 = ix
            .conn
            .query_row("SELECT SUM(reads) FROM access", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reads, 4);
    }

    #[test]
    fn catch_up_reads_the_log_from_where_it_stopped_within_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = wbg_store_sqlite::SqliteStore::open(dir.path()).unwrap();
        for k in 0..5 {
            let mut e = AuditEntry::new(k, "C1", "view");
            e.waybill = Some(format!("W{k}"));
            e.view = Some("full".into());
            store.append_audit(e).unwrap();
        }
        store
            .append_audit(AuditEntry::new(9, "root", "account_create"))
            .unwrap();
        let mut ix = AccessIndex::open_in(dir.path()).unwrap();
        assert_eq!(ix.catch_up(&store, Some(2), &mut |_, _| {}).unwrap(), 2);
        assert_eq!(ix.indexed_through().unwrap(), 2);
        assert_eq!(ix.catch_up(&store, None, &mut |_, _| {}).unwrap(), 4);
        assert_eq!(ix.catch_up(&store, None, &mut |_, _| {}).unwrap(), 0);
        assert_eq!(ix.principal(0).map(|p| p.full), Some(5));
        assert_eq!(ix.rows().unwrap(), 5);
    }

    #[test]
    fn only_allowed_personal_views_are_accesses() {
        let mut e = AuditEntry::new(5, "C1", "view");
        e.waybill = Some("W1".into());
        e.view = Some("full".into());
        assert!(Access::from_entry(&e).is_some());
        e.view = Some("routing".into());
        assert!(Access::from_entry(&e).is_none());
        e.view = Some("masked".into());
        e.decision = "deny".into();
        assert!(Access::from_entry(&e).is_none());
        let mut i = AuditEntry::new(5, "I1", "ingest");
        i.waybill = Some("W1".into());
        assert!(Access::from_entry(&i).is_none());
    }

    #[test]
    fn an_export_row_is_an_access_by_the_file() {
        let mut e = AuditEntry::new(5, "U1", "export");
        e.waybill = Some("W1".into());
        e.detail = Some("export=E12ab".into());
        let a = Access::from_entry(&e).unwrap();
        assert_eq!(
            (a.principal.as_str(), a.shown),
            ("export:E12ab", Shown::Full)
        );
        e.detail = None;
        assert!(Access::from_entry(&e).is_none());
        e.detail = Some("export=E12ab".into());
        e.decision = "deny".into();
        assert!(Access::from_entry(&e).is_none());
    }
}
