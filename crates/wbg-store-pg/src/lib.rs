//! Waybill Guard's PostgreSQL store: [`PgStore`] implements the same [`Store`] trait as the embedded SQLite
//! store, so that several guard nodes can share one vault and one audit log.
//!
//! **One audit log across nodes, no global lock on the way in.** A writer (a guarded read's group commit, an
//! admin change, an ingest) takes numbers for its entries from the `audit_seq_alloc` sequence and queues them
//! in `audit_queue` in its own transaction, beside the change they record: numbers are handed out without
//! waiting on any other transaction, so every node's writers commit side by side, and a read decrypts only once
//! its queued entry has committed (it is durable and its number is fixed). The integrator, run by whoever reads
//! the log (a serving node's upkeep every second, to sign a checkpoint) under an advisory lock, takes the queued
//! entries that continue the log in number order, chains and hashes them into the Merkle tree through
//! [`wbg_audit::LogTail`] (the tree math lives there; this crate only persists), and writes them to
//! `audit_entries` with the new `audit_head`, in batches (the design of Tessera's integrator). A number whose
//! writer crashed or rolled back is filled with a void entry once a later entry has waited `ABANDONED`; the
//! void row stays, so a writer that commits after all finds its number taken and fails rather than going
//! unrecorded. Every reader of the log (`audit verify`, proofs, checkpoints) integrates what is queued first,
//! so the whole log is one hash chain and one tree, checked exactly as the embedded store's.
//!
//! Audit entries are partitioned by the UTC day they were made (`audit_entries_YYYYMMDD`, made ahead by
//! [`Store::maintain`], with a default partition for anything else), so old days can be detached and archived.
//!
//! The store drives `sqlx` on a small runtime of its own. The read path's calls (a guarded read's lookup and
//! group commit; a print job's, with its label print; scan events; tracking lookups) hand their work to grouped
//! loops there and return a [`Ticket`] an async caller awaits; the rest of the trait is synchronous and blocks
//! its thread, so the server makes those calls through `spawn_blocking` (or, on a worker thread, after
//! `block_in_place`).
//!
//! PostgreSQL dropping connections (a restart, a failover, a terminated backend) reaches the caller as
//! [`StoreError::Unavailable`], and conflicts it resolves by failing one side as [`StoreError::Busy`] — each a 503
//! to try again — not as a database error; the read path's read-only lookups are asked once more on a new
//! connection after a lost one.
#![deny(missing_docs)]

mod alerts;
mod credentials;
mod migrations;
mod nodes;
mod search;
mod work;

pub use nodes::{NodeLock, Watched, NODE_LOCK_CHECK, NODE_LOCK_SETTLE};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::future::Future;
use std::str::FromStr;
use wbg_audit::merkle::Frontier;
use wbg_audit::{AuditEntry, Hash, LogTail, StoredEntry};
use wbg_core::{
    Account, AccountId, AccountStatus, EventType, MerchantId, Millis, OutletId, WaybillMeta,
    WaybillNo,
};
use wbg_store::prelude::*;
use wbg_store::rows;
use wbg_store::{
    BindOutcome, BucketAge, DbError, EventRecord, EventWrite, NewToken, NumberBinding,
    NumberRelease, PoolSync, ReadSnapshot, Rewrap, ScanSnapshot, SealedWaybill, Shredded, Store,
    StoreError, Ticket, TicketSender,
};

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    /// Guarded reads' audit entries, committed in groups by [`group_commit`].
    appender: tokio::sync::mpsc::UnboundedSender<Append>,
    /// Scan events with their audit entries, committed in groups by a [`group_commit`] of their own, beside
    /// the reads'.
    scans: tokio::sync::mpsc::UnboundedSender<Append>,
    /// Label print jobs' audit entries with their print counts, committed in groups by a [`group_commit`] of
    /// their own, beside the reads'.
    prints: tokio::sync::mpsc::UnboundedSender<Append>,
    /// Guarded reads' lookups, made in groups by [`group_lookups`].
    lookups: tokio::sync::mpsc::UnboundedSender<Lookup>,
    /// Public tracking lookups, made in groups by [`group_tracks`].
    tracks: tokio::sync::mpsc::UnboundedSender<Track>,
    /// The store's own runtime (`None` only while it is dropped).
    rt: Option<tokio::runtime::Runtime>,
}

/// Work waiting for a group commit, done in the group's one transaction: scan events to apply all or none (one
/// job's conflict refuses only that job: [`commit_in`]), audit entries (in order) and, for a label print job, the
/// print to count.
struct Commit {
    events: Vec<EventWrite>,
    audit: Vec<AuditEntry>,
    print: Option<(WaybillNo, Millis)>,
}

/// Who a group commit's job tells its outcome: the first entry's seq, and for a print job which print it was.
enum Committed {
    Seq(TicketSender<u64>),
    Printed(TicketSender<(u64, u32)>),
}

impl Committed {
    fn send(self, outcome: Result<(u64, Option<u32>), StoreError>) {
        match self {
            Committed::Seq(tx) => tx.send(outcome.map(|(seq, _)| seq)),
            Committed::Printed(tx) => tx.send(outcome.and_then(|(seq, copy)| {
                let copy =
                    copy.ok_or_else(|| StoreError::corrupt("a label print was not counted"))?;
                Ok((seq, copy))
            })),
        }
    }
}

/// A job for a group commit and who is told its outcome.
type Append = (Commit, Committed);

/// Hands `job` to a group commit (`to`); the ticket holds its outcome as `reply` tells it, or `stopped` if that
/// loop is gone.
fn commit<T>(
    to: &tokio::sync::mpsc::UnboundedSender<Append>,
    job: Commit,
    reply: fn(TicketSender<T>) -> Committed,
    stopped: &'static str,
) -> Ticket<T> {
    let (tx, ticket) = Ticket::channel();
    if let Err(tokio::sync::mpsc::error::SendError((_, reply))) = to.send((job, reply(tx))) {
        reply.send(Err(StoreError::Db(stopped.into())));
    }
    ticket
}

/// Entries one group commit takes at most.
const GROUP: usize = 256;

/// How many of its statements a node keeps running on PostgreSQL at once, on the read path: reads' grouped
/// lookups and group commits, each on a pooled connection. More lanes let PostgreSQL work on one statement (or
/// flush one commit's WAL) while the next is sent; fewer make each statement carry more reads. What counts is
/// the sum over every node on one PostgreSQL: measured on one 2-core machine, one node does as well with 2 and 2
/// as with the defaults, while two nodes with the defaults each (8 lookups and 6 commits at once on two cores)
/// did ~20 % fewer reads than with 2 and 2 each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// Lookup statements in flight at once (each takes every lookup waiting, up to 64).
    pub lookups: u32,
    /// Guarded reads' group commits in flight at once (each takes every audit entry waiting, up to 256). One at
    /// a time, the commit's round trips and WAL flush were the read path's limit (the committer was never idle
    /// while the machine was). Scan events, and label print jobs, commit beside them, each one group at a
    /// time on a connection of its own; a job of several entries commits alone, waiting for the others.
    pub commits: u32,
}

impl Default for Lanes {
    /// 4 lookups and 3 commits: a node alone on its PostgreSQL.
    fn default() -> Self {
        Lanes {
            lookups: 4,
            commits: 3,
        }
    }
}

impl Lanes {
    /// The most of either kind a node may keep in flight. Each lane keeps a connection of its own, beside the
    /// pool's 16 (the integrator, upkeep and everything off the read path), one each for scan events' and label
    /// prints' group commits and tracking lookups, and the node lock's one: a node opens at most 32 connections
    /// to PostgreSQL, 27 with the default lanes, and only as it needs them.
    pub const MAX: u32 = 6;

    /// Each kind within `1..=MAX` (a configuration is checked before it gets here; this keeps the store safe
    /// from any caller).
    fn clamped(self) -> Lanes {
        Lanes {
            lookups: self.lookups.clamp(1, Self::MAX),
            commits: self.commits.clamp(1, Self::MAX),
        }
    }
}

/// Commits audit entries (and scan events, and label prints) in groups: each transaction takes every job waiting
/// (up to [`GROUP`] entries and events), so concurrent reads share one round trip and one WAL flush instead of
/// queueing behind each other's; up to `lanes` such transactions run side by side. A read returns only once its
/// own entry has committed to the queue. The audit numbers of transactions side by side interleave, as two nodes'
/// do: the integrator takes them in number order whoever commits first.
///
/// A store runs three: guarded reads' entries with [`Lanes::commits`] lanes; scan events with one, so that two
/// groups of one node never update the same waybills in opposite orders (a deadlock PostgreSQL would break by
/// failing one of them); and label print jobs' entries with their print counts with one (their `label_prints`
/// rows taken in waybill order, so two nodes' groups only ever wait for each other). They run side by side — a
/// reads' group touches no row another transaction can hold — so a read's entry never waits for a scan's or a
/// print's group (each of which waits up to [`LOCK_WAIT`] behind a row another transaction holds, and fails its
/// own group alone). A group with a job of several entries takes the `gate` alone, waiting for every other group
/// of all three, so that job's entries get consecutive numbers from this node (the caller is told the first).
async fn group_commit(
    kept: Kept,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Append>,
    lanes: u32,
    gate: std::sync::Arc<tokio::sync::RwLock<()>>,
) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(lanes as usize));
    // A group is up to GROUP entries and events, counted over its jobs.
    let size = |(job, _): &Append| job.events.len() + job.audit.len();
    while let Some((slot, batch)) = next_group(&mut rx, &slots, GROUP, size).await {
        let several = batch.iter().any(|(job, _)| job.audit.len() > 1);
        let (alone, beside) = if several {
            (Some(gate.clone().write_owned().await), None)
        } else {
            (None, Some(gate.clone().read_owned().await))
        };
        let kept = kept.clone();
        tokio::spawn(async move {
            commit_group(&kept, batch).await;
            drop((alone, beside, slot));
        });
    }
}

/// Connections a read-path loop keeps for its own statements, at most one per lane (the loop's permits bound how
/// many are out at once). A pooled connection costs two more round trips per statement — `sqlx` pings it when
/// it is taken and again when it is given back — and each wakes a PostgreSQL backend and the store's thread on
/// cores the whole node shares: taking them out of the read path was worth a sixth more reads (6,800–6,900 →
/// 8,000–8,100/s on one 2-core machine, interleaved). A kept
/// connection is checked (pinged) only when it has waited longer than [`KEPT_IDLE`], as it would be after a
/// quiet spell or a PostgreSQL restart; one whose work failed is closed (it may be broken, or in the middle of
/// something) and a new one opened when next needed. A statement that found its connection dropped under load
/// (a restart, a failover, a proxy's cut) closes its loop's idle connections too, and has every other loop of the
/// store check its own before their next use ([`Kept::lost`]): a guarded read's lookup, which is asked once more,
/// meets the loss first, and the read's commit then goes out on a connection known to work.
///
/// A kept connection waits at most [`LOCK_WAIT`] for a row or table lock: its statement then fails as
/// [`StoreError::Busy`] (a 503; the connection is kept, nothing was lost) rather than waiting for as long as the
/// holder keeps it — one scan behind a row lock someone left open would otherwise hold the scans' group commit,
/// and every scan of the node behind it, for that long.
#[derive(Clone)]
struct Kept {
    /// The pool's connection options, with the lock wait.
    opts: std::sync::Arc<PgConnectOptions>,
    /// Failures that may have dropped connections, counted over every loop of the store: a connection kept before
    /// the latest is checked before use.
    losses: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Idle connections, each with when it was kept and the losses counted then.
    idle: std::sync::Arc<std::sync::Mutex<Vec<(sqlx::PgConnection, std::time::Instant, u64)>>>,
}

/// How long a read-path statement waits for a lock another transaction holds (two nodes' statements on the same
/// rows wait milliseconds for each other).
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a kept connection may wait unused before it is checked on its way back into use.
const KEPT_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long that check, or opening a new kept connection, may take before PostgreSQL counts as unreachable.
const KEPT_PING: std::time::Duration = std::time::Duration::from_secs(5);

impl Kept {
    fn new(pool: &PgPool) -> Kept {
        let opts = pool
            .connect_options()
            .as_ref()
            .clone()
            .options([("lock_timeout", format!("{}ms", LOCK_WAIT.as_millis()))]);
        Kept {
            opts: std::sync::Arc::new(opts),
            losses: Default::default(),
            idle: Default::default(),
        }
    }

    /// Another loop's connections: its own idle ones, the same options and count of losses.
    fn sibling(&self) -> Kept {
        Kept {
            opts: self.opts.clone(),
            losses: self.losses.clone(),
            idle: Default::default(),
        }
    }

    /// [`Kept::sibling`] whose connections plan each prepared statement once, for a loop whose statements are
    /// lookups by key of a few dozen rows at most, each as fast with one plan for every group.
    ///
    /// PostgreSQL re-plans a prepared statement for each execution while that custom plan looks cheaper than a
    /// generic one, and a generic plan counts `UNNEST` of an array parameter as 100 rows where a custom plan
    /// counts the array: the guarded reads' lookup (with its events' lateral aggregate) and the tracking
    /// lookup were planned anew for every group — a group of 7 reads' lookup 0.24 ms of planning for 0.18 ms of
    /// execution — where the same plan's generic form runs as fast (0.15 ms). A generic plan follows the
    /// tables' statistics: `ANALYZE` invalidates it.
    fn sibling_planned_once(&self) -> Kept {
        let opts = self
            .opts
            .as_ref()
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]);
        Kept {
            opts: std::sync::Arc::new(opts),
            ..self.sibling()
        }
    }

    /// An idle kept connection (checked first if it waited long, or a loss was counted since it was kept), or a
    /// new one (the pool's options and the lock wait), and whether it was kept unchecked. Given back with
    /// [`Kept::put`] once its work has succeeded; one dropped instead is closed.
    async fn take(&self) -> Result<(sqlx::PgConnection, bool), StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some((mut c, since, losses)) = idle {
            if since.elapsed() <= KEPT_IDLE && losses == self.losses() {
                return Ok((c, true));
            }
            let ping = tokio::time::timeout(KEPT_PING, sqlx::Connection::ping(&mut c)).await;
            if matches!(ping, Ok(Ok(()))) {
                return Ok((c, false));
            }
        }
        match tokio::time::timeout(KEPT_PING, sqlx::Connection::connect_with(&*self.opts)).await {
            Ok(c) => c.map(|c| (c, false)).map_err(db),
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL did not accept a connection within {} s; try again",
                KEPT_PING.as_secs()
            ))),
        }
    }

    /// After a statement failed as [`StoreError::Unavailable`] (a connection lost or refused): closes this loop's
    /// idle connections too and counts a loss, so that every other loop checks its own before use — PostgreSQL
    /// (restarted, failed over, or a proxy between) has most likely dropped them all, and each would fail a group
    /// of its own.
    fn lost(&self) {
        self.losses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Runs `run` on a kept connection, which is kept again if it succeeded; on a failure that may pass, a loss
    /// is counted ([`Kept::lost`]).
    async fn with<R, Fut>(
        &self,
        run: impl FnOnce(sqlx::PgConnection) -> Fut,
    ) -> Result<R, StoreError>
    where
        Fut: Future<Output = (sqlx::PgConnection, Result<R, StoreError>)>,
    {
        let (c, _) = self.take().await?;
        self.finish(run(c).await)
    }

    /// [`Kept::with`] for a statement that only reads: one that failed in a way that may pass on a connection
    /// kept unchecked (most likely dropped while it idled) is asked once more, on a new connection. One on a
    /// connection just checked or opened is not: PostgreSQL is then most likely down, and a second try would
    /// only make the caller wait twice.
    async fn read<R, Fut>(&self, run: impl Fn(sqlx::PgConnection) -> Fut) -> Result<R, StoreError>
    where
        Fut: Future<Output = (sqlx::PgConnection, Result<R, StoreError>)>,
    {
        let (c, unchecked) = self.take().await?;
        match self.finish(run(c).await) {
            Err(StoreError::Unavailable(_)) if unchecked => self.with(run).await,
            r => r,
        }
    }

    /// Keeps the connection whose work succeeded, or whose statement only lost a conflict (its transaction, if
    /// any, is rolled back before the connection's next statement); counts a loss for a lost connection; else
    /// closes it.
    fn finish<R>(
        &self,
        (c, r): (sqlx::PgConnection, Result<R, StoreError>),
    ) -> Result<R, StoreError> {
        match &r {
            Ok(_) | Err(StoreError::Busy(_)) => self.put(c),
            Err(StoreError::Unavailable(_)) => self.lost(),
            Err(_) => {}
        }
        r
    }

    /// Keeps `c`, whose work succeeded, for the next statement.
    fn put(&self, c: sqlx::PgConnection) {
        let losses = self.losses();
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((c, std::time::Instant::now(), losses));
        }
    }

    fn losses(&self) -> u64 {
        self.losses.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Waits for a job, then for a free lane, then takes every job that arrived behind it until the group's `size`
/// reaches `most`: under load a group carries what came while the lanes were busy. `None` once the store is
/// gone.
async fn next_group<J>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<J>,
    lanes: &std::sync::Arc<tokio::sync::Semaphore>,
    most: usize,
    size: impl Fn(&J) -> usize,
) -> Option<(tokio::sync::OwnedSemaphorePermit, Vec<J>)> {
    let first = rx.recv().await?;
    let slot = lanes.clone().acquire_owned().await.ok()?;
    let mut waiting = size(&first);
    let mut group = vec![first];
    while waiting < most {
        match rx.try_recv() {
            Ok(next) => {
                waiting += size(&next);
                group.push(next);
            }
            Err(_) => break,
        }
    }
    Some((slot, group))
}

