//! Alerts, from raising to triage: each alert is stored with the audit entries behind it, and analysts move it
//! through `new` → `investigating` → `confirmed` / `false_positive` with a reason code, an assignee and notes,
//! every change a compare-and-set written with its audit entry.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError, SuppressedAlerts};
use serde::{Deserialize, Serialize};
use wbg_core::{AccountId, AccountStatus, Alert, Millis, ALERT_EVIDENCE};
use wbg_policy::AdminAction;
use wbg_risk::RiskAlert;
use wbg_store::{AlertFilter, AuditQuery, TriageRecord, ALERT_STATES};

/// How far back of an alert its evidence is looked for when its signals carry no times (a rate ceiling).
const EVIDENCE_LOOKBACK_MS: Millis = 10 * 60_000;

/// The reason codes a triage change may give, by the state it moves to. A change that keeps the state (an
/// assignment, a note) may also give `reassigned` or `note`.
pub const REASON_CODES: &[(&str, &[&str])] = &[
    ("new", &["reopened"]),
    ("investigating", &["needs_investigation", "reassigned"]),
    ("confirmed", &["confirmed_leak", "policy_violation"]),
    (
        "false_positive",
        &[
            "legitimate_work",
            "misattributed",
            "duplicate",
            "test_activity",
        ],
    ),
];

/// A triage change asked for.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    /// The state to move to (`new`, `investigating`, `confirmed`, `false_positive`); absent: unchanged.
    #[serde(default)]
    pub state: Option<String>,
    /// Why: a reason code allowed for the target state (see the alert queue's documentation).
    pub reason: String,
    /// The analyst to work it (an active account that may investigate); `""` unassigns; absent: unchanged.
    #[serde(default)]
    pub assignee: Option<String>,
    /// A note (at most 500 printable characters, no phone number); kept sealed.
    #[serde(default)]
    pub note: Option<String>,
    /// The alert's revision the change was made against; a change made meanwhile is a conflict (409).
    #[serde(default)]
    pub revision: Option<u64>,
}

/// An alert with its triage history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    /// The alert.
    #[serde(flatten)]
    pub alert: Alert,
    /// Its triage changes, oldest first (notes opened).
    pub history: Vec<TriageRecord>,
}

fn note_context(id: i64) -> String {
    format!("alert-note/{id}")
}

/// The earliest time among the signals of an engine's explanation (`{"signals": [{"at": …}, …]}`).
fn signals_since(detail: &str) -> Option<Millis> {
    let v: serde_json::Value = serde_json::from_str(detail).ok()?;
    v.get("signals")?
        .as_array()?
        .iter()
        .filter_map(|s| s.get("at")?.as_i64())
        .min()
}

impl Guard {
    pub(crate) fn raise(&self, account: &str, raised: RiskAlert) {
        self.raise_on(account, raised, None);
    }

    /// [`Guard::raise`] for an alert raised on a request whose audit entry is `trigger`.
    pub(crate) fn raise_on(&self, account: &str, raised: RiskAlert, trigger: Option<u64>) {
        self.store_alert(account, raised, self.clock.now(), trigger);
    }

    /// Stores an alert about `account` raised at `at` — the guard's own, or a risk worker's verdict on accesses
    /// other nodes served — with the audit entries behind it, and passes it to the alert sink (the webhook),
    /// counted in `wbguard_alerts_total`.
    pub fn record_alert(&self, account: &str, raised: RiskAlert, at: Millis) {
        self.store_alert(account, raised, at, None);
    }

