//! Alert suppressions, measured before they are applied: "hide this detector's alerts for this account / outlet /
//! role" is first run over the last 30 days of alerts ("would have hidden N, M of them later confirmed"), and
//! only then applied, with a reason code, audited, for a bounded time. A suppression hides alerts from the queue
//! and its live stream; it never stops the engine from refusing, capping or suspending, and a hidden alert is
//! still stored and listed with `suppressed=include`.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wbg_core::{Account, Alert, Millis};
use wbg_policy::AdminAction;
use wbg_store::AlertFilter;

const KIND: &str = "suppression";
const DAY_MS: i64 = 86_400_000;
/// How far back a backtest looks.
pub const BACKTEST_DAYS: i64 = 30;
/// The longest a suppression lasts.
pub const MAX_SUPPRESSION_DAYS: u32 = 90;
/// Why a detector's alerts may be hidden.
pub const SUPPRESSION_REASONS: &[&str] = &[
    "legitimate_work",
    "known_noise",
    "test_activity",
    "duplicate_source",
];

/// What a suppression covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionScope {
    /// One account.
    Account,
    /// Every account of one outlet.
    Outlet,
    /// Every account of one role.
    Role,
}

/// A suppression asked for (or only backtested).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRequest {
    /// The detector (an alert's `kind`, e.g. `rate_limit`).
    pub detector: String,
    /// `account`, `outlet` or `role`.
    pub scope: SuppressionScope,
    /// The account id, outlet id or role name.
    pub value: String,
    /// Why (applying only): `legitimate_work`, `known_noise`, `test_activity`, `duplicate_source`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Days it lasts (applying only; default 30, at most 90).
    #[serde(default)]
    pub days: Option<u32>,
    /// Apply even though the backtest finds confirmed alerts among those it would have hidden.
    #[serde(default)]
    pub accept_confirmed: bool,
}

/// What a suppression would have hidden over the last 30 days.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backtest {
    /// The window looked at (ms).
    pub from: Millis,
    /// Its end.
    pub to: Millis,
    /// Alerts it would have hidden.
    pub alerts: usize,
    /// Of them, later confirmed (a leak or a policy violation).
    pub confirmed: usize,
    /// Of them, found false positives.
    pub false_positive: usize,
    /// Of them, still new or being investigated.
    pub open: usize,
    /// Up to 50 of their ids, newest first.
    pub sample: Vec<i64>,
}

/// A suppression as stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Suppression {
    /// `S` and 16 hex digits.
    pub id: String,
    /// The detector.
    pub detector: String,
    /// What it covers.
    pub scope: SuppressionScope,
    /// The account, outlet or role.
    pub value: String,
    /// The reason code.
    pub reason: String,
    /// Who applied it, and when.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
    /// When it stops hiding alerts.
    pub expires_at: Millis,
    /// The backtest it was applied on.
    pub backtest: Backtest,
    /// When it was lifted early, by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<Millis>,
    /// Who lifted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_by: Option<String>,
}

impl Suppression {
    /// Whether it hides `alert` (raised while it was in force, by the detector, in its scope).
    fn hides(&self, alert: &Alert, accounts: &HashMap<String, Account>) -> bool {
        let until = self
            .lifted_at
            .unwrap_or(self.expires_at)
            .min(self.expires_at);
        alert.kind == self.detector
            && alert.at >= self.created_at
            && alert.at < until
            && in_scope(self.scope, &self.value, alert, accounts)
    }

    fn active(&self, now: Millis) -> bool {
        self.lifted_at.is_none() && now < self.expires_at
    }
}

fn in_scope(
    scope: SuppressionScope,
    value: &str,
    alert: &Alert,
    accounts: &HashMap<String, Account>,
) -> bool {
    match scope {
        SuppressionScope::Account => alert.account == value,
        SuppressionScope::Outlet => accounts
            .get(&alert.account)
            .and_then(|a| a.outlet.as_ref())
            .is_some_and(|o| o.as_str() == value),
        SuppressionScope::Role => accounts
            .get(&alert.account)
            .is_some_and(|a| a.role.as_str() == value),
    }
}

