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

#[derive(Debug, Default, Serialize, Deserialize)]
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
/// Besides each late read, it watches the *habit*: a courier who re-opens a large share of their own deliveries
/// after the hand-over, whatever the view they get, is working a list, not a round — however few parcels a day.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostDeliveryConfig {
    /// Run it.
    pub enabled: bool,
    /// Roles it watches (customer service answering a complaint about a delivered parcel is normal).
    pub roles: Vec<Role>,
    /// Minutes after signing in which reads are the hand-over itself (checking the name at the door), not news.
    pub quiet_minutes: i64,
    /// Points for a full read later within the grace period by anyone but the parcel's own courier.
    pub points_in_grace: f64,
    /// Points for a read (granted or refused) after the grace period.
    pub points_after_grace: f64,
    /// The grace period, in minutes.
    pub grace_minutes: i64,
    /// Roles whose habit is judged (those with a delivery workflow to compare against).
    pub habit_roles: Vec<Role>,
    /// Late reads (decayed over about a week) before the habit is judged.
    pub habit_min_reads: f64,
    /// Share of late reads among the account's delivery work that makes a habit.
    pub habit_share: f64,
    /// Points for every late read while the habit holds.
    pub habit_points: f64,
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
            habit_roles: vec![Role::Courier],
            habit_min_reads: 5.0,
            habit_share: 0.2,
            habit_points: 12.0,
        }
    }
}

/// Per account: delivery work and late reads, each decaying by a fifth a day.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct PostDeliveryState {
    day: i64,
    work: f64,
    late: f64,
}

