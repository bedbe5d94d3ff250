//! The blind index as sorted runs of packed entries (a small log-structured merge tree inside SQLite).
//!
//! Tokens are random, so one B-tree keyed by token turns every batch into writes all over the tree: each batch
//! dirties most leaf pages and SQLite writes each dirty page to the WAL again (measured at 16k waybills/s
//! against 107k/s without the index). A row per token is no better at scale: six rows a waybill cost more than
//! the waybill's own row. So each batch writes its tokens sorted, packed into chunks of about 3 KB (one row a
//! chunk, keyed by its first token), as a new level-0 *segment*: a 10,000-waybill batch is ~20 appended rows.
//! When `FANOUT` segments share a level they are merged into one a level up, streaming: sources are read a chunk
//! at a time, the output is written in short transactions under a *building* segment (level -1, invisible to
//! lookups), then swapped in with one small transaction, and the old chunks deleted in short transactions. A
//! merge never holds the write lock for long, so ingest and audit appends go on around it. A merge is paced: after
//! each transaction of its output it rests as long as it worked, so it takes at most half a core. Unpaced, the
//! merges after a bulk ingest (hundreds of new segments) ran back to back on one of a 2-core node's cores, and
//! the node's scan events right after a 700,000-waybill ingest ran at 8,600–10,300/s with p99 130–290 ms
//! against 13,100–15,000/s with p99 49–65 ms paced (`scripts/bench embedded`, single events; with no
//! compaction at all, 18,000–21,600/s at p99 10–12 ms). Lookups meanwhile probe more segments for longer.
//! A lookup probes each live segment: O(segments · log n), with segments ≤ `FANOUT` per level.
use crate::WalUpkeep;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use wbg_store::StoreError;

/// Segments a level holds before they are merged into one a level up.
pub(crate) const FANOUT: i64 = 8;

/// A chunk is closed once its body reaches this many bytes; below a 4 KiB page's local payload, so a chunk never
/// spills into overflow pages (which SQLite must read one by one to free).
const CHUNK_BYTES: usize = 3_000;

/// Chunks written per transaction while a merge builds its output.
const CHUNKS_PER_TX: usize = 256;

/// A building segment older than this (ms) was left by a merge that died; its chunks are garbage.
const STALE_BUILD_MS: i64 = 3_600_000;

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS blind_runs (
    id INTEGER PRIMARY KEY, seg INTEGER NOT NULL, first BLOB NOT NULL, last BLOB NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS blind_runs_seg ON blind_runs(seg, first, id);
-- level -1: a merge's output being built; invisible to lookups until swapped in.
CREATE TABLE IF NOT EXISTS blind_segments (
    id INTEGER PRIMARY KEY, level INTEGER NOT NULL, rows INTEGER NOT NULL, created_at INTEGER NOT NULL);
"#;

/// Longest waybill number an entry holds (the identifier's own limit).
const MAX_NO: usize = 40;

/// One index entry: the token, the waybill it came from, which party of it and what kind of value. Fixed-size
/// and `Copy`, so merging millions of them allocates nothing; the field order is the sort order on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub token: [u8; 16],
    /// The waybill number, zero-padded: numbers hold no NUL, so this sorts and compares as the text does.
    no: [u8; MAX_NO],
    pub party: u8,
    pub kind: u8,
}

impl Entry {
    /// `None` if `no` is longer than a waybill number can be or holds a NUL (which the padding could not tell
    /// apart).
    pub fn new(token: [u8; 16], no: &str, party: u8, kind: u8) -> Option<Entry> {
        if no.as_bytes().contains(&0) {
            return None;
        }
        let mut padded = [0u8; MAX_NO];
        padded.get_mut(..no.len())?.copy_from_slice(no.as_bytes());
        Some(Entry {
            token,
            no: padded,
            party,
            kind,
        })
    }

    fn no_bytes(&self) -> &[u8] {
        let len = self.no.iter().position(|&b| b == 0).unwrap_or(MAX_NO);
        &self.no[..len]
    }

    /// The waybill number.
    pub fn no(&self) -> Result<&str, StoreError> {
        std::str::from_utf8(self.no_bytes()).map_err(|_| malformed())
    }
}

