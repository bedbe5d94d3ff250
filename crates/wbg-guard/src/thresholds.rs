//! Risk thresholds changed the way suppressions are: measured before they are applied. A proposal (new alert /
//! mask / suspend thresholds for the fast and the slow score) is **backtested** over the last 30 days of guarded
//! reads from the audit log: every read is replayed, in order, through two fresh engines with the settings in
//! force — one with the thresholds in force, one with the proposal — and the answer says what each would have
//! done (alerts, masks, suspensions, accounts alerted on) and which alerts the proposal would have **hidden**, with
//! the triage state analysts gave the alert actually raised then (so "would hide 12 alerts, 3 of them later
//! confirmed"), and which it would have **added**. Applying it (auditors) runs the backtest again, refuses a
//! proposal that hides confirmed alerts unless told to accept that, records it with a reason code and the
//! figures (audited `risk_thresholds`), keeps it in the store — every node takes it in within its upkeep's next
//! refresh, and a restart keeps it — and puts it in force at once.
//!
//! The replay starts from no state 30 days ago and sees what the log recorded: the view each read was given
//! (after any cap the engine then put on it) rather than what the policy offered. It is an estimate of the
//! difference, not a record of the past.
use crate::guard::{Actor, RequestMeta};
use crate::{Guard, GuardError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use wbg_core::{Account, AccountStatus, Millis, Purpose, View, WaybillNo};
use wbg_policy::AdminAction;
use wbg_risk::{Engine, RiskAction, RiskHook, ScoreConfig, Thresholds};
use wbg_store::AlertFilter;

const KIND: &str = "risk_thresholds";
const ID: &str = "score";
const DAY_MS: Millis = 86_400_000;
/// How far back a threshold backtest replays.
pub const THRESHOLD_BACKTEST_DAYS: i64 = 30;
/// Reads a backtest replays at most (the newest).
const MAX_READS: usize = 2_000_000;
/// How close in time an alert of one run must be to one of the other to be the same alert.
const SAME_ALERT_MS: Millis = 10 * 60_000;
/// Why thresholds change.
pub const THRESHOLD_REASONS: &[&str] = &[
    "too_many_false_positives",
    "missed_confirmed_leaks",
    "workload_changed",
    "policy_changed",
];

/// A proposed change: new thresholds for either score (the other kept as it is).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdProposal {
    /// The fast score's alert / mask / suspend thresholds.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub burst: Option<Thresholds>,
    /// The slow score's.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub drift: Option<Thresholds>,
    /// Applying: why (one of [`THRESHOLD_REASONS`]).
    #[serde(default)]
    pub reason: Option<String>,
    /// Applying: go ahead although the backtest finds confirmed alerts the proposal would have hidden.
    #[serde(default)]
    pub accept_confirmed: bool,
}

/// What one set of thresholds would have done over the replayed reads.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ReplayOutcome {
    /// Alerts raised (`risk_alert`, `risk_mask`, `risk_suspend`).
    pub alerts: usize,
    /// Reads stepped down to the masked view.
    pub masked_reads: usize,
    /// Accounts suspended.
    pub suspensions: usize,
    /// Accounts alerted on at least once.
    pub accounts_alerted: usize,
}

/// A threshold backtest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ThresholdBacktest {
    /// Replayed from (ms).
    pub from: Millis,
    /// To (ms).
    pub to: Millis,
    /// Reads replayed.
    pub reads: usize,
    /// The thresholds in force.
    #[schema(value_type = Object)]
    pub current: ScoreConfig,
    /// The proposal, whole.
    #[schema(value_type = Object)]
    pub proposed: ScoreConfig,
    /// What the thresholds in force would have done.
    pub under_current: ReplayOutcome,
    /// What the proposal would have done.
    pub under_proposal: ReplayOutcome,
    /// Alerts of the thresholds in force the proposal would not have raised.
    pub hidden: usize,
    /// Of those, alerts analysts confirmed (the alert raised then, triaged `confirmed`).
    pub hidden_confirmed: usize,
    /// Of those, alerts analysts marked false positives.
    pub hidden_false_positive: usize,
    /// Alerts the proposal would have raised that the thresholds in force did not.
    pub added: usize,
    /// Up to 20 of the hidden alerts.
    pub hidden_sample: Vec<HiddenAlert>,
}

