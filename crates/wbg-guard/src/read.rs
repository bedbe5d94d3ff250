//! The guarded read, top to bottom — the one path every view of personal data takes:
//!
//! 1. **ask**: the token is hashed, purpose, waybill number and ticket checked ([`Guard::ask`]);
//! 2. **snapshot**: the token's account, the waybill, its events and privacy-number binding, read without
//!    writing ([`wbg_store::Store::read_snapshot`]); for customer service, the ticket it names from the work
//!    registry, and the read counted against it ([`WorkFacts`]);
//! 3. **decide**: account status → legal holds (a held waybill is its custodian's alone, see `hold.rs`) →
//!    policy (Cedar: the richest view the purpose permits) → risk engine (may cap the view, refuse, suspend) →
//!    retention (shredded field groups) → the audit entry ([`Guard::decide_read`]);
//! 4. **audit**: the entry goes to the store's group commit — a print job's with the label's print, counted in
//!    the same commit ([`Guard::commit_read`]) — and nothing goes on until it is durable;
//! 5. **finish**: alerts and a suspension are stored, then exactly the decided view's fields are decrypted and
//!    rendered ([`Guard::finish_read`]).
//!
//! [`Guard::read_async`] awaits steps 2 and 4, so a server serves other requests while a read's entry waits for
//! its commit; [`Guard::read`] runs the very same future to completion on the calling thread.
use crate::credentials::Bearer;
use crate::guard::{add_detail, deny_entry, recordable};
use crate::numbers::ShownPhone;
use crate::view::{EventView, MaskedAddress, PartyView, WaybillView};
use crate::{Guard, GuardError, ReadRequest, RequestMeta};
use std::collections::HashMap;
use std::time::Instant;
use wbg_audit::AuditEntry;
use wbg_core::{
    Account, AccountStatus, EventType, Millis, OutletId, Purpose, View, WaybillMeta, WaybillNo,
    WaybillStatus,
};
use wbg_policy::{ReadContext, TicketFacts};
use wbg_risk::{Access, RiskAction, RiskAlert};
use wbg_store::{EventRecord, ReadSnapshot, ServiceTicket, Ticket};
use wbg_vault::{mask_name, Field, PhoneMask};

/// A read request, checked (step 1).
pub(crate) struct Asked {
    bearer: Bearer,
    purpose: Purpose,
    no: WaybillNo,
    /// When the read was asked: what the policy and the engine judge it at.
    at: Millis,
}

/// What a read decided, acted on once its entry has committed.
enum ReadDecision {
    /// Unknown token: nothing is recorded.
    Unauthenticated,
    /// Refused; the refusal was recorded with the read.
    Denied(GuardError),
    /// The risk hook asked for the account's suspension: it is suspended, then the refusal `entry` recorded.
    Suspend {
        account: Account,
        entry: Box<AuditEntry>,
    },
    /// Granted with this view, the recipient's phone shown so; recorded with the read.
    Allowed(View, ShownPhone),
}

/// A read's decision with the audit entry to commit with it and the alert the risk hook asked for, if any.
type Decided = (Option<AuditEntry>, ReadDecision, Option<RiskAlert>);

/// What a guarded read gives: the view and, for a print job that may make its label, which print of the label
/// this is (counted with the read's entry).
pub(crate) struct Read {
    /// The view decided, rendered.
    pub(crate) view: WaybillView,
    /// The label's copy number, for a print job whose label is made.
    pub(crate) copy: Option<u32>,
}

impl Guard {
    /// The guarded read: authenticate → status → policy → risk → audit → decrypt the decided view's fields.
    /// Blocks the calling thread while the store works; servers use [`Guard::read_async`].
    pub fn read(
        &self,
        token: &str,
        req: &ReadRequest<'_>,
        meta: &RequestMeta,
    ) -> Result<WaybillView, GuardError> {
        self.read_via(token, req, meta, Via::Api)
    }

    /// [`Guard::read`] for async callers: the store's lookups and the audit entry's group commit are awaited.
    pub async fn read_async(
        &self,
        token: &str,
        req: &ReadRequest<'_>,
        meta: &RequestMeta,
    ) -> Result<WaybillView, GuardError> {
        self.read_via_async(token, req, meta, Via::Api)
            .await
            .map(|r| r.view)
    }

