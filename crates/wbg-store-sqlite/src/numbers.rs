//! The privacy-number pool in SQLite: one row a number holding its current binding (history is in the audit
//! log), and the waybills waiting for a number. Whether a binding has ended is read from its waybill's own
//! row, so signing for a parcel needs no write here.
use crate::{commit_with_entries, Inner};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use wbg_audit::AuditEntry;
use wbg_core::{AccountId, Millis, WaybillNo};
use wbg_store::{BindOutcome, NumberBinding, NumberRelease, PoolState, PoolSync, StoreError};

pub(super) const SCHEMA: &str = r#"
-- Privacy numbers: each row is one virtual number of the pool and its current binding, if it ever had one.
CREATE TABLE IF NOT EXISTS privacy_numbers (
    number TEXT PRIMARY KEY, retired INTEGER NOT NULL DEFAULT 0,
    waybill_no TEXT, courier TEXT, bound_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS privacy_numbers_waybill ON privacy_numbers(waybill_no);
-- The numbers in service in the order they rested (never bound first): a binding walks them to the first free
-- one (`FREE_NUMBER_SQL`) rather than joining the whole pool to the waybills and sorting it.
CREATE INDEX IF NOT EXISTS privacy_numbers_rest ON privacy_numbers((bound_at IS NOT NULL), bound_at)
    WHERE NOT retired;
-- Waybills out for delivery that have no number yet (queued by their out_for_delivery event).
CREATE TABLE IF NOT EXISTS privacy_waiting (
    waybill_no TEXT PRIMARY KEY, courier TEXT NOT NULL, since INTEGER NOT NULL) WITHOUT ROWID;
"#;

fn binding_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) fn binding_of_number(
    conn: &Connection,
    number: &str,
) -> Result<Option<NumberBinding>, StoreError> {
    conn.prepare_cached(
        "SELECT number, waybill_no, courier, bound_at FROM privacy_numbers
         WHERE number = ?1 AND waybill_no IS NOT NULL",
    )?
    .query_row(params![number], binding_row)
    .optional()?
    .map(wbg_store::rows::binding)
    .transpose()
}

pub(super) fn binding_of_waybill(
    conn: &Connection,
    no: &WaybillNo,
) -> Result<Option<NumberBinding>, StoreError> {
    conn.prepare_cached(
        "SELECT number, waybill_no, courier, bound_at FROM privacy_numbers WHERE waybill_no = ?1",
    )?
    .query_row(params![no.as_str()], binding_row)
    .optional()?
    .map(wbg_store::rows::binding)
    .transpose()
}

/// Queues a waybill that just went out for delivery for a number, if there is a pool at all; part of the
/// event's transaction, so that no waybill goes out without either a number or a place in the queue.
pub(super) fn queue_for_number(
    tx: &Connection,
    no: &WaybillNo,
    courier: &AccountId,
    at: Millis,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO privacy_waiting (waybill_no, courier, since)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM privacy_numbers WHERE retired = 0)
         ON CONFLICT(waybill_no) DO UPDATE SET courier = excluded.courier, since = excluded.since",
    )?
    .execute(params![no.as_str(), courier.as_str(), at])?;
    Ok(())
}

pub(super) fn sync_pool(inner: &mut Inner, numbers: &[String]) -> Result<PoolSync, StoreError> {
    let tx = Transaction::new(&mut inner.conn, TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS wanted (number TEXT PRIMARY KEY); DELETE FROM wanted;",
    )?;
    {
        let mut put =
            tx.prepare_cached("INSERT OR IGNORE INTO temp.wanted (number) VALUES (?1)")?;
        for n in numbers {
            put.execute(params![n])?;
        }
    }
    let added = tx.execute(
        "INSERT INTO privacy_numbers (number) SELECT number FROM temp.wanted
         WHERE number NOT IN (SELECT number FROM privacy_numbers)",
        [],
    )? as u64;
    tx.execute(
        "UPDATE privacy_numbers SET retired = 0 WHERE retired = 1 AND number IN (SELECT number FROM temp.wanted)",
        [],
    )?;
    let retired = tx.execute(
        "UPDATE privacy_numbers SET retired = 1 WHERE retired = 0 AND number NOT IN (SELECT number FROM temp.wanted)",
        [],
    )? as u64;
    let in_service: i64 = tx.query_row(
        "SELECT count(*) FROM privacy_numbers WHERE retired = 0",
        [],
        |r| r.get(0),
    )?;
    tx.execute("DELETE FROM temp.wanted", [])?;
    tx.commit()?;
    Ok(PoolSync {
        added,
        retired,
        in_service: in_service as u64,
    })
}

pub(super) fn bind(
    inner: &mut Inner,
    wanted: &[(WaybillNo, AccountId)],
    now: Millis,
    release: NumberRelease,
    audit: &mut dyn FnMut(&WaybillNo, &AccountId, &BindOutcome) -> Option<AuditEntry>,
) -> Result<(Vec<BindOutcome>, Option<u64>), StoreError> {
    let Inner { conn, tree, recent } = inner;
    let tx = Transaction::new(conn, TransactionBehavior::Immediate)?;
    let (outcomes, entries) = bind_in(&tx, wanted, now, release, audit)?;
    let seq = if entries.is_empty() {
        tx.commit()?;
        None
    } else {
        Some(commit_with_entries(tx, tree, recent, entries)?)
    };
    Ok((outcomes, seq))
}

