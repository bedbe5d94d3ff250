//! Legal holds (PIPL art. 47): personal data a court, the police or the carrier's counsel needs kept is kept —
//! past retention and past a deletion request — and, while it is kept, nobody processes it but the hold itself.
//!
//! An auditor places a hold on a list of waybills, on every waybill an account was shown personal data of in a
//! window (a suspect's reads, as the audit log has them), or on every waybill a breach incident found exposed. The
//! hold names a **matter** (the case reference it is for) and a **custodian**: the customer-service account that
//! produces the held records for the matter. While a hold stands:
//!
//! - **retention** carries a held waybill out of a day that falls due (re-encrypted under today's keys, like a
//!   straggler) instead of shredding it with the day; a deletion request waits for the hold to be released;
//! - **every read is refused** (`legal_hold`, HTTP 451), whatever the purpose and the account — labels, exports
//!   and the public tracking page's masked reveal too — except two: the custodian reading for the purpose
//!   `legal_hold`, which the policy (`cs-full-legal-hold`, context `in_hold`) decides, the engine scores and the
//!   log records like any read; and the work a parcel still under way needs to arrive (delivery, exception
//!   handling, its label), since a hold preserves evidence and must not strand an innocent recipient's parcel.
//!   Once it is signed for or returned, that work ends too.
//! - Breach notification is not refused: telling the people an incident exposed is a duty of its own (PIPL art.
//!   57), and its reads are sanctioned and recorded under the incident.
//!
//! Placing and releasing are audited (`hold_place`, `hold_release`, with the matter and the number of waybills,
//! never a waybill's content). A hold's waybills are fixed when it is placed. Every node takes in holds placed on
//! another within its upkeep's next refresh (a few seconds); retention runs and deletions read them afresh.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use wbg_core::{AccountId, AccountStatus, Millis, Purpose, Role, WaybillNo};
use wbg_policy::AdminAction;
use wbg_store::AuditQuery;

/// Case-file kind of legal holds.
pub(crate) const KIND: &str = "legal_hold";
/// Waybills one hold covers at most.
pub const MAX_HOLD_WAYBILLS: usize = 100_000;
/// Holds listed at most.
const MAX_HOLDS: usize = 10_000;

/// What a hold covers: exactly one of `waybills`, `account` (with its window) or `incident`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// The matter the data is kept for (a case or court reference): 1-60 letters, digits, `-`, `_`, `/` or `.`,
    /// starting with a letter or digit, holding no phone number.
    pub matter: String,
    /// The customer-service account that produces the held records for the matter (reads them with the purpose
    /// `legal_hold`).
    pub custodian: String,
    /// These waybills.
    #[serde(default)]
    pub waybills: Option<Vec<String>>,
    /// Every waybill this account was shown personal data of (full or masked) between `from` and `to`.
    #[serde(default)]
    pub account: Option<String>,
    /// Window start for `account`: ms since the epoch, or ISO 8601 (without an offset, the display zone's
    /// time), `now-30d`…; default: the account's first entry.
    #[serde(default, deserialize_with = "wbg_core::when::deserialize_opt")]
    #[schema(value_type = Option<String>)]
    pub from: Option<Millis>,
    /// Window end for `account` (exclusive), as `from`; default: now.
    #[serde(default, deserialize_with = "wbg_core::when::deserialize_opt")]
    #[schema(value_type = Option<String>)]
    pub to: Option<Millis>,
    /// Every waybill this breach incident (`INC-…`) found exposed.
    #[serde(default)]
    pub incident: Option<String>,
}

/// A release, with the reason (1-200 printable characters, no phone number).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRelease {
    /// Why the data need no longer be kept (recorded in the hold, not in the audit log).
    pub reason: String,
}

/// A legal hold, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LegalHold {
    /// `LH-` and 12 hex digits.
    pub id: String,
    /// The matter it is for.
    pub matter: String,
    /// The account that may read the held records (purpose `legal_hold`).
    pub custodian: String,
    /// What it was placed on: `waybills`, `account:<id>` or `incident:<id>`.
    pub scope: String,
    /// `active` or `released`.
    pub state: String,
    /// Who placed it, and when (ms).
    pub placed_by: String,
    /// When it was placed (ms).
    pub placed_at: Millis,
    /// Who released it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When it was released (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Millis>,
    /// Why it was released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_reason: Option<String>,
    /// The waybills it keeps.
    pub waybills: Vec<String>,
}

