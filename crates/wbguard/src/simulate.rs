//! `wbguard simulate`: a synthetic carrier's week with T1–T4 attacks inside it, through the real guard, and the
//! report of what the risk engine contained.
use crate::config::Config;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use wbg_guard::{GuardConfig, KeyConfig};
use wbg_scenarios::{AttackFile, AttackSpec, ScenarioReport, SimSpec, Threat, World};
use wbg_vault::MasterKey;

/// What `simulate` was asked.
#[derive(clap::Args)]
pub struct Args {
    /// T1, T2, T3, T4, benign or all; or `tracking`: the public lookup against scrapers (a report of its own).
    #[arg(long, default_value = "all")]
    pub scenario: String,
    /// Seed: the same seed gives the same carrier, traffic and attacks.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Attack variants from a TOML file (see README) instead of the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub attacks: Option<PathBuf>,
    /// Write each attacker's haul as CSV, with ground_truth.json, into this directory.
    #[arg(long, value_name = "DIR")]
    pub leaks: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Simulated days (default 7).
    #[arg(long)]
    pub days: Option<u32>,
    /// Outlets (default 200).
    #[arg(long)]
    pub outlets: Option<usize>,
    /// Parcels a courier delivers a day (default 2; see README on scale).
    #[arg(long)]
    pub deliveries: Option<usize>,
}

/// The attacks of the selected scenarios: the file's, or the built-in variants.
fn attacks(args: &Args, scenarios: &[String]) -> Result<Vec<AttackSpec>> {
    let all = match &args.attacks {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            AttackFile::from_toml(&text)
                .with_context(|| format!("{} is not a valid attacks file", path.display()))?
                .attack
        }
        None => wbg_scenarios::builtin(),
    };
    let wanted = |t: Threat| scenarios.iter().any(|s| s == t.as_str());
    Ok(all.into_iter().filter(|a| wanted(a.threat)).collect())
}

/// Runs the simulation; `data` (from `--data`) keeps the store, with its keys in `keys`.
/// Runs the simulation under `cfg`'s policies and risk settings; with `keep` the store is `cfg.data` (which must
/// hold none yet) under `cfg`'s keys, otherwise a temporary one under a key that lives only in memory.
pub fn run(args: &Args, cfg: &Config, keep: bool) -> Result<Vec<ScenarioReport>> {
    let scenarios = wbg_scenarios::scenarios(&args.scenario)?;
    let attacks = attacks(args, &scenarios)?;
    let mut spec = SimSpec::standard(args.seed);
    if let Some(d) = args.days {
        if !(1..=60).contains(&d) {
            bail!("--days must be within 1..=60");
        }
        spec.days = d;
    }
    if let Some(o) = args.outlets {
        if !(2..=2_000).contains(&o) {
            bail!("--outlets must be within 2..=2000");
        }
        spec.carrier.outlets = o;
        // Keep most outlets on the day shift (attacks are cast on day-shift outlets).
        spec.night_outlets = spec.night_outlets.min(o / 4);
    }
    if let Some(n) = args.deliveries {
        if !(1..=1_000).contains(&n) {
            bail!("--deliveries must be within 1..=1000");
        }
        spec.deliveries_per_courier = n;
    }
    let tmp = tempfile::tempdir()?;
    let guard_cfg = if keep {
        if cfg.data.join(wbg_store_sqlite::DB_FILE).exists() {
            bail!(
                "{} already holds a store; simulate builds a new carrier and needs an empty directory",
                cfg.data.display()
            );
        }
        cfg.guard(true)?
    } else {
        GuardConfig {
            data: tmp.path().join("data"),
            keys: KeyConfig::Given {
                master: MasterKey::generate(),
                signer: None,
            },
            ..cfg.guard(false)?
        }
    };
    let (mut world, report) = World::open(guard_cfg, &spec).context("cannot open the guard")?;
    crate::report_keys(&report);
    eprintln!(
        "simulating {} days of {} outlets ({} attacks) …",
        spec.days,
        spec.carrier.outlets,
        attacks.len()
    );
    let (reports, outcomes) = wbg_scenarios::simulate(&mut world, &spec, &attacks, &scenarios)?;
    world.guard().checkpoint()?;
    world.guard().store().maintain()?;
    if let Some(dir) = &args.leaks {
        wbg_scenarios::write_leaks(&world, &outcomes, dir)?;
        eprintln!(
            "wrote {} leak files and ground_truth.json to {}",
            outcomes.len(),
            dir.display()
        );
    }
    Ok(reports)
}

/// `simulate --scenario tracking`: customers and scrapers at the public lookup of a small carrier's parcels for
/// `--days` (default 2), through the real guard under `cfg`'s `[tracking]` limits, in a temporary store.
pub fn run_tracking(args: &Args, cfg: &Config) -> Result<wbg_scenarios::TrackingReport> {
    let mut tracking = wbg_scenarios::TrackingSpec::standard(args.seed);
    if let Some(d) = args.days {
        if !(1..=14).contains(&d) {
            bail!("--days must be within 1..=14 for the tracking scenario");
        }
        tracking.days = d;
    }
    let tmp = tempfile::tempdir()?;
    let guard_cfg = GuardConfig {
        data: tmp.path().join("data"),
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..cfg.guard(false)?
    };
    let spec = SimSpec::small(args.seed);
    let (world, _) = World::open(guard_cfg, &spec).context("cannot open the guard")?;
    let mut world = world.with_tracking(&cfg.tracking)?;
    eprintln!(
        "simulating {} days of public lookups of {} parcels …",
        tracking.days, tracking.parcels
    );
    Ok(wbg_scenarios::simulate_tracking(&mut world, &tracking)?)
}

/// The tracking report as a readable table.
pub fn render_tracking(r: &wbg_scenarios::TrackingReport) -> String {
    let mut out = format!(
        "{:<16} {:>9} {:>8} {:>9} {:>15} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
        "looker",
        "addresses",
        "lookups",
        "answered",
        "others' before",
        "slowed",
        "blocked",
        "reveals",
        "max wrong4",
        "locked4"
    );
    for o in &r.lookers {
        let name = serde_json::to_value(o.looker)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<16} {:>9} {:>8} {:>9} {:>15} {:>8} {:>8} {:>8} {:>10} {:>8}\n",
            name,
            o.addresses,
            o.lookups,
            o.answered,
            o.foreign_before_block,
            o.slowed,
            o.blocked,
            o.foreign_reveals,
            o.max_wrong_last4_per_number,
            o.last4_locked
        ));
    }
    out.push_str(&format!(
        "{} lookups over {} days in {:.1} s (customers: their own parcels and their typos; \"others' before\": \
         answered lookups of numbers the looker does not own before its first block)\n",
        r.lookups, r.days, r.elapsed_seconds
    ));
    out.push_str(&format!(
        "distributed-enumeration alerts: {} while the botnet worked, {} otherwise\n",
        r.distributed_alerts_during_botnet, r.distributed_alerts_otherwise
    ));
    out
}
