//! Alerts and their triage in the embedded store.
use crate::SqliteStore;
use rusqlite::{params, OptionalExtension, Row};
use wbg_audit::AuditEntry;
use wbg_core::Alert;
use wbg_store::{check_revision, AlertFilter, Alerts, StoreError, TriageRecord};

/// Alerts' triage columns and history, beside the alerts table of schema 5 (added by the upgrade to 6).
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS alert_history (
    alert_id INTEGER NOT NULL, at INTEGER NOT NULL, by TEXT NOT NULL, state TEXT NOT NULL, assignee TEXT,
    reason TEXT NOT NULL, note TEXT, audit_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history(alert_id, at);
"#;

/// Indexes over the columns schema 6 added.
pub(super) const INDEXES: &str = "CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, id);";

const COLUMNS: &str =
    "id, at, account, kind, severity, detail, audit_seqs, state, assignee, updated_at, revision";

/// Seqs as the table keeps them: decimal, comma-separated.
pub(crate) fn seqs_text(seqs: &[u64]) -> String {
    seqs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// [`seqs_text`] read back.
pub(crate) fn seqs_of(text: &str) -> Result<Vec<u64>, StoreError> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e| StoreError::corrupt_because("an alert's audit seqs", e))
        })
        .collect()
}

fn alert_of(r: &Row<'_>) -> rusqlite::Result<(Alert, String)> {
    Ok((
        Alert {
            id: r.get(0)?,
            at: r.get(1)?,
            account: r.get(2)?,
            kind: r.get(3)?,
            severity: r.get(4)?,
            detail: r.get(5)?,
            audit_seqs: Vec::new(),
            state: r.get(7)?,
            assignee: r.get(8)?,
            updated_at: r.get(9)?,
            revision: r.get::<_, i64>(10)? as u64,
        },
        r.get(6)?,
    ))
}

fn finish(rows: Vec<(Alert, String)>) -> Result<Vec<Alert>, StoreError> {
    rows.into_iter()
        .map(|(mut a, seqs)| {
            a.audit_seqs = seqs_of(&seqs)?;
            Ok(a)
        })
        .collect()
}

impl Alerts for SqliteStore {
    fn insert_alert(&self, a: &Alert) -> Result<i64, StoreError> {
        let inner = self.lock()?;
        inner.conn.execute(
            "INSERT INTO alerts (at, account, kind, severity, detail, audit_seqs, state, assignee, updated_at, revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
            params![
                a.at,
                a.account,
                a.kind,
                a.severity,
                a.detail,
                seqs_text(&a.audit_seqs),
                a.state,
                a.assignee,
                a.at
            ],
        )?;
        Ok(inner.conn.last_insert_rowid())
    }

    fn alerts(&self, f: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let inner = self.lock()?;
        let mut sql = format!("SELECT {COLUMNS} FROM alerts WHERE 1 = 1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        for (col, v) in [
            ("account", &f.account),
            ("kind", &f.kind),
            ("state", &f.state),
        ] {
            if let Some(v) = v {
                args.push(Box::new(v.clone()));
                sql.push_str(&format!(" AND {col} = ?{}", args.len()));
            }
        }
        if let Some(s) = f.since {
            args.push(Box::new(s));
            sql.push_str(&format!(" AND at >= ?{}", args.len()));
        }
        args.push(Box::new(f.limit.clamp(1, 10_000) as i64));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let mut stmt = inner.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), alert_of)?
            .collect::<Result<Vec<_>, _>>()?;
        finish(rows)
    }

    fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        let inner = self.lock()?;
        let row = inner
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"))?
            .query_row(params![id], alert_of)
            .optional()?;
        Ok(finish(row.into_iter().collect())?.pop())
    }

    fn alerts_after(&self, after: i64, limit: usize) -> Result<Vec<Alert>, StoreError> {
        let inner = self.lock()?;
        let rows = inner
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM alerts WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?
            .query_map(params![after, limit.clamp(1, 10_000) as i64], alert_of)?
            .collect::<Result<Vec<_>, _>>()?;
        finish(rows)
    }

    fn triage_alert(
        &self,
        id: i64,
        expect: u64,
        rec: &TriageRecord,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            // The entry is appended last in this transaction, which holds the write lock: it takes this seq.
            let seq = crate::size_in(tx)?;
            let revision: Option<i64> = tx
                .prepare_cached("SELECT revision FROM alerts WHERE id = ?1")?
                .query_row(params![id], |r| r.get(0))
                .optional()?;
            check_revision(id, revision, expect)?;
            tx.prepare_cached(
                "UPDATE alerts SET state = ?2, assignee = ?3, updated_at = ?4, revision = revision + 1
                 WHERE id = ?1",
            )?
            .execute(params![id, rec.state, rec.assignee, rec.at])?;
            tx.prepare_cached(
                "INSERT INTO alert_history (alert_id, at, by, state, assignee, reason, note, audit_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                rec.at,
                rec.by,
                rec.state,
                rec.assignee,
                rec.reason,
                rec.note,
                seq as i64
            ])?;
            Ok(())
        })
        .map(|(_, s)| s)
    }

    fn alert_history(&self, id: i64) -> Result<Vec<TriageRecord>, StoreError> {
        let inner = self.lock()?;
        let rows = inner
            .conn
            .prepare_cached(
                "SELECT at, by, state, assignee, reason, note, audit_seq FROM alert_history
                 WHERE alert_id = ?1 ORDER BY at, rowid",
            )?
            .query_map(params![id], |r| {
                Ok(TriageRecord {
                    at: r.get(0)?,
                    by: r.get(1)?,
                    state: r.get(2)?,
                    assignee: r.get(3)?,
                    reason: r.get(4)?,
                    note: r.get(5)?,
                    audit_seq: r.get::<_, i64>(6)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
