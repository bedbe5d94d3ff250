//! The detectors: named components, each with its own TOML section and its own per-account state, run in a
//! fixed pipeline over every access. A detector turns what it sees into a [`Signal`] (points plus evidence);
//! the engine adds the points to the account's scores. No detector sees personal data.
mod behaviour;
mod device;
mod scope;
mod volume;

use crate::config::PerRole;
use crate::hook::Access;
use serde::{Deserialize, Serialize};
use wbg_core::{Role, View, WaybillStatus};

pub(crate) use device::{SharedDevice, SharedDeviceState};

/// Something a detector noticed about one access.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signal {
    /// The detector's name (its TOML section).
    pub detector: &'static str,
    /// Points it adds to the account's scores.
    pub points: f64,
    /// When.
    pub at: i64,
    /// What it saw, in identifiers and counts.
    pub evidence: String,
}

/// Every detector's name, as signals carry it.
pub(crate) const DETECTORS: [&str; 12] = [
    "out_of_scope",
    "velocity",
    "distinct_records",
    "cadence",
    "enumeration",
    "post_delivery",
    "off_shift",
    "device",
    "shared_device",
    "region",
    "reprint",
    "dormant",
];

/// A signal as a snapshot holds it.
#[derive(Deserialize)]
struct StoredSignal {
    detector: String,
    points: f64,
    at: i64,
    evidence: String,
}

/// A signal read back names one of `DETECTORS`.
impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Signal, D::Error> {
        let s = StoredSignal::deserialize(d)?;
        let detector = DETECTORS
            .iter()
            .copied()
            .find(|n| *n == s.detector)
            .ok_or_else(|| serde::de::Error::custom("a signal names an unknown detector"))?;
        Ok(Signal {
            detector,
            points: s.points,
            at: s.at,
            evidence: s.evidence,
        })
    }
}

/// How long after signing a courier's look at the parcel is still the hand-over itself.
pub(crate) const HANDOVER_MS: i64 = 30 * 60_000;

/// One access with the facts every detector needs, worked out once.
pub(crate) struct Event<'a> {
    pub access: &'a Access<'a>,
    /// The policy would grant every field.
    pub full: bool,
    /// The policy refused a waybill that exists.
    pub denied: bool,
    /// No such waybill.
    pub unknown: bool,
    /// The read is plainly the account's job (a courier's parcel out for delivery or just handed over, outlet
    /// staff's own exception parcel, a merchant's own order, a label printed before pickup). Such reads feed
    /// baselines but not the suspicion counts.
    pub workflow: bool,
    /// The waybill starts or ends at the account's outlet.
    pub own_scope: bool,
    /// Local hour of day, 0-23.
    pub hour: usize,
    /// Local day number.
    pub day: i64,
    /// A short hash of the waybill number (for sets and sequences).
    pub key: u64,
    /// The number's trailing digits, for sequence detection.
    pub serial: Option<u64>,
    /// The reads per active hour of accounts in the same role at the same outlet.
    pub peer_hourly: f64,
    /// Milliseconds since the account's previous access, if it had one.
    pub since_previous: Option<i64>,
}

impl<'a> Event<'a> {
    pub(crate) fn new(access: &'a Access<'a>, offset_ms: i64, peer_hourly: f64) -> Event<'a> {
        let a = access;
        let acct = a.account;
        let full = a.policy_view == Some(View::Full);
        let unknown = a.waybill.is_none();
        let denied = !unknown && a.policy_view.is_none();
        let own_scope = match (a.waybill, &acct.outlet) {
            (Some(w), Some(o)) => w.origin_outlet == *o || w.destination_outlet == *o,
            _ => false,
        };
        let workflow = match (acct.role, a.waybill) {
            (_, None) => false,
            (Role::Courier, Some(w)) => {
                w.courier.as_ref() == Some(&acct.id)
                    && (w.status == WaybillStatus::OutForDelivery
                        || (w.status == WaybillStatus::Signed
                            && w.signed_at.is_some_and(|t| a.at - t <= HANDOVER_MS)))
            }
            (Role::Merchant, Some(w)) => acct.merchant.as_ref() == Some(&w.merchant),
            (Role::PrintStation, Some(w)) => {
                matches!(w.status, WaybillStatus::Created | WaybillStatus::PickedUp)
            }
            // Outlet staff handling a parcel registered as an exception at their outlet: that is their job.
            (Role::OutletStaff, Some(w)) => own_scope && w.status == WaybillStatus::Exception,
            (Role::Integration, Some(_)) => true,
            _ => false,
        };
        let local = a.at + offset_ms;
        Event {
            access,
            full,
            denied,
            unknown,
            workflow,
            own_scope,
            hour: local.rem_euclid(86_400_000) as usize / 3_600_000,
            day: local.div_euclid(86_400_000),
            key: short_hash(a.waybill_no.as_bytes()),
            serial: serial(a.waybill_no),
            peer_hourly,
            since_previous: None,
        }
    }

    /// The same event, for an account whose previous access was at `previous`.
    pub(crate) fn after(mut self, previous: Option<i64>) -> Self {
        self.since_previous = previous.map(|t| self.access.at - t);
        self
    }

    pub(crate) fn role(&self) -> Role {
        self.access.account.role
    }

    pub(crate) fn at(&self) -> i64 {
        self.access.at
    }
}

