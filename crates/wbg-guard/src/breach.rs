//! Breach impact: for an incident (the suspects an attribution named and a time window), which customers were
//! exposed, which of their fields, where they live (counts by region) and what happened when — read from the
//! audit log itself, not from the derived access index. The report names waybills, accounts and counts, never a
//! person; the list of people to notify is a second step, produced through the policy with the purpose
//! `breach_notification` by an account allowed to see them (customer service), and audited read by read.
use crate::guard::Guard;
use crate::{Actor, GuardError, RequestMeta};
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use wbg_audit::AuditEntry;
use wbg_core::{Purpose, WaybillNo};
use wbg_policy::{AdminAction, ReadContext};
use wbg_vault::Field;

/// Most suspects one incident names.
pub const MAX_SUSPECTS: usize = 50;
/// Most waybills one incident may cover; a larger exposure is split into several windows.
pub const MAX_INCIDENT_WAYBILLS: usize = 500_000;
/// The case-file kind incidents are kept under.
pub(crate) const KIND: &str = "incident";
/// How far out of order audit times may be (several guard nodes' clocks): the scan reads this far past the
/// window's end before it stops.
const CLOCK_SLACK_MS: i64 = 5 * 60_000;
/// Audit entries read per batch.
const BATCH: usize = 10_000;

/// `[incidents]`: how incidents are opened.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentConfig {
    /// Longest window one incident covers, in days (1-3,650; default 92): a wider one is refused, so that an
    /// incident is about what happened, not a trawl through everything a suspect ever did.
    pub max_window_days: u32,
    /// Hours from an incident's opening within which the provincial cyberspace administration must have the report,
    /// when its grade calls for one (1-168; default 4).
    pub report_hours: u32,
    /// People exposed from which an incident is graded `larger` (较大; default 1,000,000).
    pub larger_people: u64,
    /// … `major` (重大; default 10,000,000).
    pub major_people: u64,
    /// … `especially_major` (特别重大; default 100,000,000).
    pub especially_major_people: u64,
    /// The lowest grade that is reported to the regulator (`general`, `larger`, `major`, `especially_major`;
    /// default `larger`).
    pub report_from_grade: String,
    /// `[incidents.contact]`: who the owed reports say is speaking, and the number people call.
    pub contact: crate::reports::ReportContact,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            max_window_days: 92,
            report_hours: 4,
            larger_people: 1_000_000,
            major_people: 10_000_000,
            especially_major_people: 100_000_000,
            report_from_grade: "larger".into(),
            contact: Default::default(),
        }
    }
}

/// Incident grades, least first.
pub const INCIDENT_GRADES: &[&str] = &["general", "larger", "major", "especially_major"];

impl IncidentConfig {
    /// The grade of an incident that exposed `people`.
    pub fn grade(&self, people: u64) -> &'static str {
        if people >= self.especially_major_people {
            "especially_major"
        } else if people >= self.major_people {
            "major"
        } else if people >= self.larger_people {
            "larger"
        } else {
            "general"
        }
    }

    /// When the regulator's report is due for an incident of `grade` opened at `opened`, if one is.
    pub fn report_due(&self, grade: &str, opened: i64) -> Option<i64> {
        let rank = |g: &str| INCIDENT_GRADES.iter().position(|x| *x == g);
        (rank(grade)? >= rank(&self.report_from_grade)?)
            .then(|| opened + i64::from(self.report_hours) * 3_600_000)
    }
}

/// Why an incident is closed, or opened again.
pub const INCIDENT_REASONS: &[(&str, &[&str])] = &[
    (
        "closed",
        &["notified", "no_exposure", "duplicate", "referred_to_police"],
    ),
    ("open", &["new_evidence", "reopened"]),
];

/// One change of an incident's state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IncidentChange {
    /// When (ms).
    pub at: i64,
    /// The auditor who made it.
    pub by: String,
    /// The state it moved to: `open` or `closed`.
    pub state: String,
    /// The reason code.
    pub reason: String,
    /// A note, as stored (sealed: it may name people); opened when the incident is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A request to close or reopen an incident.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentStateChange {
    /// Closing: `notified`, `no_exposure`, `duplicate`, `referred_to_police`; reopening: `new_evidence`,
    /// `reopened`.
    pub reason: String,
    /// A note (at most 500 printable characters, no phone number).
    #[serde(default)]
    pub note: Option<String>,
}

fn open_state() -> String {
    "open".into()
}

/// An incident to assess: who, and when.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    /// Accounts (and `export:<id>` files) the exposure is blamed on.
    pub suspects: Vec<String>,
    /// From (inclusive): ms since the epoch, or ISO 8601 (`2026-12-01T00:00:00+08:00`; without an offset, China
    /// Standard Time), `now`, `now-7d`…
    #[serde(deserialize_with = "wbg_core::when::deserialize")]
    #[schema(value_type = String)]
    pub from: i64,
    /// …to (exclusive), as `from`.
    #[serde(deserialize_with = "wbg_core::when::deserialize")]
    #[schema(value_type = String)]
    pub to: i64,
}

/// Customers counted in one region.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RegionCount {
    /// Province.
    pub province: String,
    /// City.
    pub city: String,
    /// Distinct customers (recipients, by phone) exposed.
    pub customers: usize,
    /// Of those, exposed in full.
    pub customers_full: usize,
}

/// What one suspect was shown in the window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SuspectImpact {
    /// Account id or `export:<id>`.
    pub principal: String,
    /// Allowed personal-data reads (and export rows).
    pub exposures: u64,
    /// Distinct waybills shown in full.
    pub waybills_full: usize,
    /// Distinct waybills shown masked only.
    pub waybills_masked: usize,
    /// First exposure (ms), if any.
    pub first: Option<i64>,
    /// Latest exposure (ms), if any.
    pub last: Option<i64>,
    /// Risk alerts raised on it in the window.
    pub alerts: usize,
    /// When it was suspended in the window, if it was.
    pub suspended_at: Option<i64>,
    /// Of its exposures, those its registered work called for: granted by a rule that asks for work (a ticket, an
    /// open exception, its own delivery, …) or a courier's look at its own parcel while delivering it.
    #[serde(default)]
    pub exposures_work: u64,
    /// Those beyond it: what the incident is about.
    #[serde(default)]
    pub exposures_beyond: u64,
    /// Distinct waybills it was shown beyond its work.
    #[serde(default)]
    pub waybills_beyond: usize,
}

