//! The simulator: a synthetic carrier's days of work driven through the **real guard** (store, vault, Cedar
//! policy, risk engine, audit log) on a manual clock, so that a week of traffic runs in seconds, with ground truth
//! about who is benign. Its report is the contract of `wbguard simulate`.
//!
//! The benign carrier has its edge cases (night-shift outlets, peak-season days at three times the volume, a
//! courier covering a colleague's round, an agent's burst of tickets, merchants' label runs); the T1–T4 attacks
//! ([`builtin`] variants or an `--attacks` TOML file, see [`AttackSpec`]) run on chosen accounts inside the
//! same timeline, and the report tells, per attack, whether the engine contained it, how fast, and how many
//! full records it got first.
#![deny(missing_docs)]

mod attack;
mod benign;
mod tracking;
mod world;

use attack::Attacker;
pub use attack::{builtin, AttackFile, AttackSpec, DeviceUse, Target, Threat};
use benign::Roster;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;
pub use tracking::{simulate_tracking, Looker, LookerOutcome, TrackingReport, TrackingSpec};
use wbg_core::{AccountId, AccountStatus, Millis, Role};
use wbg_guard::GuardError;
use wbg_sim::{Carrier, CarrierSpec};
use wbg_store::AlertFilter;
pub use world::{enrol, World};

/// What can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The guard failed in a way a scenario cannot absorb.
    #[error("guard: {0}")]
    Guard(#[from] GuardError),
    /// The world could not be set up.
    #[error("set-up: {0}")]
    Setup(String),
    /// An attack description is wrong.
    #[error("attacks: {0}")]
    Attacks(String),
    /// Leak files could not be written.
    #[error("leaks: {0}")]
    Leaks(String),
}

/// The size and shape of a simulation.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// The carrier.
    pub carrier: CarrierSpec,
    /// Parcels a courier delivers on an ordinary day.
    pub deliveries_per_courier: usize,
    /// Tickets an agent works on an ordinary day.
    pub tickets_per_agent: usize,
    /// Days simulated.
    pub days: u32,
    /// Local midnight of the first day, as milliseconds since the epoch.
    pub start: Millis,
    /// Days at three times the ordinary volume (peak season).
    pub peak_days: Vec<u32>,
    /// Outlets (the first ones) whose couriers work the evening and night.
    pub night_outlets: usize,
}

impl SimSpec {
    /// The default scale of `wbguard simulate`: 200 outlets across eleven cities with 20 couriers, 4 staff and
    /// a print station each, 100 merchants and 60 agents — over 5,000 accounts for a week (some 36,000 benign
    /// account-days). Every operation goes through the real guard with its audit log (some 12,000 a second on
    /// two cores), so to fit the run in a minute a courier is given 2 parcels a day (`deliveries_per_courier`;
    /// the real figure is about 300): accounts, rhythms, scopes and roles are as in life, volumes scaled down.
    pub fn standard(seed: u64) -> SimSpec {
        SimSpec {
            carrier: CarrierSpec {
                outlets: 200,
                couriers_per_outlet: 20,
                staff_per_outlet: 4,
                merchants: 100,
                cs_agents: 60,
                customers: 100_000,
                seed,
            },
            deliveries_per_courier: 2,
            tickets_per_agent: 20,
            days: 7,
            start: 1_793_548_800_000,
            peak_days: vec![5],
            night_outlets: 10,
        }
    }

    /// A small carrier for tests: a few outlets, a few days.
    pub fn small(seed: u64) -> SimSpec {
        SimSpec {
            carrier: CarrierSpec {
                outlets: 6,
                couriers_per_outlet: 3,
                staff_per_outlet: 2,
                merchants: 6,
                cs_agents: 3,
                customers: 2_000,
                seed,
            },
            deliveries_per_courier: 25,
            tickets_per_agent: 20,
            days: 7,
            // 2026-11-02 00:00 China Standard Time.
            start: 1_793_548_800_000,
            peak_days: vec![5],
            night_outlets: 1,
        }
    }
}

/// What became of one attack.
#[derive(Debug, Clone, Serialize)]
pub struct AttackOutcome {
    /// The attack's name.
    pub name: String,
    /// Its threat.
    pub threat: Threat,
    /// The account it used.
    pub account: String,
    /// Reads it made (target and cover).
    pub reads: u64,
    /// Reads served masked.
    pub masked: u64,
    /// Reads refused (by policy, the rate ceiling or suspension).
    pub refused: u64,
    /// Distinct records it obtained in full, over the whole run.
    pub records_exposed: u64,
    /// The engine contained the account (capped its views at masked, or suspended it).
    pub detected: bool,
    /// `masked` or `suspended`: how far containment went.
    pub containment: Option<String>,
    /// Seconds from the attack's first read to containment (0 when the account was already contained).
    pub seconds_to_containment: Option<f64>,
    /// The detectors named in the containing alert.
    pub detectors: Vec<String>,
}

