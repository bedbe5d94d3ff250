//! Attacks with ground truth: each T1–T4 behaviour is a set of parameters (which kind of account, what it goes
//! after, how fast, how much cover traffic, from which device), built in or read from a TOML file of `[[attack]]`
//! tables, and planned day by day into the same timeline as the carrier's ordinary work.
use crate::benign::{own_device, Parcel, DAY};
use crate::world::{Op, Timed};
use crate::SimError;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use wbg_core::{Millis, Purpose, Role};
use wbg_sim::Carrier;

const HOUR: Millis = 3_600_000;

/// The seed incidents of `THREATS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Threat {
    /// An account rented out to a fraud ring.
    T1,
    /// An insider harvesting customers.
    T2,
    /// Delivered parcels' recipients sold fresh.
    T3,
    /// A print station's labels stolen.
    T4,
}

impl Threat {
    /// All four.
    pub const ALL: [Threat; 4] = [Threat::T1, Threat::T2, Threat::T3, Threat::T4];

    /// `T1` … `T4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Threat::T1 => "T1",
            Threat::T2 => "T2",
            Threat::T3 => "T3",
            Threat::T4 => "T4",
        }
    }
}

/// What an attacker goes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Parcels leaving from or arriving at the account's own outlet (inside its scope).
    OwnOutlet,
    /// Parcels of other outlets, anywhere.
    OtherOutlets,
    /// Parcels of outlets in provinces other than the account's own.
    OtherProvince,
    /// The recipients of one district (`region` names it; by default another outlet's district).
    District,
    /// Guessed waybill numbers, counting up from one the account has seen.
    Sequential,
    /// A courier's own parcels, after they were handed over (`min_minutes_after_signing` on).
    DeliveredOwn,
    /// Labels of the outlet's parcels long after they were picked up.
    PastPickup,
    /// The same labels printed again and again.
    Reprint,
}

/// Which device the attacker's reads come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceUse {
    /// The owner's own device (an insider at their own desk, or a stolen phone).
    #[default]
    Owner,
    /// A device of the attacker's own, used while the owner keeps working on theirs.
    Second,
    /// No device id at all (a script calling the API directly).
    None,
    /// A new device every few dozen reads.
    Rotating,
}

fn default_start_hour() -> f64 {
    10.0
}

fn default_hours() -> [u32; 2] {
    [0, 24]
}

fn default_post_signing() -> u32 {
    40
}

