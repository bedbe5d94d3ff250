//! The audit log's verifiable parts, built on the transparency-log standards so that tools nobody here wrote can
//! check the log:
//!
//! - [`merkle`]: the RFC 6962 / RFC 9162 Merkle tree — leaf and node hashing, an append frontier, inclusion and
//!   consistency proofs and their verifiers;
//! - [`note`]: C2SP `signed-note` signing and verification with Ed25519, and the `name+hash+base64` key forms;
//! - [`Checkpoint`]: the C2SP `tlog-checkpoint` body;
//! - [`AuditEntry`]: one entry, encoded canonically — its bytes are exactly what is hashed;
//! - [`verify_log`]: replays a log and its signed checkpoints and names the first entry altered, removed or
//!   reordered;
//! - [`EvidencePack`]: chosen entries with their inclusion proofs up to one signed checkpoint, checked offline.
//!
//! - [`LogTail`]: sequencing — an entry's seq, its link to the previous entry and the Merkle nodes its append
//!   completes, computed here once for every backend.
//!
//! Storage is not here: a store persists what [`LogTail::sequence`] returns, in the transaction that commits it.
#![deny(missing_docs)]

mod checkpoint;
mod entry;
mod error;
pub mod merkle;
pub mod note;
pub mod pack;
mod sequence;
mod verify;

pub use checkpoint::Checkpoint;
pub use entry::{AuditEntry, Committed, EntryAccess, EntryHead, HeldHead};
pub use error::AuditError;
pub use merkle::Hash;
pub use pack::{EvidencePack, PackEntry, PackError, PackReport, PACK_FORMAT};
pub use sequence::{void_entry, LogTail, Sequenced};
pub use verify::{verify_log, StoredEntry, VerifyFailure, VerifyReport};