/// One scenario's figures (the fields DESIGN.md names, plus the run's own).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// `benign`, `T1` … `T4`.
    pub scenario: String,
    /// Attacking accounts (none for `benign`).
    pub attackers: usize,
    /// Attackers the engine contained (masked or suspended).
    pub detected: usize,
    /// Full personal records the attackers obtained in the run, all attackers together.
    pub records_exposed: u64,
    /// The most any one attacker obtained.
    pub max_records_exposed_per_attacker: u64,
    /// Seconds from each attack's first read to its containment, the slowest attacker's.
    pub seconds_to_containment: Option<f64>,
    /// Benign accounts that worked.
    pub benign_accounts: usize,
    /// Benign accounts suspended.
    pub benign_suspended: usize,
    /// Alerts raised on benign accounts.
    pub benign_alerts: usize,
    /// Benign account-days simulated.
    pub benign_account_days: u64,
    /// Benign suspensions per 10,000 account-days.
    pub benign_suspended_per_10k_account_days: f64,
    /// Alerts on benign accounts per 10,000 account-days.
    pub benign_alerts_per_10k_account_days: f64,
    /// Simulated days.
    pub days: u32,
    /// Operations driven through the guard.
    pub operations: u64,
    /// Wall-clock seconds the run took.
    pub elapsed_seconds: f64,
    /// Each attack of the scenario.
    pub attacks: Vec<AttackOutcome>,
}

/// The scenarios `wbguard simulate --scenario` accepts: `benign`, `T1` … `T4`, or `all`.
pub fn scenarios(name: &str) -> Result<Vec<String>, SimError> {
    match name {
        "all" => Ok(["benign", "T1", "T2", "T3", "T4"]
            .map(String::from)
            .to_vec()),
        "benign" | "T1" | "T2" | "T3" | "T4" => Ok(vec![name.to_owned()]),
        other => Err(SimError::Attacks(format!(
            "unknown scenario {other:?}: use T1, T2, T3, T4, benign or all"
        ))),
    }
}

/// Runs the carrier for `spec.days` days with `attacks` inside it, and reports each of `scenarios` (`benign`,
/// `T1` … `T4`; a threat's report covers the attacks of that threat). Benign figures are over every account no
/// attack used.
pub fn simulate(
    world: &mut World,
    spec: &SimSpec,
    attacks: &[AttackSpec],
    scenarios: &[String],
) -> Result<(Vec<ScenarioReport>, Vec<AttackOutcome>), SimError> {
    let started = Instant::now();
    let accounts = attack::cast(attacks, &world.carrier, spec.night_outlets)?;
    let roster = Roster {
        left: attacks
            .iter()
            .zip(&accounts)
            .filter_map(|(a, id)| a.owner_left_day.map(|d| (id.clone(), d)))
            .collect(),
        moved: Default::default(),
    }
    .with_transfer(&world.carrier, spec.days);
    let mut attackers: Vec<Attacker> = attacks
        .iter()
        .zip(&accounts)
        .enumerate()
        .map(|(k, (a, id))| Attacker::new(k, a.clone(), id.clone(), &world.carrier))
        .collect();
    let mut rng = StdRng::seed_from_u64(spec.carrier.seed ^ 0xB5);
    let mut attack_rng = StdRng::seed_from_u64(spec.carrier.seed ^ 0xA7);
    let mut next_no = 1;
    let mut ledger = Vec::new();
    // Days overlap (a night shift's round ends after midnight): each day's plan joins what is still pending, and
    // only what happens before the next day begins is run, so the clock never has to go back.
    let mut pending = Vec::new();
    for day in 0..spec.days {
        let base = spec.start + Millis::from(day) * benign::DAY;
        pending.extend(benign::day_plan(
            &world.carrier,
            spec,
            &roster,
            day,
            &mut next_no,
            &mut ledger,
            &mut rng,
        ));
        for a in &mut attackers {
            // A suspended account is no use to its attacker: they stop.
            let stopped = world
                .attack_tally
                .get(&a.index)
                .is_some_and(|t| t.suspended_at.is_some());
            if !stopped {
                pending.extend(a.plan_day(&world.carrier, &ledger, day, base, &mut attack_rng));
            }
        }
        pending.sort_by_key(|t| t.at);
        let cut = base + benign::DAY;
        let later = pending.split_off(pending.partition_point(|t| t.at < cut));
        world.run(std::mem::replace(&mut pending, later))?;
    }
    world.run(pending)?;
    let outcomes = attackers
        .iter()
        .map(|a| outcome(world, a))
        .collect::<Result<Vec<_>, _>>()?;
    let benign = Benign::count(world, &accounts)?;
    let reports = scenarios
        .iter()
        .map(|s| report(world, spec, s, &benign, &outcomes, started))
        .collect();
    Ok((reports, outcomes))
}

