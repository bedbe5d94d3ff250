//! The embedded backend of `wbg-store`'s [`Store`]: one SQLite database in WAL mode.
//!
//! Why SQLite: it is one file with no server to run, its WAL mode gives readers that never block the writer,
//! a committed transaction survives the process being killed (it is in the OS page cache before `COMMIT`
//! returns; `synchronous = FULL` would extend that to power loss at some cost), and two processes (a server and
//! the CLI) can share a data directory safely. The crate builds its own copy of SQLite with `cc` alone.
#![deny(missing_docs)]

mod alerts;
mod blind;
mod credentials;
mod group;
mod numbers;
mod recent;
mod search;
mod work;

use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use wbg_audit::{AuditEntry, Committed, Hash, HeldHead, LogTail, StoredEntry};
use wbg_core::{
    Account, AccountId, AccountStatus, EventType, MerchantId, Millis, OutletId, WaybillMeta,
    WaybillNo, WaybillStatus,
};
use wbg_store::prelude::*;
use wbg_store::rows::AccountRow;
use wbg_store::{
    DbError, EventRecord, EventWrite, NewToken, ReadSnapshot, ScanSnapshot, SealedWaybill, Store,
    StoreError, Ticket,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wrapped_keys (
    id TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, outlet TEXT, merchant TEXT,
    status TEXT NOT NULL, status_reason TEXT, created_at INTEGER NOT NULL,
    status_since INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS tokens (
    hash BLOB PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), created_at INTEGER NOT NULL,
    expires_at INTEGER, issued_by TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_account ON tokens(account_id);
-- When each account was last active (dormancy); added within schema 5, so created where missing.
CREATE TABLE IF NOT EXISTS account_activity (
    account_id TEXT PRIMARY KEY, last_seen_at INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO account_activity (account_id, last_seen_at)
    VALUES ('*', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
CREATE TABLE IF NOT EXISTS waybills (
    no TEXT NOT NULL UNIQUE, merchant TEXT NOT NULL, origin_outlet TEXT NOT NULL,
    destination_outlet TEXT NOT NULL, courier TEXT, status TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, signed_at INTEGER, bucket INTEGER NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS waybill_events (
    no TEXT NOT NULL, at INTEGER NOT NULL, type TEXT NOT NULL, outlet TEXT NOT NULL, courier TEXT,
    actor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS waybill_events_no ON waybill_events(no);
-- `nodes` holds the Merkle nodes the append of this entry completed, level 0 (its leaf hash) first.
CREATE TABLE IF NOT EXISTS audit_entries (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL, nodes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, account TEXT NOT NULL, kind TEXT NOT NULL,
    severity TEXT NOT NULL, detail TEXT NOT NULL, audit_seqs TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'new', assignee TEXT, updated_at INTEGER NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS alerts_account ON alerts(account, at);
-- Canary waybills and the principal each was planted for.
CREATE TABLE IF NOT EXISTS canaries (
    no TEXT PRIMARY KEY, principal TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
-- Case files (exports, incidents): a JSON body per (kind, id), changed only by compare-and-set.
CREATE TABLE IF NOT EXISTS cases (
    kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)) WITHOUT ROWID;
-- How often each waybill's label was printed: a reprint says so on the label.
CREATE TABLE IF NOT EXISTS label_prints (
    no TEXT PRIMARY KEY, prints INTEGER NOT NULL, last_at INTEGER NOT NULL) WITHOUT ROWID;
-- Keys destroyed by retention: never to be made again under the same id.
CREATE TABLE IF NOT EXISTS shredded_keys (id TEXT PRIMARY KEY, at INTEGER NOT NULL) WITHOUT ROWID;
-- A merchant's orders by creation time, for exports.
CREATE INDEX IF NOT EXISTS waybills_merchant ON waybills(merchant, created_at);
"#;

/// The layout version written into `meta`; a store of another version is refused at open, not misread.
/// 2: the blind index as packed sorted runs (`blind_runs`). 3: data keys per bucket and field group
/// (`day:<bucket>:<group>`), so each group is shredded on its own. 6: alerts carry their audit seqs and triage.
const SCHEMA_VERSION: &str = "6";

/// The upgrades from one schema to the next, numbered SQL files in `migrations/` applied in order (a new store
/// is made at the current layout by each module's `SCHEMA`). Stores older than schema 3 are not upgraded.
const UPGRADES: &[(u32, &str)] = &[
    (
        4,
        include_str!("../migrations/0004_account_status_since.sql"),
    ),
    (5, include_str!("../migrations/0005_token_expiry.sql")),
    (6, include_str!("../migrations/0006_alert_triage.sql")),
];

/// Frames of write-ahead log (pages, 4 KiB; so 256 MiB) past which upkeep makes the log start over. A RESTART
/// holds the writer lock through two syncs, which a read then waits for: at 64 MiB (every tick under load) reads
/// saw 80-130 ms maxima; at 256 MiB the read maximum stayed under 0.5 ms in most runs.
const RESTART_LOG_FRAMES: i64 = 65_536;

/// Each connection's page cache for each database file it has open (`PRAGMA cache_size`, negative: in KiB): 64 MB,
/// for the store's file and for the search index's (`cache_size` is set per attached file).
const PAGE_CACHE_KIB: i64 = -65_536;

/// Prepared statements each connection keeps (`prepare_cached`). The store runs some 80 statements, and the audit
/// search one per combination of its filters; with rusqlite's default of 16, the write connection's mix on a
/// delivery day (lookups, scans, privacy-number bindings, audit appends) cycled through more than it kept, and
/// every evicted statement was parsed again when next used: 4.5 % of an embedded node's CPU on single scans with
/// a pool (`perf`, 2026-12-07), against 0.5 % for reads alone.
const STATEMENT_CACHE: usize = 256;

/// PASSIVE passes that may precede a RESTART, each copying what was written during the one before
/// ([`WalUpkeep::checkpoint`]); they stop at the first that takes less than [`SHORT_PASS`].
const CATCH_UP_PASSES: usize = 4;

/// A PASSIVE pass this short leaves the RESTART after it little to copy while it holds the writer lock.
const SHORT_PASS: std::time::Duration = std::time::Duration::from_millis(10);

/// Rounds of syncs made before a RESTART at most ([`presync`]).
const PRESYNCS: usize = 4;

/// A round of syncs this short found little left to write.
const SHORT_SYNC: std::time::Duration = std::time::Duration::from_millis(2);

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "wbguard.db";

pub use search::DB_FILE as SEARCH_DB_FILE;

/// The write connection and the log tail as of its last commit.
pub(crate) struct Inner {
    conn: Connection,
    tree: Option<LogTail>,
    /// The latest committed entries' heads, kept for upkeep's indexes (shared with the store's handle).
    recent: Arc<recent::Recent>,
}

/// The statement that files one sequenced audit entry.
pub(crate) const INSERT_ENTRY: &str =
    "INSERT INTO audit_entries (seq, entry, nodes) VALUES (?1, ?2, ?3)";

/// The embedded SQLite store.
pub struct SqliteStore {
    /// The write connection, shared with the commit thread.
    inner: Arc<Mutex<Inner>>,
    /// The store thread: the guarded read's lookups and group commit of the hot writes (see `group`).
    committer: group::Committer,
    /// A second connection for maintenance (index compaction, WAL checkpoints), so that it never holds the
    /// request path's lock; SQLite itself serialises the two writers.
    maint: Mutex<Connection>,
    /// A read connection for audit searches and for counting the privacy-number pool, which can take tens of
    /// milliseconds (the count of a pool of a million, a quarter of a second): never the request path's.
    search: Mutex<Connection>,
    /// The latest committed audit entries' heads, for upkeep's indexes (see `recent`).
    recent: Arc<recent::Recent>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

fn hash32(v: Vec<u8>) -> Result<Hash, StoreError> {
    v.try_into()
        .map_err(|_| StoreError::corrupt("a Merkle node is not 32 bytes"))
}

/// The node `(level, index)` is completed by the append of leaf `((index + 1) << level) - 1` and kept in that
/// entry's row, at position `level` of its `nodes`: one row a commit, so an append touches one page.
fn node_in(conn: &Connection, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
    let Some(seq) = index
        .checked_add(1)
        .and_then(|n| n.checked_shl(level))
        .map(|n| n - 1)
    else {
        return Ok(None);
    };
    let nodes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT nodes FROM audit_entries WHERE seq = ?1")?
        .query_row(params![seq as i64], |r| r.get(0))
        .optional()?;
    let at = level as usize * 32;
    nodes
        .map(|n| n.get(at..at + 32).map(|h| hash32(h.to_vec())).transpose())
        .transpose()
        .map(Option::flatten)
}

pub(crate) fn size_in(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_entries")?
        .query_row([], |r| r.get::<_, i64>(0))? as u64)
}

/// The log's tail as it is in the database now, from the cache when it is current.
pub(crate) fn tree_in(conn: &Connection, cache: &Option<LogTail>) -> Result<LogTail, StoreError> {
    let size = size_in(conn)?;
    if let Some(t) = cache {
        if t.size() == size {
            return Ok(t.clone());
        }
    }
    let last_leaf = if size == 0 {
        None
    } else {
        node_in(conn, 0, size - 1)?
    };
    LogTail::load(
        size,
        |l, i| {
            node_in(conn, l, i)
                .map_err(|e| wbg_audit::AuditError::Store(e.into()))?
                .ok_or_else(|| {
                    wbg_audit::AuditError::Store(
                        format!("Merkle node ({l}, {i}) is missing").into(),
                    )
                })
        },
        last_leaf,
    )
    .map_err(StoreError::corrupt)
}

/// Appends one entry as the last write of `tx`, commits, and only then caches the tree the commit made
/// current. Returns the entry's seq.
fn commit_with_entry(
    tx: Transaction<'_>,
    cache: &mut Option<LogTail>,
    recent: &recent::Recent,
    entry: AuditEntry,
) -> Result<u64, StoreError> {
    commit_with_entries(tx, cache, recent, std::iter::once(entry))
}

/// Appends `entries` in order and commits; returns the first one's seq. The cached tree changes, and `recent`
/// keeps the entries' heads, only once the transaction has committed.
fn commit_with_entries(
    tx: Transaction<'_>,
    cache: &mut Option<LogTail>,
    recent: &recent::Recent,
    entries: impl IntoIterator<Item = AuditEntry>,
) -> Result<u64, StoreError> {
    let mut tree = tree_in(&tx, cache)?;
    let first = tree.size();
    let mut held = Vec::new();
    {
        let mut insert = tx.prepare_cached(INSERT_ENTRY)?;
        for entry in entries {
            let s = tree.sequence(entry);
            insert.execute(params![s.seq as i64, s.bytes, s.nodes])?;
            held.push(HeldHead::of(&s.entry));
        }
    }
    tx.commit()?;
    *cache = Some(tree);
    recent.committed(first, held);
    Ok(first)
}

/// Inserts waybill rows and collects their blind-index entries (written as one segment at the end).
fn insert_rows(
    tx: &Transaction<'_>,
    batch: &[SealedWaybill],
    tokens: &mut Vec<blind::Entry>,
) -> Result<(), StoreError> {
    let mut wb = tx.prepare_cached(
        "INSERT INTO waybills (no, merchant, origin_outlet, destination_outlet, courier, status, created_at,
         updated_at, signed_at, bucket, sealed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    tokens.reserve(batch.len() * 6);
    for w in batch {
        let m = &w.meta;
        wb.execute(params![
            m.waybill_no.as_str(),
            m.merchant.as_str(),
            m.origin_outlet.as_str(),
            m.destination_outlet.as_str(),
            m.courier.as_ref().map(|c| c.as_str()),
            m.status.as_str(),
            m.created_at,
            m.updated_at,
            m.signed_at,
            m.bucket,
            w.sealed
        ])
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("waybill {} exists already", m.waybill_no))
            } else {
                e.into()
            }
        })?;
        for (kind, party, token) in &w.blind {
            tokens.push(
                blind::Entry::new(*token, m.waybill_no.as_str(), *party, *kind).ok_or_else(
                    || {
                        StoreError::Db(
                            format!("waybill number {} cannot be indexed", m.waybill_no).into(),
                        )
                    },
                )?,
            );
        }
    }
    Ok(())
}

fn insert_token(
    tx: &Transaction<'_>,
    token: &NewToken,
    id: &AccountId,
    at: i64,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO tokens (hash, account_id, created_at, expires_at, issued_by) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &token.hash[..],
        id.as_str(),
        at,
        token.expires_at,
        token.issued_by
    ])?;
    Ok(())
}

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

const ACCOUNT_COLS: &str =
    "a.id, a.role, a.outlet, a.merchant, a.status, a.status_reason, a.created_at, a.status_since";
const ACCOUNT_BY_TOKEN: &str =
    "SELECT a.id, a.role, a.outlet, a.merchant, a.status, a.status_reason, a.created_at, a.status_since
     FROM tokens t JOIN accounts a ON a.id = t.account_id
     WHERE t.hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)";

/// The account a token hash belongs to, if the token has not expired.
fn account_by_token_in(
    conn: &Connection,
    token_hash: &[u8; 32],
) -> Result<Option<Account>, StoreError> {
    let row = conn
        .prepare_cached(ACCOUNT_BY_TOKEN)?
        .query_row(
            params![&token_hash[..], wbg_core::now_millis()],
            account_row,
        )
        .optional()?;
    row.map(wbg_store::rows::account).transpose()
}

/// Waybill `no`'s metadata, without reading its sealed fields.
fn waybill_meta_in(conn: &Connection, no: &WaybillNo) -> Result<Option<WaybillMeta>, StoreError> {
    let row = waybill_row(
        conn,
        no,
        "SELECT merchant, origin_outlet, destination_outlet, courier, status, created_at, updated_at,
         signed_at, bucket, X'' FROM waybills WHERE no = ?1",
    )?;
    Ok(row.map(|(meta, _)| meta))
}

/// Account `id`.
fn account_in(conn: &Connection, id: &AccountId) -> Result<Option<Account>, StoreError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLS} FROM accounts a WHERE a.id = ?1"
        ))?
        .query_row(params![id.as_str()], account_row)
        .optional()?;
    row.map(wbg_store::rows::account).transpose()
}

