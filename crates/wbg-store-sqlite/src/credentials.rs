//! Token metadata on the embedded store.
use crate::SqliteStore;
use rusqlite::params;
use wbg_audit::AuditEntry;
use wbg_core::{AccountId, Millis};
use wbg_store::{token_id, AccountActivity, Credentials, StoreError, TokenInfo};

impl Credentials for SqliteStore {
    fn tokens_of(&self, account: &AccountId, now: Millis) -> Result<Vec<TokenInfo>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner.conn.prepare_cached(
            "SELECT hash, created_at, expires_at, issued_by FROM tokens
             WHERE account_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
             ORDER BY created_at, hash",
        )?;
        let rows = stmt.query_map(params![account.as_str(), now], |r| {
            Ok(TokenInfo {
                id: token_id(&r.get::<_, Vec<u8>>(0)?),
                created_at: r.get(1)?,
                expires_at: r.get(2)?,
                issued_by: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn revoke_token(
        &self,
        account: &AccountId,
        id: &str,
        audit: AuditEntry,
    ) -> Result<u64, StoreError> {
        self.audited(audit, |tx| {
            let hashes: Vec<Vec<u8>> = tx
                .prepare_cached("SELECT hash FROM tokens WHERE account_id = ?1")?
                .query_map(params![account.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let hash = hashes
                .into_iter()
                .find(|h| token_id(h) == id)
                .ok_or_else(|| StoreError::NotFound(format!("token {id} of account {account}")))?;
            tx.execute("DELETE FROM tokens WHERE hash = ?1", params![hash])?;
            Ok(())
        })
        .map(|(_, seq)| seq)
    }
}

impl AccountActivity for SqliteStore {
    fn record_activity(&self, seen: &[(AccountId, Millis)]) -> Result<(), StoreError> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock()?;
        let tx = inner.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO account_activity (account_id, last_seen_at) VALUES (?1, ?2)
                 ON CONFLICT (account_id) DO UPDATE SET last_seen_at = max(last_seen_at, excluded.last_seen_at)",
            )?;
            for (id, at) in seen {
                stmt.execute(params![id.as_str(), at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn last_activity(&self) -> Result<Vec<(AccountId, Millis)>, StoreError> {
        let inner = self.lock()?;
        let mut stmt = inner
            .conn
            .prepare_cached(
                "SELECT account_id, last_seen_at FROM account_activity WHERE account_id <> '*' ORDER BY account_id",
            )?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(id, at)| Ok((AccountId::parse(&id).map_err(StoreError::corrupt)?, at)))
            .collect()
    }

    fn activity_since(&self) -> Result<Option<Millis>, StoreError> {
        use rusqlite::OptionalExtension;
        let inner = self.lock()?;
        let since = inner
            .conn
            .prepare_cached("SELECT last_seen_at FROM account_activity WHERE account_id = '*'")?
            .query_row([], |r| r.get(0))
            .optional()?;
        Ok(since)
    }
}