/// One attack, as written in an `--attacks` file:
///
/// ```toml
/// [[attack]]
/// name = "rented-courier-tool"
/// threat = "T1"
/// role = "courier"             # the kind of account used; or `account = "C00301"`
/// start_day = 2                # 0-based day of the simulation
/// start_hour = 10.0            # local time on that day
/// hours = [0, 24]              # local hours the attacker is at work, [from, to) (wraps past midnight)
/// pace_seconds = 3.0           # mean gap between reads
/// jitter = 0.0                 # 0 = a metronome (a script); 1 = as irregular as a person
/// records = 2000               # target records wanted; the attack ends when it has asked for this many
/// per_day = 0                  # at most this many target reads a day (0 = no limit): slow harvesting
/// cover_share = 0.0            # share of reads that are ordinary-looking reads inside the account's scope
/// target = "other_outlets"     # own_outlet | other_outlets | other_province | district | sequential |
///                              # delivered_own | past_pickup | reprint
/// region = "萧山区"              # for `district` (district, city or province name); default another outlet's
/// purpose = "delivery"         # default by role
/// device = "second"            # owner | second | none | rotating
/// ip = "198.51.100.7"          # the client address of the attacker's reads (none by default)
/// tickets = false              # invent a customer-service ticket for every read (default for agents)
/// owner_left_day = 1           # the owner stopped working on this day (an ex-employee's account)
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackSpec {
    /// A name for the report and the leak files.
    pub name: String,
    /// The incident it reproduces.
    pub threat: Threat,
    /// The kind of account used (the simulator picks one).
    pub role: Role,
    /// A particular account instead.
    #[serde(default)]
    pub account: Option<String>,
    /// Day the attack starts (0-based).
    #[serde(default)]
    pub start_day: u32,
    /// Local hour it starts on that day.
    #[serde(default = "default_start_hour")]
    pub start_hour: f64,
    /// Local working hours `[from, to)`.
    #[serde(default = "default_hours")]
    pub hours: [u32; 2],
    /// Mean seconds between reads.
    pub pace_seconds: f64,
    /// 0 (regular as a script) to 1 (irregular as a person).
    #[serde(default)]
    pub jitter: f64,
    /// Target reads wanted.
    pub records: u64,
    /// Target reads a day at most (0: no limit).
    #[serde(default)]
    pub per_day: u64,
    /// Share of reads that are cover traffic inside the account's own scope.
    #[serde(default)]
    pub cover_share: f64,
    /// What it goes after.
    pub target: Target,
    /// Region for `district` targets.
    #[serde(default)]
    pub region: Option<String>,
    /// Purpose claimed (default by role).
    #[serde(default)]
    pub purpose: Option<Purpose>,
    /// Device behaviour.
    #[serde(default)]
    pub device: DeviceUse,
    /// Client address.
    #[serde(default)]
    pub ip: Option<String>,
    /// Invent a ticket for every read (default: customer service does).
    #[serde(default)]
    pub tickets: Option<bool>,
    /// Minutes after signing a `delivered_own` parcel is read at the earliest.
    #[serde(default = "default_post_signing")]
    pub min_minutes_after_signing: u32,
    /// The owner left on this day; their account does no ordinary work from then on.
    #[serde(default)]
    pub owner_left_day: Option<u32>,
}

/// An `--attacks` file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttackFile {
    /// The attacks.
    #[serde(default)]
    pub attack: Vec<AttackSpec>,
}

impl AttackFile {
    /// Parses and checks an attacks file; an error names what is wrong.
    pub fn from_toml(text: &str) -> Result<AttackFile, SimError> {
        let f: AttackFile = toml::from_str(text).map_err(|e| SimError::Attacks(e.to_string()))?;
        for a in &f.attack {
            a.check()?;
        }
        Ok(f)
    }
}

impl AttackSpec {
    fn check(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::Attacks(format!("attack {:?}: {what}", self.name)));
        if self.name.is_empty() || self.name.len() > 64 {
            return bad("name must be 1 to 64 characters");
        }
        if !(self.pace_seconds.is_finite() && self.pace_seconds >= 0.05) {
            return bad("pace_seconds must be at least 0.05");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad("jitter must be within 0..=1");
        }
        if !(0.0..0.95).contains(&self.cover_share) {
            return bad("cover_share must be within 0..0.95");
        }
        if !(0.0..24.0).contains(&self.start_hour) {
            return bad("start_hour must be within 0..24");
        }
        if self.hours[0] > 24 || self.hours[1] > 24 || self.hours[0] == self.hours[1] {
            return bad("hours must be two different hours within 0..=24");
        }
        if self.records == 0 || self.records > 1_000_000 {
            return bad("records must be within 1..=1000000");
        }
        if let Some(ip) = &self.ip {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return bad("ip must be an IPv4 or IPv6 address");
            }
        }
        let outlet_bound = matches!(
            self.role,
            Role::Courier | Role::OutletStaff | Role::PrintStation
        );
        match self.target {
            Target::OwnOutlet | Target::PastPickup | Target::Reprint if !outlet_bound => {
                bad("this target needs an outlet-bound role (courier, outlet_staff, print_station)")
            }
            Target::DeliveredOwn if self.role != Role::Courier => {
                bad("delivered_own needs a courier")
            }
            _ if matches!(
                self.role,
                Role::Admin | Role::Auditor | Role::Integration | Role::Merchant
            ) =>
            {
                bad("the role must be courier, outlet_staff, customer_service or print_station")
            }
            _ => Ok(()),
        }
    }

    fn purpose(&self) -> Purpose {
        self.purpose.unwrap_or(match self.role {
            Role::Courier => Purpose::Delivery,
            Role::OutletStaff => Purpose::ExceptionHandling,
            Role::PrintStation => Purpose::Label,
            _ => Purpose::CustomerService,
        })
    }

    fn tickets(&self) -> bool {
        self.tickets.unwrap_or(self.role == Role::CustomerService)
    }

    /// Is local hour `h` within the attacker's working hours?
    fn at_work(&self, h: u32) -> bool {
        let [from, to] = self.hours;
        if from < to {
            (from..to).contains(&h)
        } else {
            h >= from || h < to
        }
    }
}