/// One waybill the incident exposed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AffectedWaybill {
    /// The waybill.
    pub waybill_no: String,
    /// `full` or `masked`: the most it was shown.
    pub exposure: String,
    /// The fields shown, as the audit log names them (`recipient.phone`, `recipient.phone:masked`, …).
    pub fields: Vec<String>,
    /// First exposure (ms).
    pub first_exposed: i64,
    /// Latest exposure (ms).
    pub last_exposed: i64,
    /// Who was shown it.
    pub exposed_to: Vec<String>,
    /// Shown at least once beyond the work of whoever saw it (reports made before the split count every
    /// waybill as beyond).
    #[serde(default = "beyond_default")]
    pub beyond_work: bool,
}

fn beyond_default() -> bool {
    true
}

fn general_grade() -> String {
    "general".into()
}

/// One moment of the incident.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    /// When (ms).
    pub at: i64,
    /// Whose.
    pub principal: String,
    /// `first_exposure`, `alert`, `suspended`, `last_exposure`.
    pub event: String,
    /// The alert kind and severity, or the number of exposures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Exposures of one day.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DayCount {
    /// The day (China Standard Time), `YYYY-MM-DD`.
    pub day: String,
    /// Reads that showed a full record.
    pub full: u64,
    /// Reads that showed a masked one.
    pub masked: u64,
}

/// A breach-impact report. It names waybills, accounts, regions and counts — never a person.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ImpactReport {
    /// The incident's id (`INC-` and 12 hex digits): the notification list is asked for by it.
    pub incident: String,
    /// The suspects, as asked.
    pub suspects: Vec<String>,
    /// Window start (ms).
    pub from: i64,
    /// Window end (ms, exclusive).
    pub to: i64,
    /// Who made the report.
    pub created_by: String,
    /// When (ms).
    pub created_at: i64,
    /// Audit entries read.
    pub entries_scanned: u64,
    /// Allowed personal-data reads (and export rows) by the suspects in the window.
    pub exposures: u64,
    /// Distinct waybills exposed.
    pub waybills: usize,
    /// Of those, exposed in full.
    pub waybills_full: usize,
    /// Distinct customers (recipients, by phone) exposed.
    pub customers: usize,
    /// Of those, exposed in full: the ones to notify first.
    pub customers_full: usize,
    /// Distinct waybills exposed beyond the suspects' work: the notification list's default.
    #[serde(default)]
    pub waybills_beyond_work: usize,
    /// Distinct customers on those.
    #[serde(default)]
    pub customers_beyond_work: usize,
    /// The grade the customers exposed give it (`general`, `larger`, `major`, `especially_major`; see
    /// `[incidents]`).
    #[serde(default = "general_grade")]
    pub grade: String,
    /// When the report to the provincial cyberspace administration is due (`[incidents] report_hours` after the
    /// incident was opened), when its grade calls for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regulator_report_due: Option<i64>,
    /// Per field, the distinct waybills it was shown on.
    pub fields: BTreeMap<String, usize>,
    /// Customers by region, most first.
    pub by_region: Vec<RegionCount>,
    /// Per suspect.
    pub per_suspect: Vec<SuspectImpact>,
    /// What happened when, oldest first.
    pub timeline: Vec<TimelineEvent>,
    /// Exposures per day.
    pub daily: Vec<DayCount>,
    /// Every exposed waybill.
    pub affected: Vec<AffectedWaybill>,
    /// This report's own audit entry (given when the report is made, not when it is read back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
    /// `open` until an auditor closes it (with a reason); it may be reopened.
    #[serde(default = "open_state")]
    pub state: String,
    /// Its closings and reopenings, oldest first.
    #[serde(default)]
    pub changes: Vec<IncidentChange>,
}

/// An incident in a list.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IncidentSummary {
    /// Its id.
    pub incident: String,
    /// `open` or `closed`.
    pub state: String,
    /// The suspects.
    pub suspects: Vec<String>,
    /// Window start (ms).
    pub from: i64,
    /// Window end (ms, exclusive).
    pub to: i64,
    /// Who opened it.
    pub created_by: String,
    /// When (ms).
    pub created_at: i64,
    /// Allowed personal-data reads by the suspects in the window.
    pub exposures: u64,
    /// Distinct waybills exposed.
    pub waybills: usize,
    /// Distinct customers exposed.
    pub customers: usize,
    /// Of those, exposed in full.
    pub customers_full: usize,
    /// Its grade.
    pub grade: String,
    /// When the regulator's report is due, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regulator_report_due: Option<i64>,
}

fn incident_note_context(id: &str) -> String {
    format!("incident-note/{id}")
}

/// One customer to notify.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Notice {
    /// The person's name (as the newest of their exposed waybills gives it).
    pub name: String,
    /// Their phone: one notice per phone, whichever side of the parcels they were on.
    pub phone: String,
    /// `recipient`, `sender` or both: their part in the exposed waybills.
    pub parties: Vec<String>,
    /// `full` or `masked`: the most of them that was exposed.
    pub exposure: String,
    /// The fields exposed, across their waybills.
    pub fields: Vec<String>,
    /// Their exposed waybills.
    pub waybills: Vec<String>,
    /// First exposure (ms).
    pub first_exposed: i64,
    /// The text message to send them, filled in (Chinese, at most 70 characters; their name masked).
    pub sms: String,
    /// The same in English.
    pub sms_en: String,
}

/// The notification list of an incident.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    /// The incident.
    pub incident: String,
    /// One notice per person (recipients and senders), those exposed in full first.
    pub notices: Vec<Notice>,
    /// Waybills the policy did not open for this account (not counted in `notices`).
    pub withheld: usize,
    /// The first of this list's audit entries (one per waybill read).
    pub first_audit_seq: Option<u64>,
}

/// Whom a notification list covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyScope {
    /// The people on waybills shown beyond the suspects' work (the default).
    #[default]
    BeyondWork,
    /// Everyone the incident counts, the suspects' own work included.
    All,
}

