//! Scan events: one at a time from a courier app or an outlet's scanner, or up to [`MAX_BATCH`] at once from a
//! sorting centre (`POST /v1/events`). Every event passes the same checks — an active account, the policy's
//! permission for that event at that outlet, a valid status transition, a plausible time, an active courier
//! of the outlet for `out_for_delivery` — and a batch is applied all or none, its faults reported per row.
use crate::guard::{checked_token_hash, MAX_CLOCK_SKEW_MS};
use crate::{Actor, Guard, GuardError, RequestMeta, MAX_BATCH};
use std::collections::{HashMap, HashSet};
use wbg_audit::AuditEntry;
use wbg_core::{
    Account, AccountId, AccountStatus, EventType, Millis, Role, StatusEvent, WaybillMeta,
    WaybillNo, WaybillStatus,
};
use wbg_policy::WriteAction;
use wbg_store::{EventRecord, EventWrite};

/// One event of a batch: the waybill it is about, and the event (the fields of a single event's body).
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanEvent {
    /// The waybill scanned.
    pub waybill_no: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Where it happened.
    #[schema(value_type = String)]
    pub outlet: wbg_core::OutletId,
    /// The courier, required for `out_for_delivery`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub courier: Option<AccountId>,
    /// When the scan happened (ms since epoch); defaults to the time received.
    #[serde(default)]
    pub at: Option<Millis>,
}

impl ScanEvent {
    fn event(self) -> StatusEvent {
        StatusEvent {
            kind: self.kind,
            outlet: self.outlet,
            courier: self.courier,
            at: self.at,
        }
    }
}

/// What a batch of events did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EventBatchReport {
    /// Events recorded (all of the batch).
    pub recorded: usize,
    /// The audit entry recording the batch.
    pub audit_seq: u64,
}

/// Why one row of a batch was refused.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RowFault {
    /// The row's position in the batch, from 0.
    pub index: usize,
    /// Its error code (`invalid_request`, `not_found`, `forbidden`, `conflict`).
    pub code: &'static str,
    /// What is wrong with it (never personal data).
    pub message: String,
}

/// An event checked and ready to apply, with what the single-event audit entry says of it.
struct Planned {
    write: EventWrite,
    detail: String,
}

impl Guard {
    /// Records one scan event on waybill `no`; returns the waybill as it now is.
    pub fn record_event(
        &self,
        actor: Actor<'_>,
        no: &str,
        ev: StatusEvent,
        meta: &RequestMeta,
    ) -> Result<WaybillMeta, GuardError> {
        let account = self.actor(actor)?;
        let no = WaybillNo::parse(no)?;
        let wb = self.store.waybill(&no)?.map(|(m, _)| m);
        let (write, e) = self.check_event(
            &account,
            matches!(actor, Actor::Token(_)),
            &no,
            wb,
            ev,
            meta,
            HashMap::new(),
        )?;
        let moved = [(write.expected, write.next.clone())];
        self.store.record_events(vec![write], e).wait()?;
        self.followed(&moved);
        let [(_, next)] = moved;
        Ok(next)
    }

    /// [`Guard::record_event`] by an API token, for async callers: the account and the waybill's metadata are
    /// read in one trip to the store (a scan snapshot: no sealed fields or events, which a scan never uses), and
    /// the event's group commit is awaited.
    pub async fn record_event_async(
        &self,
        token: &str,
        no: &str,
        ev: StatusEvent,
        meta: &RequestMeta,
    ) -> Result<WaybillMeta, GuardError> {
        let hash = checked_token_hash(token)?;
        let no = match WaybillNo::parse(no) {
            Ok(no) => no,
            Err(bad) => {
                // An unknown token is told so before anything about its request.
                self.authenticate(token)?;
                return Err(bad.into());
            }
        };
        let snap = self.store.scan_snapshot(&hash, &no);
        // A parcel going out names its courier, whose account the checks read: asked for beside the scanner's
        // snapshot and awaited, where a lookup on this thread would park it (on the embedded store, behind the
        // write lock the store thread holds through each group commit; a third of a delivery day's scans).
        let courier = match (&ev.kind, &ev.courier) {
            (EventType::OutForDelivery, Some(c)) => Some((c.clone(), self.store.account_later(c))),
            _ => None,
        };
        let snap = snap.await?;
        let account = snap.account.ok_or_else(|| GuardError::Unauthenticated)?;
        let wb = snap.waybill;
        let mut couriers = HashMap::new();
        if let Some((id, found)) = courier {
            couriers.insert(id, found.await?);
        }
        let (write, e) = self.check_event(&account, true, &no, wb, ev, meta, couriers)?;
        let moved = [(write.expected, write.next.clone())];
        self.store.record_events(vec![write], e).await?;
        let (out, left) = self.applied(&moved);
        for wb in &left {
            self.binding_window_moved_async(wb).await;
        }
        // Bound together with the other single scans' parcels going out meanwhile.
        self.bind_numbers_together(out).await;
        let [(_, next)] = moved;
        Ok(next)
    }