/// An alert a proposal would have hidden.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HiddenAlert {
    /// The account.
    pub account: String,
    /// `risk_alert`, `risk_mask` or `risk_suspend`.
    pub kind: String,
    /// When (ms).
    pub at: Millis,
    /// The triage state of the alert raised then, if one matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The thresholds in force and where they come from.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThresholdsInForce {
    /// The score settings.
    #[schema(value_type = Object)]
    pub score: ScoreConfig,
    /// `config` (the configuration file) or `change` (applied over the API).
    pub source: String,
    /// Who applied the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Millis>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An account's scores after each of its reads, replayed from the log.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScorePath {
    /// The account.
    pub account: String,
    /// Replayed from (ms).
    pub from: Millis,
    /// To (ms).
    pub to: Millis,
    /// The thresholds the replay judged with (those in force).
    #[schema(value_type = Object)]
    pub thresholds: ScoreConfig,
    /// After each read, oldest first (at most 20,000: the newest).
    pub points: Vec<ScorePoint>,
    /// Every signal the detectors gave in the replay, per detector: how many and how many points in all.
    pub detectors: Vec<DetectorTally>,
    /// Where this node's engine has the account now (absent when it has not seen it since it started).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub live: Option<wbg_risk::Standing>,
}

/// An account's scores after one read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScorePoint {
    /// When (ms).
    pub at: Millis,
    /// The fast score.
    pub burst: f64,
    /// The slow score.
    pub drift: f64,
    /// `normal`, `alert`, `masked` or `suspended`.
    pub level: String,
}

/// One detector's share of a score path.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DetectorTally {
    /// The detector.
    pub detector: String,
    /// Signals it gave.
    pub signals: usize,
    /// Points they added.
    pub points: f64,
}

/// Reads a score path replays at most.
const MAX_PATH_READS: usize = 200_000;
/// Points a score path returns at most.
const MAX_POINTS: usize = 20_000;

/// One read to replay.
struct Replayed {
    at: Millis,
    account: String,
    waybill: String,
    purpose: Purpose,
    view: Option<View>,
    ticket: Option<String>,
    device: Option<String>,
    ip: Option<String>,
}

/// An alert a replay raised.
struct Raised {
    account: String,
    kind: String,
    at: Millis,
}

impl Guard {
    /// The thresholds in force (auditors and admins).
    pub fn thresholds(
        &self,
        actor: Actor<'_>,
        meta: &RequestMeta,
    ) -> Result<ThresholdsInForce, GuardError> {
        self.admin_any(
            actor,
            &[AdminAction::Investigate, AdminAction::ReadAlerts],
            "risk_thresholds_read",
            meta,
        )?;
        let score = self.current_score()?;
        Ok(match self.stored_thresholds()? {
            Some((t, _)) => t,
            None => ThresholdsInForce {
                score,
                source: "config".into(),
                by: None,
                at: None,
                reason: None,
            },
        })
    }

    /// Backtests `p` (auditors). Audited (`risk_thresholds_backtest`).
    pub fn backtest_thresholds(
        &self,
        actor: Actor<'_>,
        p: &ThresholdProposal,
        meta: &RequestMeta,
    ) -> Result<ThresholdBacktest, GuardError> {
        let (_, mut e) = self.admin(
            actor,
            AdminAction::Investigate,
            "risk_thresholds_backtest",
            meta,
        )?;
        let bt = match self.run_threshold_backtest(p) {
            Ok(bt) => bt,
            Err(err) => return Err(self.deny(e, err)),
        };
        e.detail = Some(figures(&bt));
        self.store.append_audit(e)?;
        Ok(bt)
    }

