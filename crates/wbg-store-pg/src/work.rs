//! The work registry on PostgreSQL.
use crate::{db, is_unique_violation, PgStore};
use wbg_audit::AuditEntry;
use wbg_core::{Millis, WaybillNo};
use wbg_store::{rows, ServiceTicket, StoreError, Ticket, WorkRegistry};

/// A ticket's row: opened, closed, assignee, reads, waybills.
type TicketRow = (i64, Option<i64>, Option<String>, i32, Vec<String>);

/// Ticket `id`'s row, with the waybills `only` names (every one of them when `None`).
async fn ticket_in(
    pool: &sqlx::PgPool,
    id: &str,
    only: Option<&str>,
) -> Result<Option<ServiceTicket>, StoreError> {
    let row: Option<TicketRow> = sqlx::query_as(
        "SELECT t.opened_at, t.closed_at, t.assignee, t.reads,
                ARRAY(SELECT w.no FROM ticket_waybills w
                      WHERE w.ticket = t.id AND ($2::text IS NULL OR w.no = $2) ORDER BY w.no)
         FROM tickets t WHERE t.id = $1",
    )
    .bind(id)
    .bind(only)
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    let Some((opened_at, closed_at, assignee, reads, nos)) = row else {
        return Ok(None);
    };
    rows::ticket(id, (opened_at, closed_at, assignee, i64::from(reads), nos)).map(Some)
}

impl WorkRegistry for PgStore {
    fn open_ticket(&self, t: &ServiceTicket, audit: AuditEntry) -> Result<u64, StoreError> {
        let t = t.clone();
        self.audited(audit, move |tx| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO tickets (id, opened_at, closed_at, assignee, reads) VALUES ($1, $2, NULL, $3, 0)",
                )
                .bind(&t.id)
                .bind(t.opened_at)
                .bind(t.assignee.as_ref().map(|a| a.as_str()))
                .execute(&mut **tx)
                .await
                .map_err(|e| match is_unique_violation(&e) {
                    true => StoreError::Conflict(format!("ticket {} is registered already", t.id)),
                    false => db(e),
                })?;
                sqlx::query(
                    "INSERT INTO ticket_waybills (ticket, no) SELECT $1, n FROM UNNEST($2::text[]) n
                     ON CONFLICT DO NOTHING",
                )
                .bind(&t.id)
                .bind(t.waybills.iter().map(|n| n.as_str()).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await
                .map_err(db)?;
                Ok(())
            })
        })
        .map(|(_, seq)| seq)
    }

    fn close_ticket(&self, id: &str, at: Millis, audit: AuditEntry) -> Result<u64, StoreError> {
        let id = id.to_owned();
        self.audited(audit, move |tx| {
            Box::pin(async move {
                let closed: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT closed_at FROM tickets WHERE id = $1 FOR UPDATE")
                        .bind(&id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(db)?;
                match closed {
                    None => Err(StoreError::NotFound(format!("ticket {id}"))),
                    Some(Some(_)) => Err(StoreError::Conflict(format!(
                        "ticket {id} is closed already"
                    ))),
                    Some(None) => {
                        sqlx::query("UPDATE tickets SET closed_at = $2 WHERE id = $1")
                            .bind(&id)
                            .bind(at)
                            .execute(&mut **tx)
                            .await
                            .map_err(db)?;
                        Ok(())
                    }
                }
            })
        })
        .map(|(_, seq)| seq)
    }

    fn ticket_for(&self, id: &str, no: &WaybillNo) -> Ticket<Option<ServiceTicket>> {
        let (pool, id, no) = (self.pool.clone(), id.to_owned(), no.clone());
        self.spawn(async move { ticket_in(&pool, &id, Some(no.as_str())).await })
    }

    fn ticket(&self, id: &str) -> Result<Option<ServiceTicket>, StoreError> {
        self.run(ticket_in(&self.pool, id, None))
    }

    fn count_ticket_read(&self, id: &str) -> Ticket<u32> {
        let (pool, id) = (self.pool.clone(), id.to_owned());
        self.spawn(async move {
            let n: Option<i32> = sqlx::query_scalar(
                "UPDATE tickets SET reads = reads + 1 WHERE id = $1 RETURNING reads",
            )
            .bind(&id)
            .fetch_optional(&pool)
            .await
            .map_err(db)?;
            let n = n.ok_or_else(|| StoreError::NotFound(format!("ticket {id}")))?;
            u32::try_from(n).map_err(|e| {
                StoreError::corrupt_because("a ticket's read count is out of range", e)
            })
        })
    }
}
