//! The vault: personal fields encrypted one by one under per-day data keys, blind indexes for exact-match
//! lookups without decrypting, and the masking rules of the masked view.
//!
//! Keys form two levels. A 256-bit **master key** lives outside the data directory (a key file created with
//! mode 0600, or the `WBGUARD_MASTER_KEY` environment variable). It only wraps other keys: one **data key** per
//! retention bucket (a day of ingest), and the **blind-index key**. Wrapped keys are stored beside the data;
//! destroying a bucket's wrapped key shreds that day's personal data.
//!
//! Each field is sealed with AES-256-GCM under its bucket's data key, with associated data that binds the waybill
//! number, the field name and the bucket: a ciphertext copied to another record or field fails to open.
#![deny(missing_docs)]

mod blind;
mod error;
mod field;
mod keys;
mod mask;
mod normalize;
mod vault;

pub use blind::{BlindIndex, BlindKind};
pub use error::{KeyStoreError, VaultError};
pub use field::{join_region, split_region, Field, FieldGroup, SealedFields};
pub use keys::{create_secret, read_secret, KeySource, MasterKey, MASTER_KEY_ENV};
pub use mask::{mask_name, mask_phone, PhoneMask, MIN_HIDDEN_DIGITS};
pub use normalize::{normalize_address, normalize_name};
pub use vault::{bucket_of, BlindTokens, MemoryKeyStore, Vault, WrappedKeyStore};