    /// Applies `p` (auditors): backtested first; refused (409) when it would have hidden confirmed alerts,
    /// unless `accept_confirmed`. Audited (`risk_thresholds`, with the reason and the backtest's figures).
    pub fn apply_thresholds(
        &self,
        actor: Actor<'_>,
        p: &ThresholdProposal,
        meta: &RequestMeta,
    ) -> Result<ThresholdsInForce, GuardError> {
        let (who, mut e) = self.admin(actor, AdminAction::Investigate, "risk_thresholds", meta)?;
        let checked = match p.reason.as_deref() {
            Some(r) if THRESHOLD_REASONS.contains(&r) => self.run_threshold_backtest(p),
            _ => Err(GuardError::Invalid(format!(
                "reason must be one of {}",
                THRESHOLD_REASONS.join(", ")
            ))),
        };
        let bt = match checked {
            Ok(bt) if bt.hidden_confirmed > 0 && !p.accept_confirmed => {
                let err = GuardError::Conflict(format!(
                    "over the last {THRESHOLD_BACKTEST_DAYS} days it would have hidden {} alerts, {} of them later \
                     confirmed: set accept_confirmed to apply it anyway",
                    bt.hidden, bt.hidden_confirmed
                ));
                return Err(self.deny(e, err));
            }
            Ok(bt) => bt,
            Err(err) => return Err(self.deny(e, err)),
        };
        let reason = p.reason.clone().unwrap_or_default();
        let t = ThresholdsInForce {
            score: bt.proposed.clone(),
            source: "change".into(),
            by: Some(who.id.to_string()),
            at: Some(e.time),
            reason: Some(reason.clone()),
        };
        e.detail = Some(format!(
            "reason={reason} {}{}",
            figures(&bt),
            if p.accept_confirmed {
                " accept_confirmed"
            } else {
                ""
            }
        ));
        let body = serde_json::to_string(&t)
            .map_err(|err| GuardError::internal_from("thresholds", err))?;
        let before = self.store.case(KIND, ID)?;
        self.store.put_case(KIND, ID, &body, before.as_deref(), e)?;
        self.risk
            .set_score(&t.score)
            .map_err(|err| GuardError::internal_from("thresholds", err))?;
        metrics::counter!("wbguard_risk_threshold_changes_total").increment(1);
        Ok(t)
    }

    /// Puts the thresholds the store keeps (a change applied on any node, before a restart too) in force here;
    /// the server's upkeep calls it.
    pub fn refresh_thresholds(&self) -> Result<(), GuardError> {
        if let Some(score) = self.stored_score()? {
            self.risk
                .set_score(&score)
                .map_err(|err| GuardError::internal_from("stored thresholds", err))?;
        }
        Ok(())
    }