fn outcome(world: &World, a: &Attacker) -> Result<AttackOutcome, SimError> {
    let tally = world
        .attack_tally
        .get(&a.index)
        .cloned()
        .unwrap_or_default();
    let mut alerts = world
        .guard
        .store()
        .alerts(&AlertFilter {
            account: Some(a.account.clone()),
            limit: 10_000,
            ..Default::default()
        })
        .map_err(GuardError::from)?;
    alerts.retain(|x| x.kind == "risk_mask" || x.kind == "risk_suspend");
    alerts.sort_by_key(|x| x.at);
    let contained = alerts.first();
    let suspended = alerts.iter().any(|x| x.kind == "risk_suspend");
    let detectors = contained
        .and_then(|x| serde_json::from_str::<serde_json::Value>(&x.detail).ok())
        .and_then(|d| {
            d["signals"].as_array().map(|sigs| {
                let mut names: Vec<String> = sigs
                    .iter()
                    .filter_map(|s| s["detector"].as_str().map(String::from))
                    .collect();
                names.sort();
                names.dedup();
                names
            })
        })
        .unwrap_or_default();
    Ok(AttackOutcome {
        name: a.spec.name.clone(),
        threat: a.spec.threat,
        account: a.account.clone(),
        reads: tally.reads,
        masked: tally.masked,
        refused: tally.refused,
        records_exposed: world
            .served
            .get(&a.index)
            .map_or(0, |s| s.full().count() as u64),
        detected: contained.is_some(),
        containment: contained.map(|_| if suspended { "suspended" } else { "masked" }.to_owned()),
        seconds_to_containment: contained.and_then(|x| {
            tally
                .first_at
                .map(|first| (x.at - first).max(0) as f64 / 1000.0)
        }),
        detectors,
    })
}

/// The reports as a readable table, one row per attack and one per scenario.
pub fn render_table(reports: &[ScenarioReport]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<26} {:<8} {:>6} {:>9} {:>10} {:>12}  detectors",
        "scenario", "attack", "account", "reads", "exposed", "contained", "after (s)"
    );
    for r in reports {
        for a in &r.attacks {
            let _ = writeln!(
                out,
                "{:<8} {:<26} {:<8} {:>6} {:>9} {:>10} {:>12}  {}",
                r.scenario,
                a.name,
                a.account,
                a.reads,
                a.records_exposed,
                // An attack the policy never granted a full record has nothing for the engine to contain.
                a.containment
                    .as_deref()
                    .unwrap_or(if a.records_exposed == 0 {
                        "policy"
                    } else {
                        "NO"
                    }),
                a.seconds_to_containment
                    .map_or("-".to_owned(), |s| format!("{s:.0}")),
                a.detectors.join(",")
            );
        }
        if r.scenario == "benign" {
            let _ = writeln!(
                out,
                "{:<8} {} accounts, {} account-days: {} suspended ({:.2} per 10k account-days), {} alerts ({:.1} per \
                 10k account-days)",
                r.scenario,
                r.benign_accounts,
                r.benign_account_days,
                r.benign_suspended,
                r.benign_suspended_per_10k_account_days,
                r.benign_alerts,
                r.benign_alerts_per_10k_account_days
            );
        } else {
            let _ = writeln!(
                out,
                "{:<8} {} of {} attackers contained; at most {} full records to one attacker; slowest containment {}",
                r.scenario,
                r.detected,
                r.attackers,
                r.max_records_exposed_per_attacker,
                r.seconds_to_containment
                    .map_or("-".to_owned(), |s| format!("{s:.0} s"))
            );
        }
    }
    if let Some(r) = reports.first() {
        let _ = writeln!(
            out,
            "{} simulated days, {} operations through the guard in {:.1} s",
            r.days, r.operations, r.elapsed_seconds
        );
    }
    out
}

