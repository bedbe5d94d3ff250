//! Store errors. Messages name tables and keys, never personal values.
use thiserror::Error;

/// What can go wrong in a store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A unique key exists already, or an optimistic check failed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Something referred to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data is not what this version writes (corruption or tampering).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The store cannot answer this yet (an index still being built); the caller may retry shortly.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(String),
}

#[cfg(feature = "rusqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}
