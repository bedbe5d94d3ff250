//! Store errors. Messages name tables and keys, never personal values.
use std::sync::Arc;
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
    /// Stored data is not what this version writes (corruption or tampering): what was found, and the error that
    /// found it (a parse of the stored value, say) as the source where there is one.
    #[error("corrupt store: {0}")]
    Corrupt(#[source] DbError),
    /// The store cannot answer this yet (an index still being built, the database out of reach or its
    /// connection lost); the caller may retry shortly.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Another transaction held what this needed — a lock waited for past the store's limit, a deadlock, a
    /// serialization failure — and the database gave up on this statement: nothing of it was done, the
    /// connection is sound, and the caller may retry.
    #[error("busy: {0}")]
    Busy(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[source] DbError),
}

impl StoreError {
    /// A corrupt store: a message of what was found, or the error that found it (kept as the source).
    pub fn corrupt(found: impl Into<Source>) -> StoreError {
        StoreError::Corrupt(DbError::new(found))
    }

    /// A corrupt store: what was found wrong, and the error that found it (a parse of the stored value), kept as
    /// the source.
    pub fn corrupt_because(what: impl Into<String>, source: impl Into<Source>) -> StoreError {
        StoreError::Corrupt(DbError::context(what, source))
    }
}

/// A database failure: what failed, and the error that made it fail (the driver's, the runtime's, or — for every
/// caller of a group commit that failed as a whole — the group's), kept as the [`source`](std::error::Error::source)
/// rather than flattened into text. Cloned cheaply, so one failure can be told to every caller it concerns. A
/// corrupt store ([`StoreError::Corrupt`]) is told the same way: what was found wrong, and the error that found it.
#[derive(Debug, Clone)]
pub struct DbError {
    what: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// An error of any kind, as a [`DbError`] takes it (any `std::error::Error`, boxed).
pub type Source = Box<dyn std::error::Error + Send + Sync>;

impl DbError {
    /// A failure with no underlying error (a stopped thread, a poisoned lock, a schema behind this build).
    pub fn msg(what: impl Into<String>) -> DbError {
        DbError {
            what: Some(what.into()),
            source: None,
        }
    }

    /// The underlying error alone, which says what failed.
    pub fn new(source: impl Into<Source>) -> DbError {
        DbError {
            what: None,
            source: Some(Arc::from(source.into())),
        }
    }

    /// What was being done, and the error that stopped it.
    pub fn context(what: impl Into<String>, source: impl Into<Source>) -> DbError {
        DbError {
            what: Some(what.into()),
            source: Some(Arc::from(source.into())),
        }
    }

    /// For every caller of a group that failed as a whole: the group's error, shared.
    pub fn shared(source: Arc<StoreError>) -> DbError {
        DbError {
            what: None,
            source: Some(source),
        }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.what, &self.source) {
            (Some(what), Some(source)) => write!(f, "{what}: {source}"),
            (Some(what), None) => f.write_str(what),
            (None, Some(source)) => write!(f, "{source}"),
            (None, None) => f.write_str("failed"),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<&str> for DbError {
    fn from(what: &str) -> DbError {
        DbError::msg(what)
    }
}

impl From<String> for DbError {
    fn from(what: String) -> DbError {
        DbError::msg(what)
    }
}

#[cfg(feature = "rusqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(DbError::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_database_error_keeps_what_caused_it() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::Db(DbError::context("cannot connect to PostgreSQL", io));
        assert_eq!(
            e.to_string(),
            "database: cannot connect to PostgreSQL: refused"
        );
        let db = e.source().expect("the DbError");
        let io = db.source().expect("the io::Error under it");
        assert_eq!(io.to_string(), "refused");

        // A group's failure told to each of its callers keeps the group's error, kind and all.
        let group = Arc::new(StoreError::Conflict("waybill YT1".into()));
        let each = StoreError::Db(DbError::shared(group.clone()));
        assert_eq!(each.to_string(), "database: conflict: waybill YT1");
        let inner = each
            .source()
            .and_then(|d| d.source())
            .expect("the group's error");
        assert!(matches!(
            inner.downcast_ref::<StoreError>(),
            Some(StoreError::Conflict(_))
        ));

        let plain = StoreError::Db("the store thread has stopped".into());
        assert!(plain.source().is_some_and(|d| d.source().is_none()));
    }

    #[test]
    fn a_corrupt_row_keeps_the_error_that_found_it() {
        let e = crate::rows::waybill_no("not a waybill number!").expect_err("malformed");
        assert!(matches!(e, StoreError::Corrupt(_)));
        assert!(e
            .to_string()
            .starts_with("corrupt store: a stored waybill number is malformed: "));
        let parse = e
            .source()
            .and_then(|d| d.source())
            .expect("the parse error");
        assert!(parse.downcast_ref::<wbg_core::CoreError>().is_some());
        assert!(
            !e.to_string().contains("not a waybill number!"),
            "no stored value in the message"
        );

        let found = StoreError::Corrupt("a blind-index chunk is malformed".into());
        assert_eq!(
            found.to_string(),
            "corrupt store: a blind-index chunk is malformed"
        );
    }
}
