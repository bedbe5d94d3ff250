//! Alerts: what the risk hook noticed about an account, stored and listed for people to act on.
use crate::Millis;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One alert. `detail` explains it in non-personal terms (counts, rates, waybill numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// Store-assigned id.
    pub id: i64,
    /// When it was raised.
    pub at: Millis,
    /// Account it concerns.
    pub account: String,
    /// Signal name, e.g. `rate_limit`.
    pub kind: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// Explanation.
    pub detail: String,
    /// The audit entries behind it, newest first: the read that raised it (when it was raised on a read), then
    /// the account's entries over the period its signals span (at most [`ALERT_EVIDENCE`] in all).
    #[serde(default)]
    pub audit_seqs: Vec<u64>,
    /// Triage state: `new`, `investigating`, `confirmed` or `false_positive`.
    #[serde(default = "new_state")]
    pub state: String,
    /// The analyst working it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// When its triage last changed (`at` until it does).
    #[serde(default)]
    pub updated_at: Millis,
    /// How many triage changes it has had: the compare-and-set token of the next.
    #[serde(default)]
    pub revision: u64,
}

/// The most audit seqs an alert carries.
pub const ALERT_EVIDENCE: usize = 100;

fn new_state() -> String {
    "new".into()
}

impl Alert {
    /// A new, untriaged alert (the store assigns its id).
    pub fn raised(
        at: Millis,
        account: impl Into<String>,
        kind: impl Into<String>,
        severity: impl Into<String>,
        detail: impl Into<String>,
    ) -> Alert {
        Alert {
            id: 0,
            at,
            account: account.into(),
            kind: kind.into(),
            severity: severity.into(),
            detail: detail.into(),
            audit_seqs: Vec::new(),
            state: new_state(),
            assignee: None,
            updated_at: at,
            revision: 0,
        }
    }
}