/// Which alerts a list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SuppressedAlerts {
    /// Those no suppression hides (the queue).
    #[default]
    Hide,
    /// All.
    Include,
    /// Only those a suppression hides.
    Only,
}

fn valid_id(id: &str) -> bool {
    id.len() == 17 && id.starts_with('S') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl Guard {
    fn check_suppression(&self, req: &SuppressionRequest) -> Result<(), GuardError> {
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        if !word(&req.detector) {
            return Err(GuardError::Invalid(
                "detector must be an alert kind such as rate_limit".into(),
            ));
        }
        if !word(&req.value) {
            return Err(GuardError::Invalid(
                "value must be an account id, an outlet id or a role".into(),
            ));
        }
        if req.scope == SuppressionScope::Role && wbg_core::Role::parse(&req.value).is_err() {
            return Err(GuardError::Invalid(format!(
                "{:?} is not a role",
                req.value
            )));
        }
        Ok(())
    }

    fn accounts_by_id(&self) -> Result<HashMap<String, Account>, GuardError> {
        Ok(self
            .store
            .accounts()?
            .into_iter()
            .map(|a| (a.id.to_string(), a))
            .collect())
    }

    fn run_backtest(&self, req: &SuppressionRequest, now: Millis) -> Result<Backtest, GuardError> {
        let from = now - BACKTEST_DAYS * DAY_MS;
        let alerts = self.store.alerts(&AlertFilter {
            kind: Some(req.detector.clone()),
            account: (req.scope == SuppressionScope::Account).then(|| req.value.clone()),
            since: Some(from),
            limit: 1_000_000,
            ..AlertFilter::default()
        })?;
        let accounts = self.accounts_by_id()?;
        let hit: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.at < now && in_scope(req.scope, &req.value, a, &accounts))
            .collect();
        let count = |states: &[&str]| {
            hit.iter()
                .filter(|a| states.contains(&a.state.as_str()))
                .count()
        };
        Ok(Backtest {
            from,
            to: now,
            alerts: hit.len(),
            confirmed: count(&["confirmed"]),
            false_positive: count(&["false_positive"]),
            open: count(&["new", "investigating"]),
            sample: hit.iter().take(50).map(|a| a.id).collect(),
        })
    }

    /// What a suppression would have hidden over the last 30 days (auditors). Audited
    /// (`alert_suppress_backtest`).
    pub fn backtest_suppression(
        &self,
        actor: Actor<'_>,
        req: &SuppressionRequest,
        meta: &RequestMeta,
    ) -> Result<Backtest, GuardError> {
        let (_, mut e) = self.admin(
            actor,
            AdminAction::Investigate,
            "alert_suppress_backtest",
            meta,
        )?;
        e.detail = Some(format!(
            "detector={} scope={:?} value={}",
            req.detector, req.scope, req.value
        ));
        if let Err(err) = self.check_suppression(req) {
            return Err(self.deny(e, err));
        }
        let bt = self.run_backtest(req, self.clock.now())?;
        self.store.append_audit(e)?;
        Ok(bt)
    }

    /// Applies a suppression (auditors): backtested first; refused (409) when the backtest finds confirmed
    /// alerts among those it would have hidden, unless `accept_confirmed`. Audited (`alert_suppress`, with the
    /// backtest's figures).
    pub fn suppress(
        &self,
        actor: Actor<'_>,
        req: &SuppressionRequest,
        meta: &RequestMeta,
    ) -> Result<Suppression, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "alert_suppress", meta)?;
        let checked = self.check_suppression(req).and_then(|()| {
            let reason = req.reason.as_deref().unwrap_or("");
            if !SUPPRESSION_REASONS.contains(&reason) {
                return Err(GuardError::Invalid(format!(
                    "reason must be one of {}",
                    SUPPRESSION_REASONS.join(", ")
                )));
            }
            let days = req.days.unwrap_or(30);
            if days == 0 || days > MAX_SUPPRESSION_DAYS {
                return Err(GuardError::Invalid(format!(
                    "days must be 1-{MAX_SUPPRESSION_DAYS}"
                )));
            }
            Ok((reason.to_owned(), days))
        });
        let (reason, days) = match checked {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        let now = self.clock.now();
        let backtest = self.run_backtest(req, now)?;
        if backtest.confirmed > 0 && !req.accept_confirmed {
            let err = GuardError::Conflict(format!(
                "over the last {BACKTEST_DAYS} days it would have hidden {} alerts, {} of them later confirmed: \
                 set accept_confirmed to apply it anyway",
                backtest.alerts, backtest.confirmed
            ));
            return Err(self.deny(e, err));
        }
        let s = Suppression {
            id: format!("S{:016x}", rand::thread_rng().gen::<u64>()),
            detector: req.detector.clone(),
            scope: req.scope,
            value: req.value.clone(),
            reason,
            created_by: who.id.to_string(),
            created_at: now,
            expires_at: now + i64::from(days) * DAY_MS,
            backtest,
            lifted_at: None,
            lifted_by: None,
        };
        e.detail = Some(format!(
            "suppression={} detector={} scope={:?} value={} reason={} days={days} would_have_hidden={} confirmed={}",
            s.id, s.detector, s.scope, s.value, s.reason, s.backtest.alerts, s.backtest.confirmed
        ));
        let body = serde_json::to_string(&s)
            .map_err(|err| GuardError::internal_from("suppression unwritable", err))?;
        self.store.put_case(KIND, &s.id, &body, None, e)?;
        metrics::counter!("wbguard_alert_suppressions_total").increment(1);
        Ok(s)
    }

    /// Lifts suppression `id` now (auditors; audited `alert_suppress_lift`).
    pub fn lift_suppression(
        &self,
        actor: Actor<'_>,
        id: &str,
        meta: &RequestMeta,
    ) -> Result<Suppression, GuardError> {
        let (who, mut e) =
            self.admin(actor, AdminAction::Investigate, "alert_suppress_lift", meta)?;
        e.detail = Some(format!("suppression={id}"));
        if !valid_id(id) {
            return Err(self.deny(
                e,
                GuardError::Invalid("a suppression id is S and 16 hex digits".into()),
            ));
        }
        let (mut s, before): (Suppression, String) = match self.case_file(KIND, id) {
            Ok(found) => found,
            Err(err) => return Err(self.deny(e, err)),
        };
        let now = self.clock.now();
        if !s.active(now) {
            return Err(self.deny(
                e,
                GuardError::Conflict(format!("suppression {id} is no longer in force")),
            ));
        }
        s.lifted_at = Some(now);
        s.lifted_by = Some(who.id.to_string());
        let body = serde_json::to_string(&s)
            .map_err(|err| GuardError::internal_from("suppression unwritable", err))?;
        self.store.put_case(KIND, id, &body, Some(&before), e)?;
        Ok(s)
    }

    /// Every suppression, newest first (auditors, admins).
    pub fn suppressions(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<Vec<Suppression>, GuardError> {
        self.admin(actor, AdminAction::ReadAlerts, "alert_suppress_list", meta)?;
        self.all_suppressions()
    }

    fn all_suppressions(&self) -> Result<Vec<Suppression>, GuardError> {
        let mut all: Vec<Suppression> = self
            .store
            .cases(KIND, 10_000)?
            .into_iter()
            .map(|(id, body)| {
                serde_json::from_str(&body).map_err(|e| {
                    GuardError::internal_from(format!("suppression {id} unreadable"), e)
                })
            })
            .collect::<Result<_, _>>()?;
        all.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(all)
    }

    /// `alerts` less (or only) those a suppression hides.
    pub(crate) fn apply_suppressions(
        &self,
        alerts: Vec<Alert>,
        which: SuppressedAlerts,
    ) -> Result<Vec<Alert>, GuardError> {
        if which == SuppressedAlerts::Include || alerts.is_empty() {
            return Ok(alerts);
        }
        let rules = self.all_suppressions()?;
        if rules.is_empty() {
            return Ok(if which == SuppressedAlerts::Only {
                Vec::new()
            } else {
                alerts
            });
        }
        let accounts = self.accounts_by_id()?;
        Ok(alerts
            .into_iter()
            .filter(|a| {
                let hidden = rules.iter().any(|r| r.hides(a, &accounts));
                hidden == (which == SuppressedAlerts::Only)
            })
            .collect())
    }
}
