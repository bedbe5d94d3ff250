//! Which processes may run beside which on one PostgreSQL store: every serving node holds the store's node lock
//! shared, and an operation that needs the store alone (a master-key rotation) takes it exclusively, so it cannot
//! run while any node of the store serves — the nodes hold the old master key. A data directory's `flock` cannot
//! say this: each node has a directory of its own, on its own machine.
//!
//! The lock is a PostgreSQL session-level advisory lock on a connection of its own, held until the [`NodeLock`]
//! is dropped or the process ends (the server releases it when the session does, however the process ends). Its
//! key is derived from the schema, so stores in other schemas of one database do not meet.
//!
//! A session PostgreSQL ends (a restart, a failover, an operator's `pg_terminate_backend`) releases the lock with
//! it while the process goes on. A serving node therefore watches its lock ([`NodeLock::watch`]): it checks the
//! lock's connection every [`NODE_LOCK_CHECK`] and takes the lock back on a new one; should an operation have
//! taken the store alone in between, the node is told, and stops — its master key may no longer be the store's.
//! "In between" includes an operation that came and went before the lock was taken back (a key rotation takes
//! well under a second): every exclusive holder counts itself in the store's `meta` table (`node_lock_epoch`), and
//! a node that finds the count moved on when it takes its lock back has missed one. The rotation's own session
//! can end as well: its transaction therefore counts the nodes holding the lock itself ([`serving`]).
use crate::db;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;
use wbg_store::{DbError, StoreError};

/// The first half of the advisory lock's key (the second is the schema's hash).
const NODE_LOCK_CLASS: i32 = 0x5742_4731; // "WBG1"

/// How often a watched lock's connection is checked ([`NodeLock::watch`]).
pub const NODE_LOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How long one check, or one attempt to take the lock back, may take: as long as a kept connection's check or
/// opening on the read path, the store's one bound for "PostgreSQL counts as unreachable".
const ATTEMPT: std::time::Duration = crate::KEPT_PING;

/// How long after its session ended a watched node has found out whether it can take its lock back: the next
/// check, that check's ping and one attempt to take the lock ([`NodeLock::settle`]).
pub const NODE_LOCK_SETTLE: std::time::Duration =
    std::time::Duration::from_secs(NODE_LOCK_CHECK.as_secs() + 2 * ATTEMPT.as_secs());

/// The store's node lock, held.
#[derive(Debug)]
pub struct NodeLock {
    conn: Option<PgConnection>,
    rt: Option<tokio::runtime::Runtime>,
    /// How it was taken, to take it again.
    opts: PgConnectOptions,
    exclusive: bool,
    /// The store's count of exclusive holders when it was taken (`None` before the store has its tables).
    epoch: Option<i64>,
}

/// A [`NodeLock`] being watched: dropping it stops the watch and releases the lock.
#[derive(Debug)]
pub struct Watched {
    stop: Option<std::sync::mpsc::Sender<()>>,
    watcher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}

/// The store's count of exclusive holders of its node lock: `None` while the store has no tables yet (the first
/// node of a new store takes its lock before it creates them).
async fn epoch(conn: &mut PgConnection) -> Result<Option<i64>, StoreError> {
    let tables: bool = sqlx::query_scalar("SELECT to_regclass('meta') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    if !tables {
        return Ok(None);
    }
    let n: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'node_lock_epoch'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
    match n {
        None => Ok(Some(0)),
        Some(n) => n
            .parse()
            .map(Some)
            .map_err(|e| StoreError::corrupt_because("the node lock's epoch is not a number", e)),
    }
}

/// How many sessions hold the store's node lock shared: serving nodes. Asked by a key rotation inside its own
/// transaction, after it has locked the wrapped keys, so that it does not rely on its exclusive lock's session
/// alone: should PostgreSQL end that session mid-rotation, a node could take the lock and open the store under the
/// old master key, then wrap new keys under it after the rotation — keys no one could read once the old master
/// key is gone. A node that takes the lock after this count waits on the locked keys to open the store, and then
/// finds them wrapped under the new master key, and does not start.
pub(crate) async fn serving(conn: &mut PgConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND classid = $1::int4::oid AND objid = hashtext(current_schema())::oid AND objsubid = 2",
    )
    .bind(NODE_LOCK_CLASS)
    .fetch_one(conn)
    .await
    .map_err(db)
}

/// Takes the lock on a new connection: the connection holding it, or `None` when it is held the other way. An
/// exclusive holder counts itself in the store's epoch first thing (see the module's doc).
async fn take(
    opts: &PgConnectOptions,
    exclusive: bool,
) -> Result<Option<PgConnection>, StoreError> {
    let sql = if exclusive {
        "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))"
    } else {
        "SELECT pg_try_advisory_lock_shared($1, hashtext(current_schema()))"
    };
    let mut conn = opts
        .connect()
        .await
        .map_err(|e| StoreError::Db(DbError::context("cannot connect to PostgreSQL", e)))?;
    let got: bool = sqlx::query_scalar(sql)
        .bind(NODE_LOCK_CLASS)
        .fetch_one(&mut conn)
        .await
        .map_err(db)?;
    if !got {
        return Ok(None);
    }
    if exclusive && epoch(&mut conn).await?.is_some() {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('node_lock_epoch', '1')
             ON CONFLICT (key) DO UPDATE SET value = (meta.value::bigint + 1)::text",
        )
        .execute(&mut conn)
        .await
        .map_err(db)?;
    }
    Ok(Some(conn))
}

