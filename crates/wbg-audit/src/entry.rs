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

/// What an audit entry says a principal was shown of one waybill ([`AuditEntry::access`]): the one definition
/// behind both forensics access indexes (the guard's file beside an embedded store, PostgreSQL's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAccess {
    /// Who: the account, or `export:<id>` for a row of an export file.
    pub principal: String,
    /// The waybill.
    pub waybill: String,
    /// Whether every field was shown in clear (a full view, or an export row); otherwise the masked view.
    pub full: bool,
}

impl AuditEntry {
    /// The access this entry records, if it records one: an allowed read with a masked or full view, or a row of
    /// an export file (`action` `export`, `detail` `export=<id>`), whose principal is the file (`export:<id>`),
    /// not the account that downloaded it: several files of the same rows are told apart by it.
    pub fn access(&self) -> Option<EntryAccess> {
        if self.decision != "allow" {
            return None;
        }
        let waybill = self.waybill.clone()?;
        if self.action == "export" {
            let id = self.detail.as_deref()?.strip_prefix("export=")?;
            return Some(EntryAccess {
                principal: format!("export:{id}"),
                waybill,
                full: true,
            });
        }
        if self.action != "view" {
            return None;
        }
        let full = match self.view.as_deref()? {
            "full" => true,
            "masked" => false,
            _ => return None,
        };
        Some(EntryAccess {
            principal: self.account.clone(),
            waybill,
            full,
        })
    }

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
