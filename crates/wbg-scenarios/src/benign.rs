//! A carrier's ordinary day: the night's orders ingested and labelled, scans through the network, couriers on
//! their rounds, staff on exceptions, agents on tickets — and the benign edge cases that must not be mistaken for
//! attacks (a night-shift outlet, peak-season volume, a colleague's round covered, an agent's burst of tickets).
use crate::world::{Op, Timed};
use crate::SimSpec;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;
use wbg_core::{AccountId, EventType, Millis, OutletId, Purpose, Role, StatusEvent};
use wbg_sim::Carrier;

const MIN: Millis = 60_000;
const HOUR: Millis = 3_600_000;
pub(crate) const DAY: Millis = 24 * HOUR;

fn scan(at: Millis, no: &str, kind: EventType, outlet: &OutletId, courier: Option<&str>) -> Timed {
    Timed {
        at,
        op: Op::Scan {
            no: no.to_owned(),
            ev: StatusEvent {
                kind,
                outlet: outlet.clone(),
                courier: courier.and_then(|c| AccountId::parse(c).ok()),
                at: None,
            },
        },
    }
}

fn read(at: Millis, account: &str, no: &str, purpose: Purpose, ticket: Option<String>) -> Timed {
    Timed {
        at,
        op: Op::Read {
            account: account.to_owned(),
            no: no.to_owned(),
            purpose,
            ticket,
            device: Some(own_device(account)),
            ip: None,
            attack: None,
        },
    }
}

/// The device an account's owner works on.
pub(crate) fn own_device(account: &str) -> String {
    format!("dev-{account}")
}

/// What the simulation knows about a parcel after planning its day: the ground an attacker picks targets from.
#[derive(Debug, Clone)]
pub(crate) struct Parcel {
    pub no: String,
    /// Index of the origin outlet.
    pub origin: usize,
    /// Index of the destination outlet.
    pub dest: usize,
    /// When it was ingested (and could first be read).
    pub ingested: Millis,
    /// The courier who delivered it, and when it was signed for.
    pub delivered: Option<(String, Millis)>,
}

/// Who is at work, and where: accounts whose owner has left (from a day on) do no ordinary work; a transferred
/// account works at its new outlet from the day of its move.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roster {
    pub left: HashMap<String, u32>,
    /// Account → (day, new outlet index).
    pub moved: HashMap<String, (u32, usize)>,
}

impl Roster {
    fn works(&self, account: &str, day: u32) -> bool {
        self.left.get(account).is_none_or(|d| day < *d)
    }

    /// The staff member who is transferred mid-week: the first staff of the third outlet moves to the fourth on
    /// day 3 (attacks never pick an outlet's first staff member).
    pub(crate) fn with_transfer(mut self, carrier: &Carrier, days: u32) -> Roster {
        let staff = carrier
            .accounts
            .iter()
            .filter(|a| a.role == Role::OutletStaff)
            .find(|a| a.outlet.as_deref() == carrier.outlets.get(2).map(|o| o.id.as_str()));
        if let (Some(s), true) = (staff, carrier.outlets.len() > 3 && days > TRANSFER_DAY) {
            self.moved.insert(s.id.clone(), (TRANSFER_DAY, 3));
        }
        self
    }
}

/// The day of the mid-week transfer.
const TRANSFER_DAY: u32 = 3;

/// The ids of `role` accounts at work at each outlet on `day`.
fn by_outlet(
    carrier: &Carrier,
    roster: &Roster,
    day: u32,
    role: Role,
) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for a in carrier.accounts.iter().filter(|a| a.role == role) {
        if !roster.works(&a.id, day) {
            continue;
        }
        let outlet = match roster.moved.get(&a.id) {
            Some((from, to)) if day >= *from => Some(carrier.outlets[*to].id.to_string()),
            _ => a.outlet.clone(),
        };
        if let Some(o) = outlet {
            m.entry(o).or_default().push(a.id.clone());
        }
    }
    m
}

