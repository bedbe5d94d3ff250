//! Ingest: a batch of waybills checked, sealed (encrypted and blind-indexed) and stored all or none, with one
//! audit entry.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use std::collections::HashSet;
use wbg_audit::AuditEntry;
use wbg_core::{Account, Millis, NewWaybill, WaybillMeta};
use wbg_policy::WriteAction;
use wbg_store::{SealedWaybill, StoreError};
use wbg_vault::bucket_of;

/// Largest batch one ingest call takes.
pub const MAX_BATCH: usize = 10_000;

/// The result of an ingest.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Waybills stored.
    pub ingested: usize,
    /// Audit entry recording the ingest.
    pub audit_seq: u64,
}

/// What every waybill of one ingest batch is checked against.
struct IngestCheck<'a> {
    account: &'a Account,
    /// Whether the caller presented a token (and so is subject to the policy); local operators are not.
    by_token: bool,
    now: Millis,
    bucket: i64,
}

/// Why a batch was turned away.
enum Rejection {
    /// A waybill is malformed (400).
    Invalid(String),
    /// The policy refuses one of its waybills to this account (403, audited).
    Forbidden { message: String, waybill: String },
    /// Something failed that is not the batch's fault.
    Failed(GuardError),
}

impl From<wbg_policy::PolicyError> for Rejection {
    fn from(e: wbg_policy::PolicyError) -> Self {
        Rejection::Failed(e.into())
    }
}

