//! Privacy numbers [T3]: the courier reaches the recipient without ever holding their number. When a parcel goes
//! out for delivery, a virtual number from a configured pool is bound to its recipient for its courier; the
//! courier's view shows that number instead of the real one, and the telephony gateway asks the guard at each
//! call (`route_call`) which real number to connect — only for the bound courier, and only inside the delivery
//! window read from the waybill's own events. The binding ends with the window (signing plus grace, or the
//! parcel leaving delivery); the number then rests in quarantine before it is bound again. An exhausted pool
//! queues waybills until a number is free and raises an alert; a waybill is never given its real number instead.
use crate::{Actor, Guard, GuardError, RequestMeta};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use wbg_core::{AccountId, AccountStatus, Millis, Role, WaybillMeta, WaybillNo, WaybillStatus};
use wbg_policy::AdminAction;
use wbg_risk::RiskAlert;
use wbg_store::{BindOutcome, NumberBinding, NumberRelease, PoolSync, Ticket, TicketSender};
use wbg_vault::Field;

/// The largest pool accepted (a range typo must not make a billion rows).
pub const MAX_POOL: usize = 1_000_000;
/// The account name privacy-number bookkeeping is audited under.
const ACTOR: &str = "privacy-numbers";
/// At most one exhaustion alert in this long.
const EXHAUSTION_ALERT_EVERY_MS: Millis = 10 * 60_000;

/// `[privacy_numbers]`: the pool of virtual numbers and how long a binding lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyNumbers {
    /// Bind numbers at all. Off by default: a pool comes with a telephony contract.
    pub enabled: bool,
    /// The pool: single numbers (`17100000001`) and inclusive ranges of equal length
    /// (`17100000000..17100000999`).
    pub numbers: Vec<String>,
    /// How long after signing a courier can still call (the built-in policy's window is 120 minutes too).
    pub grace_minutes: u32,
    /// How long a released number rests before it is bound to another waybill.
    pub quarantine_hours: u32,
    /// Numbers the carrier owns outside the pool, shown to a courier as a canary's virtual number: a canary
    /// never takes a pool number nor sends the telephony provider an event, yet looks like every parcel out for
    /// delivery (without decoys it shows the masked phone, as a parcel waiting for a number does). A call to a
    /// decoy is itself a sign; the carrier's telephony can raise it.
    pub decoys: Vec<String>,
}

impl Default for PrivacyNumbers {
    fn default() -> Self {
        PrivacyNumbers {
            enabled: false,
            numbers: Vec::new(),
            grace_minutes: 120,
            quarantine_hours: 24,
            decoys: Vec::new(),
        }
    }
}

impl PrivacyNumbers {
    /// The pool, normalised, in configured order, without repeats. Errors name the entry's position, never a
    /// number (a real phone number pasted here must not reach a log).
    pub fn pool(&self) -> Result<Vec<String>, GuardError> {
        numbers_of(&self.numbers, "numbers")
    }

    /// The decoys, normalised; an error if one is also in the pool.
    pub fn decoy_numbers(&self) -> Result<Vec<String>, GuardError> {
        let decoys = numbers_of(&self.decoys, "decoys")?;
        let pool: std::collections::HashSet<String> = self.pool()?.into_iter().collect();
        if let Some(i) = decoys.iter().position(|d| pool.contains(d)) {
            return Err(GuardError::Config(format!(
                "privacy_numbers.decoys: decoy {} is also in the pool",
                i + 1
            )));
        }
        Ok(decoys)
    }

    fn release(&self) -> NumberRelease {
        NumberRelease {
            grace_ms: Millis::from(self.grace_minutes) * 60_000,
            quarantine_ms: Millis::from(self.quarantine_hours) * 3_600_000,
        }
    }
}

