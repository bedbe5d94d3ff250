//! Domain types of Waybill Guard: waybills and their parties, accounts and roles, purposes, views and decisions.
//!
//! Everything here is plain data plus validation. Validation errors name the field that is wrong and never echo
//! its value, because the values are personal data.
#![deny(missing_docs)]

mod access;
mod account;
mod alert;
mod error;
mod ids;
mod party;
mod phone;
mod waybill;
pub mod when;

pub use access::{Decision, DenyReason, Purpose, View};
pub use account::{Account, AccountStatus, Role};
pub use alert::{Alert, ALERT_EVIDENCE};
pub use error::CoreError;
pub use ids::{AccountId, MerchantId, OutletId, WaybillNo};
pub use party::{Address, Party};
pub use phone::{may_hold_phone, normalize_phone};
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

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC), for reports: proleptic Gregorian, from Howard
/// Hinnant's days-to-civil algorithm (a date crate for one line of a report is not worth its weight).
pub fn utc_text(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn utc_text_of_known_times() {
        assert_eq!(super::utc_text(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc_text(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(
            super::utc_text(1_795_392_000_000 + 3_723_000),
            "2026-11-23 01:02:03"
        );
        assert_eq!(super::utc_text(-1), "1969-12-31 23:59:59");
    }
}