/// Where a grouped job's result goes: its ticket, or one that takes part of it ([`Snapshot::Scan`]).
trait Reply<T>: Send + 'static {
    /// Tells the job its result.
    fn send(self, outcome: Result<T, StoreError>);
}

impl<T: Send + 'static> Reply<T> for TicketSender<T> {
    fn send(self, outcome: Result<T, StoreError>) {
        TicketSender::send(self, outcome)
    }
}

/// Hands `job` to one of the store's grouped loops; the ticket holds its result, or `stopped` if that loop is gone.
fn enqueue<K, T: Send + 'static>(
    to: &tokio::sync::mpsc::UnboundedSender<(K, TicketSender<T>)>,
    job: K,
    stopped: &'static str,
) -> Ticket<T> {
    enqueue_as(to, job, |tx| tx, stopped)
}

/// [`enqueue`] for a loop whose replies are `reply` of the job's ticket.
fn enqueue_as<K, T, U, R: Reply<U>>(
    to: &tokio::sync::mpsc::UnboundedSender<(K, R)>,
    job: K,
    reply: impl FnOnce(TicketSender<T>) -> R,
    stopped: &'static str,
) -> Ticket<T> {
    let (tx, ticket) = Ticket::channel();
    if let Err(tokio::sync::mpsc::error::SendError((_, tx))) = to.send((job, reply(tx))) {
        tx.send(Err(StoreError::Db(stopped.into())));
    }
    ticket
}

/// A read-path loop of lookups: takes its jobs in groups ([`next_group`], up to `most`), at most `lanes` groups
/// at once, each run by `run` in one statement that only reads, on a kept connection — kept for the next group
/// when the statement succeeded, closed otherwise; one that met a lost connection (a restart, a failover, a
/// backend terminated, a proxy's idle cut) is asked once more on a new one, so the reads of that group never see
/// the loss ([`Kept::read`]) — and tells each job its own result. (Writes go through [`group_commit`], whose
/// failures are told as they are: a lost connection may have lost the commit's answer, not the commit.)
async fn in_groups<K, T, R, F, Fut>(
    kept: Kept,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(K, R)>,
    lanes: u32,
    most: usize,
    run: F,
) where
    K: Send + Sync + 'static,
    T: Send + 'static,
    R: Reply<T>,
    F: Fn(sqlx::PgConnection, std::sync::Arc<Vec<K>>) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = (sqlx::PgConnection, Result<Vec<T>, StoreError>)> + Send,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(lanes as usize));
    while let Some((slot, group)) = next_group(&mut rx, &slots, most, |_| 1).await {
        let kept = kept.clone();
        tokio::spawn(async move {
            let (jobs, replies): (Vec<K>, Vec<_>) = group.into_iter().unzip();
            let jobs = std::sync::Arc::new(jobs);
            let results = kept.read(move |c| run(c, jobs.clone())).await;
            answer(replies, results);
            drop(slot);
        });
    }
}

/// Tells each job of a group its own result (`results` in the jobs' order), or every one the group's failure.
fn answer<T, R: Reply<T>>(replies: Vec<R>, results: Result<Vec<T>, StoreError>) {
    match results {
        Ok(results) => {
            for (reply, r) in replies.into_iter().zip(results) {
                reply.send(Ok(r));
            }
        }
        Err(e) => {
            let failure = each_failure(e);
            for reply in replies {
                reply.send(Err(failure()));
            }
        }
    }
}

/// A group's failure as each of its jobs is told it: one that may pass on retry as it was, any other as shared.
fn each_failure(e: StoreError) -> impl Fn() -> StoreError {
    let shared = match e {
        StoreError::Unavailable(why) => Ok(Ok(why)),
        StoreError::Busy(why) => Ok(Err(why)),
        e => Err(std::sync::Arc::new(e)),
    };
    move || match &shared {
        Ok(Ok(why)) => StoreError::Unavailable(why.clone()),
        Ok(Err(why)) => StoreError::Busy(why.clone()),
        Err(e) => StoreError::Db(DbError::shared(e.clone())),
    }
}

/// The common table expressions that queue the audit entries of `$1` (encoded, in order) in one statement: `n`
/// holds each entry `e` with its place `i` and its number `seq` — taken once, as a CTE with a volatile function
/// is evaluated once — and the insert puts them in the queue.
///
/// `queued!(only $nos where $cond)` queues only the entries whose waybill (`u.no`, from the `text[]` parameter
/// `$nos`, one per entry) meets `$cond`: numbers are taken for those alone ([`scan_at_once`]).
macro_rules! queued {
    () => {
        concat!(
            "n AS (SELECT nextval('audit_seq_alloc') AS seq, e, i
               FROM UNNEST($1::bytea[]) WITH ORDINALITY AS u(e, i) ORDER BY i),
         ",
            queued!(@insert)
        )
    };
    (only $nos:literal where $cond:literal) => {
        concat!(
            "n AS (SELECT nextval('audit_seq_alloc') AS seq, e, i
               FROM UNNEST($1::bytea[], ", $nos, "::text[]) WITH ORDINALITY AS u(e, no, i)
               WHERE ", $cond, " ORDER BY i),
         ",
            queued!(@insert)
        )
    };
    (@insert) => {
        "ins AS (INSERT INTO audit_queue (seq, entry) SELECT seq, e FROM n)"
    };
}

/// One group commit: every job's events (all at once when they all apply, else each in a savepoint of its own,
/// so a job that conflicts is undone alone and told why), audit entries and label prints in one transaction, on
/// a kept connection; each job is told its first entry's number (and its print's copy number).
async fn commit_group(kept: &Kept, mut batch: Vec<Append>) {
    let committed = kept
        .with(|mut c| async {
            let done = commit_in(&mut c, &mut batch).await;
            (c, done)
        })
        .await;
    match committed {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                reply.send(outcome);
            }
        }
        Err(e) => {
            let failure = each_failure(e);
            for (_, reply) in batch {
                reply.send(Err(failure()));
            }
        }
    }
}

/// What a job of a group commit is told: its first entry's number and, for a print job, which print it was.
type Outcome = Result<(u64, Option<u32>), StoreError>;

/// [`commit_group`]'s transaction on `c`: each job's outcome, in the jobs' order.
///
/// A group with scan events locks their waybills first and, from the statuses it finds, decides which jobs go
/// (each event must find its waybill with the status it expects); the jobs that go are applied and their entries
/// queued together. At 32 scanners a node's group holds some ten single events, and with two nodes half as many,
/// so what a group costs whatever its size is what a second node adds to each event: a group of single scans
/// is one statement, its own transaction ([`scan_at_once`], one round trip); a batch takes four (`BEGIN`, the
/// lock, one statement for the jobs that go, `COMMIT`; seven before 2026-12-06), its lock and update planned
/// apart. Only a group that scans a waybill twice (the second event expects what the first leaves) applies job
/// by job.
async fn commit_in(
    c: &mut sqlx::PgConnection,
    batch: &mut [Append],
) -> Result<Vec<Outcome>, StoreError> {
    if batch.iter().all(|(job, _)| job.events.is_empty()) {
        // Audit entries (and label prints) alone: their one statement is its own transaction (one round trip,
        // not three).
        let went: Vec<_> = batch.iter().map(|(job, _)| Ok(job.audit.len())).collect();
        let (entries, prints) = gathered(batch, &went);
        let (seqs, copies) = queue_counting(c, entries, &prints).await?;
        return Ok(outcomes(batch, went, &seqs, copies));
    }
    if single_scans(batch) {
        return scan_at_once(c, batch).await;
    }
    let mut tx = sqlx::Connection::begin(c).await.map_err(db)?;
    let locked = lock_scanned(&mut tx, batch).await?;
    let went = match decided(batch, &locked) {
        // The jobs that go, applied with their entries in one statement.
        Some(went) if batch.iter().all(|(job, _)| job.print.is_none()) => {
            let (entries, _) = gathered(batch, &went);
            let seqs = apply_events(&mut tx, &going(batch, &went), entries).await?;
            tx.commit().await.map_err(db)?;
            return Ok(outcomes(batch, went, &seqs, Vec::new()));
        }
        // A label print's count has a statement of its own (below); print jobs do not share the scans' groups.
        Some(went) => {
            apply_events(&mut tx, &going(batch, &went), Vec::new()).await?;
            went
        }
        None => apply_one_by_one(&mut tx, batch).await?,
    };
    let (entries, prints) = gathered(batch, &went);
    let (seqs, copies) = queue_counting(&mut tx, entries, &prints).await?;
    tx.commit().await.map_err(db)?;
    Ok(outcomes(batch, went, &seqs, copies))
}

/// The scan events of the jobs of `batch` that go (`went`), in the jobs' order.
fn going<'a>(batch: &'a [Append], went: &[Result<usize, StoreError>]) -> Vec<&'a EventWrite> {
    batch
        .iter()
        .zip(went)
        .filter(|(_, w)| w.is_ok())
        .flat_map(|((job, _), _)| &job.events)
        .collect()
}

/// Which jobs of `batch` go, from the statuses of their waybills as locked (`locked`: each scanned waybill's
/// status now; one missing is not stored any more): a job goes when each of its events finds its waybill with the
/// status it expects, else it is told the first that changed, and nothing of it is applied. `None` when a
/// waybill is scanned twice in the group, by two jobs or in one: the second event expects what the first
/// leaves, which only applying them in turn can check.
fn decided(
    batch: &[Append],
    locked: &std::collections::HashMap<String, String>,
) -> Option<Vec<Result<usize, StoreError>>> {
    each_waybill_once(batch).then(|| {
        batch
            .iter()
            .map(|(job, _)| {
                let changed = job.events.iter().find(|e| {
                    locked.get(e.next.waybill_no.as_str()).map(String::as_str)
                        != Some(e.expected.as_str())
                });
                match changed {
                    Some(e) => Err(changed_meanwhile(e)),
                    None => Ok(job.audit.len()),
                }
            })
            .collect()
    })
}

/// Why a job's events were not applied: `e`'s waybill no longer has the status it expects.
fn changed_meanwhile(e: &EventWrite) -> StoreError {
    StoreError::Conflict(format!(
        "waybill {} changed status meanwhile",
        e.next.waybill_no
    ))
}

/// Applies the scan events of `batch`'s jobs in turn, when a waybill is scanned twice in the group: each job in a
/// savepoint of its own, undone alone when its events do not apply and told why (a later job's event sees what
/// an earlier one left). Returns each job's count of entries or that reason.
async fn apply_one_by_one(
    tx: &mut Tx<'_>,
    batch: &[Append],
) -> Result<Vec<Result<usize, StoreError>>, StoreError> {
    let mut went: Vec<Result<usize, StoreError>> = Vec::with_capacity(batch.len());
    for (job, _) in batch {
        if !job.events.is_empty() {
            sqlx::query("SAVEPOINT job")
                .execute(&mut **tx)
                .await
                .map_err(db)?;
            let events: Vec<&EventWrite> = job.events.iter().collect();
            if let Err(e) = apply_events(tx, &events, Vec::new()).await {
                sqlx::query("ROLLBACK TO SAVEPOINT job")
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                went.push(Err(e));
                continue;
            }
        }
        went.push(Ok(job.audit.len()));
    }
    Ok(went)
}

/// The audit entries (taken out of their jobs) and label prints of the jobs of `batch` that went through (`went`
/// holds each one's count of entries, or why its events were undone), in the jobs' order.
fn gathered(
    batch: &mut [Append],
    went: &[Result<usize, StoreError>],
) -> (Vec<AuditEntry>, Vec<(WaybillNo, Millis)>) {
    let (mut entries, mut prints) = (Vec::new(), Vec::new());
    for ((job, _), _) in batch.iter_mut().zip(went).filter(|(_, w)| w.is_ok()) {
        entries.append(&mut job.audit);
        prints.extend(job.print.clone());
    }
    (entries, prints)
}

/// Each job's outcome: why its events were undone, or its first entry's number and its print's copy number,
/// taken in the jobs' order from the group's `seqs` and `copies` (the numbers of one commit need not be
/// consecutive: another commit, of this node or another, may have taken some in between).
fn outcomes(
    batch: &[Append],
    went: Vec<Result<usize, StoreError>>,
    seqs: &[u64],
    copies: Vec<u32>,
) -> Vec<Outcome> {
    let (mut at, mut copies) = (0, copies.into_iter());
    batch
        .iter()
        .zip(went)
        .map(|((job, _), went)| {
            let n = went?;
            let first = seqs.get(at).copied().filter(|_| n > 0);
            at += n;
            let copy = job.print.as_ref().and_then(|_| copies.next());
            Ok((
                first.ok_or_else(|| StoreError::Db("nothing was appended".into()))?,
                copy,
            ))
        })
        .collect()
}

/// Locks the rows of every waybill `batch` scans, in waybill order, before anything of the group is applied: two
/// nodes' groups that share waybills then queue for them instead of each taking some and waiting for the
/// other's — a deadlock PostgreSQL would end by failing one group after a second (503 to each of its
/// scanners). The group's own statements, all at once or job by job, then touch only rows it holds. The lock is
/// the one their updates take (`NO KEY UPDATE`: a scan changes no key), so it keeps out nothing they did not.
/// Taking the rows inside the update instead (a locking `WITH`) was tried for every group: its plan for a
/// 1,000-event batch joined the two row sets by rescanning one for each row of the other, and batched events fell
/// from ~30,000 to ~4,000 a second; a group of single scans, at most 128, does take them so ([`scan_at_once`]).
/// Returns each locked waybill's status (a waybill not stored any more is missing).
async fn lock_scanned(
    tx: &mut Tx<'_>,
    batch: &[Append],
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    let nos: Vec<String> = batch
        .iter()
        .flat_map(|(job, _)| job.events.iter().map(|e| e.next.waybill_no.to_string()))
        .collect();
    let locked: Vec<(String, String)> = sqlx::query_as(
        "SELECT no, status FROM waybills WHERE no = ANY($1) ORDER BY no FOR NO KEY UPDATE",
    )
    .bind(nos)
    .fetch_all(&mut **tx)
    .await
    .map_err(db)?;
    Ok(locked.into_iter().collect())
}