    /// The guarded read, arrived `via` an API read, a print job or a label token, on the calling thread: the
    /// same steps as [`Guard::read_via_async`], whose store tickets this thread waits for (they are completed by
    /// the store's own thread or runtime, never by the caller's).
    pub(crate) fn read_via(
        &self,
        token: &str,
        req: &ReadRequest<'_>,
        meta: &RequestMeta,
        via: Via,
    ) -> Result<WaybillView, GuardError> {
        futures_executor::block_on(self.read_via_async(token, req, meta, via)).map(|r| r.view)
    }

    /// The guarded read, arrived `via` an API read, a print job or a label token, awaiting the store.
    pub(crate) async fn read_via_async(
        &self,
        token: &str,
        req: &ReadRequest<'_>,
        meta: &RequestMeta,
        via: Via,
    ) -> Result<Read, GuardError> {
        let started = Instant::now();
        let out = async {
            let asked = self.ask(token, req)?;
            let ticket = self.registered_ticket(&asked, req.ticket);
            let snapshot = match &asked.bearer {
                Bearer::Token(hash) => self.store.read_snapshot(hash, &asked.no),
                Bearer::Oidc(id) => self.store.read_snapshot_of_account(id, &asked.no),
            }
            .await?;
            if let Some(a) = &snapshot.account {
                self.saw(&a.id, asked.at);
            }
            let ticket = match ticket {
                Some(t) => t.await?,
                None => None,
            };
            let mut work = WorkFacts::of(&snapshot, ticket.as_ref(), &asked.no);
            if let Some(t) = work.ticket_to_count() {
                work.ticket.reads = self.store.count_ticket_read(t).await?.saturating_sub(1);
            }
            let (entry, decision, alert) =
                self.decide_read(&snapshot, &asked, req.ticket, &work, meta, via);
            let print = self.makes_label(via, &decision, &snapshot);
            let (seq, copy) = self
                .commit_read(entry, print.then_some((&asked.no, asked.at)))
                .await?;
            let view = self.finish_read(asked, snapshot, decision, alert, seq, meta)?;
            Ok(Read { view, copy })
        }
        .await;
        self.count_read(started, req, &out);
        out
    }

    /// Step 1: the request checked. An unknown token is told so before anything about its request.
    fn ask(&self, token: &str, req: &ReadRequest<'_>) -> Result<Asked, GuardError> {
        let bearer = self.bearer(token)?;
        let parsed = Purpose::parse(req.purpose)
            .map_err(GuardError::from)
            .and_then(|purpose| {
                let no = WaybillNo::parse(req.waybill_no)?;
                match req.ticket {
                    Some(t) if !valid_ticket(t) => Err(GuardError::Invalid(
                        "ticket must be 1-40 letters, digits, '-' or '_', starting with a letter, and hold no phone number"
                            .into(),
                    )),
                    _ => Ok((purpose, no)),
                }
            });
        match parsed {
            Ok((purpose, no)) => Ok(Asked {
                bearer,
                purpose,
                no,
                at: self.clock.now(),
            }),
            Err(bad_input) => {
                self.authenticate(token)?;
                Err(bad_input)
            }
        }
    }

    /// The registry's record of the ticket a customer-service read names, looked up beside the snapshot; none
    /// for other purposes, which no ticket widens.
    fn registered_ticket(
        &self,
        asked: &Asked,
        ticket: Option<&str>,
    ) -> Option<Ticket<Option<ServiceTicket>>> {
        match (ticket, asked.purpose) {
            (Some(t), Purpose::CustomerService) => Some(self.store.ticket_for(t, &asked.no)),
            _ => None,
        }
    }

