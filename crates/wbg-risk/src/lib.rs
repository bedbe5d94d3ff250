//! The streaming risk engine: it watches every access to personal data and contains accounts behaving like the
//! seed incidents (T1 rented accounts, T2 insider harvesting, T3 couriers selling fresh deliveries, T4 label
//! trojans) while their haul is still small.
//!
//! ```text
//! access ─▶ detectors (out_of_scope, velocity, distinct_records, cadence, enumeration, post_delivery,
//!           off_shift, device, shared_device, region, reprint, dormant) ─▶ signals (points + evidence)
//!        ─▶ two decaying scores per account (burst: an hour; drift: a week)
//!        ─▶ thresholds ─▶ alert │ masked views only │ suspend
//! ```
//!
//! The guard consults the [`Engine`] inline, as its [`RiskHook`], so the read after a threshold is already
//! capped or refused. Every detector is a named TOML section ([`RiskConfig`]) that can be tuned or switched off.
//!
//! ```
//! use wbg_risk::{Engine, RiskConfig, RiskHook, Access, RiskAction};
//! use wbg_core::{Account, AccountId, AccountStatus, OutletId, Purpose, Role};
//!
//! let engine = Engine::new(RiskConfig::from_toml("[score.burst]\nalert = 5.0\nmask = 10.0\nsuspend = 20.0")?);
//! let staff = Account {
//!     id: AccountId::parse("S001")?, role: Role::OutletStaff, outlet: Some(OutletId::parse("O001")?),
//!     merchant: None, status: AccountStatus::Active, status_reason: None, created_at: 0,
//!     status_since: 0,
//! };
//! // Guessing numbers that do not exist: a scraper's signature.
//! let mut last = RiskAction::Allow;
//! for i in 0..20 {
//!     let no = format!("YT{i:013}");
//!     let access = Access { account: &staff, waybill_no: &no, waybill: None, purpose: Purpose::ExceptionHandling,
//!         policy_view: None, ticket: None, at: i * 1000, device: None, ip: None };
//!     last = engine.assess(&access).action;
//! }
//! assert_eq!(last, RiskAction::Refuse, "suspended, and refused from then on");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod config;
mod detect;
mod engine;
mod event;
mod hook;
mod rate;

pub use config::{PerRole, RiskConfig, ScoreConfig, Thresholds};
pub use detect::{DetectorsConfig, Signal};
pub use engine::{Engine, Level, Standing};
pub use event::{local_channel, AccessEvent, EventSink, LocalSink};
pub use hook::{Access, NoRisk, RiskAction, RiskAlert, RiskHook, RiskVerdict};
pub use rate::{RateLimitConfig, RateLimiter};

/// What can go wrong in the engine's set-up.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The configuration is not valid.
    #[error("risk configuration: {0}")]
    Config(String),
    /// A state snapshot could not be written or read (the serialiser's error kept as the source).
    #[error("risk engine snapshot: {0}")]
    Snapshot(#[source] Box<dyn std::error::Error + Send + Sync>),
}
