//! The replay of a policy proposal: the guarded reads of the last N days, decided again under the policy in force
//! and under the proposal, and every decision that would change, grouped (role, purpose, view before → after,
//! the rules on each side) with sample audit seqs.
//!
//! A read's entry names the account, the waybill, the purpose, the ticket and the time. What the policy saw
//! besides is rebuilt from what the store keeps unchanged: the waybill's state at that time from its scan events
//! (immutable and timestamped: status, courier, last scan, signature, where its exception was registered), the
//! ticket's facts from the registry (open then, for this waybill, assigned elsewhere, reads made under it before
//! this one, counted in replay order). The account's role and bindings are today's: a transfer since is replayed
//! at the new outlet.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use wbg_core::{
    Account, EventType, Millis, OutletId, Purpose, WaybillMeta, WaybillNo, WaybillStatus,
};
use wbg_policy::{PolicyEngine, ReadContext, ReplayMemo, TicketFacts};
use wbg_store::{EventRecord, ServiceTicket};

const DAY_MS: i64 = 86_400_000;
/// Sample seqs kept per group of changes.
const SAMPLES: usize = 5;

/// Decisions that would change, one group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionChange {
    /// The reader's role.
    pub role: String,
    /// The purpose read for.
    pub purpose: String,
    /// The view under the policy in force (absent: refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The view under the proposal (absent: refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The rules that decided it under the policy in force.
    pub rules_before: Vec<String>,
    /// The rules that decide it under the proposal.
    pub rules_after: Vec<String>,
    /// How many reads.
    pub count: u64,
    /// Audit seqs of some of them.
    pub samples: Vec<u64>,
}

/// What replaying a proposal over past reads found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// The proposal.
    pub version: u64,
    /// Days of reads replayed.
    pub days: u32,
    /// Reads decided again.
    pub replayed: u64,
    /// Reads that could not be (the account or the waybill is gone).
    pub skipped: u64,
    /// Reads whose decision would change.
    pub changed: u64,
    /// The changes, largest group first.
    pub changes: Vec<DecisionChange>,
    /// Seconds the replay took.
    pub seconds: f64,
}

/// What groups changed decisions: role, purpose, view before and after, rules before and after.
type GroupKey = (
    String,
    String,
    Option<wbg_core::View>,
    Option<wbg_core::View>,
    Vec<String>,
    Vec<String>,
);

/// One read as the audit log recorded it.
struct Read {
    seq: u64,
    time: Millis,
    account: String,
    waybill: String,
    purpose: Purpose,
    ticket: Option<String>,
    /// The read was its legal hold's custodian's, for the hold (it passed the hold check, which recorded it).
    in_hold: bool,
}

impl Guard {
    /// Replays the reads of the last `days` days (1-90) under the policy in force and under stored version `v`
    /// (see the module doc). For admins and auditors; audited.
    pub fn replay_policy(
        &self,
        actor: Actor<'_>,
        v: u64,
        days: u32,
        meta: &RequestMeta,
    ) -> Result<ReplayReport, GuardError> {
        let (_, mut e) = self.overseer(actor, "policy_replay", meta)?;
        if !(1..=90).contains(&days) {
            return Err(GuardError::Invalid("days must be 1-90".into()));
        }
        let started = std::time::Instant::now();
        let proposal = self.policy_version_text(v)?;
        let new = self
            .policy()
            .with_policy_text(&format!("policy v{v}"), &proposal)
            .map_err(|err| GuardError::Conflict(format!("version {v} does not validate: {err}")))?;
        let old = self.policy();
        let reads = self.reads_since(self.clock.now() - i64::from(days) * DAY_MS)?;
        let mut report = replay(&old, &new, &reads, self)?;
        report.version = v;
        report.days = days;
        report.seconds = started.elapsed().as_secs_f64();
        e.detail = Some(format!(
            "version={v} days={days} replayed={} changed={}",
            report.replayed, report.changed
        ));
        self.store.append_audit(e)?;
        Ok(report)
    }