/// The built-in variants: each threat as a fast tool, a slow human, and mixed into the account's real work.
pub fn builtin() -> Vec<AttackSpec> {
    let base = |name: &str, threat, role, target| AttackSpec {
        name: name.into(),
        threat,
        role,
        account: None,
        start_day: 2,
        start_hour: default_start_hour(),
        hours: default_hours(),
        pace_seconds: 30.0,
        jitter: 0.8,
        records: 1_000,
        per_day: 0,
        cover_share: 0.0,
        target,
        region: None,
        purpose: None,
        device: DeviceUse::Owner,
        ip: None,
        tickets: None,
        min_minutes_after_signing: default_post_signing(),
        owner_left_day: None,
    };
    vec![
        // T1: the account is rented out; the ring works it from elsewhere while the owner keeps working.
        AttackSpec {
            pace_seconds: 2.0,
            jitter: 0.0,
            records: 5_000,
            device: DeviceUse::Second,
            ip: Some("198.51.100.7".into()),
            ..base(
                "T1-fast-tool",
                Threat::T1,
                Role::Courier,
                Target::OtherOutlets,
            )
        },
        AttackSpec {
            start_day: 3,
            start_hour: 14.0,
            hours: [9, 21],
            pace_seconds: 45.0,
            jitter: 1.0,
            records: 600,
            device: DeviceUse::Second,
            ..base(
                "T1-slow-human",
                Threat::T1,
                Role::OutletStaff,
                Target::OtherProvince,
            )
        },
        AttackSpec {
            start_day: 4,
            start_hour: 9.0,
            pace_seconds: 12.0,
            jitter: 0.3,
            records: 2_000,
            cover_share: 0.5,
            ..base(
                "T1-mixed-sequential",
                Threat::T1,
                Role::OutletStaff,
                Target::Sequential,
            )
        },
        // T2: an insider harvesting over weeks, an ex-employee's live account, a bulk pull.
        AttackSpec {
            start_day: 1,
            hours: [9, 18],
            pace_seconds: 600.0,
            jitter: 1.0,
            records: 3_000,
            per_day: 25,
            cover_share: 0.3,
            ..base(
                "T2-slow-insider",
                Threat::T2,
                Role::OutletStaff,
                Target::OwnOutlet,
            )
        },
        AttackSpec {
            start_day: 5,
            start_hour: 21.0,
            hours: [20, 24],
            pace_seconds: 20.0,
            jitter: 0.5,
            records: 2_000,
            device: DeviceUse::None,
            owner_left_day: Some(0),
            ..base(
                "T2-ex-employee",
                Threat::T2,
                Role::OutletStaff,
                Target::OwnOutlet,
            )
        },
        AttackSpec {
            start_day: 3,
            start_hour: 11.0,
            pace_seconds: 1.0,
            jitter: 0.2,
            records: 10_000,
            device: DeviceUse::Rotating,
            ..base(
                "T2-bulk",
                Threat::T2,
                Role::CustomerService,
                Target::OtherOutlets,
            )
        },
        // T3: a courier reading their delivered parcels to sell them fresh; staff pulling one district.
        AttackSpec {
            start_day: 1,
            start_hour: 12.0,
            hours: [12, 22],
            pace_seconds: 240.0,
            jitter: 1.0,
            records: 2_000,
            min_minutes_after_signing: 40,
            ..base(
                "T3-courier-resale",
                Threat::T3,
                Role::Courier,
                Target::DeliveredOwn,
            )
        },
        AttackSpec {
            start_day: 2,
            start_hour: 15.0,
            pace_seconds: 8.0,
            jitter: 0.5,
            records: 1_000,
            cover_share: 0.2,
            ..base(
                "T3-district-pull",
                Threat::T3,
                Role::OutletStaff,
                Target::OwnOutlet,
            )
        },
        AttackSpec {
            start_day: 2,
            start_hour: 9.0,
            hours: [9, 18],
            pace_seconds: 90.0,
            jitter: 1.0,
            records: 500,
            purpose: Some(Purpose::CustomerService),
            tickets: Some(true),
            ..base(
                "T3-agent-district",
                Threat::T3,
                Role::CustomerService,
                Target::District,
            )
        },
        // T4: a print station printing outside its workflow, in storms, off shift.
        AttackSpec {
            start_day: 2,
            start_hour: 13.0,
            pace_seconds: 3.0,
            jitter: 0.2,
            records: 3_000,
            ..base(
                "T4-past-pickup",
                Threat::T4,
                Role::PrintStation,
                Target::PastPickup,
            )
        },
        AttackSpec {
            start_day: 3,
            start_hour: 2.0,
            pace_seconds: 1.0,
            jitter: 0.1,
            records: 3_000,
            ..base(
                "T4-reprint-storm",
                Threat::T4,
                Role::PrintStation,
                Target::Reprint,
            )
        },
        AttackSpec {
            start_day: 4,
            start_hour: 23.0,
            hours: [23, 5],
            pace_seconds: 20.0,
            jitter: 0.6,
            records: 1_000,
            ..base(
                "T4-off-shift",
                Threat::T4,
                Role::PrintStation,
                Target::PastPickup,
            )
        },
    ]
}

