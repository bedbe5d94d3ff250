//! Audit search on PostgreSQL: `audit_index` is written by the integrator in the transaction that integrates
//! the entries, so every integrated entry is searchable; a search integrates what is queued first, as every
//! reader of the log does.
use crate::{db, integrate, PgStore};
use wbg_store::{AuditCursor, AuditPage, AuditQuery, AuditSearch, StoreError};

enum Arg {
    Text(String),
    Long(i64),
}

impl AuditSearch for PgStore {
    fn search_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let n = q.page();
        let mut sql = String::from(
            "SELECT i.seq, i.time, e.entry FROM audit_index i JOIN audit_entries e ON e.seq = i.seq WHERE true",
        );
        let mut args = Vec::new();
        for (col, v) in [
            ("account", &q.account),
            ("waybill", &q.waybill),
            ("action", &q.action),
            ("decision", &q.decision),
        ] {
            if let Some(v) = v {
                args.push(Arg::Text(v.clone()));
                sql.push_str(&format!(" AND i.{col} = ${}", args.len()));
            }
        }
        if let Some(f) = q.from {
            args.push(Arg::Long(f));
            sql.push_str(&format!(" AND i.time >= ${}", args.len()));
        }
        if let Some(t) = q.to {
            args.push(Arg::Long(t));
            sql.push_str(&format!(" AND i.time < ${}", args.len()));
        }
        if let Some(c) = q.before {
            args.push(Arg::Long(c.time));
            args.push(Arg::Long(c.seq as i64));
            sql.push_str(&format!(
                " AND (i.time, i.seq) < (${}, ${})",
                args.len() - 1,
                args.len()
            ));
        }
        args.push(Arg::Long(n as i64 + 1));
        sql.push_str(&format!(
            " ORDER BY i.time DESC, i.seq DESC LIMIT ${}",
            args.len()
        ));
        self.run(async {
            integrate(&self.pool, true).await?;
            let mut query = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(&sql);
            for a in args {
                query = match a {
                    Arg::Text(s) => query.bind(s),
                    Arg::Long(v) => query.bind(v),
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
}