/// FNV-1a: a fast, stable hash for in-memory sets of waybill numbers and devices (not a security boundary).
pub(crate) fn short_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The trailing run of digits of a waybill number (at most 18), e.g. `YT0000000012345` → 12345.
pub(crate) fn serial(no: &str) -> Option<u64> {
    let b = no.as_bytes();
    let digits = b
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count()
        .min(18);
    if digits == 0 {
        return None;
    }
    Some(
        b[b.len() - digits..]
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// The last `cap` values seen, oldest overwritten first; `cap` comes from config, so it is passed in.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Ring<T> {
    items: Vec<T>,
    next: usize,
    /// Values pushed since the window was last judged to fire.
    since: usize,
}

impl<T: Copy> Ring<T> {
    /// Adds `v`; true when the ring is full and a whole window has passed since it last fired, i.e. when a
    /// detector judging windows should judge this one.
    pub(crate) fn push(&mut self, cap: usize, v: T) -> bool {
        if self.items.len() < cap {
            self.items.push(v);
        } else if cap > 0 {
            self.items[self.next] = v;
            self.next = (self.next + 1) % cap;
        }
        self.since += 1;
        self.items.len() >= cap && self.since >= cap
    }

    /// The detector fired on this window: the next judgement waits for a fresh one.
    pub(crate) fn fired(&mut self) {
        self.since = 0;
    }

    pub(crate) fn values(&self) -> &[T] {
        &self.items
    }
}

/// A count over the last hour in twelve five-minute buckets.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct HourWindow {
    buckets: [u32; 12],
    latest: i64,
}

impl HourWindow {
    const BUCKET_MS: i64 = 300_000;

    fn advance(&mut self, at: i64) {
        let b = at.div_euclid(Self::BUCKET_MS);
        if b > self.latest {
            let gap = (b - self.latest).min(12);
            for i in 1..=gap {
                self.buckets[((self.latest + i).rem_euclid(12)) as usize] = 0;
            }
            self.latest = b;
        }
    }

    /// Adds one at `at` (late events count in the current bucket) and returns the hour's total.
    pub(crate) fn add(&mut self, at: i64) -> u32 {
        self.advance(at);
        self.buckets[self.latest.rem_euclid(12) as usize] += 1;
        self.total()
    }

    /// The count of the current five-minute bucket.
    pub(crate) fn current(&self) -> u32 {
        self.buckets[self.latest.rem_euclid(12) as usize]
    }

    pub(crate) fn total(&self) -> u32 {
        self.buckets.iter().sum()
    }
}

/// Every detector's settings, one TOML section each (`[detectors.velocity]` …).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorsConfig {
    /// Reads of waybills the policy refused, or that do not exist.
    pub out_of_scope: scope::OutOfScopeConfig,
    /// Reads per hour against the account's own baseline and its peers'.
    pub velocity: volume::VelocityConfig,
    /// Distinct records read in full, outside plain workflow, per day.
    pub distinct_records: volume::DistinctConfig,
    /// Machine-regular intervals between reads.
    pub cadence: behaviour::CadenceConfig,
    /// Consecutive or near-consecutive waybill numbers.
    pub enumeration: behaviour::EnumerationConfig,
    /// Reads of parcels already signed for or returned.
    pub post_delivery: scope::PostDeliveryConfig,
    /// Reads at hours the account does not normally work.
    pub off_shift: behaviour::OffShiftConfig,
    /// New devices, two devices or networks in use at once.
    pub device: device::DeviceConfig,
    /// One device serving many accounts.
    pub shared_device: device::SharedDeviceConfig,
    /// Reads concentrated on one other outlet's district.
    pub region: scope::RegionConfig,
    /// Labels printed again and again, or outside the printing workflow.
    pub reprint: volume::ReprintConfig,
    /// An account that was silent for weeks reading again.
    pub dormant: behaviour::DormantConfig,
}

