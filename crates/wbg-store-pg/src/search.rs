//! Audit search on PostgreSQL: `audit_index` is written by the integrator in the transaction that integrates
//! the entries, so every integrated entry is searchable; a search integrates what is queued first, as every
//! reader of the log does.
use crate::{db, integrate, PgStore};
use wbg_store::{
    AuditCursor, AuditPage, AuditQuery, AuditSearch, HourCount, SqlArg, StoreError, HOUR_MS,
};

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
            integrate(&self.pool, true).await?;
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
            integrate(&self.pool, true).await?;
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
}
