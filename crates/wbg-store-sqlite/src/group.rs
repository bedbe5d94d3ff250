//! The embedded store's hot path on one thread: the guarded read's lookups, and group commit of the work of
//! every caller waiting — guarded reads' audit entries (a print job's with its label-print count), scan events —
//! in one transaction, each job inside a savepoint of its own, so one job's conflict rolls back only that job. A
//! caller's ticket completes only once the transaction holding its work has committed.
//!
//! Why one thread: before, each read held the store's one mutex through its own transaction and commit, so 32
//! concurrent readers queued on the mutex and every read paid a round of WAL locks, a WAL append and a commit.
//! Reads on pooled connections of their own fared little better: a SQLite connection's page cache starts over
//! whenever another connection has committed since its last read — under load, before every read — so each
//! lookup read its pages back from the file (measured: 30 % of a node's CPU). On the thread that commits, the
//! cache stays warm, and nothing waits on a lock.
use crate::recent::Recent;
use crate::{tree_in, Inner, INSERT_ENTRY};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use std::any::Any;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use wbg_audit::{AuditEntry, HeldHead};
use wbg_store::{DbError, StoreError, Ticket};

/// Jobs one transaction takes at most.
const GROUP: usize = 512;

/// What a job writes besides its audit entries; runs inside the job's savepoint. It may return entries of its
/// own, appended after the job's (what it writes can decide what it records).
pub(super) type Work = Box<
    dyn FnOnce(&Connection) -> Result<(Box<dyn Any + Send>, Vec<AuditEntry>), StoreError> + Send,
>;

/// What a job's caller is sent: its work's result and its first entry's seq (`None` without entries).
type Outcome = Result<(Box<dyn Any + Send>, Option<u64>), StoreError>;

/// One caller's share of a group commit.
pub(super) struct Job {
    work: Option<Work>,
    audit: Vec<AuditEntry>,
    reply: Box<dyn FnOnce(Outcome) + Send>,
}

/// Lookups to run on the store thread, outside any write.
type Lookup = Box<dyn FnOnce(&Connection) + Send>;

/// What the store thread is asked to do.
enum Task {
    /// Lookups (they reply themselves).
    Read(Lookup),
    /// A share of the next group commit.
    Write(Job),
}

