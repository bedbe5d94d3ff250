//! The audit log as auditors see it: entries, signed checkpoints, inclusion and consistency proofs, and
//! verification of a whole store's log against its checkpoints.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use wbg_audit::merkle::{self, NodeSource};
use wbg_audit::note::NoteVerifier;
use wbg_audit::{AuditEntry, AuditError, Checkpoint, Hash};
use wbg_policy::AdminAction;
use wbg_store::{AuditQuery, Store, StoreError};

/// A page of an audit search.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditSearchPage {
    /// The entries, newest first, as they are in the log.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<AuditEntry>,
    /// The cursor of the next page (pass it as `cursor`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The widest window hourly counts cover, in days.
const MAX_HOURLY_DAYS: i64 = 31;

fn check_query(q: &AuditQuery) -> Result<(), GuardError> {
    let text = |name: &str, v: &Option<String>| match v {
        Some(v) if v.is_empty() || v.chars().count() > 64 || v.chars().any(char::is_control) => {
            Err(GuardError::Invalid(format!(
                "{name} must be 1-64 printable characters"
            )))
        }
        _ => Ok(()),
    };
    text("account", &q.account)?;
    text("waybill", &q.waybill)?;
    text("action", &q.action)?;
    if q.action
        .as_deref()
        .is_some_and(|a| !a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(GuardError::Invalid(
            "action is lower-case letters and '_' (view, ingest, account_suspend, …)".into(),
        ));
    }
    if q.decision
        .as_deref()
        .is_some_and(|d| d != "allow" && d != "deny")
    {
        return Err(GuardError::Invalid("decision must be allow or deny".into()));
    }
    if let (Some(f), Some(t)) = (q.from, q.to) {
        if f > t {
            return Err(GuardError::Invalid("from must not be after to".into()));
        }
    }
    Ok(())
}

struct Nodes<'a>(&'a dyn Store);

impl NodeSource for Nodes<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, AuditError> {
        self.0
            .audit_node(level, index)
            .map_err(|e| AuditError::Store(e.into()))?
            .ok_or_else(|| AuditError::Range(format!("no node ({level}, {index})")))
    }
}

impl Guard {
    /// The bytes of audit entry `seq` (auditors and admins).
    pub fn audit_entry(
        &self,
        actor: Actor<'_>,
        seq: u64,
        meta: &RequestMeta,
    ) -> Result<Vec<u8>, GuardError> {
        self.admin(actor, AdminAction::ReadAudit, "audit_read", meta)?;
        self.store
            .audit_entry(seq)?
            .ok_or_else(|| GuardError::NotFound(format!("audit entry {seq}")))
    }