/// The per-account state of every detector.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct DetectorState {
    out_of_scope: scope::OutOfScopeState,
    velocity: volume::VelocityState,
    distinct: volume::DistinctState,
    cadence: behaviour::CadenceState,
    enumeration: behaviour::EnumerationState,
    post_delivery: scope::PostDeliveryState,
    off_shift: behaviour::OffShiftState,
    device: device::DeviceState,
    region: scope::RegionState,
    reprint: volume::ReprintState,
}

impl DetectorState {
    /// Folds a finished hour of reads into the velocity baseline; returns the hour's count when one finished.
    pub(crate) fn roll_hour(&mut self, at: i64) -> Option<u32> {
        self.velocity.roll(at)
    }
}

impl DetectorsConfig {
    /// Runs every enabled detector over `ev`, pushing what they notice into `out`.
    pub(crate) fn run(&self, st: &mut DetectorState, ev: &Event<'_>, out: &mut Vec<Signal>) {
        let mut push = |s: Option<Signal>| out.extend(s);
        push(self.dormant.observe(ev));
        push(self.out_of_scope.observe(&mut st.out_of_scope, ev));
        push(self.velocity.observe(&mut st.velocity, ev));
        push(self.distinct_records.observe(&mut st.distinct, ev));
        push(self.cadence.observe(&mut st.cadence, ev));
        push(self.enumeration.observe(&mut st.enumeration, ev));
        push(self.post_delivery.observe(&mut st.post_delivery, ev));
        push(self.off_shift.observe(&mut st.off_shift, ev));
        push(self.device.observe(&mut st.device, ev));
        push(self.region.observe(&mut st.region, ev));
        push(self.reprint.observe(&mut st.reprint, ev));
    }
}

/// A role set in config: `["courier", "outlet_staff"]`.
pub(crate) fn role_in(roles: &[Role], role: Role) -> bool {
    roles.contains(&role)
}

/// Per-role limits used by the volume detectors.
pub(crate) fn per_role(
    courier: f64,
    outlet_staff: f64,
    customer_service: f64,
    merchant: f64,
    print_station: f64,
) -> PerRole {
    PerRole {
        courier,
        outlet_staff,
        customer_service,
        merchant,
        print_station,
        integration: f64::INFINITY,
        auditor: 0.0,
        admin: 0.0,
        telephony_gateway: 0.0,
        outlet_manager: 0.0,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds accesses for detector tests.
    use crate::hook::Access;
    use wbg_core::{
        Account, AccountId, AccountStatus, MerchantId, OutletId, Purpose, Role, View, WaybillMeta,
        WaybillNo, WaybillStatus,
    };

    pub fn account(id: &str, role: Role, outlet: &str) -> Account {
        Account {
            id: AccountId::parse(id).unwrap(),
            role,
            outlet: Some(OutletId::parse(outlet).unwrap()),
            merchant: None,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: 0,
            status_since: 0,
        }
    }

    pub fn waybill(no: u64, dest: &str, status: WaybillStatus) -> WaybillMeta {
        WaybillMeta {
            waybill_no: WaybillNo::parse(&format!("YT{no:013}")).unwrap(),
            merchant: MerchantId::parse("M001").unwrap(),
            origin_outlet: OutletId::parse("O900").unwrap(),
            destination_outlet: OutletId::parse(dest).unwrap(),
            courier: None,
            status,
            created_at: 0,
            updated_at: 0,
            signed_at: None,
            bucket: 0,
        }
    }

    pub fn access<'a>(
        account: &'a Account,
        waybill: &'a WaybillMeta,
        view: Option<View>,
        at: i64,
    ) -> Access<'a> {
        Access {
            account,
            waybill_no: waybill.waybill_no.as_str(),
            waybill: Some(waybill),
            purpose: Purpose::ExceptionHandling,
            policy_view: view,
            ticket: None,
            at,
            device: None,
            ip: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_takes_trailing_digits() {
        assert_eq!(serial("YT0000000012345"), Some(12345));
        assert_eq!(serial("AB12CD"), None);
        assert_eq!(serial("9"), Some(9));
    }

    #[test]
    fn hour_window_forgets_after_an_hour() {
        let mut w = HourWindow::default();
        for i in 0..10 {
            w.add(i * 1000);
        }
        assert_eq!(w.total(), 10);
        assert_eq!(w.add(30 * 60_000), 11);
        assert_eq!(w.add(61 * 60_000), 2, "the first bucket has gone");
        assert_eq!(w.add(200 * 60_000), 1, "long silence clears all");
    }
}