/// The sending side, held by the store.
pub(super) struct Committer {
    jobs: Option<mpsc::Sender<Task>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    /// Starts the committing thread over the write connection in `inner`.
    pub(super) fn start(inner: Arc<Mutex<Inner>>) -> Result<Committer, StoreError> {
        let (tx, rx) = mpsc::channel::<Task>();
        let thread = std::thread::Builder::new()
            .name("wbguard-store".into())
            .spawn(move || {
                let (mut reads, mut batch) = (Vec::new(), Vec::new());
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(task) = next.take() {
                        match task {
                            Task::Read(r) => reads.push(r),
                            Task::Write(job) => batch.push(job),
                        }
                        if reads.len() + batch.len() < GROUP {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !reads.is_empty() {
                        lookups(&inner, reads.drain(..));
                    }
                    if !batch.is_empty() {
                        commit(&inner, std::mem::take(&mut batch));
                    }
                }
            })
            .map_err(|e| StoreError::Db(DbError::context("cannot start the commit thread", e)))?;
        Ok(Committer {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    fn submit(&self, job: Job) {
        let refused = match &self.jobs {
            Some(jobs) => jobs.send(Task::Write(job)).err().map(|e| e.0),
            None => Some(Task::Write(job)),
        };
        if let Some(Task::Write(job)) = refused {
            (job.reply)(Err(stopped()));
        }
    }

    /// Runs `f` on the store thread in a read transaction of its own (one snapshot, a warm page cache).
    pub(super) fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Ticket<T> {
        let (tx, ticket) = Ticket::channel();
        let task = Task::Read(Box::new(move |c| tx.send(f(c))));
        if let Some(jobs) = &self.jobs {
            // A refused task is dropped with its sender, which fails the ticket.
            let _ = jobs.send(task);
        }
        ticket
    }

    /// Appends `entries` in the next group commit; the ticket holds the first one's seq.
    pub(super) fn append(&self, entries: Vec<AuditEntry>) -> Ticket<u64> {
        let (tx, ticket) = Ticket::channel();
        self.submit(Job {
            work: None,
            audit: entries,
            reply: Box::new(move |out: Outcome| {
                tx.send(out.and_then(|(_, seq)| {
                    seq.ok_or_else(|| StoreError::Db("nothing was appended".into()))
                }))
            }),
        });
        ticket
    }

    /// Runs `work` and appends `audit` in the next group commit, in a savepoint of their own: an `Err` from
    /// `work` undoes only this job's writes. Once committed, `finish` makes the ticket's value of `work`'s
    /// result and the first entry's seq (`None` without entries).
    pub(super) fn write<T: Send + 'static, R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        audit: Vec<AuditEntry>,
        finish: impl FnOnce(T, Option<u64>) -> Result<R, StoreError> + Send + 'static,
    ) -> Ticket<R> {
        self.write_recorded(move |c| work(c).map(|t| (t, Vec::new())), audit, finish)
    }

    /// [`Committer::write`] whose `work` also returns the entries that record it, appended after `audit` (the
    /// first entry's seq is the first of either).
    pub(super) fn write_recorded<T: Send + 'static, R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<(T, Vec<AuditEntry>), StoreError> + Send + 'static,
        audit: Vec<AuditEntry>,
        finish: impl FnOnce(T, Option<u64>) -> Result<R, StoreError> + Send + 'static,
    ) -> Ticket<R> {
        let (tx, ticket) = Ticket::channel();
        self.submit(Job {
            work: Some(Box::new(move |c| {
                work(c).map(|(t, entries)| (Box::new(t) as Box<dyn Any + Send>, entries))
            })),
            audit,
            reply: Box::new(move |out: Outcome| {
                tx.send(out.and_then(|(v, seq)| match v.downcast::<T>() {
                    Ok(v) => finish(*v, seq),
                    Err(_) => Err(StoreError::Db(
                        "a commit job returned the wrong type".into(),
                    )),
                }))
            }),
        });
        ticket
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has committed what was queued.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Db("the store thread has stopped".into())
}

/// Runs lookups in one read transaction on the write connection.
fn lookups(inner: &Mutex<Inner>, reads: impl Iterator<Item = Lookup>) {
    let Ok(guard) = inner.lock() else {
        // Dropping each lookup drops its sender: the callers are told the store failed.
        return;
    };
    let conn = &guard.conn;
    // A transaction left open (a COMMIT that failed) would wedge the connection: every later BEGIN would fail,
    // and the next group commit would run inside it. End it first.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let began = conn.prepare_cached("BEGIN").and_then(|mut s| s.execute([]));
    if began.is_err() {
        return;
    }
    for read in reads {
        read(conn);
    }
    let committed = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    if committed.is_err() {
        // Nothing was written: the lookups' answers stand, and the connection is left out of the transaction.
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Commits one group. The cached log tail moves on only once the transaction has committed.
fn commit(inner: &Mutex<Inner>, mut batch: Vec<Job>) {
    let outcomes = match inner.lock() {
        Ok(mut guard) => {
            let Inner { conn, tree, recent } = &mut *guard;
            let done = run(conn, tree, recent, &mut batch);
            if done.is_err() {
                *tree = None;
            }
            done
        }
        Err(_) => Err(StoreError::Db("store lock poisoned".into())),
    };
    match outcomes {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                (job.reply)(outcome);
            }
        }
        Err(e) => {
            let why = std::sync::Arc::new(e);
            for job in batch {
                (job.reply)(Err(StoreError::Db(DbError::shared(why.clone()))));
            }
        }
    }
}

fn run(
    conn: &mut Connection,
    tree: &mut Option<wbg_audit::LogTail>,
    recent: &Recent,
    batch: &mut [Job],
) -> Result<Vec<Outcome>, StoreError> {
    let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
    let mut tail = tree_in(&tx, tree)?;
    let first_seq = tail.size();
    let mut held = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(INSERT_ENTRY)?;
        for job in batch.iter_mut() {
            let out = match job.work.take() {
                None => Ok((Box::new(()) as Box<dyn Any + Send>, Vec::new())),
                Some(work) => {
                    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
                    let out = work(&tx);
                    if out.is_err() {
                        tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
                    }
                    tx.prepare_cached("RELEASE job")?.execute([])?;
                    out
                }
            };
            outcomes.push(match out {
                Ok((v, recorded)) => {
                    let first =
                        (!job.audit.is_empty() || !recorded.is_empty()).then(|| tail.size());
                    for entry in job.audit.drain(..).chain(recorded) {
                        let s = tail.sequence(entry);
                        insert.execute(params![s.seq as i64, s.bytes, s.nodes])?;
                        held.push(HeldHead::of(&s.entry));
                    }
                    Ok((v, first))
                }
                Err(e) => Err(e),
            });
        }
    }
    tx.commit()?;
    *tree = Some(tail);
    recent.committed(first_seq, held);
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_end_a_transaction_left_open_before_they_begin() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7); BEGIN;")
            .unwrap();
        let inner = Mutex::new(Inner {
            conn,
            tree: None,
            recent: Arc::default(),
        });
        let (tx, rx) = mpsc::channel();
        let read: Lookup = Box::new(move |c: &Connection| {
            let x: i64 = c.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
            tx.send(x).unwrap();
        });
        lookups(&inner, std::iter::once(read));
        assert_eq!(rx.try_recv().ok(), Some(7), "the lookup ran");
        assert!(
            inner.lock().unwrap().conn.is_autocommit(),
            "and left no transaction open"
        );
    }
}
