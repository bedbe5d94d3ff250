//! A person's right to know who read their data (PIPL arts. 44–45), answered from the audit log: customer
//! service, working a registered ticket for one of the person's parcels, gives the phone the person proved is
//! theirs, and gets every waybill on which that phone is the recipient's or the sender's, each with the accounts
//! that were shown its personal fields and when — account ids, times, views and purposes, never another person's
//! data (the answer holds no name, phone or address at all). The phone is matched through the blind index, never
//! by opening anyone's record. The request is audited (`rights_access`, without the phone) and metered by the
//! engine like a full read: an agent cannot turn it into a phone-to-parcels lookup at scale.
//!
//! A person's right to have it deleted (PIPL art. 47) is crypto-shredding, through the same door
//! ([`Guard::rights_erase`]): every waybill carrying their phone that is finished (signed for or returned) loses
//! its personal fields at once — both parties', as a retention day would — and those still under way are erased
//! by the first retention run after each is finished (the request is kept as a case file, `erasure`, until
//! then; parcels a legal hold keeps wait for its release the same way). Routing data and the audit log stay: the log is the record that the deletion happened.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use wbg_audit::AuditEntry;
use wbg_core::{Millis, Purpose, Role, WaybillNo};
use wbg_store::AuditQuery;

/// Waybills one answer covers at most.
const MAX_WAYBILLS: usize = 200;
/// Entries read per waybill at most.
const MAX_ENTRIES: usize = 5_000;

/// A request to know who read one's data.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RightsRequest {
    /// The person's phone, as they gave it (and proved it theirs to the agent).
    pub phone: String,
    /// One of their parcels: the phone must be its recipient's or sender's.
    pub waybill_no: String,
    /// The registered, open ticket the agent works the request under; it must concern `waybill_no`.
    pub ticket: String,
}

/// One time a waybill's personal fields were shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccessRecord {
    /// When (ms since the epoch).
    pub at: Millis,
    /// When, ISO 8601 in China Standard Time.
    pub at_local: String,
    /// The account shown them (`public` for the tracking page's masked view).
    pub account: String,
    /// What it did (`view`, `label`, `breach_notify`, `track_reveal`, …).
    pub action: String,
    /// The view it was given (`masked`, `full`).
    pub view: String,
    /// The purpose it declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
}

/// One of the person's waybills and who saw it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WaybillAccesses {
    /// The waybill.
    pub waybill_no: String,
    /// The person's side of it: `recipient` or `sender`.
    pub party: String,
    /// Each time its personal fields were shown, oldest first.
    pub accesses: Vec<AccessRecord>,
    /// Every entry of it was read (false past 5,000 entries).
    pub complete: bool,
}

/// The answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RightsAnswer {
    /// The person's waybills, newest number first.
    pub waybills: Vec<WaybillAccesses>,
    /// The request's own audit entry.
    pub audit_seq: u64,
}

/// What a deletion request did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasureAnswer {
    /// Waybills whose personal fields were destroyed now (finished parcels); their routing data stays.
    pub erased: Vec<String>,
    /// Waybills still under way, or kept by a legal hold: erased by the first retention run after each is
    /// signed for or returned and no hold keeps it.
    pub pending: Vec<String>,
    /// Waybills that had no personal field left (retention or an earlier request took them).
    pub already_gone: Vec<String>,
    /// The case file that follows the pending ones (`E` and 16 hex digits), if any are pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The request's own audit entry.
    pub audit_seq: u64,
}

/// A deletion request still waiting on parcels under way (case file kind `erasure`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Erasure {
    pub id: String,
    pub ticket: String,
    pub requested_by: String,
    pub requested_at: Millis,
    /// Waybill numbers still to erase once finished.
    pub pending: Vec<String>,
    /// Waybill numbers erased so far.
    pub erased: Vec<String>,
}

/// Case-file kind of deletion requests waiting on parcels under way.
pub(crate) const ERASURE: &str = "erasure";