/// Picks the account each attack uses: the one named, or one of the role's accounts chosen so that no two
/// attacks share an account and none lands on an account the benign plan gives a special job (the first
/// courier and staff of an outlet, the first agent) or on a night-shift outlet.
pub(crate) fn cast(
    attacks: &[AttackSpec],
    carrier: &Carrier,
    night_outlets: usize,
) -> Result<Vec<String>, SimError> {
    let night: HashSet<&str> = carrier
        .outlets
        .iter()
        .take(night_outlets)
        .map(|o| o.id.as_str())
        .collect();
    let mut taken: Vec<String> = Vec::new();
    for (k, a) in attacks.iter().enumerate() {
        let id = match &a.account {
            Some(id) => {
                let acct = carrier
                    .accounts
                    .iter()
                    .find(|c| &c.id == id)
                    .ok_or_else(|| {
                        SimError::Attacks(format!("attack {:?}: no account {id}", a.name))
                    })?;
                if acct.role != a.role {
                    return Err(SimError::Attacks(format!(
                        "attack {:?}: account {id} is not a {}",
                        a.name,
                        a.role.as_str()
                    )));
                }
                id.clone()
            }
            None => {
                let candidates: Vec<&str> = carrier
                    .accounts
                    .iter()
                    .filter(|c| c.role == a.role)
                    .filter(|c| c.outlet.as_deref().is_none_or(|o| !night.contains(o)))
                    .map(|c| c.id.as_str())
                    // Not the first of an outlet's crew, nor the first agent.
                    .filter(|id| a.role == Role::PrintStation || !id.ends_with("01"))
                    .filter(|id| !taken.iter().any(|t| t == id))
                    .collect();
                // Spread attacks over outlets: step through the candidates from a place set by the attack's
                // position.
                let pick = candidates
                    .get((k * 7 + 3) % candidates.len().max(1))
                    .ok_or_else(|| {
                        SimError::Attacks(format!(
                            "attack {:?}: no free {} account in this carrier",
                            a.name,
                            a.role.as_str()
                        ))
                    })?;
                (*pick).to_owned()
            }
        };
        if taken.contains(&id) {
            return Err(SimError::Attacks(format!(
                "attack {:?}: account {id} is already used by another attack",
                a.name
            )));
        }
        taken.push(id);
    }
    Ok(taken)
}

