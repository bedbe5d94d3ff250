//! Canary records: synthetic waybills planted into what one principal can see. Nobody's real work leads to one
//! (its number is on no parcel and in no task), so a read of a canary is probing or bulk reading and raises a
//! critical alert at once; a leak holding one names whoever was shown it.
mod draw;
mod reserve;

pub use draw::{CanaryProfile, DrawScope, PROFILE_SAMPLE};
pub use reserve::{CanaryReserve, MAX_RESERVE, MAX_RESERVE_BATCH};

use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use wbg_core::{
    AccountId, EventType, MerchantId, NewWaybill, OutletId, Role, StatusEvent, WaybillNo,
};
use wbg_policy::AdminAction;
use wbg_risk::RiskAlert;

/// Most canaries planted at once.
pub const MAX_CANARIES: usize = 100;

/// Where a canary goes for an account to see it.
enum Scope {
    /// Arriving at this outlet (its couriers and staff).
    Arriving(OutletId),
    /// Leaving from this outlet (its print station's labels).
    Leaving(OutletId),
    /// Ordered from this merchant (its account and print station).
    Merchant(MerchantId),
    /// Anywhere (customer service sees every waybill masked).
    Anywhere,
}

impl Scope {
    /// The carrier's waybills a canary in this scope must look like.
    fn draw(&self) -> DrawScope {
        match self {
            Scope::Arriving(o) => DrawScope {
                destination: Some(o.clone()),
                ..DrawScope::default()
            },
            Scope::Leaving(o) => DrawScope {
                origin: Some(o.clone()),
                ..DrawScope::default()
            },
            Scope::Merchant(m) => DrawScope {
                merchant: Some(m.clone()),
                ..DrawScope::default()
            },
            Scope::Anywhere => DrawScope::default(),
        }
    }
}

impl Guard {
    /// The account canaries are planted for, and where they must go for it to see them.
    fn canary_scope(
        &self,
        account: &str,
    ) -> Result<(AccountId, wbg_core::Account, Scope), GuardError> {
        let id = AccountId::parse(account)?;
        let target = self
            .store
            .account(&id)?
            .ok_or_else(|| GuardError::NotFound(format!("account {account}")))?;
        let scope = match (target.role, &target.outlet, &target.merchant) {
            (Role::Courier | Role::OutletStaff, Some(o), _) => Scope::Arriving(o.clone()),
            (Role::PrintStation, Some(o), _) => Scope::Leaving(o.clone()),
            (Role::PrintStation | Role::Merchant, _, Some(m)) => Scope::Merchant(m.clone()),
            (Role::CustomerService, ..) => Scope::Anywhere,
            _ => {
                return Err(GuardError::Invalid(format!(
                    "account {account} sees no waybills a canary could be planted among"
                )))
            }
        };
        Ok((id, target, scope))
    }

    /// Draws canaries for `account` under the numbers the carrier's own allocator issued (`numbers`), marks them
    /// as canaries planted for it, and returns them for the integration to ingest with its normal feed — so they
    /// enter, are scanned and are delivered to the account's view like any parcel (see [`CanaryProfile`]).
    /// Auditors (and the local operator); audited `canary_plant` (the account and the count, never which
    /// numbers). A number already in use is refused, and nothing is marked.
    pub fn draw_canaries(
        &self,
        actor: Actor<'_>,
        account: &str,
        numbers: &[String],
        meta: &RequestMeta,
    ) -> Result<Vec<NewWaybill>, GuardError> {
        let (_, mut entry) = self.admin(actor, AdminAction::Investigate, "canary_plant", meta)?;
        if numbers.is_empty() || numbers.len() > MAX_CANARIES {
            return Err(GuardError::Invalid(format!(
                "draw 1 to {MAX_CANARIES} canaries at a time"
            )));
        }
        let nos = numbers
            .iter()
            .map(|n| WaybillNo::parse(n).map_err(GuardError::from))
            .collect::<Result<Vec<_>, _>>()?;
        let unique: std::collections::HashSet<&WaybillNo> = nos.iter().collect();
        if unique.len() != nos.len() {
            return Err(GuardError::Invalid("a number appears twice".into()));
        }
        for no in &nos {
            if self.store.waybill(no)?.is_some() || self.canary_for(no.as_str()).is_some() {
                return Err(GuardError::Conflict(
                    "a number is already in use: canaries take numbers the allocator has not issued to a parcel"
                        .into(),
                ));
            }
        }
        let (_, _, scope) = self.canary_scope(account)?;
        let profile = self.canary_profile(actor, meta)?;
        let drawn = profile.draw(&mut rand::thread_rng(), &nos, &scope.draw())?;
        entry.detail = Some(format!(
            "account={account} count={} drawn=integration",
            drawn.len()
        ));
        self.mark_canaries(&nos, account, entry)?;
        Ok(drawn)
    }

