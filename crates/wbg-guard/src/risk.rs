//! The risk hook: the guard asks it about every read once the policy has decided, and it may refuse the read
//! or step the view down. The streaming risk engine will implement [`RiskHook`]; until then [`RateLimiter`]
//! holds each account to a per-minute budget of personal-data reads.
use std::collections::HashMap;
use std::sync::Mutex;
use wbg_core::{Account, Millis, Purpose, View, WaybillMeta};

/// One read, as the hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Who.
    pub account: &'a Account,
    /// Which waybill (metadata only).
    pub waybill: &'a WaybillMeta,
    /// For what.
    pub purpose: Purpose,
    /// What the policy would grant (`None`: the policy denied).
    pub policy_view: Option<View>,
    /// When.
    pub at: Millis,
    /// Device id presented, if any.
    pub device: Option<&'a str>,
    /// Client address, if known.
    pub ip: Option<&'a str>,
}

/// What the hook wants done with a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The hook's answer, with an alert to store when it has something to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskVerdict {
    /// The action.
    pub action: RiskAction,
    /// `(kind, severity, detail)` of an alert to raise, if any. Detail must hold no personal data.
    pub alert: Option<(String, String, String)>,
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
    /// Assesses one read. Called for denied reads too (`policy_view == None`), which are signals in themselves.
    fn assess(&self, access: &Access<'_>) -> RiskVerdict;
}

/// A hook that allows everything (for tools and benchmarks that measure the rest of the path).
#[derive(Debug, Default)]
pub struct NoRisk;

impl RiskHook for NoRisk {
    fn assess(&self, _: &Access<'_>) -> RiskVerdict {
        RiskVerdict::allow()
    }
}

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

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Millis,
    last_alert: Option<Millis>,
}

/// A token bucket per account. Reads the policy denied cost as much as granted ones: probing other outlets'
/// waybills is exactly what a rented account does.
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
        let per_ms = self.cfg.reads_per_minute as f64 / 60_000.0;
        let cap = self.cfg.burst.max(1) as f64;
        let Ok(mut buckets) = self.buckets.lock() else {
            // Fail closed: a broken limiter must not wave reads through.
            return RiskVerdict {
                action: RiskAction::Refuse,
                alert: None,
            };
        };
        let b = buckets
            .entry(a.account.id.as_str().to_owned())
            .or_insert(Bucket {
                tokens: cap,
                last: a.at,
                last_alert: None,
            });
        b.tokens = (b.tokens + (a.at - b.last).max(0) as f64 * per_ms).min(cap);
        b.last = a.at.max(b.last);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return RiskVerdict::allow();
        }
        // One alert per account per minute, so a scraper cannot flood the alert table.
        let alert = if b.last_alert.is_none_or(|t| a.at - t >= 60_000) {
            b.last_alert = Some(a.at);
            Some((
                "rate_limit".to_owned(),
                "warning".to_owned(),
                format!(
                    "account {} exceeded {} personal-data reads per minute (burst {}); last waybill {}",
                    a.account.id, self.cfg.reads_per_minute, self.cfg.burst, a.waybill.waybill_no
                ),
            ))
        } else {
            None
        };
        RiskVerdict {
            action: RiskAction::Refuse,
            alert,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wbg_core::{
        AccountId, AccountStatus, MerchantId, OutletId, Role, WaybillNo, WaybillStatus,
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
            waybill: &wb,
            purpose: Purpose::Delivery,
            policy_view: None,
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
