//! Domain types of Waybill Guard: waybills and their parties, accounts and roles, purposes, views and decisions.
//!
//! Everything here is plain data plus validation. Validation errors name the field that is wrong and never echo
//! its value, because the values are personal data.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod access;
mod account;
mod alert;
mod error;
mod ids;
mod party;
mod phone;
mod waybill;

pub use access::{Decision, DenyReason, Purpose, View};
pub use account::{Account, AccountStatus, Role};
pub use alert::Alert;
pub use error::CoreError;
pub use ids::{AccountId, MerchantId, OutletId, WaybillNo};
pub use party::{Address, Party};
pub use phone::normalize_phone;
pub use waybill::{EventType, NewWaybill, StatusEvent, WaybillMeta, WaybillStatus};

/// Milliseconds since the Unix epoch; every timestamp in the system uses it.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
