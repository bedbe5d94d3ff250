//! A per-account token bucket on personal-data reads: the simple hook the guard had before the engine, still
//! useful on its own (tools, tests) and as a hard ceiling.
use crate::hook::{Access, RiskAction, RiskAlert, RiskHook, RiskVerdict};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use wbg_core::Millis;

/// Settings of the per-account rate limit.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained personal-data reads per minute per account.
    pub reads_per_minute: u32,
    /// Reads an account may make in a burst above the sustained rate.
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // A courier on a 300-parcel day reads well under one record a minute on average; a person at a screen
        // rarely opens more than a couple a second. A scraper goes far faster.
        RateLimitConfig {
            reads_per_minute: 120,
            burst: 60,
        }
    }
}

/// One account's bucket.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Bucket {
    tokens: Option<f64>,
    last: Millis,
    last_alert: Option<Millis>,
}

impl RateLimitConfig {
    /// Takes a token for `a` from `b`: `allow()` when there was one, a refusal (with an alert at most once a
    /// minute, so a scraper cannot flood the alert table) when not.
    pub(crate) fn take(&self, b: &mut Bucket, a: &Access<'_>) -> RiskVerdict {
        let per_ms = f64::from(self.reads_per_minute) / 60_000.0;
        let cap = f64::from(self.burst.max(1));
        let tokens = match b.tokens {
            Some(t) => (t + (a.at - b.last).max(0) as f64 * per_ms).min(cap),
            None => cap,
        };
        b.last = a.at.max(b.last);
        if tokens >= 1.0 {
            b.tokens = Some(tokens - 1.0);
            return RiskVerdict::allow();
        }
        b.tokens = Some(tokens);
        let alert = if b.last_alert.is_none_or(|t| a.at - t >= 60_000) {
            b.last_alert = Some(a.at);
            Some(RiskAlert {
                kind: "rate_limit".to_owned(),
                severity: "warning".to_owned(),
                detail: format!(
                    "account {} exceeded {} personal-data reads per minute (burst {}); last waybill {}",
                    a.account.id, self.reads_per_minute, self.burst, a.waybill_no
                ),
            })
        } else {
            None
        };
        RiskVerdict {
            action: RiskAction::Refuse,
            alert,
        }
    }
}

/// A token bucket per account, as a hook of its own. Reads the policy denied cost as much as granted ones:
/// probing other outlets' waybills is exactly what a rented account does. (The engine keeps the same bucket in
/// its own per-account state.)
#[derive(Debug)]
pub struct RateLimiter {
    cfg: RateLimitConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter with these settings.
    pub fn new(cfg: RateLimitConfig) -> RateLimiter {
        RateLimiter {
            cfg,
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl RiskHook for RateLimiter {
    fn assess(&self, a: &Access<'_>) -> RiskVerdict {
        let Ok(mut buckets) = self.buckets.lock() else {
            // Fail closed: a broken limiter must not wave reads through.
            return RiskVerdict {
                action: RiskAction::Refuse,
                alert: None,
            };
        };
        let id = a.account.id.as_str();
        let b = match buckets.get_mut(id) {
            Some(b) => b,
            None => buckets.entry(id.to_owned()).or_default(),
        };
        self.cfg.take(b, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wbg_core::{
        Account, AccountId, AccountStatus, MerchantId, OutletId, Purpose, Role, WaybillMeta,
        WaybillNo, WaybillStatus,
    };

    #[test]
    fn bucket_refuses_after_burst_and_refills() {
        let rl = RateLimiter::new(RateLimitConfig {
            reads_per_minute: 60,
            burst: 3,
        });
        let acct = Account {
            id: AccountId::parse("C1").unwrap(),
            role: Role::Courier,
            outlet: None,
            merchant: None,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: 0,
            status_since: 0,
        };
        let wb = WaybillMeta {
            waybill_no: WaybillNo::parse("W1").unwrap(),
            merchant: MerchantId::parse("M").unwrap(),
            origin_outlet: OutletId::parse("O").unwrap(),
            destination_outlet: OutletId::parse("O").unwrap(),
            courier: None,
            status: WaybillStatus::Created,
            created_at: 0,
            updated_at: 0,
            signed_at: None,
            bucket: 0,
        };
        let at = |t| Access {
            account: &acct,
            waybill_no: "W1",
            waybill: Some(&wb),
            purpose: Purpose::Delivery,
            policy_view: None,
            ticket: None,
            at: t,
            device: None,
            ip: None,
        };
        for _ in 0..3 {
            assert_eq!(rl.assess(&at(0)).action, RiskAction::Allow);
        }
        let v = rl.assess(&at(0));
        assert_eq!(v.action, RiskAction::Refuse);
        assert!(v.alert.is_some());
        assert!(rl.assess(&at(10)).alert.is_none(), "one alert a minute");
        assert_eq!(
            rl.assess(&at(1_000)).action,
            RiskAction::Allow,
            "one read a second refills"
        );
    }
}