/// Numbers and inclusive ranges of `entries` (`[privacy_numbers] key`), normalised, in order, without repeats.
fn numbers_of(entries: &[String], key: &str) -> Result<Vec<String>, GuardError> {
    let bad = |i: usize, why: &str| GuardError::Config(format!("privacy_numbers.{key}[{i}] {why}"));
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let (first, last) = match entry.split_once("..") {
            Some((a, b)) => (a, b),
            None => (entry.as_str(), entry.as_str()),
        };
        let norm =
            |s: &str| wbg_core::normalize_phone(s).map_err(|_| bad(i, "is not a phone number"));
        let (a, b) = (norm(first)?, norm(last)?);
        if a.len() != b.len() {
            return Err(bad(i, "is a range whose ends differ in length"));
        }
        let (lo, hi): (u64, u64) = match (a.parse(), b.parse()) {
            (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi),
            _ => return Err(bad(i, "is a range that runs backwards")),
        };
        if hi - lo >= MAX_POOL as u64 || out.len() + (hi - lo) as usize >= MAX_POOL {
            return Err(bad(i, &format!("takes the pool past {MAX_POOL} numbers")));
        }
        for n in lo..=hi {
            let n = format!("{n:0width$}", width = a.len());
            if seen.insert(n.clone()) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// A change of a binding, as the telephony provider is told of it. Identifiers and times only: the real number
/// is given out call by call through [`Guard::route_call`], never pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingChange {
    /// `bound`, `rebound` (same number, another courier) or `ends` (the window closes at `valid_until`).
    pub event: &'static str,
    /// The virtual number.
    pub number: String,
    /// The courier who may call through it.
    pub courier: String,
    /// The waybill it serves.
    pub waybill_no: String,
    /// When the change happened.
    pub at: Millis,
    /// The last moment the binding routes, once that is known (after signing: signing plus grace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Millis>,
}

/// The telephony provider's side of the pool: told of each binding change (to set up or tear down its own
/// routing). Must return at once; it is called on the request path after the change committed.
pub trait NumberGateway: Send + Sync {
    /// One committed change.
    fn binding_changed(&self, change: &BindingChange);
}

/// Where a call to a privacy number goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CallRoute {
    /// The real number to connect the call to.
    pub route_to: String,
    /// The last moment the binding routes, if that is known yet (after signing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Millis>,
    /// The audit entry that records this routing.
    pub audit_seq: u64,
}

/// The guard's privacy-number settings once enabled.
pub(crate) struct NumberState {
    release: NumberRelease,
    /// Shown as canaries' virtual numbers (see [`PrivacyNumbers::decoys`]).
    decoys: Vec<String>,
    gateway: Option<Arc<dyn NumberGateway>>,
    last_exhausted_alert: AtomicI64,
    /// Single scans' bindings waiting to be made together (see [`Guard::bind_numbers_together`]).
    together: std::sync::Mutex<Together>,
}

/// Waybills to bind, each with its courier.
type Wanted = Vec<(WaybillNo, AccountId)>;

/// Bindings asked for by single scans running at once, and whether one of them is binding.
#[derive(Default)]
struct Together {
    asked: Vec<(Wanted, TicketSender<()>)>,
    binding: bool,
}

/// The binding asker's duty ([`Guard::bind_numbers_together`]). Dropped before its queue is empty — the asker
/// panicked, or its future was dropped mid-binding (its caller cancelled it) — it lets the waiting askers go:
/// their tickets' senders are dropped with the queue, their waybills stay queued for upkeep (which binds them
/// within a second and tells the gateway), and the next asker binds. A binding already handed to the store is
/// made all the same; the gateway is then not told of it (`bound`), only later of its end (`ends`), and routes
/// its calls by asking ([`Guard::route_call`]) as always.
struct Leading<'a> {
    together: &'a std::sync::Mutex<Together>,
    done: bool,
}

impl Leading<'_> {
    /// The bindings asked for since the last call, or `None` (and the duty ends) when none is.
    fn next(&mut self) -> Option<Vec<(Wanted, TicketSender<()>)>> {
        let mut t = self.together.lock().unwrap_or_else(|p| p.into_inner());
        if t.asked.is_empty() {
            t.binding = false;
            self.done = true;
            return None;
        }
        Some(std::mem::take(&mut t.asked))
    }
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut t = self.together.lock().unwrap_or_else(|p| p.into_inner());
            t.asked.clear();
            t.binding = false;
        }
    }
}