/// A hold in brief, for the list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HoldSummary {
    /// Its id.
    pub id: String,
    /// The matter.
    pub matter: String,
    /// The custodian.
    pub custodian: String,
    /// What it was placed on.
    pub scope: String,
    /// `active` or `released`.
    pub state: String,
    /// When it was placed (ms).
    pub placed_at: Millis,
    /// When it was released (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Millis>,
    /// Waybills it keeps.
    pub waybills: usize,
}

/// The active holds as the read path consults them: for each held waybill, the holds on it (by index).
#[derive(Debug, Default)]
pub(crate) struct Holds {
    /// Active holds: id and custodian.
    holds: Vec<(String, String)>,
    by_waybill: HashMap<String, Vec<u32>>,
}

/// What the holds say of one waybill.
pub(crate) struct Held<'a> {
    /// Ids of the holds on it.
    pub(crate) ids: Vec<&'a str>,
    /// Whether the reader is the custodian of one of them.
    pub(crate) custodian: bool,
}

impl Holds {
    fn of(files: &[LegalHold]) -> Holds {
        let mut out = Holds::default();
        for h in files.iter().filter(|h| h.state == "active") {
            let i = out.holds.len() as u32;
            out.holds.push((h.id.clone(), h.custodian.clone()));
            for w in &h.waybills {
                out.by_waybill.entry(w.clone()).or_default().push(i);
            }
        }
        out
    }

    /// Whether any hold stands on `no`, and whether `reader` is a custodian of one.
    pub(crate) fn on<'a>(&'a self, no: &str, reader: &str) -> Option<Held<'a>> {
        let idx = self.by_waybill.get(no)?;
        let mut held = Held {
            ids: Vec::with_capacity(idx.len()),
            custodian: false,
        };
        for &i in idx {
            let (id, custodian) = &self.holds[i as usize];
            held.ids.push(id);
            held.custodian |= custodian == reader;
        }
        Some(held)
    }

    /// Whether any hold stands on `no`.
    pub(crate) fn holds(&self, no: &str) -> bool {
        self.by_waybill.contains_key(no)
    }

    /// Every held waybill's number.
    pub(crate) fn waybills(&self) -> impl Iterator<Item = &str> {
        self.by_waybill.keys().map(String::as_str)
    }
}

/// Whether `purpose` is work a parcel still under way needs to arrive, which a hold does not stop.
pub(crate) fn work_to_arrive(purpose: Purpose) -> bool {
    matches!(
        purpose,
        Purpose::Delivery | Purpose::ExceptionHandling | Purpose::Label
    )
}

