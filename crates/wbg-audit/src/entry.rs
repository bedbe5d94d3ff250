//! One audit entry and its canonical encoding. The entry's bytes are what the Merkle leaf hashes.
use crate::StoredEntry;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

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

/// What the indexes read of a stored entry (the audit search index, the forensics access index), decoded from its
/// canonical bytes ([`AuditEntry::head`]) without building the rest: the other fields are skipped, and the strings
/// kept are borrowed from the bytes (one that JSON escapes is copied). Upkeep decodes every entry the log takes, once
/// for each index, so a whole [`AuditEntry`] there cost a dozen allocations an entry for fields nobody read.
///
/// It does not check the entry: the skipped fields are only checked to be well-formed JSON. `audit verify` is what
/// checks entries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntryHead<'a> {
    /// Position in the log.
    pub seq: u64,
    /// When (ms since epoch).
    pub time: i64,
    /// Acting account.
    #[serde(borrow)]
    pub account: Cow<'a, str>,
    /// What was done.
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    /// Waybill concerned, if any.
    #[serde(default, borrow, deserialize_with = "borrowed_or_none")]
    pub waybill: Option<Cow<'a, str>>,
    /// `allow` or `deny`.
    #[serde(borrow)]
    pub decision: Cow<'a, str>,
    /// View granted, for allowed reads.
    #[serde(default, borrow, deserialize_with = "borrowed_or_none")]
    pub view: Option<Cow<'a, str>>,
    /// Short non-personal detail.
    #[serde(default, borrow, deserialize_with = "borrowed_or_none")]
    pub detail: Option<Cow<'a, str>>,
}

/// An optional string, borrowed where it can be: serde borrows a `Cow` field only when it is the field's own type,
/// not inside an `Option`.
fn borrowed_or_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

impl EntryHead<'_> {
    /// The access this entry records, if it records one ([`AuditEntry::access`]): the one definition behind
    /// both.
    pub fn access(&self) -> Option<EntryAccess> {
        if self.decision != "allow" {
            return None;
        }
        let waybill = self.waybill.as_deref()?;
        if self.action == "export" {
            let id = self.detail.as_deref()?.strip_prefix("export=")?;
            return Some(EntryAccess {
                principal: format!("export:{id}"),
                waybill: waybill.to_owned(),
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
            principal: self.account.as_ref().to_owned(),
            waybill: waybill.to_owned(),
            full,
        })
    }
}

/// A committed entry as the indexes read it: the head its store kept since the commit, or its stored bytes.
/// Either gives the same [`EntryHead`]; the first without reading the bytes back or decoding them.
#[derive(Debug, Clone)]
pub enum Committed {
    /// Kept in memory by the store that committed it.
    Held(HeldHead),
    /// Read back from the store.
    Stored(StoredEntry),
}

impl Committed {
    /// Its position in the log.
    pub fn seq(&self) -> u64 {
        match self {
            Committed::Held(h) => h.seq,
            Committed::Stored(s) => s.seq,
        }
    }

    /// What the indexes read of it; an error only for stored bytes that do not parse.
    pub fn head(&self) -> Result<EntryHead<'_>, serde_json::Error> {
        match self {
            Committed::Held(h) => Ok(h.head()),
            Committed::Stored(s) => AuditEntry::head(&s.bytes),
        }
    }
}

/// An entry's [`EntryHead`] kept on its own, its strings in one shared allocation: a store holding the latest
/// entries for its indexes keeps, clones and drops one allocation an entry, where a whole [`AuditEntry`] has a
/// dozen (dropping those, long after they were made, cost a store's committing thread more than decoding saved).
#[derive(Debug, Clone)]
pub struct HeldHead {
    seq: u64,
    time: i64,
    text: Arc<str>,
    account: (usize, usize),
    action: (usize, usize),
    decision: (usize, usize),
    waybill: Option<(usize, usize)>,
    view: Option<(usize, usize)>,
    detail: Option<(usize, usize)>,
}

impl HeldHead {
    /// The head of `entry`, which must have its seq (a sequenced entry).
    pub fn of(entry: &AuditEntry) -> HeldHead {
        let optional = [&entry.waybill, &entry.view, &entry.detail];
        let len = entry.account.len()
            + entry.action.len()
            + entry.decision.len()
            + optional
                .iter()
                .filter_map(|o| o.as_deref())
                .map(str::len)
                .sum::<usize>();
        let mut text = String::with_capacity(len);
        let mut put = |s: &str| {
            let start = text.len();
            text.push_str(s);
            (start, text.len())
        };
        let account = put(&entry.account);
        let action = put(&entry.action);
        let decision = put(&entry.decision);
        let waybill = entry.waybill.as_deref().map(&mut put);
        let view = entry.view.as_deref().map(&mut put);
        let detail = entry.detail.as_deref().map(&mut put);
        HeldHead {
            seq: entry.seq,
            time: entry.time,
            text: Arc::from(text),
            account,
            action,
            decision,
            waybill,
            view,
            detail,
        }
    }