impl NumberState {
    /// The last moment `b` routes as its waybill `wb` stands, if that is known: `None` while it is out for
    /// delivery with the binding's courier, else the end of the window (which may lie in the past).
    fn ends(&self, b: &NumberBinding, wb: &WaybillMeta) -> Option<Millis> {
        let with_courier = wb.courier.as_ref() == Some(&b.courier);
        match wb.status {
            WaybillStatus::OutForDelivery if with_courier => None,
            WaybillStatus::Signed if with_courier => {
                Some(wb.signed_at.unwrap_or(wb.updated_at) + self.release.grace_ms)
            }
            // Out of delivery (or with another courier, whose rebinding is queued): ended as it last moved.
            _ => Some(wb.updated_at.max(b.bound_at) - 1),
        }
    }
}

/// How a courier's full view shows the recipient's phone when privacy numbers are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShownPhone {
    /// As the view decides (privacy numbers off, or not a courier's full view).
    AsView,
    /// The virtual number bound to this courier: the real one is not even decrypted.
    Virtual(String),
    /// No number bound to this courier yet (pool exhausted): masked, never the real one.
    Masked,
}

impl ShownPhone {
    /// How the recipient's phone is recorded in the read's audit entry, when not as the view says.
    pub(crate) fn audit_name(&self) -> Option<&'static str> {
        match self {
            ShownPhone::AsView => None,
            ShownPhone::Virtual(_) => Some("recipient.phone:virtual"),
            ShownPhone::Masked => Some("recipient.phone:masked"),
        }
    }
}

impl Guard {
    /// Turns privacy numbers on with `cfg` (nothing happens when it is disabled): the store's pool is made the
    /// configured one (audited when it changed), and from now on waybills going out for delivery are bound.
    pub fn with_privacy_numbers(
        mut self,
        cfg: &PrivacyNumbers,
    ) -> Result<(Guard, PoolSync), GuardError> {
        if !cfg.enabled {
            return Ok((self, PoolSync::default()));
        }
        let pool = cfg.pool()?;
        if pool.is_empty() {
            return Err(GuardError::Config(
                "privacy_numbers is enabled but its pool is empty".into(),
            ));
        }
        let synced = self.store.sync_number_pool(&pool)?;
        if synced.added > 0 || synced.retired > 0 {
            let mut e = self.entry(ACTOR, &RequestMeta::default(), "number_pool");
            e.detail = Some(format!(
                "added={} retired={} in_service={}",
                synced.added, synced.retired, synced.in_service
            ));
            self.store.append_audit(e)?;
        }
        self.numbers = Some(NumberState {
            release: cfg.release(),
            decoys: cfg.decoy_numbers()?,
            gateway: None,
            last_exhausted_alert: AtomicI64::new(Millis::MIN),
            together: Default::default(),
        });
        Ok((self, synced))
    }

    /// Tells `gateway` of every binding change from now on (privacy numbers must be on).
    pub fn with_number_gateway(mut self, gateway: Arc<dyn NumberGateway>) -> Guard {
        if let Some(n) = &mut self.numbers {
            n.gateway = Some(gateway);
        }
        self
    }

    /// Whether privacy numbers are on.
    pub fn privacy_numbers_enabled(&self) -> bool {
        self.numbers.is_some()
    }

    /// The pool's state now (numbers in service, free, waybills waiting), when privacy numbers are on.
    pub fn privacy_number_pool(&self) -> Result<Option<wbg_store::PoolState>, GuardError> {
        let Some(n) = &self.numbers else {
            return Ok(None);
        };
        Ok(Some(
            self.store.number_pool_state(self.clock.now(), n.release)?,
        ))
    }

    /// How a courier's full read shows the recipient's phone, given the waybill's binding from the read's
    /// snapshot.
    pub(crate) fn shown_phone(
        &self,
        reader: &wbg_core::Account,
        no: &WaybillNo,
        binding: Option<&NumberBinding>,
    ) -> ShownPhone {
        let Some(n) = &self.numbers else {
            return ShownPhone::AsView;
        };
        if reader.role != Role::Courier {
            return ShownPhone::AsView;
        }
        // A canary takes no pool number: it shows a decoy, one per number, the same on every read.
        if !n.decoys.is_empty() && self.canary_for(no.as_str()).is_some() {
            use sha2::Digest;
            let h = sha2::Sha256::digest(no.as_str().as_bytes());
            let i = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
            return ShownPhone::Virtual(n.decoys[(i % n.decoys.len() as u64) as usize].clone());
        }
        match binding {
            Some(b) if b.courier == reader.id => ShownPhone::Virtual(b.number.clone()),
            _ => ShownPhone::Masked,
        }
    }

