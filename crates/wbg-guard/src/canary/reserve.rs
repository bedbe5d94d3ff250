//! The canary number reserve: numbers the carrier's own allocator issued and voided in its system — so no parcel
//! will ever carry them — handed to the guard ahead of time for the canaries it must number itself: the rows an
//! export file gets at download and the quick plant's. A canary numbered from the reserve is as unremarkable as
//! one the integration draws ([`Guard::draw_canaries`]); with the reserve empty those canaries fall back to
//! numbers from the top of the serial range (`YT9…`), which an insider who knows the series can spot, and the
//! counter `wbguard_canary_reserve_empty_total` says so.
//!
//! The reserve is one case file (`canary_reserve`), changed by compare-and-set; each change is audited
//! (`canary_reserve` with the count added and the size, `canary_reserve_take` with the count taken and what for),
//! never with the numbers themselves.
use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use serde::Serialize;
use std::collections::HashSet;
use wbg_core::WaybillNo;
use wbg_policy::AdminAction;

const KIND: &str = "canary_reserve";
const ID: &str = "numbers";
/// Numbers handed over at once at most.
pub const MAX_RESERVE_BATCH: usize = 10_000;
/// Numbers the reserve holds at most.
pub const MAX_RESERVE: usize = 100_000;

/// The reserve's size after a change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CanaryReserve {
    /// Numbers waiting in the reserve.
    pub reserved: usize,
}

impl Guard {
    /// Adds `numbers` (issued by the carrier's allocator, voided there, on no parcel) to the reserve. Auditors and
    /// the local operator; audited. A number in use (a waybill, a canary, already reserved) or repeated is
    /// refused, and nothing is added.
    pub fn reserve_canary_numbers(
        &self,
        actor: Actor<'_>,
        numbers: &[String],
        meta: &RequestMeta,
    ) -> Result<CanaryReserve, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::Investigate, "canary_reserve", meta)?;
        let checked = (|| {
            if numbers.is_empty() || numbers.len() > MAX_RESERVE_BATCH {
                return Err(GuardError::Invalid(format!(
                    "reserve 1 to {MAX_RESERVE_BATCH} numbers at a time"
                )));
            }
            let mut nos = Vec::with_capacity(numbers.len());
            for (i, n) in numbers.iter().enumerate() {
                nos.push(WaybillNo::parse(n).map_err(|_| {
                    GuardError::Invalid(format!(
                        "number {} (counting from 1) is not a waybill number",
                        i + 1
                    ))
                })?);
            }
            let (held, _) = self.reserve()?;
            let held: HashSet<&str> = held.iter().map(String::as_str).collect();
            let mut seen = HashSet::new();
            let existing = self.store.waybill_metas(&nos).wait()?;
            for (i, (no, there)) in nos.iter().zip(existing).enumerate() {
                if !seen.insert(no.as_str())
                    || there.is_some()
                    || held.contains(no.as_str())
                    || self.canary_for(no.as_str()).is_some()
                {
                    return Err(GuardError::Conflict(format!(
                        "number {} (counting from 1) is repeated or already in use",
                        i + 1
                    )));
                }
            }
            if held.len() + nos.len() > MAX_RESERVE {
                return Err(GuardError::TooLarge(format!(
                    "the reserve holds at most {MAX_RESERVE} numbers"
                )));
            }
            Ok(nos)
        })();
        let nos = match checked {
            Ok(n) => n,
            Err(err) => return Err(self.deny(e, err)),
        };
        for _ in 0..5 {
            let (mut held, before) = self.reserve()?;
            held.extend(nos.iter().map(|n| n.to_string()));
            e.detail = Some(format!("added={} reserved={}", nos.len(), held.len()));
            match self.put_reserve(&held, before.as_deref(), e.clone()) {
                Ok(()) => {
                    metrics::gauge!("wbguard_canary_reserve").set(held.len() as f64);
                    return Ok(CanaryReserve {
                        reserved: held.len(),
                    });
                }
                Err(GuardError::Conflict(_)) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(GuardError::Conflict(
            "the reserve kept changing; try again".into(),
        ))
    }

    /// How many numbers the reserve holds (auditors).
    pub fn canary_reserve(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<CanaryReserve, GuardError> {
        self.admin(actor, AdminAction::Investigate, "canary_reserve_read", meta)?;
        Ok(CanaryReserve {
            reserved: self.reserve()?.0.len(),
        })
    }

    /// Takes up to `n` numbers out of the reserve for canaries planted for `what` (audited with the entry of
    /// `who`), skipping any that a parcel has taken since; fewer (or none) when the reserve runs short.
    pub(crate) fn take_reserved(
        &self,
        n: usize,
        who: &str,
        what: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<WaybillNo>, GuardError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        for _ in 0..5 {
            let (mut held, before) = self.reserve()?;
            if held.is_empty() {
                break;
            }
            let mut taken = Vec::new();
            let mut dropped = 0;
            while taken.len() < n {
                let Some(s) = held.pop() else { break };
                let Ok(no) = WaybillNo::parse(&s) else {
                    dropped += 1;
                    continue;
                };
                if self.store.waybill(&no)?.is_some() || self.canary_for(no.as_str()).is_some() {
                    dropped += 1;
                    continue;
                }
                taken.push(no);
            }
            let mut e = self.entry(who, meta, "canary_reserve_take");
            e.detail = Some(format!(
                "for={what} taken={} dropped_in_use={dropped} reserved={}",
                taken.len(),
                held.len()
            ));
            match self.put_reserve(&held, before.as_deref(), e) {
                Ok(()) => {
                    metrics::gauge!("wbguard_canary_reserve").set(held.len() as f64);
                    if taken.len() < n {
                        metrics::counter!("wbguard_canary_reserve_empty_total").increment(1);
                    }
                    return Ok(taken);
                }
                Err(GuardError::Conflict(_)) => continue,
                Err(err) => return Err(err),
            }
        }
        metrics::counter!("wbguard_canary_reserve_empty_total").increment(1);
        Ok(Vec::new())
    }

    /// The reserve's numbers and its body as stored (none yet: empty, `None`).
    fn reserve(&self) -> Result<(Vec<String>, Option<String>), GuardError> {
        match self.store.case(KIND, ID)? {
            None => Ok((Vec::new(), None)),
            Some(body) => {
                let held: Vec<String> = serde_json::from_str(&body).map_err(|err| {
                    GuardError::internal_from("the canary reserve is unreadable", err)
                })?;
                Ok((held, Some(body)))
            }
        }
    }

    fn put_reserve(
        &self,
        held: &[String],
        before: Option<&str>,
        e: wbg_audit::AuditEntry,
    ) -> Result<(), GuardError> {
        let body = serde_json::to_string(held)
            .map_err(|err| GuardError::internal_from("the canary reserve", err))?;
        self.store.put_case(KIND, ID, &body, before, e)?;
        Ok(())
    }
}
