//! The public lookup (`/track`) under the people it serves and the scrapers it exists to stop, through the real
//! guard on the simulated clock, with ground truth: every lookup is known to be a customer's look at their own
//! parcel (or their typo) or a scraper's look at someone else's. Customers look their parcels up a few times
//! over the days, some mistype a number or the last four digits, some share an address behind a carrier-grade
//! NAT; scrapers guess numbers in sequence or at random from one address or from a whole /24, or know numbers
//! and guess the last four digits of the recipient's phone, from one address or from many networks; a botnet
//! asks random numbers, each from a network of its own. The report
//! says, per kind of looker, how many lookups of numbers it did not own were answered before it was blocked,
//! whether any personal data was shown to it, and the most last-four guesses any number took — and whether a
//! customer was ever refused.
use crate::{SimError, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;
use wbg_core::{AccountId, EventType, Millis, Role, StatusEvent};
use wbg_guard::{Actor, GuardError, RequestMeta, TrackRefusal};

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

/// The shape of a tracking run.
#[derive(Debug, Clone)]
pub struct TrackingSpec {
    /// Parcels the lookups are about (ingested for the run).
    pub parcels: usize,
    /// Their first serial number.
    pub first_serial: u64,
    /// Days of lookups.
    pub days: u32,
    /// Share of customers behind a shared address (carrier-grade NAT), 0–1.
    pub shared_share: f64,
    /// Customers per shared address.
    pub per_shared_address: usize,
    /// Seed of everyone's choices.
    pub seed: u64,
}

impl TrackingSpec {
    /// The run `wbguard simulate --scenario tracking` makes: 5,000 parcels over two days.
    pub fn standard(seed: u64) -> TrackingSpec {
        TrackingSpec {
            parcels: 5_000,
            first_serial: 7_000_000_000,
            days: 2,
            shared_share: 0.1,
            per_shared_address: 8,
            seed,
        }
    }
}

/// Who looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Looker {
    /// The parcels' recipients, at their own parcels (and their typos).
    Customers,
    /// One address asking for numbers one after another.
    Sequential,
    /// One address guessing numbers at random around the series.
    Random,
    /// 250 addresses of one /24 taking turns at a sequence.
    RotatingPrefix,
    /// One address that knows 20 numbers, guessing each recipient's last four digits.
    Last4Guessing,
    /// The same from 50 networks.
    Last4Rotating,
    /// A botnet: random numbers around the series, each from a network of its own, never twice from one.
    Botnet,
}

impl Looker {
    /// Every scraper.
    pub const SCRAPERS: [Looker; 6] = [
        Looker::Sequential,
        Looker::Random,
        Looker::RotatingPrefix,
        Looker::Last4Guessing,
        Looker::Last4Rotating,
        Looker::Botnet,
    ];
}

/// One kind of looker's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LookerOutcome {
    /// Who.
    pub looker: Looker,
    /// Addresses it used.
    pub addresses: usize,
    /// Lookups it made.
    pub lookups: u64,
    /// Lookups answered (the parcel, or "no such parcel").
    pub answered: u64,
    /// Of them, of numbers it does not own (a customer's typo included).
    pub foreign_answered: u64,
    /// Answered lookups of numbers it does not own before its first block (all of them if it never was).
    pub foreign_before_block: u64,
    /// Refused as too fast (429).
    pub slowed: u64,
    /// Refused as blocked (403).
    pub blocked: u64,
    /// Times a recipient's masked name and district were shown to it for a parcel it does not own.
    pub foreign_reveals: u64,
    /// Wrong last-four guesses answered ("wrong") on one number, the most over its numbers.
    pub max_wrong_last4_per_number: u64,
    /// Last-four checks refused because the number's check was locked.
    pub last4_locked: u64,
}

/// A tracking run's report.
#[derive(Debug, Clone, Serialize)]
pub struct TrackingReport {
    /// Parcels.
    pub parcels: usize,
    /// Days of lookups.
    pub days: u32,
    /// Per kind of looker.
    pub lookers: Vec<LookerOutcome>,
    /// Lookups driven through the guard.
    pub lookups: u64,
    /// Distributed-enumeration alerts raised while the botnet was at work (from its first lookup to a minute
    /// after its last).
    pub distributed_alerts_during_botnet: u64,
    /// The same alerts at any other time (false alarms: customers alone).
    pub distributed_alerts_otherwise: u64,
    /// Wall-clock seconds the run took.
    pub elapsed_seconds: f64,
}