    /// Its position in the log.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The head, borrowed from it.
    pub fn head(&self) -> EntryHead<'_> {
        let part = |(start, end): (usize, usize)| Cow::Borrowed(&self.text[start..end]);
        EntryHead {
            seq: self.seq,
            time: self.time,
            account: part(self.account),
            action: part(self.action),
            waybill: self.waybill.map(part),
            decision: part(self.decision),
            view: self.view.map(part),
            detail: self.detail.map(part),
        }
    }
}

impl AuditEntry {
    /// The access this entry records, if it records one: an allowed read with a masked or full view, or a row of
    /// an export file (`action` `export`, `detail` `export=<id>`), whose principal is the file (`export:<id>`),
    /// not the account that downloaded it: several files of the same rows are told apart by it.
    pub fn access(&self) -> Option<EntryAccess> {
        self.head_of().access()
    }

    /// What the indexes read of this entry ([`EntryHead`]), borrowed from it.
    pub fn head_of(&self) -> EntryHead<'_> {
        fn borrowed(s: &Option<String>) -> Option<Cow<'_, str>> {
            s.as_deref().map(Cow::Borrowed)
        }
        EntryHead {
            seq: self.seq,
            time: self.time,
            account: Cow::Borrowed(&self.account),
            action: Cow::Borrowed(&self.action),
            waybill: borrowed(&self.waybill),
            decision: Cow::Borrowed(&self.decision),
            view: borrowed(&self.view),
            detail: borrowed(&self.detail),
        }
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

    /// Parses what the indexes read of canonical bytes ([`EntryHead`]).
    pub fn head(bytes: &[u8]) -> Result<EntryHead<'_>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Strings as entries hold them, with JSON's escapes (quotes, backslashes, control characters) and non-ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_:=-]{0,12}",
            "[a-z\"\\\\\u{0}-\u{1f}\u{4e00}-\u{4e0f}=]{0,8}",
            Just("view".to_owned()),
            Just("export".to_owned()),
            Just("export=X1".to_owned()),
            Just("full".to_owned()),
            Just("masked".to_owned()),
        ]
    }

    fn entry() -> impl Strategy<Value = AuditEntry> {
        (
            (
                any::<u64>(),
                any::<i64>(),
                text(),
                proptest::option::of(text()),
            ),
            (
                text(),
                proptest::option::of(text()),
                prop_oneof![Just("allow"), Just("deny")],
            ),
            (
                proptest::option::of(text()),
                proptest::collection::vec(text(), 0..3),
            ),
            (
                proptest::option::of(text()),
                proptest::option::of(text()),
                text(),
            ),
        )
            .prop_map(
                |(
                    (seq, time, account, device),
                    (action, waybill, decision),
                    (view, fields),
                    (purpose, detail, prev),
                )| {
                    AuditEntry {
                        seq,
                        time,
                        account,
                        device,
                        ip: None,
                        action,
                        waybill,
                        purpose,
                        decision: decision.to_owned(),
                        view,
                        fields,
                        detail,
                        prev,
                    }
                },
            )
    }

    proptest! {
        /// The head of an entry's bytes holds the entry's own values, and says the same access as the whole entry.
        #[test]
        fn the_head_reads_what_the_whole_entry_holds(e in entry()) {
            let bytes = e.encode();
            let head = AuditEntry::head(&bytes).unwrap();
            prop_assert_eq!(&head, &e.head_of());
            prop_assert_eq!(head.seq, e.seq);
            prop_assert_eq!(head.time, e.time);
            prop_assert_eq!(&*head.account, e.account.as_str());
            prop_assert_eq!(&*head.action, e.action.as_str());
            prop_assert_eq!(head.waybill.as_deref(), e.waybill.as_deref());
            prop_assert_eq!(&*head.decision, e.decision.as_str());
            prop_assert_eq!(head.view.as_deref(), e.view.as_deref());
            prop_assert_eq!(head.detail.as_deref(), e.detail.as_deref());
            prop_assert_eq!(head.access(), e.access());
        }

        /// A store's held head is the head of the entry's bytes, whatever the strings hold.
        #[test]
        fn a_held_head_is_the_head_of_the_bytes(e in entry()) {
            let bytes = e.encode();
            let held = HeldHead::of(&e);
            prop_assert_eq!(held.seq(), e.seq);
            prop_assert_eq!(held.head(), AuditEntry::head(&bytes).unwrap());
            let committed = Committed::Held(held);
            prop_assert_eq!(committed.head().unwrap(), e.head_of());
        }
    }

    #[test]
    fn the_head_borrows_plain_strings_and_copies_escaped_ones() {
        let mut e = AuditEntry::new(5, "C1", "view");
        e.waybill = Some("SF100".into());
        e.view = Some("full".into());
        e.detail = Some("ticket=\"T1\"".into());
        let bytes = e.encode();
        let head = AuditEntry::head(&bytes).unwrap();
        assert!(matches!(head.account, Cow::Borrowed("C1")));
        assert!(matches!(head.waybill, Some(Cow::Borrowed("SF100"))));
        assert!(matches!(head.view, Some(Cow::Borrowed("full"))));
        assert!(matches!(&head.detail, Some(Cow::Owned(d)) if d == "ticket=\"T1\""));
        assert_eq!(
            head.access(),
            Some(EntryAccess {
                principal: "C1".into(),
                waybill: "SF100".into(),
                full: true
            })
        );
    }
}