    /// `account`'s fast and slow scores after each of its guarded reads in `[from, to)` (at most 30 days),
    /// replayed from the audit index through a fresh engine with the settings in force, with what each detector
    /// contributed, and where this node's engine has it now (auditors and admins; audited `risk_scores`). The
    /// replay starts from nothing at `from` and sees this account alone, so detectors that compare with peers
    /// see no peers: a picture of its own pattern, beside the live figures.
    pub fn score_path(
        &self,
        actor: Actor<'_>,
        account: &str,
        from: Millis,
        to: Millis,
        meta: &RequestMeta,
    ) -> Result<ScorePath, GuardError> {
        let (_, mut e) = self.admin_any(
            actor,
            &[AdminAction::ReadAlerts, AdminAction::Investigate],
            "risk_scores",
            meta,
        )?;
        e.detail = Some(format!("account={account}"));
        let checked = (|| {
            if from >= to || to - from > THRESHOLD_BACKTEST_DAYS * DAY_MS {
                return Err(GuardError::Invalid(format!(
                    "the window must end after it starts and span at most {THRESHOLD_BACKTEST_DAYS} days"
                )));
            }
            let id = wbg_core::AccountId::parse(account)
                .map_err(|_| GuardError::Invalid("not an account id".into()))?;
            let mut who = self
                .store
                .account(&id)?
                .ok_or_else(|| GuardError::NotFound(format!("account {account}")))?;
            // Replayed as the account was when it read: active.
            who.status = AccountStatus::Active;
            let settings = self.risk.settings().ok_or_else(|| {
                GuardError::Conflict("this node's risk hook has no scores".into())
            })?;
            Ok((who, settings))
        })();
        let (replayed_as, settings) = match checked {
            Ok(c) => c,
            Err(err) => return Err(self.deny(e, err)),
        };
        let q = wbg_store::AuditQuery {
            account: Some(account.to_owned()),
            action: Some("view".into()),
            from: Some(from),
            to: Some(to),
            ..wbg_store::AuditQuery::default()
        };
        let mut reads = Vec::new();
        self.each_indexed(q, MAX_PATH_READS, |e| {
            if let Some(r) = replayed(e) {
                reads.push(r);
            }
            Ok(())
        })?;
        reads.sort_by_key(|r| r.at);
        let waybills = self.waybills_of(&reads)?;
        let engine = Engine::new(settings.clone());
        let mut points = Vec::with_capacity(reads.len().min(MAX_POINTS));
        let mut tally: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
        let mut seen_signals = 0usize;
        for r in &reads {
            let then = waybills
                .get(&r.waybill)
                .and_then(Option::as_ref)
                .map(|(meta, events)| crate::replay::as_of(meta, events, r.at).0);
            engine.assess(&r.access(&replayed_as, then.as_ref()));
            let Some(st) = engine.standing(account) else {
                continue;
            };
            // The standing keeps the latest signals: those past the ones already counted are this read's.
            let fresh = st.signals.iter().filter(|s| s.at >= r.at).count();
            for s in st.signals.iter().rev().take(fresh) {
                let t = tally.entry(s.detector.to_string()).or_default();
                t.0 += 1;
                t.1 += s.points;
            }
            seen_signals += fresh;
            points.push(ScorePoint {
                at: r.at,
                burst: (st.burst_score * 10.0).round() / 10.0,
                drift: (st.drift_score * 10.0).round() / 10.0,
                level: serde_json::to_value(st.level)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            });
        }
        if points.len() > MAX_POINTS {
            points.drain(..points.len() - MAX_POINTS);
        }
        e.detail = Some(format!(
            "account={account} reads={} signals={seen_signals}",
            reads.len()
        ));
        self.store.append_audit(e)?;
        Ok(ScorePath {
            account: account.to_owned(),
            from,
            to,
            thresholds: settings.score,
            points,
            detectors: tally
                .into_iter()
                .map(|(detector, (signals, points))| DetectorTally {
                    detector,
                    signals,
                    points: (points * 10.0).round() / 10.0,
                })
                .collect(),
            live: self.risk.standing(account),
        })
    }

    /// Each replayed read's waybill with its scans, to see it as it was at each read.
    fn waybills_of(&self, reads: &[Replayed]) -> Result<Waybills, GuardError> {
        let mut waybills: Waybills = HashMap::new();
        for r in reads {
            if !waybills.contains_key(&r.waybill) {
                let found = match WaybillNo::parse(&r.waybill) {
                    Ok(no) => match self.store.waybill(&no)? {
                        Some((meta, _)) => Some((meta, self.store.events(&no)?)),
                        None => None,
                    },
                    Err(_) => None,
                };
                waybills.insert(r.waybill.clone(), found);
            }
        }
        Ok(waybills)
    }

    /// The score thresholds a change applied over the API put in force (kept in the store), if any: what a
    /// separate risk worker, which has an engine of its own, takes in.
    pub fn stored_score(&self) -> Result<Option<ScoreConfig>, GuardError> {
        Ok(self.stored_thresholds()?.map(|(t, _)| t.score))
    }