/// Applies scan events and queues `entries` (encoded, in order) in one statement, returning the entries'
/// numbers: every waybill must still have its expected status, else `Conflict` naming the first that changed
/// (the caller undoes the job, or the group).
async fn apply_events(
    tx: &mut Tx<'_>,
    events: &[&EventWrite],
    entries: Vec<AuditEntry>,
) -> Result<Vec<u64>, StoreError> {
    let bodies: Vec<Vec<u8>> = entries.into_iter().map(|e| e.encode()).collect();
    // The statement's parts run as one: the status check's outcome is read from what the update returns, and
    // a mismatch fails the whole statement's transaction (or the job's savepoint).
    let (updated, seqs): (Vec<String>, Vec<i64>) = with_events(
        sqlx::query_as(concat!(
            "WITH ",
            queued!(),
            ",
         up AS (UPDATE waybills w SET status = u.status, courier = u.courier, updated_at = u.updated_at,
                       signed_at = u.signed_at
                FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[])
                     AS u(no, status, courier, updated_at, signed_at, expected)
                WHERE w.no = u.no AND w.status = u.expected
                RETURNING w.no),
         ev AS (INSERT INTO waybill_events (no, at, type, outlet, courier, actor)
                SELECT * FROM UNNEST($2::text[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[])),
         pw AS (INSERT INTO privacy_waiting (waybill_no, courier, since)
                SELECT o.no, o.courier, o.since FROM UNNEST($13::text[], $14::text[], $15::int8[]) AS o(no, courier, since)
                WHERE EXISTS (SELECT 1 FROM privacy_numbers WHERE NOT retired)
                ON CONFLICT (waybill_no) DO UPDATE SET courier = excluded.courier, since = excluded.since)
         SELECT ARRAY(SELECT no FROM up), ARRAY(SELECT seq FROM n ORDER BY i)"
        ))
        .bind(&bodies),
        events,
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    if updated.len() != events.len() {
        let done: std::collections::HashSet<&str> = updated.iter().map(String::as_str).collect();
        return Err(events
            .iter()
            .find(|e| !done.contains(e.next.waybill_no.as_str()))
            .map_or_else(
                || StoreError::Conflict("a waybill changed status meanwhile".into()),
                |e| changed_meanwhile(e),
            ));
    }
    numbered(seqs, bodies.len())
}

/// Whether `batch` is single scans that can go in one statement of their own ([`scan_at_once`]): each job at
/// most one scan event and no label print, no waybill twice. The group's size bounds how many ([`GROUP`]); a
/// sorting centre's batch, one job of many events, takes [`commit_in`]'s other way, whose lock and update are
/// planned apart.
fn single_scans(batch: &[Append]) -> bool {
    batch
        .iter()
        .all(|(job, _)| job.print.is_none() && job.events.len() <= 1)
        && each_waybill_once(batch)
}

/// Whether no waybill is scanned twice in `batch`, by two jobs or in one.
fn each_waybill_once(batch: &[Append]) -> bool {
    let mut scanned = std::collections::HashSet::new();
    batch
        .iter()
        .flat_map(|(job, _)| &job.events)
        .all(|e| scanned.insert(e.next.waybill_no.as_str()))
}

/// A group of single scans ([`single_scans`]) in one statement that is its own transaction: one round trip
/// where the group's lock and its statement inside a transaction take four. The statement locks the scanned
/// waybills in waybill order (as [`lock_scanned`], so two nodes' groups queue rather than deadlock), updates each
/// whose status as locked is the one its scan expects, and files the events, `privacy_waiting` and the audit
/// entries of the jobs whose waybill it updated (a job without an event always goes). A job whose waybill had
/// another status is refused alone, named, and leaves nothing; since all that is filed is taken from what the
/// update returns, no job can go half.
///
/// One statement has one snapshot, taken before it waits for a row another writer holds. The lock then returns
/// the row as that writer committed it, but the snapshot still holds the row before, so the update matches a
/// waybill by its number alone — PostgreSQL then updates the latest version, which the statement holds — and
/// the status check is the lock's: matching `w.status = expected` as [`apply_events`] does (its statement comes
/// after the lock, with a snapshot of its own) would skip a waybill another node scanned meanwhile
/// (`a_scan_group_waiting_for_a_row_decides_on_what_its_lock_finds`).
async fn scan_at_once(
    c: &mut sqlx::PgConnection,
    batch: &[Append],
) -> Result<Vec<Outcome>, StoreError> {
    let events: Vec<&EventWrite> = batch.iter().flat_map(|(job, _)| &job.events).collect();
    // Each entry with the waybill its job scans (none for a job without an event).
    let (bodies, scanning): (Vec<Vec<u8>>, Vec<Option<String>>) = batch
        .iter()
        .flat_map(|(job, _)| {
            let no = job.events.first().map(|e| e.next.waybill_no.to_string());
            job.audit.iter().map(move |e| (e.encode(), no.clone()))
        })
        .unzip();
    let (updated, seqs): (Vec<String>, Vec<i64>) = with_events(
        sqlx::query_as(concat!(
            "WITH lk AS MATERIALIZED (SELECT no, status FROM waybills WHERE no = ANY($2)
                                      ORDER BY no FOR NO KEY UPDATE),
             up AS (UPDATE waybills w SET status = u.status, courier = u.courier, updated_at = u.updated_at,
                           signed_at = u.signed_at
                    FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[])
                         AS u(no, status, courier, updated_at, signed_at, expected)
                         JOIN lk ON lk.no = u.no AND lk.status = u.expected
                    WHERE w.no = u.no
                    RETURNING w.no),
             ",
            // A job's entries go when its waybill was updated, or when it scans none.
            queued!(only "$16" where "u.no IS NULL OR u.no IN (SELECT no FROM up)"),
            ",
             ev AS (INSERT INTO waybill_events (no, at, type, outlet, courier, actor)
                    SELECT * FROM UNNEST($2::text[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[])
                                  AS v(no, at, type, outlet, courier, actor)
                    WHERE v.no IN (SELECT no FROM up)),
             pw AS (INSERT INTO privacy_waiting (waybill_no, courier, since)
                    SELECT o.no, o.courier, o.since FROM UNNEST($13::text[], $14::text[], $15::int8[]) AS o(no, courier, since)
                    WHERE o.no IN (SELECT no FROM up) AND EXISTS (SELECT 1 FROM privacy_numbers WHERE NOT retired)
                    ON CONFLICT (waybill_no) DO UPDATE SET courier = excluded.courier, since = excluded.since)
             SELECT ARRAY(SELECT no FROM up), ARRAY(SELECT seq FROM n ORDER BY i)"
        ))
        .bind(&bodies),
        &events,
    )
    .bind(scanning)
    .fetch_one(c)
    .await
    .map_err(db)?;
    let updated: std::collections::HashSet<&str> = updated.iter().map(String::as_str).collect();
    let went: Vec<Result<usize, StoreError>> = batch
        .iter()
        .map(|(job, _)| match job.events.first() {
            Some(e) if !updated.contains(e.next.waybill_no.as_str()) => Err(changed_meanwhile(e)),
            _ => Ok(job.audit.len()),
        })
        .collect();
    let seqs = numbered(seqs, went.iter().flatten().sum())?;
    Ok(outcomes(batch, went, &seqs, Vec::new()))
}

/// A statement that applies scan events, with `events`' columns bound as `$2` … `$15` (after the entries, `$1`):
/// the waybills' new metadata and expected statuses (`$2` … `$7`), the events (`$8` … `$12`) and the parcels
/// going out for delivery with a courier, for `privacy_waiting` (`$13` … `$15`).
fn with_events<'q, O>(
    q: sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments>,
    events: &[&EventWrite],
) -> sqlx::query::QueryAs<'q, Postgres, O, sqlx::postgres::PgArguments> {
    let col =
        |f: fn(&EventWrite) -> Option<String>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    let out: Vec<&EventWrite> = events
        .iter()
        .copied()
        .filter(|e| e.record.event.kind == EventType::OutForDelivery && e.next.courier.is_some())
        .collect();
    q.bind(col(|e| Some(e.next.waybill_no.to_string())))
        .bind(col(|e| Some(e.next.status.as_str().to_owned())))
        .bind(col(|e| e.next.courier.as_ref().map(|c| c.to_string())))
        .bind(events.iter().map(|e| e.next.updated_at).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.next.signed_at).collect::<Vec<_>>())
        .bind(col(|e| Some(e.expected.as_str().to_owned())))
        .bind(events.iter().map(|e| e.record.at).collect::<Vec<_>>())
        .bind(col(|e| Some(e.record.event.kind.as_str().to_owned())))
        .bind(col(|e| Some(e.record.event.outlet.to_string())))
        .bind(col(|e| {
            e.record.event.courier.as_ref().map(|c| c.to_string())
        }))
        .bind(col(|e| Some(e.record.actor.clone())))
        .bind(
            out.iter()
                .map(|e| e.next.waybill_no.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            out.iter()
                .map(|e| e.next.courier.as_ref().map(|c| c.to_string()))
                .collect::<Vec<_>>(),
        )
        .bind(out.iter().map(|e| e.record.at).collect::<Vec<_>>())
}

impl Drop for PgStore {
    /// The runtime is shut down without waiting for it: a store is dropped wherever its last holder goes, which
    /// for a server is inside its own runtime after a graceful stop, where dropping a runtime the ordinary way
    /// panics (it did, on every SIGTERM).
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

fn db(e: sqlx::Error) -> StoreError {
    match passing(&e) {
        Some(Passing::Lost(why)) => StoreError::Unavailable(why),
        Some(Passing::Conflict(why)) => StoreError::Busy(why),
        None => StoreError::Db(DbError::new(e)),
    }
}

/// A failure that may pass, by kind.
enum Passing {
    /// PostgreSQL out of reach, or the connection lost: the other kept connections are suspect too.
    Lost(String),
    /// A conflict PostgreSQL resolved by failing this statement: the connection is sound.
    Conflict(String),
}

/// Why `e` is a passing failure that the same request may well not meet again — a 503 to the client, not a
/// 500: PostgreSQL cannot be reached or dropped the connection (a restart, a failover, a backend terminated, a
/// network blip), has no connection to spare, or ended the statement in a conflict it resolves by failing one
/// side (a lock waited for over [`LOCK_WAIT`], a deadlock, a serialization failure). `None` for anything else.
/// The message is the kind of failure and its SQLSTATE only: PostgreSQL's own text can quote a row's key, and a
/// key can be a waybill number.
fn passing(e: &sqlx::Error) -> Option<Passing> {
    if let Some(code) = e.as_database_error().and_then(|d| d.code()) {
        let what = match code.as_ref() {
            "55P03" => {
                return Some(Passing::Conflict(format!(
                    "a row or table it needs was locked by another transaction for over {} ms; try again",
                    LOCK_WAIT.as_millis()
                )))
            }
            "40P01" | "40001" => {
                return Some(Passing::Conflict(format!(
                    "the statement conflicted with another transaction, SQLSTATE {code}; try again"
                )))
            }
            "57P01" | "57P02" => "PostgreSQL ended the connection",
            "57P03" => "PostgreSQL is starting up or shutting down",
            "53300" => "PostgreSQL has no connection to spare",
            // Class 08 is a connection failure, but for 08P01: a protocol violation is a bug, not a blip.
            c if c.starts_with("08") && c != "08P01" => "the connection to PostgreSQL failed",
            _ => return None,
        };
        return Some(Passing::Lost(format!("{what}, SQLSTATE {code}; try again")));
    }
    match e {
        sqlx::Error::Io(io) => Some(Passing::Lost(format!(
            "the connection to PostgreSQL was lost or refused ({}); try again",
            io.kind()
        ))),
        sqlx::Error::PoolTimedOut => Some(Passing::Lost(
            "no connection to PostgreSQL came free in time; try again".into(),
        )),
        _ => None,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505")
}

fn hash32(v: &[u8]) -> Result<Hash, StoreError> {
    v.try_into()
        .map_err(|_| StoreError::corrupt("a Merkle node is not 32 bytes"))
}

type Tx<'a> = Transaction<'a, Postgres>;

/// Applied migrations, by version.
pub const MIGRATIONS_TABLE: &str = "wbg_migrations";

/// What [`PgStore::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Versions applied now.
    pub applied: Vec<i64>,
    /// The schema version afterwards.
    pub version: i64,
}

/// Worker threads of the store's own runtime: half the machine's cores, at least one. The runtime only waits
/// on PostgreSQL's sockets and moves rows; on two cores a second thread was measured to cost more (its
/// wake-ups and switches, competing with the server's workers and PostgreSQL for the same cores) than it
/// gave: guarded reads 6,700–6,900/s with two threads against 7,100–7,300/s with one.
fn store_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl PgStore {
    /// Connects to `url` (`postgres://…`); with `migrate`, applies pending migrations first, else refuses a
    /// database whose schema is behind this build.
    pub fn connect(url: &str, migrate: bool) -> Result<PgStore, StoreError> {
        Self::connect_with(url, migrate, Lanes::default())
    }

    /// [`PgStore::connect`] with the read path's [`Lanes`] set (several nodes on one PostgreSQL share them out),
    /// each kind held within `1..=`[`Lanes::MAX`].
    pub fn connect_with(url: &str, migrate: bool, lanes: Lanes) -> Result<PgStore, StoreError> {
        let lanes = lanes.clamped();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(store_threads())
            .thread_name("wbguard-pg")
            .enable_all()
            .build()
            .map_err(|e| {
                StoreError::Db(DbError::context("cannot start the PostgreSQL runtime", e))
            })?;
        // The URL may hold a password: errors name the database, never the URL.
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Db("the PostgreSQL URL does not parse".into()))?;
        let pool = rt
            .block_on(PgPoolOptions::new().max_connections(16).connect_with(opts))
            .map_err(|e| StoreError::Db(DbError::context("cannot connect to PostgreSQL", e)))?;
        let gate = std::sync::Arc::new(tokio::sync::RwLock::new(()));
        let (appender, queue) = tokio::sync::mpsc::unbounded_channel();
        // The read path's loops keep connections of their own (each loop its own, sharing what they learn of
        // dropped ones).
        let kept = Kept::new(&pool);
        rt.spawn(group_commit(
            kept.sibling(),
            queue,
            lanes.commits,
            gate.clone(),
        ));
        let (scans, scanned) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(group_commit(kept.sibling(), scanned, 1, gate.clone()));
        let (prints, printed) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(group_commit(kept.sibling(), printed, 1, gate));
        let (lookups, asked) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(group_lookups(
            kept.sibling_planned_once(),
            asked,
            lanes.lookups,
        ));
        let (tracks, tracked) = tokio::sync::mpsc::unbounded_channel();
        rt.spawn(group_tracks(kept.sibling_planned_once(), tracked));
        let store = PgStore {
            pool,
            appender,
            scans,
            prints,
            lookups,
            tracks,
            rt: Some(rt),
        };
        if migrate {
            store.migrate()?;
        }
        let version = store.schema_version()?;
        let latest = migrations::MIGRATIONS.last().map_or(0, |m| m.0);
        if version < latest {
            return Err(StoreError::Db(format!(
                "the database is at schema version {version}, this build needs {latest}: run `wbguard migrate`"
            ).into()));
        }
        store.run(async {
            let mut id = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('store_id', $1) ON CONFLICT DO NOTHING",
            )
            .bind(hex::encode(id))
            .execute(&store.pool)
            .await
            .map_err(db)
        })?;
        store.make_partitions()?;
        // No integrator runs in the background: whoever reads the log integrates first, and a serving node's
        // upkeep reads it every second (to sign a checkpoint). See `integrate`.
        Ok(store)
    }

    /// Runs `f` to completion on this store's runtime from synchronous code. Called from a worker of another
    /// multi-threaded runtime (a server's request or shutdown path), that thread is first handed over as a
    /// blocking one, so nesting runtimes never panics (it did: `serve` on PostgreSQL panicked on SIGTERM).
    fn run<F: Future>(&self, f: F) -> F::Output {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| self.rt().block_on(f)),
            _ => self.rt().block_on(f),
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime is only taken when the store is dropped")
    }

    /// Runs `f` on this store's runtime; the ticket holds its outcome.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Ticket<T> {
        let (tx, ticket) = Ticket::channel();
        self.rt().spawn(async move { tx.send(f.await) });
        ticket
    }

    /// Integrates until entry `seq` is in the log, if it was queued: a caller that was just handed a number can
    /// read its entry back. An entry behind an abandoned number waits for the void fill, at most
    /// [`ABANDONED`] and a little more.
    async fn integrated_past(&self, seq: u64) -> Result<(), StoreError> {
        let give_up = std::time::Instant::now() + ABANDONED + std::time::Duration::from_secs(1);
        loop {
            integrate(&self.pool).await?;
            let waiting: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM audit_queue WHERE seq = $1)
                    AND $1 >= (SELECT size FROM audit_head WHERE id = 1)",
            )
            .bind(seq as i64)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            if !waiting || std::time::Instant::now() > give_up {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The schema version the database is at (0 before the first migration).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.run(async {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = 'wbg_migrations')",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            if !exists {
                return Ok(0);
            }
            let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM wbg_migrations")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            Ok(v.unwrap_or(0))
        })
    }

    /// Applies every pending migration, each in its own transaction (a concurrent `migrate` waits on the
    /// advisory lock and then finds nothing to do).
    pub fn migrate(&self) -> Result<Migrated, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("SELECT pg_advisory_xact_lock(7707001)")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS wbg_migrations (
                    version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let done: Vec<i64> = sqlx::query_scalar("SELECT version FROM wbg_migrations")
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
            let mut applied = Vec::new();
            for (version, description, sql) in migrations::MIGRATIONS {
                if done.contains(version) {
                    continue;
                }
                sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(|e| {
                    StoreError::Db(DbError::context(format!("migration {version} ({description}) failed"), e))
                })?;
                sqlx::query("INSERT INTO wbg_migrations (version, description) VALUES ($1, $2)")
                    .bind(version)
                    .bind(description)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                applied.push(*version);
            }
            tx.commit().await.map_err(db)?;
            let version = migrations::MIGRATIONS.last().map_or(0, |m| m.0);
            Ok(Migrated { applied, version })
        })
    }

    /// Makes the audit partitions of today and the next two days (UTC) if they are missing. A day whose rows
    /// already went to the default partition keeps them there.
    fn make_partitions(&self) -> Result<(), StoreError> {
        self.run(async {
            for ahead in 0..3 {
                let day: (String, String, String) = sqlx::query_as(
                    "SELECT to_char(d, 'YYYYMMDD'), d::text, (d + 1)::text
                     FROM (SELECT (now() AT TIME ZONE 'UTC')::date + $1::int AS d) x",
                )
                .bind(ahead)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS audit_entries_{} PARTITION OF audit_entries \
                     FOR VALUES FROM ('{}') TO ('{}')",
                    day.0, day.1, day.2
                );
                // Fails only when the default partition already holds rows of that day: they stay there.
                let _ = sqlx::raw_sql(&sql).execute(&self.pool).await;
            }
            Ok(())
        })
    }
}

