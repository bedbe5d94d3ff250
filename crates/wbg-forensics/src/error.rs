//! The forensics errors. None of them carries a value from the leak: rows are named by number, never shown.
use thiserror::Error;

/// What can go wrong reading a leak or attributing it.
#[derive(Debug, Error)]
pub enum ForensicsError {
    /// The leak file is larger than the intake accepts; nothing was read past the limit.
    #[error("the leak is larger than {limit} bytes; split it or raise the limit")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The leak is not text (a NUL byte, or bytes that are not UTF-8).
    #[error("the leak is not UTF-8 text (binary content near byte {at}); convert it to UTF-8 CSV or JSON Lines")]
    NotText {
        /// Offset of the first offending byte, as near as the reader knows it.
        at: u64,
    },
    /// The leak holds no records (an empty file, or a header alone).
    #[error("the leak holds no records")]
    Empty,
    /// More records than the intake accepts.
    #[error("the leak has more than {limit} records; split it or raise the limit")]
    TooManyRecords {
        /// The limit.
        limit: usize,
    },
    /// A row or line longer than the intake accepts.
    #[error("row {row} is longer than {limit} bytes")]
    RowTooLong {
        /// The 1-based row or line.
        row: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A JSON Lines line that is not a JSON object.
    #[error("line {line} is not a JSON object")]
    BadJson {
        /// The 1-based line.
        line: usize,
    },
    /// No column of the leak can be matched on: no waybill number, phone or street address (names alone are too
    /// common to match).
    #[error("no column of the leak holds a waybill number, phone or street address (names alone cannot be matched)")]
    NoUsableColumn,
    /// A CSV the reader could not parse.
    #[error("the leak's CSV could not be read near row {row}: {problem}")]
    BadCsv {
        /// The 1-based row, as near as the reader knows it.
        row: usize,
        /// What the reader said (never a value).
        problem: String,
    },
    /// Reading the leak failed.
    #[error("cannot read the leak: {0}")]
    Io(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] wbg_store::StoreError),
    /// The access index is not as it must be (no underlying error).
    #[error("access index: {0}")]
    Index(String),
    /// The access index's database failed; its error is kept as the source.
    #[error("access index: {0}")]
    Db(#[from] rusqlite::Error),
    /// An audit entry the index reads does not parse; the decoder's error is kept as the source.
    #[error("access index: audit entry {seq} does not parse: {source}")]
    Entry {
        /// The entry's sequence number.
        seq: u64,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
}