/// A waybill's metadata and sealed fields.
fn waybill_in(
    conn: &Connection,
    no: &WaybillNo,
) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError> {
    waybill_row(
        conn,
        no,
        "SELECT merchant, origin_outlet, destination_outlet, courier, status, created_at, updated_at,
         signed_at, bucket, sealed FROM waybills WHERE no = ?1",
    )
}

/// Waybill `no` as `select` reads it: the metadata's nine columns, then the sealed fields.
fn waybill_row(
    conn: &Connection,
    no: &WaybillNo,
    select: &str,
) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError> {
    let row = conn
        .prepare_cached(select)?
        .query_row(params![no.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, i64>(8)?,
                r.get::<_, Vec<u8>>(9)?,
            ))
        })
        .optional()?;
    row.map(|r| wbg_store::rows::waybill(no, r)).transpose()
}

/// A waybill's events, oldest first.
fn events_in(conn: &Connection, no: &WaybillNo) -> Result<Vec<EventRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, type, outlet, courier, actor FROM waybill_events WHERE no = ?1 ORDER BY rowid",
    )?;
    let rows = stmt
        .query_map(params![no.as_str()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(wbg_store::rows::event).collect()
}

/// Moves waybill `m.waybill_no` from `expected` to `m`'s status and files the event (queueing the waybill for a
/// privacy number when it goes out for delivery); `Conflict` if its status is no longer `expected`.
fn apply_event(
    c: &Connection,
    m: &WaybillMeta,
    expected: WaybillStatus,
    ev: &EventRecord,
) -> Result<(), StoreError> {
    let n = c
        .prepare_cached(
            "UPDATE waybills SET status = ?2, courier = ?3, updated_at = ?4, signed_at = ?5
             WHERE no = ?1 AND status = ?6",
        )?
        .execute(params![
            m.waybill_no.as_str(),
            m.status.as_str(),
            m.courier.as_ref().map(|c| c.as_str()),
            m.updated_at,
            m.signed_at,
            expected.as_str()
        ])?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "waybill {} changed status meanwhile",
            m.waybill_no
        )));
    }
    c.prepare_cached(
        "INSERT INTO waybill_events (no, at, type, outlet, courier, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        m.waybill_no.as_str(),
        ev.at,
        ev.event.kind.as_str(),
        ev.event.outlet.as_str(),
        ev.event.courier.as_ref().map(|c| c.as_str()),
        ev.actor
    ])?;
    if let (EventType::OutForDelivery, Some(courier)) = (ev.event.kind, &m.courier) {
        numbers::queue_for_number(c, &m.waybill_no, courier, ev.at)?;
    }
    Ok(())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Moves the write-ahead log into the database file, from the maintenance connection: after each upkeep, and
