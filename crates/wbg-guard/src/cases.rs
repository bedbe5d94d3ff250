//! Cases: an investigation that groups alerts, accounts and breach incidents, with a checklist and an evidence
//! locker of audit entries, exported as one evidence pack anyone can check offline. Auditors open and work them
//! (admins read them); every change is a compare-and-set on the case's revision, audited; titles, checklist
//! items and evidence labels are sealed in the store like triage notes.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use wbg_core::{AccountId, Millis};
use wbg_policy::AdminAction;

const KIND: &str = "investigation";
/// The most alerts, accounts, incidents, checklist items or evidence entries a case holds, each.
pub const CASE_LIMIT: usize = 200;
/// The checklist a new case starts with: the incident-response steps the threats call for.
pub const DEFAULT_CHECKLIST: &[&str] = &[
    "Contain: suspend the accounts involved or cap them to masked views",
    "Preserve: download the case's evidence pack",
    "Attribute: match any leaked list against the audit log",
    "Scope: open the breach incident and read its exposure",
    "Notify: the people affected and the regulator, as the incident requires",
    "Close: record the finding",
];
/// How a case may end.
pub const CASE_FINDINGS: &[&str] = &[
    "confirmed_leak",
    "policy_violation",
    "no_wrongdoing",
    "inconclusive",
];

/// One checklist item.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckItem {
    /// What is to be done.
    pub text: String,
    /// Done.
    pub done: bool,
    /// Who ticked it, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Millis>,
}

/// An audit entry in the evidence locker.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EvidenceItem {
    /// The entry's seq.
    pub seq: u64,
    /// Why it is here.
    pub label: String,
    /// Who put it here, and when.
    pub added_by: String,
    /// When.
    pub added_at: Millis,
}

/// A case.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Case {
    /// `K` and 16 hex digits.
    pub id: String,
    /// What it is about.
    pub title: String,
    /// `open` or `closed`.
    pub state: String,
    /// How it ended (`confirmed_leak`, `policy_violation`, `no_wrongdoing`, `inconclusive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// Who opened it, and when.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// Changes so far: give it back with the next change.
    pub revision: u64,
    /// Its alerts.
    pub alerts: Vec<i64>,
    /// Its accounts.
    pub accounts: Vec<String>,
    /// Its breach incidents.
    pub incidents: Vec<String>,
    /// The checklist.
    pub checklist: Vec<CheckItem>,
    /// The evidence locker.
    pub evidence: Vec<EvidenceItem>,
}

/// A case to open.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// What it is about (at most 200 printable characters, no phone number).
    pub title: String,
    /// Alerts to start with.
    #[serde(default)]
    pub alerts: Vec<i64>,
    /// Accounts to start with.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Incidents to start with.
    #[serde(default)]
    pub incidents: Vec<String>,
}

/// Evidence to add.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvidence {
    /// An audit entry's seq.
    pub seq: u64,
    /// Why it matters (as a title).
    pub label: String,
}

/// A change to a case: every part optional, all applied or none.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseChange {
    /// The revision the change was made on (409 if the case changed since).
    pub revision: u64,
    /// Alerts to add.
    #[serde(default)]
    pub add_alerts: Vec<i64>,
    /// Accounts to add.
    #[serde(default)]
    pub add_accounts: Vec<String>,
    /// Incidents to add.
    #[serde(default)]
    pub add_incidents: Vec<String>,
    /// Audit entries to put in the locker.
    #[serde(default)]
    pub add_evidence: Vec<NewEvidence>,
    /// Checklist items to add.
    #[serde(default)]
    pub add_items: Vec<String>,
    /// Checklist items (by position) to tick.
    #[serde(default)]
    pub check: Vec<usize>,
    /// Checklist items to untick.
    #[serde(default)]
    pub uncheck: Vec<usize>,
    /// Close with this finding.
    #[serde(default)]
    pub close: Option<String>,
    /// Reopen a closed case.
    #[serde(default)]
    pub reopen: bool,
}

