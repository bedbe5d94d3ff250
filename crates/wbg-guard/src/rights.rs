//! A person's right to know who read their data (PIPL arts. 44–45), answered from the audit log: customer
//! service, working a registered ticket for one of the person's parcels, gives the phone the person proved is
//! theirs, and gets every waybill on which that phone is the recipient's or the sender's, each with the accounts
//! that were shown its personal fields and when — account ids, times, views and purposes, never another person's
//! data (the answer holds no name, phone or address at all). The phone is matched through the blind index, never
//! by opening anyone's record. The request is audited (`rights_access`, without the phone) and metered by the
//! engine like a full read: an agent cannot turn it into a phone-to-parcels lookup at scale.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
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

impl Guard {
    /// Who was shown the personal data of the person whose phone is `req.phone` (customer service, under a
    /// registered open ticket for one of that person's parcels). See the module.
    pub fn rights_access(
        &self,
        actor: Actor<'_>,
        req: &RightsRequest,
        meta: &RequestMeta,
    ) -> Result<RightsAnswer, GuardError> {
        let who = self.actor(actor)?;
        let mut e = self.entry(who.id.as_str(), meta, "rights_access");
        e.purpose = Some(Purpose::CustomerService.as_str().into());
        self.require_active(&who, &e)?;
        if who.role != Role::CustomerService {
            return Err(self.deny(
                e,
                GuardError::Forbidden("rights requests are customer service's".into()),
            ));
        }
        let checked = self.check_rights(&who, req);
        let (no, party_of, wb) = match checked {
            Ok(c) => c,
            Err(err) => {
                e.waybill = WaybillNo::parse(&req.waybill_no)
                    .ok()
                    .map(|n| n.to_string());
                return Err(self.deny(e, err));
            }
        };
        e.waybill = Some(no.to_string());
        // Metered like a full read of the proving parcel: repeated, it is rate-limited and scored.
        self.meter(&who, &wb, Purpose::CustomerService, &e, meta)?;
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
        let mut q = AuditQuery {
            waybill: Some(no.to_string()),
            limit: wbg_store::MAX_PAGE,
            ..AuditQuery::default()
        };
        let mut out = Vec::new();
        let mut read = 0;
        let complete = loop {
            let page = match self.store.search_audit(&q) {
                Ok(p) => p,
                Err(wbg_store::StoreError::Unavailable(m)) => {
                    return Err(GuardError::Unavailable(m))
                }
                Err(err) => return Err(err.into()),
            };
            for (seq, bytes) in &page.entries {
                read += 1;
                let e = AuditEntry::decode(bytes).map_err(|err| {
                    GuardError::Internal(format!("audit entry {seq} does not parse: {err}"))
                })?;
                let shown = e.decision == "allow"
                    && matches!(e.view.as_deref(), Some("masked") | Some("full"));
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
            }
            match page.next {
                Some(c) if read < MAX_ENTRIES => q.before = Some(c),
                Some(_) => break false,
                None => break true,
            }
        };
        out.reverse();
        Ok((out, complete))
    }
}