/// once a second during a long index merge (a merge of millions of entries runs for many seconds, and the log
/// must not wait for it).
pub(crate) struct WalUpkeep {
    last: std::time::Instant,
}

impl WalUpkeep {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    fn new() -> WalUpkeep {
        WalUpkeep {
            last: std::time::Instant::now(),
        }
    }

    /// Checkpoints if a second has passed since the last one.
    pub(crate) fn tick(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.last.elapsed() >= Self::EVERY {
            self.checkpoint(conn)?;
        }
        Ok(())
    }

    /// PASSIVE copies the log into the database without ever holding up a writer. But the log only starts over
    /// when a writer finds it entirely copied, which under steady writes never happens, so it would grow until
    /// the safety-net autocheckpoint made a request copy and sync all that was not yet copied (ingest commits
    /// took up to 2.2 s that way while a long merge kept upkeep from checkpointing). Once the log is large, a
    /// RESTART finishes the job. A RESTART copies and syncs, *holding the writer lock*, whatever was written
    /// since the last pass: after one PASSIVE pass of 200–900 ms under a bulk ingest and an index merge, that
    /// took it 120–320 ms, and every commit waited as long (the embedded node's single scan events after a bulk
    /// ingest: p99 130–420 ms). So further PASSIVE passes come first, each copying what was written during the
    /// one before, until one is short; the RESTART then holds the lock for that little. Before each, the store's
    /// two files are synced without the lock ([`presync`]), so that what a pass and the RESTART sync is only what
    /// was written since: at 33,000 reads/s the RESTART then held the lock 0.2–1.1 ms, where its syncs had held
    /// it 37–83 ms.
    fn checkpoint(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let passive = || -> Result<i64, StoreError> {
            Ok(conn.query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |r| r.get(1))?)
        };
        if passive()? > RESTART_LOG_FRAMES {
            for _ in 0..CATCH_UP_PASSES {
                presync(conn)?;
                let pass = std::time::Instant::now();
                passive()?;
                if pass.elapsed() < SHORT_PASS {
                    break;
                }
            }
            presync(conn)?;
            conn.query_row("PRAGMA main.wal_checkpoint(RESTART)", [], |_| Ok(()))?;
        }
        // The search index's file, written by upkeep alone: its log is copied whole and starts over.
        if conn
            .prepare_cached("SELECT 1 FROM pragma_database_list WHERE name = 'search'")?
            .exists([])?
        {
            conn.query_row("PRAGMA search.wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        self.last = std::time::Instant::now();
        Ok(())
    }
}

/// Syncs the store's database file and write-ahead log to disk, holding no lock, until a round finds little to
/// write ([`SHORT_SYNC`], at most [`PRESYNCS`] rounds).
///
/// A checkpoint syncs the log before it copies frames into the database file, and a RESTART syncs the database file
/// too, both while it holds the writer lock. A PASSIVE pass never syncs the database file (SQLite does that only
/// once a pass has copied the whole log, which under steady writes none does), so at a RESTART the file held every
/// page the passes had copied since the last RESTART: on a disk whose syncs then took 40–80 ms, every commit
/// waited that long every few seconds (reads at 33,000/s: p99 15–25 ms, one round 89 ms; 5 ms with no RESTART).
/// What is already on disk makes those syncs short.
#[cfg(unix)]
fn presync(conn: &Connection) -> Result<(), StoreError> {
    let Some(db) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let sync_failed = |e| StoreError::Db(DbError::context("syncing the store's files", e));
    let file = database_file(Path::new(db)).map_err(sync_failed)?;
    // The log carries no lock of SQLite's (they are on the database file and the `-shm` file), so a handle on it
    // may be closed; it is opened each time, as SQLite deletes it when the last connection closes.
    let log = match std::fs::File::open(format!("{db}-wal")) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(sync_failed(e)),
    };
    for _ in 0..PRESYNCS {
        let round = std::time::Instant::now();
        file.sync_data().map_err(sync_failed)?;
        if let Some(log) = &log {
            log.sync_data().map_err(sync_failed)?;
        }
        if round.elapsed() < SHORT_SYNC {
            break;
        }
    }
    Ok(())
}