fn valid_hold_id(id: &str) -> bool {
    id.strip_prefix("LH-")
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn valid_matter(m: &str) -> bool {
    let b = m.as_bytes();
    !b.is_empty()
        && b.len() <= 60
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_/.".contains(c))
        && !wbg_core::may_hold_phone(m)
}

fn checked_reason(r: &str) -> Result<(), GuardError> {
    let n = r.chars().count();
    if n == 0 || n > 200 || r.chars().any(char::is_control) || wbg_core::may_hold_phone(r) {
        return Err(GuardError::Invalid(
            "reason must be 1-200 printable characters and hold no phone number".into(),
        ));
    }
    Ok(())
}

impl Guard {
    /// Places a legal hold (auditors: accounts that may investigate). See the module.
    pub fn place_hold(
        &self,
        actor: Actor<'_>,
        req: &HoldRequest,
        meta: &RequestMeta,
    ) -> Result<LegalHold, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "hold_place", meta)?;
        let (scope, waybills) = match self.hold_scope(req) {
            Ok(s) => s,
            Err(err) => return Err(self.deny(e, err)),
        };
        let hold = LegalHold {
            id: format!("LH-{:012x}", rand::thread_rng().gen::<u64>() >> 16),
            matter: req.matter.clone(),
            custodian: req.custodian.clone(),
            scope,
            state: "active".into(),
            placed_by: who.id.to_string(),
            placed_at: e.time,
            released_by: None,
            released_at: None,
            release_reason: None,
            waybills,
        };
        e.detail = Some(format!(
            "hold={} matter={} scope={} custodian={} waybills={}",
            hold.id,
            hold.matter,
            hold.scope,
            hold.custodian,
            hold.waybills.len()
        ));
        let body = serde_json::to_string(&hold)
            .map_err(|err| GuardError::internal_from("hold unwritable", err))?;
        self.store.put_case(KIND, &hold.id, &body, None, e)?;
        metrics::counter!("wbguard_legal_holds_total", "change" => "place").increment(1);
        self.reload_holds()?;
        Ok(hold)
    }

    /// Checks a hold request and resolves the waybills it covers.
    fn hold_scope(&self, req: &HoldRequest) -> Result<(String, Vec<String>), GuardError> {
        if !valid_matter(&req.matter) {
            return Err(GuardError::Invalid(
                "matter must be 1-60 letters, digits, '-', '_', '/' or '.', starting with a letter or digit, and hold no phone number"
                    .into(),
            ));
        }
        let custodian = AccountId::parse(&req.custodian)
            .ok()
            .map(|id| self.store.account(&id))
            .transpose()?
            .flatten();
        match custodian {
            Some(a) if a.role == Role::CustomerService && a.status == AccountStatus::Active => {}
            _ => {
                return Err(GuardError::Invalid(
                    "custodian must be an active customer-service account of this store".into(),
                ))
            }
        }
        let scopes = [
            req.waybills.is_some(),
            req.account.is_some(),
            req.incident.is_some(),
        ];
        if scopes.iter().filter(|s| **s).count() != 1 {
            return Err(GuardError::Invalid(
                "name exactly one of waybills, account or incident".into(),
            ));
        }
        if req.account.is_none() && (req.from.is_some() || req.to.is_some()) {
            return Err(GuardError::Invalid(
                "from and to bound an account's window only".into(),
            ));
        }
        let mut set: Vec<String> = if let Some(list) = &req.waybills {
            if list.is_empty() || list.len() > MAX_HOLD_WAYBILLS {
                return Err(GuardError::Invalid(format!(
                    "name 1 to {MAX_HOLD_WAYBILLS} waybills"
                )));
            }
            let mut nos = Vec::with_capacity(list.len());
            for (i, n) in list.iter().enumerate() {
                // Refused without being echoed: a phone number pasted into the list must not reach the log.
                let no = WaybillNo::parse(n).map_err(|_| {
                    GuardError::Invalid(format!(
                        "waybill {} (counting from 1) is not a waybill number",
                        i + 1
                    ))
                })?;
                nos.push(no);
            }
            let metas = self.store.waybill_metas(&nos).wait()?;
            if let Some(i) = metas.iter().position(Option::is_none) {
                return Err(GuardError::NotFound(format!(
                    "waybill {} (counting from 1) is not in this store",
                    i + 1
                )));
            }
            nos.into_iter().map(|n| n.to_string()).collect()
        } else if let Some(a) = &req.account {
            self.reads_of(a, req.from, req.to)?
        } else if let Some(inc) = &req.incident {
            if !crate::breach::valid_incident_id(inc) {
                return Err(GuardError::Invalid(
                    "an incident id is INC- and 12 hex digits".into(),
                ));
            }
            let (report, _): (crate::ImpactReport, String) =
                self.case_file(crate::breach::KIND, inc)?;
            report.affected.into_iter().map(|a| a.waybill_no).collect()
        } else {
            Vec::new()
        };
        set.sort();
        set.dedup();
        if set.len() > MAX_HOLD_WAYBILLS {
            return Err(GuardError::TooLarge(format!(
                "the hold would cover {} waybills, more than {MAX_HOLD_WAYBILLS}: narrow it",
                set.len()
            )));
        }
        let scope = match (&req.account, &req.incident) {
            (Some(a), _) => format!("account:{a}"),
            (_, Some(i)) => format!("incident:{i}"),
            _ => "waybills".into(),
        };
        Ok((scope, set))
    }

    /// The waybills `account` was shown personal data of in `[from, to)`, from the audit log's index.
    fn reads_of(
        &self,
        account: &str,
        from: Option<Millis>,
        to: Option<Millis>,
    ) -> Result<Vec<String>, GuardError> {
        let known = AccountId::parse(account)
            .ok()
            .map(|id| self.store.account(&id))
            .transpose()?
            .flatten();
        if known.is_none() {
            return Err(GuardError::Invalid(
                "account names no account of this store".into(),
            ));
        }
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(GuardError::Invalid(
                    "the window must end after it starts".into(),
                ));
            }
        }
        let q = AuditQuery {
            account: Some(account.to_owned()),
            decision: Some("allow".into()),
            from,
            to,
            ..AuditQuery::default()
        };
        let mut out = HashSet::new();
        self.each_indexed(q, usize::MAX, |e| {
            if wbg_forensics::Access::from_entry(&e).is_some() {
                if let Some(w) = e.waybill {
                    out.insert(w);
                    if out.len() > MAX_HOLD_WAYBILLS {
                        return Err(GuardError::TooLarge(format!(
                            "the account read more than {MAX_HOLD_WAYBILLS} waybills in the window: narrow it"
                        )));
                    }
                }
            }
            Ok(())
        })?;
        Ok(out.into_iter().collect())
    }

    /// Releases a hold (auditors), with a reason kept in the hold; audited (`hold_release`). Its waybills go
    /// back to retention in the bucket they are in now (a carried one, with the day it was last carried to).
    pub fn release_hold(
        &self,
        actor: Actor<'_>,
        id: &str,
        release: &HoldRelease,
        meta: &RequestMeta,
    ) -> Result<LegalHold, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "hold_release", meta)?;
        let checked = checked_reason(&release.reason)
            .and_then(|()| self.hold_file(id))
            .and_then(|(h, body)| {
                if h.state != "active" {
                    return Err(GuardError::Conflict(format!(
                        "hold {id} is released already"
                    )));
                }
                Ok((h, body))
            });
        e.detail = Some(format!("hold={}", if valid_hold_id(id) { id } else { "?" }));
        let (mut hold, before) = match checked {
            Ok(h) => h,
            Err(err) => return Err(self.deny(e, err)),
        };
        hold.state = "released".into();
        hold.released_by = Some(who.id.to_string());
        hold.released_at = Some(e.time);
        hold.release_reason = Some(release.reason.clone());
        e.detail = Some(format!(
            "hold={id} matter={} waybills={}",
            hold.matter,
            hold.waybills.len()
        ));
        let body = serde_json::to_string(&hold)
            .map_err(|err| GuardError::internal_from("hold unwritable", err))?;
        self.store.put_case(KIND, id, &body, Some(&before), e)?;
        metrics::counter!("wbguard_legal_holds_total", "change" => "release").increment(1);
        self.reload_holds()?;
        Ok(hold)
    }

    /// One hold, whole (auditors; audited `hold_read`).
    pub fn hold(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<LegalHold, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::Investigate, "hold_read", meta)?;
        e.detail = Some(format!("hold={}", if valid_hold_id(id) { id } else { "?" }));
        match self.hold_file(id) {
            Ok((h, _)) => {
                self.store.append_audit(e)?;
                Ok(h)
            }
            Err(err) => Err(self.deny(e, err)),
        }
    }

    /// Every hold in brief, newest first (auditors).
    pub fn holds(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<HoldSummary>, GuardError> {
        self.admin(actor, AdminAction::Investigate, "hold_list", meta)?;
        let mut out: Vec<HoldSummary> = self
            .hold_files()?
            .into_iter()
            .map(|h| HoldSummary {
                id: h.id,
                matter: h.matter,
                custodian: h.custodian,
                scope: h.scope,
                state: h.state,
                placed_at: h.placed_at,
                released_at: h.released_at,
                waybills: h.waybills.len(),
            })
            .collect();
        out.sort_by(|a, b| (b.placed_at, &b.id).cmp(&(a.placed_at, &a.id)));
        Ok(out)
    }

    fn hold_file(&self, id: &str) -> Result<(LegalHold, String), GuardError> {
        if !valid_hold_id(id) {
            return Err(GuardError::Invalid(
                "a hold id is LH- and 12 hex digits".into(),
            ));
        }
        self.case_file(KIND, id)
    }

    fn hold_files(&self) -> Result<Vec<LegalHold>, GuardError> {
        self.store
            .cases(KIND, MAX_HOLDS)?
            .into_iter()
            .map(|(id, body)| {
                serde_json::from_str(&body)
                    .map_err(|err| GuardError::internal_from(format!("hold {id} unreadable"), err))
            })
            .collect()
    }

    /// Takes in the holds as the store has them now (placed or released by another node too): the server's
    /// upkeep calls it, and retention and deletions before they decide anything.
    pub fn reload_holds(&self) -> Result<(), GuardError> {
        let files = self.hold_files()?;
        let active = files.iter().filter(|h| h.state == "active").count();
        self.holds.store(Arc::new(Holds::of(&files)));
        metrics::gauge!("wbguard_legal_holds_active").set(active as f64);
        Ok(())
    }

    /// The active holds, as last loaded.
    pub(crate) fn active_holds(&self) -> Arc<Holds> {
        self.holds.load_full()
    }

    /// The error a read of held waybill `no` gets.
    pub(crate) fn held_error(no: &WaybillNo, held: &Held<'_>) -> GuardError {
        GuardError::Held(format!(
            "waybill {no} is under legal hold ({}): only the hold's custodian reads it, for the purpose legal_hold",
            held.ids.join(", ")
        ))
    }
}