fn malformed() -> StoreError {
    StoreError::Corrupt("a blind-index chunk is malformed".into())
}

/// Body layout, per entry: token (16) ‖ party (1) ‖ kind (1) ‖ len (1) ‖ waybill number (len ≤ 40 bytes).
fn encode_into(body: &mut Vec<u8>, e: &Entry) {
    let no = e.no_bytes();
    body.extend_from_slice(&e.token);
    body.push(e.party);
    body.push(e.kind);
    body.push(no.len() as u8);
    body.extend_from_slice(no);
}

/// Appends the entries of one chunk body to `out`.
fn decode_into(body: &[u8], out: &mut impl Extend<Entry>) -> Result<(), StoreError> {
    let mut at = 0;
    while at < body.len() {
        let head = body.get(at..at + 19).ok_or_else(malformed)?;
        let len = head[18] as usize;
        let no = body.get(at + 19..at + 19 + len).ok_or_else(malformed)?;
        if no.contains(&0) || std::str::from_utf8(no).is_err() {
            return Err(malformed());
        }
        let mut token = [0u8; 16];
        token.copy_from_slice(&head[..16]);
        let mut padded = [0u8; MAX_NO];
        padded
            .get_mut(..len)
            .ok_or_else(malformed)?
            .copy_from_slice(no);
        out.extend([Entry {
            token,
            no: padded,
            party: head[16],
            kind: head[17],
        }]);
        at += 19 + len;
    }
    Ok(())
}

#[cfg(test)]
fn decode(body: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    decode_into(body, &mut out)?;
    Ok(out)
}

/// Cuts sorted entries into chunks and writes them under `seg`.
struct ChunkWriter {
    seg: i64,
    body: Vec<u8>,
    first: Option<[u8; 16]>,
    last: [u8; 16],
    rows: i64,
    done: Vec<([u8; 16], [u8; 16], Vec<u8>)>,
}

impl ChunkWriter {
    fn new(seg: i64) -> ChunkWriter {
        ChunkWriter {
            seg,
            body: Vec::with_capacity(CHUNK_BYTES + 64),
            first: None,
            last: [0; 16],
            rows: 0,
            done: Vec::new(),
        }
    }

    fn push(&mut self, e: &Entry) {
        if self.first.is_none() {
            self.first = Some(e.token);
        }
        self.last = e.token;
        encode_into(&mut self.body, e);
        self.rows += 1;
        if self.body.len() >= CHUNK_BYTES {
            self.close();
        }
    }

    fn close(&mut self) {
        if let Some(first) = self.first.take() {
            let body = std::mem::replace(&mut self.body, Vec::with_capacity(CHUNK_BYTES + 64));
            self.done.push((first, self.last, body));
        }
    }

    /// Writes the closed chunks.
    fn flush(&mut self, tx: &Connection) -> Result<(), StoreError> {
        let mut ins = tx.prepare_cached(
            "INSERT INTO blind_runs (seg, first, last, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (first, last, body) in self.done.drain(..) {
            ins.execute(params![self.seg, &first[..], &last[..], body])?;
        }
        Ok(())
    }
}

fn next_segment(tx: &Connection) -> Result<i64, StoreError> {
    Ok(tx.query_row(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM blind_segments), 0), COALESCE((SELECT MAX(seg) FROM blind_runs), 0)) + 1",
        [],
        |r| r.get(0),
    )?)
}

/// Writes one batch's entries as a new level-0 segment, inside the batch's transaction.
pub(crate) fn append_segment(
    tx: &Transaction<'_>,
    mut entries: Vec<Entry>,
    now: i64,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    entries.sort_unstable();
    entries.dedup();
    let seg = next_segment(tx)?;
    let mut w = ChunkWriter::new(seg);
    for e in &entries {
        w.push(e);
    }
    w.close();
    w.flush(tx)?;
    tx.prepare_cached(
        "INSERT INTO blind_segments (id, level, rows, created_at) VALUES (?1, 0, ?2, ?3)",
    )?
    .execute(params![seg, w.rows, now])?;
    Ok(())
}

