//! Guard errors, each with the stable API code and HTTP status it maps to. Messages never hold personal data.
use thiserror::Error;
use wbg_policy::PolicyError;
use wbg_store::StoreError;
use wbg_vault::VaultError;

/// An underlying error of any kind, as [`GuardError::Internal`] keeps it.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

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
    /// A configuration or start-up step failed: which, and the error that made it fail, kept as the source.
    #[error("{what}: {source}")]
    Setup {
        /// The step or setting, e.g. `policy` or `[masking]`.
        what: String,
        /// The error that made it fail.
        #[source]
        source: Source,
    },
    /// The store failed; its error is kept as the source.
    #[error("internal error: {0}")]
    Store(#[source] StoreError),
    /// The vault failed (a key store, a sealed record that does not open); its error is kept as the source.
    #[error("internal error: {0}")]
    Vault(#[source] VaultError),
    /// The policy engine failed to evaluate; its error is kept as the source.
    #[error("internal error: {0}")]
    Policy(#[source] PolicyError),
    /// Something else failed inside: what, and the error that made it fail (kept as the source), if any.
    #[error("internal error: {what}{}", suffix(.source.as_deref()))]
    Internal {
        /// What failed, naming components and ids, never values.
        what: String,
        /// The error that made it fail.
        #[source]
        source: Option<Source>,
    },
    /// Rows of a batch were refused, each with its own fault; nothing of the batch was applied.
    #[error("{} row(s) of the batch were refused; nothing was applied", .0.len())]
    Rows(Vec<crate::RowFault>),
}

impl GuardError {
    /// An internal failure with no underlying error (a poisoned lock, a state that should not be).
    pub fn internal(what: impl Into<String>) -> GuardError {
        GuardError::Internal {
            what: what.into(),
            source: None,
        }
    }

    /// An internal failure: what was being done, and the error that made it fail, kept as the source.
    pub fn internal_from(what: impl Into<String>, source: impl Into<Source>) -> GuardError {
        GuardError::Internal {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// A configuration or start-up step that failed: which, and the error that made it fail, kept as the source.
    pub fn setup(what: impl Into<String>, source: impl Into<Source>) -> GuardError {
        GuardError::Setup {
            what: what.into(),
            source: source.into(),
        }
    }

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
            GuardError::Config(_) | GuardError::Setup { .. } => "config",
            GuardError::Store(_)
            | GuardError::Vault(_)
            | GuardError::Policy(_)
            | GuardError::Internal { .. } => "internal",
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
            GuardError::Config(_)
            | GuardError::Setup { .. }
            | GuardError::Store(_)
            | GuardError::Vault(_)
            | GuardError::Policy(_)
            | GuardError::Internal { .. } => 500,
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
            other => GuardError::Store(other),
        }
    }
}

impl From<VaultError> for GuardError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Shredded(_) => GuardError::Expired(format!(
                "{e}: the personal data it held was destroyed under the retention policy"
            )),
            other => GuardError::Vault(other),
        }
    }
}

impl From<PolicyError> for GuardError {
    fn from(e: PolicyError) -> Self {
        GuardError::Policy(e)
    }
}

/// `": {source}"`, or nothing: an internal error's message names what made it fail, as the error that did.
fn suffix(source: Option<&(dyn std::error::Error + Send + Sync)>) -> String {
    source.map(|s| format!(": {s}")).unwrap_or_default()
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

    /// Every error in the chain from `e` down, `e` first.
    fn links<'a>(
        e: &'a (dyn std::error::Error + 'static),
    ) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
        std::iter::successors(Some(e), |e| e.source())
    }

    /// Every error in the chain from `e` down, as text, `e` first.
    fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
        links(e).map(|e| e.to_string()).collect()
    }

    #[test]
    fn an_internal_failure_keeps_the_error_that_made_it_fail_as_its_source() {
        // A store's driver error, down through the store's and the guard's.
        let io = std::io::Error::other("disk on fire");
        let e = GuardError::from(StoreError::Db(wbg_store::DbError::context("commit", io)));
        assert_eq!((e.http_status(), e.code()), (500, "internal"));
        assert_eq!(
            chain(&e),
            [
                "internal error: database: commit: disk on fire",
                "database: commit: disk on fire",
                "commit: disk on fire",
                "disk on fire"
            ]
        );
        // A key store's error, through the vault's.
        let keys = VaultError::Store(Box::new(StoreError::Unavailable("no connection".into())));
        let e = GuardError::from(keys);
        assert_eq!((e.http_status(), e.code()), (500, "internal"));
        let found = links(&e).find_map(|e| e.downcast_ref::<StoreError>());
        assert!(matches!(found, Some(StoreError::Unavailable(_))), "{e:?}");
        // Any other error, with what was being done.
        let json = serde_json::from_str::<u32>("{").expect_err("not a number");
        let said = json.to_string();
        let e = GuardError::internal_from("case 7 unreadable", json);
        assert_eq!(
            chain(&e),
            [format!("internal error: case 7 unreadable: {said}"), said]
        );
        // And nothing to keep when nothing underlies it.
        let e = GuardError::internal("a lock was poisoned");
        assert_eq!(chain(&e), ["internal error: a lock was poisoned"]);
    }
}
