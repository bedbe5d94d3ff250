//! Credentials: the API tokens an account holds, as metadata (a token itself is stored only as its hash). A
//! token expires, can be listed and revoked, and records who issued it, so its owner and an auditor can see how
//! a credential came to exist.
use crate::StoreError;
use wbg_audit::AuditEntry;
use wbg_core::{AccountId, Millis};

/// A token about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The token's hash (the token itself is shown once and never stored).
    pub hash: [u8; 32],
    /// When it stops working (wall-clock ms); `None` never.
    pub expires_at: Option<Millis>,
    /// How it was issued, for its owner and auditors: `cli`, `admin a1`, `enrolment E… (requested by a1,
    /// approved by a2)`.
    pub issued_by: String,
}

/// What is known about a stored token: never the token, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// A short handle to name it by when revoking it (12 hex digits of its hash: useless for signing in).
    pub id: String,
    /// When it was issued.
    pub created_at: Millis,
    /// When it stops working; `None` never.
    pub expires_at: Option<Millis>,
    /// How it was issued.
    pub issued_by: String,
}

/// The handle of a token with hash `hash`.
pub fn token_id(hash: &[u8]) -> String {
    hex::encode(&hash[..hash.len().min(6)])
}

/// Where an account's tokens are kept, beside the accounts. Every change is audited in its transaction.
pub trait Credentials {
    /// The tokens of `account` that still work at `now` (wall clock), oldest first.
    fn tokens_of(&self, account: &AccountId, now: Millis) -> Result<Vec<TokenInfo>, StoreError>;
    /// Revokes (deletes) the token of `account` whose handle is `token_id`, with `audit`; `NotFound` if it
    /// has none such.
    fn revoke_token(
        &self,
        account: &AccountId,
        token_id: &str,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
}