    /// An evidence pack of alert `id` (auditors and admins, who may read the log): the audit entries behind it,
    /// each with its inclusion proof up to a checkpoint signed now, the verifier key and the alert itself, for
    /// anyone to check offline (`wbguard audit verify-pack`).
    pub fn evidence_pack(
        &self,
        actor: Actor<'_>,
        id: i64,
        meta: &RequestMeta,
    ) -> Result<wbg_audit::EvidencePack, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::ReadAudit, "evidence_pack", meta)?;
        let Some(alert) = self.store.alert(id)? else {
            e.detail = Some(format!("alert={id}"));
            return Err(self.deny(e, GuardError::NotFound(format!("alert {id}"))));
        };
        let seqs = alert.audit_seqs.clone();
        let subject = serde_json::json!({ "alert": alert });
        self.pack_of(&who, e, &format!("alert={id}"), subject, &seqs)
    }

    /// An evidence pack of entries `seqs` about `subject` for `who` (its `evidence_pack` entry `e`; `what` names the
    /// subject there): `e` is appended before the checkpoint is signed, so the pack's own entry is covered too.
    pub(crate) fn pack_of(
        &self,
        who: &wbg_core::Account,
        mut e: AuditEntry,
        what: &str,
        subject: serde_json::Value,
        seqs: &[u64],
    ) -> Result<wbg_audit::EvidencePack, GuardError> {
        use base64::{engine::general_purpose::STANDARD as B64, Engine};
        e.detail = Some(format!("{what} entries={}", seqs.len()));
        self.store.append_audit(e)?;
        let (size, checkpoint) = self.signed_checkpoint()?;
        let mut entries = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let bytes = self
                .store
                .audit_entry(seq)?
                .ok_or_else(|| GuardError::internal(format!("audit entry {seq} is missing")))?;
            entries.push(wbg_audit::PackEntry {
                seq,
                entry: B64.encode(&bytes),
                proof: self
                    .inclusion_proof(seq, size)?
                    .iter()
                    .map(|h| B64.encode(h))
                    .collect(),
            });
        }
        Ok(wbg_audit::EvidencePack {
            format: wbg_audit::PACK_FORMAT.into(),
            subject,
            created_by: who.id.to_string(),
            created_at: self.clock.now(),
            checkpoint,
            verifier_key: self.verifier_key().to_text(),
            entries,
        })
    }

    /// How many entries `q` selects in each hour, by decision (auditors and admins): the console's overview and
    /// an account's day at a glance, from the index. The window defaults to the last 24 hours and spans at most
    /// 31 days.
    pub fn hourly_audit(
        &self,
        actor: Actor<'_>,
        q: &AuditQuery,
        meta: &RequestMeta,
    ) -> Result<Vec<wbg_store::HourCount>, GuardError> {
        let (_, e) = self.admin(actor, AdminAction::ReadAudit, "audit_hourly", meta)?;
        let now = self.clock.now();
        let from = q.from.unwrap_or(now - 86_400_000);
        let to = q.to.unwrap_or(now + 1);
        let checked = check_query(q).and_then(|()| {
            if to.saturating_sub(from) > MAX_HOURLY_DAYS * 86_400_000 {
                return Err(GuardError::Invalid(format!(
                    "hourly counts cover at most {MAX_HOURLY_DAYS} days: narrow from and to"
                )));
            }
            Ok(())
        });
        if let Err(err) = checked {
            return Err(self.deny(e, err));
        }
        let q = AuditQuery {
            from: Some(from),
            to: Some(to),
            ..q.clone()
        };
        Ok(self.store.hourly_audit(&q)?)
    }

    /// One page of the audit entries `q` selects, newest first (auditors and admins). Each text filter is checked
    /// (at most 64 printable characters; an action is lower-case letters and `_`; a decision `allow` or `deny`).
    pub fn search_audit(
        &self,
        actor: Actor<'_>,
        q: &AuditQuery,
        meta: &RequestMeta,
    ) -> Result<AuditSearchPage, GuardError> {
        let (_, e) = self.admin(actor, AdminAction::ReadAudit, "audit_search", meta)?;
        if let Err(err) = check_query(q) {
            return Err(self.deny(e, err));
        }
        let page = self.store.search_audit(q)?;
        let entries = page
            .entries
            .iter()
            .map(|(seq, bytes)| {
                AuditEntry::decode(bytes).map_err(|err| {
                    GuardError::internal_from(format!("audit entry {seq} does not parse"), err)
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AuditSearchPage {
            entries,
            next: page.next.map(|c| c.to_text()),
        })
    }

    /// Signs a checkpoint of the log as it is now, unless the newest stored one already covers it; returns the
    /// signed note.
    pub fn checkpoint(&self) -> Result<String, GuardError> {
        self.signed_checkpoint().map(|(_, note)| note)
    }

    /// [`Guard::checkpoint`], with the tree size the note is for.
    pub fn signed_checkpoint(&self) -> Result<(u64, String), GuardError> {
        let (size, root) = self.store.audit_head()?;
        if let Some((s, note)) = self.store.latest_checkpoint()? {
            if s == size {
                return Ok((size, note));
            }
        }
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let note = self
            .signer
            .sign(&cp.to_text())
            .map_err(|e| GuardError::internal_from("checkpoint signing", e))?;
        self.store.put_checkpoint(size, &note)?;
        Ok((size, note))
    }

    /// The verifier key of the audit log, in signed-note `name+hash+base64key` form.
    pub fn verifier_key(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    fn check_size(&self, size: u64) -> Result<(), GuardError> {
        let (have, _) = self.store.audit_head()?;
        if size > have {
            return Err(GuardError::Invalid(format!(
                "the log has only {have} entries"
            )));
        }
        Ok(())
    }

    /// Inclusion proof of entry `seq` in the tree of `size` entries.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, GuardError> {
        self.check_size(size)?;
        merkle::inclusion_proof(&Nodes(self.store.as_ref()), seq, size)
            .map_err(|e| GuardError::Invalid(e.to_string()))
    }

    /// Consistency proof between trees of sizes `from` and `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, GuardError> {
        self.check_size(to)?;
        merkle::consistency_proof(&Nodes(self.store.as_ref()), from, to)
            .map_err(|e| GuardError::Invalid(e.to_string()))
    }
}

/// Verifies a store's audit log against its signed checkpoints with `verifier`, reading entries in chunks.
pub fn verify_store(
    store: &dyn Store,
    verifier: &NoteVerifier,
) -> Result<wbg_audit::VerifyReport, wbg_audit::VerifyFailure> {
    verify_store_with(store, verifier, &[])
}

/// [`verify_store`], also against checkpoints kept outside the store (a witness's): the log must contain all
/// each covers, with the same root, so entries cut off the end together with the store's own checkpoints are
/// caught.
pub fn verify_store_with(
    store: &dyn Store,
    verifier: &NoteVerifier,
    published: &[String],
) -> Result<wbg_audit::VerifyReport, wbg_audit::VerifyFailure> {
    let fail = |e: StoreError| wbg_audit::VerifyFailure {
        seq: None,
        problem: format!("cannot read the log: {e}"),
    };
    let mut notes = store.checkpoints().map_err(fail)?;
    notes.extend(published.iter().cloned());
    let chunks = ChunkedEntries {
        store,
        next: 0,
        buf: Vec::new().into_iter(),
        done: false,
    };
    wbg_audit::verify_log(chunks, &notes, verifier)
}

struct ChunkedEntries<'a> {
    store: &'a dyn Store,
    next: u64,
    buf: std::vec::IntoIter<wbg_audit::StoredEntry>,
    done: bool,
}