/// Elsewhere than on Unix the RESTART syncs what it must itself.
#[cfg(not(unix))]
fn presync(_conn: &Connection) -> Result<(), StoreError> {
    Ok(())
}

/// A handle on the database file at `path` for [`presync`], opened once per file and process and never closed.
///
/// SQLite keeps POSIX advisory locks on the database file, and POSIX drops every lock a process holds on a file
/// when the process closes *any* descriptor of it: a handle opened and closed beside SQLite's would take away this
/// process's shared lock, and another process closing its last connection could then take the file for itself and
/// delete the write-ahead log under this one ("How To Corrupt An SQLite Database File", section 2.2). So the handle
/// stays open until the process exits. Files are told apart by device and inode, so a file made anew at the same path
/// gets a handle of its own.
#[cfg(unix)]
fn database_file(path: &Path) -> std::io::Result<Arc<std::fs::File>> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    type Handles = Mutex<HashMap<(u64, u64), Arc<std::fs::File>>>;
    static HANDLES: std::sync::OnceLock<Handles> = std::sync::OnceLock::new();
    let meta = std::fs::metadata(path)?;
    let key = (meta.dev(), meta.ino());
    let mut handles = HANDLES
        .get_or_init(Handles::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(h) = handles.get(&key) {
        return Ok(h.clone());
    }
    let h = Arc::new(std::fs::File::open(path)?);
    handles.insert(key, h.clone());
    Ok(h)
}

/// The busy handler of every connection: waits for a lock in steps of 200 µs, for 10 s in all. SQLite's own
/// (`busy_timeout`) backs off in steps growing to 100 ms, so a writer that met upkeep's brief WAL restart slept
/// up to 100 ms after the lock was already free, and every read queued behind it waited as long (read p99 of
/// 100-250 ms in the HTTP bench).
fn retry_soon(tries: i32) -> bool {
    const STEP: std::time::Duration = std::time::Duration::from_micros(200);
    const TRIES: i32 = 50_000;
    if tries >= TRIES {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

impl SqliteStore {
    /// Opens (creating if needed) the store in directory `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Db(DbError::context(
                format!("cannot create {}", dir.display()),
                e,
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = dir.join(DB_FILE);
        let conn = Self::connect(&path)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(blind::SCHEMA)?;
        conn.execute_batch(numbers::SCHEMA)?;
        conn.execute_batch(work::SCHEMA)?;
        conn.execute_batch(alerts::SCHEMA)?;
        // The audit search index lives in a file of its own (see `search`); a store that kept it in this file
        // drops that copy, which is rebuilt there.
        conn.execute_batch("DROP TABLE IF EXISTS main.audit_index;")?;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?1), ('schema_version', ?2)",
            params![hex::encode(id), SCHEMA_VERSION],
        )?;
        let mut version: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )?;
        // An older store is brought up one numbered upgrade at a time, each in a transaction of its own.
        let mut at: u32 = version.parse().map_err(|_| {
            StoreError::Corrupt(format!("{} names schema {version:?}", path.display()).into())
        })?;
        for (to, sql) in UPGRADES {
            if at + 1 == *to {
                conn.execute_batch(&format!(
                    "BEGIN; {sql} UPDATE meta SET value = '{to}' WHERE key = 'schema_version'; COMMIT;"
                ))?;
                at = *to;
            }
        }
        version = at.to_string();
        if version != SCHEMA_VERSION {
            return Err(StoreError::Db(format!(
                "{} was written with store schema {version}; this build reads schema {SCHEMA_VERSION} \
                 (start from a new data directory and re-import)",
                path.display()
            ).into()));
        }
        conn.execute_batch(alerts::INDEXES)?;
        let maint = Self::connect(&path)?;
        search::attach(&maint, dir)?;
        let search = Self::connect(&path)?;
        search::attach(&search, dir)?;
        let recent = Arc::new(recent::Recent::default());
        let inner = Arc::new(Mutex::new(Inner {
            conn,
            tree: None,
            recent: recent.clone(),
        }));
        Ok(SqliteStore {
            committer: group::Committer::start(inner.clone())?,
            inner,
            recent,
            maint: Mutex::new(maint),
            search: Mutex::new(search),
            path,
        })
    }

    fn connect(path: &Path) -> Result<Connection, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_handler(Some(retry_soon))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints belong to `maintain`, off the request path; this is only the safety net (1 GiB of WAL, past
        // upkeep's restart point) for a process that never calls it.
        conn.pragma_update(None, "wal_autocheckpoint", 262_144)?;
        Ok(conn)
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.path
    }

    /// Moves the write-ahead log into the main database file (so the file alone holds everything).
    pub fn checkpoint_wal(&self) -> Result<(), StoreError> {
        self.lock()?
            .conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Db("store lock poisoned".into()))
    }

    /// Inserts waybills chunk by chunk and their blind-index entries as one segment, with `audit`, in one
    /// transaction; an `Err` chunk rolls it all back.
    fn insert_chunks<B: AsRef<[SealedWaybill]>>(
        &self,
        chunks: impl Iterator<Item = Result<B, StoreError>>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            let mut tokens = Vec::new();
            for chunk in chunks {
                insert_rows(tx, chunk?.as_ref(), &mut tokens)?;
            }
            blind::append_segment(tx, tokens, wbg_core::now_millis())
        })
        .map(|(_, seq)| seq)
    }

    /// Runs `f` and appends `audit` in one immediate transaction.
    fn audited<T>(
        &self,
        audit: AuditEntry,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, u64), StoreError> {
        let mut inner = self.lock()?;
        let Inner { conn, tree, recent } = &mut *inner;
        let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        let seq = commit_with_entry(tx, tree, recent, audit)?;
        Ok((out, seq))
    }
}