    fn stored_thresholds(&self) -> Result<Option<(ThresholdsInForce, String)>, GuardError> {
        match self.store.case(KIND, ID)? {
            None => Ok(None),
            Some(body) => {
                let t = serde_json::from_str(&body).map_err(|err| {
                    GuardError::internal_from("stored thresholds unreadable", err)
                })?;
                Ok(Some((t, body)))
            }
        }
    }

    fn current_score(&self) -> Result<ScoreConfig, GuardError> {
        self.risk
            .settings()
            .map(|c| c.score)
            .ok_or_else(|| GuardError::Conflict("this node's risk hook has no thresholds".into()))
    }

    fn run_threshold_backtest(
        &self,
        p: &ThresholdProposal,
    ) -> Result<ThresholdBacktest, GuardError> {
        let settings = self.risk.settings().ok_or_else(|| {
            GuardError::Conflict("this node's risk hook has no thresholds to change".into())
        })?;
        if p.burst.is_none() && p.drift.is_none() {
            return Err(GuardError::Invalid(
                "propose burst or drift thresholds (alert, mask, suspend)".into(),
            ));
        }
        let current = settings.score.clone();
        let mut proposed = current.clone();
        if let Some(b) = p.burst {
            proposed.burst = b;
        }
        if let Some(d) = p.drift {
            proposed.drift = d;
        }
        proposed
            .check()
            .map_err(|err| GuardError::Invalid(err.to_string()))?;
        let to = self.clock.now();
        let from = to - THRESHOLD_BACKTEST_DAYS * DAY_MS;
        let reads = self.reads_to_replay(from)?;
        let accounts: HashMap<String, Account> = self
            .store
            .accounts()?
            .into_iter()
            .map(|mut a| {
                // Replayed as the account was when it read: active.
                a.status = AccountStatus::Active;
                (a.id.to_string(), a)
            })
            .collect();
        let waybills = self.waybills_of(&reads)?;
        let mut with = settings.clone();
        with.score = proposed.clone();
        let (under_current, raised_current) = replay_under(settings, &reads, &accounts, &waybills);
        let (under_proposal, raised_proposal) = replay_under(with, &reads, &accounts, &waybills);
        let matched = |a: &Raised, among: &[Raised]| {
            among.iter().any(|b| {
                b.account == a.account && b.kind == a.kind && (b.at - a.at).abs() <= SAME_ALERT_MS
            })
        };
        let hidden: Vec<&Raised> = raised_current
            .iter()
            .filter(|a| !matched(a, &raised_proposal))
            .collect();
        let added = raised_proposal
            .iter()
            .filter(|a| !matched(a, &raised_current))
            .count();
        // What analysts made of the alerts actually raised then.
        let stored = self.store.alerts(&AlertFilter {
            since: Some(from - SAME_ALERT_MS),
            limit: 1_000_000,
            ..AlertFilter::default()
        })?;
        let state_of = |a: &Raised| {
            stored
                .iter()
                .find(|s| {
                    s.account == a.account
                        && s.kind == a.kind
                        && (s.at - a.at).abs() <= SAME_ALERT_MS
                })
                .map(|s| s.state.as_str())
        };
        let count = |state: &str| hidden.iter().filter(|a| state_of(a) == Some(state)).count();
        Ok(ThresholdBacktest {
            from,
            to,
            reads: reads.len(),
            current,
            proposed,
            under_current,
            under_proposal,
            hidden: hidden.len(),
            hidden_confirmed: count("confirmed"),
            hidden_false_positive: count("false_positive"),
            added,
            hidden_sample: hidden
                .iter()
                .take(20)
                .map(|a| HiddenAlert {
                    account: a.account.clone(),
                    kind: a.kind.clone(),
                    at: a.at,
                    state: state_of(a).map(str::to_owned),
                })
                .collect(),
        })
    }

    /// The guarded reads since `from`, oldest first (at most the newest [`MAX_READS`]).
    fn reads_to_replay(&self, from: Millis) -> Result<Vec<Replayed>, GuardError> {
        let mut reads = Vec::new();
        self.entries_since(from, |_, e| {
            if reads.len() < MAX_READS {
                reads.extend(replayed(e));
            }
        })?;
        reads.sort_by_key(|r| r.at);
        Ok(reads)
    }
}