    /// One event checked for `account`: its write and audit entry, or the refusal (a policy refusal on record).
    /// `couriers` holds courier accounts already looked up (one not there is looked up here).
    #[allow(clippy::too_many_arguments)]
    fn check_event(
        &self,
        account: &Account,
        by_token: bool,
        no: &WaybillNo,
        wb: Option<WaybillMeta>,
        ev: StatusEvent,
        meta: &RequestMeta,
        mut couriers: HashMap<AccountId, Option<Account>>,
    ) -> Result<(EventWrite, AuditEntry), GuardError> {
        let mut e = self.entry(account.id.as_str(), meta, "event");
        e.waybill = Some(no.to_string());
        e.detail = Some(format!("type={} outlet={}", ev.kind.as_str(), ev.outlet));
        self.require_active(account, &e)?;
        let now = self.clock.now();
        match self.plan_event(account, by_token, no, wb, ev, now, &mut couriers) {
            Ok(p) => {
                e.detail = Some(p.detail);
                Ok((p.write, e))
            }
            Err(err @ GuardError::Forbidden(_)) => Err(self.deny(e, err)),
            Err(err) => Err(err),
        }
    }

    /// Records a batch of scan events, all or none, as one audited operation. A refused batch changes nothing
    /// and names every faulty row ([`GuardError::Rows`]); one the policy refuses is audited as a refusal.
    /// A waybill may appear once a batch.
    pub fn record_events(
        &self,
        actor: Actor<'_>,
        batch: Vec<ScanEvent>,
        meta: &RequestMeta,
    ) -> Result<EventBatchReport, GuardError> {
        let account = self.actor(actor)?;
        let mut e = self.entry(account.id.as_str(), meta, "events");
        self.require_active(&account, &e)?;
        if batch.is_empty() || batch.len() > MAX_BATCH {
            return Err(GuardError::Invalid(format!(
                "a batch holds 1 to {MAX_BATCH} events"
            )));
        }
        let mut faults = Vec::new();
        let fault = |index: usize, err: &GuardError| RowFault {
            index,
            code: err.code(),
            message: err.to_string(),
        };
        let mut seen = HashSet::new();
        let mut nos = Vec::with_capacity(batch.len());
        for (i, row) in batch.iter().enumerate() {
            match WaybillNo::parse(&row.waybill_no) {
                Ok(no) if !seen.insert(no.clone()) => faults.push(fault(
                    i,
                    &GuardError::Invalid("a waybill may appear once a batch".into()),
                )),
                Ok(no) => nos.push(Some(no)),
                Err(err) => faults.push(fault(i, &err.into())),
            }
            if nos.len() <= i {
                nos.push(None);
            }
        }
        let wanted: Vec<WaybillNo> = nos.iter().flatten().cloned().collect();
        let mut metas = self.store.waybill_metas(&wanted).wait()?.into_iter();
        let by_token = matches!(actor, Actor::Token(_));
        let now = self.clock.now();
        let mut couriers = HashMap::new();
        let mut writes = Vec::with_capacity(batch.len());
        for (i, (row, no)) in batch.into_iter().zip(nos).enumerate() {
            let Some(no) = no else { continue };
            let wb = metas.next().flatten();
            match self.plan_event(&account, by_token, &no, wb, row.event(), now, &mut couriers) {
                Ok(p) => writes.push(p.write),
                // A failure of the node (its store, vault or policy, or a store that cannot answer yet) is not the
                // row's fault: the request fails as a whole, with its 5xx.
                Err(err) if err.http_status() >= 500 => return Err(err),
                Err(err) => faults.push(fault(i, &err)),
            }
        }
        e.detail = Some(format!("events={}", writes.len() + faults.len()));
        if !faults.is_empty() {
            faults.sort_by_key(|f| f.index);
            let forbidden = faults.iter().any(|f| f.code == "forbidden");
            let err = GuardError::Rows(faults);
            // A batch the policy refuses is on record, like any refusal.
            return Err(if forbidden { self.deny(e, err) } else { err });
        }
        let recorded = writes.len();
        let moved: Vec<(WaybillStatus, WaybillMeta)> = writes
            .iter()
            .map(|w| (w.expected, w.next.clone()))
            .collect();
        let audit_seq = self.store.record_events(writes, e).wait()?;
        self.followed(&moved);
        Ok(EventBatchReport {
            recorded,
            audit_seq,
        })
    }

