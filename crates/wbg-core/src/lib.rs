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

/// Where "now" comes from. The guard asks its clock for every decision, so that a simulation can run days of
/// traffic in seconds through the real code paths.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now_millis()
    }
}

/// A clock that only moves when told to (simulations, tests).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `at`.
    pub fn new(at: Millis) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(at))
    }

    /// Sets the time; a clock never runs backwards, so an earlier time is ignored.
    pub fn set(&self, at: Millis) {
        self.0.fetch_max(at, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
