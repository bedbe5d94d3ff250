//! Token metadata on PostgreSQL.
use crate::{db, PgStore};
use wbg_audit::AuditEntry;
use wbg_core::{AccountId, Millis};
use wbg_store::{token_id, AccountActivity, Credentials, StoreError, TokenInfo};

impl Credentials for PgStore {
    fn tokens_of(&self, account: &AccountId, now: Millis) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<(Vec<u8>, i64, Option<i64>, String)> = self
            .run(
                sqlx::query_as(
                    "SELECT hash, created_at, expires_at, issued_by FROM tokens
                 WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > $2)
                 ORDER BY created_at, hash",
                )
                .bind(account.as_str())
                .bind(now)
                .fetch_all(&self.pool),
            )
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|(hash, created_at, expires_at, issued_by)| TokenInfo {
                id: token_id(&hash),
                created_at,
                expires_at,
                issued_by,
            })
            .collect())
    }

    fn revoke_token(
        &self,
        account: &AccountId,
        id: &str,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        let (account, id) = (account.clone(), id.to_owned());
        self.audited(audit, move |tx| {
            Box::pin(async move {
                let hashes: Vec<Vec<u8>> =
                    sqlx::query_scalar("SELECT hash FROM tokens WHERE account_id = $1 FOR UPDATE")
                        .bind(account.as_str())
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(db)?;
                let hash = hashes
                    .into_iter()
                    .find(|h| token_id(h) == id)
                    .ok_or_else(|| {
                        StoreError::NotFound(format!("token {id} of account {account}"))
                    })?;
                sqlx::query("DELETE FROM tokens WHERE hash = $1")
                    .bind(hash)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                Ok(())
            })
        })
        .map(|(_, seq)| seq)
    }
}

impl AccountActivity for PgStore {
    fn record_activity(&self, seen: &[(AccountId, Millis)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        self.run(
            sqlx::query(
                "INSERT INTO account_activity (account_id, last_seen_at)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[])
                 ON CONFLICT (account_id) DO UPDATE
                 SET last_seen_at = GREATEST(account_activity.last_seen_at, excluded.last_seen_at)",
            )
            .bind(seen.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
            .bind(seen.iter().map(|(_, at)| *at).collect::<Vec<_>>())
            .execute(&self.pool),
        )
        .map_err(db)?;
        Ok(())
    }

    fn last_activity(&self) -> Result<Vec<(AccountId, Millis)>, StoreError> {
        let rows: Vec<(String, i64)> = self
            .run(
                sqlx::query_as(
                    "SELECT account_id, last_seen_at FROM account_activity WHERE account_id <> '*' ORDER BY account_id",
                )
                .fetch_all(&self.pool),
            )
            .map_err(db)?;
        rows.into_iter()
            .map(|(id, at)| Ok((AccountId::parse(&id).map_err(StoreError::corrupt)?, at)))
            .collect()
    }

    fn activity_since(&self) -> Result<Option<Millis>, StoreError> {
        self.run(
            sqlx::query_scalar("SELECT last_seen_at FROM account_activity WHERE account_id = '*'")
                .fetch_optional(&self.pool),
        )
        .map_err(db)
    }
}