/// [`bind`]'s work inside a transaction on `tx` (its own, or a group commit's savepoint): each waybill's
/// outcome in `wanted`'s order, and the entries `audit` made of them, for the caller to append.
pub(super) fn bind_in(
    tx: &Connection,
    wanted: &[(WaybillNo, AccountId)],
    now: Millis,
    release: NumberRelease,
    audit: &mut (impl FnMut(&WaybillNo, &AccountId, &BindOutcome) -> Option<AuditEntry> + ?Sized),
) -> Result<(Vec<BindOutcome>, Vec<AuditEntry>), StoreError> {
    let mut outcomes = Vec::with_capacity(wanted.len());
    let mut entries = Vec::new();
    let mut exhausted = false;
    for (no, courier) in wanted {
        let outcome = bind_one(tx, no, courier, now, release, exhausted)?;
        exhausted |= outcome == BindOutcome::Exhausted;
        if outcome != BindOutcome::NotNeeded {
            entries.extend(audit(no, courier, &outcome));
        }
        outcomes.push(outcome);
    }
    Ok((outcomes, entries))
}

/// One waybill's binding in `tx`; with `exhausted` (an earlier waybill of the transaction found no free
/// number), a waybill that needs a free number waits without looking for one.
fn bind_one(
    tx: &Connection,
    no: &WaybillNo,
    courier: &AccountId,
    now: Millis,
    release: NumberRelease,
    exhausted: bool,
) -> Result<BindOutcome, StoreError> {
    let current: Option<(String, Option<String>)> = tx
        .prepare_cached("SELECT status, courier FROM waybills WHERE no = ?1")?
        .query_row(params![no.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let dequeue = || -> Result<(), StoreError> {
        tx.prepare_cached("DELETE FROM privacy_waiting WHERE waybill_no = ?1")?
            .execute(params![no.as_str()])?;
        Ok(())
    };
    let current = current.as_ref().map(|(s, c)| (s.as_str(), c.as_deref()));
    if !BindOutcome::needed(current, courier) {
        dequeue()?;
        return Ok(BindOutcome::NotNeeded);
    }
    let had = binding_of_waybill(tx, no)?;
    let free: Option<String> = match had {
        Some(_) => None,
        None if exhausted => None,
        None => tx
            .prepare_cached(wbg_store::FREE_NUMBER_SQL)?
            .query_row(params![release.grace_ms, release.quarantine_ms, now], |r| {
                r.get(0)
            })
            .optional()?,
    };
    let outcome = BindOutcome::decide(no, courier, now, had, free);
    match &outcome {
        BindOutcome::Bound(b) | BindOutcome::Rebound { binding: b, .. } => {
            tx.prepare_cached(
                "UPDATE privacy_numbers SET waybill_no = ?2, courier = ?3, bound_at = ?4 WHERE number = ?1",
            )?
            .execute(params![b.number, no.as_str(), courier.as_str(), now])?;
            dequeue()?;
        }
        BindOutcome::Kept(_) => dequeue()?,
        BindOutcome::Exhausted => {
            tx.prepare_cached(
                "INSERT INTO privacy_waiting (waybill_no, courier, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT(waybill_no) DO UPDATE SET courier = excluded.courier",
            )?
            .execute(params![no.as_str(), courier.as_str(), now])?;
        }
        BindOutcome::NotNeeded => {}
    }
    Ok(outcome)
}

pub(super) fn waiting(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<(WaybillNo, AccountId)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT waybill_no, courier FROM privacy_waiting ORDER BY since, waybill_no LIMIT ?1",
    )?;
    let rows = stmt
        .query_map(params![limit.min(i64::MAX as usize) as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(no, c)| {
            Ok((
                WaybillNo::parse(&no)
                    .map_err(|e| StoreError::corrupt_because("a waiting waybill number", e))?,
                AccountId::parse(&c)
                    .map_err(|e| StoreError::corrupt_because("a waiting courier id", e))?,
            ))
        })
        .collect()
}

/// The pool's state, its three counts read in one snapshot (`conn` is a read connection: the store's writes go
/// on meanwhile).
pub(super) fn state(
    conn: &Connection,
    now: Millis,
    release: NumberRelease,
) -> Result<PoolState, StoreError> {
    let snapshot = conn.unchecked_transaction()?;
    let count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64, StoreError> {
        Ok(snapshot
            .prepare_cached(sql)?
            .query_row(p, |r| r.get::<_, i64>(0))? as u64)
    };
    Ok(PoolState {
        in_service: count(
            "SELECT count(*) FROM privacy_numbers WHERE retired = 0",
            &[],
        )?,
        free: count(
            wbg_store::FREE_NUMBER_COUNT_SQL,
            params![release.grace_ms, release.quarantine_ms, now],
        )?,
        waiting: count("SELECT count(*) FROM privacy_waiting", &[])?,
    })
}