    /// Step 2, authorize → risk → retention, from the snapshot alone and without touching the store: the audit
    /// entry to commit (none for an unknown token) and what to do once it has committed.
    fn decide_read(
        &self,
        snap: &ReadSnapshot,
        asked: &Asked,
        ticket: Option<&str>,
        work: &WorkFacts<'_>,
        meta: &RequestMeta,
        via: Via,
    ) -> Decided {
        let (no, purpose, now) = (&asked.no, asked.purpose, asked.at);
        let Some(account) = &snap.account else {
            return (None, ReadDecision::Unauthenticated, None);
        };
        let mut e = self.entry(account.id.as_str(), meta, "view");
        e.waybill = recordable(no.as_str()).map(str::to_owned);
        e.purpose = Some(purpose.as_str().into());
        e.detail = match (ticket, e.waybill.is_none()) {
            (Some(t), _) => Some(format!("ticket={t}")),
            (None, true) => Some("requested=phone-like".into()),
            (None, false) => None,
        };
        if let Some(v) = via.detail() {
            add_detail(&mut e, &v);
        }
        let denied = |e: AuditEntry, err: GuardError, alert: Option<RiskAlert>| {
            (Some(deny_entry(e, &err)), ReadDecision::Denied(err), alert)
        };
        if account.status == AccountStatus::Suspended {
            return denied(e, GuardError::AccountSuspended, None);
        }
        // The engine sees refusals and unknown numbers too: probing and guessing are signals in themselves.
        let assess = |waybill_no: &str, waybill, policy_view| {
            self.risk.assess(&Access {
                account,
                waybill_no,
                waybill,
                purpose,
                policy_view,
                ticket,
                at: now,
                device: meta.device.as_deref(),
                ip: meta.ip.as_deref(),
            })
        };
        let suspend = |e: AuditEntry, alert| {
            let decision = ReadDecision::Suspend {
                account: account.clone(),
                entry: Box::new(e),
            };
            (None, decision, alert)
        };
        let Some((wb, _)) = &snap.waybill else {
            // Lookups of numbers that do not exist are audited: guessing numbers is how scrapers enumerate. An
            // unknown number that looks like a phone number reaches neither the entry nor the engine (its alerts
            // would hold it).
            let risk = assess(e.waybill.as_deref().unwrap_or(""), None, None);
            if risk.action == RiskAction::Suspend {
                return suspend(e, risk.alert);
            }
            return denied(
                e,
                GuardError::NotFound("no such waybill".into()),
                risk.alert,
            );
        };
        // It exists, so it is a waybill number, whatever it looks like.
        e.waybill = Some(no.to_string());
        // A legal hold keeps the waybill from every read but its custodian's for the hold — and the work a parcel
        // still under way needs to arrive. The engine sees the refusals, as it sees the policy's.
        let holds = self.holds.load();
        let in_hold = match holds.on(no.as_str(), account.id.as_str()) {
            Some(held) => {
                add_detail(&mut e, &format!("hold={}", held.ids.join(",")));
                let custodians = purpose == Purpose::LegalHold && held.custodian;
                let work = !wb.status.is_final() && crate::hold::work_to_arrive(purpose);
                if !(custodians || work) {
                    let risk = assess(no.as_str(), Some(wb), None);
                    if risk.action == RiskAction::Suspend {
                        return suspend(e, risk.alert);
                    }
                    return denied(e, Guard::held_error(no, &held), risk.alert);
                }
                custodians
            }
            None if purpose == Purpose::LegalHold => {
                let err = GuardError::Forbidden(format!("no legal hold keeps waybill {no}"));
                return denied(e, err, None);
            }
            None => false,
        };
        let ctx = ReadContext {
            purpose,
            now_secs: now.div_euclid(1000),
            has_ticket: ticket.is_some(),
            in_incident: false,
            in_hold,
            ticket: work.ticket,
            exception_outlet: work.exception_outlet,
        };
        let verdict = match self.policy().decide_view(account, wb, &ctx) {
            Ok(v) => v,
            Err(err) => return denied(e, err.into(), None),
        };
        let risk = assess(no.as_str(), Some(wb), verdict.view);
        let alert = risk.alert;
        // Suspension wins over everything; a policy refusal over the engine's own refusal.
        let view = match (risk.action, verdict.view) {
            (RiskAction::Suspend, _) => return suspend(e, alert),
            (_, None) => {
                let err = GuardError::Forbidden(format!(
                    "no view of waybill {no} is permitted for purpose {}",
                    purpose.as_str()
                ));
                return denied(e, err, alert);
            }
            (RiskAction::Refuse, Some(_)) => {
                let err = GuardError::RateLimited("too many personal-data reads; slow down".into());
                return denied(e, err, alert);
            }
            (RiskAction::Cap(cap), Some(view)) => view.min(cap),
            (RiskAction::Allow, Some(view)) => view,
        };
        // Retention destroyed this waybill's contact or region: what is left is its routing data. A destroyed
        // address or item list is only left out.
        let gone = self.shredded_groups(wb.bucket);
        let view = if view > View::Routing && gone.hides_parties() {
            add_detail(&mut e, "retention=shredded");
            View::Routing
        } else {
            if view == View::Full && !gone.is_empty() {
                add_detail(&mut e, &format!("retention=shredded:{}", gone.names()));
            }
            view
        };
        let phone = match view {
            View::Full => self.shown_phone(account, no, snap.number.as_ref()),
            _ => ShownPhone::AsView,
        };
        e.view = Some(view.as_str().into());
        e.fields = fields_of(view)
            .iter()
            .filter(|(f, _)| gone.keeps(*f))
            .map(|(f, name)| match (f, phone.audit_name()) {
                (Field::RecipientPhone, Some(shown)) => shown.to_owned(),
                _ => (*name).to_owned(),
            })
            .collect();
        add_detail(&mut e, &format!("policy={}", verdict.policies.join(",")));
        (Some(e), ReadDecision::Allowed(view, phone), alert)
    }