impl NotifyScope {
    /// `beyond_work` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyScope::BeyondWork => "beyond_work",
            NotifyScope::All => "all",
        }
    }
}

/// What one suspect was shown, while the log is read.
#[derive(Default)]
struct Shown {
    reads: u64,
    work: u64,
    beyond: HashSet<String>,
    full: HashSet<String>,
    masked: HashSet<String>,
    first: Option<i64>,
    last: Option<i64>,
}

/// How one waybill was exposed, while the log is read.
#[derive(Default)]
struct Exposure {
    full: bool,
    beyond: bool,
    fields: std::collections::BTreeSet<String>,
    first: i64,
    last: i64,
    to: std::collections::BTreeSet<String>,
}

pub(crate) fn valid_incident_id(id: &str) -> bool {
    id.len() == 16 && id.starts_with("INC-") && id[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// How long after a parcel is signed for its courier's reads of it are still the delivery (the policy's own window
/// for the courier's full view).
const DELIVERY_WINDOW_MS: i64 = 2 * 3_600_000;

/// The policy rules that grant a view only against registered work: an open ticket, an open exception at the
/// account's outlet, a breach notification, a merchant's own after-sale work, a courier's delivery in its
/// window, a print station's label.
const WORK_RULES: &[&str] = &[
    "courier-full-own-delivery",
    "staff-full-open-exception-own-outlet",
    "cs-full-with-registered-ticket",
    "cs-full-breach-notification",
    "merchant-full-own-after-sale",
    "merchant-masked-own",
    "print-station-label",
];

/// Whether the read `e` (an exposure to `account`) was one its work called for: granted by a rule that asks for
/// registered work ([`WORK_RULES`], named in the entry's `policy=` detail), or a courier's look at its own
/// parcel while delivering it (until two hours after it was signed for). Everything else an account's scope
/// let it see — a courier's or a clerk's masked browsing of its outlet, an agent's masked look without a ticket,
/// an export file — is beyond its work: that is what a leak is made of.
pub(crate) fn work_required(
    e: &AuditEntry,
    account: Option<&wbg_core::Account>,
    wb: Option<&wbg_core::WaybillMeta>,
) -> bool {
    let granted_for_work = e
        .detail
        .as_deref()
        .into_iter()
        .flat_map(|d| d.split([' ', ';']))
        .filter_map(|w| w.strip_prefix("policy="))
        .flat_map(|rules| rules.split(','))
        .any(|r| WORK_RULES.contains(&r));
    if granted_for_work {
        return true;
    }
    match (account, wb) {
        (Some(a), Some(w)) if a.role == wbg_core::Role::Courier => {
            w.courier.as_ref() == Some(&a.id)
                && w.signed_at.is_none_or(|t| e.time <= t + DELIVERY_WINDOW_MS)
        }
        _ => false,
    }
}

/// `YYYY-MM-DD` (China Standard Time) of a time in ms.
fn day_of(ms: i64) -> String {
    wbg_core::when::display(ms)[..10].to_owned()
}

/// The principal an audit entry shows personal data to, and whether in full: an allowed masked or full read,
/// or an export row (the file).
fn exposure_of(e: &AuditEntry) -> Option<(String, bool)> {
    wbg_forensics::Access::from_entry(e)
        .map(|a| (a.principal, a.shown == wbg_forensics::Shown::Full))
}

impl Guard {
    /// Takes the `[incidents]` settings.
    pub fn with_incidents(mut self, cfg: &IncidentConfig) -> Result<Guard, GuardError> {
        if !(1..=3_650).contains(&cfg.max_window_days) {
            return Err(GuardError::Config(
                "[incidents] max_window_days must be 1-3650".into(),
            ));
        }
        if !(1..=168).contains(&cfg.report_hours) {
            return Err(GuardError::Config(
                "[incidents] report_hours must be 1-168".into(),
            ));
        }
        if !(1 <= cfg.larger_people
            && cfg.larger_people <= cfg.major_people
            && cfg.major_people <= cfg.especially_major_people)
        {
            return Err(GuardError::Config(
                "[incidents] larger_people <= major_people <= especially_major_people, all at least 1".into(),
            ));
        }
        if !INCIDENT_GRADES.contains(&cfg.report_from_grade.as_str()) {
            return Err(GuardError::Config(format!(
                "[incidents] report_from_grade must be one of {}",
                INCIDENT_GRADES.join(", ")
            )));
        }
        self.incidents = cfg.clone();
        Ok(self)
    }

    /// `[incidents.contact]`, for the owed reports.
    pub fn incident_contact(&self) -> &crate::reports::ReportContact {
        &self.incidents.contact
    }

    /// The first audit seq whose entry is at or after `at` (entries are appended in time order, give or take
    /// clock slack).
    fn audit_seq_at(&self, at: i64, size: u64) -> Result<u64, GuardError> {
        let (mut lo, mut hi) = (0u64, size);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let bytes = self
                .store
                .audit_entry(mid)?
                .ok_or_else(|| GuardError::internal(format!("audit entry {mid} missing")))?;
            let e = AuditEntry::decode(&bytes)
                .map_err(|e| GuardError::internal_from(format!("audit entry {mid}"), e))?;
            if e.time < at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Assesses an incident and opens it: reads the audit log over the window for every exposure to the
    /// suspects, counts customers and regions (decrypting only the recipient's phone and region, inside the
    /// guard, for the counts), and keeps the list of exposed waybills for the notification list. Auditors only;
    /// audited.
    pub fn breach_impact(
        &self,
        actor: Actor<'_>,
        req: &IncidentRequest,
        meta: &RequestMeta,
    ) -> Result<ImpactReport, GuardError> {
        let (who, mut entry) =
            self.admin(actor, AdminAction::Investigate, "breach_impact", meta)?;
        let mut suspects: Vec<String> = Vec::new();
        for (i, s) in req.suspects.iter().enumerate() {
            // Only what exists is recorded in the incident and its audit entry: free text named as a suspect
            // (a phone number, say) is refused without being echoed.
            let ok = match s.strip_prefix("export:") {
                Some(id) => crate::export::valid_export_id(id) && self.export_origin(s).is_some(),
                None => match wbg_core::AccountId::parse(s) {
                    Ok(id) => self.store.account(&id)?.is_some(),
                    Err(_) => false,
                },
            };
            if !ok {
                return Err(GuardError::Invalid(format!(
                    "suspect {} (counting from 1) names no account and no export:<id> of this store",
                    i + 1
                )));
            }
            if !suspects.contains(s) {
                suspects.push(s.clone());
            }
        }
        if suspects.is_empty() || suspects.len() > MAX_SUSPECTS {
            return Err(GuardError::Invalid(format!(
                "name 1 to {MAX_SUSPECTS} suspects"
            )));
        }
        if req.from >= req.to {
            return Err(GuardError::Invalid(
                "the window must end after it starts".into(),
            ));
        }
        let most = i64::from(self.incidents.max_window_days) * 86_400_000;
        if req.to - req.from > most {
            return Err(GuardError::Invalid(format!(
                "the window spans more than {} days ([incidents] max_window_days): split it",
                self.incidents.max_window_days
            )));
        }
        let wanted: HashSet<&str> = suspects.iter().map(String::as_str).collect();
        let canaries = self.canary_numbers();
        let size = self.store.audit_size()?;
        let mut seq = self.audit_seq_at(req.from, size)?;
        let mut scanned = 0u64;
        let mut exposures = 0u64;
        let mut by_waybill: HashMap<String, Exposure> = HashMap::new();
        let mut accounts: HashMap<String, Option<wbg_core::Account>> = HashMap::new();
        let mut metas: HashMap<String, Option<wbg_core::WaybillMeta>> = HashMap::new();
        let mut per: HashMap<&str, Shown> = HashMap::new();
        let mut suspended: HashMap<String, i64> = HashMap::new();
        let mut daily: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        'scan: while seq < size {
            let batch = self.store.audit_entries(seq, BATCH)?;
            if batch.is_empty() {
                break;
            }
            for stored in batch {
                seq = stored.seq + 1;
                let e = AuditEntry::decode(&stored.bytes).map_err(|err| {
                    GuardError::internal_from(format!("audit entry {}", stored.seq), err)
                })?;
                scanned += 1;
                if e.time >= req.to.saturating_add(CLOCK_SLACK_MS) {
                    break 'scan;
                }
                if e.time < req.from || e.time >= req.to {
                    continue;
                }
                if e.action == "account_suspend" {
                    if let Some(a) = e.detail.as_deref().and_then(|d| d.strip_prefix("account=")) {
                        if wanted.contains(a) {
                            suspended.entry(a.to_owned()).or_insert(e.time);
                        }
                    }
                    continue;
                }
                let Some((principal, full)) = exposure_of(&e) else {
                    continue;
                };
                // An export row exposes its file, and the account that downloaded it.
                let Some(&p) = wanted
                    .get(principal.as_str())
                    .or_else(|| wanted.get(e.account.as_str()))
                else {
                    continue;
                };
                // Canaries are nobody's data: never counted, never on a notification list.
                let Some(no) = e.waybill.clone().filter(|no| !canaries.contains(no)) else {
                    continue;
                };
                exposures += 1;
                // An export file is the leak itself; an account's read is weighed against its work.
                let required = !p.starts_with("export:") && {
                    let account = match accounts.get(p) {
                        Some(a) => a.clone(),
                        None => {
                            let a = wbg_core::AccountId::parse(p)
                                .ok()
                                .map(|id| self.store.account(&id))
                                .transpose()?
                                .flatten();
                            accounts.insert(p.to_owned(), a.clone());
                            a
                        }
                    };
                    let meta = match metas.get(&no) {
                        Some(m) => m.clone(),
                        None => {
                            let m = WaybillNo::parse(&no)
                                .ok()
                                .map(|n| self.store.waybill(&n))
                                .transpose()?
                                .flatten()
                                .map(|(m, _)| m);
                            metas.insert(no.clone(), m.clone());
                            m
                        }
                    };
                    work_required(&e, account.as_ref(), meta.as_ref())
                };
                let d = daily.entry(day_of(e.time)).or_default();
                if full {
                    d.0 += 1;
                } else {
                    d.1 += 1;
                }
                let s = per.entry(p).or_default();
                s.reads += 1;
                if required {
                    s.work += 1;
                } else {
                    s.beyond.insert(no.clone());
                }
                if full { &mut s.full } else { &mut s.masked }.insert(no.clone());
                s.first = Some(s.first.map_or(e.time, |t| t.min(e.time)));
                s.last = Some(s.last.map_or(e.time, |t| t.max(e.time)));
                if !by_waybill.contains_key(&no) && by_waybill.len() >= MAX_INCIDENT_WAYBILLS {
                    return Err(GuardError::TooLarge(format!(
                        "the incident exposed more than {MAX_INCIDENT_WAYBILLS} waybills; split the window"
                    )));
                }
                let x = by_waybill.entry(no).or_insert_with(|| Exposure {
                    first: e.time,
                    last: e.time,
                    ..Exposure::default()
                });
                x.full |= full;
                x.beyond |= !required;
                x.fields.extend(e.fields.iter().cloned());
                x.first = x.first.min(e.time);
                x.last = x.last.max(e.time);
                x.to.insert(p.to_owned());
            }
        }
        // Customers and regions: the recipient's phone (as a blind token, never kept) and region.
        let blind = self.vault.blind();
        let mut customers: HashMap<[u8; 16], bool> = HashMap::new();
        let mut customers_beyond: HashSet<[u8; 16]> = HashSet::new();
        let mut regions: HashMap<(String, String), HashMap<[u8; 16], bool>> = HashMap::new();
        for (no, x) in &by_waybill {
            let Ok(parsed) = WaybillNo::parse(no) else {
                continue;
            };
            // A waybill whose personal data retention destroyed still counts as exposed, but not as a customer.
            let Some((wb, sealed)) = self
                .store
                .waybill(&parsed)?
                .filter(|(w, _)| !self.is_shredded(w.bucket))
            else {
                continue;
            };
            let opened: HashMap<Field, String> = self
                .vault
                .open_fields(
                    &parsed,
                    wb.bucket,
                    &sealed,
                    &[Field::RecipientPhone, Field::RecipientRegion],
                )?
                .into_iter()
                .collect();
            let Some(token) = opened
                .get(&Field::RecipientPhone)
                .and_then(|p| blind.phone(p))
            else {
                continue;
            };
            *customers.entry(token).or_default() |= x.full;
            if x.beyond {
                customers_beyond.insert(token);
            }
            let (province, city, _) = opened
                .get(&Field::RecipientRegion)
                .and_then(|r| wbg_vault::split_region(r))
                .unwrap_or(("", "", ""));
            let key = (province.to_owned(), city.to_owned());
            *regions.entry(key).or_default().entry(token).or_default() |= x.full;
        }
        let mut by_region: Vec<RegionCount> = regions
            .into_iter()
            .map(|((province, city), c)| RegionCount {
                province,
                city,
                customers: c.len(),
                customers_full: c.values().filter(|f| **f).count(),
            })
            .collect();
        by_region.sort_by(|a, b| {
            b.customers
                .cmp(&a.customers)
                .then_with(|| (&a.province, &a.city).cmp(&(&b.province, &b.city)))
        });
        let mut fields: BTreeMap<String, usize> = BTreeMap::new();
        for x in by_waybill.values() {
            for f in &x.fields {
                *fields.entry(f.clone()).or_default() += 1;
            }
        }
        // The timeline: first and latest exposure, alerts and suspension, per suspect.
        let mut timeline = Vec::new();
        let mut per_suspect = Vec::new();
        for s in &suspects {
            let alerts: Vec<wbg_core::Alert> = match wbg_core::AccountId::parse(s) {
                Ok(_) => self
                    .store
                    .alerts(&wbg_store::AlertFilter {
                        account: Some(s.clone()),
                        since: Some(req.from),
                        limit: 10_000,
                        ..wbg_store::AlertFilter::default()
                    })?
                    .into_iter()
                    .filter(|a| a.at < req.to)
                    .collect(),
                Err(_) => Vec::new(),
            };
            // One line per alert kind: its first time, and how often.
            let mut kinds: BTreeMap<(String, String), (i64, usize)> = BTreeMap::new();
            for a in &alerts {
                let k = kinds
                    .entry((a.kind.clone(), a.severity.clone()))
                    .or_insert((a.at, 0));
                k.0 = k.0.min(a.at);
                k.1 += 1;
            }
            for ((kind, severity), (at, n)) in kinds {
                timeline.push(TimelineEvent {
                    at,
                    principal: s.clone(),
                    event: "alert".into(),
                    detail: Some(format!("{kind} ({severity}) ×{n}")),
                });
            }
            let Shown {
                reads: n,
                work,
                beyond,
                full,
                masked,
                first,
                last,
            } = per.remove(s.as_str()).unwrap_or_default();
            if let Some(at) = first {
                timeline.push(TimelineEvent {
                    at,
                    principal: s.clone(),
                    event: "first_exposure".into(),
                    detail: None,
                });
            }
            if let Some(at) = last {
                timeline.push(TimelineEvent {
                    at,
                    principal: s.clone(),
                    event: "last_exposure".into(),
                    detail: Some(format!("{n} exposures")),
                });
            }
            if let Some(at) = suspended.get(s) {
                timeline.push(TimelineEvent {
                    at: *at,
                    principal: s.clone(),
                    event: "suspended".into(),
                    detail: None,
                });
            }
            per_suspect.push(SuspectImpact {
                principal: s.clone(),
                exposures: n,
                waybills_masked: masked.difference(&full).count(),
                waybills_full: full.len(),
                first,
                last,
                alerts: alerts.len(),
                suspended_at: suspended.get(s).copied(),
                exposures_work: work,
                exposures_beyond: n - work,
                waybills_beyond: beyond.len(),
            });
        }
        timeline.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.principal.cmp(&b.principal)));
        let mut affected: Vec<AffectedWaybill> = by_waybill
            .into_iter()
            .map(|(no, x)| AffectedWaybill {
                waybill_no: no,
                exposure: if x.full { "full" } else { "masked" }.into(),
                fields: x.fields.into_iter().collect(),
                first_exposed: x.first,
                last_exposed: x.last,
                exposed_to: x.to.into_iter().collect(),
                beyond_work: x.beyond,
            })
            .collect();
        affected.sort_by(|a, b| {
            a.first_exposed
                .cmp(&b.first_exposed)
                .then_with(|| a.waybill_no.cmp(&b.waybill_no))
        });
        let incident = format!("INC-{:012x}", rand::thread_rng().gen::<u64>() >> 16);
        let mut report = ImpactReport {
            incident: incident.clone(),
            suspects,
            from: req.from,
            to: req.to,
            created_by: who.id.to_string(),
            created_at: entry.time,
            entries_scanned: scanned,
            exposures,
            waybills: affected.len(),
            waybills_full: affected.iter().filter(|a| a.exposure == "full").count(),
            customers: customers.len(),
            customers_full: customers.values().filter(|f| **f).count(),
            waybills_beyond_work: affected.iter().filter(|a| a.beyond_work).count(),
            customers_beyond_work: customers_beyond.len(),
            grade: self.incidents.grade(customers.len() as u64).to_owned(),
            regulator_report_due: self
                .incidents
                .report_due(self.incidents.grade(customers.len() as u64), entry.time),
            fields,
            by_region,
            per_suspect,
            timeline,
            daily: daily
                .into_iter()
                .map(|(day, (full, masked))| DayCount { day, full, masked })
                .collect(),
            affected,
            audit_seq: None,
            state: open_state(),
            changes: Vec::new(),
        };
        entry.detail = Some(format!(
            "incident={incident} suspects={} from={} to={} waybills={} customers={} \
             aggregated=recipient.phone,recipient.region",
            report.suspects.join(","),
            req.from,
            req.to,
            report.waybills,
            report.customers
        ));
        let body = serde_json::to_string(&report)
            .map_err(|e| GuardError::internal_from("incident unwritable", e))?;
        report.audit_seq = Some(self.store.put_case(KIND, &incident, &body, None, entry)?);
        metrics::counter!("wbguard_incidents_total").increment(1);
        Ok(report)
    }

    /// An incident's report, to accounts that may investigate.
    pub fn incident(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<ImpactReport, GuardError> {
        let (_, mut entry) = self.admin(actor, AdminAction::Investigate, "incident_read", meta)?;
        entry.detail = Some(format!("incident={id}"));
        match self.incident_case(id) {
            Ok(mut r) => {
                for c in &mut r.changes {
                    c.note = c.note.take().map(|n| {
                        self.open_text(&incident_note_context(&r.incident), &n)
                            .unwrap_or_else(|| {
                                "(a sealed note this store's keys do not open)".into()
                            })
                    });
                }
                Ok(r)
            }
            Err(err) => Err(self.deny(entry, err)),
        }
    }

    /// Closes (`open = false`) or reopens an incident, with a reason code the target state allows and an
    /// optional note (sealed), as a compare-and-set on the incident's file; auditors only; audited
    /// (`incident_close` / `incident_reopen`, `incident=… reason=…`, never the note's text).
    pub fn change_incident(
        &self,
        actor: Actor<'_>,
        id: &str,
        open: bool,
        change: &IncidentStateChange,
        meta: &RequestMeta,
    ) -> Result<ImpactReport, GuardError> {
        let name = if open {
            "incident_reopen"
        } else {
            "incident_close"
        };
        let (who, mut entry) = self.admin(actor, AdminAction::Investigate, name, meta)?;
        entry.detail = Some(format!("incident={id}"));
        let to = if open { "open" } else { "closed" };
        let checked = self.incident_file(id).and_then(|(r, before)| {
            let allowed = INCIDENT_REASONS
                .iter()
                .find(|(s, _)| *s == to)
                .map(|(_, codes)| *codes)
                .unwrap_or_default();
            if !allowed.contains(&change.reason.as_str()) {
                return Err(GuardError::Invalid(format!(
                    "reason must be one of {} to make an incident {to}",
                    allowed.join(", ")
                )));
            }
            if let Some(n) = &change.note {
                if n.chars().count() > 500
                    || n.chars().any(char::is_control)
                    || wbg_core::may_hold_phone(n)
                {
                    return Err(GuardError::Invalid(
                        "note must be at most 500 printable characters and hold no phone number"
                            .into(),
                    ));
                }
            }
            if r.state == to {
                return Err(GuardError::Conflict(format!(
                    "incident {id} is {to} already"
                )));
            }
            Ok((r, before))
        });
        let (report, before) = match checked {
            Ok(r) => r,
            Err(err) => return Err(self.deny(entry, err)),
        };
        let note = change
            .note
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| self.seal_text(&incident_note_context(id), n))
            .transpose()?;
        entry.detail = Some(format!(
            "incident={id} reason={}{}",
            change.reason,
            if note.is_some() { " note" } else { "" }
        ));
        let mut next = report;
        next.state = to.into();
        next.changes.push(IncidentChange {
            at: entry.time,
            by: who.id.to_string(),
            state: to.into(),
            reason: change.reason.clone(),
            note,
        });
        next.audit_seq = None;
        let body = serde_json::to_string(&next)
            .map_err(|e| GuardError::internal_from("incident unwritable", e))?;
        self.store.put_case(KIND, id, &body, Some(&before), entry)?;
        metrics::counter!("wbguard_incident_changes_total", "state" => to).increment(1);
        self.incident(actor, id, meta)
    }

    /// Every incident in brief, newest first (at most 1,000), to accounts that may investigate.
    pub fn incidents(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<IncidentSummary>, GuardError> {
        self.admin(actor, AdminAction::Investigate, "incident_list", meta)?;
        let mut out = Vec::new();
        for (id, body) in self.store.cases(KIND, 1_000)? {
            let r: ImpactReport = serde_json::from_str(&body)
                .map_err(|e| GuardError::internal_from(format!("{KIND} {id} unreadable"), e))?;
            out.push(IncidentSummary {
                incident: r.incident,
                state: r.state,
                suspects: r.suspects,
                from: r.from,
                to: r.to,
                created_by: r.created_by,
                created_at: r.created_at,
                exposures: r.exposures,
                waybills: r.waybills,
                customers: r.customers,
                customers_full: r.customers_full,
                grade: r.grade,
                regulator_report_due: r.regulator_report_due,
            });
        }
        out.sort_by(|a, b| (b.created_at, &b.incident).cmp(&(a.created_at, &a.incident)));
        Ok(out)
    }

    fn incident_case(&self, id: &str) -> Result<ImpactReport, GuardError> {
        Ok(self.incident_file(id)?.0)
    }

    /// An incident's report and its file's body as stored (for a compare-and-set).
    fn incident_file(&self, id: &str) -> Result<(ImpactReport, String), GuardError> {
        if !valid_incident_id(id) {
            return Err(GuardError::Invalid(
                "an incident id is INC- and 12 hex digits".into(),
            ));
        }
        self.case_file(KIND, id)
    }

    /// The people to notify of an incident: each exposed waybill's recipient name and phone, for an account the
    /// policy lets see them in full for `breach_notification` on a waybill the incident lists (customer
    /// service). Every waybill opened is an audit entry of its own (`breach_notify`, purpose
    /// `breach_notification`, `incident=<id>`), written before anything is decrypted. The risk engine does not see these reads: the
    /// incident, opened by an auditor, is what sanctions them.
    pub fn notification_list(
        &self,
        token: &str,
        id: &str,
        scope: NotifyScope,
        meta: &RequestMeta,
    ) -> Result<NotificationList, GuardError> {
        let account = self.authenticate(token)?;
        let mut e = self.entry(account.id.as_str(), meta, "breach_notification_list");
        e.purpose = Some(Purpose::BreachNotification.as_str().into());
        e.detail = Some(format!("incident={id} scope={}", scope.as_str()));
        self.require_active(&account, &e)?;
        let report = match self.incident_case(id) {
            Ok(r) => r,
            Err(err) => return Err(self.deny(e, err)),
        };
        let ctx = ReadContext {
            purpose: Purpose::BreachNotification,
            now_secs: e.time.div_euclid(1000),
            has_ticket: false,
            in_incident: true,
            in_hold: false,
            ticket: wbg_policy::TicketFacts::default(),
            exception_outlet: None,
        };
        let mut opened_rows = Vec::new();
        let mut entries = Vec::new();
        // The first waybill the list opens: what the engine is shown for the fetch.
        let mut first_opened: Option<wbg_core::WaybillMeta> = None;
        let mut withheld = 0;
        let chosen = report
            .affected
            .iter()
            .filter(|a| scope == NotifyScope::All || a.beyond_work);
        let mut any = false;
        for a in chosen {
            any = true;
            let Ok(no) = WaybillNo::parse(&a.waybill_no) else {
                withheld += 1;
                continue;
            };
            // Gone (or its personal data destroyed by retention): nobody left to reach through it.
            let Some((wb, sealed)) = self
                .store
                .waybill(&no)?
                .filter(|(w, _)| !self.is_shredded(w.bucket))
            else {
                withheld += 1;
                continue;
            };
            let verdict = self.policy().decide_view(&account, &wb, &ctx)?;
            if verdict.view != Some(wbg_core::View::Full) {
                withheld += 1;
                continue;
            }
            // Its own action, not `view`: the access index (and so attribution and later incidents) leaves these
            // out, or re-attributing the very leak that opened the incident would find the agent who notified
            // its victims holding exactly the leaked set.
            let mut r = self.entry(account.id.as_str(), meta, "breach_notify");
            r.waybill = Some(a.waybill_no.clone());
            r.purpose = Some(Purpose::BreachNotification.as_str().into());
            r.view = Some("full".into());
            // The sender is told too wherever a read showed any of the sender's fields.
            let sender = a.fields.iter().any(|f| f.starts_with("sender."));
            r.fields = vec!["recipient.name".into(), "recipient.phone".into()];
            if sender {
                r.fields
                    .extend(["sender.name".to_owned(), "sender.phone".to_owned()]);
            }
            r.detail = Some(format!(
                "incident={id}; policy={}",
                verdict.policies.join(",")
            ));
            entries.push(r);
            first_opened.get_or_insert_with(|| wb.clone());
            opened_rows.push((no, wb.bucket, sealed, a));
        }
        if !any {
            // Every exposure was the suspects' own work: nobody to tell unless asked for everyone.
            self.store.append_audit(e)?;
            return Ok(NotificationList {
                incident: id.to_owned(),
                notices: Vec::new(),
                withheld: 0,
                first_audit_seq: None,
            });
        }
        if opened_rows.is_empty() {
            return Err(self.deny(
                e,
                GuardError::Forbidden(
                    "the policy opens none of this incident's waybills to this account".into(),
                ),
            ));
        }
        // The list is names and phones in clear: the engine meters each fetch like a full read (one read, so
        // an incident of any size can be notified), so pulling the list over and over is rate-limited, scored
        // and contained like any other bulk reading.
        if let Some(wb) = &first_opened {
            self.meter(&account, wb, Purpose::BreachNotification, &e, meta)?;
        }
        let first_audit_seq = Some(self.store.append_audit_batch(entries)?);
        let mut by_phone: HashMap<String, Notice> = HashMap::new();
        for (no, bucket, sealed, a) in opened_rows {
            let sender = a.fields.iter().any(|f| f.starts_with("sender."));
            let mut wanted = vec![Field::RecipientName, Field::RecipientPhone];
            if sender {
                wanted.extend([Field::SenderName, Field::SenderPhone]);
            }
            let f: HashMap<Field, String> = self
                .vault
                .open_fields(&no, bucket, &sealed, &wanted)?
                .into_iter()
                .collect();
            let parties = [
                ("recipient", Field::RecipientName, Field::RecipientPhone),
                ("sender", Field::SenderName, Field::SenderPhone),
            ];
            for (party, name_field, phone_field) in parties {
                let (Some(name), Some(phone)) = (f.get(&name_field), f.get(&phone_field)) else {
                    continue;
                };
                let prefix = format!("{party}.");
                let fields: Vec<&String> =
                    a.fields.iter().filter(|f| f.starts_with(&prefix)).collect();
                if fields.is_empty() {
                    continue;
                }
                let full = match party {
                    "recipient" => a.exposure == "full",
                    _ => fields.iter().any(|f| !f.ends_with(":masked")),
                };
                let n = by_phone.entry(phone.clone()).or_insert_with(|| Notice {
                    name: name.clone(),
                    phone: phone.clone(),
                    parties: Vec::new(),
                    exposure: "masked".into(),
                    fields: Vec::new(),
                    waybills: Vec::new(),
                    first_exposed: a.first_exposed,
                    sms: String::new(),
                    sms_en: String::new(),
                });
                if !n.parties.iter().any(|p| p == party) {
                    n.parties.push(party.to_owned());
                }
                if full {
                    n.exposure = "full".into();
                }
                for field in fields {
                    if !n.fields.contains(field) {
                        n.fields.push(field.clone());
                    }
                }
                if !n.waybills.contains(&a.waybill_no) {
                    n.waybills.push(a.waybill_no.clone());
                }
                n.first_exposed = n.first_exposed.min(a.first_exposed);
            }
        }
        let mut notices: Vec<Notice> = by_phone.into_values().collect();
        let contact = self.incident_contact();
        for n in &mut notices {
            n.fields.sort();
            n.parties.sort();
            n.waybills.sort();
            n.sms = report.sms_to(n, crate::Lang::Zh, contact);
            n.sms_en = report.sms_to(n, crate::Lang::En, contact);
        }
        notices.sort_by(|a, b| {
            (b.exposure == "full")
                .cmp(&(a.exposure == "full"))
                .then(a.first_exposed.cmp(&b.first_exposed))
                .then_with(|| a.waybills.cmp(&b.waybills))
        });
        metrics::counter!("wbguard_breach_notification_lists_total").increment(1);
        Ok(NotificationList {
            incident: id.to_owned(),
            notices,
            withheld,
            first_audit_seq,
        })
    }
}

impl Guard {
    /// Each person's letter of a notification list the caller was given ([`Guard::notification_list`]), filled
    /// in, in `lang`, one after another (a Markdown thematic break between two: a page each as PDF). Nothing is
    /// read or opened again: the list is what the policy opened for its caller, and is audited as such.
    pub fn letters(
        &self,
        list: &NotificationList,
        lang: crate::Lang,
    ) -> Result<String, GuardError> {
        let report = self.incident_case(&list.incident)?;
        let contact = self.incident_contact();
        Ok(list
            .notices
            .iter()
            .map(|n| report.letter_to(n, lang, contact))
            .collect::<Vec<_>>()
            .join("\n---\n\n"))
    }
}

impl ImpactReport {
    /// The affected waybills as CSV: one row each, no personal data.
    pub fn to_csv(&self) -> Result<Vec<u8>, GuardError> {
        let err = |e: csv::Error| GuardError::internal_from("report CSV", e);
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "waybill_no",
            "exposure",
            "fields",
            "first_exposed",
            "last_exposed",
            "exposed_to",
            "beyond_work",
        ])
        .map_err(err)?;
        for a in &self.affected {
            w.write_record([
                a.waybill_no.as_str(),
                a.exposure.as_str(),
                &a.fields.join(" "),
                &wbg_core::when::display(a.first_exposed),
                &wbg_core::when::display(a.last_exposed),
                &a.exposed_to.join(" "),
                if a.beyond_work { "true" } else { "false" },
            ])
            .map_err(err)?;
        }
        w.into_inner()
            .map_err(|e| GuardError::internal_from("report CSV", e))
    }

    /// The report as a readable Markdown document.
    pub fn to_markdown(&self) -> String {
        use std::fmt::Write;
        // Times in China Standard Time, ISO 8601 with the offset, as a reader there expects them.
        let t = wbg_core::when::display;
        let mut md = String::new();
        let _ = writeln!(md, "# Breach-impact report {}\n", self.incident);
        let _ = writeln!(
            md,
            "Made by `{}` at {}. Window: {} to {}. Suspects: {}.\n",
            self.created_by,
            t(self.created_at),
            t(self.from),
            t(self.to),
            self.suspects
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(md, "## Impact\n");
        let _ = writeln!(
            md,
            "- **Grade: {}**{}.",
            self.grade,
            match self.regulator_report_due {
                Some(due) => format!(
                    " — the report to the provincial cyberspace administration is due by **{}**",
                    t(due)
                ),
                None => " — below the grade reported to the regulator".into(),
            }
        );
        let _ = writeln!(
            md,
            "- **{} customers** exposed ({} in full), on {} waybills ({} in full).",
            self.customers, self.customers_full, self.waybills, self.waybills_full
        );
        let _ = writeln!(
            md,
            "- {} personal-data reads by the suspects in the window ({} audit entries read).",
            self.exposures, self.entries_scanned
        );
        let _ = writeln!(
            md,
            "- **Beyond their work: {} waybills, {} customers** — reads no registered work called for (a \
             courier's look at parcels not its own delivery, an agent's without a ticket, an export file). The \
             rest were the suspects' own work and are counted, not notified, by default.",
            self.waybills_beyond_work, self.customers_beyond_work
        );
        let _ = writeln!(
            md,
            "- Customers to notify: ask for the notification list of `{}` (customer service, purpose \
             `breach_notification`).\n",
            self.incident
        );
        let _ = writeln!(md, "## Fields exposed\n\n| field | waybills |\n|---|---:|");
        for (f, n) in &self.fields {
            let _ = writeln!(md, "| `{f}` | {n} |");
        }
        let _ = writeln!(
            md,
            "\n## By region\n\n| province | city | customers | in full |\n|---|---|---:|---:|"
        );
        for r in &self.by_region {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                r.province, r.city, r.customers, r.customers_full
            );
        }
        let _ = writeln!(
            md,
            "\n## Suspects\n\n| principal | reads | of them its work | beyond it | waybills beyond | waybills in full | masked only | first | last | alerts | suspended |\n|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|"
        );
        for s in &self.per_suspect {
            let opt = |v: Option<i64>| v.map(t).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.principal,
                s.exposures,
                s.exposures_work,
                s.exposures_beyond,
                s.waybills_beyond,
                s.waybills_full,
                s.waybills_masked,
                opt(s.first),
                opt(s.last),
                s.alerts,
                opt(s.suspended_at)
            );
        }
        let _ = writeln!(md, "\n## Timeline\n");
        for e in &self.timeline {
            let _ = writeln!(
                md,
                "- {} — `{}` {}{}",
                t(e.at),
                e.principal,
                e.event.replace('_', " "),
                e.detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            md,
            "\n## Exposures per day (China Standard Time)\n\n| day | full | masked |\n|---|---:|---:|"
        );
        for d in &self.daily {
            let _ = writeln!(md, "| {} | {} | {} |", d.day, d.full, d.masked);
        }
        let _ = writeln!(
            md,
            "\nThe affected waybills are listed in the report's CSV form.{}",
            self.audit_seq
                .map(|s| format!(" This report's audit entry: {s}."))
                .unwrap_or_default()
        );
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        // Days as China Standard Time counts them: 16:00 UTC is the next day's midnight there.
        assert_eq!(day_of(1_795_392_000_000), "2026-11-23");
        assert_eq!(day_of(1_795_392_000_000 - 8 * 3_600_000), "2026-11-23");
        assert_eq!(day_of(1_795_392_000_000 - 8 * 3_600_000 - 1), "2026-11-22");
        assert_eq!(day_of(-1), "1970-01-01");
    }

    #[test]
    fn an_incident_is_graded_by_the_people_it_exposed_and_the_clock_runs_from_its_opening() {
        let c = IncidentConfig::default();
        assert_eq!(c.grade(999_999), "general");
        assert_eq!(c.grade(1_000_000), "larger");
        assert_eq!(c.grade(10_000_000), "major");
        assert_eq!(c.grade(100_000_000), "especially_major");
        assert_eq!(c.report_due("general", 1_000), None);
        assert_eq!(c.report_due("larger", 1_000), Some(1_000 + 4 * 3_600_000));
        let strict = IncidentConfig {
            report_from_grade: "general".into(),
            report_hours: 1,
            ..IncidentConfig::default()
        };
        assert_eq!(strict.report_due("general", 0), Some(3_600_000));
    }

    #[test]
    fn incident_ids() {
        assert!(valid_incident_id("INC-0123456789ab"));
        assert!(!valid_incident_id("INC-0123456789a"));
        assert!(!valid_incident_id("inc-0123456789ab"));
        assert!(!valid_incident_id("INC-0123456789zz"));
    }
}
