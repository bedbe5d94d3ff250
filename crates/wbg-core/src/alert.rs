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
}