/// Queues `entries` in order inside `tx` under numbers from the `audit_seq_alloc` sequence; returns the first
/// entry's seq. Nothing global is locked: a sequence hands out numbers without waiting for other transactions,
/// so every node's writers commit side by side. The numbers are taken by the very statement that inserts the
/// rows, so a live writer's number always has its (uncommitted) row, which the integrator's void fill waits
/// for rather than overtakes. The entries become part of the log (chained, hashed into the tree) when
/// [`integrate`] reaches them, in number order.
async fn queue_entries(
    tx: &mut Tx<'_>,
    entries: impl IntoIterator<Item = AuditEntry>,
) -> Result<u64, StoreError> {
    match queue_each(tx, entries).await?.first() {
        Some(first) => Ok(*first),
        None => {
            // Nothing queued: the "first seq" of an empty run is the next number, as the embedded store says.
            let next: i64 = sqlx::query_scalar(
                "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM audit_seq_alloc",
            )
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
            Ok(next as u64)
        }
    }
}

/// [`queue_entries`], returning every entry's number in the order given. One writer's numbers need not be
/// consecutive: another node's writer may take numbers between them.
async fn queue_each(
    c: &mut sqlx::PgConnection,
    entries: impl IntoIterator<Item = AuditEntry>,
) -> Result<Vec<u64>, StoreError> {
    let bodies: Vec<Vec<u8>> = entries.into_iter().map(|e| e.encode()).collect();
    if bodies.is_empty() {
        return Ok(Vec::new());
    }
    let seqs: Vec<i64> =
        sqlx::query_scalar(concat!("WITH ", queued!(), " SELECT seq FROM n ORDER BY i"))
            .bind(&bodies)
            .fetch_all(c)
            .await
            .map_err(db)?;
    numbered(seqs, bodies.len())
}

/// The numbers a statement with [`queued!`] returned for `count` entries.
fn numbered(seqs: Vec<i64>, count: usize) -> Result<Vec<u64>, StoreError> {
    if seqs.len() != count {
        return Err(StoreError::corrupt(
            "queued audit entries came back without their numbers",
        ));
    }
    Ok(seqs.into_iter().map(|s| s as u64).collect())
}

/// [`queue_each`] and, in the same statement, counts label `prints`: returns the entries' numbers and each
/// print's copy number. Each waybill's count goes up by its prints in the group, and each print is told its own
/// place in that count, in the group's order. The rows are taken in waybill order, so two such statements (two
/// nodes' print groups; a node runs one at a time) never wait on each other's rows in opposite orders.
async fn queue_counting(
    c: &mut sqlx::PgConnection,
    entries: Vec<AuditEntry>,
    prints: &[(WaybillNo, Millis)],
) -> Result<(Vec<u64>, Vec<u32>), StoreError> {
    if prints.is_empty() {
        return Ok((queue_each(c, entries).await?, Vec::new()));
    }
    let bodies: Vec<Vec<u8>> = entries.into_iter().map(|e| e.encode()).collect();
    let (seqs, nos, counts): (Vec<i64>, Vec<String>, Vec<i32>) = sqlx::query_as(concat!(
        "WITH ",
        queued!(),
        ",
         p AS (INSERT INTO label_prints AS l (no, prints, last_at)
               SELECT no, count(*)::int, max(at) FROM UNNEST($2::text[], $3::int8[]) AS u(no, at)
               GROUP BY no ORDER BY no
               ON CONFLICT (no) DO UPDATE SET prints = l.prints + EXCLUDED.prints, last_at = EXCLUDED.last_at
               RETURNING no, prints)
         SELECT ARRAY(SELECT seq FROM n ORDER BY i), ARRAY(SELECT no FROM p ORDER BY no),
                ARRAY(SELECT prints FROM p ORDER BY no)"
    ))
    .bind(&bodies)
    .bind(prints.iter().map(|(no, _)| no.as_str()).collect::<Vec<_>>())
    .bind(prints.iter().map(|(_, at)| *at).collect::<Vec<_>>())
    .fetch_one(c)
    .await
    .map_err(db)?;
    let counted = nos.iter().map(String::as_str).zip(counts);
    Ok((numbered(seqs, bodies.len())?, copies(prints, counted)?))
}

/// Each print's copy number, in `prints`' order, from each waybill's count after the group (`counted`): a
/// waybill's first print in the group is its count less its prints in the group, plus one.
fn copies<'a>(
    prints: &[(WaybillNo, Millis)],
    counted: impl IntoIterator<Item = (&'a str, i32)>,
) -> Result<Vec<u32>, StoreError> {
    let mut in_group: std::collections::HashMap<&str, i64> = Default::default();
    for (no, _) in prints {
        *in_group.entry(no.as_str()).or_default() += 1;
    }
    let mut next: std::collections::HashMap<&str, i64> = Default::default();
    for (no, total) in counted {
        if let Some((no, k)) = in_group.get_key_value(no) {
            next.insert(no, i64::from(total) - k + 1);
        }
    }
    prints
        .iter()
        .map(|(no, _)| {
            let copy = next
                .get_mut(no.as_str())
                .ok_or_else(|| StoreError::corrupt("a label print was not counted"))?;
            let this = u32::try_from(*copy)
                .map_err(|e| StoreError::corrupt_because("label print count out of range", e))?;
            *copy += 1;
            Ok(this)
        })
        .collect()
}

/// How long a gap in the queue may stand, behind a later committed entry, before its number counts as abandoned
/// (a writer that crashed or rolled back after taking it) and is filled with a void entry.
const ABANDONED: std::time::Duration = std::time::Duration::from_secs(3);

/// Entries one integration takes at most.
const INTEGRATE: i64 = 8_192;

/// Which queued rows an integration takes: the run that continues the log without a gap (`take` rows), and the
/// numbers to fill with void entries (a gap at the log's end followed by an entry queued longer ago than
/// [`ABANDONED`]: its writer has given up).
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    take: usize,
    void: std::ops::Range<u64>,
}

/// `queued`: the numbers waiting from the log's `size` on, ascending, each with whether it has waited longer
/// than [`ABANDONED`].
fn plan(size: u64, queued: &[(u64, bool)]) -> Plan {
    let mut next = size;
    let mut take = 0;
    for &(seq, _) in queued {
        if seq != next {
            break;
        }
        next += 1;
        take += 1;
    }
    let void = match queued.get(take) {
        Some(&(seq, true)) if take == 0 => next..seq,
        _ => next..next,
    };
    Plan { take, void }
}

/// Integrates queued audit entries into the log: under an advisory lock (so one integrator at a time, on any
/// node), it takes the queued entries that continue the log in number order, chains and hashes them through
/// [`LogTail::integrate`] (the tree math lives in `wbg-audit`; this only persists), writes them to
/// `audit_entries`, moves `audit_head` and removes them from the queue, in one transaction, waiting for another
/// integrator to finish first. Returns the entries integrated (void fills included).
///
/// Nothing integrates in the background: every reader of the log (checkpoints, proofs, `audit verify`, search,
/// the entries by number) calls this first, and a serving node's upkeep signs a checkpoint every second, so
/// under load each integration takes about a second's entries (thousands, in batches of [`INTEGRATE`]), and a
/// process that does not read the log (a risk worker, most CLI commands) never looks at the queue. Every
/// process once looked at the queue every 20 ms — nodes, risk workers and CLI commands alike, five statements a
/// look — which cost PostgreSQL more statements than the integrations themselves: without the looks,
/// interleaved pairs on one 2-core machine gave one node with two risk workers 4–17 % more reads, two such
/// nodes 9–16 %, and the workers half the CPU per read (2026-12-06).
async fn integrate(pool: &PgPool) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await.map_err(db)?;
        xact_lock(&mut tx, "7707003", true).await?;
        let mut tail = head_in(&mut tx).await?;
        let size = tail.size();
        let rows: Vec<(i64, Vec<u8>, bool, bool)> = sqlx::query_as(
            "SELECT seq, entry, void, clock_timestamp() - queued_at > make_interval(secs => $3)
             FROM audit_queue WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(size as i64)
        .bind(INTEGRATE)
        .bind(ABANDONED.as_secs_f64())
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let plan = plan(
            size,
            &rows.iter().map(|r| (r.0 as u64, r.3)).collect::<Vec<_>>(),
        );
        if plan.take == 0 {
            if plan.void.is_empty() {
                return Ok(total);
            }
            // Claim the abandoned numbers; a writer still holding one (uncommitted) is waited for, and if it
            // commits after all its row stands and the void is dropped by the conflict.
            let seqs: Vec<i64> = plan.void.map(|s| s as i64).collect();
            let at = wbg_core::now_millis();
            let bodies: Vec<Vec<u8>> = seqs
                .iter()
                .map(|s| {
                    let mut e = wbg_audit::void_entry(at);
                    e.seq = *s as u64;
                    e.encode()
                })
                .collect();
            sqlx::query(
                "INSERT INTO audit_queue (seq, entry, void)
                 SELECT s, e, true FROM UNNEST($1::int8[], $2::bytea[]) AS u(s, e)
                 ON CONFLICT (seq) DO NOTHING",
            )
            .bind(&seqs)
            .bind(bodies)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            tracing::warn!(
                numbers = seqs.len(),
                first = seqs[0],
                "audit numbers abandoned by their writers were filled with void entries"
            );
            continue;
        }
        let (mut seqs, mut times, mut bodies, mut all_nodes) = (vec![], vec![], vec![], vec![]);
        let mut index = IndexColumns::default();
        for (seq, body, _, _) in rows.into_iter().take(plan.take) {
            // The queued bytes do not carry their number (the statement that queued them took it).
            let entry = AuditEntry::decode(&body).map_err(StoreError::corrupt)?;
            index.push(&entry);
            let s = tail
                .integrate(seq as u64, entry)
                .map_err(StoreError::corrupt)?;
            seqs.push(s.seq as i64);
            times.push(s.time);
            bodies.push(s.bytes);
            all_nodes.push(s.nodes);
        }
        sqlx::query(
            "INSERT INTO audit_entries (seq, day, entry, nodes)
             SELECT s, (to_timestamp(t::float8 / 1000) AT TIME ZONE 'UTC')::date, e, n
             FROM UNNEST($1::int8[], $2::int8[], $3::bytea[], $4::bytea[]) AS u(s, t, e, n)",
        )
        .bind(&seqs)
        .bind(&times)
        .bind(bodies)
        .bind(all_nodes)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO audit_index (seq, time, account, waybill, action, decision)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[])",
        )
        .bind(&seqs)
        .bind(&times)
        .bind(index.account)
        .bind(index.waybill)
        .bind(index.action)
        .bind(index.decision)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM audit_queue WHERE seq >= $1 AND seq < $2 AND NOT void")
            .bind(size as i64)
            .bind(tail.size() as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let frontier: Vec<u8> = tail.frontier().hashes().iter().flatten().copied().collect();
        sqlx::query("UPDATE audit_head SET size = $1, frontier = $2, last_leaf = $3 WHERE id = 1")
            .bind(tail.size() as i64)
            .bind(frontier)
            .bind(tail.last_leaf().map(|h| h.to_vec()))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        total += seqs.len() as u64;
        if (seqs.len() as i64) < INTEGRATE {
            return Ok(total);
        }
    }
}

/// Takes the advisory lock `key` (its arguments, as SQL) for the rest of `tx`: waiting for it with `wait`,
/// else only if it is free. Returns whether it is held.
async fn xact_lock(tx: &mut Tx<'_>, key: &'static str, wait: bool) -> Result<bool, StoreError> {
    if wait {
        sqlx::query(&format!("SELECT pg_advisory_xact_lock({key})"))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        return Ok(true);
    }
    sqlx::query_scalar(&format!("SELECT pg_try_advisory_xact_lock({key})"))
        .fetch_one(&mut **tx)
        .await
        .map_err(db)
}

/// Entries the access indexer reads in one transaction.
const ACCESS_RUN: i64 = 20_000;

/// Brings the forensics access index (`access`, `access_principals`) up to the integrated log: one node at a time
/// (an advisory lock of this schema's; with `wait` false, a node that finds it taken leaves the work to its
/// holder), at most `ACCESS_RUN` entries a transaction, each run's accesses folded per (waybill, principal)
/// before they are written, so a courier's many reads of one parcel within a second are one row's update. It
/// runs in upkeep (every node's, each second: whichever takes the lock) and before every read of the index, so a
/// reader sees every entry integrated before it asked. With `most` it stops after that many runs. Returns the
/// entries read.
async fn index_access(pool: &PgPool, wait: bool, most: Option<u32>) -> Result<u64, StoreError> {
    let mut total = 0;
    let mut runs = 0;
    loop {
        let mut tx = pool.begin().await.map_err(db)?;
        if !xact_lock(&mut tx, "7707004, hashtext(current_schema())", wait).await? {
            return Ok(total);
        }
        let through: i64 = sqlx::query_scalar("SELECT through FROM access_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        // Integrated entries have no gaps: the next run is simply the entries from `through` on.
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, entry FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(through)
        .bind(ACCESS_RUN)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(total);
        };
        let read = rows.len();
        let mut access = Accesses::default();
        for (seq, body) in rows {
            access.push(seq, &AuditEntry::head(&body).map_err(StoreError::corrupt)?);
        }
        access.write(&mut tx).await?;
        sqlx::query("UPDATE access_head SET through = $1 WHERE id = 1")
            .bind(last + 1)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        total += read as u64;
        runs += 1;
        if (read as i64) < ACCESS_RUN || most.is_some_and(|m| runs >= m) {
            return Ok(total);
        }
    }
}

/// What a run of entries adds to the forensics access index: per (waybill, principal), in the run's order of
/// seq, the most shown, the first access, the latest, the first full view and how many
/// ([`wbg_audit::EntryHead::access`] says which entries are accesses).
#[derive(Default)]
struct Accesses(std::collections::BTreeMap<(String, String), AccessRun>);

/// One (waybill, principal)'s accesses within a run.
struct AccessRun {
    full: bool,
    first_seq: i64,
    first_at: i64,
    last_at: i64,
    full_seq: Option<i64>,
    reads: i64,
}

impl Accesses {
    fn push(&mut self, seq: i64, e: &wbg_audit::EntryHead<'_>) {
        let Some(a) = e.access() else {
            return;
        };
        let full_seq = a.full.then_some(seq);
        self.0
            .entry((a.waybill, a.principal))
            .and_modify(|r| {
                r.full |= a.full;
                r.last_at = r.last_at.max(e.time);
                r.full_seq = r.full_seq.or(full_seq);
                r.reads += 1;
            })
            .or_insert(AccessRun {
                full: a.full,
                first_seq: seq,
                first_at: e.time,
                last_at: e.time,
                full_seq,
                reads: 1,
            });
    }