    /// Binds numbers to waybills `wanted` (each with its courier), in one transaction: after their
    /// out_for_delivery events committed (`first`: a batch's, or one scan's) or from the queue. Canaries are
    /// left out. Failures are logged, never returned: the events stand and the waybills stay queued. Returns
    /// whether the pool was found exhausted.
    pub(crate) fn bind_numbers(&self, wanted: Wanted, first: bool) -> bool {
        let Some((n, wanted, now, mut audit)) = self.binding(wanted, first) else {
            return false;
        };
        let bound = self
            .store
            .bind_numbers(&wanted, now, n.release, &mut *audit);
        self.bound(n, wanted.len(), now, bound, first)
    }

    /// [`Guard::bind_numbers`] for an async caller (`first`), who awaits the store's ticket instead of parking
    /// its worker thread for the binding's transaction.
    async fn bind_numbers_async(&self, wanted: Wanted) -> bool {
        let Some((n, wanted, now, audit)) = self.binding(wanted, true) else {
            return false;
        };
        let count = wanted.len();
        let bound = self
            .store
            .bind_numbers_later(wanted, now, n.release, audit)
            .await;
        self.bound(n, count, now, bound, true)
    }

    /// What a binding of `wanted` needs: the settings, the waybills without canaries (`None` when none is left
    /// or numbers are off), the time, and what records each outcome.
    fn binding(
        &self,
        wanted: Wanted,
        first: bool,
    ) -> Option<(&NumberState, Wanted, Millis, wbg_store::BindAudit)> {
        let n = self.numbers.as_ref()?;
        // Canaries never take a pool number, nor tell the telephony provider anything.
        let wanted: Wanted = wanted
            .into_iter()
            .filter(|(no, _)| self.canary_for(no.as_str()).is_none())
            .collect();
        if wanted.is_empty() {
            return None;
        }
        let now = self.clock.now();
        let recorded = self.entry(ACTOR, &RequestMeta::default(), "number_bind");
        let audit = move |no: &WaybillNo, courier: &AccountId, o: &BindOutcome| {
            let mut e = recorded.clone();
            e.waybill = Some(no.to_string());
            e.detail = Some(match o {
                BindOutcome::Bound(b) => format!("number={} courier={courier}", b.number),
                BindOutcome::Rebound { binding, from } => {
                    format!(
                        "number={} courier={courier} rebound_from={from}",
                        binding.number
                    )
                }
                // Retries from the queue are not recorded again.
                BindOutcome::Exhausted if first => {
                    e.decision = "deny".into();
                    format!("pool_exhausted; courier={courier} queued")
                }
                BindOutcome::Exhausted | BindOutcome::Kept(_) | BindOutcome::NotNeeded => {
                    return None
                }
            });
            Some(e)
        };
        Some((n, wanted, now, Box::new(audit)))
    }

