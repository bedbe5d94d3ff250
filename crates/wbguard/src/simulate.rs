//! `wbguard simulate`: a synthetic carrier's week with T1–T4 attacks inside it, through the real guard, and the
//! report of what the risk engine contained.
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use wbg_core::ManualClock;
use wbg_guard::{Guard, GuardConfig, KeyConfig};
use wbg_scenarios::{AttackFile, AttackSpec, ScenarioReport, SimSpec, Threat, World};
use wbg_vault::MasterKey;

/// What `simulate` was asked.
pub struct Args {
    pub scenario: String,
    pub seed: u64,
    pub attacks: Option<PathBuf>,
    pub leaks: Option<PathBuf>,
    pub json: bool,
    pub days: Option<u32>,
    pub outlets: Option<usize>,
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
pub fn run(args: &Args, data: Option<(PathBuf, GuardConfig)>) -> Result<Vec<ScenarioReport>> {
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
    }
    if let Some(n) = args.deliveries {
        if !(1..=1_000).contains(&n) {
            bail!("--deliveries must be within 1..=1000");
        }
        spec.deliveries_per_courier = n;
    }
    let tmp = tempfile::tempdir()?;
    let cfg = match data {
        Some((dir, cfg)) => {
            if dir.join(wbg_store::sqlite_db_file()).exists() {
                bail!(
                    "{} already holds a store; simulate builds a new carrier and needs an empty directory",
                    dir.display()
                );
            }
            cfg
        }
        None => GuardConfig {
            keys: KeyConfig::Given {
                master: MasterKey::generate(),
                signer: None,
            },
            ..GuardConfig::embedded(tmp.path().join("data"))
        },
    };
    let (guard, report) = Guard::open(cfg).context("cannot open the guard")?;
    crate::report_keys(&report);
    let clock = Arc::new(ManualClock::new(spec.start));
    let guard = guard.with_clock(clock.clone());
    eprintln!(
        "simulating {} days of {} outlets ({} attacks) …",
        spec.days,
        spec.carrier.outlets,
        attacks.len()
    );
    let mut world = World::new(guard, clock, wbg_scenarios::carrier(&spec), spec.start)?;
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