impl PostDeliveryConfig {
    pub(crate) fn observe(&self, st: &mut PostDeliveryState, ev: &Event<'_>) -> Option<Signal> {
        let w = ev.access.waybill?;
        if !self.enabled || !role_in(&self.roles, ev.role()) {
            return None;
        }
        if ev.day > st.day {
            let f = 0.8f64.powi((ev.day - st.day).min(60) as i32);
            st.work *= f;
            st.late *= f;
            st.day = ev.day;
        }
        if ev.workflow {
            st.work += 1.0;
        }
        if !matches!(w.status, WaybillStatus::Signed | WaybillStatus::Returned) {
            return None;
        }
        let since = ev.at() - w.signed_at.unwrap_or(w.updated_at);
        if since <= self.quiet_minutes * 60_000 {
            return None;
        }
        st.late += 1.0;
        let habit = role_in(&self.habit_roles, ev.role())
            && st.late >= self.habit_min_reads
            && st.late >= self.habit_share * (st.work + st.late);
        let points = if habit {
            self.habit_points
        } else if since > self.grace_minutes * 60_000 {
            if !(ev.full || ev.denied) {
                return None;
            }
            self.points_after_grace
        } else if ev.full && w.courier.as_ref() != Some(&ev.access.account.id) {
            // Within the grace the parcel's own courier may still be on the delivery (a recipient calling back):
            // their looks count as a habit (above) and as records beyond their share (`distinct_records`).
            self.points_in_grace
        } else {
            return None;
        };
        Some(Signal {
            detector: "post_delivery",
            points,
            at: ev.at(),
            evidence: format!(
                "read of waybill {} {} {:.1} h after it was {}{}",
                w.waybill_no,
                if ev.full {
                    "in full"
                } else if ev.denied {
                    "(refused)"
                } else {
                    "(masked)"
                },
                since as f64 / 3_600_000.0,
                w.status.as_str(),
                if habit {
                    format!(
                        "; a habit: {:.0} late reads against {:.0} reads of the account's own deliveries lately",
                        st.late, st.work
                    )
                } else {
                    String::new()
                }
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
    /// Points for every read of the concentrated district while the concentration lasts.
    pub points: f64,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig {
            enabled: true,
            window: 20,
            share: 0.6,
            points: 2.0,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
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
        st.recent.push(self.window, dest);
        let same = st.recent.values().iter().filter(|d| **d == dest).count();
        // Judged on every read once the window is full: a pull of one district keeps scoring as long as it goes on.
        if st.recent.values().len() < self.window || (same as f64) < self.share * self.window as f64
        {
            return None;
        }
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
        let mut st = PostDeliveryState::default();
        let c = account("C001", Role::Courier, "O001");
        let cs = account("K001", Role::CustomerService, "O001");
        let mut w = waybill(1, "O001", WaybillStatus::Signed);
        w.signed_at = Some(0);
        let handover = access(&c, &w, Some(View::Full), 5 * 60_000);
        assert!(cfg
            .observe(&mut st, &Event::new(&handover, 0, 0.0))
            .is_none());
        let early = access(&c, &w, Some(View::Full), 45 * 60_000);
        assert_eq!(
            cfg.observe(&mut st, &Event::new(&early, 0, 0.0))
                .map(|s| s.points),
            Some(2.0)
        );
        let late = access(&c, &w, None, 5 * 3_600_000);
        assert_eq!(
            cfg.observe(&mut st, &Event::new(&late, 0, 0.0))
                .map(|s| s.points),
            Some(3.0)
        );
        let masked_early = access(&c, &w, Some(View::Masked), 60_000);
        assert!(cfg
            .observe(&mut st, &Event::new(&masked_early, 0, 0.0))
            .is_none());
        let by_cs = access(&cs, &w, Some(View::Full), 5 * 3_600_000);
        assert!(cfg.observe(&mut st, &Event::new(&by_cs, 0, 0.0)).is_none());
        let w2 = waybill(2, "O001", WaybillStatus::OutForDelivery);
        let live = access(&c, &w2, Some(View::Full), 0);
        assert!(cfg.observe(&mut st, &Event::new(&live, 0, 0.0)).is_none());
    }

    #[test]
    fn a_courier_reopening_their_deliveries_is_a_habit_however_few() {
        let cfg = PostDeliveryConfig::default();
        let c = account("C001", Role::Courier, "O001");
        let mut st = PostDeliveryState::default();
        let mut habit_points = 0.0;
        // Two deliveries a day, each re-opened three hours after signing (masked by then): a list, not a round.
        for day in 0..6i64 {
            for k in 0..2u64 {
                let at = day * 86_400_000 + 36_000_000 + k as i64 * 600_000;
                let mut live = waybill(day as u64 * 10 + k, "O001", WaybillStatus::OutForDelivery);
                live.courier = Some(c.id.clone());
                let acc = access(&c, &live, Some(View::Full), at);
                let ev = Event::new(&acc, 0, 0.0);
                assert!(ev.workflow);
                assert!(cfg.observe(&mut st, &ev).is_none());
                let mut done = live.clone();
                done.status = WaybillStatus::Signed;
                done.signed_at = Some(at + 300_000);
                let acc = access(&c, &done, Some(View::Masked), at + 3 * 3_600_000);
                if let Some(s) = cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)) {
                    habit_points += s.points;
                }
            }
        }
        assert!(habit_points >= 50.0, "{habit_points}");
        // One re-check in a hundred deliveries is no habit: within the grace it is the delivery's own business,
        // after it (when the policy refuses) each attempt still scores.
        let mut st = PostDeliveryState::default();
        let (mut points, mut after) = (0.0, 0.0);
        for i in 0..700i64 {
            let at = (i / 100) * 86_400_000 + 30_000_000 + (i % 100) * 200_000;
            let mut live = waybill(i as u64, "O001", WaybillStatus::OutForDelivery);
            live.courier = Some(c.id.clone());
            let acc = access(&c, &live, Some(View::Full), at);
            cfg.observe(&mut st, &Event::new(&acc, 0, 0.0));
            if i % 100 == 50 {
                let mut done = live.clone();
                done.status = WaybillStatus::Signed;
                done.signed_at = Some(at);
                let acc = access(&c, &done, Some(View::Full), at + 45 * 60_000);
                points += cfg
                    .observe(&mut st, &Event::new(&acc, 0, 0.0))
                    .map_or(0.0, |s| s.points);
                let acc = access(&c, &done, None, at + 3 * 3_600_000);
                after += cfg
                    .observe(&mut st, &Event::new(&acc, 0, 0.0))
                    .map_or(0.0, |s| s.points);
            }
        }
        assert_eq!(points, 0.0);
        assert_eq!(after, 7.0 * cfg.points_after_grace);
        // Another account's full look within the grace is not a delivery.
        let s = account("S001", Role::OutletStaff, "O001");
        let mut done = waybill(9, "O001", WaybillStatus::Signed);
        done.signed_at = Some(0);
        let acc = access(&s, &done, Some(View::Full), 45 * 60_000);
        let signal = cfg.observe(&mut PostDeliveryState::default(), &Event::new(&acc, 0, 0.0));
        assert_eq!(signal.map(|s| s.points), Some(cfg.points_in_grace));
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
        // Twelve of the last twenty make a concentration; from then on every read of the district scores.
        assert_eq!(fired, 40 - 11, "{fired}");
    }
}
