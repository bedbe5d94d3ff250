//! The audit index of the embedded store: built by upkeep from the entries past the last one it holds (never on
//! a request), and searched together with the entries not yet indexed, so that a search sees every committed
//! entry.
//!
//! It lives in a database file of its own ([`DB_FILE`], attached as `search` to the maintenance and search
//! connections): SQLite has one writer per file, and in the store's file each chunk of index inserts held the
//! write lock that the store thread's group commit needs, so every request waited behind it (measured: reads
//! 20,000/s at p99 10–21 ms with the index beside the log, 26,700–27,000/s at p99 5–10 ms with indexing off).
//! The index is derived data: a store whose file held it before drops that copy and builds this one again.
use crate::recent::Recent;
use crate::SqliteStore;
use rusqlite::{params, Connection};
use std::path::Path;
use wbg_audit::{AuditEntry, Committed, EntryHead, StoredEntry};
use wbg_store::{
    count_hour, hour_counts, AuditCursor, AuditPage, AuditQuery, AuditSearch, HourCount, IndexRow,
    SqlArg, StoreError, HOUR_MS,
};

/// The index's database file, beside the store's.
pub const DB_FILE: &str = "wbguard-search.db";

const SCHEMA: &str = r#"
-- What a search filters on, one row per audit entry; built by upkeep behind the log.
CREATE TABLE IF NOT EXISTS search.audit_index (
    seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, account TEXT NOT NULL, waybill TEXT,
    action TEXT NOT NULL, decision TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS search.audit_index_account ON audit_index(account, time, seq);
CREATE INDEX IF NOT EXISTS search.audit_index_waybill ON audit_index(waybill, time, seq) WHERE waybill IS NOT NULL;
CREATE INDEX IF NOT EXISTS search.audit_index_action ON audit_index(action, time, seq);
CREATE INDEX IF NOT EXISTS search.audit_index_time ON audit_index(time, seq);
CREATE INDEX IF NOT EXISTS search.audit_index_denied ON audit_index(time, seq) WHERE decision = 'deny';
"#;

/// Attaches the index's file in `dir` to `conn` as `search` (creating it if needed).
pub(super) fn attach(conn: &Connection, dir: &Path) -> Result<(), StoreError> {
    let file = dir.join(DB_FILE);
    let file = file
        .to_str()
        .ok_or_else(|| StoreError::Db(format!("{} is not a UTF-8 path", file.display()).into()))?;
    conn.execute("ATTACH DATABASE ?1 AS search", params![file])?;
    conn.pragma_update(Some("search"), "journal_mode", "WAL")?;
    conn.pragma_update(Some("search"), "synchronous", "NORMAL")?;
    // `cache_size` is a pragma of each attached file: left alone, the index got SQLite's default 2 MB, fewer pages
    // than the leaves one transaction of `CHUNK` entries changes (one per active account and waybill, in each
    // B-tree), which SQLite would spill to the file before the commit and read back.
    conn.pragma_update(Some("search"), "cache_size", crate::PAGE_CACHE_KIB)?;
    conn.execute_batch(SCHEMA)?;
    Ok(())
}

/// How far out of order entries' times may be against their seqs (several threads, and nodes of a shared store,
/// stamp entries before the log orders them): what a scan of the tail allows for before it stops early.
const TAIL_CLOCK_SLACK_MS: i64 = 5 * 60_000;

/// Entries indexed per transaction: what a node doing 10,000 audited operations a second adds to the log between
/// two upkeep ticks, so that upkeep writes each index leaf it touched once a tick rather than once per few hundred
/// entries (a commit writes every page it changed; inserts by account and by waybill land on a different leaf
/// each). The index has a file of its own, so its transaction never holds up the store's group commit.
const CHUNK: usize = 10_000;

/// Unindexed entries a search reads past the index at most; beyond, it answers `Unavailable` (only while the
/// index of an upgraded store is first built: upkeep indexes every second).
pub(super) const MAX_TAIL: u64 = 200_000;

/// The first seq the index does not hold.
fn indexed_to(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM search.audit_index")?
        .query_row([], |r| r.get::<_, i64>(0))? as u64)
}

