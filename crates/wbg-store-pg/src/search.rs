//! Audit search on PostgreSQL: `audit_index` is written by the integrator in the transaction that integrates
//! the entries, so every integrated entry is searchable; a search integrates what is queued first, as every
//! reader of the log does. The forensics access index (`access`, `access_principals`) follows the integrated log
//! in upkeep, one node at a time, so every node of the database attributes a leak from one index rather than
//! each keeping its own; a read of it brings it up to the log first.
use crate::{db, index_access, integrate, PgStore};
use wbg_store::{
    AccessRow, AuditCursor, AuditPage, AuditQuery, AuditSearch, HourCount, PrincipalTotals,
    SharedAccess, SqlArg, StoreError, HOUR_MS,
};

/// An `access` row as selected: waybill, principal, view, first_seq, first_at, last_at, full_seq.
type AccessTuple = (String, String, i16, i64, i64, i64, Option<i64>);

impl AuditSearch for PgStore {
    fn search_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let n = q.page();
        let (filter, mut args) = q.sql_filter("i.", |i| format!("${i}"));
        args.push(SqlArg::Long(n as i64 + 1));
        let sql = format!(
            "SELECT i.seq, i.time, e.entry FROM audit_index i JOIN audit_entries e ON e.seq = i.seq \
             WHERE true{filter} ORDER BY i.time DESC, i.seq DESC LIMIT ${}",
            args.len()
        );
        self.run(async {
            integrate(&self.pool).await?;
            let mut query = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(&sql);
            for a in args {
                query = match a {
                    SqlArg::Text(s) => query.bind(s),
                    SqlArg::Long(v) => query.bind(v),
                };
            }
            let mut rows = query.fetch_all(&self.pool).await.map_err(db)?;
            let more = rows.len() > n;
            rows.truncate(n);
            let next = match (more, rows.last()) {
                (true, Some((seq, time, _))) => Some(AuditCursor {
                    time: *time,
                    seq: *seq as u64,
                }),
                _ => None,
            };
            Ok(AuditPage {
                entries: rows
                    .into_iter()
                    .map(|(seq, _, bytes)| (seq as u64, bytes))
                    .collect(),
                next,
            })
        })
    }

    fn hourly_audit(&self, q: &AuditQuery) -> Result<Vec<HourCount>, StoreError> {
        let plain = AuditQuery {
            before: None,
            ..q.clone()
        };
        let (filter, args) = plain.sql_filter("i.", |i| format!("${i}"));
        let sql = format!(
            "SELECT (i.time / {HOUR_MS}) * {HOUR_MS} AS h, i.decision, COUNT(*) FROM audit_index i \
             WHERE true{filter} GROUP BY h, i.decision ORDER BY h, i.decision"
        );
        self.run(async {
            integrate(&self.pool).await?;
            let mut query = sqlx::query_as::<_, (i64, String, i64)>(&sql);
            for a in args {
                query = match a {
                    SqlArg::Text(s) => query.bind(s),
                    SqlArg::Long(v) => query.bind(v),
                };
            }
            let rows = query.fetch_all(&self.pool).await.map_err(db)?;
            Ok(rows
                .into_iter()
                .map(|(hour, decision, count)| HourCount {
                    hour,
                    decision,
                    count: count as u64,
                })
                .collect())
        })
    }

    fn keeps_access_index(&self) -> bool {
        true
    }

    fn shared_access(&self, waybills: &[String]) -> Result<Option<SharedAccess>, StoreError> {
        self.run(async {
            integrate(&self.pool).await?;
            index_access(&self.pool, true, None).await?;
            // Rows and totals from one snapshot: an integration between them would count accesses the rows miss.
            let mut tx = self.pool.begin().await.map_err(db)?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let rows: Vec<AccessTuple> = sqlx::query_as(
                "SELECT waybill, principal, view, first_seq, first_at, last_at, full_seq FROM access
                 WHERE waybill = ANY($1)",
            )
            .bind(waybills)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let mut named: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
            named.sort_unstable();
            named.dedup();
            let principals: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT name, shown_full, shown_any FROM access_principals WHERE name = ANY($1)",
            )
            .bind(&named)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(Some(SharedAccess {
                principals: principals
                    .into_iter()
                    .map(|(name, full, seen)| PrincipalTotals {
                        name,
                        full: full as u64,
                        seen: seen as u64,
                    })
                    .collect(),
                rows: rows
                    .into_iter()
                    .map(
                        |(waybill, principal, view, first_seq, first_at, last_at, full_seq)| {
                            AccessRow {
                                waybill,
                                principal,
                                full: view >= 2,
                                first_seq: first_seq as u64,
                                first_at,
                                last_at,
                                full_seq: full_seq.map(|s| s as u64),
                            }
                        },
                    )
                    .collect(),
            }))
        })
    }
}