    /// The guarded reads recorded since `cutoff`, oldest first.
    fn reads_since(&self, cutoff: Millis) -> Result<Vec<Read>, GuardError> {
        let mut reads = Vec::new();
        self.entries_since(cutoff, |seq, e| {
            if e.action != "view" {
                return;
            }
            let (Some(waybill), Some(Ok(purpose))) =
                (e.waybill, e.purpose.as_deref().map(Purpose::parse))
            else {
                return;
            };
            let ticket = e.detail.as_deref().and_then(|d| {
                d.split("; ")
                    .find_map(|part| part.strip_prefix("ticket="))
                    .map(str::to_owned)
            });
            let parts = || e.detail.as_deref().unwrap_or_default().split("; ");
            let in_hold = purpose == Purpose::LegalHold
                && parts().any(|p| p.starts_with("hold="))
                && !parts().any(|p| p == "legal_hold");
            reads.push(Read {
                seq,
                time: e.time,
                account: e.account,
                waybill,
                purpose,
                ticket,
                in_hold,
            });
        })?;
        reads.sort_by_key(|r| r.seq);
        Ok(reads)
    }
}

/// Reads decided per parallel pass.
const CHUNK: usize = 50_000;

/// One read to decide again, with everything the policy sees rebuilt.
struct Job<'a> {
    seq: u64,
    account: &'a Account,
    purpose: Purpose,
    at: Millis,
    has_ticket: bool,
    in_hold: bool,
    facts: TicketFacts,
    then: WaybillMeta,
    exception: Option<OutletId>,
}

/// Decides `jobs` under both policies — in parallel, one part per core, each with its own memo of decisions
/// made (`memos`, one per part, kept from chunk to chunk): the decisions are independent, and everything
/// order-dependent (ticket reads) was settled when the jobs were made — and adds the changed ones to `groups`
/// in read order. Returns how many changed.
fn decide(
    old: &PolicyEngine,
    new: &PolicyEngine,
    jobs: &[Job<'_>],
    memos: &mut [ReplayMemo],
    groups: &mut BTreeMap<GroupKey, (u64, Vec<u64>)>,
) -> Result<u64, GuardError> {
    type Changed = Vec<(usize, wbg_policy::ViewVerdict, wbg_policy::ViewVerdict)>;
    let part =
        |from: usize, jobs: &[Job<'_>], memo: &mut ReplayMemo| -> Result<Changed, GuardError> {
            let mut out = Vec::new();
            for (i, j) in jobs.iter().enumerate() {
                let ctx = ReadContext {
                    purpose: j.purpose,
                    now_secs: j.at.div_euclid(1000),
                    has_ticket: j.has_ticket,
                    in_incident: false,
                    in_hold: j.in_hold,
                    ticket: j.facts,
                    exception_outlet: j.exception.as_ref(),
                };
                let (before, after) = old.decide_view_pair(new, j.account, &j.then, &ctx, memo)?;
                if before.view != after.view {
                    out.push((from + i, before, after));
                }
            }
            Ok(out)
        };
    let size = jobs.len().div_ceil(memos.len()).max(1);
    let parts: Vec<Result<Changed, GuardError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(size)
            .zip(memos.iter_mut())
            .enumerate()
            .map(|(k, (chunk, memo))| scope.spawn(move || part(k * size, chunk, memo)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(GuardError::internal("a replay thread failed")))
            })
            .collect()
    });
    let mut changed = 0;
    for part in parts {
        for (i, before, after) in part? {
            let j = &jobs[i];
            changed += 1;
            let g = groups
                .entry((
                    j.account.role.as_str().to_owned(),
                    j.purpose.as_str().to_owned(),
                    before.view,
                    after.view,
                    before.policies,
                    after.policies,
                ))
                .or_default();
            g.0 += 1;
            if g.1.len() < SAMPLES {
                g.1.push(j.seq);
            }
        }
    }
    Ok(changed)
}

/// `wb` as it was at `at`, by its scan events; and where its exception was registered, if it was in one.
pub(crate) fn as_of(
    wb: &WaybillMeta,
    events: &[EventRecord],
    at: Millis,
) -> (WaybillMeta, Option<OutletId>) {
    let mut then = WaybillMeta {
        status: WaybillStatus::Created,
        courier: None,
        updated_at: wb.created_at,
        signed_at: None,
        ..wb.clone()
    };
    let mut exception = None;
    for ev in events.iter().filter(|ev| ev.at <= at) {
        then.status = ev.event.kind.status();
        then.updated_at = ev.at;
        match ev.event.kind {
            EventType::OutForDelivery => then.courier = ev.event.courier.clone(),
            EventType::Signed => then.signed_at = Some(ev.at),
            EventType::Exception => exception = Some(ev.event.outlet.clone()),
            _ => {}
        }
    }
    let exception = (then.status == WaybillStatus::Exception)
        .then_some(exception)
        .flatten();
    (then, exception)
}

