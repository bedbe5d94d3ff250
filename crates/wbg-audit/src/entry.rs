//! One audit entry and its canonical encoding. The entry's bytes are what the Merkle leaf hashes.
use serde::{Deserialize, Serialize};

/// One audited action. It records who asked for what and what they were shown — never personal data itself:
/// fields are named (`recipient.phone`), not valued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// When (ms since epoch).
    pub time: i64,
    /// Acting account (or `system`).
    pub account: String,
    /// Device id the client presented, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Client address, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// What was done: `view`, `ingest`, `event`, `account_create`, …
    pub action: String,
    /// Waybill concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waybill: Option<String>,
    /// Declared purpose, for reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// `allow` or `deny`.
    pub decision: String,
    /// View granted, for allowed reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// Personal fields revealed in clear (full view) or masked, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Why a request was denied, or other short non-personal detail (ticket id, batch size, target account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Hex leaf hash of the previous entry (empty for the first): a hash chain beside the Merkle tree, so
    /// that an altered entry is named even where no checkpoint separates it from its successor.
    pub prev: String,
}

impl AuditEntry {
    /// An entry of `action` by `account` at `time`, allowed, with nothing else filled in. The store sets `seq` and
    /// `prev` when it appends it.
    pub fn new(time: i64, account: impl Into<String>, action: impl Into<String>) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time,
            account: account.into(),
            device: None,
            ip: None,
            action: action.into(),
            waybill: None,
            purpose: None,
            decision: "allow".to_owned(),
            view: None,
            fields: Vec::new(),
            detail: None,
            prev: String::new(),
        }
    }

    /// The canonical bytes: JSON with fields in declaration order, no whitespace.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an audit entry always serialises")
    }

    /// Parses canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<AuditEntry, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