    /// `count` canaries for a quick plant in `account`'s view ([`Guard::plant_canaries`]): drawn from the
    /// carrier's own waybills in its scope like [`Guard::draw_canaries`]'s, under numbers from the reserve of
    /// numbers the carrier's allocator issued ([`Guard::reserve_canary_numbers`]) — from the top of the serial
    /// range (`YT9…`) once it runs short; made up whole where the carrier has no waybill in that scope yet.
    /// Auditors (and the local operator); the profile is audited `canary_profile`.
    pub fn quick_canaries(
        &self,
        actor: Actor<'_>,
        account: &str,
        count: usize,
        meta: &RequestMeta,
    ) -> Result<Vec<NewWaybill>, GuardError> {
        let (_, _, scope) = self.canary_scope(account)?;
        let profile = self.canary_profile(actor, meta)?;
        let who = self.actor(actor)?.id;
        let mut nos =
            self.take_reserved(count, who.as_str(), &format!("account:{account}"), meta)?;
        let mut made_up = wbg_sim::one_off_waybills(rand::random(), count);
        nos.extend(
            made_up
                .iter()
                .skip(nos.len())
                .map(|w| w.waybill_no.clone())
                .collect::<Vec<_>>(),
        );
        for (w, no) in made_up.iter_mut().zip(&nos) {
            w.waybill_no = no.clone();
        }
        Ok(profile
            .draw(&mut rand::thread_rng(), &nos, &scope.draw())
            .unwrap_or(made_up))
    }

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
            .map_err(|_| GuardError::internal("canary lock poisoned"))?;
        m.clear();
        m.extend(all);
        Ok(())
    }

    /// Raises the alert a canary read deserves, whatever the read's outcome.
    pub(crate) fn canary_read(
        &self,
        reader: &str,
        no: &WaybillNo,
        purpose: &str,
        outcome: &str,
        seq: Option<u64>,
    ) {
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
        self.raise_on(
            reader,
            RiskAlert {
                kind: "canary_read".into(),
                severity: "critical".into(),
                detail: detail.to_string(),
            },
            seq,
        );
    }

    /// Marks `waybills` as canaries planted for `principal` (with `entry`), then ingests them. Marked before they
    /// exist, so that no canary is ever an unmarked waybill.
    pub(crate) fn plant(
        &self,
        principal: &str,
        waybills: Vec<NewWaybill>,
        entry: wbg_audit::AuditEntry,
        meta: &RequestMeta,
    ) -> Result<Vec<WaybillNo>, GuardError> {
        let nos: Vec<WaybillNo> = waybills.iter().map(|w| w.waybill_no.clone()).collect();
        self.mark_canaries(&nos, principal, entry)?;
        self.ingest(Actor::Local("canary"), waybills, meta)?;
        Ok(nos)
    }

    /// Records `nos` as canaries planted for `principal` (with `entry`), in the store and in this guard's memory.
    fn mark_canaries(
        &self,
        nos: &[WaybillNo],
        principal: &str,
        entry: wbg_audit::AuditEntry,
    ) -> Result<(), GuardError> {
        self.store.plant_canaries(nos, principal, entry)?;
        let mut m = self
            .canaries
            .write()
            .map_err(|_| GuardError::internal("canary lock poisoned"))?;
        for no in nos {
            m.insert(no.to_string(), principal.to_owned());
        }
        Ok(())
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
        let (id, target, scope) = self.canary_scope(account)?;
        for w in &mut waybills {
            match &scope {
                Scope::Arriving(o) => w.destination_outlet = o.clone(),
                Scope::Leaving(o) => w.origin_outlet = o.clone(),
                Scope::Merchant(m) => w.merchant = m.clone(),
                Scope::Anywhere => {}
            }
        }
        entry.detail = Some(format!("account={account} count={}", waybills.len()));
        // Parcels arriving at an outlet are scanned there; a courier's are also handed to it for delivery.
        let routes: Vec<(WaybillNo, OutletId, OutletId)> = waybills
            .iter()
            .map(|w| {
                let (from, to) = (w.origin_outlet.clone(), w.destination_outlet.clone());
                (w.waybill_no.clone(), from, to)
            })
            .collect();
        let nos = self.plant(account, waybills, entry, meta)?;
        let local = Actor::Local("canary");
        for (no, from, to) in routes {
            let mut scans = Vec::new();
            if matches!(scope, Scope::Arriving(_)) {
                scans.push((EventType::PickedUp, from.clone(), None));
                scans.push((EventType::InTransit, from, None));
                scans.push((EventType::AtOutlet, to.clone(), None));
            }
            if target.role == Role::Courier {
                scans.push((EventType::OutForDelivery, to, Some(id.clone())));
            }
            for (kind, outlet, courier) in scans {
                let ev = StatusEvent {
                    kind,
                    outlet,
                    courier,
                    at: None,
                };
                self.record_event(local, no.as_str(), ev, meta)?;
            }
        }
        Ok(nos.iter().map(|n| n.to_string()).collect())
    }
}