fn replay(
    old: &PolicyEngine,
    new: &PolicyEngine,
    reads: &[Read],
    guard: &Guard,
) -> Result<ReplayReport, GuardError> {
    let accounts: HashMap<String, Account> = guard
        .store
        .accounts()?
        .into_iter()
        .map(|a| (a.id.to_string(), a))
        .collect();
    let mut waybills: HashMap<String, Option<(WaybillMeta, Vec<EventRecord>)>> = HashMap::new();
    let mut tickets: HashMap<String, Option<ServiceTicket>> = HashMap::new();
    let mut ticket_reads: HashMap<String, u32> = HashMap::new();
    let mut groups: BTreeMap<GroupKey, (u64, Vec<u64>)> = BTreeMap::new();
    // Reads whose applicable rules the proposal leaves as they are cannot change: they are counted, not decided.
    let mut unchanged: HashMap<(wbg_core::Role, bool), bool> = HashMap::new();
    let (mut replayed, mut skipped, mut changed) = (0u64, 0u64, 0u64);
    let mut jobs: Vec<Job<'_>> = Vec::with_capacity(CHUNK.min(reads.len()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut memos: Vec<ReplayMemo> = (0..threads).map(|_| ReplayMemo::default()).collect();
    for r in reads {
        let Some(account) = accounts.get(&r.account) else {
            skipped += 1;
            continue;
        };
        let full = r.purpose.may_need_full();
        let same = *unchanged
            .entry((account.role, full))
            .or_insert_with(|| old.same_view_rules(new, account.role, full));
        // (A read naming a ticket is decided all the same: it counts towards its ticket's reads, which a later
        // read under the ticket, by a role whose rules did change, is decided with.)
        if same && r.ticket.is_none() {
            replayed += 1;
            continue;
        }
        let Ok(no) = WaybillNo::parse(&r.waybill) else {
            skipped += 1;
            continue;
        };
        if !waybills.contains_key(&r.waybill) {
            let found = match guard.store.waybill(&no)? {
                Some((meta, _)) => Some((meta, guard.store.events(&no)?)),
                None => None,
            };
            waybills.insert(r.waybill.clone(), found);
        }
        let Some((wb, events)) = &waybills[&r.waybill] else {
            skipped += 1;
            continue;
        };
        let (then, exception) = as_of(wb, events, r.time);
        let mut facts = TicketFacts::default();
        let mut counts_under = None;
        if let Some(id) = &r.ticket {
            if !tickets.contains_key(id) {
                tickets.insert(id.clone(), guard.store.ticket(id)?);
            }
            if let Some(t) = &tickets[id] {
                facts.open_for_waybill = t.opened_at <= r.time
                    && t.closed_at.is_none_or(|c| c > r.time)
                    && t.waybills.contains(&no);
                facts.assigned_elsewhere = t.assignee.as_ref().is_some_and(|a| *a != account.id);
                facts.reads = ticket_reads.get(id).copied().unwrap_or(0);
                if facts.open_for_waybill && !facts.assigned_elsewhere {
                    counts_under = Some(id.clone());
                }
            }
        }
        if let Some(id) = counts_under {
            *ticket_reads.entry(id).or_default() += 1;
        }
        replayed += 1;
        jobs.push(Job {
            seq: r.seq,
            account,
            purpose: r.purpose,
            at: r.time,
            has_ticket: r.ticket.is_some(),
            in_hold: r.in_hold,
            facts,
            then,
            exception,
        });
        if jobs.len() == CHUNK {
            changed += decide(old, new, &jobs, &mut memos, &mut groups)?;
            jobs.clear();
        }
    }
    changed += decide(old, new, &jobs, &mut memos, &mut groups)?;
    let mut changes: Vec<DecisionChange> = groups
        .into_iter()
        .map(
            |((role, purpose, from, to, rules_before, rules_after), (count, samples))| {
                DecisionChange {
                    role,
                    purpose,
                    from: from.map(|v| v.as_str().to_owned()),
                    to: to.map(|v| v.as_str().to_owned()),
                    rules_before,
                    rules_after,
                    count,
                    samples,
                }
            },
        )
        .collect();
    changes.sort_by_key(|c| std::cmp::Reverse(c.count));
    Ok(ReplayReport {
        version: 0,
        days: 0,
        replayed,
        skipped,
        changed,
        changes,
        seconds: 0.0,
    })
}