impl Store for SqliteStore {
    fn maintain(&self) -> Result<(), StoreError> {
        let mut conn = self
            .maint
            .lock()
            .map_err(|_| StoreError::Db("maintenance lock poisoned".into()))?;
        let mut wal = WalUpkeep::new();
        blind::compact(&mut conn, wbg_core::now_millis(), &mut wal)?;
        // Up to 50,000 entries a call keeps the index a second or so behind a node at full speed, and builds an
        // upgraded store's index at that pace.
        search::index(&mut conn, &self.recent, 50_000)?;
        wal.checkpoint(&conn)
    }

    fn store_id(&self) -> Result<String, StoreError> {
        Ok(self.lock()?.conn.query_row(
            "SELECT value FROM meta WHERE key = 'store_id'",
            [],
            |r| r.get(0),
        )?)
    }

    fn read_snapshot(&self, token_hash: &[u8; 32], no: &WaybillNo) -> Ticket<ReadSnapshot> {
        let (token_hash, no) = (*token_hash, no.clone());
        self.committer.read(move |c| {
            ReadSnapshot::gather(
                account_by_token_in(c, &token_hash)?,
                || waybill_in(c, &no),
                || events_in(c, &no),
                || numbers::binding_of_waybill(c, &no),
            )
        })
    }

    fn scan_snapshot(&self, token_hash: &[u8; 32], no: &WaybillNo) -> Ticket<ScanSnapshot> {
        let (token_hash, no) = (*token_hash, no.clone());
        self.committer.read(move |c| {
            let Some(account) = account_by_token_in(c, &token_hash)? else {
                return Ok(ScanSnapshot::default());
            };
            Ok(ScanSnapshot {
                account: Some(account),
                waybill: waybill_meta_in(c, &no)?,
            })
        })
    }

    fn read_snapshot_of_account(&self, id: &AccountId, no: &WaybillNo) -> Ticket<ReadSnapshot> {
        let (id, no) = (id.clone(), no.clone());
        self.committer.read(move |c| {
            ReadSnapshot::gather(
                account_in(c, &id)?,
                || waybill_in(c, &no),
                || events_in(c, &no),
                || numbers::binding_of_waybill(c, &no),
            )
        })
    }
}