    /// Whether a read is a print job that makes its label: granted the masked view of a waybill whose both
    /// parties' name, phone and region are still there (kept by retention, carried by its sealed fields) — what
    /// `label.rs` puts on a label. Its print is then counted in the read's commit.
    fn makes_label(&self, via: Via, decision: &ReadDecision, snap: &ReadSnapshot) -> bool {
        let (Via::Print(_), ReadDecision::Allowed(View::Masked, _), Some((wb, sealed))) =
            (via, decision, &snap.waybill)
        else {
            return false;
        };
        let gone = self.shredded_groups(wb.bucket);
        let carried = wbg_vault::SealedFields::carried(sealed);
        fields_of(View::Masked)
            .iter()
            .all(|(f, _)| gone.keeps(*f) && carried(*f))
    }

    /// Step 4: the read's entry (none for an unknown token) through the store's group commit, with a print job's
    /// label print counted in the same commit (`print`: the waybill, when): the entry's seq and the print's copy
    /// number, once both are durable.
    async fn commit_read(
        &self,
        entry: Option<AuditEntry>,
        print: Option<(&WaybillNo, Millis)>,
    ) -> Result<(Option<u64>, Option<u32>), GuardError> {
        Ok(match (entry, print) {
            (Some(e), Some((no, at))) => {
                let (seq, copy) = self.store.append_label_print(e, no, at).await?;
                (Some(seq), Some(copy))
            }
            (Some(e), None) => (Some(self.store.append_audit_grouped(vec![e]).await?), None),
            (None, _) => (None, None),
        })
    }

