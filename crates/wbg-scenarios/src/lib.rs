//! The simulator: a synthetic carrier's days of work driven through the **real guard** (store, vault, Cedar
//! policy, risk engine, audit log) on a manual clock, so that a week of traffic runs in seconds, with ground truth
//! about who is benign. Its report is the contract of `wbguard simulate`.
//!
//! This first part simulates the benign carrier and its edge cases (night-shift outlets, peak-season days at
//! three times the volume, a courier covering a colleague's round, an agent's burst of tickets); the T1–T4
//! attack scenarios build on the same world and timeline.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod benign;
mod world;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::time::Instant;
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

/// One scenario's figures (the fields DESIGN.md names, plus the run's own).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// `benign`, `T1` … `T4`.
    pub scenario: String,
    /// Attacking accounts (none for `benign`).
    pub attackers: usize,
    /// Attackers the engine contained (masked or suspended).
    pub detected: usize,
    /// Full personal records the attackers obtained before containment.
    pub records_exposed: u64,
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
}

/// Runs the benign carrier for `spec.days` days in `world` and reports on it.
pub fn run_benign(world: &mut World, spec: &SimSpec) -> Result<ScenarioReport, SimError> {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(spec.carrier.seed ^ 0xB5);
    let mut next_no = 1;
    // Days overlap (a night shift's round ends after midnight): each day's plan joins what is still pending, and
    // only what happens before the next day begins is run, so the clock never has to go back.
    let mut pending = Vec::new();
    for day in 0..spec.days {
        pending.extend(benign::day_plan(
            &world.carrier,
            spec,
            day,
            &mut next_no,
            &mut rng,
        ));
        pending.sort_by_key(|t| t.at);
        let cut = spec.start + Millis::from(day + 1) * benign::DAY;
        let later = pending.split_off(pending.partition_point(|t| t.at < cut));
        world.run(std::mem::replace(&mut pending, later))?;
    }
    world.run(pending)?;
    report(world, spec, "benign", &[], started)
}

fn report(
    world: &World,
    spec: &SimSpec,
    scenario: &str,
    attackers: &[String],
    started: Instant,
) -> Result<ScenarioReport, SimError> {
    let store = world.guard.store();
    let mut benign_accounts = 0;
    let mut benign_suspended = 0;
    let mut benign_alerts = 0;
    for a in &world.carrier.accounts {
        if matches!(a.role, Role::Admin | Role::Auditor | Role::Integration)
            || attackers.contains(&a.id)
        {
            continue;
        }
        benign_accounts += 1;
        let id = AccountId::parse(&a.id).map_err(|e| SimError::Setup(e.to_string()))?;
        let acct = store
            .account(&id)
            .map_err(GuardError::from)?
            .ok_or_else(|| SimError::Setup(format!("account {id} vanished")))?;
        if acct.status == AccountStatus::Suspended {
            benign_suspended += 1;
        }
        benign_alerts += store
            .alerts(&AlertFilter {
                account: Some(a.id.clone()),
                limit: 10_000,
                ..Default::default()
            })
            .map_err(GuardError::from)?
            .len();
    }
    let account_days = benign_accounts as u64 * u64::from(spec.days);
    let per_10k = |n: usize| n as f64 * 10_000.0 / account_days.max(1) as f64;
    Ok(ScenarioReport {
        scenario: scenario.into(),
        attackers: attackers.len(),
        detected: 0,
        records_exposed: 0,
        seconds_to_containment: None,
        benign_accounts,
        benign_suspended,
        benign_alerts,
        benign_account_days: account_days,
        benign_suspended_per_10k_account_days: per_10k(benign_suspended),
        benign_alerts_per_10k_account_days: per_10k(benign_alerts),
        days: spec.days,
        operations: world.ops_run,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Generates the carrier of `spec`.
pub fn carrier(spec: &SimSpec) -> Carrier {
    Carrier::generate(spec.carrier)
}