/// One lookup to make.
struct Ask {
    at: Millis,
    looker: Looker,
    from: IpAddr,
    no: String,
    last4: Option<String>,
    owned: bool,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Runs the lookups of `spec` in `world` from its clock's time on (the parcels are ingested and scanned first).
pub fn simulate_tracking(
    world: &mut World,
    spec: &TrackingSpec,
) -> Result<TrackingReport, SimError> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x7A);
    let meta = RequestMeta::default();
    let local = Actor::Local("simulator");
    let start = world.now();
    let parcels = world.carrier.waybills(spec.first_serial, spec.parcels);
    for chunk in parcels.chunks(2_000) {
        world.guard.ingest(local, chunk.to_vec(), &meta)?;
    }
    // Every parcel is on its way; half are out and signed for on the first day.
    for (i, w) in parcels.iter().enumerate() {
        let courier = world
            .carrier
            .account(Role::Courier, Some(&w.destination_outlet))
            .map(|a| a.id.clone());
        let mut flow = vec![
            (EventType::PickedUp, w.origin_outlet.clone(), None),
            (EventType::AtOutlet, w.destination_outlet.clone(), None),
        ];
        if i % 2 == 0 {
            if let Some(c) = courier {
                flow.push((
                    EventType::OutForDelivery,
                    w.destination_outlet.clone(),
                    AccountId::parse(&c).ok(),
                ));
                flow.push((EventType::Signed, w.destination_outlet.clone(), None));
            }
        }
        for (kind, outlet, courier) in flow {
            let ev = StatusEvent {
                kind,
                outlet,
                courier,
                at: None,
            };
            world
                .guard
                .record_event(local, w.waybill_no.as_str(), ev, &meta)?;
        }
    }
    let span = Millis::from(spec.days) * DAY;
    let no_of = |serial: u64| wbg_sim::waybill_no(serial);
    let mut asks = Vec::new();

    // Customers: one address each, or one shared by a few behind a NAT; 1-4 looks at their parcel over the run,
    // a fifth of them with the last four digits; a few typos of the number or of the digits.
    let mut shared = 0u32;
    for (i, w) in parcels.iter().enumerate() {
        // Homes are spread over many networks, as a carrier's customers are: a network seldom holds two
        // customers whose parcels' numbers are within 20 of each other (a real carrier issues tens of millions of
        // numbers a day, so neighbours in numbering are strangers).
        let from = if rng.gen_bool(spec.shared_share) {
            shared += 1;
            let group = shared / spec.per_shared_address.max(1) as u32;
            v4(100, 100, (group / 250) as u8, (group % 250) as u8 + 1)
        } else {
            v4(100, rng.gen_range(64..96), rng.gen(), rng.gen_range(1..255))
        };
        let phone = &w.recipient.phone;
        let last4 = phone[phone.len().saturating_sub(4)..].to_owned();
        for _ in 0..rng.gen_range(1..=4) {
            let at = start + rng.gen_range(0..span);
            let mut digits = rng.gen_bool(0.2).then(|| last4.clone());
            if digits.is_some() && rng.gen_bool(0.02) {
                digits = Some(format!("{:04}", rng.gen_range(0..10_000)));
            }
            asks.push(Ask {
                at,
                looker: Looker::Customers,
                from,
                no: w.waybill_no.to_string(),
                last4: digits,
                owned: true,
            });
        }
        if rng.gen_bool(0.03) {
            let serial = spec.first_serial + i as u64;
            let typo = if rng.gen_bool(0.5) {
                serial + 1
            } else {
                serial.saturating_sub(10)
            };
            asks.push(Ask {
                at: start + rng.gen_range(0..span),
                looker: Looker::Customers,
                from,
                no: no_of(typo),
                last4: None,
                owned: false,
            });
        }
    }
    // Scrapers, each starting some time into the run.
    let begin = |rng: &mut StdRng| start + rng.gen_range(HOUR..span / 2);
    let t0 = begin(&mut rng);
    let first = spec.first_serial + rng.gen_range(0..spec.parcels as u64 / 2);
    for k in 0..2_000u64 {
        asks.push(Ask {
            at: t0 + k as Millis * 3_000,
            looker: Looker::Sequential,
            from: v4(203, 0, 113, 7),
            no: no_of(first + k),
            last4: None,
            owned: false,
        });
    }
    let t0 = begin(&mut rng);
    for k in 0..2_000u64 {
        let serial = spec.first_serial + rng.gen_range(0..spec.parcels as u64 * 20);
        asks.push(Ask {
            at: t0 + k as Millis * 2_000,
            looker: Looker::Random,
            from: v4(198, 51, 100, 9),
            no: no_of(serial),
            last4: None,
            owned: false,
        });
    }
    let t0 = begin(&mut rng);
    let first = spec.first_serial + rng.gen_range(0..spec.parcels as u64 / 2);
    for k in 0..3_000u64 {
        asks.push(Ask {
            at: t0 + k as Millis * 1_000,
            looker: Looker::RotatingPrefix,
            from: v4(192, 0, 2, (k % 250) as u8 + 1),
            no: no_of(first + k),
            last4: None,
            owned: false,
        });
    }
    // The last-four guessers know 20 numbers each (a leaked list) and try 0000, 0001, … on each in turn.
    for (looker, spread) in [
        (Looker::Last4Guessing, false),
        (Looker::Last4Rotating, true),
    ] {
        let t0 = begin(&mut rng);
        let known: Vec<String> = (0..20)
            .map(|_| {
                parcels[rng.gen_range(0..parcels.len())]
                    .waybill_no
                    .to_string()
            })
            .collect();
        for k in 0..2_000u64 {
            let from = if spread {
                v4(172, 16 + (k % 50) as u8, (k / 50 % 250) as u8, 9)
            } else {
                v4(203, 0, 113, 50)
            };
            asks.push(Ask {
                at: t0 + k as Millis * 2_000,
                looker,
                from,
                no: known[(k % 20) as usize].clone(),
                last4: Some(format!("{:04}", k / 20)),
                owned: false,
            });
        }
    }
    // The botnet: 3,000 random guesses, five a second, each from a /24 of its own.
    let botnet_from = begin(&mut rng);
    for k in 0..3_000u64 {
        let serial = spec.first_serial + rng.gen_range(0..spec.parcels as u64 * 20);
        asks.push(Ask {
            at: botnet_from + k as Millis * 200,
            looker: Looker::Botnet,
            from: v4(11, (k / 250) as u8, (k % 250) as u8, 7),
            no: no_of(serial),
            last4: None,
            owned: false,
        });
    }
    let botnet_until = botnet_from + 3_000 * 200 + 60_000;
    asks.sort_by_key(|a| a.at);

    #[derive(Default)]
    struct Tally {
        addresses: std::collections::HashSet<IpAddr>,
        lookups: u64,
        answered: u64,
        foreign: u64,
        foreign_before_block: u64,
        was_blocked: bool,
        slowed: u64,
        blocked: u64,
        reveals: u64,
        wrong: HashMap<String, u64>,
        locked: u64,
    }
    let mut tallies: HashMap<Looker, Tally> = HashMap::new();
    let lookups = asks.len() as u64;
    for a in asks {
        world.clock.set(a.at.max(world.now()));
        let t = tallies.entry(a.looker).or_default();
        t.addresses.insert(a.from);
        t.lookups += 1;
        match world.guard.track(&a.no, a.from, a.last4.as_deref())? {
            Ok(found) => {
                t.answered += 1;
                if !a.owned {
                    t.foreign += 1;
                    if !t.was_blocked {
                        t.foreign_before_block += 1;
                    }
                }
                if let Some(found) = found {
                    match found.check.as_deref() {
                        Some("wrong") => *t.wrong.entry(a.no.clone()).or_default() += 1,
                        Some("locked") => t.locked += 1,
                        _ => {}
                    }
                    if found.recipient.is_some() && !a.owned {
                        t.reveals += 1;
                    }
                }
            }
            Err(TrackRefusal::Slow(_)) => t.slowed += 1,
            Err(TrackRefusal::Blocked(_)) => {
                t.blocked += 1;
                t.was_blocked = true;
            }
        }
    }
    let order = [Looker::Customers]
        .into_iter()
        .chain(Looker::SCRAPERS)
        .collect::<Vec<_>>();
    let lookers = order
        .into_iter()
        .map(|l| {
            let t = tallies.remove(&l).unwrap_or_default();
            LookerOutcome {
                looker: l,
                addresses: t.addresses.len(),
                lookups: t.lookups,
                answered: t.answered,
                foreign_answered: t.foreign,
                foreign_before_block: t.foreign_before_block,
                slowed: t.slowed,
                blocked: t.blocked,
                foreign_reveals: t.reveals,
                max_wrong_last4_per_number: t.wrong.values().copied().max().unwrap_or(0),
                last4_locked: t.locked,
            }
        })
        .collect();
    let distributed = world
        .guard
        .store()
        .alerts(&wbg_store::AlertFilter {
            kind: Some("public_enumeration_distributed".into()),
            limit: 10_000,
            ..wbg_store::AlertFilter::default()
        })
        .map_err(GuardError::from)?;
    let during = distributed
        .iter()
        .filter(|a| (botnet_from..botnet_until).contains(&a.at))
        .count() as u64;
    Ok(TrackingReport {
        parcels: spec.parcels,
        days: spec.days,
        lookers,
        lookups,
        distributed_alerts_during_botnet: during,
        distributed_alerts_otherwise: distributed.len() as u64 - during,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}
