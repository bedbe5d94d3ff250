//! Token metadata on the embedded store.
use super::SqliteStore;
use crate::{token_id, Credentials, StoreError, TokenInfo};
use rusqlite::params;
use wbg_audit::AuditEntry;
use wbg_core::{AccountId, Millis};

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