/// What the index keeps of a stored entry, borrowed from its bytes.
fn head(seq: i64, bytes: &[u8]) -> Result<EntryHead<'_>, StoreError> {
    AuditEntry::head(bytes).map_err(|e| unparsable(seq, e))
}

/// What the index keeps of a committed entry, borrowed from it.
fn committed_head(entry: &Committed) -> Result<EntryHead<'_>, StoreError> {
    entry.head().map_err(|e| unparsable(entry.seq(), e))
}

fn unparsable(seq: impl std::fmt::Display, e: serde_json::Error) -> StoreError {
    StoreError::corrupt_because(format!("audit entry {seq} does not parse"), e)
}

/// Indexes the entries past the index, up to `budget` of them; returns how many it indexed. Each chunk is read
/// (from `recent` while it holds them, decoded already) and decoded before the index's write lock is taken, and
/// the lock is let go for a moment after each, so that another handle on the directory indexing too waits behind
/// one chunk's inserts at most.
pub(super) fn index(
    conn: &mut Connection,
    recent: &Recent,
    budget: usize,
) -> Result<usize, StoreError> {
    let mut done = 0;
    while done < budget {
        let from = indexed_to(conn)?;
        let entries = match recent.since(from, CHUNK) {
            Some(held) => held,
            None => conn
                .prepare_cached(
                    "SELECT seq, entry FROM audit_entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
                )?
                .query_map(params![from as i64, CHUNK as i64], |r| {
                    Ok(Committed::Stored(StoredEntry {
                        seq: r.get::<_, i64>(0)? as u64,
                        bytes: r.get(1)?,
                        recorded_leaf: None,
                    }))
                })?
                .collect::<Result<_, _>>()?,
        };
        let rows = entries
            .iter()
            .map(committed_head)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let n = rows.len();
        // Deferred: the first insert takes the write lock of the index's file alone (an IMMEDIATE transaction
        // would take every attached file's, the store's included).
        let tx = conn.transaction()?;
        {
            // OR IGNORE: another handle on the same directory may have indexed some of them meanwhile.
            let mut ins = tx.prepare_cached(
                "INSERT OR IGNORE INTO search.audit_index (seq, time, account, waybill, action, decision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in &rows {
                ins.execute(params![
                    r.seq as i64,
                    r.time,
                    r.account.as_ref(),
                    r.waybill.as_deref(),
                    r.action.as_ref(),
                    r.decision.as_ref()
                ])?;
            }
        }
        tx.commit()?;
        done += n;
        if n < CHUNK {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(done)
}

/// One page from the index alone.
fn from_index(conn: &Connection, q: &AuditQuery, n: usize) -> Result<Vec<(u64, i64)>, StoreError> {
    let (filter, args) = q.sql_filter("", |i| format!("?{i}"));
    let sql = format!(
        "SELECT seq, time FROM search.audit_index WHERE true{filter} ORDER BY time DESC, seq DESC LIMIT ?{}",
        args.len() + 1
    );
    let mut params: Vec<rusqlite::types::Value> = args
        .into_iter()
        .map(|a| match a {
            SqlArg::Text(t) => rusqlite::types::Value::Text(t),
            SqlArg::Long(v) => rusqlite::types::Value::Integer(v),
        })
        .collect();
    params.push(rusqlite::types::Value::Integer(n as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// One page over the index and the entries past it, read in one snapshot.
pub(super) fn search(conn: &mut Connection, q: &AuditQuery) -> Result<AuditPage, StoreError> {
    let n = q.page();
    let tx = conn.transaction()?;
    let indexed = indexed_to(&tx)?;
    let size = crate::size_in(&tx)?;
    if size.saturating_sub(indexed) > MAX_TAIL {
        return Err(StoreError::Unavailable(format!(
            "the audit index is being built ({} of {size} entries indexed); try again shortly",
            indexed
        )));
    }
    // The tail, newest entry first: its best `n + 1` matches, then the index's best `n + 1`. Entries' times
    // follow their seqs to within TAIL_CLOCK_SLACK_MS, so the scan stops once an entry that much older than the
    // window's start, or than the worst of `n + 1` matches already held, says no earlier entry can belong.
    let mut hits: Vec<(i64, u64)> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, entry FROM audit_entries WHERE seq >= ?1 ORDER BY seq DESC",
        )?;
        let mut rows = stmt.query(params![indexed as i64])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let bytes = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let row = IndexRow::of_head(head(seq, bytes)?);
            let horizon = row.time.saturating_add(TAIL_CLOCK_SLACK_MS);
            if q.from.is_some_and(|f| horizon < f)
                || (hits.len() > n && hits.last().is_some_and(|worst| horizon < worst.0))
            {
                break;
            }
            if q.matches(&row) {
                hits.push((row.time, row.seq));
                hits.sort_unstable_by(|a, b| b.cmp(a));
                hits.truncate(n + 1);
            }
        }
    }
    hits.extend(
        from_index(&tx, q, n + 1)?
            .into_iter()
            .map(|(seq, time)| (time, seq)),
    );
    hits.sort_unstable_by(|a, b| b.cmp(a));
    let more = hits.len() > n;
    hits.truncate(n);
    let mut entries = Vec::with_capacity(hits.len());
    {
        let mut get = tx.prepare_cached("SELECT entry FROM audit_entries WHERE seq = ?1")?;
        for (_, seq) in &hits {
            entries.push((*seq, get.query_row(params![*seq as i64], |r| r.get(0))?));
        }
    }
    let next = match (more, hits.last()) {
        (true, Some((time, seq))) => Some(AuditCursor {
            time: *time,
            seq: *seq,
        }),
        _ => None,
    };
    Ok(AuditPage { entries, next })
}

/// Hourly counts over the index and the entries past it, read in one snapshot.
pub(super) fn hourly(conn: &mut Connection, q: &AuditQuery) -> Result<Vec<HourCount>, StoreError> {
    let tx = conn.transaction()?;
    let indexed = indexed_to(&tx)?;
    let size = crate::size_in(&tx)?;
    if size.saturating_sub(indexed) > MAX_TAIL {
        return Err(StoreError::Unavailable(format!(
            "the audit index is being built ({indexed} of {size} entries indexed); try again shortly"
        )));
    }
    let mut counts = std::collections::BTreeMap::new();
    {
        let mut stmt = tx.prepare_cached("SELECT seq, entry FROM audit_entries WHERE seq >= ?1")?;
        let mut rows = stmt.query(params![indexed as i64])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let bytes = r.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let row = IndexRow::of_head(head(seq, bytes)?);
            if q.matches(&row) {
                count_hour(&mut counts, &row);
            }
        }
    }
    let plain = AuditQuery {
        before: None,
        ..q.clone()
    };
    let (filter, args) = plain.sql_filter("", |i| format!("?{i}"));
    let sql = format!(
        "SELECT (time / {HOUR_MS}) * {HOUR_MS} AS h, decision, COUNT(*) FROM search.audit_index WHERE true{filter} \
         GROUP BY h, decision"
    );
    let params: Vec<rusqlite::types::Value> = args
        .into_iter()
        .map(|a| match a {
            SqlArg::Text(t) => rusqlite::types::Value::Text(t),
            SqlArg::Long(v) => rusqlite::types::Value::Integer(v),
        })
        .collect();
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        let (hour, decision, n): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        *counts.entry((hour, decision)).or_default() += n as u64;
    }
    Ok(hour_counts(counts))
}

impl AuditSearch for SqliteStore {
    fn search_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let mut conn = self
            .search
            .lock()
            .map_err(|_| StoreError::Db("search lock poisoned".into()))?;
        search(&mut conn, q)
    }

    fn hourly_audit(&self, q: &AuditQuery) -> Result<Vec<HourCount>, StoreError> {
        let mut conn = self
            .search
            .lock()
            .map_err(|_| StoreError::Db("search lock poisoned".into()))?;
        hourly(&mut conn, q)
    }
}