/// Plans day `day` (0-based) of ordinary work, numbering waybills from `next_no`; each parcel planned is added
/// to `ledger`.
pub(crate) fn day_plan(
    carrier: &Carrier,
    spec: &SimSpec,
    roster: &Roster,
    day: u32,
    next_no: &mut u64,
    ledger: &mut Vec<Parcel>,
    rng: &mut StdRng,
) -> Vec<Timed> {
    let base = spec.start + Millis::from(day) * DAY;
    let couriers = by_outlet(carrier, roster, day, Role::Courier);
    let staff = by_outlet(carrier, roster, day, Role::OutletStaff);
    let mut plan = Vec::new();
    // Before the working day, the operator moves the transferred staff member to their new outlet.
    for (account, (from, to)) in &roster.moved {
        if *from == day {
            plan.push(Timed {
                at: base + 6 * HOUR,
                op: Op::Transfer {
                    account: account.clone(),
                    outlet: carrier.outlets[*to].id.to_string(),
                },
            });
        }
    }
    let outlet_index: HashMap<&str, usize> = carrier
        .outlets
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let peak = spec.peak_days.contains(&day);
    let per_courier = spec.deliveries_per_courier * if peak { 3 } else { 1 };
    let n = carrier.outlets.len() * spec.carrier.couriers_per_outlet * per_courier;
    let batch = carrier.waybills(*next_no, n);
    *next_no += n as u64;
    plan.reserve(n * 8);

    // 00:30 the night's orders arrive; print stations print the labels of what leaves their outlet.
    const CHUNK: usize = 5_000;
    let first = ledger.len();
    for (i, chunk) in batch.chunks(CHUNK).enumerate() {
        let at = base + 30 * MIN + i as Millis * 1_000;
        plan.push(Timed {
            at,
            op: Op::Ingest(chunk.to_vec()),
        });
        ledger.extend(chunk.iter().map(|w| Parcel {
            no: w.waybill_no.to_string(),
            origin: outlet_index[w.origin_outlet.as_str()],
            dest: outlet_index[w.destination_outlet.as_str()],
            // Readable from the moment the batch is in (a second after it is sent, to be safe).
            ingested: at + 1_000,
            delivered: None,
        }));
    }
    // Merchants with an even number print their own labels in one run (a legitimate burst of a few a second);
    // the outlet's print station prints the rest, one after another at a thermal printer's pace (about one a
    // second), from 00:45.
    let mut run_of: HashMap<&str, Millis> = HashMap::new();
    let mut station_at: HashMap<&str, Millis> = HashMap::new();
    let mut printed = Vec::with_capacity(batch.len());
    for w in &batch {
        let m = w.merchant.as_str();
        let own_run = m[1..].parse::<u32>().is_ok_and(|n| n % 2 == 0);
        let (who, at) = if own_run {
            let next = run_of.entry(m).or_insert(base + 40 * MIN);
            *next += 400 + rng.gen_range(0..400);
            (format!("U{}", &m[1..]), *next)
        } else {
            let next = station_at
                .entry(w.origin_outlet.as_str())
                .or_insert(base + 45 * MIN);
            *next += 800 + rng.gen_range(0..800);
            (format!("P{}", &w.origin_outlet.as_str()[1..]), *next)
        };
        plan.push(read(at, &who, w.waybill_no.as_str(), Purpose::Label, None));
        printed.push(at);
    }

    // Scans through the network, then each outlet's couriers take their share of its parcels.
    let mut inbound: HashMap<&str, Vec<(usize, &wbg_core::NewWaybill)>> = HashMap::new();
    let mut arrivals = Vec::with_capacity(batch.len());
    for (i, w) in batch.iter().enumerate() {
        let no = w.waybill_no.as_str();
        // Picked up with its label on: after it was printed.
        let picked = (base + 90 * MIN + rng.gen_range(0..30 * MIN))
            .max(printed[i] + 5 * MIN + rng.gen_range(0..10 * MIN));
        plan.push(scan(
            picked,
            no,
            EventType::PickedUp,
            &w.origin_outlet,
            None,
        ));
        let left = (base + 3 * HOUR + rng.gen_range(0..HOUR)).max(picked + 20 * MIN);
        plan.push(scan(left, no, EventType::InTransit, &w.origin_outlet, None));
        let arrived = (base + 5 * HOUR + rng.gen_range(0..HOUR)).max(left + HOUR);
        plan.push(scan(
            arrived,
            no,
            EventType::AtOutlet,
            &w.destination_outlet,
            None,
        ));
        arrivals.push(arrived);
        inbound
            .entry(w.destination_outlet.as_str())
            .or_default()
            .push((first + i, w));
    }
    for (outlet_idx, outlet) in carrier.outlets.iter().enumerate() {
        let o = outlet.id.as_str();
        let (Some(parcels), Some(crew)) = (inbound.get(o), couriers.get(o)) else {
            continue;
        };
        // The first `night_outlets` outlets deliver in the evening and night.
        let night = outlet_idx < spec.night_outlets;
        let shift_start = if night { 17 * HOUR } else { 8 * HOUR };
        // On odd days the last courier is off and the first covers their round as well.
        let covering = day % 2 == 1 && crew.len() > 1;
        let working = if covering {
            &crew[..crew.len() - 1]
        } else {
            &crew[..]
        };
        // One parcel in fifty arrives with a problem (damage, a wrong address, the recipient unreachable): it is
        // registered as an exception at the outlet and handled by its staff instead of going out today.
        let (exceptions, deliveries): (Vec<&(usize, &wbg_core::NewWaybill)>, Vec<_>) =
            parcels.iter().partition(|_| rng.gen_bool(0.02));
        let mut rounds: Vec<Vec<(usize, &wbg_core::NewWaybill)>> = vec![Vec::new(); working.len()];
        for (i, w) in deliveries.iter().enumerate() {
            rounds[i % working.len()].push(**w);
        }
        for (courier, round) in working.iter().zip(&rounds) {
            let out_at = base + shift_start - HOUR;
            // Ten hours of deliveries with the irregular gaps of real rounds (stairs, traffic, a block of flats
            // with five parcels): exponential gaps around the mean.
            let step = (10 * HOUR) / round.len().max(1) as Millis;
            let mut at = base + shift_start;
            for (li, w) in round {
                let no = w.waybill_no.as_str();
                plan.push(scan(
                    out_at + rng.gen_range(0..30 * MIN),
                    no,
                    EventType::OutForDelivery,
                    &outlet.id,
                    Some(courier),
                ));
                let gap = -(step as f64) * (1.0 - rng.gen::<f64>()).ln();
                at += (gap as Millis).clamp(5_000, 6 * step.max(1));
                plan.push(read(at, courier, no, Purpose::Delivery, None));
                if rng.gen_bool(0.3) {
                    plan.push(read(
                        at + rng.gen_range(MIN..10 * MIN),
                        courier,
                        no,
                        Purpose::Delivery,
                        None,
                    ));
                }
                let signed = at + rng.gen_range(2 * MIN..8 * MIN);
                plan.push(scan(signed, no, EventType::Signed, &outlet.id, None));
                ledger[*li].delivered = Some(((*courier).clone(), signed));
                if rng.gen_bool(0.01) {
                    // Checking an address once more after handing the parcel over.
                    plan.push(read(
                        signed + rng.gen_range(10 * MIN..60 * MIN),
                        courier,
                        no,
                        Purpose::Delivery,
                        None,
                    ));
                }
            }
        }
        // Outlet staff: masked lookups of a tenth of the parcels; the exceptions registered on arrival, each read
        // in full to handle it and put back on the outlet's shelf for another day.
        if let Some(team) = staff.get(o) {
            for (i, (_, w)) in parcels.iter().enumerate() {
                if rng.gen_bool(0.1) {
                    let at = base + shift_start + rng.gen_range(0..9 * HOUR);
                    let who = &team[i % team.len()];
                    plan.push(read(
                        at,
                        who,
                        w.waybill_no.as_str(),
                        Purpose::Delivery,
                        None,
                    ));
                }
            }
            for (i, (li, w)) in exceptions.iter().enumerate() {
                let no = w.waybill_no.as_str();
                let registered =
                    (base + 7 * HOUR + rng.gen_range(0..HOUR)).max(arrivals[li - first] + 10 * MIN);
                plan.push(scan(registered, no, EventType::Exception, &outlet.id, None));
                let at =
                    (base + shift_start + rng.gen_range(0..8 * HOUR)).max(registered + 5 * MIN);
                let who = &team[i % team.len()];
                plan.push(read(at, who, no, Purpose::ExceptionHandling, None));
                plan.push(scan(
                    at + rng.gen_range(5 * MIN..30 * MIN),
                    no,
                    EventType::AtOutlet,
                    &outlet.id,
                    None,
                ));
            }
        }
    }

    // Customer service: tickets about today's parcels through the working day; one agent has a burst on day 3.
    let agents: Vec<&str> = carrier
        .accounts
        .iter()
        .filter(|a| a.role == Role::CustomerService && roster.works(&a.id, day))
        .map(|a| a.id.as_str())
        .collect();
    for (k, agent) in agents.iter().enumerate() {
        let burst = day == 3 && k == 0;
        let tickets = if burst { 120 } else { spec.tickets_per_agent };
        for t in 0..tickets {
            let w = &batch[rng.gen_range(0..batch.len())];
            let at = if burst {
                base + 14 * HOUR + rng.gen_range(0..2 * HOUR)
            } else {
                base + 9 * HOUR + rng.gen_range(0..9 * HOUR)
            };
            // The customer's call opens a ticket in the ticketing system a minute before the agent reads.
            let ticket = format!("TK{day}x{k}x{t}");
            plan.push(Timed {
                at: at - 60_000,
                op: Op::OpenTicket {
                    id: ticket.clone(),
                    waybills: vec![w.waybill_no.to_string()],
                },
            });
            plan.push(read(
                at,
                agent,
                w.waybill_no.as_str(),
                Purpose::CustomerService,
                Some(ticket),
            ));
        }
    }
    plan
}
