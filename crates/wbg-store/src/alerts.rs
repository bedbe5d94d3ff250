//! Alerts and their triage: what the risk engine raised, and what the analysts made of it. Every triage change
//! is written with its audit entry in one transaction and kept in the alert's history.
use crate::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wbg_audit::AuditEntry;
use wbg_core::{Alert, Millis};

/// The states an alert's triage moves through.
pub const ALERT_STATES: [&str; 4] = ["new", "investigating", "confirmed", "false_positive"];

/// Filter for listing alerts.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only this account's.
    pub account: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only alerts in this triage state.
    pub state: Option<String>,
    /// Only alerts raised at or after this time.
    pub since: Option<Millis>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// One triage change, as the alert's history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriageRecord {
    /// When.
    pub at: Millis,
    /// The analyst's account.
    pub by: String,
    /// The state it moved to (unchanged states are repeated).
    pub state: String,
    /// Who works it from then on (`None`: nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The reason code given (`legitimate_work`, `confirmed_leak`, …).
    pub reason: String,
    /// The analyst's note, as the store keeps it (the guard seals notes: they may name people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The audit entry that records the change.
    pub audit_seq: u64,
}

/// The compare-and-set of [`Alerts::triage_alert`], as every backend judges it: the alert's stored revision
/// (`None`: no such alert) against the one the change was made against.
pub fn check_revision(id: i64, stored: Option<i64>, expect: u64) -> Result<(), StoreError> {
    match stored {
        None => Err(StoreError::NotFound(format!("alert {id}"))),
        Some(r) if r as u64 != expect => Err(StoreError::Conflict(format!(
            "alert {id} was triaged meanwhile (revision {r}, not {expect})"
        ))),
        Some(_) => Ok(()),
    }
}

/// Where alerts are kept.
pub trait Alerts {
    /// Stores an alert (its `id` is ignored); returns its id.
    fn insert_alert(&self, alert: &Alert) -> Result<i64, StoreError>;
    /// Lists alerts, newest first.
    fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;
    /// One alert.
    fn alert(&self, id: i64) -> Result<Option<Alert>, StoreError>;
    /// Up to `limit` alerts with ids above `after`, oldest first: what a live queue has not seen yet.
    fn alerts_after(&self, after: i64, limit: usize) -> Result<Vec<Alert>, StoreError>;
    /// Applies a triage change to alert `id` with `audit`, as a compare-and-set on the alert's `revision`
    /// (`Conflict` when someone changed it since revision `expect`; `NotFound` when there is no such alert): the
    /// state, assignee, `updated_at` (the record's time) and revision + 1, and the record added to its history.
    /// `record.audit_seq` is ignored (the store fills it in). Returns the entry's seq.
    fn triage_alert(
        &self,
        id: i64,
        expect: u64,
        record: &TriageRecord,
        audit: AuditEntry,
    ) -> Result<u64, StoreError>;
    /// An alert's triage history, oldest first.
    fn alert_history(&self, id: i64) -> Result<Vec<TriageRecord>, StoreError>;
}
