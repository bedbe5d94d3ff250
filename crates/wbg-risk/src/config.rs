//! The engine's settings, read from TOML: how scores decay, which score maps to which action, and each
//! detector's parameters. Every key is optional; the defaults are the shipped tuning.
use crate::detect::DetectorsConfig;
use crate::rate::RateLimitConfig;
use crate::RiskError;
use serde::{Deserialize, Serialize};
use wbg_core::Role;

/// Everything the engine can be told.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Scores and the actions their thresholds trigger.
    pub score: ScoreConfig,
    /// A hard per-account ceiling on reads, applied whatever the scores say.
    pub rate_limit: RateLimitConfig,
    /// The detectors.
    pub detectors: DetectorsConfig,
    /// Offset of the carrier's local time from UTC, in hours (shifts and days are local).
    pub utc_offset_hours: Option<i32>,
}

impl RiskConfig {
    /// Parses a TOML document; unknown keys are refused with their name, so a typo is not silently ignored.
    pub fn from_toml(text: &str) -> Result<RiskConfig, RiskError> {
        let cfg: RiskConfig = toml::from_str(text).map_err(|e| RiskError::Config(e.to_string()))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Refuses settings that parse but cannot be meant: half-lives that are not positive, thresholds out of
    /// order (an alert above the suspension would suspend before anyone is warned).
    pub fn check(&self) -> Result<(), RiskError> {
        self.score.check()
    }

    /// Local-time offset in milliseconds (China Standard Time unless configured).
    pub(crate) fn offset_ms(&self) -> i64 {
        i64::from(self.utc_offset_hours.unwrap_or(8)) * 3_600_000
    }
}

/// Two decaying scores per account: a fast one that catches bursts and a slow one that catches a drip of
/// reads spread over days. Each signal adds its points to both; each score has its own thresholds, and the
/// account's level is the higher of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// Half-life of the fast score, in minutes.
    pub burst_half_life_minutes: f64,
    /// Thresholds of the fast score.
    pub burst: Thresholds,
    /// Half-life of the slow score, in hours.
    pub drift_half_life_hours: f64,
    /// Thresholds of the slow score.
    pub drift: Thresholds,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            burst_half_life_minutes: 60.0,
            burst: Thresholds {
                alert: 12.0,
                mask: 25.0,
                suspend: 50.0,
            },
            drift_half_life_hours: 168.0,
            // A week of ordinary work stays under 15 (measured over the simulator's benign carrier).
            drift: Thresholds {
                alert: 30.0,
                mask: 50.0,
                suspend: 120.0,
            },
        }
    }
}

impl ScoreConfig {
    /// Refuses half-lives that are not positive and thresholds out of order (or not finite).
    pub fn check(&self) -> Result<(), RiskError> {
        if !(self.burst_half_life_minutes > 0.0
            && self.drift_half_life_hours > 0.0
            && self.burst_half_life_minutes.is_finite()
            && self.drift_half_life_hours.is_finite())
        {
            return Err(RiskError::Config(
                "score half-lives must be positive".into(),
            ));
        }
        for (name, t) in [("burst", &self.burst), ("drift", &self.drift)] {
            if !(0.0 < t.alert && t.alert <= t.mask && t.mask <= t.suspend && t.suspend.is_finite())
            {
                return Err(RiskError::Config(format!(
                    "score.{name}: thresholds must satisfy 0 < alert <= mask <= suspend"
                )));
            }
        }
        Ok(())
    }
}

/// Score thresholds: at `alert` an alert is raised, at `mask` the account sees masked views at most, at `suspend`
/// it is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Raise an alert.
    pub alert: f64,
    /// Cap the account's views at masked.
    pub mask: f64,
    /// Suspend the account.
    pub suspend: f64,
}

/// A number per role, for limits that differ by job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerRole {
    /// Couriers.
    pub courier: f64,
    /// Outlet staff.
    pub outlet_staff: f64,
    /// Customer service.
    pub customer_service: f64,
    /// Merchants.
    pub merchant: f64,
    /// Print stations.
    pub print_station: f64,
    /// Integrations.
    pub integration: f64,
    /// Auditors.
    pub auditor: f64,
    /// Administrators.
    pub admin: f64,
    /// Telephony gateways (they never read waybills: 0 unless set).
    #[serde(default)]
    pub telephony_gateway: f64,
    /// Outlet managers (they read no waybills: 0 unless set).
    #[serde(default)]
    pub outlet_manager: f64,
}

impl PerRole {
    /// The value for `role`.
    pub fn get(&self, role: Role) -> f64 {
        match role {
            Role::Courier => self.courier,
            Role::OutletStaff => self.outlet_staff,
            Role::CustomerService => self.customer_service,
            Role::Merchant => self.merchant,
            Role::PrintStation => self.print_station,
            Role::Integration => self.integration,
            Role::Auditor => self.auditor,
            Role::Admin => self.admin,
            Role::TelephonyGateway => self.telephony_gateway,
            Role::OutletManager => self.outlet_manager,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_default_and_typos_are_named() {
        let c = RiskConfig::from_toml("").unwrap();
        assert_eq!(c.score.burst.mask, ScoreConfig::default().burst.mask);
        let e = RiskConfig::from_toml("[score]\nburst_half_life = 3\n").unwrap_err();
        assert!(e.to_string().contains("burst_half_life"), "{e}");
        let e = RiskConfig::from_toml("[score.burst]\nalert = 10.0\nmask = 5.0\nsuspend = 20.0\n")
            .unwrap_err();
        assert!(e.to_string().contains("alert <= mask"), "{e}");
    }
}