    /// Adds the run to `access` and the principals' totals in one statement, inside [`index_access`]'s
    /// transaction (whose advisory lock makes it the only writer of both tables). A principal's totals grow by
    /// the waybills new to it, and by those it now sees in full for the first time; the rows before the
    /// statement are what `old` reads (every part of one statement sees the same snapshot).
    async fn write(self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let n = self.0.len();
        let (mut waybill, mut principal, mut view) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut first_seq, mut first_at, mut last_at, mut full_seq, mut reads) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for ((w, p), r) in self.0 {
            waybill.push(w);
            principal.push(p);
            view.push(if r.full { 2i16 } else { 1 });
            first_seq.push(r.first_seq);
            first_at.push(r.first_at);
            last_at.push(r.last_at);
            full_seq.push(r.full_seq);
            reads.push(r.reads);
        }
        sqlx::query(
            "WITH b AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::int2[], $4::int8[], $5::int8[], $6::int8[],
                                          $7::int8[], $8::int8[])
                        AS b(waybill, principal, view, first_seq, first_at, last_at, full_seq, reads)),
                  old AS (SELECT a.waybill, a.principal, a.view FROM access a JOIN b USING (waybill, principal)),
                  up AS (INSERT INTO access AS a
                             (waybill, principal, view, first_seq, first_at, last_at, full_seq, reads)
                         SELECT * FROM b
                         ON CONFLICT (waybill, principal) DO UPDATE SET view = GREATEST(a.view, excluded.view),
                             last_at = GREATEST(a.last_at, excluded.last_at),
                             full_seq = COALESCE(a.full_seq, excluded.full_seq), reads = a.reads + excluded.reads)
             INSERT INTO access_principals AS p (name, shown_full, shown_any)
             SELECT b.principal, count(*) FILTER (WHERE b.view = 2 AND COALESCE(old.view, 0) < 2),
                    count(*) FILTER (WHERE old.view IS NULL)
             FROM b LEFT JOIN old USING (waybill, principal) GROUP BY b.principal
             ON CONFLICT (name) DO UPDATE SET shown_full = p.shown_full + excluded.shown_full,
                 shown_any = p.shown_any + excluded.shown_any",
        )
        .bind(waybill)
        .bind(principal)
        .bind(view)
        .bind(first_seq)
        .bind(first_at)
        .bind(last_at)
        .bind(full_seq)
        .bind(reads)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// What the search index keeps of a run of entries, column by column (for one `UNNEST`).
#[derive(Default)]
struct IndexColumns {
    account: Vec<String>,
    waybill: Vec<Option<String>>,
    action: Vec<String>,
    decision: Vec<String>,
}

impl IndexColumns {
    fn push(&mut self, e: &AuditEntry) {
        self.account.push(e.account.clone());
        self.waybill.push(e.waybill.clone());
        self.action.push(e.action.clone());
        self.decision.push(e.decision.clone());
    }
}

/// The log's tail as `audit_head` records it.
async fn head_in(tx: &mut Tx<'_>) -> Result<LogTail, StoreError> {
    let (size, frontier, last_leaf): (i64, Vec<u8>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT size, frontier, last_leaf FROM audit_head WHERE id = 1")
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
    let mut hashes = frontier.chunks(32);
    let last = last_leaf.as_deref().map(hash32).transpose()?;
    LogTail::load(
        size as u64,
        |_, _| {
            hashes
                .next()
                .ok_or_else(|| {
                    wbg_audit::AuditError::Store("the audit head's frontier is short".into())
                })
                .and_then(|h| {
                    h.try_into().map_err(|_| {
                        wbg_audit::AuditError::Store("a frontier hash is not 32 bytes".into())
                    })
                })
        },
        last,
    )
    .map_err(StoreError::corrupt)
}

const ACCOUNT_COLS: &str =
    "a.id, a.role, a.outlet, a.merchant, a.status, a.status_reason, a.created_at, a.status_since";

/// Stores `token` for account `id`, issued at `at`.
async fn insert_token(
    tx: &mut Tx<'_>,
    token: &NewToken,
    id: &AccountId,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tokens (hash, account_id, created_at, expires_at, issued_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&token.hash[..])
    .bind(id.as_str())
    .bind(at)
    .bind(token.expires_at)
    .bind(&token.issued_by)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

async fn account_by_token_in(
    c: &mut sqlx::PgConnection,
    hash: &[u8; 32],
) -> Result<Option<Account>, StoreError> {
    let row: Option<rows::AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLS} FROM tokens t JOIN accounts a ON a.id = t.account_id
         WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)"
    ))
    .bind(&hash[..])
    .bind(wbg_core::now_millis())
    .fetch_optional(c)
    .await
    .map_err(db)?;
    row.map(rows::account).transpose()
}

async fn waybill_in(
    c: &mut sqlx::PgConnection,
    no: &WaybillNo,
) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError> {
    let row: Option<rows::WaybillRow> = sqlx::query_as(
        "SELECT merchant, origin_outlet, destination_outlet, courier, status, created_at, updated_at,
         signed_at, bucket, sealed FROM waybills WHERE no = $1",
    )
    .bind(no.as_str())
    .fetch_optional(c)
    .await
    .map_err(db)?;
    row.map(|r| rows::waybill(no, r)).transpose()
}

async fn events_in(
    c: &mut sqlx::PgConnection,
    no: &WaybillNo,
) -> Result<Vec<EventRecord>, StoreError> {
    let rows: Vec<rows::EventRow> = sqlx::query_as(
        "SELECT at, type, outlet, courier, actor FROM waybill_events WHERE no = $1 ORDER BY id",
    )
    .bind(no.as_str())
    .fetch_all(c)
    .await
    .map_err(db)?;
    rows.into_iter().map(rows::event).collect()
}

/// The number waybill `no` has, if any.
async fn binding_of_waybill(
    c: &mut sqlx::PgConnection,
    no: &WaybillNo,
) -> Result<Option<NumberBinding>, StoreError> {
    let row: Option<rows::BindingRow> = sqlx::query_as(
        "SELECT number, waybill_no, courier, bound_at FROM privacy_numbers WHERE waybill_no = $1",
    )
    .bind(no.as_str())
    .fetch_optional(c)
    .await
    .map_err(db)?;
    row.map(rows::binding).transpose()
}

/// [`Numbers::bind_numbers`] on `pool`, in one transaction of its own.
async fn bind_in(
    pool: &PgPool,
    wanted: &[(WaybillNo, AccountId)],
    now: Millis,
    release: NumberRelease,
    audit: &mut (impl FnMut(&WaybillNo, &AccountId, &BindOutcome) -> Option<AuditEntry> + ?Sized),
) -> Result<(Vec<BindOutcome>, Option<u64>), StoreError> {
    // Binders run side by side, on every node: each holds its waybills' rows (two binders of one waybill
    // queue) and the numbers it ends with (below), never a lock of the whole pool. The advisory lock is
    // taken shared: binders of earlier versions took it alone, one at a time, and during a rolling
    // upgrade such a binder still excludes every binder of this version. It is taken with the `BEGIN`,
    // in one round trip of the two (a binding group made nine).
    let mut tx = pool
        .begin_with("BEGIN; SELECT pg_advisory_xact_lock_shared(7707002)")
        .await
        .map_err(db)?;
    let nos: Vec<&str> = wanted.iter().map(|(no, _)| no.as_str()).collect();
    // The waybills' rows, `NO KEY UPDATE` (the lock a scan's update takes), in the order a scan's group
    // locks them: a scan of one of them waits for the binding, and a binding for the scan, so the statuses
    // read here stay true until this commits.
    let current: std::collections::HashMap<String, (String, Option<String>)> = sqlx::query_as::<
        _,
        (String, String, Option<String>),
    >(
        "SELECT no, status, courier FROM waybills WHERE no = ANY($1) ORDER BY no FOR NO KEY UPDATE",
    )
    .bind(&nos)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?
    .into_iter()
    .map(|(no, status, courier)| (no, (status, courier)))
    .collect();
    // The numbers they have, held. Another binder may be taking one for its own waybill (it had rested
    // since this one last left delivery); that binder is waited for, and the number is then no longer
    // this waybill's. A binder waits only here and above: the free numbers it takes, it takes unwaited.
    let mut had: std::collections::HashMap<String, NumberBinding> =
        sqlx::query_as::<_, rows::BindingRow>(
            "SELECT number, waybill_no, courier, bound_at FROM privacy_numbers
             WHERE waybill_no = ANY($1) ORDER BY number FOR UPDATE",
        )
        .bind(&nos)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| rows::binding(row).map(|b| (b.waybill_no.to_string(), b)))
        .collect::<Result<_, _>>()?;
    let mut outcomes: Vec<Option<BindOutcome>> = vec![None; wanted.len()];
    let mut exhausted = false;
    // In rounds, each waybill once a round: one listed twice is bound again after its first binding.
    let mut pending: Vec<usize> = (0..wanted.len()).collect();
    while !pending.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let (round, later): (Vec<usize>, Vec<usize>) =
            pending.into_iter().partition(|&i| seen.insert(nos[i]));
        pending = later;
        let mut needing = Vec::new();
        for &i in &round {
            let (no, courier) = &wanted[i];
            let status = current
                .get(no.as_str())
                .map(|(s, c)| (s.as_str(), c.as_deref()));
            outcomes[i] = match had.get(no.as_str()) {
                _ if !BindOutcome::needed(status, courier) => Some(BindOutcome::NotNeeded),
                Some(h) => Some(BindOutcome::decide(no, courier, now, Some(h.clone()), None)),
                None => {
                    needing.push(i);
                    None
                }
            };
        }
        // A number bound here is bound already, by `take_free_numbers`.
        let wants: Vec<(&WaybillNo, &AccountId)> = needing
            .iter()
            .map(|&i| (&wanted[i].0, &wanted[i].1))
            .collect();
        let free = if exhausted {
            vec![None; wants.len()]
        } else {
            take_free_numbers(&mut tx, &wants, now, release).await?
        };
        for (&i, free) in needing.iter().zip(free) {
            let (no, courier) = &wanted[i];
            let outcome = BindOutcome::decide(no, courier, now, None, free);
            exhausted |= outcome == BindOutcome::Exhausted;
            outcomes[i] = Some(outcome);
        }
        // The round's rebindings and the waybills that wait, one statement each; what a waybill has now
        // is what a later round of it finds.
        let mut rebound: (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
        let mut waiting: (Vec<&str>, Vec<&str>) = Default::default();
        for &i in &round {
            let (no, courier) = &wanted[i];
            match &outcomes[i] {
                Some(BindOutcome::Bound(b)) => {
                    had.insert(no.to_string(), b.clone());
                }
                Some(BindOutcome::Rebound { binding: b, .. }) => {
                    had.insert(no.to_string(), b.clone());
                    rebound.0.push(&b.number);
                    rebound.1.push(no.as_str());
                    rebound.2.push(courier.as_str());
                }
                Some(BindOutcome::Exhausted) => {
                    waiting.0.push(no.as_str());
                    waiting.1.push(courier.as_str());
                }
                _ => {}
            }
        }
        if !rebound.0.is_empty() {
            sqlx::query(
                "UPDATE privacy_numbers q SET waybill_no = u.no, courier = u.courier, bound_at = $4
                 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(number, no, courier)
                 WHERE q.number = u.number",
            )
            .bind(&rebound.0)
            .bind(&rebound.1)
            .bind(&rebound.2)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        if !waiting.0.is_empty() {
            sqlx::query(
                "INSERT INTO privacy_waiting (waybill_no, courier, since)
                 SELECT no, courier, $3 FROM UNNEST($1::text[], $2::text[]) AS w(no, courier)
                 ON CONFLICT (waybill_no) DO UPDATE SET courier = excluded.courier",
            )
            .bind(&waiting.0)
            .bind(&waiting.1)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
    }
    let outcomes: Vec<BindOutcome> = outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| StoreError::Db("a waybill was left unbound".into())))
        .collect::<Result<_, _>>()?;
    // Every waybill but those that wait stops waiting.
    let dequeued: Vec<&str> = wanted
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o != BindOutcome::Exhausted)
        .map(|((no, _), _)| no.as_str())
        .collect();
    if !dequeued.is_empty() {
        sqlx::query("DELETE FROM privacy_waiting WHERE waybill_no = ANY($1)")
            .bind(&dequeued)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    let entries: Vec<AuditEntry> = wanted
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o != BindOutcome::NotNeeded)
        .filter_map(|((no, courier), o)| audit(no, courier, o))
        .collect();
    let seq = if entries.is_empty() {
        None
    } else {
        Some(queue_entries(&mut tx, entries).await?)
    };
    tx.commit().await.map_err(db)?;
    Ok((outcomes, seq))
}

/// Binds a free number to each waybill of `wants` (with its courier) in `tx`: each one's number, or `None` when
/// no number is free — or when every free one is being taken by another binder at this moment (the waybill then
/// waits, and upkeep binds it within a second once one is free). The candidates are the free numbers rested
/// longest that no other binder holds, locked, one for each waybill in order, found in one walk; each is bound
/// only if it is still free when the binding statement starts (its last waybill may have gone back out for
/// delivery since the walk), else held and passed over, and its waybill gets a candidate of the next walk.
async fn take_free_numbers(
    tx: &mut Tx<'_>,
    wants: &[(&WaybillNo, &AccountId)],
    now: Millis,
    release: NumberRelease,
) -> Result<Vec<Option<String>>, StoreError> {
    let mut got: Vec<Option<String>> = vec![None; wants.len()];
    let mut open: Vec<usize> = (0..wants.len()).collect();
    let mut passed: Vec<String> = Vec::new();
    while !open.is_empty() {
        let candidates: Vec<String> = sqlx::query_scalar(wbg_store::FREE_NUMBERS_SKIP_LOCKED_SQL)
            .bind(release.grace_ms)
            .bind(release.quarantine_ms)
            .bind(now)
            .bind(&passed)
            .bind(open.len() as i64)
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
        if candidates.is_empty() {
            break;
        }
        let unpaired = open.split_off(candidates.len().min(open.len()));
        let (nos, couriers): (Vec<&str>, Vec<&str>) = open
            .iter()
            .map(|&i| (wants[i].0.as_str(), wants[i].1.as_str()))
            .unzip();
        let taken: std::collections::HashSet<String> =
            sqlx::query_scalar(wbg_store::TAKE_FREE_NUMBERS_SQL)
                .bind(release.grace_ms)
                .bind(release.quarantine_ms)
                .bind(now)
                .bind(&candidates)
                .bind(&nos)
                .bind(&couriers)
                .fetch_all(&mut **tx)
                .await
                .map_err(db)?
                .into_iter()
                .collect();
        let mut again = Vec::new();
        for (i, number) in open.into_iter().zip(candidates) {
            if taken.contains(&number) {
                got[i] = Some(number);
            } else {
                passed.push(number);
                again.push(i);
            }
        }
        again.extend(unpaired);
        open = again;
    }
    Ok(got)
}

/// The account `id`, if there is one.
async fn account_of(pool: &PgPool, id: &AccountId) -> Result<Option<Account>, StoreError> {
    let row: Option<rows::AccountRow> = sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLS} FROM accounts a WHERE a.id = $1"
    ))
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.map(rows::account).transpose()
}

/// Who a guarded read is for: the hash of the token presented, or an account an identity provider vouched for
/// (known by its id).
#[derive(Debug)]
enum Caller {
    Token([u8; 32]),
    Account(AccountId),
}

/// What a lookup reads of the waybill: everything a guarded read needs (the sealed fields, the events and a
/// courier's binding), or a scan's metadata alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Scan,
}

/// Who awaits a lookup: a guarded read, or a scan, told the account and the metadata of what was read for it
/// (its lookup asked [`Want::Scan`]: no sealed fields, events or binding were read).
enum Snapshot {
    Read(TicketSender<ReadSnapshot>),
    Scan(TicketSender<ScanSnapshot>),
}