    /// Step 5, once the entry is durable (or none was due): alerts and a suspension are stored, then exactly the
    /// decided view's fields are decrypted and rendered.
    fn finish_read(
        &self,
        asked: Asked,
        snapshot: ReadSnapshot,
        decision: ReadDecision,
        alert: Option<RiskAlert>,
        seq: Option<u64>,
        meta: &RequestMeta,
    ) -> Result<WaybillView, GuardError> {
        let Asked {
            no, purpose, at, ..
        } = asked;
        if let (Some(alert), Some(a)) = (alert, &snapshot.account) {
            self.raise_on(a.id.as_str(), alert, seq);
        }
        if let Some(a) = &snapshot.account {
            let outcome = match &decision {
                ReadDecision::Allowed(v, _) => v.as_str(),
                ReadDecision::Suspend { .. } => "suspended",
                _ => "denied",
            };
            self.canary_read(a.id.as_str(), &no, purpose.as_str(), outcome, seq);
        }
        let (view, phone) = match decision {
            ReadDecision::Unauthenticated => return Err(GuardError::Unauthenticated),
            ReadDecision::Denied(err) => return Err(err),
            ReadDecision::Suspend { account, entry } => {
                self.suspend_for_risk(&account.id, at, "risk hook", meta)?;
                return Err(self.deny(*entry, GuardError::AccountSuspended));
            }
            ReadDecision::Allowed(view, phone) => (view, phone),
        };
        let (Some(audit_seq), Some((wb, sealed))) = (seq, snapshot.waybill) else {
            return Err(GuardError::internal(
                "an allowed read without its waybill or audit entry",
            ));
        };
        // The read is on record (committed above) before a single field is decrypted.
        // A virtual number stands in for the real one, which is then not even decrypted.
        let gone = self.shredded_groups(wb.bucket);
        let carried = wbg_vault::SealedFields::carried(&sealed);
        let to_open: Vec<Field> = fields_of(view)
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| !(*f == Field::RecipientPhone && matches!(phone, ShownPhone::Virtual(_))))
            .filter(|f| gone.keeps(*f) && carried(*f))
            .collect();
        let opened: HashMap<Field, String> = self
            .vault
            .open_fields(&no, wb.bucket, &sealed, &to_open)?
            .into_iter()
            .collect();
        Ok(render(
            &wb,
            view,
            &opened,
            snapshot.events,
            audit_seq,
            &phone,
            &self.masking.phone(),
        ))
    }

    /// The read's metrics and its log line: identifiers and the outcome only. The waybill number is logged only
    /// once it has parsed as one, so a phone number pasted into the path cannot reach the log.
    fn count_read(&self, started: Instant, req: &ReadRequest<'_>, out: &Result<Read, GuardError>) {
        metrics::histogram!("wbguard_read_seconds").record(started.elapsed().as_secs_f64());
        let label = match out {
            Ok(r) => r.view.view.as_str(),
            Err(e) => e.code(),
        };
        tracing::debug!(
            waybill = WaybillNo::parse(req.waybill_no)
                .ok()
                .and_then(|n| recordable(n.as_str()).map(str::to_owned))
                .unwrap_or_else(|| "<withheld>".into()),
            outcome = label,
            audit_seq = out.as_ref().ok().map(|r| r.view.audit_seq),
            "guarded read"
        );
        metrics::counter!("wbguard_reads_total", "outcome" => label).increment(1);
    }
}

/// How a read reached the guard; print jobs and label-token resolutions say so in their audit entry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via {
    /// A read through the API.
    Api,
    /// A label print job, in this format.
    Print(wbg_label::Format),
    /// A courier app resolving a label's QR token.
    LabelToken,
}

impl Via {
    fn detail(self) -> Option<String> {
        match self {
            Via::Api => None,
            Via::Print(f) => Some(format!("print={}", f.as_str())),
            Via::LabelToken => Some("via=label_token".into()),
        }
    }
}

/// Fields a view decrypts, and how each is recorded in the audit entry.
fn fields_of(view: View) -> &'static [(Field, &'static str)] {
    match view {
        View::Routing => &[],
        View::Masked => &[
            (Field::RecipientName, "recipient.name:masked"),
            (Field::RecipientPhone, "recipient.phone:masked"),
            (Field::RecipientRegion, "recipient.region"),
            (Field::SenderName, "sender.name:masked"),
            (Field::SenderPhone, "sender.phone:masked"),
            (Field::SenderRegion, "sender.region"),
        ],
        View::Full => &[
            (Field::RecipientName, "recipient.name"),
            (Field::RecipientPhone, "recipient.phone"),
            (Field::RecipientRegion, "recipient.region"),
            (Field::RecipientDetail, "recipient.detail"),
            (Field::SenderName, "sender.name"),
            (Field::SenderPhone, "sender.phone"),
            (Field::SenderRegion, "sender.region"),
            (Field::SenderDetail, "sender.detail"),
            (Field::Items, "items"),
        ],
    }
}

/// What the work registries say of a read: the ticket it names and the waybill's open exception.
pub(crate) struct WorkFacts<'a> {
    /// As the policy sees it.
    pub(crate) ticket: TicketFacts,
    /// The ticket to count this read against: registered, open, for this waybill, not another agent's, and
    /// named by an active account.
    count: Option<&'a str>,
    /// Where the waybill's open exception was scanned.
    pub(crate) exception_outlet: Option<&'a OutletId>,
}