    /// After a binding of `count` waybills at `now`: tells the gateway what changed and raises the pool's
    /// exhaustion (`first` bindings only), or logs the failure. Returns whether the pool was found exhausted.
    fn bound(
        &self,
        n: &NumberState,
        count: usize,
        now: Millis,
        bound: Result<(Vec<BindOutcome>, Option<u64>), wbg_store::StoreError>,
        first: bool,
    ) -> bool {
        let outcomes = match bound {
            Ok((o, _)) => o,
            Err(e) => {
                tracing::error!(error = %e, waybills = count, "cannot bind privacy numbers; the waybills stay queued");
                return false;
            }
        };
        let change = |event, b: &NumberBinding| BindingChange {
            event,
            number: b.number.clone(),
            courier: b.courier.to_string(),
            waybill_no: b.waybill_no.to_string(),
            at: now,
            valid_until: None,
        };
        for outcome in &outcomes {
            match outcome {
                BindOutcome::Bound(b) => self.tell_gateway(&change("bound", b)),
                BindOutcome::Rebound { binding, .. } => {
                    self.tell_gateway(&change("rebound", binding))
                }
                _ => {}
            }
        }
        let exhausted = outcomes
            .iter()
            .filter(|o| **o == BindOutcome::Exhausted)
            .count();
        if exhausted > 0 && first {
            metrics::counter!("wbguard_privacy_numbers_exhausted_total")
                .increment(exhausted as u64);
            let last = n.last_exhausted_alert.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= EXHAUSTION_ALERT_EVERY_MS
                && n.last_exhausted_alert
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::warn!("privacy-number pool exhausted; waybills wait for a number");
                self.raise(
                    ACTOR,
                    RiskAlert {
                        kind: "privacy_numbers_exhausted".into(),
                        severity: "warning".into(),
                        detail:
                            "every privacy number is bound or resting; couriers see masked phones \
                                 until one is free (enlarge the pool)"
                                .into(),
                    },
                );
            }
        }
        exhausted > 0
    }

    /// [`Guard::bind_numbers`] for a single scan's request, bound together with those of every other request
    /// asking meanwhile, as their events were committed together: the first asker binds what all the others
    /// queued while it bound (in one transaction, again and again until none is left), and they await it. The
    /// binder awaits the store too ([`wbg_store::Numbers::bind_numbers_later`]): on the embedded store its
    /// binding is a job of the next group commit, on PostgreSQL a transaction on the store's own runtime. One
    /// transaction for each parcel going out cost a PostgreSQL node three quarters of its single scans when a
    /// third went out for delivery; the binder's transaction on its runtime worker (under the embedded store's
    /// write lock) parked that worker for each group.
    pub(crate) async fn bind_numbers_together(&self, wanted: Wanted) {
        let Some(n) = &self.numbers else { return };
        if wanted.is_empty() {
            return;
        }
        let (done, bound) = Ticket::channel();
        let lead = {
            let mut t = n.together.lock().unwrap_or_else(|p| p.into_inner());
            t.asked.push((wanted, done));
            !std::mem::replace(&mut t.binding, true)
        };
        if lead {
            let mut leading = Leading {
                together: &n.together,
                done: false,
            };
            while let Some(asked) = leading.next() {
                let (wanted, tickets): (Vec<_>, Vec<_>) = asked.into_iter().unzip();
                self.bind_numbers_async(wanted.into_iter().flatten().collect())
                    .await;
                for t in tickets {
                    t.send(Ok(()));
                }
            }
        }
        // Bound, or left queued for upkeep (a failure is logged by the binder).
        let _ = bound.await;
    }

    /// Binds numbers to up to `limit` queued waybills, longest waiting first, in one transaction, until the
    /// pool is found exhausted (the server calls this every second); returns how many are still waiting.
    pub fn bind_waiting_numbers(&self, limit: usize) -> Result<usize, GuardError> {
        if self.numbers.is_none() {
            return Ok(0);
        }
        // Canaries out for delivery never take a number: they are not waiting, and must not crowd the queue.
        let canaries = self.canary_numbers();
        let waiting = |limit: usize| -> Result<Vec<(WaybillNo, AccountId)>, GuardError> {
            Ok(self
                .store
                .waiting_for_numbers(limit + canaries.len())?
                .into_iter()
                .filter(|(no, _)| !canaries.contains(no.as_str()))
                .take(limit)
                .collect())
        };
        let queued = waiting(limit)?;
        if !queued.is_empty() {
            self.bind_numbers(queued, false);
        }
        Ok(waiting(limit)?.len())
    }

    /// After an event moved waybill `wb` out of delivery: tells the gateway when its binding's window ends.
    pub(crate) fn binding_window_moved(&self, wb: &WaybillMeta) {
        if self.gateway_told_of(wb) {
            let binding = self.store.number_of_waybill(&wb.waybill_no);
            self.tell_window(wb, binding);
        }
    }

    /// [`Guard::binding_window_moved`] for an async caller, who awaits the binding's lookup rather than park its
    /// worker thread on the store.
    pub(crate) async fn binding_window_moved_async(&self, wb: &WaybillMeta) {
        if self.gateway_told_of(wb) {
            let binding = self.store.number_of_waybill_later(&wb.waybill_no).await;
            self.tell_window(wb, binding);
        }
    }

    /// Whether a telephony gateway is told of binding changes.
    pub(crate) fn gateway_told(&self) -> bool {
        self.numbers.as_ref().is_some_and(|n| n.gateway.is_some())
    }

    /// Whether a telephony gateway hears of `wb`'s binding's window (none while it is out for delivery).
    fn gateway_told_of(&self, wb: &WaybillMeta) -> bool {
        self.gateway_told() && wb.status != WaybillStatus::OutForDelivery
    }

    /// Tells the gateway when the window of `wb`'s binding (as looked up) ends.
    fn tell_window(
        &self,
        wb: &WaybillMeta,
        binding: Result<Option<NumberBinding>, wbg_store::StoreError>,
    ) {
        let Some(n) = &self.numbers else { return };
        match binding {
            Ok(Some(b)) => self.tell_gateway(&BindingChange {
                event: "ends",
                number: b.number.clone(),
                courier: b.courier.to_string(),
                waybill_no: b.waybill_no.to_string(),
                at: self.clock.now(),
                valid_until: n.ends(&b, wb),
            }),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot read a privacy-number binding"),
        }
    }

    fn tell_gateway(&self, change: &BindingChange) {
        if let Some(g) = self.numbers.as_ref().and_then(|n| n.gateway.as_ref()) {
            g.binding_changed(change);
        }
    }

    /// The telephony gateway asks where a call from courier `caller` to privacy number `number` goes: the
    /// recipient's real number, only if the number is bound to that courier and the delivery window is open
    /// (the binding's own end, then the `call_recipient` policy, both from the waybill's events). Audited
    /// either way; the real number is decrypted only after the grant is on record.
    pub fn route_call(
        &self,
        actor: Actor<'_>,
        number: &str,
        caller: &str,
        meta: &RequestMeta,
    ) -> Result<CallRoute, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::RouteCalls, "number_route", meta)?;
        let Some(n) = &self.numbers else {
            return Err(GuardError::NotFound(
                "privacy numbers are not enabled".into(),
            ));
        };
        e.purpose = Some("delivery".into());
        let caller = AccountId::parse(caller)?;
        e.detail = Some(format!("caller={caller} number=unknown"));
        // Only a pool number is ever recorded: a real phone number sent here must not reach the audit log.
        let number = wbg_core::normalize_phone(number)
            .map_err(|_| GuardError::Invalid("number must be a phone number".into()))?;
        let Some(b) = self.store.number_binding(&number)? else {
            return Err(self.deny(e, GuardError::NotFound("no such privacy number".into())));
        };
        e.detail = Some(format!("caller={caller} number={number}"));
        e.waybill = Some(b.waybill_no.to_string());
        let now = self.clock.now();
        let Some((wb, sealed)) = self.store.waybill(&b.waybill_no)? else {
            return Err(self.deny(
                e,
                GuardError::Expired("this privacy number is not bound".into()),
            ));
        };
        if b.courier != caller {
            return Err(self.deny(
                e,
                GuardError::Forbidden("this privacy number is not bound to the caller".into()),
            ));
        }
        let ends = n.ends(&b, &wb);
        if ends.is_some_and(|t| now > t) {
            return Err(self.deny(
                e,
                GuardError::Expired("this privacy number's binding has ended".into()),
            ));
        }
        let courier = self
            .store
            .account(&caller)?
            .filter(|a| a.role == Role::Courier && a.status == AccountStatus::Active);
        let permitted = match &courier {
            Some(c) => self.policy().may_call(c, &wb, now.div_euclid(1000))?,
            None => false,
        };
        if !permitted {
            return Err(self.deny(
                e,
                GuardError::Forbidden(format!(
                    "{caller} may not call the recipient of waybill {} now",
                    b.waybill_no
                )),
            ));
        }
        // A routed call hands the recipient's number to the courier's call: the engine meters it as the courier's
        // full read, so calling through recipients in bulk is rate-limited, scored and contained like reading them.
        if let Some(c) = &courier {
            self.meter(c, &wb, wbg_core::Purpose::Delivery, &e, meta)?;
        }
        if self.is_shredded(wb.bucket) {
            return Err(self.deny(
                e,
                GuardError::Expired(
                    "the recipient's number was destroyed under the retention policy".into(),
                ),
            ));
        }
        e.view = Some("full".into());
        e.fields = vec!["recipient.phone".into()];
        let audit_seq = self.store.append_audit(e)?;
        let route_to = self
            .vault
            .open_fields(&b.waybill_no, wb.bucket, &sealed, &[Field::RecipientPhone])?
            .into_iter()
            .find_map(|(f, v)| (f == Field::RecipientPhone).then_some(v))
            .ok_or_else(|| GuardError::internal("the sealed fields hold no recipient phone"))?;
        metrics::counter!("wbguard_calls_routed_total").increment(1);
        Ok(CallRoute {
            route_to,
            valid_until: ends,
            audit_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(numbers: &[&str]) -> PrivacyNumbers {
        PrivacyNumbers {
            enabled: true,
            numbers: numbers.iter().map(|s| s.to_string()).collect(),
            ..PrivacyNumbers::default()
        }
    }

    /// A binder dropped before its queue is empty (it panicked, or its future was dropped mid-binding) lets the
    /// askers waiting on it go — their tickets fail, upkeep binds their waybills — and the next asker binds:
    /// nobody waits on it for good. One that ran its queue dry leaves a new binder's queue alone.
    #[test]
    fn a_binder_dropped_mid_binding_leaves_nobody_waiting_on_it() {
        let together = std::sync::Mutex::new(Together::default());
        let ask = |together: &std::sync::Mutex<Together>| {
            let (sent, waiting) = Ticket::<()>::channel();
            let mut t = together.lock().unwrap();
            t.asked.push((Vec::new(), sent));
            let lead = !std::mem::replace(&mut t.binding, true);
            (lead, waiting)
        };
        let (lead, _) = ask(&together);
        assert!(lead);
        let mut leading = Leading {
            together: &together,
            done: false,
        };
        assert_eq!(leading.next().map(|a| a.len()), Some(1));
        let (lead, waiting) = ask(&together);
        assert!(!lead, "one asker binds at a time");
        drop(leading);
        // Checked before waiting, so that a binder that kept its duty fails here rather than hangs below.
        assert!(
            together.lock().unwrap().asked.is_empty(),
            "the waiting askers are let go"
        );
        assert!(waiting.wait().is_err(), "the waiting asker is let go");
        let (lead, _first) = ask(&together);
        assert!(lead, "and the next asker binds");

        let mut leading = Leading {
            together: &together,
            done: false,
        };
        assert!(leading.next().is_some());
        assert!(leading.next().is_none());
        let (lead, _second) = ask(&together);
        assert!(lead, "a binder whose queue ran dry has let go");
        drop(leading);
        let t = together.lock().unwrap();
        assert!(
            t.binding && t.asked.len() == 1,
            "the new binder's queue stands"
        );
    }

    #[test]
    fn pools_expand_ranges_and_refuse_nonsense_without_echoing_it() {
        let pool = cfg(&[
            "+86 171 0000 0008..17100000011",
            "17100000009",
            "13800000000",
        ])
        .pool()
        .unwrap();
        assert_eq!(
            pool,
            [
                "17100000008",
                "17100000009",
                "17100000010",
                "17100000011",
                "13800000000"
            ]
        );
        for bad in [
            "12345",
            "17100000010..17100000001",
            "17100000000..0101234567",
        ] {
            let e = cfg(&[bad]).pool().unwrap_err().to_string();
            assert!(e.contains("numbers[0]"), "{e}");
            assert!(!e.contains("1710000"), "the entry is not echoed: {e}");
        }
        let e = cfg(&["17000000000..17999999999"]).pool().unwrap_err();
        assert!(e.to_string().contains("1000000"), "{e}");
    }
}