impl Reply<ReadSnapshot> for Snapshot {
    fn send(self, outcome: Result<ReadSnapshot, StoreError>) {
        match self {
            Snapshot::Read(tx) => tx.send(outcome),
            Snapshot::Scan(tx) => tx.send(outcome.map(|snap| ScanSnapshot {
                account: snap.account,
                waybill: snap.waybill.map(|(meta, _)| meta),
            })),
        }
    }
}

/// Guarded reads' and scans' lookups waiting to be made together: the caller, the waybill, what is wanted of it,
/// and who awaits the result.
type Lookup = ((Caller, WaybillNo, Want), Snapshot);

/// Lookups one statement makes at most.
const LOOKUPS: usize = 64;

/// Makes guarded reads' and scans' lookups in groups: every lookup waiting when a statement slot frees up goes
/// into one statement (one for each kind of caller and want the group holds), so under load a read costs
/// PostgreSQL a share of one statement rather than one of its own (the per-statement work — a round trip,
/// executor start-up, a snapshot — was most of a lookup's cost).
async fn group_lookups(kept: Kept, rx: tokio::sync::mpsc::UnboundedReceiver<Lookup>, lanes: u32) {
    in_groups(kept, rx, lanes, LOOKUPS, |mut c, keys| async move {
        let snaps = read_snapshots(&mut c, &keys).await;
        (c, snaps)
    })
    .await
}

/// A public tracking lookup: the waybill, and who is told what it found.
type Track = (
    WaybillNo,
    TicketSender<Option<(WaybillMeta, Vec<EventRecord>)>>,
);

/// Tracking lookups one statement makes at most.
const TRACKS: usize = 64;

/// Makes public tracking lookups in groups, as [`group_lookups`] does guarded reads': every lookup waiting goes
/// into one statement (a waybill and its events, from one snapshot), on a kept connection, one statement at a
/// time. Each lookup was two statements on the pool before, with the pool's two pings around each.
async fn group_tracks(kept: Kept, rx: tokio::sync::mpsc::UnboundedReceiver<Track>) {
    in_groups(kept, rx, 1, TRACKS, |mut c, nos| async move {
        let found = tracking_snapshots(&mut c, &nos).await;
        (c, found)
    })
    .await
}

/// Each waybill of `nos` with its events, in one statement, in the order asked (`None` for one not stored). The
/// sealed fields stay in the database: a tracking lookup never sees them.
async fn tracking_snapshots(
    c: &mut sqlx::PgConnection,
    nos: &[WaybillNo],
) -> Result<Vec<Option<(WaybillMeta, Vec<EventRecord>)>>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT q.i, w.merchant, w.origin_outlet, w.destination_outlet, w.courier, w.status, w.created_at,
                w.updated_at, w.signed_at, w.bucket, '\\x'::bytea,
                ev.ats, ev.types, ev.outlets, ev.couriers, ev.actors, ev.ids
         FROM UNNEST($1::text[]) WITH ORDINALITY AS q(no, i)
         JOIN waybills w ON w.no = q.no
         LEFT JOIN LATERAL ({EVENTS_OF_W}) ev ON true"
    ))
    .bind(nos.iter().map(WaybillNo::as_str).collect::<Vec<_>>())
    .fetch_all(c)
    .await
    .map_err(db)?;
    let mut out: Vec<Option<(WaybillMeta, Vec<EventRecord>)>> = nos.iter().map(|_| None).collect();
    for r in rows {
        let i: i64 = r.try_get(0).map_err(db)?;
        let (no, slot) = usize::try_from(i - 1)
            .ok()
            .and_then(|i| Some((nos.get(i)?, out.get_mut(i)?)))
            .ok_or_else(|| {
                StoreError::corrupt("a tracking lookup answered for a waybill it was not asked")
            })?;
        if let Some((meta, _)) = waybill_from(no, &r, 1)? {
            *slot = Some((meta, events_from(&r, 11, 16)?));
        }
    }
    Ok(out)
}

/// A waybill's events (of `w`, joined laterally) aggregated into one row: arrays of times, types, outlets,
/// couriers, actors and ids, in the order recorded.
const EVENTS_OF_W: &str = "SELECT array_agg(e.at) AS ats, array_agg(e.type) AS types, \
     array_agg(e.outlet) AS outlets, array_agg(e.courier) AS couriers, array_agg(e.actor) AS actors, \
     array_agg(e.id) AS ids FROM (SELECT * FROM waybill_events e WHERE e.no = w.no ORDER BY e.id) e";

/// The snapshots of several lookups, in the order asked (an unknown caller's is empty): one statement for each
/// kind of caller (by token, by account) and of want the group holds, each one round trip. A read's statement
/// reads the account, the waybill, its events and, for a courier, its privacy-number binding together; a scan's
/// the account and the waybill's metadata (not its sealed fields). A lookup whose caller is not found reads
/// nothing else.
async fn read_snapshots(
    c: &mut sqlx::PgConnection,
    keys: &[(Caller, WaybillNo, Want)],
) -> Result<Vec<ReadSnapshot>, StoreError> {
    let mut out: Vec<ReadSnapshot> = keys.iter().map(|_| ReadSnapshot::default()).collect();
    for want in [Want::Read, Want::Scan] {
        let (mut hashes, mut by_token, mut ids, mut by_account) = (vec![], vec![], vec![], vec![]);
        for (at, (caller, _, wanted)) in keys.iter().enumerate() {
            match caller {
                _ if *wanted != want => {}
                Caller::Token(h) => {
                    hashes.push(h.to_vec());
                    by_token.push(at);
                }
                Caller::Account(id) => {
                    ids.push(id.as_str());
                    by_account.push(at);
                }
            }
        }
        let nos = |asked: &[usize]| -> Vec<&str> {
            asked.iter().map(|&at| keys[at].1.as_str()).collect()
        };
        if !by_token.is_empty() {
            let rows = sqlx::query(&snapshots_sql(
                want,
                "FROM UNNEST($1::bytea[], $2::text[]) WITH ORDINALITY AS q(hash, no, i)
                 JOIN tokens t ON t.hash = q.hash AND (t.expires_at IS NULL OR t.expires_at > $3)
                 JOIN accounts a ON a.id = t.account_id",
            ))
            .bind(hashes)
            .bind(nos(&by_token))
            .bind(wbg_core::now_millis())
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
            fill_snapshots(&mut out, keys, &by_token, want, rows)?;
        }
        if !by_account.is_empty() {
            let rows = sqlx::query(&snapshots_sql(
                want,
                "FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS q(id, no, i)
                 JOIN accounts a ON a.id = q.id",
            ))
            .bind(ids)
            .bind(nos(&by_account))
            .fetch_all(&mut *c)
            .await
            .map_err(db)?;
            fill_snapshots(&mut out, keys, &by_account, want, rows)?;
        }
    }
    Ok(out)
}

/// A statement of [`read_snapshots`]: `callers` names the asked lookups `q` (each with its waybill `no` and its
/// place `i`) and joins each to its account `a`; the waybill follows, for a read with its events and a
/// courier's binding, for a scan its metadata alone (an empty `sealed`).
fn snapshots_sql(want: Want, callers: &str) -> String {
    match want {
        Want::Read => format!(
            "SELECT {ACCOUNT_COLS},
                    w.merchant, w.origin_outlet, w.destination_outlet, w.courier, w.status, w.created_at,
                    w.updated_at, w.signed_at, w.bucket, w.sealed,
                    ev.ats, ev.types, ev.outlets, ev.couriers, ev.actors,
                    p.number, p.waybill_no, p.courier AS bound_courier, p.bound_at, q.i, ev.ids
             {callers}
             LEFT JOIN waybills w ON w.no = q.no
             LEFT JOIN LATERAL ({EVENTS_OF_W}) ev ON true
             LEFT JOIN privacy_numbers p ON p.waybill_no = w.no AND a.role = 'courier'"
        ),
        Want::Scan => format!(
            "SELECT {ACCOUNT_COLS},
                    w.merchant, w.origin_outlet, w.destination_outlet, w.courier, w.status, w.created_at,
                    w.updated_at, w.signed_at, w.bucket, '\\x'::bytea, q.i
             {callers}
             LEFT JOIN waybills w ON w.no = q.no"
        ),
    }
}

/// Puts each row of a [`read_snapshots`] statement for `want` into `out`, at the place of the lookup it
/// answers: the statement asked the lookups at `asked` (its `q.i` counts from one through them).
fn fill_snapshots(
    out: &mut [ReadSnapshot],
    keys: &[(Caller, WaybillNo, Want)],
    asked: &[usize],
    want: Want,
    rows: Vec<sqlx::postgres::PgRow>,
) -> Result<(), StoreError> {
    // The column of `q.i`: after the account's 8 and the waybill's 10, and for a read the events and binding.
    let place = match want {
        Want::Read => 27,
        Want::Scan => 18,
    };
    for r in rows {
        let i: i64 = r.try_get(place).map_err(db)?;
        let (no, slot) = usize::try_from(i - 1)
            .ok()
            .and_then(|i| asked.get(i))
            .and_then(|&at| Some((&keys.get(at)?.1, out.get_mut(at)?)))
            .ok_or_else(|| {
                StoreError::corrupt("a lookup answered for a request it was not asked")
            })?;
        *slot = match want {
            Want::Read => snapshot_of(no, &r)?,
            Want::Scan => ReadSnapshot {
                account: Some(account_from(&r)?),
                waybill: waybill_from(no, &r, 8)?,
                ..ReadSnapshot::default()
            },
        };
    }
    Ok(())
}

/// One read's snapshot from its row of [`read_snapshots`].
fn snapshot_of(no: &WaybillNo, r: &sqlx::postgres::PgRow) -> Result<ReadSnapshot, StoreError> {
    let g = |e: sqlx::Error| db(e);
    let account = account_from(r)?;
    let waybill = waybill_from(no, r, 8)?;
    let events = events_from(r, 18, 28)?;
    let number: Option<String> = r.try_get(23).map_err(g)?;
    let number = match number {
        None => None,
        Some(n) => Some(rows::binding((
            n,
            r.try_get(24).map_err(g)?,
            r.try_get(25).map_err(g)?,
            r.try_get(26).map_err(g)?,
        ))?),
    };
    Ok(ReadSnapshot {
        account: Some(account),
        waybill,
        events,
        number,
    })
}

/// The account of a lookup's row: its first eight columns ([`ACCOUNT_COLS`]).
fn account_from(r: &sqlx::postgres::PgRow) -> Result<Account, StoreError> {
    let g = |e: sqlx::Error| db(e);
    rows::account((
        r.try_get(0).map_err(g)?,
        r.try_get(1).map_err(g)?,
        r.try_get(2).map_err(g)?,
        r.try_get(3).map_err(g)?,
        r.try_get(4).map_err(g)?,
        r.try_get(5).map_err(g)?,
        r.try_get(6).map_err(g)?,
        r.try_get(7).map_err(g)?,
    ))
}

/// Waybill `no` from the ten columns of a row that start at `at` (merchant … sealed, as [`rows::WaybillRow`]),
/// `None` when the merchant is null (no such waybill).
fn waybill_from(
    no: &WaybillNo,
    r: &sqlx::postgres::PgRow,
    at: usize,
) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError> {
    let g = |e: sqlx::Error| db(e);
    let merchant: Option<String> = r.try_get(at).map_err(g)?;
    let Some(merchant) = merchant else {
        return Ok(None);
    };
    let row = (
        merchant,
        r.try_get(at + 1).map_err(g)?,
        r.try_get(at + 2).map_err(g)?,
        r.try_get(at + 3).map_err(g)?,
        r.try_get(at + 4).map_err(g)?,
        r.try_get(at + 5).map_err(g)?,
        r.try_get(at + 6).map_err(g)?,
        r.try_get(at + 7).map_err(g)?,
        r.try_get(at + 8).map_err(g)?,
        r.try_get(at + 9).map_err(g)?,
    );
    rows::waybill(no, row).map(Some)
}

/// A waybill's events from the aggregated columns of a row: five arrays from `at` (times, types, outlets,
/// couriers, actors) and the events' ids at `ids`.
fn events_from(
    r: &sqlx::postgres::PgRow,
    at: usize,
    ids: usize,
) -> Result<Vec<EventRecord>, StoreError> {
    let g = |e: sqlx::Error| db(e);
    let ats: Option<Vec<i64>> = r.try_get(at).map_err(g)?;
    let types: Option<Vec<String>> = r.try_get(at + 1).map_err(g)?;
    let outlets: Option<Vec<String>> = r.try_get(at + 2).map_err(g)?;
    let couriers: Option<Vec<Option<String>>> = r.try_get(at + 3).map_err(g)?;
    let actors: Option<Vec<String>> = r.try_get(at + 4).map_err(g)?;
    let ids: Option<Vec<i64>> = r.try_get(ids).map_err(g)?;
    // One aggregate step fills every array from the same rows in the same order; the ids put them in the
    // order the events were recorded (the ordered subquery gives that order in practice, which SQL does not
    // promise an aggregate keeps).
    let mut events = ids
        .unwrap_or_default()
        .into_iter()
        .zip(ats.unwrap_or_default())
        .zip(types.unwrap_or_default())
        .zip(outlets.unwrap_or_default())
        .zip(couriers.unwrap_or_default())
        .zip(actors.unwrap_or_default())
        .map(|(((((id, at), t), o), c), a)| Ok((id, rows::event((at, t, o, c, a))?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    if !events.is_sorted_by_key(|(id, _)| *id) {
        events.sort_by_key(|(id, _)| *id);
    }
    Ok(events.into_iter().map(|(_, e)| e).collect())
}

/// A waybill row with its number first.
type WaybillRowWithNo = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
    i64,
    Vec<u8>,
);

/// Node `(level, index)` lives in the row of the entry whose append completed it, at `level * 32`.
async fn node_in(
    c: &mut sqlx::PgConnection,
    level: u32,
    index: u64,
) -> Result<Option<Hash>, StoreError> {
    let Some(seq) = index
        .checked_add(1)
        .and_then(|n| n.checked_shl(level))
        .map(|n| n - 1)
    else {
        return Ok(None);
    };
    let nodes: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT substring(nodes from $2 for 32) FROM audit_entries WHERE seq = $1",
    )
    .bind(seq as i64)
    .bind(level as i32 * 32 + 1)
    .fetch_optional(c)
    .await
    .map_err(db)?;
    match nodes {
        Some(h) if h.len() == 32 => Ok(Some(hash32(&h)?)),
        _ => Ok(None),
    }
}

impl PgStore {
    /// Runs `f` in a transaction with `audit` appended last; returns `f`'s result and the entry's seq.
    fn audited<T, F>(&self, audit: AuditEntry, f: F) -> Result<(T, u64), StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut Tx<'_>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>,
        >,
    {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let out = f(&mut tx).await?;
            let seq = queue_entries(&mut tx, [audit]).await?;
            tx.commit().await.map_err(db)?;
            Ok((out, seq))
        })
    }

    async fn insert_batch(tx: &mut Tx<'_>, batch: &[SealedWaybill]) -> Result<(), StoreError> {
        // One statement, its rows in waybill-number order: two batches that share numbers (a duplicate ingest
        // racing itself on two nodes) take the numbers' index entries in one order, so the second waits for the
        // first and then finds its numbers taken (409) instead of deadlocking with it (503).
        let mut rows: Vec<&SealedWaybill> = batch.iter().collect();
        rows.sort_unstable_by(|a, b| a.meta.waybill_no.as_str().cmp(b.meta.waybill_no.as_str()));
        let column = |f: fn(&WaybillMeta) -> &str| -> Vec<&str> {
            rows.iter().map(|w| f(&w.meta)).collect()
        };
        let stored: Vec<String> = sqlx::query_scalar(
            "INSERT INTO waybills (no, merchant, origin_outlet, destination_outlet, courier, status,
             created_at, updated_at, signed_at, bucket, sealed)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::bytea[])
             ON CONFLICT (no) DO NOTHING RETURNING no",
        )
        .bind(column(|m| m.waybill_no.as_str()))
        .bind(column(|m| m.merchant.as_str()))
        .bind(column(|m| m.origin_outlet.as_str()))
        .bind(column(|m| m.destination_outlet.as_str()))
        .bind(rows.iter().map(|w| w.meta.courier.as_ref().map(|c| c.as_str())).collect::<Vec<_>>())
        .bind(column(|m| m.status.as_str()))
        .bind(rows.iter().map(|w| w.meta.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|w| w.meta.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|w| w.meta.signed_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|w| w.meta.bucket).collect::<Vec<_>>())
        .bind(rows.iter().map(|w| w.sealed.as_slice()).collect::<Vec<_>>())
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        if stored.len() != batch.len() {
            // The first of the batch's numbers stored before, or named a second time (as a row per statement
            // told it); the caller's transaction is rolled back.
            let mut stored: std::collections::HashSet<&str> =
                stored.iter().map(String::as_str).collect();
            let taken = batch
                .iter()
                .map(|w| w.meta.waybill_no.as_str())
                .find(|no| !stored.remove(no));
            return Err(StoreError::Conflict(match taken {
                Some(no) => format!("waybill {no} exists already"),
                None => "a waybill of the batch exists already".into(),
            }));
        }
        // The blind index in one statement per batch.
        let (mut tokens, mut nos, mut parties, mut kinds) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for w in batch {
            for (kind, party, token) in &w.blind {
                tokens.push(token.to_vec());
                nos.push(w.meta.waybill_no.as_str().to_owned());
                parties.push(i16::from(*party));
                kinds.push(i16::from(*kind));
            }
        }
        sqlx::query(
            "INSERT INTO blind_index (token, no, party, kind)
             SELECT * FROM UNNEST($1::bytea[], $2::text[], $3::int2[], $4::int2[])",
        )
        .bind(tokens)
        .bind(nos)
        .bind(parties)
        .bind(kinds)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// Stored waybill numbers, each checked again as it leaves the store.
