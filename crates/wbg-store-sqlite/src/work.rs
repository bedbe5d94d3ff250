//! The work registry on the embedded store.
use crate::{is_unique_violation, SqliteStore};
use rusqlite::{params, Connection, OptionalExtension};
use wbg_audit::AuditEntry;
use wbg_core::{Millis, WaybillNo};
use wbg_store::{ServiceTicket, StoreError, Ticket, WorkRegistry};

pub(super) const SCHEMA: &str = r#"
-- Customer-service tickets as the carrier's ticketing system registers them, and the waybills each concerns.
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY, opened_at INTEGER NOT NULL, closed_at INTEGER, assignee TEXT,
    reads INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ticket_waybills (
    ticket TEXT NOT NULL, no TEXT NOT NULL, PRIMARY KEY (ticket, no)) WITHOUT ROWID;
"#;

/// Ticket `id`'s row, with the waybills `waybills` selects.
fn ticket_in(
    c: &Connection,
    id: &str,
    waybills: &str,
    no: Option<&str>,
) -> Result<Option<ServiceTicket>, StoreError> {
    let row: Option<(i64, Option<i64>, Option<String>, i64)> = c
        .prepare_cached("SELECT opened_at, closed_at, assignee, reads FROM tickets WHERE id = ?1")?
        .query_row(params![id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((opened_at, closed_at, assignee, reads)) = row else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(waybills)?;
    let nos: Vec<String> = match no {
        Some(no) => stmt
            .query_map(params![id, no], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        None => stmt
            .query_map(params![id], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
    };
    wbg_store::rows::ticket(id, (opened_at, closed_at, assignee, reads, nos)).map(Some)
}

impl WorkRegistry for SqliteStore {
    fn open_ticket(&self, t: &ServiceTicket, audit: AuditEntry) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            tx.execute(
                "INSERT INTO tickets (id, opened_at, closed_at, assignee, reads) VALUES (?1, ?2, NULL, ?3, 0)",
                params![t.id, t.opened_at, t.assignee.as_ref().map(|a| a.as_str())],
            )
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::Conflict(format!("ticket {} is registered already", t.id)),
                false => e.into(),
            })?;
            let mut stmt =
                tx.prepare_cached("INSERT OR IGNORE INTO ticket_waybills (ticket, no) VALUES (?1, ?2)")?;
            for no in &t.waybills {
                stmt.execute(params![t.id, no.as_str()])?;
            }
            Ok(())
        })
        .map(|(_, seq)| seq)
    }

    fn close_ticket(&self, id: &str, at: Millis, audit: AuditEntry) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            let closed: Option<Option<i64>> = tx
                .query_row(
                    "SELECT closed_at FROM tickets WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            match closed {
                None => Err(StoreError::NotFound(format!("ticket {id}"))),
                Some(Some(_)) => Err(StoreError::Conflict(format!(
                    "ticket {id} is closed already"
                ))),
                Some(None) => {
                    tx.execute(
                        "UPDATE tickets SET closed_at = ?2 WHERE id = ?1",
                        params![id, at],
                    )?;
                    Ok(())
                }
            }
        })
        .map(|(_, seq)| seq)
    }

    fn ticket_for(&self, id: &str, no: &WaybillNo) -> Ticket<Option<ServiceTicket>> {
        let (id, no) = (id.to_owned(), no.clone());
        self.committer.read(move |c| {
            ticket_in(
                c,
                &id,
                "SELECT no FROM ticket_waybills WHERE ticket = ?1 AND no = ?2",
                Some(no.as_str()),
            )
        })
    }

    fn ticket(&self, id: &str) -> Result<Option<ServiceTicket>, StoreError> {
        let id = id.to_owned();
        self.committer
            .read(move |c| {
                ticket_in(
                    c,
                    &id,
                    "SELECT no FROM ticket_waybills WHERE ticket = ?1 ORDER BY no",
                    None,
                )
            })
            .wait()
    }

    fn count_ticket_read(&self, id: &str) -> Ticket<u32> {
        let id = id.to_owned();
        self.committer.write(
            move |c| {
                let n: Option<i64> = c
                    .prepare_cached(
                        "UPDATE tickets SET reads = reads + 1 WHERE id = ?1 RETURNING reads",
                    )?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?;
                let n = n.ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))?;
                u32::try_from(n).map_err(|e| {
                    StoreError::corrupt_because("a ticket's read count is out of range", e)
                })
            },
            Vec::new(),
            |n, _| Ok(n),
        )
    }
}