/// An attack under way.
pub(crate) struct Attacker {
    pub index: usize,
    pub spec: AttackSpec,
    pub account: String,
    /// Index of the account's outlet.
    outlet: Option<usize>,
    /// Target reads asked for so far.
    asked: u64,
    /// Records already gone after.
    used: HashSet<usize>,
    /// The next number to guess (sequential targets).
    guess: Option<u64>,
    /// The district's outlet (district targets).
    district: Option<usize>,
    /// The time of the attacker's next read.
    next: Option<Millis>,
    reads: u64,
    /// How far into the ledger `mine` and `today` have looked.
    scanned: usize,
    /// The account's delivered parcels: (signed at, ledger index), oldest first.
    mine: Vec<(Millis, usize)>,
    /// The outlet's labels of the day being planned (reprint targets).
    today: Vec<usize>,
}

impl Attacker {
    pub(crate) fn new(
        index: usize,
        spec: AttackSpec,
        account: String,
        carrier: &Carrier,
    ) -> Attacker {
        let outlet = carrier
            .accounts
            .iter()
            .find(|a| a.id == account)
            .and_then(|a| a.outlet.as_deref())
            .and_then(|o| carrier.outlets.iter().position(|x| x.id.as_str() == o));
        let district = match &spec.region {
            Some(r) => carrier
                .outlets
                .iter()
                .position(|o| o.region.2 == *r || o.region.1 == *r || o.region.0 == *r),
            None => Some((outlet.unwrap_or(0) + 5 + index) % carrier.outlets.len().max(1)),
        };
        Attacker {
            index,
            spec,
            account,
            outlet,
            asked: 0,
            used: HashSet::new(),
            guess: None,
            district,
            next: None,
            reads: 0,
            scanned: 0,
            mine: Vec::new(),
            today: Vec::new(),
        }
    }

    /// Takes in the parcels planned since the last look: the account's deliveries and the day's labels.
    fn scan_ledger(&mut self, ledger: &[Parcel], base: Millis) {
        self.today.retain(|i| ledger[*i].ingested >= base);
        for (i, p) in ledger.iter().enumerate().skip(self.scanned) {
            if let Some((c, at)) = &p.delivered {
                if *c == self.account {
                    self.mine.push((*at, i));
                }
            }
            if self.outlet == Some(p.origin) && p.ingested >= base {
                self.today.push(i);
            }
        }
        self.scanned = ledger.len();
        self.mine.sort_unstable();
    }

    /// Done: every target read asked for.
    pub(crate) fn finished(&self) -> bool {
        self.asked >= self.spec.records
    }