fn parse_nos(nos: Vec<String>) -> Result<Vec<WaybillNo>, StoreError> {
    nos.iter().map(|n| rows::waybill_no(n)).collect()
}

impl Store for PgStore {
    fn maintain(&self) -> Result<(), StoreError> {
        self.make_partitions()?;
        // One run a call: upkeep's next tick takes the next, and a first indexing of a long log never holds up
        // what else upkeep does.
        self.run(index_access(&self.pool, false, Some(1)))?;
        Ok(())
    }

    fn store_id(&self) -> Result<String, StoreError> {
        self.run(async {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'store_id'")
                .fetch_one(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn read_snapshot(&self, token_hash: &[u8; 32], no: &WaybillNo) -> Ticket<ReadSnapshot> {
        // Joins the next grouped lookup on this store's own runtime: an async caller awaits the ticket without
        // blocking.
        enqueue_as(
            &self.lookups,
            (Caller::Token(*token_hash), no.clone(), Want::Read),
            Snapshot::Read,
            "the read lookups have stopped",
        )
    }

    fn read_snapshot_of_account(&self, id: &AccountId, no: &WaybillNo) -> Ticket<ReadSnapshot> {
        // The same grouped lookups as a read by token: one statement a group, awaited without blocking.
        enqueue_as(
            &self.lookups,
            (Caller::Account(id.clone()), no.clone(), Want::Read),
            Snapshot::Read,
            "the read lookups have stopped",
        )
    }

    fn scan_snapshot(&self, token_hash: &[u8; 32], no: &WaybillNo) -> Ticket<ScanSnapshot> {
        // The same grouped lookups as a read's, with a statement of their own that reads no more than a scan
        // needs.
        enqueue_as(
            &self.lookups,
            (Caller::Token(*token_hash), no.clone(), Want::Scan),
            Snapshot::Scan,
            "the read lookups have stopped",
        )
    }
}

impl Keys for PgStore {
    fn get_wrapped_key(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            sqlx::query_scalar("SELECT wrapped FROM wrapped_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn put_wrapped_key_if_absent(&self, id: &str, wrapped: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            // The table's lock for an insert, taken before anything is read: a rotation under way (it holds the
            // table exclusively) ends first and the statements below see its wrapping; one that starts later
            // waits for this transaction and re-wraps the key it adds.
            sqlx::query("LOCK TABLE wrapped_keys IN ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let shredded: Option<i64> = sqlx::query_scalar("SELECT at FROM shredded_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            if shredded.is_some() {
                return Err(StoreError::Conflict(format!(
                    "key {id} was destroyed by retention and is not made again"
                )));
            }
            let otherwise: bool = sqlx::query_scalar(
                "SELECT NOT EXISTS (SELECT 1 FROM wrapped_keys WHERE id = $3)
                    AND EXISTS (SELECT 1 FROM wrapped_keys
                                WHERE substring(wrapped for $2) <> substring($1 for $2))",
            )
            .bind(wrapped)
            .bind(wbg_store::WRAPPING_ID_LEN as i32)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            if otherwise {
                return Err(wbg_store::wrapped_otherwise(id));
            }
            sqlx::query(
                "INSERT INTO wrapped_keys (id, wrapped, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(wrapped)
            .bind(wbg_core::now_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let stored: Vec<u8> = sqlx::query_scalar("SELECT wrapped FROM wrapped_keys WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(stored)
        })
    }

    fn rewrap_keys(
        &self,
        rewrap: &mut Rewrap<'_>,
        audit: AuditEntry,
    ) -> Result<(u64, usize), StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            // Keys made meanwhile wait for this transaction (the table is locked), so none is left behind; so
            // do reads of them, so that a node opening the store meanwhile finds the new wrapping, not the old.
            sqlx::query("LOCK TABLE wrapped_keys IN ACCESS EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            // Whoever holds the node lock exclusively (the rotating process, or its session PostgreSQL ended),
            // no node may serve beside a rotation: asked here, inside the transaction, under the table's lock.
            if nodes::serving(&mut tx).await? > 0 {
                return Err(StoreError::Conflict(
                    "a guard node of this PostgreSQL store is serving (it holds the node lock); stop every \
                     node first"
                        .into(),
                ));
            }
            let keys: Vec<(String, Vec<u8>)> =
                sqlx::query_as("SELECT id, wrapped FROM wrapped_keys ORDER BY id")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db)?;
            for (id, wrapped) in &keys {
                let again = rewrap(id, wrapped).map_err(|e| {
                    StoreError::Db(DbError::context(format!("cannot re-wrap key {id}"), e))
                })?;
                sqlx::query("UPDATE wrapped_keys SET wrapped = $2 WHERE id = $1")
                    .bind(id)
                    .bind(again)
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
            }
            let seq = queue_entries(&mut tx, [audit]).await?;
            tx.commit().await.map_err(db)?;
            // Old row versions go with the next vacuum of the table.
            let _ = sqlx::query("VACUUM wrapped_keys").execute(&self.pool).await;
            Ok((seq, keys.len()))
        })
    }

    fn bucket_ages(&self) -> Result<Vec<BucketAge>, StoreError> {
        self.run(async {
            let rows: Vec<(i64, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT bucket, COUNT(*),
                        MAX(CASE WHEN status IN ('signed', 'returned') THEN COALESCE(signed_at, updated_at) END),
                        MAX(CASE WHEN status NOT IN ('signed', 'returned') THEN created_at END)
                 FROM waybills GROUP BY bucket ORDER BY bucket",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .map(|(bucket, n, last_finished, newest_unfinished)| BucketAge {
                    bucket,
                    waybills: n as u64,
                    last_finished,
                    newest_unfinished,
                })
                .collect())
        })
    }

    fn shred_key(
        &self,
        key_id: &str,
        bucket: i64,
        index_kinds: &[u8],
        audit: AuditEntry,
    ) -> Result<Shredded, StoreError> {
        let kinds: Vec<i16> = index_kinds.iter().map(|k| i16::from(*k)).collect();
        let out = self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("DELETE FROM wrapped_keys WHERE id = $1")
                .bind(key_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query(
                "INSERT INTO shredded_keys (id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(key_id)
            .bind(wbg_core::now_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let waybills: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM waybills WHERE bucket = $1")
                    .bind(bucket)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?;
            let removed = sqlx::query(
                "DELETE FROM blind_index WHERE kind = ANY($2)
                 AND no IN (SELECT no FROM waybills WHERE bucket = $1)",
            )
            .bind(bucket)
            .bind(&kinds)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            let audit_seq = queue_entries(&mut tx, [audit]).await?;
            tx.commit().await.map_err(db)?;
            let _ = sqlx::query("VACUUM wrapped_keys, blind_index")
                .execute(&self.pool)
                .await;
            Ok::<_, StoreError>(Shredded {
                audit_seq,
                waybills: waybills as u64,
                index_entries: removed,
            })
        })?;
        Ok(out)
    }

    fn shredded_keys(&self) -> Result<Vec<String>, StoreError> {
        self.run(async {
            sqlx::query_scalar("SELECT id FROM shredded_keys ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn distinct_index_tokens(&self, kind: u8) -> Result<u64, StoreError> {
        let n: i64 = self.run(async {
            sqlx::query_scalar("SELECT COUNT(DISTINCT token) FROM blind_index WHERE kind = $1")
                .bind(i16::from(kind))
                .fetch_one(&self.pool)
                .await
                .map_err(db)
        })?;
        Ok(n as u64)
    }
}

impl Accounts for PgStore {
    fn create_account(
        &self,
        a: &Account,
        token: Option<&NewToken>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let a = a.clone();
        let token = token.cloned();
        self.audited(audit, move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO accounts (id, role, outlet, merchant, status, status_reason, created_at,
                     status_since) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(a.id.as_str())
                .bind(a.role.as_str())
                .bind(a.outlet.as_ref().map(|o| o.as_str()))
                .bind(a.merchant.as_ref().map(|m| m.as_str()))
                .bind(a.status.as_str())
                .bind(a.status_reason.as_deref())
                .bind(a.created_at)
                .bind(a.status_since)
                .execute(&mut **tx)
                .await
                .map_err(|e| match is_unique_violation(&e) {
                    true => StoreError::Conflict(format!("account {} exists already", a.id)),
                    false => db(e),
                })?;
                if let Some(t) = &token {
                    insert_token(tx, t, &a.id, a.created_at).await?;
                }
                Ok(())
            })
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
        let id = id.clone();
        let token = token.clone();
        self.audited(audit, move |tx| {
            Box::pin(async move {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("account {id}")));
                }
                if !keep_others {
                    sqlx::query("DELETE FROM tokens WHERE account_id = $1")
                        .bind(id.as_str())
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                }
                insert_token(tx, &token, &id, wbg_core::now_millis()).await
            })
        })
        .map(|(_, seq)| seq)
    }

    fn account(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        self.run(account_of(&self.pool, id))
    }

    fn account_later(&self, id: &AccountId) -> Ticket<Option<Account>> {
        // On the store's runtime: an async caller awaits it without parking its worker in `block_in_place`.
        let (pool, id) = (self.pool.clone(), id.clone());
        self.spawn(async move { account_of(&pool, &id).await })
    }

    fn account_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Account>, StoreError> {
        self.run(async {
            let mut c = self.pool.acquire().await.map_err(db)?;
            account_by_token_in(&mut c, token_hash).await
        })
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.run(async {
            let rows: Vec<rows::AccountRow> = sqlx::query_as(&format!(
                "SELECT {ACCOUNT_COLS} FROM accounts a ORDER BY a.id"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.into_iter().map(rows::account).collect()
        })
    }

    fn set_account_status(
        &self,
        id: &AccountId,
        status: AccountStatus,
        reason: Option<&str>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let (id, reason, at) = (id.clone(), reason.map(str::to_owned), audit.time);
        self.audited(audit, move |tx| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE accounts SET status_since = CASE WHEN status = $2 THEN status_since ELSE $4 END,
                     status = $2, status_reason = $3 WHERE id = $1",
                )
                .bind(id.as_str())
                .bind(status.as_str())
                .bind(reason)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(db)?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound(format!("account {id}")));
                }
                Ok(())
            })
        })
        .map(|(_, seq)| seq)
    }

    fn set_account_outlet(
        &self,
        id: &AccountId,
        outlet: &OutletId,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let (id, outlet) = (id.clone(), outlet.clone());
        self.audited(audit, move |tx| {
            Box::pin(async move {
                let n = sqlx::query("UPDATE accounts SET outlet = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(outlet.as_str())
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?
                    .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound(format!("account {id}")));
                }
                Ok(())
            })
        })
        .map(|(_, seq)| seq)
    }
}

impl Waybills for PgStore {
    fn open_waybills(&self, bucket: i64) -> Result<Vec<(WaybillNo, Millis)>, StoreError> {
        let rows: Vec<(String, i64)> = self.run(async {
            sqlx::query_as(
                "SELECT no, created_at FROM waybills WHERE bucket = $1
                 AND status NOT IN ('signed', 'returned') ORDER BY created_at, no",
            )
            .bind(bucket)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
        })?;
        rows.into_iter()
            .map(|(no, at)| Ok((rows::waybill_no(&no)?, at)))
            .collect()
    }

    fn move_waybills(
        &self,
        from: i64,
        to: i64,
        moved: &[(WaybillNo, Vec<u8>)],
        audit: AuditEntry,
    ) -> Result<(u64, u64), StoreError> {
        let nos: Vec<String> = moved.iter().map(|(n, _)| n.as_str().to_owned()).collect();
        let sealed: Vec<Vec<u8>> = moved.iter().map(|(_, s)| s.clone()).collect();
        let (n, seq) = self.audited(audit, move |tx| {
            Box::pin(async move {
                let r = sqlx::query(
                    "UPDATE waybills w SET bucket = $3, sealed = m.sealed
                     FROM UNNEST($1::text[], $4::bytea[]) AS m(no, sealed)
                     WHERE w.no = m.no AND w.bucket = $2",
                )
                .bind(&nos)
                .bind(from)
                .bind(to)
                .bind(&sealed)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
                Ok(r.rows_affected())
            })
        })?;
        Ok((seq, n))
    }

    fn tracking_snapshot(&self, no: &WaybillNo) -> Ticket<Option<(WaybillMeta, Vec<EventRecord>)>> {
        enqueue(
            &self.tracks,
            no.clone(),
            "the tracking lookups have stopped",
        )
    }

    fn append_label_print(
        &self,
        entry: AuditEntry,
        no: &WaybillNo,
        at: Millis,
    ) -> Ticket<(u64, u32)> {
        let job = Commit {
            events: Vec::new(),
            audit: vec![entry],
            print: Some((no.clone(), at)),
        };
        commit(
            &self.prints,
            job,
            Committed::Printed,
            "the label prints' group commit has stopped",
        )
    }

