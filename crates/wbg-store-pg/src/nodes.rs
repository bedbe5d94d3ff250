//! Which processes may run beside which on one PostgreSQL store: every serving node holds the store's node lock
//! shared, and an operation that needs the store alone (a master-key rotation) takes it exclusively, so it cannot
//! run while any node of the store serves — the nodes hold the old master key. A data directory's `flock` cannot
//! say this: each node has a directory of its own, on its own machine.
//!
//! The lock is a PostgreSQL session-level advisory lock on a connection of its own, held until the [`NodeLock`]
//! is dropped or the process ends (the server releases it when the session does, however the process ends). Its
//! key is derived from the schema, so stores in other schemas of one database do not meet.
use crate::db;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;
use wbg_store::{DbError, StoreError};

/// The first half of the advisory lock's key (the second is the schema's hash).
const NODE_LOCK_CLASS: i32 = 0x5742_4731; // "WBG1"

/// The store's node lock, held.
#[derive(Debug)]
pub struct NodeLock {
    conn: Option<PgConnection>,
    rt: Option<tokio::runtime::Runtime>,
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
        let sql = if exclusive {
            "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))"
        } else {
            "SELECT pg_try_advisory_lock_shared($1, hashtext(current_schema()))"
        };
        let (conn, got) = rt.block_on(async {
            let mut conn = opts
                .connect()
                .await
                .map_err(|e| StoreError::Db(DbError::context("cannot connect to PostgreSQL", e)))?;
            let got: bool = sqlx::query_scalar(sql)
                .bind(NODE_LOCK_CLASS)
                .fetch_one(&mut conn)
                .await
                .map_err(db)?;
            Ok::<_, StoreError>((conn, got))
        })?;
        if !got {
            return Err(StoreError::Conflict(if exclusive {
                "a guard node of this PostgreSQL store is serving; stop every node first".into()
            } else {
                "an operation that needs this PostgreSQL store alone (a key rotation) is running"
                    .into()
            }));
        }
        Ok(NodeLock {
            conn: Some(conn),
            rt: Some(rt),
        })
    }
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
