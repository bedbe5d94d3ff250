//! Alerts and their triage on PostgreSQL.
use crate::{db, queue_entries, PgStore};
use wbg_audit::AuditEntry;
use wbg_core::{Alert, Millis};
use wbg_store::{check_revision, AlertFilter, Alerts, StoreError, TriageRecord};

const COLUMNS: &str =
    "id, at, account, kind, severity, detail, audit_seqs, state, assignee, updated_at, revision";

type AlertRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Vec<i64>,
    String,
    Option<String>,
    i64,
    i64,
);

fn alert_of(r: AlertRow) -> Alert {
    let (id, at, account, kind, severity, detail, seqs, state, assignee, updated_at, revision) = r;
    Alert {
        id,
        at,
        account,
        kind,
        severity,
        detail,
        audit_seqs: seqs.into_iter().map(|s| s as u64).collect(),
        state,
        assignee,
        updated_at,
        revision: revision as u64,
    }
}

impl Alerts for PgStore {
    fn insert_alert(&self, a: &Alert) -> Result<i64, StoreError> {
        let seqs: Vec<i64> = a.audit_seqs.iter().map(|s| *s as i64).collect();
        self.run(async {
            sqlx::query_scalar(
                "INSERT INTO alerts (at, account, kind, severity, detail, audit_seqs, state, assignee, updated_at, revision)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $1, 0) RETURNING id",
            )
            .bind(a.at)
            .bind(&a.account)
            .bind(&a.kind)
            .bind(&a.severity)
            .bind(&a.detail)
            .bind(&seqs)
            .bind(&a.state)
            .bind(a.assignee.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(db)
        })
    }

    fn alerts(&self, f: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        self.run(async {
            let rows: Vec<AlertRow> = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM alerts
                 WHERE ($1::text IS NULL OR account = $1) AND ($2::text IS NULL OR kind = $2)
                   AND ($3::bigint IS NULL OR at >= $3) AND ($4::text IS NULL OR state = $4)
                 ORDER BY id DESC LIMIT $5"
            ))
            .bind(f.account.as_deref())
            .bind(f.kind.as_deref())
            .bind(f.since)
            .bind(f.state.as_deref())
            .bind(f.limit.clamp(1, 10_000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            Ok(rows.into_iter().map(alert_of).collect())
        })
    }

    fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError> {
        self.run(async {
            let row: Option<AlertRow> =
                sqlx::query_as(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db)?;
            Ok(row.map(alert_of))
        })
    }

    fn alerts_after(&self, after: i64, limit: usize) -> Result<Vec<Alert>, StoreError> {
        self.run(async {
            let rows: Vec<AlertRow> = sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM alerts WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(after)
            .bind(limit.clamp(1, 10_000) as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            Ok(rows.into_iter().map(alert_of).collect())
        })
    }

    fn triage_alert(
        &self,
        id: i64,
        expect: u64,
        rec: &TriageRecord,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.run(async {
            let mut tx = self.pool.begin().await.map_err(db)?;
            let revision: Option<i64> =
                sqlx::query_scalar("SELECT revision FROM alerts WHERE id = $1 FOR UPDATE")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?;
            check_revision(id, revision, expect)?;
            sqlx::query(
                "UPDATE alerts SET state = $2, assignee = $3, updated_at = $4, revision = revision + 1
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&rec.state)
            .bind(rec.assignee.as_deref())
            .bind(rec.at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let seq = queue_entries(&mut tx, [audit]).await?;
            sqlx::query(
                "INSERT INTO alert_history (alert_id, at, by, state, assignee, reason, note, audit_seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(rec.at)
            .bind(&rec.by)
            .bind(&rec.state)
            .bind(rec.assignee.as_deref())
            .bind(&rec.reason)
            .bind(rec.note.as_deref())
            .bind(seq as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok(seq)
        })
    }

    fn alert_history(&self, id: i64) -> Result<Vec<TriageRecord>, StoreError> {
        type Row = (
            Millis,
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            i64,
        );
        self.run(async {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT at, by, state, assignee, reason, note, audit_seq FROM alert_history
                 WHERE alert_id = $1 ORDER BY at, id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            Ok(rows
                .into_iter()
                .map(
                    |(at, by, state, assignee, reason, note, seq)| TriageRecord {
                        at,
                        by,
                        state,
                        assignee,
                        reason,
                        note,
                        audit_seq: seq as u64,
                    },
                )
                .collect())
        })
    }
}