impl Guard {
    /// Ingests a batch of waybills, all or none.
    pub fn ingest(
        &self,
        actor: Actor<'_>,
        batch: Vec<NewWaybill>,
        meta: &RequestMeta,
    ) -> Result<IngestReport, GuardError> {
        let account = self.actor(actor)?;
        let mut e = self.entry(account.id.as_str(), meta, "ingest");
        e.detail = Some(format!("count={}", batch.len()));
        self.require_active(&account, &e)?;
        if batch.is_empty() {
            return Err(GuardError::Invalid("the batch is empty".into()));
        }
        if batch.len() > MAX_BATCH {
            return Err(GuardError::Invalid(format!(
                "a batch holds at most {MAX_BATCH} waybills"
            )));
        }
        let now = self.clock.now();
        let check = IngestCheck {
            account: &account,
            by_token: matches!(actor, Actor::Token(_)),
            now,
            bucket: bucket_of(now),
        };
        let mut seen = HashSet::with_capacity(batch.len());
        if let Some(dup) = batch.iter().position(|w| !seen.insert(&w.waybill_no)) {
            // A waybill before the repeat may be at fault itself; the first fault in the batch is the one told.
            let fault = batch
                .iter()
                .take(dup)
                .enumerate()
                .find_map(|(i, wb)| self.check_one(&check, i, wb.clone()).err())
                .unwrap_or_else(|| {
                    Rejection::Invalid(format!(
                        "waybills[{dup}]: waybill {} appears twice in the batch",
                        batch[dup].waybill_no
                    ))
                });
            return Err(self.reject(e, fault));
        }
        drop(seen);
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            e.detail = Some(format!(
                "count={} first={} last={}",
                batch.len(),
                first.waybill_no,
                last.waybill_no
            ));
        }
        let n = batch.len();
        let audit_seq = self.check_seal_and_insert(&check, batch, e)?;
        metrics::counter!("wbguard_ingested_total").increment(n as u64);
        Ok(IngestReport {
            ingested: n,
            audit_seq,
        })
    }

    /// Validates waybill `i` of a batch and checks that the account may ingest it.
    fn check_one(
        &self,
        c: &IngestCheck<'_>,
        i: usize,
        wb: NewWaybill,
    ) -> Result<(NewWaybill, WaybillMeta), Rejection> {
        let wb = wb
            .validated()
            .map_err(|err| Rejection::Invalid(format!("waybills[{i}]: {err}")))?;
        let mut m = wbg_policy::prospective(&wb, c.now);
        m.bucket = c.bucket;
        // The policy engine caches by what the ingest rules read, so a batch of one merchant's waybills is one
        // Cedar evaluation, however the policy file is written.
        if c.by_token
            && !self
                .policy()
                .may_write(c.account, &m, &WriteAction::Ingest)?
        {
            return Err(Rejection::Forbidden {
                message: format!(
                    "waybills[{i}]: not permitted to ingest for merchant {}",
                    wb.merchant
                ),
                waybill: wb.waybill_no.to_string(),
            });
        }
        Ok((wb, m))
    }

    /// Turns a rejected batch into its error; a refusal by the policy is audited.
    fn reject(&self, mut e: AuditEntry, r: Rejection) -> GuardError {
        match r {
            Rejection::Invalid(message) => GuardError::Invalid(message),
            Rejection::Forbidden { message, waybill } => {
                e.waybill = Some(waybill);
                self.deny(e, GuardError::Forbidden(message))
            }
            Rejection::Failed(err) => err,
        }
    }

    /// Checks, seals and inserts a batch in one transaction, the stages overlapped: worker threads take chunks
    /// of the batch in order, validate, authorise and seal them, while the store writes the chunks already
    /// sealed. Encryption and blind indexing are per waybill and need no coordination; the insert is all or
    /// nothing, so any fault aborts the whole batch, and the fault reported is the first in batch order
    /// (every chunk before a faulty one was taken earlier and is finished before the workers are joined).
    fn check_seal_and_insert(
        &self,
        check: &IngestCheck<'_>,
        batch: Vec<NewWaybill>,
        audit: AuditEntry,
    ) -> Result<u64, GuardError> {
        const CHUNK: usize = 500;
        let process = |start: usize,
                       chunk: Vec<NewWaybill>|
         -> Result<Vec<SealedWaybill>, (usize, Rejection)> {
            chunk
                .into_iter()
                .enumerate()
                .map(|(j, wb)| {
                    let (wb, meta) = self
                        .check_one(check, start + j, wb)
                        .map_err(|r| (start + j, r))?;
                    let (fields, blind) = self
                        .vault
                        .seal(&wb, check.bucket)
                        .map_err(|err| (start + j, Rejection::Failed(err.into())))?;
                    Ok(sealed_waybill(meta, fields, blind))
                })
                .collect()
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        if threads == 1 || batch.len() < 2 * CHUNK {
            let sealed = process(0, batch).map_err(|(_, r)| self.reject(audit.clone(), r))?;
            return Ok(self.store.insert_waybills(&sealed, audit)?);
        }
        // The store is held for the whole insert below; the bucket's key must not need it.
        self.vault.ensure_bucket(check.bucket)?;
        let expected = batch.len();
        let mut rest = batch.into_iter();
        let mut chunks = Vec::with_capacity(expected.div_ceil(CHUNK));
        loop {
            let chunk: Vec<_> = rest.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push((chunks.len() * CHUNK, chunk));
        }
        let work = std::sync::Mutex::new(chunks.into_iter());
        // The fault earliest in the batch, whichever worker found it.
        let first_fault: std::sync::Mutex<Option<(usize, Rejection)>> = std::sync::Mutex::new(None);
        let mut stopped_early = false;
        let out = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel(threads * 2);
            for _ in 0..threads {
                let tx = tx.clone();
                let (work, first_fault) = (&work, &first_fault);
                scope.spawn(move || loop {
                    if first_fault.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    let next = work.lock().ok().and_then(|mut w| w.next());
                    let Some((start, chunk)) = next else { break };
                    match process(start, chunk) {
                        Ok(sealed) => {
                            if tx.send(Ok(sealed)).is_err() {
                                break;
                            }
                        }
                        Err((at, r)) => {
                            if let Ok(mut f) = first_fault.lock() {
                                if f.as_ref().is_none_or(|(earlier, _)| at < *earlier) {
                                    *f = Some((at, r));
                                }
                            }
                            let _ = tx.send(Err(()));
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let out = self.store.insert_waybill_stream(
                &mut SealedChunks {
                    rx: &rx,
                    expected,
                    received: 0,
                    stopped_early: &mut stopped_early,
                    done: false,
                },
                audit.clone(),
            );
            // Unblocks any worker still sending after the insert stopped early.
            drop(rx);
            out
        });
        let fault = first_fault.into_inner().ok().flatten();
        match (out, fault) {
            (Ok(seq), _) => Ok(seq),
            (Err(_), Some((_, r))) => Err(self.reject(audit, r)),
            (Err(_), None) if stopped_early => {
                Err(GuardError::internal("a sealing thread stopped early"))
            }
            (Err(e), None) => Err(e.into()),
        }
    }
}

/// The sealed chunks as the store takes them; ends with an error (so the insert rolls back) when sealing failed
/// or when fewer waybills arrived than were sent to be sealed.
struct SealedChunks<'a> {
    rx: &'a std::sync::mpsc::Receiver<Result<Vec<SealedWaybill>, ()>>,
    expected: usize,
    received: usize,
    stopped_early: &'a mut bool,
    done: bool,
}

impl Iterator for SealedChunks<'_> {
    type Item = Result<Vec<SealedWaybill>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let abort = || {
            Some(Err(StoreError::Db(
                "batch aborted before it was sealed".into(),
            )))
        };
        match self.rx.recv() {
            Ok(Ok(chunk)) => {
                self.received += chunk.len();
                Some(Ok(chunk))
            }
            Ok(Err(())) => {
                self.done = true;
                abort()
            }
            Err(_) => {
                self.done = true;
                if self.received == self.expected {
                    None
                } else {
                    *self.stopped_early = true;
                    abort()
                }
            }
        }
    }
}

/// A sealed waybill in the form the store keeps: the vault's blind tokens come recipient first (party 0), then
/// sender (party 1), `BlindIndex::PER_PARTY` each, then the public lookup's token (the recipient's, party 0).
pub fn sealed_waybill(
    meta: WaybillMeta,
    fields: wbg_vault::SealedFields,
    blind: wbg_vault::BlindTokens,
) -> SealedWaybill {
    SealedWaybill {
        meta,
        sealed: fields.0,
        blind: blind
            .into_iter()
            .enumerate()
            .map(|(j, (kind, token))| {
                (
                    kind as u8,
                    if j < 2 * wbg_vault::BlindIndex::PER_PARTY {
                        (j / wbg_vault::BlindIndex::PER_PARTY) as u8
                    } else {
                        0
                    },
                    token,
                )
            })
            .collect(),
    }
}
