//! Vault errors. None carries key material or plaintext.
use thiserror::Error;

/// The error a [`WrappedKeyStore`](crate::WrappedKeyStore) fails with, whatever its kind: the vault keeps it
/// whole, as the source of [`VaultError::Store`].
pub type KeyStoreError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in the vault.
#[derive(Debug, Error)]
pub enum VaultError {
    /// The master key could not be read or created.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A key file could not be read, created or examined (the file system's error kept as the source).
    #[error("master key: {what}: {source}")]
    KeyFile {
        /// What was being done, naming the file.
        what: String,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// The master key does not match the one the data was written with.
    #[error("the master key does not match this data directory (expected key id {expected}, got {actual})")]
    WrongMasterKey {
        /// Key id recorded with the data.
        expected: String,
        /// Key id of the key supplied.
        actual: String,
    },
    /// A wrapped key or a field failed authentication: tampered, moved, or encrypted under another key.
    #[error("decryption failed for {what}")]
    Decrypt {
        /// What failed to open, e.g. `recipient.phone` or `data key day:20415`.
        what: String,
    },
    /// The data key of a bucket is gone (shredded by retention).
    #[error("the data key of bucket {0} has been destroyed")]
    Shredded(i64),
    /// A sealed blob is malformed.
    #[error("malformed sealed record: {0}")]
    Malformed(&'static str),
    /// The key store failed; its error is kept as the source.
    #[error("key store: {0}")]
    Store(#[source] KeyStoreError),
    /// A key the vault needs is not in the key store, or not loaded (no underlying error).
    #[error("key store: {0}")]
    Keys(String),
}