impl Guard {
    /// Deletes the personal data of the person whose phone is `req.phone` (customer service, under a registered
    /// open ticket for one of their parcels, as [`Guard::rights_access`]): see the module. Audited
    /// (`rights_erase`, without the phone) and metered like a full read.
    pub fn rights_erase(
        &self,
        actor: Actor<'_>,
        req: &RightsRequest,
        meta: &RequestMeta,
    ) -> Result<ErasureAnswer, GuardError> {
        let (who, mut e, party_of) = self.rights_request(actor, req, "rights_erase", meta)?;
        let mut all: Vec<WaybillNo> = party_of.into_iter().flat_map(|(_, n)| n).collect();
        all.sort();
        all.dedup();
        let metas = self.store.waybill_metas(&all).wait()?;
        // A parcel a legal hold keeps waits, like one under way, until the hold is released.
        self.reload_holds()?;
        let holds = self.active_holds();
        let (mut finished, mut pending) = (Vec::new(), Vec::new());
        for (n, m) in all.into_iter().zip(metas) {
            match m {
                Some(m) if m.status.is_final() && !holds.holds(n.as_str()) => finished.push(n),
                Some(_) => pending.push(n),
                None => {}
            }
        }
        let why = format!("rights_erase ticket={}", req.ticket);
        let (erased, already_gone) = self.erase(who.id.as_str(), meta, &finished, &why)?;
        let strings = |v: &[WaybillNo]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let request = if pending.is_empty() {
            None
        } else {
            let file = Erasure {
                id: format!("E{:016x}", rand::thread_rng().gen::<u64>()),
                ticket: req.ticket.clone(),
                requested_by: who.id.to_string(),
                requested_at: self.clock.now(),
                pending: strings(&pending),
                erased: strings(&erased),
            };
            let body = serde_json::to_string(&file)
                .map_err(|err| GuardError::internal_from("erasure request unwritable", err))?;
            let mut fe = self.entry(who.id.as_str(), meta, "erasure_pending");
            fe.detail = Some(format!("request={} waybills={}", file.id, pending.len()));
            self.store.put_case(ERASURE, &file.id, &body, None, fe)?;
            Some(file.id)
        };
        e.detail = Some(format!(
            "ticket={} erased={} pending={} already_gone={}{}",
            req.ticket,
            erased.len(),
            pending.len(),
            already_gone.len(),
            request
                .as_ref()
                .map(|r| format!(" request={r}"))
                .unwrap_or_default()
        ));
        let audit_seq = self.store.append_audit(e)?;
        metrics::counter!("wbguard_rights_requests_total", "kind" => "erase").increment(1);
        Ok(ErasureAnswer {
            erased: strings(&erased),
            pending: strings(&pending),
            already_gone: strings(&already_gone),
            request,
            audit_seq,
        })
    }

    /// Erases the parcels of pending deletion requests that have since been finished (the retention run's first
    /// step, which has read the holds afresh; a held parcel waits); returns how many were erased.
    pub(crate) fn erase_finished(&self, who: &str, meta: &RequestMeta) -> Result<u64, GuardError> {
        let holds = self.active_holds();
        let mut total = 0;
        for (id, body) in self.store.cases(ERASURE, 100_000)? {
            let mut file: Erasure = serde_json::from_str(&body).map_err(|err| {
                GuardError::internal_from(format!("erasure {id} unreadable"), err)
            })?;
            if file.pending.is_empty() {
                continue;
            }
            let nos: Vec<WaybillNo> = file
                .pending
                .iter()
                .filter_map(|n| WaybillNo::parse(n).ok())
                .collect();
            let metas = self.store.waybill_metas(&nos).wait()?;
            let finished: Vec<WaybillNo> = nos
                .into_iter()
                .zip(metas)
                .filter(|(n, m)| {
                    m.as_ref().is_none_or(|m| m.status.is_final()) && !holds.holds(n.as_str())
                })
                .map(|(n, _)| n)
                .collect();
            if finished.is_empty() {
                continue;
            }
            let why = format!("rights_erase request={id} ticket={}", file.ticket);
            let (erased, gone) = self.erase(who, meta, &finished, &why)?;
            let done: std::collections::HashSet<String> =
                finished.iter().map(|n| n.to_string()).collect();
            file.pending.retain(|n| !done.contains(n));
            file.erased
                .extend(erased.iter().chain(&gone).map(|n| n.to_string()));
            total += erased.len() as u64;
            let new_body = serde_json::to_string(&file)
                .map_err(|err| GuardError::internal_from("erasure request unwritable", err))?;
            let mut fe = self.entry(who, meta, "erasure_progress");
            fe.detail = Some(format!(
                "request={id} erased={} pending={}",
                erased.len(),
                file.pending.len()
            ));
            self.store
                .put_case(ERASURE, &id, &new_body, Some(&body), fe)?;
        }
        Ok(total)
    }

    /// Who was shown the personal data of the person whose phone is `req.phone` (customer service, under a
    /// registered open ticket for one of that person's parcels). See the module.
    pub fn rights_access(
        &self,
        actor: Actor<'_>,
        req: &RightsRequest,
        meta: &RequestMeta,
    ) -> Result<RightsAnswer, GuardError> {
        let (_, mut e, party_of) = self.rights_request(actor, req, "rights_access", meta)?;
        let mut waybills = Vec::new();
        for (party, nos) in party_of {
            for n in nos {
                let (accesses, complete) = self.accesses_of(&n)?;
                waybills.push(WaybillAccesses {
                    waybill_no: n.to_string(),
                    party: party.to_owned(),
                    accesses,
                    complete,
                });
            }
        }
        waybills.sort_by(|a, b| b.waybill_no.cmp(&a.waybill_no));
        e.detail = Some(format!(
            "ticket={} waybills={} accesses={}",
            req.ticket,
            waybills.len(),
            waybills.iter().map(|w| w.accesses.len()).sum::<usize>()
        ));
        let audit_seq = self.store.append_audit(e)?;
        metrics::counter!("wbguard_rights_requests_total", "kind" => "access").increment(1);
        Ok(RightsAnswer {
            waybills,
            audit_seq,
        })
    }

