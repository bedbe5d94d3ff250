//! Detectors about *how much* is read: reads per hour against the account's and its peers' baselines, distinct
//! records taken in full per day, and label reprints.
use super::{per_role, Event, HourWindow, Signal};
use crate::config::PerRole;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use wbg_core::Role;

/// `[detectors.velocity]`: reads per hour above `max(floor, multiple × max(own baseline, peers' baseline))`.
/// Baselines are averages over the hours an account was active; peers share role and outlet, so a whole outlet
/// getting busier (peak season) raises the bar for all of it. Separately, more reads in a five-minute stretch
/// than a person at a screen can make (`max_per_5_minutes`) score at once, whatever the baselines say.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VelocityConfig {
    /// Run it.
    pub enabled: bool,
    /// Reads per hour always allowed, by role.
    pub floor_per_hour: PerRole,
    /// How far above its baselines an account may go.
    pub multiple: f64,
    /// Points per read beyond the limit.
    pub points: f64,
    /// Active hours before the account's own baseline counts.
    pub warm_hours: u32,
    /// Reads in one five-minute stretch beyond which a person is not reading them, by role.
    pub max_per_5_minutes: PerRole,
    /// Points per read beyond it.
    pub burst_points: f64,
}

impl Default for VelocityConfig {
    fn default() -> Self {
        VelocityConfig {
            enabled: true,
            // A courier reads a parcel or two a minute at the busiest; staff and agents are people at screens;
            // a merchant's label run and a print station are fast by design.
            floor_per_hour: per_role(120.0, 150.0, 120.0, 5_000.0, 7_200.0),
            multiple: 4.0,
            points: 1.0,
            warm_hours: 8,
            // Four reads a minute for five minutes: beyond a courier's busiest stretch or an agent's fastest
            // tickets. Merchants and print stations print in runs by design.
            max_per_5_minutes: per_role(20.0, 20.0, 20.0, f64::INFINITY, f64::INFINITY),
            burst_points: 2.0,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct VelocityState {
    hour: HourWindow,
    /// The clock hour being counted and its count.
    current: Option<(i64, u32)>,
    /// Average reads per active hour.
    baseline: f64,
    active_hours: u32,
}

impl VelocityState {
    /// Moves to `at`'s clock hour; returns the finished hour's count when the hour changed.
    pub(crate) fn roll(&mut self, at: i64) -> Option<u32> {
        let h = at.div_euclid(3_600_000);
        match self.current {
            Some((cur, _)) if h <= cur => None,
            Some((_, n)) => {
                self.current = Some((h, 0));
                if n > 0 {
                    self.active_hours = self.active_hours.saturating_add(1);
                    // A running mean for the first day, then an exponential average (about two weeks of active
                    // hours) so that a role's work can change.
                    let alpha = (1.0 / f64::from(self.active_hours)).max(0.01);
                    self.baseline += alpha * (f64::from(n) - self.baseline);
                }
                Some(n)
            }
            None => {
                self.current = Some((h, 0));
                None
            }
        }
    }
}

impl VelocityConfig {
    pub(crate) fn observe(&self, st: &mut VelocityState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled {
            return None;
        }
        if let Some((_, n)) = &mut st.current {
            *n += 1;
        }
        let n = f64::from(st.hour.add(ev.at()));
        let stretch = f64::from(st.hour.current());
        let max5 = self.max_per_5_minutes.get(ev.role());
        if stretch > max5 {
            return Some(Signal {
                detector: "velocity",
                points: self.burst_points,
                at: ev.at(),
                evidence: format!(
                    "{stretch} reads in five minutes; a person reads at most {max5:.0}"
                ),
            });
        }
        let own = if st.active_hours >= self.warm_hours {
            st.baseline
        } else {
            0.0
        };
        let floor = self.floor_per_hour.get(ev.role());
        let limit = floor.max(self.multiple * own.max(ev.peer_hourly));
        if n <= limit {
            return None;
        }
        Some(Signal {
            detector: "velocity",
            points: self.points,
            at: ev.at(),
            evidence: format!(
                "{n} reads in the last hour; limit {limit:.0} (floor {floor:.0}, own baseline {own:.1}/h, peers \
                 {:.1}/h)",
                ev.peer_hourly
            ),
        })
    }
}

/// `[detectors.distinct_records]`: different customers' records taken in full, outside plain workflow, per local
/// day and over the last seven days. Opening the same parcel again does not count; the thousandth new customer
/// does. The weekly allowance is what catches a harvester who stays under the daily one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistinctConfig {
    /// Run it.
    pub enabled: bool,
    /// Distinct full records a day allowed without points, by role.
    pub free_per_day: PerRole,
    /// Distinct full records over the last seven days allowed without points, by role.
    pub free_per_week: PerRole,
    /// Points per record beyond either allowance.
    pub points: f64,
    /// The allowances grow with the account's own workflow: this share of its workflow reads (of the day, of the
    /// week) is free too, so a busy courier may look again at as many of their deliveries in a hundred as a
    /// quiet one.
    pub free_share_of_workflow: f64,
}

impl Default for DistinctConfig {
    fn default() -> Self {
        DistinctConfig {
            enabled: true,
            // Full views outside workflow are rare by design: a courier re-opening a delivered parcel, staff on
            // something that is not a registered exception, an agent on a ticket (agents work many a day).
            free_per_day: per_role(8.0, 12.0, 150.0, f64::INFINITY, 0.0),
            free_per_week: per_role(20.0, 35.0, 600.0, f64::INFINITY, 0.0),
            points: 3.0,
            // Two in a hundred: a recipient calling back, an address checked again after the hand-over.
            free_share_of_workflow: 0.02,
        }
    }
}

const WEEK_DAYS: i64 = 7;

/// One local day: the records read in full outside workflow, and the workflow reads.
#[derive(Debug, Default, Serialize, Deserialize)]
struct DistinctDay {
    day: i64,
    seen: HashSet<u64>,
    workflow: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DistinctState {
    /// The last seven local days, oldest first.
    days: std::collections::VecDeque<DistinctDay>,
}

impl DistinctConfig {
    pub(crate) fn observe(&self, st: &mut DistinctState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled || !(ev.full || ev.workflow) {
            return None;
        }
        while st.days.front().is_some_and(|d| d.day <= ev.day - WEEK_DAYS) {
            st.days.pop_front();
        }
        if st.days.back().is_none_or(|d| d.day < ev.day) {
            st.days.push_back(DistinctDay {
                day: ev.day,
                ..DistinctDay::default()
            });
        }
        if ev.workflow {
            // Late events count in the newest day.
            if let Some(newest) = st.days.back_mut() {
                newest.workflow = newest.workflow.saturating_add(1);
            }
            return None;
        }
        if st.days.iter().any(|d| d.seen.contains(&ev.key)) {
            return None;
        }
        let today = st.days.back_mut().map(|d| {
            d.seen.insert(ev.key);
            d.seen.len()
        })?;
        let week: usize = st.days.iter().map(|d| d.seen.len()).sum();
        let work_today = f64::from(st.days.back().map_or(0, |d| d.workflow));
        let work_week: f64 = st.days.iter().map(|d| f64::from(d.workflow)).sum();
        let share = self.free_share_of_workflow;
        let (day_free, week_free) = (
            self.free_per_day
                .get(ev.role())
                .max((share * work_today).floor()),
            self.free_per_week
                .get(ev.role())
                .max((share * work_week).floor()),
        );
        if today as f64 <= day_free && week as f64 <= week_free {
            return None;
        }
        Some(Signal {
            detector: "distinct_records",
            points: self.points,
            at: ev.at(),
            evidence: format!(
                "{today} different records read in full today and {week} this week outside plain workflow (free \
                 {day_free} a day, {week_free} a week); latest {}",
                ev.access.waybill_no
            ),
        })
    }
}

/// `[detectors.reprint]`: a print station printing the same labels again and again (a reprint storm), or labels
/// of parcels long past printing (T4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReprintConfig {
    /// Run it.
    pub enabled: bool,
    /// Labels an hour before the reprint ratio is judged.
    pub min_per_hour: u32,
    /// Share of reprints in the hour that counts as a storm.
    pub ratio: f64,
    /// Points per reprint in a storm.
    pub points: f64,
    /// Points for a label of a parcel past pickup.
    pub outside_workflow_points: f64,
}

impl Default for ReprintConfig {
    fn default() -> Self {
        ReprintConfig {
            enabled: true,
            min_per_hour: 20,
            ratio: 0.3,
            points: 1.0,
            outside_workflow_points: 2.0,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ReprintState {
    day: i64,
    printed: HashSet<u64>,
    labels: HourWindow,
    reprints: HourWindow,
}

impl ReprintConfig {
    pub(crate) fn observe(&self, st: &mut ReprintState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled || ev.role() != Role::PrintStation || ev.access.waybill.is_none() {
            return None;
        }
        if ev.day != st.day {
            st.day = ev.day;
            st.printed.clear();
        }
        let labels = st.labels.add(ev.at());
        let reprint = !st.printed.insert(ev.key);
        let reprints = if reprint {
            st.reprints.add(ev.at())
        } else {
            st.reprints.total()
        };
        if !ev.workflow && !ev.denied {
            return Some(Signal {
                detector: "reprint",
                points: self.outside_workflow_points,
                at: ev.at(),
                evidence: format!(
                    "label of waybill {} asked for after pickup",
                    ev.access.waybill_no
                ),
            });
        }
        if reprint
            && labels >= self.min_per_hour
            && f64::from(reprints) >= self.ratio * f64::from(labels)
        {
            return Some(Signal {
                detector: "reprint",
                points: self.points,
                at: ev.at(),
                evidence: format!("{reprints} of {labels} labels in the last hour were reprints"),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Event;
    use super::*;
    use wbg_core::{View, WaybillStatus};

    #[test]
    fn velocity_learns_a_baseline_and_flags_a_jump() {
        let cfg = VelocityConfig {
            floor_per_hour: per_role(10.0, 10.0, 10.0, 10.0, 10.0),
            // The hourly limits alone (the five-minute one has its own test).
            max_per_5_minutes: per_role(1e9, 1e9, 1e9, 1e9, 1e9),
            ..VelocityConfig::default()
        };
        let a = account("S001", Role::OutletStaff, "O001");
        let w = waybill(1, "O001", WaybillStatus::AtOutlet);
        let mut st = VelocityState::default();
        let mut fired = 0;
        // Twelve hours at 20 reads an hour: above the floor, but it becomes the account's normal.
        for h in 0..12i64 {
            for i in 0..20i64 {
                let at = h * 3_600_000 + i * 60_000;
                st.roll(at);
                let acc = access(&a, &w, Some(View::Masked), at);
                fired += usize::from(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some());
            }
        }
        assert!(st.baseline > 19.0 && st.baseline < 21.0, "{}", st.baseline);
        let before_warm = fired;
        assert!(
            before_warm > 0,
            "above the floor before the baseline is warm"
        );
        // Now 200 in an hour: four times 20 is the limit.
        let mut late = 0;
        for i in 0..200i64 {
            let at = 12 * 3_600_000 + i * 10_000;
            st.roll(at);
            let acc = access(&a, &w, Some(View::Masked), at);
            late += usize::from(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some());
        }
        // The limit is 80 in a sliding hour (which still holds some of the previous hour's reads).
        assert!((100..=130).contains(&late), "{late}");
        // Peers working at 100 an hour raise the limit to 400.
        let mut st2 = VelocityState::default();
        let quiet = (0..200i64)
            .filter(|i| {
                let acc = access(&a, &w, Some(View::Masked), i * 10_000);
                cfg.observe(&mut st2, &Event::new(&acc, 0, 100.0)).is_some()
            })
            .count();
        assert_eq!(quiet, 0);
    }

    #[test]
    fn more_than_a_person_reads_in_five_minutes_scores_at_once() {
        let cfg = VelocityConfig::default();
        let a = account("K001", Role::CustomerService, "O001");
        let w = waybill(1, "O001", WaybillStatus::AtOutlet);
        let mut st = VelocityState::default();
        // One read every 5 s from the start of a five-minute stretch: the 21st scores, and each one after it.
        let fired: Vec<i64> = (0..40i64)
            .filter(|i| {
                let acc = access(&a, &w, Some(View::Full), 3_000_000 + i * 5_000);
                cfg.observe(&mut st, &Event::new(&acc, 0, 0.0))
                    .is_some_and(|s| s.points == cfg.burst_points)
            })
            .collect();
        assert_eq!(fired, (20..40).collect::<Vec<_>>());
        // A print station's run is not a person reading.
        let p = account("P001", Role::PrintStation, "O001");
        let mut st = VelocityState::default();
        assert!((0..200i64).all(|i| {
            let acc = access(&p, &w, Some(View::Masked), 3_000_000 + i * 500);
            cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_none()
        }));
    }

    #[test]
    fn distinct_counts_new_full_records_only() {
        let cfg = DistinctConfig::default();
        let a = account("S001", Role::OutletStaff, "O001");
        let mut st = DistinctState::default();
        let ws: Vec<_> = (0..20)
            .map(|i| waybill(i, "O001", WaybillStatus::AtOutlet))
            .collect();
        let mut fired = 0;
        for round in 0..3 {
            for (i, w) in ws.iter().enumerate() {
                let acc = access(&a, w, Some(View::Full), round * 100_000 + i as i64);
                fired += usize::from(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some());
            }
        }
        assert_eq!(fired, 8, "20 distinct, 12 free; re-reads never count");
        let masked = access(&a, &ws[0], Some(View::Masked), 1);
        assert!(cfg.observe(&mut st, &Event::new(&masked, 0, 0.0)).is_none());
        // A record already taken this week does not count again the next day.
        let next_day = access(&a, &ws[0], Some(View::Full), 86_400_000);
        assert!(cfg
            .observe(&mut st, &Event::new(&next_day, 0, 0.0))
            .is_none());
    }

    #[test]
    fn a_busy_couriers_allowance_grows_with_their_round_but_a_reseller_meets_it() {
        let cfg = DistinctConfig::default();
        let c = account("C001", Role::Courier, "O001");
        let run = |recheck_every: u64| {
            let mut st = DistinctState::default();
            let mut fired = 0;
            // 300 deliveries a day for a week; every `recheck_every`-th one opened again in full after signing.
            for day in 0..7i64 {
                for i in 0..300u64 {
                    let at = day * 86_400_000 + 28_800_000 + i as i64 * 120_000;
                    let mut w = waybill(
                        day as u64 * 1_000 + i,
                        "O001",
                        WaybillStatus::OutForDelivery,
                    );
                    w.courier = Some(c.id.clone());
                    let acc = access(&c, &w, Some(View::Full), at);
                    assert!(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_none());
                    if i % recheck_every == 0 {
                        w.status = WaybillStatus::Signed;
                        w.signed_at = Some(at + 60_000);
                        let acc = access(&c, &w, Some(View::Full), at + 3_000_000);
                        fired +=
                            usize::from(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some());
                    }
                }
            }
            fired
        };
        // One in a hundred: three a day, 21 a week, over the flat weekly allowance of 20, within the round's share.
        assert_eq!(run(100), 0);
        // Every fifth delivery read again later: a list being copied, met on the first day.
        assert!(run(5) > 40 * 6, "{}", run(5));
    }

    #[test]
    fn a_drip_under_the_daily_allowance_meets_the_weekly_one() {
        let cfg = DistinctConfig::default();
        let a = account("S001", Role::OutletStaff, "O001");
        let mut st = DistinctState::default();
        let mut fired_on = Vec::new();
        // Six new customers a day, every day for two weeks: never more than 12 a day.
        for day in 0..14i64 {
            for i in 0..6u64 {
                let w = waybill(day as u64 * 100 + i, "O001", WaybillStatus::AtOutlet);
                let acc = access(
                    &a,
                    &w,
                    Some(View::Full),
                    day * 86_400_000 + i as i64 * 60_000,
                );
                if cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some() {
                    fired_on.push(day);
                }
            }
        }
        // The 36th record (day 5) is the first beyond 35 a week; from then on the week stays at 36-42.
        assert_eq!(fired_on.first(), Some(&5), "{fired_on:?}");
        assert!(fired_on.len() >= 7 * 6, "{}", fired_on.len());
    }

    #[test]
    fn reprint_storm_and_late_labels() {
        let cfg = ReprintConfig::default();
        let p = account("P001", Role::PrintStation, "O001");
        let mut st = ReprintState::default();
        let ws: Vec<_> = (0..30)
            .map(|i| waybill(i, "O002", WaybillStatus::Created))
            .collect();
        for (i, w) in ws.iter().enumerate() {
            let acc = access(&p, w, Some(View::Masked), i as i64 * 1000);
            assert!(cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_none());
        }
        let storm = (0..30)
            .filter(|i| {
                let acc = access(
                    &p,
                    &ws[i % 5],
                    Some(View::Masked),
                    40_000 + *i as i64 * 1000,
                );
                cfg.observe(&mut st, &Event::new(&acc, 0, 0.0)).is_some()
            })
            .count();
        assert!(storm >= 15, "{storm}");
        let delivered = waybill(99, "O002", WaybillStatus::Signed);
        let acc = access(&p, &delivered, Some(View::Masked), 100_000);
        assert_eq!(
            cfg.observe(&mut st, &Event::new(&acc, 0, 0.0))
                .map(|s| s.points),
            Some(2.0)
        );
    }
}