fn valid_id(id: &str) -> bool {
    id.len() == 17 && id.starts_with('K') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_text(what: &str, t: &str) -> Result<(), GuardError> {
    if t.trim().is_empty()
        || t.chars().count() > 200
        || t.chars().any(char::is_control)
        || wbg_core::may_hold_phone(t)
    {
        return Err(GuardError::Invalid(format!(
            "{what} must be 1-200 printable characters and hold no phone number"
        )));
    }
    Ok(())
}

fn context(id: &str) -> String {
    format!("case/{id}")
}

impl Guard {
    fn check_members(
        &self,
        alerts: &[i64],
        accounts: &[String],
        incidents: &[String],
    ) -> Result<(), GuardError> {
        for &a in alerts {
            if self.store.alert(a)?.is_none() {
                return Err(GuardError::Invalid(format!("there is no alert {a}")));
            }
        }
        for a in accounts {
            let id = AccountId::parse(a)?;
            if self.store.account(&id)?.is_none() {
                return Err(GuardError::Invalid(format!("there is no account {a}")));
            }
        }
        for i in incidents {
            if !crate::breach::valid_incident_id(i) || self.store.case("incident", i)?.is_none() {
                return Err(GuardError::Invalid(format!("there is no incident {i}")));
            }
        }
        Ok(())
    }

    /// The case as its readers see it: sealed texts opened.
    fn opened(&self, mut c: Case) -> Case {
        let ctx = context(&c.id);
        let open = |t: &str| {
            self.open_text(&ctx, t)
                .unwrap_or_else(|| "(sealed text this store's keys do not open)".into())
        };
        c.title = open(&c.title);
        for item in &mut c.checklist {
            item.text = open(&item.text);
        }
        for e in &mut c.evidence {
            e.label = open(&e.label);
        }
        c
    }

    /// Opens a case (auditors; audited `case_open`), with the default checklist.
    pub fn open_case(
        &self,
        actor: Actor<'_>,
        req: &NewCase,
        meta: &RequestMeta,
    ) -> Result<Case, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "case_open", meta)?;
        let checked = check_text("title", &req.title).and_then(|()| {
            if req.alerts.len() + req.accounts.len() + req.incidents.len() > CASE_LIMIT {
                return Err(GuardError::Invalid(format!(
                    "a case holds at most {CASE_LIMIT} of each"
                )));
            }
            self.check_members(&req.alerts, &req.accounts, &req.incidents)
        });
        if let Err(err) = checked {
            return Err(self.deny(e, err));
        }
        let now = self.clock.now();
        let id = format!("K{:016x}", rand::thread_rng().gen::<u64>());
        let ctx = context(&id);
        let dedup = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        let mut alerts = req.alerts.clone();
        alerts.sort_unstable();
        alerts.dedup();
        let case = Case {
            title: self.seal_text(&ctx, req.title.trim())?,
            state: "open".into(),
            finding: None,
            created_by: who.id.to_string(),
            created_at: now,
            updated_at: now,
            revision: 0,
            alerts,
            accounts: dedup(&req.accounts),
            incidents: dedup(&req.incidents),
            checklist: DEFAULT_CHECKLIST
                .iter()
                .map(|t| {
                    Ok(CheckItem {
                        text: self.seal_text(&ctx, t)?,
                        done: false,
                        by: None,
                        at: None,
                    })
                })
                .collect::<Result<_, GuardError>>()?,
            evidence: Vec::new(),
            id,
        };
        e.detail = Some(format!(
            "case={} alerts={} accounts={} incidents={}",
            case.id,
            case.alerts.len(),
            case.accounts.len(),
            case.incidents.len()
        ));
        let body = serde_json::to_string(&case)
            .map_err(|err| GuardError::internal_from("case unwritable", err))?;
        self.store.put_case(KIND, &case.id, &body, None, e)?;
        Ok(self.opened(case))
    }

    /// Applies a change to case `id` (auditors; audited `case_change`, naming what changed, never the texts).
    pub fn change_case(
        &self,
        actor: Actor<'_>,
        id: &str,
        ch: &CaseChange,
        meta: &RequestMeta,
    ) -> Result<Case, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "case_change", meta)?;
        e.detail = Some(format!("case={id}"));
        if !valid_id(id) {
            return Err(self.deny(
                e,
                GuardError::Invalid("a case id is K and 16 hex digits".into()),
            ));
        }
        let (mut case, before): (Case, String) = match self.case_file(KIND, id) {
            Ok(found) => found,
            Err(err) => return Err(self.deny(e, err)),
        };
        let now = self.clock.now();
        let checked = self.apply_change(&mut case, ch, who.id.as_str(), now);
        let summary = match checked {
            Ok(s) => s,
            Err(err) => return Err(self.deny(e, err)),
        };
        case.revision += 1;
        case.updated_at = now;
        e.detail = Some(format!("case={id} {summary}"));
        let body = serde_json::to_string(&case)
            .map_err(|err| GuardError::internal_from("case unwritable", err))?;
        self.store.put_case(KIND, id, &body, Some(&before), e)?;
        Ok(self.opened(case))
    }

    /// Checks and applies `ch` to `case`; returns what changed, for the audit entry.
    fn apply_change(
        &self,
        case: &mut Case,
        ch: &CaseChange,
        by: &str,
        now: Millis,
    ) -> Result<String, GuardError> {
        if ch.revision != case.revision {
            return Err(GuardError::Conflict(format!(
                "case {} is at revision {}, not {}: reload it",
                case.id, case.revision, ch.revision
            )));
        }
        if case.state == "closed" && !ch.reopen {
            return Err(GuardError::Conflict(format!(
                "case {} is closed: reopen it first",
                case.id
            )));
        }
        self.check_members(&ch.add_alerts, &ch.add_accounts, &ch.add_incidents)?;
        for t in &ch.add_items {
            check_text("a checklist item", t)?;
        }
        let size = self.store.audit_size()?;
        for ev in &ch.add_evidence {
            check_text("an evidence label", &ev.label)?;
            if ev.seq >= size {
                return Err(GuardError::Invalid(format!(
                    "there is no audit entry {}",
                    ev.seq
                )));
            }
        }
        let items = case.checklist.len() + ch.add_items.len();
        if let Some(i) = ch.check.iter().chain(&ch.uncheck).find(|i| **i >= items) {
            return Err(GuardError::Invalid(format!(
                "there is no checklist item {i}"
            )));
        }
        if let Some(f) = &ch.close {
            if !CASE_FINDINGS.contains(&f.as_str()) {
                return Err(GuardError::Invalid(format!(
                    "a finding is one of {}",
                    CASE_FINDINGS.join(", ")
                )));
            }
        }
        let ctx = context(&case.id);
        let mut said = Vec::new();
        for a in &ch.add_alerts {
            if !case.alerts.contains(a) {
                case.alerts.push(*a);
                said.push(format!("alert+{a}"));
            }
        }
        for a in &ch.add_accounts {
            if !case.accounts.contains(a) {
                case.accounts.push(a.clone());
                said.push(format!("account+{a}"));
            }
        }
        for i in &ch.add_incidents {
            if !case.incidents.contains(i) {
                case.incidents.push(i.clone());
                said.push(format!("incident+{i}"));
            }
        }
        for t in &ch.add_items {
            case.checklist.push(CheckItem {
                text: self.seal_text(&ctx, t.trim())?,
                done: false,
                by: None,
                at: None,
            });
            said.push("item+".into());
        }
        for ev in &ch.add_evidence {
            case.evidence.push(EvidenceItem {
                seq: ev.seq,
                label: self.seal_text(&ctx, ev.label.trim())?,
                added_by: by.to_owned(),
                added_at: now,
            });
            said.push(format!("evidence+{}", ev.seq));
        }
        for (list, done) in [(&ch.check, true), (&ch.uncheck, false)] {
            for &i in list {
                let item = &mut case.checklist[i];
                item.done = done;
                item.by = done.then(|| by.to_owned());
                item.at = done.then_some(now);
                said.push(format!("{}{i}", if done { "check" } else { "uncheck" }));
            }
        }
        if ch.reopen && case.state == "closed" {
            case.state = "open".into();
            case.finding = None;
            said.push("reopened".into());
        }
        if let Some(f) = &ch.close {
            case.state = "closed".into();
            case.finding = Some(f.clone());
            said.push(format!("closed={f}"));
        }
        if [
            case.alerts.len(),
            case.accounts.len(),
            case.incidents.len(),
            case.checklist.len(),
            case.evidence.len(),
        ]
        .iter()
        .any(|n| *n > CASE_LIMIT)
        {
            return Err(GuardError::Invalid(format!(
                "a case holds at most {CASE_LIMIT} of each"
            )));
        }
        if said.is_empty() {
            return Err(GuardError::Invalid("the change changes nothing".into()));
        }
        Ok(said.join(" "))
    }

    /// Case `id` (auditors, admins).
    pub fn case(&self, actor: Actor<'_>, id: &str, meta: &RequestMeta) -> Result<Case, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::ReadAlerts, "case_read", meta)?;
        e.detail = Some(format!("case={id}"));
        if !valid_id(id) {
            return Err(self.deny(
                e,
                GuardError::Invalid("a case id is K and 16 hex digits".into()),
            ));
        }
        match self.case_file::<Case>(KIND, id) {
            Ok((c, _)) => Ok(self.opened(c)),
            Err(err) => Err(self.deny(e, err)),
        }
    }

    /// Every case, most recently changed first (auditors, admins).
    pub fn cases(&self, actor: Actor<'_>, meta: &RequestMeta) -> Result<Vec<Case>, GuardError> {
        self.admin(actor, AdminAction::ReadAlerts, "case_list", meta)?;
        self.store
            .cases(KIND, 10_000)?
            .into_iter()
            .map(|(id, body)| {
                serde_json::from_str::<Case>(&body)
                    .map(|c| self.opened(c))
                    .map_err(|e| GuardError::internal_from(format!("case {id} unreadable"), e))
            })
            .collect()
    }

    /// The evidence pack of case `id`: the locker's entries and those behind each of its alerts.
    pub fn case_evidence_pack(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<wbg_audit::EvidencePack, GuardError> {
        let case = self.case(actor, id, meta)?;
        let mut seqs: Vec<u64> = case.evidence.iter().map(|e| e.seq).collect();
        for a in &case.alerts {
            if let Some(alert) = self.store.alert(*a)? {
                seqs.extend(alert.audit_seqs);
            }
        }
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.dedup();
        let subject = serde_json::json!({ "case": case });
        let (who, e) = self.admin(actor, AdminAction::ReadAudit, "evidence_pack", meta)?;
        self.pack_of(&who, e, &format!("case={id}"), subject, &seqs)
    }
}
