//! Detectors about *how* an account reads: machine-regular cadence, walking through consecutive numbers, hours it
//! never works, and waking up after weeks of silence.
use super::{role_in, Event, Ring, Signal};
use serde::{Deserialize, Serialize};
use wbg_core::Role;

/// `[detectors.cadence]`: a scraping tool reads at near-constant intervals; people do not.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CadenceConfig {
    /// Run it.
    pub enabled: bool,
    /// Intervals judged together.
    pub window: usize,
    /// Largest mean interval (seconds) that can count as scripted.
    pub max_mean_seconds: f64,
    /// Largest coefficient of variation of the intervals that counts as regular.
    pub max_variation: f64,
    /// Points when regular (at most once per window).
    pub points: f64,
    /// Roles whose work is machine-driven anyway (integrations, label runs).
    pub exempt_roles: Vec<Role>,
}

impl Default for CadenceConfig {
    fn default() -> Self {
        CadenceConfig {
            enabled: true,
            window: 16,
            max_mean_seconds: 60.0,
            max_variation: 0.25,
            points: 6.0,
            exempt_roles: vec![Role::Integration, Role::Merchant, Role::PrintStation],
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CadenceState {
    gaps: Ring<f64>,
}

impl CadenceConfig {
    pub(crate) fn observe(&self, st: &mut CadenceState, ev: &Event<'_>) -> Option<Signal> {
        // Regularity in an account's own workflow (a courier working through a round) is the work's rhythm,
        // not a script's: only reads outside it are judged.
        if !self.enabled || self.window < 4 || role_in(&self.exempt_roles, ev.role()) || ev.workflow
        {
            return None;
        }
        let at = ev.at();
        let gap = ev.since_previous?.max(0) as f64 / 1000.0;
        if !st.gaps.push(self.window, gap) {
            return None;
        }
        let gaps = st.gaps.values();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        if mean > self.max_mean_seconds {
            return None;
        }
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        // Reads within the same instant (mean 0) are a tool too.
        let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
        if cv > self.max_variation {
            return None;
        }
        st.gaps.fired();
        Some(Signal {
            detector: "cadence",
            points: self.points,
            at,
            evidence: format!(
                "last {} intervals {mean:.1} s apart on average, variation {cv:.2}",
                self.window
            ),
        })
    }
}

/// `[detectors.enumeration]`: reads walking through consecutive or near-consecutive waybill numbers outside the
/// account's workflow (a merchant's own batch and a print run are sequential by nature and not counted).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnumerationConfig {
    /// Run it.
    pub enabled: bool,
    /// Largest difference between numbers that counts as a step.
    pub max_step: u64,
    /// Recent numbers compared with.
    pub memory: usize,
    /// Steps in a row before points are given.
    pub min_run: u32,
    /// Points per step beyond it.
    pub points: f64,
}

impl Default for EnumerationConfig {
    fn default() -> Self {
        EnumerationConfig {
            enabled: true,
            max_step: 3,
            memory: 8,
            min_run: 3,
            points: 2.0,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct EnumerationState {
    recent: Ring<u64>,
    run: u32,
}

impl EnumerationConfig {
    pub(crate) fn observe(&self, st: &mut EnumerationState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled || ev.workflow || self.memory == 0 {
            return None;
        }
        let n = ev.serial?;
        let step = st
            .recent
            .values()
            .iter()
            .any(|m| *m != n && m.abs_diff(n) <= self.max_step);
        st.recent.push(self.memory, n);
        if !step {
            st.run = 0;
            return None;
        }
        st.run += 1;
        if st.run < self.min_run {
            return None;
        }
        Some(Signal {
            detector: "enumeration",
            points: self.points,
            at: ev.at(),
            evidence: format!(
                "{} reads in a row within {} of a recent number; latest {}",
                st.run, self.max_step, ev.access.waybill_no
            ),
        })
    }
}

/// `[detectors.off_shift]`: personal data read in an hour of the day the account almost never works. An hour's
/// normality is the share of the account's active days on which it worked in that hour or the hours either side,
/// learned from finished days only, so a night worker's nights are normal while a first night of reads is not.
/// For roles with a round (couriers), the hours are those of the round itself: reads outside plain workflow do
/// not teach it, so an evening of looking up delivered parcels never becomes the account's shift.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OffShiftConfig {
    /// Run it.
    pub enabled: bool,
    /// Roles whose working hours are learned from their plain workflow only.
    pub shift_from_workflow: Vec<Role>,
    /// Active days learned before it judges.
    pub min_days: u16,
    /// Share of active days below which an hour is off-shift.
    pub max_share: f64,
    /// Points for a full or refused read off shift.
    pub points: f64,
    /// At most one signal per this many minutes (a shift change must not look like an attack).
    pub min_gap_minutes: i64,
}

impl Default for OffShiftConfig {
    fn default() -> Self {
        OffShiftConfig {
            enabled: true,
            shift_from_workflow: vec![Role::Courier],
            min_days: 5,
            max_share: 0.15,
            points: 2.0,
            min_gap_minutes: 10,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct OffShiftState {
    /// Per hour of day: finished active days with a read in that hour.
    hours: [u16; 24],
    days: u16,
    today: i64,
    today_hours: u32,
    last_signal: Option<i64>,
}

impl OffShiftConfig {
    pub(crate) fn observe(&self, st: &mut OffShiftState, ev: &Event<'_>) -> Option<Signal> {
        if !self.enabled {
            return None;
        }
        if ev.day > st.today {
            if st.today_hours != 0 {
                for (h, n) in st.hours.iter_mut().enumerate() {
                    *n += u16::from(st.today_hours & (1 << h) != 0);
                }
                st.days += 1;
                if st.days >= 60 {
                    // Halve, so that a lasting change of shift is learned within weeks.
                    st.hours.iter_mut().for_each(|n| *n /= 2);
                    st.days /= 2;
                }
            }
            st.today = ev.day;
            st.today_hours = 0;
        }
        if ev.workflow || !role_in(&self.shift_from_workflow, ev.role()) {
            st.today_hours |= 1 << ev.hour;
        }
        // An hour next to one the account works is not off shift (a round that runs late).
        let near = [(ev.hour + 23) % 24, ev.hour, (ev.hour + 1) % 24]
            .iter()
            .map(|h| st.hours[*h])
            .max()
            .unwrap_or(0);
        let share = f64::from(near) / f64::from(st.days.max(1));
        let counts = ev.full || ev.denied || ev.unknown || ev.role() == Role::PrintStation;
        let at = ev.at();
        if st.days < self.min_days
            || share >= self.max_share
            || !counts
            || st
                .last_signal
                .is_some_and(|t| at - t < self.min_gap_minutes * 60_000)
        {
            return None;
        }
        st.last_signal = Some(at);
        Some(Signal {
            detector: "off_shift",
            points: self.points,
            at,
            evidence: format!(
                "read at {:02}:00 local; the account worked that hour on {:.0}% of its {} active days",
                ev.hour,
                share * 100.0,
                st.days
            ),
        })
    }
}

/// `[detectors.dormant]`: an account silent for weeks starts reading (an ex-employee's account still active).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DormantConfig {
    /// Run it.
    pub enabled: bool,
    /// Days of silence that make an account dormant.
    pub silent_days: i64,
    /// Points for its first read.
    pub points: f64,
}

impl Default for DormantConfig {
    fn default() -> Self {
        DormantConfig {
            enabled: true,
            silent_days: 14,
            points: 8.0,
        }
    }
}

impl DormantConfig {
    pub(crate) fn observe(&self, ev: &Event<'_>) -> Option<Signal> {
        let at = ev.at();
        let silent = ev.since_previous?;
        if !self.enabled || silent < self.silent_days * 86_400_000 {
            return None;
        }
        Some(Signal {
            detector: "dormant",
            points: self.points,
            at,
            evidence: format!("first read after {} days without any", silent / 86_400_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Event;
    use super::*;
    use wbg_core::{View, WaybillStatus};

    fn run<S>(
        f: impl Fn(&mut S, &Event<'_>) -> Option<Signal>,
        st: &mut S,
        times: impl IntoIterator<Item = (i64, u64)>,
        role: Role,
    ) -> usize {
        let a = account("S001", role, "O001");
        // The engine's part: the time since the account's previous access (never running backwards).
        let mut previous: Option<i64> = None;
        times
            .into_iter()
            .filter(|(at, no)| {
                let w = waybill(*no, "O001", WaybillStatus::AtOutlet);
                let acc = access(&a, &w, Some(View::Full), *at);
                let ev = Event::new(&acc, 0, 0.0).after(previous);
                previous = Some(previous.map_or(*at, |p| p.max(*at)));
                f(st, &ev).is_some()
            })
            .count()
    }

    #[test]
    fn cadence_tells_a_tool_from_a_person() {
        let cfg = CadenceConfig::default();
        let tool = run(
            |s, e| cfg.observe(s, e),
            &mut CadenceState::default(),
            (0..64).map(|i| (i * 2_000 + (i % 3) * 50, i as u64 * 97)),
            Role::OutletStaff,
        );
        assert_eq!(tool, 3, "once per 16 intervals after the first window");
        // A person: intervals from 2 s to 90 s.
        let person = run(
            |s, e| cfg.observe(s, e),
            &mut CadenceState::default(),
            (0..64).scan(0i64, |t, i| {
                *t += [2_000, 45_000, 7_000, 90_000, 12_000][i % 5];
                Some((*t, i as u64 * 97))
            }),
            Role::OutletStaff,
        );
        assert_eq!(person, 0);
        let agent = run(
            |s, e| cfg.observe(s, e),
            &mut CadenceState::default(),
            (0..64).map(|i| (i * 2_000, i as u64 * 97)),
            Role::CustomerService,
        );
        assert!(agent > 0, "exemption is per role, agents are not exempt");
    }

    #[test]
    fn cadence_leaves_an_accounts_own_workflow_alone() {
        // Staff working through their outlet's exceptions as regularly as a tool: the work's rhythm.
        let cfg = CadenceConfig::default();
        let a = account("S001", Role::OutletStaff, "O001");
        let mut st = CadenceState::default();
        let mut previous = None;
        let signals = (0..64i64)
            .filter(|i| {
                let w = waybill(*i as u64 * 97, "O001", WaybillStatus::Exception);
                let acc = access(&a, &w, Some(View::Full), i * 2_000);
                let ev = Event::new(&acc, 0, 0.0).after(previous);
                previous = Some(i * 2_000);
                assert!(ev.workflow);
                cfg.observe(&mut st, &ev).is_some()
            })
            .count();
        assert_eq!(signals, 0);
    }

    #[test]
    fn enumeration_needs_a_run_of_steps() {
        let cfg = EnumerationConfig::default();
        let seq = run(
            |s, e| cfg.observe(s, e),
            &mut EnumerationState::default(),
            (0..20).map(|i| (i * 1000, 5_000 + i as u64)),
            Role::OutletStaff,
        );
        assert_eq!(
            seq, 17,
            "the first read has nothing to follow, then two steps are free"
        );
        let scattered = run(
            |s, e| cfg.observe(s, e),
            &mut EnumerationState::default(),
            (0..20).map(|i| (i * 1000, 5_000 + i as u64 * 1_013)),
            Role::OutletStaff,
        );
        assert_eq!(scattered, 0);
    }

    #[test]
    fn off_shift_learns_hours() {
        let cfg = OffShiftConfig::default();
        let mut st = OffShiftState::default();
        let h = 3_600_000i64;
        // 400 reads between 09:00 and 17:00 over several days.
        let day = (0..400).map(|i| ((i / 50) * 24 * h + 9 * h + (i % 50) * 9 * 60_000, i as u64));
        assert_eq!(
            run(|s, e| cfg.observe(s, e), &mut st, day, Role::OutletStaff),
            0
        );
        // Five reads at 03:00, eleven minutes apart: each one off shift; then a burst gets one signal.
        let night = (0..5).map(|i| (10 * 24 * h + 3 * h + i * 11 * 60_000, 900 + i as u64));
        assert_eq!(
            run(|s, e| cfg.observe(s, e), &mut st, night, Role::OutletStaff),
            5
        );
        let burst = (0..30).map(|i| (10 * 24 * h + 4 * h + i * 10_000, 1000 + i as u64));
        assert_eq!(
            run(|s, e| cfg.observe(s, e), &mut st, burst, Role::OutletStaff),
            1
        );
        // A night worker's nights are normal.
        let mut nst = OffShiftState::default();
        let nights =
            (0..400).map(|i| ((i / 50) * 24 * h + 2 * h + (i % 50) * 5 * 60_000, i as u64));
        assert_eq!(
            run(
                |s, e| cfg.observe(s, e),
                &mut nst,
                nights,
                Role::OutletStaff
            ),
            0
        );
    }

    #[test]
    fn a_couriers_shift_is_their_round_not_their_evenings_of_lookups() {
        let cfg = OffShiftConfig::default();
        let c = account("C001", Role::Courier, "O001");
        let h = 3_600_000i64;
        let mut st = OffShiftState::default();
        let mut previous = None;
        let mut evening_signals = 0;
        for day in 0..10i64 {
            // The round: the courier's own parcels, 09:00-17:00.
            for i in 0..40i64 {
                let mut w = waybill(
                    (day * 100 + i) as u64,
                    "O001",
                    WaybillStatus::OutForDelivery,
                );
                w.courier = Some(c.id.clone());
                let acc = access(
                    &c,
                    &w,
                    Some(View::Full),
                    day * 24 * h + 9 * h + i * 12 * 60_000,
                );
                let ev = Event::new(&acc, 0, 0.0).after(previous);
                previous = Some(acc.at);
                assert!(ev.workflow);
                assert!(cfg.observe(&mut st, &ev).is_none(), "day {day}: the round");
            }
            // Every evening from day 1, full looks at parcels delivered hours ago: never learned as a shift.
            if day >= 1 {
                for i in 0..3i64 {
                    let mut w = waybill((day * 100 + i) as u64, "O001", WaybillStatus::Signed);
                    w.courier = Some(c.id.clone());
                    w.signed_at = Some(day * 24 * h + 20 * h);
                    let acc = access(
                        &c,
                        &w,
                        Some(View::Full),
                        day * 24 * h + 21 * h + i * 20 * 60_000,
                    );
                    let ev = Event::new(&acc, 0, 0.0).after(previous);
                    previous = Some(acc.at);
                    evening_signals += usize::from(cfg.observe(&mut st, &ev).is_some());
                }
            }
        }
        // Judged from the fifth finished day of the round on: days 5-9, three evening looks each.
        assert_eq!(evening_signals, 15);
    }

    #[test]
    fn dormant_fires_once_after_silence() {
        let cfg = DormantConfig::default();
        let d = 86_400_000i64;
        let times = [0, d, 2 * d, 30 * d, 30 * d + 1000, 31 * d];
        let n = run(
            |_: &mut (), e| cfg.observe(e),
            &mut (),
            times.iter().enumerate().map(|(i, t)| (*t, i as u64)),
            Role::OutletStaff,
        );
        assert_eq!(n, 1);
    }
}