    /// What every rights request does first: the caller must be an active customer-service account, the request
    /// must prove the person's phone on one of their parcels under a registered open ticket (refusals audited as
    /// `action`), and it is metered like a full read of that parcel — repeated, it is rate-limited and scored.
    /// Returns the caller, the request's audit entry (still to append) and the person's waybills per side.
    #[allow(clippy::type_complexity)]
    fn rights_request(
        &self,
        actor: Actor<'_>,
        req: &RightsRequest,
        action: &str,
        meta: &RequestMeta,
    ) -> Result<
        (
            wbg_core::Account,
            AuditEntry,
            Vec<(&'static str, Vec<WaybillNo>)>,
        ),
        GuardError,
    > {
        let who = self.actor(actor)?;
        let mut e = self.entry(who.id.as_str(), meta, action);
        e.purpose = Some(Purpose::CustomerService.as_str().into());
        self.require_active(&who, &e)?;
        if who.role != Role::CustomerService {
            return Err(self.deny(
                e,
                GuardError::Forbidden("rights requests are customer service's".into()),
            ));
        }
        let (no, party_of, wb) = match self.check_rights(&who, req) {
            Ok(c) => c,
            Err(err) => {
                e.waybill = WaybillNo::parse(&req.waybill_no)
                    .ok()
                    .map(|n| n.to_string());
                return Err(self.deny(e, err));
            }
        };
        e.waybill = Some(no.to_string());
        self.meter(&who, &wb, Purpose::CustomerService, &e, meta)?;
        Ok((who, e, party_of))
    }

    /// The proving parcel, the person's waybills per side, and the proving parcel's metadata.
    #[allow(clippy::type_complexity)]
    fn check_rights(
        &self,
        who: &wbg_core::Account,
        req: &RightsRequest,
    ) -> Result<
        (
            WaybillNo,
            Vec<(&'static str, Vec<WaybillNo>)>,
            wbg_core::WaybillMeta,
        ),
        GuardError,
    > {
        let no = WaybillNo::parse(&req.waybill_no)?;
        if req.ticket.is_empty() || req.ticket.len() > 64 {
            return Err(GuardError::Invalid(
                "ticket must be a registered ticket id".into(),
            ));
        }
        let works = self.store.ticket(&req.ticket)?.is_some_and(|t| {
            t.closed_at.is_none()
                && t.waybills.contains(&no)
                && t.assignee.as_ref().is_none_or(|a| *a == who.id)
        });
        if !works {
            return Err(GuardError::Forbidden(
                "a rights request needs a registered open ticket for the waybill, not another agent's".into(),
            ));
        }
        let token = self
            .vault
            .blind()
            .phone(&req.phone)
            .ok_or_else(|| GuardError::Invalid("phone is not a phone number".into()))?;
        let mut sides = Vec::new();
        for (party, name) in [(0u8, "recipient"), (1u8, "sender")] {
            let mut nos = self.store.find_by_token_of(&token, party)?;
            nos.sort();
            nos.dedup();
            sides.push((name, nos));
        }
        if !sides.iter().any(|(_, nos)| nos.contains(&no)) {
            // The same answer whether the phone is unknown or belongs to someone else: nothing to confirm.
            return Err(GuardError::Forbidden(
                "the phone is neither the recipient's nor the sender's of that waybill".into(),
            ));
        }
        if sides.iter().map(|(_, n)| n.len()).sum::<usize>() > MAX_WAYBILLS {
            return Err(GuardError::TooLarge(format!(
                "more than {MAX_WAYBILLS} waybills carry this phone; ask the auditors"
            )));
        }
        let (wb, _) = self
            .store
            .waybill(&no)?
            .ok_or_else(|| GuardError::NotFound(format!("waybill {no}")))?;
        Ok((no, sides, wb))
    }

    /// Every time waybill `no`'s personal fields were shown (allowed entries with a masked or full view).
    fn accesses_of(&self, no: &WaybillNo) -> Result<(Vec<AccessRecord>, bool), GuardError> {
        let q = AuditQuery {
            waybill: Some(no.to_string()),
            ..AuditQuery::default()
        };
        let mut out = Vec::new();
        let complete = self.each_indexed(q, MAX_ENTRIES, |e| {
            let shown =
                e.decision == "allow" && matches!(e.view.as_deref(), Some("masked") | Some("full"));
            if shown {
                out.push(AccessRecord {
                    at: e.time,
                    at_local: wbg_core::when::display(e.time),
                    account: e.account,
                    action: e.action,
                    view: e.view.unwrap_or_default(),
                    purpose: e.purpose,
                });
            }
            Ok(())
        })?;
        out.reverse();
        Ok((out, complete))
    }
}