impl Keys for SqliteStore {
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()?
            .conn
            .query_row(
                "SELECT wrapped FROM wrapped_keys WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_wrapped_key_if_absent(&self, id: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError> {
        let inner = self.lock()?;
        let shredded: Option<i64> = inner
            .conn
            .prepare_cached("SELECT at FROM shredded_keys WHERE id = ?1")?
            .query_row(params![id], |r| r.get(0))
            .optional()?;
        if shredded.is_some() {
            return Err(StoreError::Conflict(format!(
                "key {id} was destroyed by retention and is not made again"
            )));
        }
        let otherwise: bool = inner
            .conn
            .prepare_cached(
                "SELECT NOT EXISTS (SELECT 1 FROM wrapped_keys WHERE id = ?3)
                    AND EXISTS (SELECT 1 FROM wrapped_keys WHERE substr(wrapped, 1, ?2) <> substr(?1, 1, ?2))",
            )?
            .query_row(
                params![wrapped, wbg_store::WRAPPING_ID_LEN as i64, id],
                |r| r.get(0),
            )?;
        if otherwise {
            return Err(wbg_store::wrapped_otherwise(id));
        }
        inner.conn.execute(
            "INSERT OR IGNORE INTO wrapped_keys (id, wrapped, created_at) VALUES (?1, ?2, ?3)",
            params![id, wrapped, wbg_core::now_millis()],
        )?;
        Ok(inner.conn.query_row(
            "SELECT wrapped FROM wrapped_keys WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )?)
    }

    fn bucket_ages(&self) -> Result<Vec<wbg_store::BucketAge>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare(
            "SELECT bucket, COUNT(*),
                    MAX(CASE WHEN status IN ('signed', 'returned') THEN COALESCE(signed_at, updated_at) END),
                    MAX(CASE WHEN status NOT IN ('signed', 'returned') THEN created_at END)
             FROM waybills GROUP BY bucket ORDER BY bucket",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(wbg_store::BucketAge {
                    bucket: r.get(0)?,
                    waybills: r.get::<_, i64>(1)? as u64,
                    last_finished: r.get(2)?,
                    newest_unfinished: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn shred_key(
        &self,
        id: &str,
        bucket: i64,
        index_kinds: &[u8],
        audit: AuditEntry,
    ) -> Result<wbg_store::Shredded, StoreError> {
        // The wrapped key must not linger in freed cells or in the write-ahead log.
        self.lock()?
            .conn
            .pragma_update(None, "secure_delete", "ON")?;
        let shred = self.audited(audit, |tx| {
            tx.execute("DELETE FROM wrapped_keys WHERE id = ?1", params![id])?;
            tx.execute(
                "INSERT OR IGNORE INTO shredded_keys (id, at) VALUES (?1, ?2)",
                params![id, wbg_core::now_millis()],
            )?;
            let nos: std::collections::HashSet<String> = tx
                .prepare("SELECT no FROM waybills WHERE bucket = ?1")?
                .query_map(params![bucket], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(nos)
        });
        self.lock()?
            .conn
            .pragma_update(None, "secure_delete", "OFF")?;
        let (nos, audit_seq) = shred?;
        let index_entries = {
            let mut conn = self
                .maint
                .lock()
                .map_err(|_| StoreError::Db("maintenance lock poisoned".into()))?;
            conn.pragma_update(None, "secure_delete", "ON")?;
            let mut wal = WalUpkeep::new();
            let removed = blind::purge(&mut conn, &nos, index_kinds, &mut wal);
            conn.pragma_update(None, "secure_delete", "OFF")?;
            removed?
        };
        self.checkpoint_wal()?;
        Ok(wbg_store::Shredded {
            audit_seq,
            waybills: nos.len() as u64,
            index_entries,
        })
    }

    fn shredded_keys(&self) -> Result<Vec<String>, StoreError> {
        let inner = self.lock()?;
        let ids: Vec<String> = inner
            .conn
            .prepare_cached("SELECT id FROM shredded_keys ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    fn distinct_index_tokens(&self, kind: u8) -> Result<u64, StoreError> {
        // On the maintenance connection: a long read there holds up neither writers nor lookups, and no merge
        // or purge (which run on it too) changes the segments under it.
        let conn = self
            .maint
            .lock()
            .map_err(|_| StoreError::Db("maintenance lock poisoned".into()))?;
        blind::distinct_tokens(&conn, kind)
    }

    fn rewrap_keys(
        &self,
        rewrap: &mut wbg_store::Rewrap<'_>,
        audit: AuditEntry,
    ) -> Result<(u64, usize), StoreError> {
        // The old wrapped keys must not linger: freed cells are zeroed, and the log is emptied afterwards.
        self.lock()?
            .conn
            .pragma_update(None, "secure_delete", "ON")?;
        let (n, seq) = self.audited(audit, |tx| {
            let keys: Vec<(String, Vec<u8>)> = tx
                .prepare("SELECT id, wrapped FROM wrapped_keys ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut update = tx.prepare("UPDATE wrapped_keys SET wrapped = ?2 WHERE id = ?1")?;
            for (id, wrapped) in &keys {
                let again = rewrap(id, wrapped).map_err(|e| {
                    StoreError::Db(DbError::context(format!("cannot re-wrap key {id}"), e))
                })?;
                update.execute(params![id, again])?;
            }
            Ok(keys.len())
        })?;
        self.lock()?
            .conn
            .pragma_update(None, "secure_delete", "OFF")?;
        self.checkpoint_wal()?;
        Ok((seq, n))
    }
}

impl Accounts for SqliteStore {
    fn create_account(
        &self,
        a: &Account,
        token: Option<&NewToken>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            tx.execute(
                "INSERT INTO accounts (id, role, outlet, merchant, status, status_reason, created_at,
                 status_since) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.id.as_str(),
                    a.role.as_str(),
                    a.outlet.as_ref().map(|o| o.as_str()),
                    a.merchant.as_ref().map(|m| m.as_str()),
                    a.status.as_str(),
                    a.status_reason,
                    a.created_at,
                    a.status_since
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("account {} exists already", a.id))
                } else {
                    e.into()
                }
            })?;
            match token {
                Some(t) => insert_token(tx, t, &a.id, a.created_at),
                None => Ok(()),
            }
        })
        .map(|(_, seq)| seq)
    }

    fn add_token(
        &self,
        id: &AccountId,
        token: &NewToken,
        keep_others: bool,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM accounts WHERE id = ?1",
                params![id.as_str()],
                |r| r.get(0),
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {id}")));
            }
            if !keep_others {
                tx.execute(
                    "DELETE FROM tokens WHERE account_id = ?1",
                    params![id.as_str()],
                )?;
            }
            insert_token(tx, token, id, wbg_core::now_millis())
        })
        .map(|(_, seq)| seq)
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        account_in(&self.lock()?.conn, id)
    }

    fn account_later(&self, id: &AccountId) -> Ticket<Option<Account>> {
        // With the next lookups on the store thread: the caller never waits for the write lock.
        let id = id.clone();
        self.committer.read(move |c| account_in(c, &id))
    }

    fn account_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        account_by_token_in(&self.lock()?.conn, token_hash)
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare(&format!(
            "SELECT {ACCOUNT_COLS} FROM accounts a ORDER BY a.id"
        ))?;
        let rows = stmt
            .query_map([], account_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(wbg_store::rows::account).collect()
    }

    fn set_account_status(
        &self,
        id: &AccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let at = audit.time;
        self.audited(audit, |tx| {
            let n = tx.execute(
                "UPDATE accounts SET status_since = CASE WHEN status = ?2 THEN status_since ELSE ?4 END,
                 status = ?2, status_reason = ?3 WHERE id = ?1",
                params![id.as_str(), status.as_str(), reason, at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {id}")));
            }
            Ok(())
        })
        .map(|(_, seq)| seq)
    }

    fn set_account_outlet(
        &self,
        id: &AccountId,
        outlet: &OutletId,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            let n = tx.execute(
                "UPDATE accounts SET outlet = ?2 WHERE id = ?1",
                params![id.as_str(), outlet.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {id}")));
            }
            Ok(())
        })
        .map(|(_, seq)| seq)
    }
}