impl<'a> WorkFacts<'a> {
    /// The facts of a read of `no` from its snapshot and the registry's record of the ticket it names.
    pub(crate) fn of(
        snap: &'a ReadSnapshot,
        ticket: Option<&'a ServiceTicket>,
        no: &WaybillNo,
    ) -> WorkFacts<'a> {
        let account = snap
            .account
            .as_ref()
            .filter(|a| a.status == AccountStatus::Active);
        let (mut facts, mut count) = (TicketFacts::default(), None);
        if let (Some(t), Some(account)) = (ticket, account) {
            facts.open_for_waybill = t.closed_at.is_none() && t.waybills.contains(no);
            facts.assigned_elsewhere = t.assignee.as_ref().is_some_and(|a| *a != account.id);
            facts.reads = t.reads;
            if facts.open_for_waybill && !facts.assigned_elsewhere {
                count = Some(t.id.as_str());
            }
        }
        // The exception that put the waybill in its status: the latest `exception` scan.
        let exception_outlet = match &snap.waybill {
            Some((wb, _)) if wb.status == WaybillStatus::Exception => snap
                .events
                .iter()
                .rev()
                .find(|e| e.event.kind == EventType::Exception)
                .map(|e| &e.event.outlet),
            _ => None,
        };
        WorkFacts {
            ticket: facts,
            count,
            exception_outlet,
        }
    }

    /// The ticket this read counts against, if any. Every read under a ticket counts, whatever view it ends
    /// with: the count is taken before the decision, so concurrent reads cannot share one remaining read.
    pub(crate) fn ticket_to_count(&self) -> Option<&'a str> {
        self.count
    }
}

/// A ticket id: a letter, then up to 39 letters, digits or dashes. It must start with a letter and hold no mobile
/// number, so that a phone number cannot pose as a ticket (and so reach the audit log).
pub(crate) fn valid_ticket(t: &str) -> bool {
    let b = t.as_bytes();
    !wbg_core::may_hold_phone(t)
        && !b.is_empty()
        && b.len() <= 40
        && b[0].is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

fn render(
    wb: &WaybillMeta,
    view: View,
    f: &HashMap<Field, String>,
    history: Vec<EventRecord>,
    audit_seq: u64,
    shown: &ShownPhone,
    mask: &PhoneMask,
) -> WaybillView {
    let party = |name: Field, phone: Field, region: Field, detail: Field| -> Option<PartyView> {
        let region = f.get(&region)?;
        let (province, city, district) = wbg_vault::split_region(region)?;
        let n = f.get(&name)?;
        let full = view == View::Full;
        let phone = match (phone, shown) {
            (Field::RecipientPhone, ShownPhone::Virtual(v)) => v.clone(),
            (Field::RecipientPhone, ShownPhone::Masked) => mask.apply(f.get(&phone)?),
            (_, _) if full => f.get(&phone)?.clone(),
            (_, _) => mask.apply(f.get(&phone)?),
        };
        Some(PartyView {
            name: if full { n.clone() } else { mask_name(n) },
            phone,
            address: MaskedAddress {
                province: province.to_owned(),
                city: city.to_owned(),
                district: district.to_owned(),
                detail: if full { f.get(&detail).cloned() } else { None },
            },
        })
    };
    WaybillView {
        waybill_no: wb.waybill_no.to_string(),
        view,
        merchant: wb.merchant.to_string(),
        origin_outlet: wb.origin_outlet.to_string(),
        destination_outlet: wb.destination_outlet.to_string(),
        status: wb.status,
        courier: wb.courier.as_ref().map(|c| c.to_string()),
        history: history
            .into_iter()
            .map(|h| EventView {
                kind: h.event.kind.as_str().to_owned(),
                outlet: h.event.outlet.to_string(),
                courier: h.event.courier.map(|c| c.to_string()),
                at: h.at,
            })
            .collect(),
        recipient: party(
            Field::RecipientName,
            Field::RecipientPhone,
            Field::RecipientRegion,
            Field::RecipientDetail,
        ),
        sender: party(
            Field::SenderName,
            Field::SenderPhone,
            Field::SenderRegion,
            Field::SenderDetail,
        ),
        items: if view == View::Full {
            f.get(&Field::Items).cloned()
        } else {
            None
        },
        privacy_number: match shown {
            ShownPhone::Virtual(v) => Some(v.clone()),
            _ => None,
        },
        audit_seq,
    }
}
