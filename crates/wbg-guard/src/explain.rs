//! Why an alert was raised, shown rather than asserted: the detectors' signals and the scores they moved, the
//! account's entitlement as the policy derives it (per purpose, the richest view and the rules that grant it),
//! and beside it every read behind the alert with the facts that decide scope — the waybill's outlets, its
//! courier and status at the time of the explanation — so an analyst sees "out of scope" in the rows.
use crate::guard::{Actor, RequestMeta};
use crate::review::PurposeAccess;
use crate::{Guard, GuardError};
use serde::Serialize;
use wbg_audit::AuditEntry;
use wbg_core::{Account, AccountId, Alert, WaybillNo};
use wbg_policy::AdminAction;

/// An alert explained.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertExplanation {
    /// The alert.
    pub alert: Alert,
    /// The detectors that fired, oldest first, as the engine recorded them (`detector`, `points`, `at`,
    /// `evidence`); empty for an alert that is not the engine's (a rate ceiling, a canary, a credential).
    #[schema(value_type = Vec<Object>)]
    pub signals: Vec<serde_json::Value>,
    /// The account's scores and thresholds when it was raised, as the engine recorded them (absent for other
    /// alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub scores: Option<serde_json::Value>,
    /// What the account is entitled to see, per purpose, derived from the policy in force.
    pub entitlement: Entitlement,
    /// The reads behind the alert (its audit entries that concern a waybill), newest first.
    pub reads: Vec<ExplainedRead>,
    /// Counts over `reads`.
    pub summary: ReadSummary,
}

/// An account's entitlement.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Entitlement {
    /// The account (absent when it no longer exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    /// Per purpose, the richest view the policy can give it and when.
    pub sees: Vec<PurposeAccess>,
}

/// One read behind an alert, with the facts that decide whether it was the account's business.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExplainedRead {
    /// The audit entry.
    pub seq: u64,
    /// When (ms).
    pub at: i64,
    /// `view`, `label`, …
    pub action: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The view granted, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// The purpose declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The waybill.
    pub waybill: String,
    /// Where it was sent from and to, its courier and status (now); absent when there is no such waybill (a
    /// guessed number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_outlet: Option<String>,
    /// Destination outlet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_outlet: Option<String>,
    /// Courier assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub courier: Option<String>,
    /// Status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The waybill passes through the account's outlet (origin or destination); `None` for accounts bound to no
    /// outlet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_own_outlet: Option<bool>,
    /// The waybill is (now) assigned to the account as its courier.
    pub assigned_to_it: bool,
    /// The waybill exists.
    pub exists: bool,
}

/// Counts over an alert's reads.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReadSummary {
    /// Reads behind the alert.
    pub reads: usize,
    /// Of those, refused.
    pub refused: usize,
    /// Granted in full.
    pub full: usize,
    /// Of waybills outside the account's outlet (for outlet-bound accounts).
    pub outside_outlet: usize,
    /// Of numbers that name no waybill.
    pub no_such_waybill: usize,
    /// Distinct waybills.
    pub distinct_waybills: usize,
}

impl Guard {
    /// An alert explained (auditors, admins: those who read alerts). Reads nothing personal: waybills' routing
    /// metadata and the audit entries alone.
    pub fn explain_alert(
        &self,
        actor: Actor<'_>,
        id: i64,
        meta: &RequestMeta,
    ) -> Result<AlertExplanation, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::ReadAlerts, "alert_explain", meta)?;
        e.detail = Some(format!("alert={id}"));
        let Some(alert) = self.store.alert(id)? else {
            return Err(self.deny(e, GuardError::NotFound(format!("alert {id}"))));
        };
        let detail: Option<serde_json::Value> = serde_json::from_str(&alert.detail).ok();
        let signals = detail
            .as_ref()
            .and_then(|d| d.get("signals")?.as_array().cloned())
            .unwrap_or_default();
        let scores = detail.as_ref().and_then(|d| {
            let mut s = serde_json::Map::new();
            for k in [
                "level",
                "burst_score",
                "drift_score",
                "burst_thresholds",
                "drift_thresholds",
            ] {
                if let Some(v) = d.get(k) {
                    s.insert(k.into(), v.clone());
                }
            }
            (!s.is_empty()).then_some(serde_json::Value::Object(s))
        });
        let account = match AccountId::parse(&alert.account) {
            Ok(a) => self.store.account(&a)?,
            Err(_) => None,
        };
        let sees = match &account {
            Some(a) => self
                .policy()
                .reach(a, self.clock.now().div_euclid(1000))?
                .into_iter()
                .map(|r| PurposeAccess {
                    purpose: r.purpose.as_str().to_owned(),
                    view: r.view.map(|v| v.as_str().to_owned()),
                    when: r.when,
                    rules: r.policies,
                })
                .collect(),
            None => Vec::new(),
        };
        let mut entries: Vec<AuditEntry> = Vec::new();
        for seq in &alert.audit_seqs {
            if let Some(bytes) = self.store.audit_entry(*seq)? {
                let entry = AuditEntry::decode(&bytes).map_err(|err| {
                    GuardError::internal_from(format!("audit entry {seq} does not parse"), err)
                })?;
                if entry.waybill.is_some() {
                    entries.push(entry);
                }
            }
        }
        let nos: Vec<Option<WaybillNo>> = entries
            .iter()
            .map(|e| e.waybill.as_deref().and_then(|w| WaybillNo::parse(w).ok()))
            .collect();
        let parsed: Vec<WaybillNo> = nos.iter().flatten().cloned().collect();
        let mut metas = self.store.waybill_metas(&parsed).wait()?.into_iter();
        let outlet = account.as_ref().and_then(|a| a.outlet.clone());
        let mut summary = ReadSummary::default();
        let mut distinct = std::collections::HashSet::new();
        let mut reads = Vec::with_capacity(entries.len());
        for (e, no) in entries.into_iter().zip(nos) {
            let m = match no {
                Some(_) => metas.next().flatten(),
                None => None,
            };
            let at_own_outlet = outlet.as_ref().map(|o| {
                m.as_ref()
                    .is_some_and(|m| &m.origin_outlet == o || &m.destination_outlet == o)
            });
            let assigned = m
                .as_ref()
                .and_then(|m| m.courier.as_ref())
                .is_some_and(|c| c.as_str() == alert.account);
            summary.reads += 1;
            summary.refused += usize::from(e.decision == "deny");
            summary.full += usize::from(e.view.as_deref() == Some("full"));
            summary.outside_outlet += usize::from(at_own_outlet == Some(false) && m.is_some());
            summary.no_such_waybill += usize::from(m.is_none());
            let waybill = e.waybill.clone().unwrap_or_default();
            distinct.insert(waybill.clone());
            reads.push(ExplainedRead {
                seq: e.seq,
                at: e.time,
                action: e.action,
                decision: e.decision,
                view: e.view,
                purpose: e.purpose,
                waybill,
                origin_outlet: m.as_ref().map(|m| m.origin_outlet.to_string()),
                destination_outlet: m.as_ref().map(|m| m.destination_outlet.to_string()),
                courier: m
                    .as_ref()
                    .and_then(|m| m.courier.as_ref().map(|c| c.to_string())),
                status: m.as_ref().map(|m| m.status.as_str().to_owned()),
                at_own_outlet,
                assigned_to_it: assigned,
                exists: m.is_some(),
            });
        }
        summary.distinct_waybills = distinct.len();
        Ok(AlertExplanation {
            alert,
            signals,
            scores,
            entitlement: Entitlement {
                account: account.map(|a| self.shown(a)),
                sees,
            },
            reads,
            summary,
        })
    }
}