    /// Checks one event against the waybill as stored (`None`: no such waybill) and makes its write.
    #[allow(clippy::too_many_arguments)]
    fn plan_event(
        &self,
        account: &Account,
        by_token: bool,
        no: &WaybillNo,
        wb: Option<WaybillMeta>,
        ev: StatusEvent,
        now: Millis,
        couriers: &mut HashMap<AccountId, Option<Account>>,
    ) -> Result<Planned, GuardError> {
        let Some(wb) = wb else {
            return Err(GuardError::NotFound("no such waybill".into()));
        };
        if by_token {
            let action = WriteAction::RecordEvent {
                event_type: ev.kind.as_str(),
                outlet: &ev.outlet,
            };
            if !self.policy().may_write(account, &wb, &action)? {
                return Err(GuardError::Forbidden(format!(
                    "not permitted to record events of waybill {no} at outlet {}",
                    ev.outlet
                )));
            }
        }
        wb.status.check_transition(ev.kind.status())?;
        let at = ev.at.unwrap_or(now);
        if at > now + MAX_CLOCK_SKEW_MS {
            return Err(GuardError::Invalid("at lies in the future".into()));
        }
        // Scans may be reported late or backfilled (an order system can ingest after pickup), so the bound is
        // the previous scan, not the ingest time. The previous scan's time is `updated_at`: every scan sets it
        // and moves the waybill out of `created`, so a waybill still `created` has had none.
        if wb.status != WaybillStatus::Created && at < wb.updated_at {
            return Err(GuardError::Invalid(
                "at is earlier than the waybill's previous event".into(),
            ));
        }
        let mut next = wb.clone();
        next.status = ev.kind.status();
        next.updated_at = at;
        let mut detail = format!("type={} outlet={}", ev.kind.as_str(), ev.outlet);
        match ev.kind {
            EventType::OutForDelivery => {
                let courier = ev.courier.as_ref().ok_or_else(|| {
                    GuardError::Invalid("courier is required for out_for_delivery".into())
                })?;
                if ev.outlet != wb.destination_outlet {
                    return Err(GuardError::Invalid(format!(
                        "waybill {no} is delivered from outlet {}, not {}",
                        wb.destination_outlet, ev.outlet
                    )));
                }
                let c = match couriers.get(courier) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.store.account(courier)?;
                        couriers.insert(courier.clone(), c.clone());
                        c
                    }
                }
                .filter(|c| c.role == Role::Courier && c.status == AccountStatus::Active)
                .ok_or_else(|| {
                    GuardError::Invalid(format!("{courier} is not an active courier account"))
                })?;
                if c.outlet.as_ref() != Some(&ev.outlet) {
                    return Err(GuardError::Invalid(format!(
                        "courier {courier} does not work at outlet {}",
                        ev.outlet
                    )));
                }
                next.courier = Some(c.id);
                detail = format!("{detail} courier={courier}");
            }
            EventType::Signed => next.signed_at = Some(at),
            _ => {}
        }
        Ok(Planned {
            write: EventWrite {
                record: EventRecord {
                    at,
                    event: StatusEvent { at: Some(at), ..ev },
                    actor: account.id.to_string(),
                },
                expected: wb.status,
                next,
            },
            detail,
        })
    }

    /// What follows recorded events, single or batched (each with the status its waybill had before): all are
    /// counted. Returns the parcels now out for delivery, for the caller to bind their privacy numbers (together:
    /// in one transaction), and — when a telephony gateway is told of bindings — those whose binding's window
    /// the move ended or changed, for the caller to tell it ([`Guard::binding_window_moved`]).
    ///
    /// A window moves only when its parcel leaves delivery (a number is bound only out for delivery; its window
    /// ends as the parcel leaves, or a grace after it is signed, which is final): a move from any other status
    /// finds the window ended already, as the gateway was told. Before, every move but out for delivery looked
    /// the binding up, on the async path on the scan's worker thread: two scans in three of a delivery day.
    fn applied(
        &self,
        moved: &[(WaybillStatus, WaybillMeta)],
    ) -> (Vec<(WaybillNo, AccountId)>, Vec<WaybillMeta>) {
        let told = self.gateway_told();
        let (mut out, mut left) = (Vec::new(), Vec::new());
        for (was, next) in moved {
            match (&next.status, &next.courier) {
                (WaybillStatus::OutForDelivery, Some(courier)) => {
                    out.push((next.waybill_no.clone(), courier.clone()));
                }
                _ if told && *was == WaybillStatus::OutForDelivery => left.push(next.clone()),
                _ => {}
            }
        }
        metrics::counter!("wbguard_events_total").increment(moved.len() as u64);
        (out, left)
    }

    /// [`Guard::applied`] and what follows it on the synchronous paths (one scan from the CLI or a test, a batch
    /// on a blocking thread): the gateway told of the windows that ended, then the parcels going out bound, in
    /// one transaction.
    fn followed(&self, moved: &[(WaybillStatus, WaybillMeta)]) {
        let (out, left) = self.applied(moved);
        for wb in &left {
            self.binding_window_moved(wb);
        }
        self.bind_numbers(out, true);
    }
}