/// A guarded read as the log recorded it, ready to replay; `None` for any other entry.
fn replayed(e: wbg_audit::AuditEntry) -> Option<Replayed> {
    if e.action != "view" {
        return None;
    }
    let (Some(waybill), Some(Ok(purpose))) = (e.waybill, e.purpose.as_deref().map(Purpose::parse))
    else {
        return None;
    };
    let ticket = e.detail.as_deref().and_then(|d| {
        d.split("; ")
            .find_map(|part| part.strip_prefix("ticket="))
            .map(str::to_owned)
    });
    let view = match (e.decision.as_str(), e.view.as_deref()) {
        ("allow", Some("full")) => Some(View::Full),
        ("allow", Some("masked")) => Some(View::Masked),
        ("allow", Some("routing")) => Some(View::Routing),
        _ => None,
    };
    Some(Replayed {
        at: e.time,
        account: e.account,
        waybill,
        purpose,
        view,
        ticket,
        device: e.device,
        ip: e.ip,
    })
}

impl Replayed {
    /// The read as the engine is shown it, by `account` on the waybill as it was then.
    fn access<'a>(
        &'a self,
        account: &'a Account,
        then: Option<&'a wbg_core::WaybillMeta>,
    ) -> wbg_risk::Access<'a> {
        wbg_risk::Access {
            account,
            waybill_no: &self.waybill,
            waybill: then,
            purpose: self.purpose,
            policy_view: self.view,
            ticket: self.ticket.as_deref(),
            at: self.at,
            device: self.device.as_deref(),
            ip: self.ip.as_deref(),
        }
    }
}

/// Each replayed waybill with its scans, to see it as it was at each read.
type Waybills = HashMap<String, Option<(wbg_core::WaybillMeta, Vec<wbg_store::EventRecord>)>>;

/// The reads replayed through a fresh engine with `settings`: what it did, and the alerts it raised.
fn replay_under(
    settings: wbg_risk::RiskConfig,
    reads: &[Replayed],
    accounts: &HashMap<String, Account>,
    waybills: &Waybills,
) -> (ReplayOutcome, Vec<Raised>) {
    let engine = Engine::new(settings);
    let mut out = ReplayOutcome::default();
    let mut raised = Vec::new();
    let mut alerted = std::collections::HashSet::new();
    for r in reads {
        let Some(account) = accounts.get(&r.account) else {
            continue;
        };
        let then = waybills
            .get(&r.waybill)
            .and_then(Option::as_ref)
            .map(|(meta, events)| crate::replay::as_of(meta, events, r.at).0);
        let verdict = engine.assess(&r.access(account, then.as_ref()));
        match verdict.action {
            RiskAction::Cap(View::Masked) if r.view == Some(View::Full) => out.masked_reads += 1,
            RiskAction::Suspend => out.suspensions += 1,
            _ => {}
        }
        if let Some(a) = verdict.alert {
            if a.kind.starts_with("risk_") {
                out.alerts += 1;
                alerted.insert(r.account.clone());
                raised.push(Raised {
                    account: r.account.clone(),
                    kind: a.kind,
                    at: r.at,
                });
            }
        }
    }
    out.accounts_alerted = alerted.len();
    (out, raised)
}

fn figures(bt: &ThresholdBacktest) -> String {
    let t = |x: &Thresholds| format!("{}/{}/{}", x.alert, x.mask, x.suspend);
    format!(
        "burst={} drift={} reads={} alerts={}->{} hidden={} confirmed={} false_positive={} added={}",
        t(&bt.proposed.burst),
        t(&bt.proposed.drift),
        bt.reads,
        bt.under_current.alerts,
        bt.under_proposal.alerts,
        bt.hidden,
        bt.hidden_confirmed,
        bt.hidden_false_positive,
        bt.added
    )
}