    fn insert_waybills(
        &self,
        batch: &[SealedWaybill],
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            Self::insert_batch(&mut tx, batch).await?;
            let seq = queue_entries(&mut tx, [audit]).await?;
            tx.commit().await.map_err(db)?;
            Ok(seq)
        })
    }

    fn insert_waybill_stream(
        &self,
        chunks: &mut dyn Iterator<Item = Result<Vec<SealedWaybill>, StoreError>>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            for chunk in chunks {
                Self::insert_batch(&mut tx, &chunk?).await?;
            }
            let seq = queue_entries(&mut tx, [audit]).await?;
            tx.commit().await.map_err(db)?;
            Ok(seq)
        })
    }

    fn plant_canaries(
        &self,
        nos: &[WaybillNo],
        principal: &str,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let at = audit.time;
        let nos: Vec<String> = nos.iter().map(|n| n.as_str().to_owned()).collect();
        let principal = principal.to_owned();
        self.audited(audit, move |tx| {
            Box::pin(async move {
                for no in &nos {
                    sqlx::query(
                        "INSERT INTO canaries (no, principal, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(no)
                    .bind(&principal)
                    .bind(at)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| match is_unique_violation(&e) {
                        true => StoreError::Conflict(format!("canary {no} exists")),
                        false => db(e),
                    })?;
                }
                Ok(())
            })
        })
        .map(|(_, seq)| seq)
    }

    fn canaries(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.run(async {
            sqlx::query_as("SELECT no, principal FROM canaries ORDER BY no")
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn waybill(&self, no: &WaybillNo) -> Result<Option<(WaybillMeta, Vec<u8>)>, StoreError> {
        self.run(async {
            let mut c = self.pool.acquire().await.map_err(db)?;
            waybill_in(&mut c, no).await
        })
    }

    fn sample_waybills(&self, limit: usize) -> Result<Vec<(WaybillMeta, Vec<u8>)>, StoreError> {
        type Sampled = (
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            i64,
            i64,
            Option<i64>,
            i64,
            Vec<u8>,
        );
        let found: Vec<Sampled> = self.run(async {
            sqlx::query_as(
                "SELECT no, merchant, origin_outlet, destination_outlet, courier, status, created_at, updated_at,
                 signed_at, bucket, sealed FROM waybills ORDER BY random() LIMIT $1",
            )
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
        })?;
        found
            .into_iter()
            .map(|(no, m, o, d, c, st, ca, ua, sa, b, sealed)| {
                rows::waybill(
                    &rows::waybill_no(&no)?,
                    (m, o, d, c, st, ca, ua, sa, b, sealed),
                )
            })
            .collect()
    }

    fn record_events(&self, events: Vec<EventWrite>, audit: AuditEntry) -> Ticket<u64> {
        let job = Commit {
            events,
            audit: vec![audit],
            print: None,
        };
        commit(
            &self.scans,
            job,
            Committed::Seq,
            "the scans' group commit has stopped",
        )
    }

    fn waybill_metas(&self, nos: &[WaybillNo]) -> Ticket<Vec<Option<WaybillMeta>>> {
        let (pool, nos) = (self.pool.clone(), nos.to_vec());
        self.spawn(async move {
            let names: Vec<&str> = nos.iter().map(WaybillNo::as_str).collect();
            let rows: Vec<(String, rows::WaybillRow)> = sqlx::query_as::<_, WaybillRowWithNo>(
                "SELECT no, merchant, origin_outlet, destination_outlet, courier, status, created_at, updated_at,
                 signed_at, bucket, ''::bytea FROM waybills WHERE no = ANY($1)",
            )
            .bind(&names)
            .fetch_all(&pool)
            .await
            .map_err(db)?
            .into_iter()
            .map(|r| (r.0, (r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10)))
            .collect();
            let mut found: std::collections::HashMap<String, rows::WaybillRow> = rows.into_iter().collect();
            nos.iter()
                .map(|no| {
                    found
                        .remove(no.as_str())
                        .map(|r| rows::waybill(no, r).map(|(m, _)| m))
                        .transpose()
                })
                .collect()
        })
    }

    fn events(&self, no: &WaybillNo) -> Result<Vec<EventRecord>, StoreError> {
        self.run(async {
            let mut c = self.pool.acquire().await.map_err(db)?;
            events_in(&mut c, no).await
        })
    }

    fn find_by_token(&self, token: &[u8; 16]) -> Result<Vec<WaybillNo>, StoreError> {
        self.run(async {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT no FROM blind_index WHERE token = $1 ORDER BY no",
            )
            .bind(&token[..])
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            parse_nos(rows)
        })
    }

    fn find_by_token_of(&self, token: &[u8; 16], party: u8) -> Result<Vec<WaybillNo>, StoreError> {
        self.run(async {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT no FROM blind_index WHERE token = $1 AND party = $2 ORDER BY no",
            )
            .bind(&token[..])
            .bind(i16::from(party))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            parse_nos(rows)
        })
    }

    fn waybill_count(&self) -> Result<u64, StoreError> {
        self.run(async {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM waybills")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn merchant_waybills(
        &self,
        merchant: &MerchantId,
        from: Millis,
        to: Millis,
        limit: usize,
    ) -> Result<Vec<WaybillNo>, StoreError> {
        self.run(async {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT no FROM waybills WHERE merchant = $1 AND created_at >= $2 AND created_at < $3
                 ORDER BY created_at, no LIMIT $4",
            )
            .bind(merchant.as_str())
            .bind(from)
            .bind(to)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            parse_nos(rows)
        })
    }
}

impl Numbers for PgStore {
    fn sync_number_pool(&self, numbers: &[String]) -> Result<PoolSync, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let added = sqlx::query(
                "INSERT INTO privacy_numbers (number) SELECT DISTINCT n FROM UNNEST($1::text[]) AS n
                 ON CONFLICT DO NOTHING",
            )
            .bind(numbers)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            // Numbers back in service, and numbers retired, each taken in number order before they change: the
            // order a binder takes its waybills' numbers in, while other nodes bind. An update alone takes its rows
            // in the table's order, which bindings shuffle (a changed row moves), and so could hold a number a
            // binder was about to take while waiting for one that binder held: PostgreSQL then failed one of
            // them, and when that was this sync at a node's start, the node did not start.
            sqlx::query(
                "WITH l AS (SELECT number FROM privacy_numbers WHERE retired AND number = ANY($1)
                            ORDER BY number FOR UPDATE)
                 UPDATE privacy_numbers p SET retired = false FROM l WHERE p.number = l.number",
            )
            .bind(numbers)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let retired = sqlx::query(
                "WITH l AS (SELECT number FROM privacy_numbers WHERE NOT retired AND NOT (number = ANY($1))
                            ORDER BY number FOR UPDATE)
                 UPDATE privacy_numbers p SET retired = true FROM l WHERE p.number = l.number",
            )
            .bind(numbers)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
            let in_service: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM privacy_numbers WHERE NOT retired")
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            // A pool just filled (up to a million numbers) would otherwise be planned without statistics until
            // autovacuum analyses it, a minute or more: a binder's look-up of its waybills' numbers was then a
            // scan of the whole pool (measured: batched scans out for delivery at half their speed).
            if added > 0 || retired > 0 {
                sqlx::query("ANALYZE privacy_numbers")
                    .execute(&self.pool)
                    .await
                    .map_err(db)?;
            }
            Ok(PoolSync {
                added,
                retired,
                in_service: in_service as u64,
            })
        })
    }

    fn bind_numbers(
        &self,
        wanted: &[(WaybillNo, AccountId)],
        now: Millis,
        release: NumberRelease,
        audit: &mut dyn FnMut(&WaybillNo, &AccountId, &BindOutcome) -> Option<AuditEntry>,
    ) -> Result<(Vec<BindOutcome>, Option<u64>), StoreError> {
        self.run(bind_in(&self.pool, wanted, now, release, audit))
    }

    fn bind_numbers_later(
        &self,
        wanted: Vec<(WaybillNo, AccountId)>,
        now: Millis,
        release: NumberRelease,
        mut audit: wbg_store::BindAudit,
    ) -> Ticket<(Vec<BindOutcome>, Option<u64>)> {
        // On the store's runtime: an async caller awaits it without parking its worker in `block_in_place`
        // for the binding's round trips.
        let pool = self.pool.clone();
        self.spawn(async move { bind_in(&pool, &wanted, now, release, &mut *audit).await })
    }

    fn number_binding(&self, number: &str) -> Result<Option<NumberBinding>, StoreError> {
        self.run(async {
            let row: Option<rows::BindingRow> = sqlx::query_as(
                "SELECT number, waybill_no, courier, bound_at FROM privacy_numbers
                 WHERE number = $1 AND waybill_no IS NOT NULL",
            )
            .bind(number)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            row.map(rows::binding).transpose()
        })
    }

    fn number_of_waybill(&self, no: &WaybillNo) -> Result<Option<NumberBinding>, StoreError> {
        self.run(async {
            let mut c = self.pool.acquire().await.map_err(db)?;
            binding_of_waybill(&mut c, no).await
        })
    }

    fn number_of_waybill_later(&self, no: &WaybillNo) -> Ticket<Option<NumberBinding>> {
        // On the store's runtime: an async caller awaits it without parking its worker in `block_in_place`.
        let (pool, no) = (self.pool.clone(), no.clone());
        self.spawn(async move {
            let mut c = pool.acquire().await.map_err(db)?;
            binding_of_waybill(&mut c, &no).await
        })
    }

    fn waiting_for_numbers(&self, limit: usize) -> Result<Vec<(WaybillNo, AccountId)>, StoreError> {
        self.run(async {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT waybill_no, courier FROM privacy_waiting ORDER BY since, waybill_no LIMIT $1",
            )
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.into_iter()
                .map(|(no, c)| {
                    Ok((
                        WaybillNo::parse(&no).map_err(|e| {
                            StoreError::corrupt_because("a waiting waybill number", e)
                        })?,
                        AccountId::parse(&c).map_err(|e| {
                            StoreError::corrupt_because("a waiting courier id", e)
                        })?,
                    ))
                })
                .collect()
        })
    }

    fn number_pool_state(
        &self,
        now: Millis,
        release: NumberRelease,
    ) -> Result<wbg_store::PoolState, StoreError> {
        self.run(async {
            let (in_service, waiting): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM privacy_numbers WHERE NOT retired),
                        (SELECT count(*) FROM privacy_waiting)",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
            let free: i64 = sqlx::query_scalar(wbg_store::FREE_NUMBER_COUNT_SQL)
                .bind(release.grace_ms)
                .bind(release.quarantine_ms)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            Ok(wbg_store::PoolState {
                in_service: in_service as u64,
                free: free as u64,
                waiting: waiting as u64,
            })
        })
    }
}

impl Cases for PgStore {
    fn put_case(
        &self,
        kind: &str,
        id: &str,
        body: &str,
        expect: Option<&str>,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let at = audit.time;
        let (kind, id, body, expect) = (
            kind.to_owned(),
            id.to_owned(),
            body.to_owned(),
            expect.map(str::to_owned),
        );
        self.audited(audit, move |tx| {
            Box::pin(async move {
                let current: Option<String> =
                    sqlx::query_scalar("SELECT body FROM cases WHERE kind = $1 AND id = $2 FOR UPDATE")
                        .bind(&kind)
                        .bind(&id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(db)?;
                match (current.as_deref(), expect.as_deref()) {
                    (None, None) => {}
                    (Some(now), Some(was)) if now == was => {}
                    (None, Some(_)) => return Err(StoreError::NotFound(format!("{kind} {id}"))),
                    (Some(_), _) => {
                        return Err(StoreError::Conflict(format!("{kind} {id} was changed meanwhile")))
                    }
                }
                sqlx::query(
                    "INSERT INTO cases (kind, id, body, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                )
                .bind(&kind)
                .bind(&id)
                .bind(&body)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(|e| match is_unique_violation(&e) {
                    true => StoreError::Conflict(format!("{kind} {id} was changed meanwhile")),
                    false => db(e),
                })?;
                Ok(())
            })
        })
        .map(|(_, seq)| seq)
    }

    fn cases(&self, kind: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        self.run(async {
            sqlx::query_as(
                "SELECT id, body FROM cases WHERE kind = $1 ORDER BY updated_at DESC, id LIMIT $2",
            )
            .bind(kind)
            .bind(limit.clamp(1, 100_000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
        })
    }

    fn case(&self, kind: &str, id: &str) -> Result<Option<String>, StoreError> {
        self.run(async {
            sqlx::query_scalar("SELECT body FROM cases WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
        })
    }
}

impl AuditLog for PgStore {
    fn append_audit_grouped(&self, entries: Vec<AuditEntry>) -> Ticket<u64> {
        let job = Commit {
            events: Vec::new(),
            audit: entries,
            print: None,
        };
        commit(
            &self.appender,
            job,
            Committed::Seq,
            "the audit group commit has stopped",
        )
    }

    fn append_audit(&self, entry: AuditEntry) -> Result<u64, StoreError> {
        self.append_audit_batch(vec![entry])
    }

    fn append_audit_batch(&self, entries: Vec<AuditEntry>) -> Result<u64, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let seq = queue_entries(&mut tx, entries).await?;
            tx.commit().await.map_err(db)?;
            Ok(seq)
        })
    }

    fn audit_size(&self) -> Result<u64, StoreError> {
        self.run(async {
            integrate(&self.pool).await?;
            let n: i64 = sqlx::query_scalar("SELECT size FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
            Ok(n as u64)
        })
    }

    fn audit_entry(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            self.integrated_past(seq).await?;
            sqlx::query_scalar("SELECT entry FROM audit_entries WHERE seq = $1")
                .bind(seq as i64)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)
        })
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.run(async {
            integrate(&self.pool).await?;
            let rows = sqlx::query(
                "SELECT seq, entry, substring(nodes from 1 for 32) FROM audit_entries
                 WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(from as i64)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            rows.into_iter()
                .map(|r| {
                    let seq: i64 = r.try_get(0).map_err(db)?;
                    let leaf: Option<Vec<u8>> = r.try_get(2).map_err(db)?;
                    Ok(StoredEntry {
                        seq: seq as u64,
                        bytes: r.try_get(1).map_err(db)?,
                        recorded_leaf: leaf.as_deref().map(hash32).transpose()?,
                    })
                })
                .collect()
        })
    }

    fn audit_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StoreError> {
        self.run(async {
            integrate(&self.pool).await?;
            let mut c = self.pool.acquire().await.map_err(db)?;
            node_in(&mut c, level, index).await
        })
    }

    fn audit_head(&self) -> Result<(u64, Hash), StoreError> {
        self.run(async {
            integrate(&self.pool).await?;
            let (size, frontier): (i64, Vec<u8>) =
                sqlx::query_as("SELECT size, frontier FROM audit_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db)?;
            let mut hashes = frontier.chunks(32);
            let tree = Frontier::load(size as u64, |_, _| {
                hashes
                    .next()
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(|| {
                        wbg_audit::AuditError::Store(
                            "the audit head's frontier is malformed".into(),
                        )
                    })
            })
            .map_err(StoreError::corrupt)?;
            Ok((tree.size(), tree.root()))
        })
    }

    fn put_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.run(async {
            sqlx::query(
                "INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(size as i64)
            .bind(note)
            .bind(wbg_core::now_millis())
            .execute(&self.pool)
            .await
            .map_err(db)?;
            Ok(())
        })
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        self.run(async {
            let row: Option<(i64, String)> = sqlx::query_as(
                "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
            Ok(row.map(|(s, n)| (s as u64, n)))
        })
    }

    fn checkpoints(&self) -> Result<Vec<String>, StoreError> {
        self.run(async {
            sqlx::query_scalar("SELECT note FROM audit_checkpoints ORDER BY size")
                .fetch_all(&self.pool)
                .await
                .map_err(db)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{plan, Kept, Plan};

    /// The lookups' connections plan a prepared statement once; the other loops' keep PostgreSQL's choice.
    #[test]
    fn the_lookups_connections_plan_each_statement_once() {
        let Ok(url) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL is not set: not tested here (.ci/run sets it)");
            return;
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap();
            let kept = Kept::new(&pool);
            let mode = |k: Kept| async move {
                let (mut c, _) = k.take().await.unwrap();
                let shown: String = sqlx::query_scalar("SHOW plan_cache_mode")
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                // A statement whose custom plans look cheaper than its generic one (UNNEST of an array
                // parameter counts as 100 rows generically, as its 3 elements in a custom plan): how often
                // each kind of plan was made for it over eight executions.
                let sql = "SELECT count(*) FROM UNNEST($1::text[]) AS q(no)
                           JOIN LATERAL (SELECT array_agg(x) FROM generate_series(1, 50) x
                                         WHERE x::text = q.no) g ON true";
                for _ in 0..8 {
                    sqlx::query_scalar::<_, i64>(sql)
                        .bind(vec!["1", "2", "3"])
                        .fetch_one(&mut c)
                        .await
                        .unwrap();
                }
                let plans: (i64, i64) = sqlx::query_as(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements
                     WHERE statement LIKE '%generate_series(1, 50)%' AND statement NOT LIKE '%pg_prepared%'",
                )
                .fetch_one(&mut c)
                .await
                .unwrap();
                (shown, plans)
            };
            let (shown, (generic, custom)) = mode(kept.sibling_planned_once()).await;
            assert_eq!(shown, "force_generic_plan");
            assert_eq!((generic, custom), (8, 0), "planned once, used eight times");
            let (shown, (_, custom)) = mode(kept.sibling()).await;
            assert_eq!(shown, "auto", "the other loops keep PostgreSQL's choice");
            assert!(custom >= 5, "PostgreSQL tries custom plans first: {custom}");
        });
    }

    #[test]
    fn integration_takes_the_gapless_run_and_voids_only_abandoned_gaps() {
        assert_eq!(
            plan(5, &[]),
            Plan {
                take: 0,
                void: 5..5
            }
        );
        let run = [(5, false), (6, true), (8, true)];
        assert_eq!(
            plan(5, &run),
            Plan {
                take: 2,
                void: 7..7
            }
        );
        // A gap behind a fresh entry may be a writer still at work: wait.
        assert_eq!(
            plan(5, &[(7, false)]),
            Plan {
                take: 0,
                void: 5..5
            }
        );
        // Behind an entry queued long ago, the writer has given up.
        assert_eq!(
            plan(5, &[(7, true), (8, false)]),
            Plan {
                take: 0,
                void: 5..7
            }
        );
    }
}