    /// Plans the attacker's reads on `day`, which starts at local midnight `base`, picking targets from `ledger`.
    pub(crate) fn plan_day(
        &mut self,
        carrier: &Carrier,
        ledger: &[Parcel],
        day: u32,
        base: Millis,
        rng: &mut StdRng,
    ) -> Vec<Timed> {
        self.scan_ledger(ledger, base);
        let (start_day, per_day) = (self.spec.start_day, self.spec.per_day);
        if day < start_day || self.finished() {
            return Vec::new();
        }
        let start = base + (self.spec.start_hour * HOUR as f64) as Millis;
        let mut t = match self.next {
            Some(n) if n >= base => n,
            _ if day == start_day => start,
            _ => base,
        };
        let end = base + DAY;
        let mut today = 0;
        let mut plan = Vec::new();
        while t < end && !self.finished() && (per_day == 0 || today < per_day) {
            let hour = ((t - base) / HOUR) as u32;
            if !self.spec.at_work(hour) {
                // Skip to the next full hour.
                t = base + Millis::from(hour + 1) * HOUR;
                continue;
            }
            let cover = rng.gen_bool(self.spec.cover_share);
            let pick = if cover {
                self.cover(ledger, t, rng)
            } else {
                self.target(carrier, ledger, t, rng)
            };
            if let Some((no, purpose)) = pick {
                plan.push(self.read(t, no, purpose));
                if !cover {
                    self.asked += 1;
                    today += 1;
                }
            } else if !cover {
                // Nothing to go after yet (too early in the day): wait for the network to fill.
                t += 10 * 60_000;
                continue;
            }
            t += self.gap(rng);
        }
        // A day cap reached: resume with the next day's working hours.
        self.next = Some(t.max(end));
        plan
    }

    fn gap(&self, rng: &mut StdRng) -> Millis {
        let s = &self.spec;
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        let irregular = -u.ln();
        let factor = (1.0 - s.jitter) + s.jitter * irregular;
        ((s.pace_seconds * factor * 1_000.0) as Millis).max(50)
    }

    fn read(&mut self, at: Millis, no: String, purpose: Purpose) -> Timed {
        self.reads += 1;
        let device = match self.spec.device {
            DeviceUse::Owner => Some(own_device(&self.account)),
            DeviceUse::Second => Some(format!("{}-x", own_device(&self.account))),
            DeviceUse::None => None,
            DeviceUse::Rotating => Some(format!("tool-{}-{}", self.index, self.reads / 40)),
        };
        let ticket = (self.spec.tickets() && purpose == Purpose::CustomerService)
            .then(|| format!("TKX{}x{}", self.index, self.reads));
        Timed {
            at,
            op: Op::Read {
                account: self.account.clone(),
                no,
                purpose,
                ticket,
                device,
                ip: self.spec.ip.clone(),
                attack: Some(self.index),
            },
        }
    }

    /// An ordinary-looking read inside the account's scope: a masked look-up of one of its outlet's parcels.
    fn cover(&self, ledger: &[Parcel], t: Millis, rng: &mut StdRng) -> Option<(String, Purpose)> {
        let purpose = match self.spec.role {
            Role::PrintStation => Purpose::Label,
            Role::CustomerService => Purpose::CustomerService,
            _ => Purpose::Delivery,
        };
        let p = sample(ledger, t, rng, |_, p| {
            self.outlet.is_none_or(|o| p.origin == o || p.dest == o)
        })?;
        Some((ledger[p].no.clone(), purpose))
    }