impl Iterator for ChunkedEntries<'_> {
    type Item = Result<wbg_audit::StoredEntry, AuditError>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.buf.next() {
            return Some(Ok(e));
        }
        if self.done {
            return None;
        }
        match self.store.audit_entries(self.next, 4096) {
            Ok(v) if v.is_empty() => {
                self.done = true;
                None
            }
            Ok(v) => {
                // Continue after the last row returned, whatever its seq: gaps are for the verifier to see.
                self.next = v.last().map(|e| e.seq + 1).unwrap_or(self.next);
                self.buf = v.into_iter();
                self.buf.next().map(Ok)
            }
            Err(e) => {
                self.done = true;
                Some(Err(AuditError::Store(e.into())))
            }
        }
    }
}

impl Guard {
    /// Calls `f` with every entry `q` selects through the audit index, newest first, a page at a time, for at
    /// most `most` entries; whether it saw them all. An index still being built is `Unavailable`.
    pub(crate) fn each_indexed(
        &self,
        mut q: AuditQuery,
        most: usize,
        mut f: impl FnMut(wbg_audit::AuditEntry) -> Result<(), GuardError>,
    ) -> Result<bool, GuardError> {
        q.limit = wbg_store::MAX_PAGE;
        let mut read = 0;
        loop {
            let page = self.store.search_audit(&q)?;
            for (seq, bytes) in &page.entries {
                read += 1;
                f(wbg_audit::AuditEntry::decode(bytes).map_err(|err| {
                    GuardError::internal_from(format!("audit entry {seq} does not parse"), err)
                })?)?;
            }
            match page.next {
                Some(c) if read < most => q.before = Some(c),
                Some(_) => return Ok(false),
                None => return Ok(true),
            }
        }
    }

    /// Calls `f` with every audit entry made since `cutoff` (and its seq), newest first, reading the log backwards
    /// a page at a time. Entries are appended in time order give or take clock skew between nodes, so the walk
    /// stops only a minute's slack past the cutoff.
    pub(crate) fn entries_since(
        &self,
        cutoff: wbg_core::Millis,
        mut f: impl FnMut(u64, wbg_audit::AuditEntry),
    ) -> Result<(), GuardError> {
        const PAGE: u64 = 10_000;
        let (size, _) = self.store.audit_head()?;
        let mut end = size;
        while end > 0 {
            let from = end.saturating_sub(PAGE);
            let page = self
                .store
                .audit_entries(from, usize::try_from(end - from).unwrap_or(usize::MAX))?;
            let mut older = false;
            for stored in page.into_iter().rev() {
                let Ok(e) = wbg_audit::AuditEntry::decode(&stored.bytes) else {
                    continue;
                };
                if e.time < cutoff {
                    older |= e.time < cutoff - 60_000;
                    continue;
                }
                f(stored.seq, e);
            }
            if older {
                break;
            }
            end = from;
        }
        Ok(())
    }
}