/// Reads one segment's entries in order, a chunk at a time; each read is its own short statement, so a merge
/// holds no transaction open across its writes (segments never change once written).
struct SegmentReader {
    seg: i64,
    /// `(first, id)` of the last chunk read; starts below every chunk (an empty blob sorts before any token).
    after: (Vec<u8>, i64),
    buf: VecDeque<Entry>,
    exhausted: bool,
}

impl SegmentReader {
    fn new(seg: i64) -> SegmentReader {
        SegmentReader {
            seg,
            after: (Vec::new(), i64::MIN),
            buf: VecDeque::new(),
            exhausted: false,
        }
    }

    fn next(&mut self, conn: &Connection) -> Result<Option<Entry>, StoreError> {
        while self.buf.is_empty() && !self.exhausted {
            let row: Option<(Vec<u8>, i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT first, id, body FROM blind_runs WHERE seg = ?1 AND (first, id) > (?2, ?3)
                     ORDER BY first, id LIMIT 1",
                )?
                .query_row(params![self.seg, self.after.0, self.after.1], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            match row {
                None => self.exhausted = true,
                Some((first, id, body)) => {
                    decode_into(&body, &mut self.buf)?;
                    self.after = (first, id);
                }
            }
        }
        Ok(self.buf.pop_front())
    }
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// Merges the segments `ids` (one level) into one segment at `level + 1`.
fn merge(
    conn: &mut Connection,
    ids: &[i64],
    level: i64,
    now: i64,
    wal: &mut WalUpkeep,
) -> Result<(), StoreError> {
    // Register the output as building, so lookups ignore it and no one else takes its id.
    let seg = {
        let tx = immediate(conn)?;
        let seg = next_segment(&tx)?;
        tx.execute(
            "INSERT INTO blind_segments (id, level, rows, created_at) VALUES (?1, -1, 0, ?2)",
            params![seg, now],
        )?;
        tx.commit()?;
        seg
    };
    let mut readers: Vec<SegmentReader> = ids.iter().map(|&seg| SegmentReader::new(seg)).collect();
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(e) = r.next(conn)? {
            heap.push(Reverse((e, i)));
        }
    }
    let mut w = ChunkWriter::new(seg);
    let mut prev: Option<Entry> = None;
    let mut working = std::time::Instant::now();
    while let Some(Reverse((e, i))) = heap.pop() {
        if let Some(next) = readers[i].next(conn)? {
            heap.push(Reverse((next, i)));
        }
        if prev == Some(e) {
            continue;
        }
        w.push(&e);
        prev = Some(e);
        if w.done.len() >= CHUNKS_PER_TX {
            let tx = immediate(conn)?;
            w.flush(&tx)?;
            tx.commit()?;
            wal.tick(conn)?;
            // Paced (see the module's note): a rest as long as the stretch since the last one — building the
            // chunks, waiting for and holding the writer lock, and any checkpoint the tick ran.
            std::thread::sleep(working.elapsed());
            working = std::time::Instant::now();
        }
    }
    w.close();
    // The swap: the new segment goes live and the old ones stop being read, in one transaction.
    let tx = immediate(conn)?;
    w.flush(&tx)?;
    tx.execute(
        "UPDATE blind_segments SET level = ?2, rows = ?3 WHERE id = ?1",
        params![seg, level + 1, w.rows],
    )?;
    for id in ids {
        tx.execute("DELETE FROM blind_segments WHERE id = ?1", params![id])?;
    }
    tx.commit()?;
    Ok(())
}

/// Deletes the chunks of segments that are no longer registered (merged away) or whose build was abandoned, a
/// few hundred chunks per transaction.
///
/// Each step looks for garbage before it writes: upkeep calls this every second and almost always finds none, and
/// a write, even one that deletes nothing, takes the store's write lock, which the store thread's next group
/// commit then waits for (in the busy handler's steps), with every request of that group behind it.
fn collect_garbage(conn: &mut Connection, now: i64, wal: &mut WalUpkeep) -> Result<(), StoreError> {
    let stale = now - STALE_BUILD_MS;
    if conn
        .prepare_cached("SELECT 1 FROM blind_segments WHERE level = -1 AND created_at < ?1")?
        .exists(params![stale])?
    {
        conn.execute(
            "DELETE FROM blind_segments WHERE level = -1 AND created_at < ?1",
            params![stale],
        )?;
    }
    loop {
        if !conn
            .prepare_cached(
                "SELECT 1 FROM blind_runs WHERE seg NOT IN (SELECT id FROM blind_segments) LIMIT 1",
            )?
            .exists([])?
        {
            return Ok(());
        }
        let tx = immediate(conn)?;
        let n = tx.execute(
            "DELETE FROM blind_runs WHERE id IN (
                 SELECT id FROM blind_runs WHERE seg NOT IN (SELECT id FROM blind_segments) LIMIT 512)",
            [],
        )?;
        tx.commit()?;
        if n == 0 {
            return Ok(());
        }
        wal.tick(conn)?;
    }
}