    fn target(
        &mut self,
        carrier: &Carrier,
        ledger: &[Parcel],
        t: Millis,
        rng: &mut StdRng,
    ) -> Option<(String, Purpose)> {
        let purpose = self.spec.purpose();
        let own = self.outlet;
        let province = |i: usize| carrier.outlets[i].region.0.as_str();
        let used = &self.used;
        let i = match self.spec.target {
            Target::Sequential => {
                let n = match self.guess {
                    Some(n) => n,
                    None => {
                        let seen = sample(ledger, t, rng, |_, p| {
                            own.is_none_or(|o| p.origin == o || p.dest == o)
                        })?;
                        wbg_sim::serial_of(&ledger[seen].no)?
                    }
                };
                self.guess = Some(n + 1);
                return Some((wbg_sim::waybill_no(n + 1), purpose));
            }
            Target::OwnOutlet => sample(ledger, t, rng, |i, p| {
                !used.contains(&i) && own.is_some_and(|o| p.origin == o || p.dest == o)
            }),
            Target::OtherOutlets => sample(ledger, t, rng, |i, p| {
                !used.contains(&i) && own.is_none_or(|o| p.origin != o && p.dest != o)
            }),
            Target::OtherProvince => {
                let home = own.map(province);
                sample(ledger, t, rng, |i, p| {
                    !used.contains(&i) && home.is_none_or(|h| province(p.dest) != h)
                })
            }
            Target::District => {
                let d = self.district?;
                sample(ledger, t, rng, |i, p| !used.contains(&i) && p.dest == d)
            }
            Target::DeliveredOwn => {
                let after = Millis::from(self.spec.min_minutes_after_signing) * 60_000;
                // The freshest delivered parcel not yet taken.
                self.mine
                    .iter()
                    .rev()
                    .filter(|(at, _)| *at + after <= t)
                    .map(|(_, i)| *i)
                    .find(|i| !used.contains(i))
            }
            Target::PastPickup => sample(ledger, t, rng, |i, p| {
                !used.contains(&i)
                    && own.is_some_and(|o| p.origin == o)
                    && p.ingested + 4 * HOUR <= t
            }),
            Target::Reprint => {
                // The day's labels of the outlet, any of them, again and again.
                let pool: Vec<usize> = self
                    .today
                    .iter()
                    .copied()
                    .filter(|i| ledger[*i].ingested <= t)
                    .take(40)
                    .collect();
                let i = *pool.get(rng.gen_range(0..pool.len().max(1)))?;
                return Some((ledger[i].no.clone(), purpose));
            }
        }?;
        self.used.insert(i);
        Some((ledger[i].no.clone(), purpose))
    }
}

/// A parcel readable at `t` that `ok` accepts, at random (up to a bounded number of tries, so a rare kind of
/// parcel does not stall the plan).
fn sample(
    ledger: &[Parcel],
    t: Millis,
    rng: &mut StdRng,
    ok: impl Fn(usize, &Parcel) -> bool,
) -> Option<usize> {
    let readable = ledger.partition_point(|p| p.ingested <= t);
    if readable == 0 {
        return None;
    }
    // Mostly recent parcels (what is in the network now), sometimes older ones.
    let recent = readable.saturating_sub(readable.min(50_000));
    for _ in 0..2_000 {
        let lo = if rng.gen_bool(0.8) { recent } else { 0 };
        let i = rng.gen_range(lo..readable);
        if ok(i, &ledger[i]) {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_variants_are_valid_and_cover_every_threat() {
        let all = builtin();
        for a in &all {
            a.check().unwrap();
        }
        for t in Threat::ALL {
            assert!(all.iter().filter(|a| a.threat == t).count() >= 3, "{t:?}");
        }
        // They round-trip through the file format.
        let text = toml::to_string(&AttackFile {
            attack: all.clone(),
        })
        .unwrap();
        assert_eq!(
            AttackFile::from_toml(&text).unwrap().attack.len(),
            all.len()
        );
    }

    #[test]
    fn bad_attacks_are_named() {
        let base = builtin().remove(0);
        for (bad, why) in [
            (
                AttackSpec {
                    pace_seconds: 0.0,
                    ..base.clone()
                },
                "pace_seconds",
            ),
            (
                AttackSpec {
                    jitter: 2.0,
                    ..base.clone()
                },
                "jitter",
            ),
            (
                AttackSpec {
                    ip: Some("not-an-ip".into()),
                    ..base.clone()
                },
                "ip",
            ),
            (
                AttackSpec {
                    role: Role::CustomerService,
                    target: Target::Reprint,
                    ..base.clone()
                },
                "outlet-bound",
            ),
            (
                AttackSpec {
                    role: Role::OutletStaff,
                    target: Target::DeliveredOwn,
                    ..base.clone()
                },
                "courier",
            ),
            (
                AttackSpec {
                    hours: [9, 9],
                    ..base.clone()
                },
                "hours",
            ),
        ] {
            let e = bad.check().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(&base.name), "{e}");
        }
    }
}
