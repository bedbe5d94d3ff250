//! The risk hook: what the guard asks about every read once the policy has decided, and what it may answer
//! (allow, step the view down, refuse, suspend), with an alert when it has something to say.
use serde::{Deserialize, Serialize};
use wbg_core::{Account, Millis, Purpose, View, WaybillMeta};

/// One read, as the hook sees it: identifiers and routing metadata only, never personal data.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Who.
    pub account: &'a Account,
    /// The waybill number asked for, once it has parsed as one.
    pub waybill_no: &'a str,
    /// Its metadata; `None` when no such waybill exists (guessed numbers are how scrapers enumerate).
    pub waybill: Option<&'a WaybillMeta>,
    /// For what.
    pub purpose: Purpose,
    /// What the policy would grant (`None`: the policy denied, or there is no such waybill).
    pub policy_view: Option<View>,
    /// Customer-service ticket given with the request.
    pub ticket: Option<&'a str>,
    /// When.
    pub at: Millis,
    /// Device id presented, if any.
    pub device: Option<&'a str>,
    /// Client address, if known.
    pub ip: Option<&'a str>,
}

/// What the hook wants done with a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    /// Go ahead with the policy's view.
    Allow,
    /// Grant at most this view.
    Cap(View),
    /// Refuse this read.
    Refuse,
    /// Refuse, and suspend the account.
    Suspend,
}

/// An alert the hook asks the guard to store. Its detail must hold no personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskAlert {
    /// What was noticed, e.g. `rate_limit` or `risk_score`.
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// The explanation (the engine writes JSON: signals, scores, evidence).
    pub detail: String,
}

/// The hook's answer, with an alert to store when it has something to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskVerdict {
    /// The action.
    pub action: RiskAction,
    /// An alert to raise, if any.
    pub alert: Option<RiskAlert>,
}

impl RiskVerdict {
    /// Allow, nothing to report.
    pub fn allow() -> RiskVerdict {
        RiskVerdict {
            action: RiskAction::Allow,
            alert: None,
        }
    }
}

/// Consulted inline on every read; must be fast and must not block. It runs inside the read's store transaction
/// (so that its verdict and the audit entry commit together): it decides from its own memory and must never call
/// the store. Alerts it asks for are stored by the guard once the read has committed.
pub trait RiskHook: Send + Sync {
    /// Assesses one read. Called for denied reads and unknown waybills too, which are signals in themselves.
    fn assess(&self, access: &Access<'_>) -> RiskVerdict;

    /// Told when an administrator reinstates a suspended account, so that the hook can start it afresh.
    fn reinstated(&self, _account: &str) {}

    /// The settings in force (score thresholds included), for a backtest to replay reads under; `None` for a
    /// hook that has none.
    fn settings(&self) -> Option<crate::RiskConfig> {
        None
    }

    /// Where `account` stands now in this hook's memory (its scores and level), if it has any.
    fn standing(&self, _account: &str) -> Option<crate::Standing> {
        None
    }

    /// Puts new score thresholds in force; whether that changed anything (`Ok(false)` too for a hook that has
    /// none to change).
    fn set_score(&self, _score: &crate::ScoreConfig) -> Result<bool, crate::RiskError> {
        Ok(false)
    }
}

/// A hook that allows everything (for tools and benchmarks that measure the rest of the path).
#[derive(Debug, Default)]
pub struct NoRisk;

impl RiskHook for NoRisk {
    fn assess(&self, _: &Access<'_>) -> RiskVerdict {
        RiskVerdict::allow()
    }
}
