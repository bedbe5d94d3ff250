//! Canary records: synthetic waybills planted into what one principal can see. Nobody's real work leads to one
//! (its number is on no parcel and in no task), so a read of a canary is probing or bulk reading and raises a
//! critical alert at once; a leak holding one names whoever was shown it.
use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use wbg_core::{
    AccountId, EventType, MerchantId, NewWaybill, OutletId, Role, StatusEvent, WaybillNo,
};
use wbg_policy::AdminAction;
use wbg_risk::RiskAlert;

/// Most canaries planted at once.
pub const MAX_CANARIES: usize = 100;

impl Guard {
    /// The principal a canary waybill was planted for, if `no` is one.
    pub fn canary_for(&self, no: &str) -> Option<String> {
        self.canaries.read().ok().and_then(|m| m.get(no).cloned())
    }

    /// Every canary waybill number known to this guard.
    pub(crate) fn canary_numbers(&self) -> std::collections::HashSet<String> {
        self.canaries
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Reloads the canaries from the store (another node may have planted some).
    pub fn reload_canaries(&self) -> Result<(), GuardError> {
        let all = self.store.canaries()?;
        let mut m = self
            .canaries
            .write()
            .map_err(|_| GuardError::Internal("canary lock poisoned".into()))?;
        m.clear();
        m.extend(all);
        Ok(())
    }

    /// Raises the alert a canary read deserves, whatever the read's outcome.
    pub(crate) fn canary_read(&self, reader: &str, no: &WaybillNo, purpose: &str, outcome: &str) {
        let Some(planted_for) = self.canary_for(no.as_str()) else {
            return;
        };
        let detail = serde_json::json!({
            "canary": no.as_str(),
            "planted_for": planted_for,
            "purpose": purpose,
            "outcome": outcome,
            "why": "canary waybills are on no parcel and in no task: reading one is probing or bulk reading",
        });
        self.raise(
            reader,
            RiskAlert {
                kind: "canary_read".into(),
                severity: "critical".into(),
                detail: detail.to_string(),
            },
        );
    }

    /// Plants `waybills` (synthetic, realistic recipients the caller made up) as canaries in the scope of
    /// `account`: routed to its outlet (and, for a courier, out for delivery with it) or its merchant, so the
    /// policy lets it see them and only them. Auditors (and the local operator) only. Returns the numbers.
    pub fn plant_canaries(
        &self,
        actor: Actor<'_>,
        account: &str,
        mut waybills: Vec<NewWaybill>,
        meta: &RequestMeta,
    ) -> Result<Vec<String>, GuardError> {
        let (_, mut entry) = self.admin(actor, AdminAction::Investigate, "canary_plant", meta)?;
        if waybills.is_empty() || waybills.len() > MAX_CANARIES {
            return Err(GuardError::Invalid(format!(
                "plant 1 to {MAX_CANARIES} canaries at a time"
            )));
        }
        let id = AccountId::parse(account)?;
        let target = self
            .store
            .account(&id)?
            .ok_or_else(|| GuardError::NotFound(format!("account {account}")))?;
        let outlet: Option<OutletId> = target.outlet.clone();
        let merchant: Option<MerchantId> = target.merchant.clone();
        match (target.role, &outlet, &merchant) {
            (Role::Courier | Role::OutletStaff, Some(_), _)
            | (Role::PrintStation, Some(_), _)
            | (Role::PrintStation | Role::Merchant, _, Some(_))
            | (Role::CustomerService, _, _) => {}
            _ => {
                return Err(GuardError::Invalid(format!(
                    "account {account} sees no waybills a canary could be planted among"
                )))
            }
        }
        for w in &mut waybills {
            match target.role {
                Role::Courier | Role::OutletStaff => {
                    if let Some(o) = &outlet {
                        w.destination_outlet = o.clone();
                    }
                }
                Role::PrintStation if outlet.is_some() => {
                    if let Some(o) = &outlet {
                        w.origin_outlet = o.clone();
                    }
                }
                Role::PrintStation | Role::Merchant => {
                    if let Some(m) = &merchant {
                        w.merchant = m.clone();
                    }
                }
                _ => {}
            }
        }
        let nos: Vec<WaybillNo> = waybills.iter().map(|w| w.waybill_no.clone()).collect();
        entry.detail = Some(format!("account={account} count={}", nos.len()));
        // Marked before they exist, so that no canary is ever an unmarked waybill.
        self.store.plant_canaries(&nos, account, entry)?;
        {
            let mut m = self
                .canaries
                .write()
                .map_err(|_| GuardError::Internal("canary lock poisoned".into()))?;
            for no in &nos {
                m.insert(no.to_string(), account.to_owned());
            }
        }
        let local = Actor::Local("canary");
        self.ingest(local, waybills.clone(), meta)?;
        for w in &waybills {
            let mut scans = Vec::new();
            if matches!(target.role, Role::Courier | Role::OutletStaff) {
                scans.push((EventType::PickedUp, w.origin_outlet.clone(), None));
                scans.push((EventType::InTransit, w.origin_outlet.clone(), None));
                scans.push((EventType::AtOutlet, w.destination_outlet.clone(), None));
            }
            if target.role == Role::Courier {
                scans.push((
                    EventType::OutForDelivery,
                    w.destination_outlet.clone(),
                    Some(id.clone()),
                ));
            }
            for (kind, outlet, courier) in scans {
                let ev = StatusEvent {
                    kind,
                    outlet,
                    courier,
                    at: None,
                };
                self.record_event(local, w.waybill_no.as_str(), ev, meta)?;
            }
        }
        Ok(nos.iter().map(|n| n.to_string()).collect())
    }
}