/// Merges full levels, lowest first, then drops the chunks merged away. Returns the number of merges done.
pub(crate) fn compact(
    conn: &mut Connection,
    now: i64,
    wal: &mut WalUpkeep,
) -> Result<usize, StoreError> {
    let mut merges = 0;
    loop {
        let full: Option<i64> = conn
            .query_row(
                "SELECT level FROM blind_segments WHERE level >= 0 GROUP BY level HAVING COUNT(*) >= ?1
                 ORDER BY level LIMIT 1",
                params![FANOUT],
                |r| r.get(0),
            )
            .optional()?;
        let Some(level) = full else { break };
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM blind_segments WHERE level = ?1 ORDER BY id LIMIT ?2")?
            .query_map(params![level, FANOUT], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        merge(conn, &ids, level, now, wal)?;
        merges += 1;
    }
    collect_garbage(conn, now, wal)?;
    Ok(merges)
}

/// Removes the entries of kinds `kinds` of the waybills in `nos` from the index (retention: a shredded group's
/// tokens would let someone holding the index key confirm a guessed phone number). Chunks are rewritten in place in short
/// transactions, on the maintenance connection, so no merge reads a segment meanwhile; a chunk left empty is
/// deleted. Returns the entries removed.
pub(crate) fn purge(
    conn: &mut Connection,
    nos: &std::collections::HashSet<String>,
    kinds: &[u8],
    wal: &mut WalUpkeep,
) -> Result<u64, StoreError> {
    if nos.is_empty() || kinds.is_empty() {
        return Ok(0);
    }
    let mut removed = 0u64;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare_cached("SELECT id, body FROM blind_runs WHERE id > ?1 ORDER BY id LIMIT ?2")?
            .query_map(params![after, CHUNKS_PER_TX as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let Some(&(last, _)) = rows.last() else { break };
        after = last;
        let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
        for (id, body) in rows {
            let mut entries = Vec::new();
            decode_into(&body, &mut entries)?;
            let before = entries.len();
            let mut kept = Vec::with_capacity(before);
            for e in entries {
                if !(kinds.contains(&e.kind) && nos.contains(e.no()?)) {
                    kept.push(e);
                }
            }
            if kept.len() == before {
                continue;
            }
            removed += (before - kept.len()) as u64;
            match (kept.first(), kept.last()) {
                (Some(first), Some(last)) => {
                    let mut body = Vec::with_capacity(CHUNK_BYTES + 64);
                    for e in &kept {
                        encode_into(&mut body, e);
                    }
                    tx.prepare_cached(
                        "UPDATE blind_runs SET first = ?2, last = ?3, body = ?4 WHERE id = ?1",
                    )?
                    .execute(params![
                        id,
                        &first.token[..],
                        &last.token[..],
                        body
                    ])?;
                }
                _ => {
                    tx.prepare_cached("DELETE FROM blind_runs WHERE id = ?1")?
                        .execute(params![id])?;
                }
            }
        }
        tx.commit()?;
        wal.tick(conn)?;
    }
    Ok(removed)
}

/// Waybill numbers whose blind index holds `token`: in each live segment, the chunks that can hold it are the
/// last one starting at or before it and any before that which end at it (a run of one token can span chunks).
/// Waybill numbers whose entries hold `token`, of `party` only when one is given; sorted, without repeats.
pub(crate) fn lookup(
    conn: &Connection,
    token: &[u8; 16],
    party: Option<u8>,
) -> Result<Vec<String>, StoreError> {
    let segs: Vec<i64> = conn
        .prepare_cached("SELECT id FROM blind_segments WHERE level >= 0")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut chunks = conn.prepare_cached(
        "SELECT first, last, body FROM blind_runs WHERE seg = ?1 AND first <= ?2 ORDER BY first DESC, id DESC",
    )?;
    let mut out = Vec::new();
    for seg in segs {
        let mut rows = chunks.query(params![seg, &token[..]])?;
        while let Some(r) = rows.next()? {
            let first: Vec<u8> = r.get(0)?;
            let last: Vec<u8> = r.get(1)?;
            if last.as_slice() < &token[..] {
                break;
            }
            let body: Vec<u8> = r.get(2)?;
            let mut entries = Vec::new();
            decode_into(&body, &mut entries)?;
            let wanted = |e: &&Entry| &e.token == token && party.is_none_or(|p| e.party == p);
            for e in entries.iter().filter(wanted) {
                out.push(e.no()?.to_owned());
            }
            if first.as_slice() < &token[..] {
                break;
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// How many distinct tokens of `kind` the live index holds: every live segment read once, merged in token
/// order (a token in several segments, or on several waybills, counts once).
pub(crate) fn distinct_tokens(conn: &Connection, kind: u8) -> Result<u64, StoreError> {
    let segs: Vec<i64> = conn
        .prepare_cached("SELECT id FROM blind_segments WHERE level >= 0")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut readers: Vec<SegmentReader> = segs.into_iter().map(SegmentReader::new).collect();
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(e) = r.next(conn)? {
            heap.push(Reverse((e, i)));
        }
    }
    let mut last: Option<[u8; 16]> = None;
    let mut n = 0u64;
    while let Some(Reverse((e, i))) = heap.pop() {
        if let Some(next) = readers[i].next(conn)? {
            heap.push(Reverse((next, i)));
        }
        if e.kind == kind && last != Some(e.token) {
            n += 1;
            last = Some(e.token);
        }
    }
    Ok(n)
}

/// `(segments, rows)` of the live index.
#[cfg(test)]
pub(crate) fn shape(conn: &Connection) -> Result<(i64, i64), StoreError> {
    Ok(conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM blind_segments WHERE level >= 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_sort_as_their_waybill_numbers_do() {
        let e = |no: &str| Entry::new([0; 16], no, 0, 1).unwrap();
        for (a, b) in [("AB", "ABC"), ("A9", "AB"), ("AB", "B"), ("W-1", "W_1")] {
            assert!(e(a) < e(b) && a < b, "{a} {b}");
        }
        assert_eq!(e("W1").no().unwrap(), "W1");
        assert!(Entry::new([0; 16], &"9".repeat(41), 0, 1).is_none());
        assert!(Entry::new([0; 16], "W\u{0}1", 0, 1).is_none());
        assert_eq!(e(&"9".repeat(40)).no().unwrap(), "9".repeat(40));
    }

    proptest! {
        #[test]
        fn chunks_round_trip(entries in proptest::collection::vec(
            (any::<[u8; 16]>(), "[A-Z0-9]{1,40}", 0u8..2, 1u8..4), 0..50)
        ) {
            let entries: Vec<Entry> = entries
                .into_iter()
                .map(|(token, no, party, kind)| Entry::new(token, &no, party, kind).unwrap())
                .collect();
            let mut body = Vec::new();
            for e in &entries {
                encode_into(&mut body, e);
            }
            prop_assert_eq!(decode(&body).unwrap(), entries);
        }
    }

    #[test]
    fn truncated_chunk_is_corrupt_not_a_panic() {
        let mut body = Vec::new();
        encode_into(&mut body, &Entry::new([1; 16], "W1", 0, 1).unwrap());
        for cut in 0..body.len() {
            assert!(cut == 0 || decode(&body[..cut]).is_err());
        }
    }
}
