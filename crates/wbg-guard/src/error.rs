//! Guard errors, each with the stable API code and HTTP status it maps to. Messages never hold personal data.
use thiserror::Error;
use wbg_policy::PolicyError;
use wbg_store::StoreError;
use wbg_vault::VaultError;

/// Why a guarded operation failed.
#[derive(Debug, Error)]
pub enum GuardError {
    /// No or unknown token.
    #[error("a valid API token is required")]
    Unauthenticated,
    /// The account is suspended.
    #[error("account is suspended")]
    AccountSuspended,
    /// The policy does not permit this.
    #[error("{0}")]
    Forbidden(String),
    /// The risk hook refused the request.
    #[error("{0}")]
    RateLimited(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (duplicate, impossible transition).
    #[error("{0}")]
    Conflict(String),
    /// Something presented has expired (a label token past its time).
    #[error("{0}")]
    Expired(String),
    /// The waybill is under a legal hold that keeps it from this read.
    #[error("{0}")]
    Held(String),
    /// The request is larger than accepted.
    #[error("{0}")]
    TooLarge(String),
    /// The service cannot answer this yet (an index still being built); retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// Configuration or start-up problem.
    #[error("{0}")]
    Config(String),
    /// Something failed inside (store, vault, policy evaluation).
    #[error("internal error: {0}")]
    Internal(String),
    /// Rows of a batch were refused, each with its own fault; nothing of the batch was applied.
    #[error("{} row(s) of the batch were refused; nothing was applied", .0.len())]
    Rows(Vec<crate::RowFault>),
}

impl GuardError {
    /// The stable error code of the API.
    pub fn code(&self) -> &'static str {
        match self {
            GuardError::Unauthenticated => "unauthenticated",
            GuardError::AccountSuspended => "account_suspended",
            GuardError::Forbidden(_) => "forbidden",
            GuardError::RateLimited(_) => "rate_limited",
            GuardError::Invalid(_) => "invalid_request",
            GuardError::NotFound(_) => "not_found",
            GuardError::Conflict(_) => "conflict",
            GuardError::Expired(_) => "expired",
            GuardError::Held(_) => "legal_hold",
            GuardError::TooLarge(_) => "too_large",
            GuardError::Unavailable(_) => "unavailable",
            GuardError::Config(_) => "config",
            GuardError::Internal(_) => "internal",
            GuardError::Rows(_) => "rows_refused",
        }
    }

    /// The HTTP status the API answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            GuardError::Unauthenticated => 401,
            GuardError::AccountSuspended | GuardError::Forbidden(_) => 403,
            GuardError::RateLimited(_) => 429,
            GuardError::Invalid(_) => 400,
            GuardError::NotFound(_) => 404,
            GuardError::Conflict(_) => 409,
            GuardError::Expired(_) => 410,
            GuardError::TooLarge(_) => 413,
            // Unavailable For Legal Reasons (RFC 7725).
            GuardError::Held(_) => 451,
            GuardError::Unavailable(_) => 503,
            GuardError::Config(_) | GuardError::Internal(_) => 500,
            // The gravest row decides: a refusal by the policy, then malformed rows, then state conflicts.
            GuardError::Rows(rows) => ["forbidden", "invalid_request", "conflict", "not_found"]
                .iter()
                .zip([403, 400, 409, 404])
                .find(|(code, _)| rows.iter().any(|r| r.code == **code))
                .map_or(409, |(_, status)| status),
        }
    }
}

impl From<StoreError> for GuardError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => GuardError::Conflict(m),
            StoreError::NotFound(m) => GuardError::NotFound(m),
            StoreError::Unavailable(m) | StoreError::Busy(m) => GuardError::Unavailable(m),
            other => GuardError::Internal(other.to_string()),
        }
    }
}

impl From<VaultError> for GuardError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Shredded(_) => GuardError::Expired(format!(
                "{e}: the personal data it held was destroyed under the retention policy"
            )),
            other => GuardError::Internal(other.to_string()),
        }
    }
}

impl From<PolicyError> for GuardError {
    fn from(e: PolicyError) -> Self {
        GuardError::Internal(e.to_string())
    }
}

impl From<wbg_core::CoreError> for GuardError {
    fn from(e: wbg_core::CoreError) -> Self {
        match e {
            wbg_core::CoreError::Transition { .. } => GuardError::Conflict(e.to_string()),
            other => GuardError::Invalid(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_cannot_answer_yet_is_a_503_the_caller_may_retry_and_a_failed_one_a_500() {
        let busy = GuardError::from(StoreError::Unavailable("locked".into()));
        assert_eq!((busy.http_status(), busy.code()), (503, "unavailable"));
        let busy = GuardError::from(StoreError::Busy("a deadlock".into()));
        assert_eq!((busy.http_status(), busy.code()), (503, "unavailable"));
        let failed = GuardError::from(StoreError::Corrupt("bad row".into()));
        assert_eq!((failed.http_status(), failed.code()), (500, "internal"));
    }
}
