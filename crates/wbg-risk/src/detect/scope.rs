//! Detectors about *what* is read: waybills outside the account's scope, parcels already delivered, and reads
//! concentrated on one other district.
use super::{role_in, Event, HourWindow, Ring, Signal};
use serde::{Deserialize, Serialize};
use wbg_core::{Role, WaybillStatus};

/// `[detectors.out_of_scope]`: a rented account probes other outlets' waybills (T1); a scraper guesses numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutOfScopeConfig {
    /// Run it.
    pub enabled: bool,
    /// Points for a read the policy refused.
    pub denied_points: f64,
    /// Points for a waybill number that does not exist.
    pub unknown_points: f64,
    /// Refusals an hour that pass without points (typos, a wrong scan).
    pub free_per_hour: u32,
}

impl Default for OutOfScopeConfig {
    fn default() -> Self {
        OutOfScopeConfig {
            enabled: true,
            denied_points: 3.0,
            unknown_points: 2.0,
            free_per_hour: 2,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct OutOfScopeState {
    hour: HourWindow,
}

impl OutOfScopeConfig {
    pub(crate) fn observe(&self, st: &mut OutOfScopeState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled || !(ev.denied || ev.unknown) {
            return None;
        }
        let n = st.hour.add(ev.at());
        if n <= self.free_per_hour {
            return None;
        }
        let (points, what) = match ev.access.waybill {
            Some(w) => (
                self.denied_points,
                format!(
                    "policy refused waybill {} ({} -> {})",
                    w.waybill_no, w.origin_outlet, w.destination_outlet
                ),
            ),
            None => (
                self.unknown_points,
                "asked for a waybill that does not exist".into(),
            ),
        };
        Some(Signal {
            detector: "out_of_scope",
            points,
            at: ev.at(),
            evidence: format!("{what}; {n} refused or unknown in the last hour"),
        })
    }
}

/// `[detectors.post_delivery]`: full details of a parcel after it was signed for (T3: resold four hours later).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostDeliveryConfig {
    /// Run it.
    pub enabled: bool,
    /// Roles it watches (customer service answering a complaint about a delivered parcel is normal).
    pub roles: Vec<Role>,
    /// Minutes after signing in which reads are the hand-over itself (checking the name at the door), not news.
    pub quiet_minutes: i64,
    /// Points for a full read later within the grace period.
    pub points_in_grace: f64,
    /// Points for a read (granted or refused) after the grace period.
    pub points_after_grace: f64,
    /// The grace period, in minutes.
    pub grace_minutes: i64,
}

impl Default for PostDeliveryConfig {
    fn default() -> Self {
        PostDeliveryConfig {
            enabled: true,
            roles: vec![Role::Courier, Role::OutletStaff],
            quiet_minutes: 30,
            points_in_grace: 2.0,
            points_after_grace: 3.0,
            grace_minutes: 120,
        }
    }
}

impl PostDeliveryConfig {
    pub(crate) fn observe(&self, ev: &Event<'_>) -> Option<Signal> {
        let w = ev.access.waybill?;
        if !self.enabled
            || !role_in(&self.roles, ev.role())
            || !matches!(w.status, WaybillStatus::Signed | WaybillStatus::Returned)
        {
            return None;
        }
        let since = ev.at() - w.signed_at.unwrap_or(w.updated_at);
        let points = if since > self.grace_minutes * 60_000 {
            if !(ev.full || ev.denied) {
                return None;
            }
            self.points_after_grace
        } else if ev.full && since > self.quiet_minutes * 60_000 {
            self.points_in_grace
        } else {
            return None;
        };
        Some(Signal {
            detector: "post_delivery",
            points,
            at: ev.at(),
            evidence: format!(
                "read of waybill {} {} {:.1} h after it was {}",
                w.waybill_no,
                if ev.full { "in full" } else { "(refused)" },
                since as f64 / 3_600_000.0,
                w.status.as_str()
            ),
        })
    }
}

/// `[detectors.region]`: records pulled for one chosen district (T3's "on demand for a chosen city").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    /// Run it.
    pub enabled: bool,
    /// Reads remembered (outside workflow and outside the account's own outlet).
    pub window: usize,
    /// Share of them on one destination outlet that counts as concentrated.
    pub share: f64,
    /// Points when concentrated (at most once per window).
    pub points: f64,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            enabled: true,
            window: 32,
            share: 0.75,
            points: 4.0,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct RegionState {
    recent: Ring<u64>,
}

impl RegionConfig {
    pub(crate) fn observe(&self, st: &mut RegionState, ev: &Event<'_>) -> Option<Signal> {
        let w = ev.access.waybill?;
        if !self.enabled || ev.workflow || ev.own_scope || ev.denied || self.window == 0 {
            return None;
        }
        let dest = super::short_hash(w.destination_outlet.as_str().as_bytes());
        if !st.recent.push(self.window, dest) {
            return None;
        }
        let same = st.recent.values().iter().filter(|d| **d == dest).count();
        if (same as f64) < self.share * self.window as f64 {
            return None;
        }
        st.recent.fired();
        Some(Signal {
            detector: "region",
            points: self.points,
            at: ev.at(),
            evidence: format!(
                "{same} of the last {} reads outside the account's outlet went to outlet {}",
                self.window, w.destination_outlet
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Event;
    use super::*;
    use wbg_core::View;

    #[test]
    fn refusals_beyond_the_free_allowance_score() {
        let cfg = OutOfScopeConfig::default();
        let mut st = OutOfScopeState::default();
        let a = account("S001", Role::OutletStaff, "O001");
        let w = waybill(1, "O042", WaybillStatus::AtOutlet);
        let mut fired = 0;
        for i in 0..5 {
            let acc = access(&a, &w, None, i * 1000);
            if cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some() {
                fired += 1;
            }
        }
        assert_eq!(fired, 3, "two free, then every refusal scores");
        // Granted reads are not its business.
        let acc = access(&a, &w, Some(View::Masked), 10_000);
        assert!(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_none());
    }

    #[test]
    fn post_delivery_scores_couriers_not_customer_service() {
        let cfg = PostDeliveryConfig::default();
        let c = account("C001", Role::Courier, "O001");
        let cs = account("K001", Role::CustomerService, "O001");
        let mut w = waybill(1, "O001", WaybillStatus::Signed);
        w.signed_at = Some(0);
        let handover = access(&c, &w, Some(View::Full), 5 * 60_000);
        assert!(cfg.observe(&Event::new(&handover, 0, 0.0)).is_none());
        let early = access(&c, &w, Some(View::Full), 45 * 60_000);
        assert_eq!(
            cfg.observe(&Event::new(&early, 0, 0.0)).map(|s| s.points),
            Some(2.0)
        );
        let late = access(&c, &w, None, 5 * 3_600_000);
        assert_eq!(
            cfg.observe(&Event::new(&late, 0, 0.0)).map(|s| s.points),
            Some(3.0)
        );
        let masked_early = access(&c, &w, Some(View::Masked), 60_000);
        assert!(cfg.observe(&Event::new(&masked_early, 0, 0.0)).is_none());
        let by_cs = access(&cs, &w, Some(View::Full), 5 * 3_600_000);
        assert!(cfg.observe(&Event::new(&by_cs, 0, 0.0)).is_none());
        let w2 = waybill(2, "O001", WaybillStatus::OutForDelivery);
        let live = access(&c, &w2, Some(View::Full), 0);
        assert!(cfg.observe(&Event::new(&live, 0, 0.0)).is_none());
    }

    #[test]
    fn region_fires_on_one_district_not_on_a_spread() {
        let cfg = RegionConfig::default();
        let cs = account("K001", Role::CustomerService, "O001");
        let mut st = RegionState::default();
        let spread: Vec<_> = (0..64)
            .map(|i| waybill(i, &format!("O{:03}", 100 + i % 20), WaybillStatus::AtOutlet))
            .collect();
        for (i, w) in spread.iter().enumerate() {
            let a = access(&cs, w, Some(View::Full), i as i64 * 1000);
            assert!(cfg.observe(&mut st, &Event::new(&a, 0, 0.0)).is_none());
        }
        let target: Vec<_> = (0..40)
            .map(|i| waybill(100 + i, "O077", WaybillStatus::AtOutlet))
            .collect();
        let fired = target
            .iter()
            .enumerate()
            .filter(|(i, w)| {
                let a = access(&cs, w, Some(View::Full), 100_000 + *i as i64 * 1000);
                cfg.observe(&mut st, &Event::new(&a, 0, 0.0)).is_some()
            })
            .count();
        assert_eq!(fired, 1, "once per window");
    }
}