/// Writes each attack's haul as `<name>.csv` (the recipient of every record it obtained in full, as the
/// guard served it) and everything it was served as `<name>.served.csv` (masked records too, each in the
/// richest view it got: a label printer's trojan never sees a full record but still has something to sell)
/// into `dir`, with `ground_truth.json` naming each file's attacking account.
pub fn write_leaks(world: &World, outcomes: &[AttackOutcome], dir: &Path) -> Result<(), SimError> {
    let io = |e: std::io::Error| SimError::Leaks(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut truth = Vec::new();
    for (k, o) in outcomes.iter().enumerate() {
        let stem = o
            .name
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
        let (file, served_file) = (format!("{stem}.csv"), format!("{stem}.served.csv"));
        let served = world.served.get(&k);
        write_records(&dir.join(&file), served.into_iter().flat_map(|s| s.full()))?;
        let served = served.map(|s| s.records.as_slice()).unwrap_or_default();
        write_records(&dir.join(&served_file), served.iter().map(|(_, t)| t))?;
        truth.push(serde_json::json!({
            "file": file,
            "served_file": served_file,
            "attack": o.name,
            "threat": o.threat,
            "accounts": [o.account],
            "records": o.records_exposed,
            "served_records": served.len(),
        }));
    }
    let text = serde_json::to_string_pretty(&truth).map_err(|e| SimError::Leaks(e.to_string()))?;
    std::fs::write(dir.join("ground_truth.json"), text).map_err(io)
}

/// Writes recipients as a leak CSV: waybill number, name, phone, province, city, district, detail.
fn write_records<'a>(
    path: &Path,
    records: impl Iterator<Item = &'a world::Taken>,
) -> Result<(), SimError> {
    let err = |e: csv::Error| SimError::Leaks(format!("{}: {e}", path.display()));
    let mut out = csv::Writer::from_path(path).map_err(err)?;
    out.write_record([
        "waybill_no",
        "name",
        "phone",
        "province",
        "city",
        "district",
        "detail",
    ])
    .map_err(err)?;
    for t in records {
        let r = &t.recipient;
        out.write_record([
            t.waybill_no.as_str(),
            &r.name,
            &r.phone,
            &r.address.province,
            &r.address.city,
            &r.address.district,
            r.address.detail.as_deref().unwrap_or(""),
        ])
        .map_err(err)?;
    }
    out.flush()
        .map_err(|e| SimError::Leaks(format!("{}: {e}", path.display())))
}

/// Runs the benign carrier alone for `spec.days` days in `world` and reports on it.
pub fn run_benign(world: &mut World, spec: &SimSpec) -> Result<ScenarioReport, SimError> {
    let (mut reports, _) = simulate(world, spec, &[], &["benign".to_owned()])?;
    reports
        .pop()
        .ok_or_else(|| SimError::Setup("no report".into()))
}

/// The benign accounts' figures: the same for every scenario of a run, so counted once.
struct Benign {
    accounts: usize,
    suspended: usize,
    alerts: usize,
}

impl Benign {
    /// Every account that worked and was not used by an attack (`attackers`).
    fn count(world: &World, attackers: &[String]) -> Result<Benign, SimError> {
        let store = world.guard.store();
        let mut b = Benign {
            accounts: 0,
            suspended: 0,
            alerts: 0,
        };
        for a in &world.carrier.accounts {
            if matches!(a.role, Role::Admin | Role::Auditor | Role::Integration)
                || attackers.contains(&a.id)
            {
                continue;
            }
            b.accounts += 1;
            let id = AccountId::parse(&a.id).map_err(|e| SimError::Setup(e.to_string()))?;
            let acct = store
                .account(&id)
                .map_err(GuardError::from)?
                .ok_or_else(|| SimError::Setup(format!("account {id} vanished")))?;
            if acct.status == AccountStatus::Suspended {
                b.suspended += 1;
            }
            b.alerts += store
                .alerts(&AlertFilter {
                    account: Some(a.id.clone()),
                    limit: 10_000,
                    ..Default::default()
                })
                .map_err(GuardError::from)?
                .len();
        }
        Ok(b)
    }
}

fn report(
    world: &World,
    spec: &SimSpec,
    scenario: &str,
    benign: &Benign,
    outcomes: &[AttackOutcome],
    started: Instant,
) -> ScenarioReport {
    let account_days = benign.accounts as u64 * u64::from(spec.days);
    let per_10k = |n: usize| n as f64 * 10_000.0 / account_days.max(1) as f64;
    let mine: Vec<AttackOutcome> = outcomes
        .iter()
        .filter(|o| o.threat.as_str() == scenario)
        .cloned()
        .collect();
    ScenarioReport {
        scenario: scenario.into(),
        attackers: mine.len(),
        detected: mine.iter().filter(|o| o.detected).count(),
        records_exposed: mine.iter().map(|o| o.records_exposed).sum(),
        max_records_exposed_per_attacker: mine.iter().map(|o| o.records_exposed).max().unwrap_or(0),
        seconds_to_containment: mine
            .iter()
            .filter_map(|o| o.seconds_to_containment)
            .reduce(f64::max),
        benign_accounts: benign.accounts,
        benign_suspended: benign.suspended,
        benign_alerts: benign.alerts,
        benign_account_days: account_days,
        benign_suspended_per_10k_account_days: per_10k(benign.suspended),
        benign_alerts_per_10k_account_days: per_10k(benign.alerts),
        days: spec.days,
        operations: world.ops_run,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        attacks: mine,
    }
}

/// Generates the carrier of `spec`.
pub fn carrier(spec: &SimSpec) -> Carrier {
    Carrier::generate(spec.carrier)
}