impl Waybills for SqliteStore {
    fn open_waybills(&self, bucket: i64) -> Result<Vec<(WaybillNo, Millis)>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare_cached(
            "SELECT no, created_at FROM waybills WHERE bucket = ?1
             AND status NOT IN ('signed', 'returned') ORDER BY created_at, no",
        )?;
        let rows = stmt
            .query_map(params![bucket], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(no, at)| Ok((wbg_store::rows::waybill_no(&no)?, at)))
            .collect()
    }

    fn move_waybills(
        &self,
        from: i64,
        to: i64,
        moved: &[(WaybillNo, Vec<u8>)],
        audit: AuditEntry,
    ) -> Result<(u64, u64), StoreError> {
        let (n, seq) = self.audited(audit, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE waybills SET bucket = ?3, sealed = ?4 WHERE no = ?1 AND bucket = ?2",
            )?;
            let mut n = 0u64;
            for (no, sealed) in moved {
                n += stmt.execute(params![no.as_str(), from, to, sealed])? as u64;
            }
            Ok(n)
        })?;
        Ok((seq, n))
    }

    fn tracking_snapshot(&self, no: &WaybillNo) -> Ticket<Option<(WaybillMeta, Vec<EventRecord>)>> {
        let no = no.clone();
        self.committer.read(move |c| match waybill_in(c, &no)? {
            Some((meta, _)) => Ok(Some((meta, events_in(c, &no)?))),
            None => Ok(None),
        })
    }

    fn append_label_print(
        &self,
        entry: AuditEntry,
        no: &WaybillNo,
        at: Millis,
    ) -> Ticket<(u64, u32)> {
        let no = no.clone();
        self.committer.write(
            move |c| {
                let prints: i64 = c
                    .prepare_cached(
                        "INSERT INTO label_prints (no, prints, last_at) VALUES (?1, 1, ?2)
                         ON CONFLICT(no) DO UPDATE SET prints = prints + 1, last_at = ?2 RETURNING prints",
                    )?
                    .query_row(params![no.as_str(), at], |r| r.get(0))?;
                u32::try_from(prints).map_err(|e| StoreError::corrupt_because("label print count out of range", e))
            },
            vec![entry],
            |copy, seq| {
                let seq = seq.ok_or_else(|| StoreError::Db("nothing was appended".into()))?;
                Ok((seq, copy))
            },
        )
    }

    fn insert_waybills(
        &self,
        batch: &[SealedWaybill],
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.insert_chunks(std::iter::once(Ok(batch)), audit)
    }

    fn plant_canaries(
        &self,
        nos: &[WaybillNo],
        principal: &str,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let at = audit.time;
        self.audited(audit, |tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO canaries (no, principal, created_at) VALUES (?1, ?2, ?3)",
            )?;
            for no in nos {
                stmt.execute(params![no.as_str(), principal, at])
                    .map_err(|e| match is_unique_violation(&e) {
                        true => StoreError::Conflict(format!("canary {no} exists")),
                        false => e.into(),
                    })?;
            }
            Ok(())
        })
        .map(|(_, seq)| seq)
    }

    fn canaries(&self) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT no, principal FROM canaries ORDER BY no")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_waybill_stream(
        &self,
        chunks: &mut dyn Iterator<Item = Result<Vec<SealedWaybill>, StoreError>>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.insert_chunks(chunks, audit)
    }

    fn waybill(&self, no: &WaybillNo) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError> {
        waybill_in(&self.lock()?.conn, no)
    }

    fn sample_waybills(&self, limit: usize) -> Result<Vec<(WaybillMeta, Vec<u8>)>, StoreError> {
        // On the maintenance connection: the scan holds up neither writers nor reads.
        let conn = self
            .maint
            .lock()
            .map_err(|_| StoreError::Db("maintenance lock poisoned".into()))?;
        let mut stmt = conn.prepare(
            "SELECT no, merchant, origin_outlet, destination_outlet, courier, status, created_at, updated_at,
             signed_at, bucket, sealed FROM waybills ORDER BY random() LIMIT ?1",
        )?;
        let rows = stmt
            .query_map(params![limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, Option<i64>>(8)?,
                        r.get::<_, i64>(9)?,
                        r.get::<_, Vec<u8>>(10)?,
                    ),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(no, row)| wbg_store::rows::waybill(&wbg_store::rows::waybill_no(&no)?, row))
            .collect()
    }

    fn record_events(&self, events: Vec<EventWrite>, audit: AuditEntry) -> Ticket<u64> {
        self.committer.write(
            move |c| {
                events
                    .iter()
                    .try_for_each(|e| apply_event(c, &e.next, e.expected, &e.record))
            },
            vec![audit],
            |(), seq| seq.ok_or_else(|| StoreError::Db("events without their entry".into())),
        )
    }

    fn waybill_metas(&self, nos: &[WaybillNo]) -> Ticket<Vec<Option<WaybillMeta>>> {
        let nos = nos.to_vec();
        self.committer
            .read(move |c| nos.iter().map(|no| waybill_meta_in(c, no)).collect())
    }

    fn events(&self, no: &WaybillNo) -> Result<Vec<EventRecord>, StoreError> {
        events_in(&self.lock()?.conn, no)
    }

    fn find_by_token(&self, token: &[u8; 16]) -> Result<Vec<WaybillNo>, StoreError> {
        let rows = blind::lookup(&self.lock()?.conn, token, None)?;
        rows.iter()
            .map(|n| wbg_store::rows::waybill_no(n))
            .collect()
    }

    fn find_by_token_of(&self, token: &[u8; 16], party: u8) -> Result<Vec<WaybillNo>, StoreError> {
        let rows = blind::lookup(&self.lock()?.conn, token, Some(party))?;
        rows.iter()
            .map(|n| wbg_store::rows::waybill_no(n))
            .collect()
    }

    fn waybill_count(&self) -> Result<u64, StoreError> {
        Ok(self
            .lock()?
            .conn
            .query_row("SELECT COUNT(*) FROM waybills", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    fn merchant_waybills(
        &self,
        merchant: &MerchantId,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Result<Vec<WaybillNo>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare_cached(
            "SELECT no FROM waybills WHERE merchant = ?1 AND created_at >= ?2 AND created_at < ?3 \
             ORDER BY created_at, no LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                merchant.as_str(),
                from,
                to,
                limit.min(i64::MAX as usize) as i64
            ],
            |r| r.get::<_, String>(0),
        )?;
        rows.map(|r| wbg_store::rows::waybill_no(&r?)).collect()
    }
}

impl Numbers for SqliteStore {
    fn sync_number_pool(&self, numbers: &[String]) -> Result<wbg_store::PoolSync, StoreError> {
        numbers::sync_pool(&mut *self.lock()?, numbers)
    }

    fn bind_numbers(
        &self,
        wanted: &[(WaybillNo, AccountId)],
        now: Millis,
        release: wbg_store::NumberRelease,
        audit: &mut dyn FnMut(
            &WaybillNo,
            &AccountId,
            &wbg_store::BindOutcome,
        ) -> Option<AuditEntry>,
    ) -> Result<(Vec<wbg_store::BindOutcome>, Option<u64>), StoreError> {
        numbers::bind(&mut *self.lock()?, wanted, now, release, audit)
    }

    fn bind_numbers_later(
        &self,
        wanted: Vec<(WaybillNo, AccountId)>,
        now: Millis,
        release: wbg_store::NumberRelease,
        mut audit: wbg_store::BindAudit,
    ) -> Ticket<(Vec<wbg_store::BindOutcome>, Option<u64>)> {
        // A job of the next group commit, in a savepoint of its own: no transaction of its own, and the caller
        // never waits for the write lock (a single scan's binding held it, on a runtime worker, between the
        // store thread's group commits).
        self.committer.write_recorded(
            move |c| numbers::bind_in(c, &wanted, now, release, &mut *audit),
            Vec::new(),
            |outcomes, seq| Ok((outcomes, seq)),
        )
    }

    fn number_binding(&self, number: &str) -> Result<Option<wbg_store::NumberBinding>, StoreError> {
        numbers::binding_of_number(&self.lock()?.conn, number)
    }

    fn number_of_waybill(
        &self,
        no: &WaybillNo,
    ) -> Result<Option<wbg_store::NumberBinding>, StoreError> {
        numbers::binding_of_waybill(&self.lock()?.conn, no)
    }

    fn number_of_waybill_later(&self, no: &WaybillNo) -> Ticket<Option<wbg_store::NumberBinding>> {
        // With the next lookups on the store thread: the caller never waits for the write lock.
        let no = no.clone();
        self.committer
            .read(move |c| numbers::binding_of_waybill(c, &no))
    }

    fn waiting_for_numbers(&self, limit: usize) -> Result<Vec<(WaybillNo, AccountId)>, StoreError> {
        numbers::waiting(&self.lock()?.conn, limit)
    }

    fn number_pool_state(
        &self,
        now: Millis,
        release: wbg_store::NumberRelease,
    ) -> Result<wbg_store::PoolState, StoreError> {
        // On the read connection: the count joins every number with its waybill, and under the write lock it
        // stalled every read and scan for as long (a pool of a million: ~250 ms, each second, at the p99).
        let conn = self
            .search
            .lock()
            .map_err(|_| StoreError::Db("search lock poisoned".into()))?;
        numbers::state(&conn, now, release)
    }
}

impl Cases for SqliteStore {
    fn put_case(
        &self,
        kind: &str,
        id: &str,
        body: &str,
        expect: Option<&str>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let at = audit.time;
        self.audited(audit, |tx| {
            let current: Option<String> = tx
                .prepare_cached("SELECT body FROM cases WHERE kind = ?1 AND id = ?2")?
                .query_row(params![kind, id], |r| r.get(0))
                .optional()?;
            match (current.as_deref(), expect) {
                (None, None) => {}
                (Some(now), Some(was)) if now == was => {}
                (None, Some(_)) => return Err(StoreError::NotFound(format!("{kind} {id}"))),
                (Some(_), _) => {
                    return Err(StoreError::Conflict(format!(
                        "{kind} {id} was changed meanwhile"
                    )))
                }
            }
            tx.prepare_cached(
                "INSERT INTO cases (kind, id, body, updated_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            )?
            .execute(params![kind, id, body, at])?;
            Ok(())
        })
        .map(|(_, seq)| seq)
    }

    fn cases(&self, kind: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        let inner = self.lock()?;
        let rows = inner
            .conn
            .prepare_cached(
                "SELECT id, body FROM cases WHERE kind = ?1 ORDER BY updated_at DESC, id LIMIT ?2",
            )?
            .query_map(params![kind, limit.clamp(1, 100_000) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn case(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()?
            .conn
            .prepare_cached("SELECT body FROM cases WHERE kind = ?1 AND id = ?2")?
            .query_row(params![kind, id], |r| r.get(0))
            .optional()?)
    }
}

impl AuditLog for SqliteStore {
    fn append_audit_grouped(&self, entries: Vec<AuditEntry>) -> Ticket<u64> {
        self.committer.append(entries)
    }

    fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        self.audited(entry, |_| Ok(())).map(|(_, seq)| seq)
    }

    fn append_audit_batch(&self, entries: Vec<AuditEntry>) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let Inner { conn, tree, recent } = &mut *inner;
        let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
        commit_with_entries(tx, tree, recent, entries)
    }

    fn audit_size(&self) -> Result<u64, StoreError> {
        size_in(&self.lock()?.conn)
    }

    fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .lock()?
            .conn
            .prepare_cached("SELECT entry FROM audit_entries WHERE seq = ?1")?
            .query_row(params![seq as i64], |r| r.get(0))
            .optional()?)
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        // A bulk read of committed entries (access indexing, verification, incident scans) on the maintenance
        // connection: on the write connection it held up the store thread, and every request behind it, for the
        // length of the scan (tens of ms once a second at 10,000 reads/s).
        let conn = self
            .maint
            .lock()
            .map_err(|_| StoreError::Db("maintenance lock poisoned".into()))?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, entry, substr(nodes, 1, 32) FROM audit_entries WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![from as i64, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(seq, bytes, leaf)| {
                Ok(StoredEntry {
                    seq: seq as u64,
                    bytes,
                    recorded_leaf: leaf.map(hash32).transpose()?,
                })
            })
            .collect()
    }

    fn committed_entries(&self, from: u64, limit: usize) -> Result<Vec<Committed>, StoreError> {
        match self.recent.since(from, limit) {
            Some(held) => Ok(held),
            None => Ok(self
                .audit_entries(from, limit)?
                .into_iter()
                .map(Committed::Stored)
                .collect()),
        }
    }

    fn audit_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        node_in(&self.lock()?.conn, level, index)
    }

    fn audit_head(&self) -> Result<(u64, Hash), StoreError> {
        let mut inner = self.lock()?;
        let Inner { conn, tree, .. } = &mut *inner;
        let t = tree_in(conn, tree)?;
        let head = (t.size(), t.frontier().root());
        *tree = Some(t);
        Ok(head)
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.lock()?.conn.execute(
            "INSERT OR IGNORE INTO audit_checkpoints (size, note, created_at) VALUES (?1, ?2, ?3)",
            params![size as i64, note, wbg_core::now_millis()],
        )?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .lock()?
            .conn
            .query_row(
                "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
            )
            .optional()?)
    }

    fn checkpoints(&self) -> Result<Vec<String>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare("SELECT note FROM audit_checkpoints ORDER BY size")?;
        let notes = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(notes)
    }
}

#[cfg(test)]
mod tests;