impl NodeLock {
    /// Takes the node lock of the store at `url`: shared (a serving node) or exclusive (an operation that needs
    /// the store alone). `Conflict` when it is held the other way.
    pub fn acquire(url: &str, exclusive: bool) -> Result<NodeLock, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(DbError::context("cannot start the lock's runtime", e)))?;
        // The URL may hold a password: errors name the database, never the URL.
        let opts = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::Db("the PostgreSQL URL does not parse".into()))?;
        let Some(mut conn) = rt.block_on(take(&opts, exclusive))? else {
            return Err(held_otherwise(exclusive));
        };
        let epoch = rt.block_on(epoch(&mut conn))?;
        Ok(NodeLock {
            conn: Some(conn),
            rt: Some(rt),
            opts,
            exclusive,
            epoch,
        })
    }

    /// For an operation that holds the lock exclusively and is about to change what every node holds (the master
    /// key): waits [`NODE_LOCK_SETTLE`], so that a node whose session PostgreSQL ended just before this lock was
    /// taken (a restart a moment earlier) has found it cannot take its own lock back, and stopped, before
    /// anything changes. Without it such a node would serve on, for up to that long, beside the operation.
    pub fn settle(self) -> NodeLock {
        std::thread::sleep(NODE_LOCK_SETTLE);
        self
    }

    /// Keeps the lock held for as long as the [`Watched`] returned lives: a thread checks its connection every
    /// [`NODE_LOCK_CHECK`] and, when PostgreSQL has ended that session (and the lock with it), takes the lock
    /// back on a new connection, trying again at every check while PostgreSQL cannot be reached. `lost` is called
    /// once, on that thread, if the lock is held the other way by then, or was while it was down (for a serving
    /// node: an operation took the store alone meanwhile; the store's epoch says so); the watch then ends. An
    /// error (and the lock released) if no thread can be started.
    pub fn watch(
        mut self,
        lost: impl FnOnce(StoreError) + Send + 'static,
    ) -> Result<Watched, StoreError> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let watcher = std::thread::Builder::new()
            .name("wbguard-node-lock".into())
            .spawn(move || {
                let Some(rt) = self.rt.take() else {
                    return;
                };
                let mut conn = self.conn.take();
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(NODE_LOCK_CHECK)
                {
                    let held = match conn.as_mut() {
                        Some(c) => matches!(
                            rt.block_on(async { tokio::time::timeout(ATTEMPT, c.ping()).await }),
                            Ok(Ok(()))
                        ),
                        None => false,
                    };
                    if held {
                        // A new store's tables come after its first node's lock: its epoch is read once they
                        // are there.
                        if let (None, Some(c)) = (self.epoch, conn.as_mut()) {
                            self.epoch = rt.block_on(epoch(c)).ok().flatten();
                        }
                        continue;
                    }
                    drop(conn.take());
                    match rt.block_on(async {
                        tokio::time::timeout(ATTEMPT, take(&self.opts, self.exclusive)).await
                    }) {
                        Ok(Ok(Some(mut c))) => {
                            let now = match rt.block_on(epoch(&mut c)) {
                                Ok(now) => now,
                                Err(e) => {
                                    tracing::warn!(error = %e, "the node lock was taken back but its epoch cannot be read; trying again");
                                    continue;
                                }
                            };
                            if self.epoch.is_some() && now != self.epoch {
                                lost(StoreError::Conflict(
                                    "an operation that needs this PostgreSQL store alone (a key rotation) ran \
                                     while this node's lock was down"
                                        .into(),
                                ));
                                break;
                            }
                            tracing::warn!("PostgreSQL ended the node lock's session; the lock is held again");
                            self.epoch = now;
                            conn = Some(c);
                        }
                        Ok(Ok(None)) => {
                            lost(held_otherwise(self.exclusive));
                            break;
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "the node lock was released with its session and cannot be taken back yet; trying again"),
                        Err(_) => tracing::warn!("the node lock was released with its session and cannot be taken back yet (no answer); trying again"),
                    }
                }
                if let Some(c) = conn {
                    let _ = rt.block_on(c.close());
                }
            });
        let watcher = watcher.map_err(|e| {
            StoreError::Db(DbError::context("cannot start the node lock's watch", e))
        })?;
        Ok(Watched {
            stop: Some(stop),
            watcher: Some(watcher),
        })
    }
}

/// The refusal when the lock is held the other way.
fn held_otherwise(exclusive: bool) -> StoreError {
    StoreError::Conflict(if exclusive {
        "a guard node of this PostgreSQL store is serving; stop every node first".into()
    } else {
        "an operation that needs this PostgreSQL store alone (a key rotation) is running".into()
    })
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        // Closing the session releases the lock. Dropped outside any runtime (the server drops it after its own
        // runtime has finished), so blocking here is allowed.
        if let (Some(conn), Some(rt)) = (self.conn.take(), self.rt.as_ref()) {
            let _ = rt.block_on(conn.close());
        }
    }
}