    fn store_alert(&self, account: &str, raised: RiskAlert, at: Millis, trigger: Option<u64>) {
        let mut alert = Alert::raised(at, account, raised.kind, raised.severity, raised.detail);
        alert.audit_seqs = self.alert_evidence(account, &alert.detail, at, trigger);
        match self.store.insert_alert(&alert) {
            Ok(id) => {
                alert.id = id;
                if let Some(sink) = &self.alert_sink {
                    sink.alert(&alert);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot store alert"),
        }
        metrics::counter!("wbguard_alerts_total", "kind" => alert.kind).increment(1);
    }

    /// The audit entries behind an alert, newest first: `trigger` (the request that raised it), then the
    /// account's entries from its earliest signal (or [`EVIDENCE_LOOKBACK_MS`] back) to the alert, at most
    /// [`ALERT_EVIDENCE`] in all. An alert is stored even when the search fails (without its evidence).
    fn alert_evidence(
        &self,
        account: &str,
        detail: &str,
        at: Millis,
        trigger: Option<u64>,
    ) -> Vec<u64> {
        let since = signals_since(detail)
            .unwrap_or(at.saturating_sub(EVIDENCE_LOOKBACK_MS))
            .min(at);
        let q = AuditQuery {
            account: Some(account.to_owned()),
            from: Some(since),
            to: Some(at.saturating_add(1)),
            limit: ALERT_EVIDENCE,
            ..AuditQuery::default()
        };
        let mut seqs: Vec<u64> = trigger.into_iter().collect();
        match self.store.search_audit(&q) {
            Ok(page) => seqs.extend(
                page.entries
                    .into_iter()
                    .map(|(s, _)| s)
                    .filter(|s| Some(*s) != trigger),
            ),
            Err(e) => tracing::warn!(error = %e, "an alert's evidence could not be searched"),
        }
        seqs.truncate(ALERT_EVIDENCE);
        seqs
    }

    /// Lists alerts (auditors, admins), less those a suppression hides.
    pub fn alerts(
        &self,
        actor: Actor<'_>,
        filter: &AlertFilter,
        meta: &RequestMeta,
    ) -> Result<Vec<Alert>, GuardError> {
        self.alerts_with(actor, filter, SuppressedAlerts::Hide, meta)
    }

    /// Lists alerts (auditors, admins): those suppressions hide as `which` says.
    pub fn alerts_with(
        &self,
        actor: Actor<'_>,
        filter: &AlertFilter,
        which: SuppressedAlerts,
        meta: &RequestMeta,
    ) -> Result<Vec<Alert>, GuardError> {
        self.admin(actor, AdminAction::ReadAlerts, "alert_list", meta)?;
        if let Some(s) = &filter.state {
            valid_state(s)?;
        }
        self.apply_suppressions(self.store.alerts(filter)?, which)
    }

    /// Alerts raised after alert `after`, oldest first (at most `limit`, less those a suppression hides): what a
    /// live queue has not shown yet.
    pub fn alerts_after(
        &self,
        actor: Actor<'_>,
        after: i64,
        limit: usize,
        meta: &RequestMeta,
    ) -> Result<Vec<Alert>, GuardError> {
        self.admin(actor, AdminAction::ReadAlerts, "alert_list", meta)?;
        self.apply_suppressions(
            self.store.alerts_after(after, limit)?,
            SuppressedAlerts::Hide,
        )
    }

    /// The newest alert's id (0 when there is none): where a live queue starts.
    pub fn newest_alert_id(&self) -> Result<i64, GuardError> {
        Ok(self
            .store
            .alerts(&AlertFilter {
                limit: 1,
                ..AlertFilter::default()
            })?
            .first()
            .map_or(0, |a| a.id))
    }

    /// One alert with its triage history (auditors, admins).
    pub fn alert(
        &self,
        actor: Actor<'_>,
        id: i64,
        meta: &RequestMeta,
    ) -> Result<AlertDetail, GuardError> {
        let (_, mut e) = self.admin(actor, AdminAction::ReadAlerts, "alert_read", meta)?;
        e.detail = Some(format!("alert={id}"));
        let Some(alert) = self.store.alert(id)? else {
            return Err(self.deny(e, GuardError::NotFound(format!("alert {id}"))));
        };
        let history = self
            .store
            .alert_history(id)?
            .into_iter()
            .map(|mut r| {
                r.note = r.note.map(|n| self.open_note(id, &n));
                r
            })
            .collect();
        Ok(AlertDetail { alert, history })
    }

    /// Applies a triage change to alert `id` (accounts that may investigate: auditors). The reason code must be
    /// one the target state allows; an assignee must be an active account that may investigate; the note is
    /// sealed. Audited (`alert_triage`, with the state, reason and assignee; never the note's text).
    pub fn triage_alert(
        &self,
        actor: Actor<'_>,
        id: i64,
        req: &TriageRequest,
        meta: &RequestMeta,
    ) -> Result<AlertDetail, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "alert_triage", meta)?;
        e.detail = Some(format!("alert={id}"));
        let checked = self.check_triage(id, req);
        let (alert, state, assignee) = match checked {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        let note = req
            .note
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .map(|n| self.seal_text(&note_context(id), n))
            .transpose()?;
        e.detail = Some(format!(
            "alert={id} state={state} reason={}{}{}",
            req.reason,
            assignee
                .as_deref()
                .map(|a| format!(" assignee={a}"))
                .unwrap_or_default(),
            if note.is_some() { " note" } else { "" }
        ));
        let rec = TriageRecord {
            at: e.time,
            by: who.id.to_string(),
            state,
            assignee,
            reason: req.reason.clone(),
            note,
            audit_seq: 0,
        };
        self.store
            .triage_alert(id, req.revision.unwrap_or(alert.revision), &rec, e)?;
        metrics::counter!("wbguard_alert_triage_total", "state" => rec.state).increment(1);
        self.alert(actor, id, meta)
    }

    /// A triage request checked against the alert as it is: `(alert, state, assignee)` after the change.
    fn check_triage(
        &self,
        id: i64,
        req: &TriageRequest,
    ) -> Result<(Alert, String, Option<String>), GuardError> {
        let alert = self
            .store
            .alert(id)?
            .ok_or_else(|| GuardError::NotFound(format!("alert {id}")))?;
        let state = match &req.state {
            Some(s) => valid_state(s)?.to_owned(),
            None => alert.state.clone(),
        };
        let allowed = REASON_CODES
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, codes)| *codes)
            .unwrap_or_default();
        let same = state == alert.state;
        let reason = req.reason.as_str();
        let permitted =
            allowed.contains(&reason) || (same && ["reassigned", "note"].contains(&reason));
        if !permitted {
            return Err(GuardError::Invalid(format!(
                "reason must be one of {}{} for state {state}",
                allowed.join(", "),
                if same { ", reassigned, note" } else { "" }
            )));
        }
        if let Some(n) = &req.note {
            if n.chars().count() > 500
                || n.chars().any(char::is_control)
                || wbg_core::may_hold_phone(n)
            {
                return Err(GuardError::Invalid(
                    "note must be at most 500 printable characters and hold no phone number".into(),
                ));
            }
        }
        let assignee = match req.assignee.as_deref() {
            None => alert.assignee.clone(),
            Some("") => None,
            Some(a) => {
                let id = AccountId::parse(a)?;
                let ok = match self.store.account(&id)? {
                    Some(acc) => {
                        acc.status == AccountStatus::Active
                            && self.policy().may_admin(&acc, AdminAction::Investigate)?
                    }
                    None => false,
                };
                if !ok {
                    return Err(GuardError::Invalid(format!(
                        "assignee {id} is not an active account that may investigate"
                    )));
                }
                Some(id.to_string())
            }
        };
        Ok((alert, state, assignee))
    }

    fn open_note(&self, id: i64, sealed: &str) -> String {
        self.open_text(&note_context(id), sealed)
            .unwrap_or_else(|| "(a sealed note this store's keys do not open)".into())
    }
}

/// `s` if it is a triage state.
fn valid_state(s: &str) -> Result<&str, GuardError> {
    if ALERT_STATES.contains(&s) {
        Ok(s)
    } else {
        Err(GuardError::Invalid(format!(
            "state must be one of {}",
            ALERT_STATES.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_reason_codes_and_the_evidence_window_starts_at_the_first_signal() {
        for s in ALERT_STATES {
            assert!(
                REASON_CODES.iter().any(|(t, c)| *t == s && !c.is_empty()),
                "{s}"
            );
        }
        let detail = r#"{"signals":[{"detector":"velocity","at":500},{"detector":"out_of_scope","at":200}]}"#;
        assert_eq!(signals_since(detail), Some(200));
        assert_eq!(signals_since("not json"), None);
        assert_eq!(signals_since(r#"{"signals":[]}"#), None);
    }
}
