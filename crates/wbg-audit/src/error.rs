//! Audit errors.
use thiserror::Error;

/// What can go wrong building, proving or checking the log.
#[derive(Debug, Error)]
pub enum AuditError {
    /// A proof or node was asked for outside the tree.
    #[error("out of range: {0}")]
    Range(String),
    /// A signed note or checkpoint is malformed.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A signature did not verify, or no signature by the expected key was found.
    #[error("signature: {0}")]
    Signature(String),
    /// The node or entry store failed (its error kept as the source).
    #[error("store: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AuditError {
    pub(crate) fn malformed(what: &'static str, why: impl Into<String>) -> Self {
        AuditError::Malformed {
            what,
            why: why.into(),
        }
    }
}
