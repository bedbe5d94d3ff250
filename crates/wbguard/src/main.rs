//! `wbguard`: the command line and the HTTP server of Waybill Guard.

mod alerts;
mod attribute;
mod breach;
mod bus;
mod config;
mod demo;
mod drive;
mod import;
mod jwks;
mod reference;
mod server;
mod simulate;
mod telemetry;
mod webhook;
mod witness;
mod worker;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use config::{Common, Config};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wbg_audit::note::NoteVerifier;
use wbg_guard::{Actor, Guard, OpenReport, RequestMeta};
use wbg_vault::KeySource;

/// mimalloc instead of glibc's malloc: under load glibc's arenas took about a tenth of a node's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wbguard",
    version,
    about = "Waybill Guard: keeps waybill personal data from leaking through insiders"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a store and its keys: the data directory (embedded) or the PostgreSQL schema, the master key and the
    /// audit signing key. Nothing else creates either, so a mistyped `--data` or `--keys` is an error, not a new
    /// empty store. On a store that exists it only makes the data directory (a further node's) and checks the keys.
    Init,
    /// The configuration file's reference.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Serve the HTTP API.
    Serve {
        /// Listen address (overrides the config file); port 0 picks a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply the PostgreSQL store's pending schema migrations (the embedded store migrates itself at open).
    Migrate,
    /// Run a risk worker for one partition of the NATS access-event stream: its accounts' engine state, and
    /// suspensions written to the shared store, which every guard node reads on the next request.
    RiskWorker {
        /// The partition (0 ..< `[bus] partitions`).
        #[arg(long)]
        partition: u32,
        /// Serve Prometheus metrics at `http://ADDR/metrics` (the worker's events, bus failures, and the
        /// alerts it raises); `127.0.0.1:0` picks a free port, announced on stderr.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
    },
    /// The NATS access-event stream: each partition's state, or a throughput measurement.
    Bus {
        #[command(subcommand)]
        command: BusCommand,
    },
    /// Drive running guard nodes over HTTP with a live synthetic carrier and a T1 ring (or `--bench`); the
    /// administrators' tokens are read from WBGUARD_ADMIN_TOKEN and WBGUARD_APPROVER_TOKEN (the second admin,
    /// who approves the enrolments of accounts that see personal data).
    Drive(drive::Args),
    /// Run the self-contained demonstration in a temporary directory.
    Demo {
        /// Keep the demo's data and keys in this directory instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Account administration (as a local operator).
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// The alert queue: the newest alerts, then with --follow each new one as it is raised (from the local store,
    /// or a running node's live stream with --url).
    Alerts(alerts::Args),
    /// Simulate a carrier's week with T1-T4 attacks through the real guard and report what was contained.
    Simulate(simulate::Args),
    /// The access review for auditors: every account, what it may see per purpose (derived from the policy),
    /// what it may do, last activity, full reads in 30 days, flags. JSON, or CSV with --csv.
    AccessReview {
        /// CSV instead of JSON.
        #[arg(long)]
        csv: bool,
    },
    /// Policy versions in the store: propose a new text, list, approve (a second admin), roll back.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Canary records: synthetic waybills planted in one account's view; reading one alerts at once.
    Canaries {
        #[command(subcommand)]
        command: CanaryCommand,
    },
    /// Attribute a leaked sample (CSV or JSON Lines, as leaks look) to the accounts that could have produced it.
    Attribute {
        /// The leaked sample.
        #[arg(long, value_name = "FILE")]
        leak: PathBuf,
        /// Print the whole report as JSON (suspects, evidence with inclusion proofs, matched rows).
        #[arg(long)]
        json: bool,
        /// Largest leak accepted, in MiB.
        #[arg(long, default_value_t = 256, value_name = "MIB")]
        max_mib: u64,
    },
    /// Breach incidents: the impact of what the suspects were shown in a window, and the people to notify.
    Breach {
        #[command(subcommand)]
        command: BreachCommand,
    },
    /// Retention: crypto-shred the personal data whose time is up.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print a waybill's privacy label (masked fields, Code 128 barcode, QR token; never full data) as the print
    /// station whose API token is in `--token-file` or `$WBGUARD_TOKEN`. The print is an audited read.
    Label {
        /// The waybill number.
        waybill_no: String,
        /// `zpl` (thermal printers), `pdf` or `png`.
        #[arg(long, default_value = "zpl")]
        format: String,
        /// Where to write the label.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// A file holding the printing account's API token (else `$WBGUARD_TOKEN`).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
    /// Bulk-load waybills from a JSON Lines or CSV file (validated in full before anything is stored).
    Import {
        /// The file: `.jsonl` (one ingest object per line) or `.csv` (see README for the columns).
        file: PathBuf,
        /// Waybills per transaction.
        #[arg(long, default_value_t = 5000)]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every key of the configuration file with its default and meaning.
    Reference,
    /// Check a configuration file (as `--config FILE` gives it) and print it with every default filled in.
    Check,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Destroy the data keys of every day of ingest whose waybills are all past the config's `[retention]`
    /// (signed for or returned `days_after_delivery` ago, or created `undelivered_days` ago); each is audited.
    Run {
        /// Override `[retention] days_after_delivery`.
        #[arg(long, value_name = "DAYS")]
        days_after_delivery: Option<u32>,
        /// Override `[retention] undelivered_days`.
        #[arg(long, value_name = "DAYS")]
        undelivered_days: Option<u32>,
        /// Change nothing: list what a run would shred now and, for every day and field group it keeps, until
        /// when and what holds it (the day still filling, its last delivery, waybills not yet finished).
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new master key and re-wrap every data key under it (no record is re-encrypted); the old master key
    /// file is replaced. Stop the servers of this data directory first: they hold the old key.
    Rotate,
}

#[derive(Subcommand)]
enum BreachCommand {
    /// Open an incident: who was exposed, which fields, where, and when (no person is named in it).
    Report {
        /// An account (or `export:<id>` file) the exposure is blamed on; repeat for several.
        #[arg(long = "suspect", value_name = "ACCOUNT", required = true)]
        suspects: Vec<String>,
        /// Window start: ms since the epoch, `now` or `now-<n>m|h|d`.
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Window end (exclusive), as `--from`.
        #[arg(long, default_value = "now", value_name = "TIME")]
        to: String,
        /// `json`, `csv` (the affected waybills) or `markdown`.
        #[arg(long, default_value = "markdown")]
        format: String,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The people to notify of an incident, as CSV, read through the policy as the account whose API token is in
    /// the file (customer service); every waybill read is audited.
    Notify {
        /// The incident id (`INC-…`).
        #[arg(long)]
        incident: String,
        /// A file holding the reading account's API token.
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Everyone the incident counts, the suspects' own work included (by default only the people on waybills
        /// shown beyond their work).
        #[arg(long)]
        all_exposures: bool,
    },
    /// Every incident in brief, newest first: id, state, window, suspects, customers exposed.
    List,
    /// Close an incident: reason `notified`, `no_exposure`, `duplicate` or `referred_to_police`.
    Close(breach::Change),
    /// Reopen a closed incident: reason `new_evidence` or `reopened`.
    Reopen(breach::Change),
}

#[derive(Subcommand)]
enum CanaryCommand {
    /// Plant canaries in what one account can see (a courier's deliveries, an outlet's parcels, a merchant's or
    /// print station's orders); prints their numbers.
    Plant {
        /// The account.
        #[arg(long = "for", value_name = "ACCOUNT")]
        account: String,
        /// How many.
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
    /// List canaries and whom each was planted for.
    List,
}

#[derive(Subcommand)]
enum BusCommand {
    /// Per partition: events held, pending for its worker, unacknowledged, redelivered.
    Status,
    /// Publish and consume synthetic access events on a throw-away stream; print events/s.
    Bench {
        /// Events to publish.
        #[arg(long, default_value_t = 200_000)]
        events: u64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the audit log: exit 0 when intact, non-zero naming the first bad entry.
    Verify {
        /// Verifier key (`name+hash+base64key`) file; by default the key derived from the signing key.
        #[arg(long, value_name = "FILE")]
        vkey: Option<PathBuf>,
        /// A checkpoint published outside the store (a `[witness] file`, a file holding one signed note, or a URL
        /// answering with either): the log must contain everything it covers, with the same root. Catches
        /// entries cut off the end together with the store's own checkpoints.
        #[arg(long, value_name = "FILE|URL")]
        checkpoint: Option<String>,
    },
    /// Sign a checkpoint of the log as it is now and print it.
    Checkpoint,
    /// Check an evidence pack offline (`GET /v1/alerts/{id}/evidence-pack`, the console's download): the
    /// checkpoint's signature, each entry's bytes and its inclusion proof. Needs no node and no store. Exit 0
    /// when every entry holds, 1 naming those that do not.
    VerifyPack {
        /// The pack (JSON).
        pack: PathBuf,
        /// The log's verifier key (`name+hash+base64key`), obtained elsewhere than the pack: without it the key the
        /// pack carries is used, which shows only that the pack is consistent, not that this log signed it.
        #[arg(long, value_name = "FILE")]
        vkey: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Propose FILE (a whole Cedar policy) as the next version; prints it as JSON. An admin approves it over the
    /// API (POST /v1/policies/{version}/approve), or an operator here with `policy approve`.
    Propose {
        /// The policy text.
        file: std::path::PathBuf,
        /// Days of audited reads to replay under it (1-90).
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// List the stored versions.
    List,
    /// Approve a proposed version (an operator at the machine; over the API a second admin does).
    Approve {
        /// The version.
        version: u64,
    },
    /// Put an earlier version, one that was in force, back in force.
    Rollback {
        /// The version.
        version: u64,
    },
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account; prints its API token as the last line.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        outlet: Option<String>,
        #[arg(long)]
        merchant: Option<String>,
    },
    /// List accounts.
    List,
    /// Suspend an account.
    Suspend {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reinstate a suspended account (one suspended as dormant or a leaver needs --reason).
    Reinstate {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reconcile the people's accounts with the HR roster (CSV with an `account` and an optional `outlet`
    /// column): absent → suspended as leavers, outlet changed → transferred. Prints the report as JSON.
    Sync {
        /// The roster CSV.
        roster: std::path::PathBuf,
        /// Report what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply even if it suspends more accounts than `[accounts] roster_max_leavers_percent` allows.
        #[arg(long)]
        force: bool,
    },
    /// Suspend, now, every account idle for more than `[accounts] dormant_days` (the server's upkeep does this
    /// hourly).
    Dormant,
    /// Move a courier, staff member or print station to another outlet.
    Transfer {
        #[arg(long)]
        id: String,
        #[arg(long)]
        outlet: String,
    },
    /// Issue a new token for an account, revoking its older ones (unless --keep); prints it as the last line.
    Token {
        #[arg(long)]
        id: String,
        /// Keep the account's older tokens working (a second device, say).
        #[arg(long)]
        keep: bool,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WBGUARD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The database and NATS clients' own logging stays at warnings whatever the level asked for: their notices
    // (every statement, every connect) are noise, and their statement log is not ours to vet.
    let filter = ["sqlx=warn", "async_nats=warn"]
        .into_iter()
        .fold(filter, |f, d| match d.parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        });
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Tells the operator where new keys were created (stderr, so stdout stays machine-readable).
pub(crate) fn report_keys(report: &OpenReport) {
    if let KeySource::Created(path) = &report.master_key {
        eprintln!("created a new master key at {} (mode 0600); back it up: without it the data cannot be read", path.display());
    }
    if let Some(path) = &report.audit_key_created {
        eprintln!(
            "created a new audit signing key at {} (mode 0600)",
            path.display()
        );
    }
}

pub(crate) fn open_guard(cfg: &Config) -> Result<Guard> {
    // (Never creates keys: only `init` does, and reports them.)
    let (mut guard, _) = Guard::open_with_store(cfg.open_store(false)?, cfg.guard(false)?)
        .context("cannot open the guard")?;
    // With a NATS bus, every access this node's engine assesses also goes to the stream, for the risk workers.
    if let Some(nats) = cfg.nats() {
        let sink = wbg_bus::NatsSink::start(&nats).context("cannot reach the NATS bus")?;
        let engine = wbg_risk::Engine::new(cfg.risk.clone()).with_sink(Arc::new(sink));
        guard = guard.with_risk(Arc::new(engine));
    }
    let (guard, pool) = guard
        .with_credentials(&cfg.credentials)
        .context("cannot set up [credentials]")?
        .with_lifecycle(&cfg.accounts)
        .context("cannot set up [accounts]")?
        .with_incidents(&cfg.incidents)
        .context("cannot set up [incidents]")?
        .with_tracking(&cfg.tracking)
        .context("cannot set up [tracking]")?
        .with_masking(&cfg.masking)
        .context("cannot set up [masking]")?
        .with_privacy_numbers(&cfg.privacy_numbers)
        .context("cannot set up [privacy_numbers]")?;
    if pool.added > 0 || pool.retired > 0 {
        eprintln!(
            "privacy numbers: {} added, {} retired, {} in service",
            pool.added, pool.retired, pool.in_service
        );
    }
    Ok(guard)
}

fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let ok = std::process::ExitCode::SUCCESS;
    match cli.command {
        Command::RiskWorker {
            partition,
            metrics_listen,
        } => {
            worker::run(
                &Config::load(&cli.common)?,
                partition,
                metrics_listen.as_deref(),
            )?;
            Ok(ok)
        }
        Command::Bus { command } => {
            let cfg = Config::load(&cli.common)?;
            let nats = cfg
                .nats()
                .context("wbguard bus needs [bus] kind = \"nats\"")?;
            match command {
                BusCommand::Status => print!("{}", bus::status(&nats)?),
                BusCommand::Bench { events } => print!("{}", bus::bench(&nats, events)?),
            }
            Ok(ok)
        }
        Command::Drive(args) => {
            let report = drive::run(&args)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", drive::render(&report));
            }
            Ok(ok)
        }
        Command::Migrate => {
            let cfg = Config::load(&cli.common)?;
            if !cfg.postgres() {
                println!(
                    "the embedded store needs no migrations (it checks its schema when it opens)"
                );
                return Ok(ok);
            }
            let store = wbg_store_pg::PgStore::connect(&cfg.postgres_url()?, true)?;
            println!(
                "PostgreSQL store at schema version {}",
                store.schema_version()?
            );
            Ok(ok)
        }
        Command::Config { command } => {
            match command {
                ConfigCommand::Reference => print!("{}", reference::render()?),
                ConfigCommand::Check => {
                    let cfg = Config::load(&cli.common)?;
                    cfg.server.trusted_proxies()?;
                    for (group, configured, min, rule) in cfg.retention.overridden_by_minimums() {
                        eprintln!(
                            "notice: [retention] keeps {} {min} days, not the configured {configured}: {rule} \
                             requires it ([retention.minimum])",
                            group.name()
                        );
                    }
                    print!("{}", toml::to_string(&cfg)?);
                }
            }
            Ok(ok)
        }
        Command::Init => {
            let cfg = Config::load(&cli.common)?;
            init(&cfg)?;
            Ok(ok)
        }
        Command::Demo { keep } => {
            demo::run(keep)?;
            Ok(ok)
        }
        Command::Serve { listen } => {
            let mut cfg = Config::load(&cli.common)?;
            if let Some(l) = listen {
                cfg.listen = l;
            }
            serve(cfg)?;
            Ok(ok)
        }
        Command::Audit {
            command: AuditCommand::VerifyPack { pack, vkey },
        } => verify_pack(&pack, vkey.as_deref()),
        Command::Audit { command } => {
            let cfg = Config::load(&cli.common)?;
            match command {
                AuditCommand::VerifyPack { pack, vkey } => verify_pack(&pack, vkey.as_deref()),
                AuditCommand::Verify { vkey, checkpoint } => {
                    audit_verify(&cfg, vkey, checkpoint.as_deref())
                }
                AuditCommand::Checkpoint => {
                    let guard = open_guard(&cfg)?;
                    print!("{}", publish_checkpoint(&cfg, &guard)?);
                    Ok(ok)
                }
            }
        }
        Command::Accounts { command } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            let meta = RequestMeta::default();
            let actor = Actor::Local("cli");
            match command {
                AccountsCommand::Create {
                    id,
                    role,
                    outlet,
                    merchant,
                } => {
                    let (a, token) = guard.create_account(
                        actor,
                        &id,
                        &role,
                        outlet.as_deref(),
                        merchant.as_deref(),
                        &meta,
                    )?;
                    eprintln!("created account {} ({})", a.id, a.role.as_str());
                    println!("{token}");
                }
                AccountsCommand::List => {
                    for a in guard.accounts(actor, &meta)? {
                        let a = a.account;
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            a.id,
                            a.role.as_str(),
                            a.outlet
                                .map(|o| o.to_string())
                                .unwrap_or_else(|| "-".into()),
                            a.merchant
                                .map(|m| m.to_string())
                                .unwrap_or_else(|| "-".into()),
                            a.status.as_str()
                        );
                    }
                }
                AccountsCommand::Suspend { id, reason } => {
                    guard.set_status(actor, &id, true, reason.as_deref(), &meta)?;
                    eprintln!("suspended {id}");
                }
                AccountsCommand::Reinstate { id, reason } => {
                    guard.set_status(actor, &id, false, reason.as_deref(), &meta)?;
                    eprintln!("reinstated {id}");
                }
                AccountsCommand::Sync {
                    roster,
                    dry_run,
                    force,
                } => {
                    let text = std::fs::read_to_string(&roster)
                        .with_context(|| format!("cannot read {}", roster.display()))?;
                    let rows = wbg_guard::parse_roster(&text)?;
                    let report = guard.sync_roster(actor, &rows, dry_run, force, &meta)?;
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                AccountsCommand::Dormant => {
                    let days = guard.lifecycle().dormant_days;
                    for id in guard.suspend_dormant(days, &meta)? {
                        eprintln!("suspended {id}: dormant for more than {days} days");
                    }
                }
                AccountsCommand::Transfer { id, outlet } => {
                    let a = guard.transfer_account(actor, &id, &outlet, &meta)?;
                    eprintln!(
                        "{id} now works at {}",
                        a.outlet.map(|o| o.to_string()).unwrap_or_default()
                    );
                }
                AccountsCommand::Token { id, keep } => {
                    println!("{}", guard.issue_token(actor, &id, keep, &meta)?)
                }
            }
            publish_checkpoint(&cfg, &guard)?;
            Ok(ok)
        }
        Command::Policy { command } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            let (actor, meta) = (Actor::Local("cli"), RequestMeta::default());
            let out = match command {
                PolicyCommand::Propose { file, days } => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let version = guard.propose_policy(actor, &text, &meta)?;
                    let replay = guard.replay_policy(actor, version.version, days, &meta)?;
                    serde_json::to_string_pretty(
                        &serde_json::json!({"version": version, "replay": replay}),
                    )?
                }
                PolicyCommand::List => {
                    serde_json::to_string_pretty(&guard.policy_versions(actor, &meta)?)?
                }
                PolicyCommand::Approve { version } => {
                    serde_json::to_string_pretty(&guard.approve_policy(actor, version, &meta)?)?
                }
                PolicyCommand::Rollback { version } => {
                    serde_json::to_string_pretty(&guard.rollback_policy(actor, version, &meta)?)?
                }
            };
            println!("{out}");
            publish_checkpoint(&cfg, &guard)?;
            Ok(ok)
        }
        Command::Alerts(args) => {
            alerts::run(&args, &Config::load(&cli.common)?)?;
            Ok(ok)
        }
        Command::AccessReview { csv } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            let rows = guard.access_review(Actor::Local("cli"), &RequestMeta::default())?;
            if csv {
                print!("{}", wbg_guard::review_csv(&rows)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
            let scale = guard.scale_review(Actor::Local("cli"), &RequestMeta::default())?;
            let reached: Vec<String> = scale
                .duties
                .iter()
                .filter(|d| d.reached)
                .map(|d| format!("from {}: {}", d.threshold, d.duty))
                .collect();
            eprintln!(
                "{} people's personal data held (distinct phones){}",
                scale.individuals,
                if reached.is_empty() {
                    String::new()
                } else {
                    format!("; duties: {}", reached.join("; "))
                }
            );
            publish_checkpoint(&cfg, &guard)?;
            Ok(ok)
        }
        Command::Simulate(args) => {
            // The config's [risk] and policies apply; only with --data is the store (and its keys) kept.
            let cfg = Config::load(&cli.common)?;
            if args.scenario == "tracking" {
                let report = simulate::run_tracking(&args, &cfg)?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", simulate::render_tracking(&report));
                }
                return Ok(ok);
            }
            let reports = simulate::run(&args, &cfg, cli.common.data.is_some())?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                print!("{}", wbg_scenarios::render_table(&reports));
            }
            Ok(ok)
        }
        Command::Canaries { command } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            match command {
                CanaryCommand::Plant { account, count } => {
                    let made_up = guard.quick_canaries(
                        Actor::Local("cli"),
                        &account,
                        count.clamp(1, wbg_guard::MAX_CANARIES),
                        &RequestMeta::default(),
                    )?;
                    let nos = guard.plant_canaries(
                        Actor::Local("cli"),
                        &account,
                        made_up,
                        &RequestMeta::default(),
                    )?;
                    publish_checkpoint(&cfg, &guard)?;
                    eprintln!("planted {} canaries for {account}", nos.len());
                    for no in nos {
                        println!("{no}");
                    }
                }
                CanaryCommand::List => {
                    for (no, account) in guard.store().canaries()? {
                        println!("{no}\t{account}");
                    }
                }
            }
            Ok(ok)
        }
        Command::Breach { command } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;

            match command {
                BreachCommand::Report {
                    suspects,
                    from,
                    to,
                    format,
                    out,
                } => {
                    let now = wbg_core::now_millis();
                    let req = wbg_guard::IncidentRequest {
                        suspects,
                        from: breach::parse_time(&from, now)?,
                        to: breach::parse_time(&to, now)?,
                    };
                    let id = breach::report(&guard, &req, &format, out.as_deref())?;
                    eprintln!("opened incident {id}");
                }
                BreachCommand::Notify {
                    incident,
                    token_file,
                    out,
                    all_exposures,
                } => {
                    let token = api_token(Some(&token_file))?;
                    let scope = if all_exposures {
                        wbg_guard::NotifyScope::All
                    } else {
                        wbg_guard::NotifyScope::BeyondWork
                    };
                    let n = breach::notify(&guard, &incident, &token, scope, out.as_deref())?;
                    eprintln!("{n} customers to notify");
                }
                BreachCommand::List => {
                    let meta = RequestMeta::default();
                    for i in guard.incidents(Actor::Local("cli"), &meta)? {
                        println!(
                            "{}\t{}\t{}Z\t{}Z\t{}\t{} customers ({} in full)",
                            i.incident,
                            i.state,
                            wbg_core::utc_text(i.from),
                            wbg_core::utc_text(i.to),
                            i.suspects.join(","),
                            i.customers,
                            i.customers_full
                        );
                    }
                }
                BreachCommand::Close(c) => breach::change(&guard, c, false)?,
                BreachCommand::Reopen(c) => breach::change(&guard, c, true)?,
            }
            publish_checkpoint(&cfg, &guard)?;
            Ok(ok)
        }
        Command::Attribute {
            leak,
            json,
            max_mib,
        } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            let report = attribute::run(&guard, &leak, max_mib)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", attribute::render(&report));
            }
            Ok(ok)
        }
        Command::Retention {
            command:
                RetentionCommand::Run {
                    days_after_delivery,
                    undelivered_days,
                    dry_run,
                },
        } => {
            let cfg = Config::load(&cli.common)?;
            let _lock = cfg.lock_data_dir("retention run")?;
            let mut policy = cfg.retention.clone();
            policy.days_after_delivery = days_after_delivery.unwrap_or(policy.days_after_delivery);
            policy.undelivered_days = undelivered_days.unwrap_or(policy.undelivered_days);
            let guard = open_guard(&cfg)?;
            let plan = guard.retention_plan(Actor::Local("cli"), &policy)?;
            if dry_run {
                print_retention_plan(&plan);
                return Ok(ok);
            }
            let run = guard.run_retention(Actor::Local("cli"), &policy, &RequestMeta::default())?;
            publish_checkpoint(&cfg, &guard)?;
            for c in &run.carried {
                println!(
                    "carried {} open or held waybills from {} to {} ({} could not be opened and stay; audit entry {})",
                    c.waybills,
                    day_of(c.from),
                    day_of(c.to),
                    c.failed,
                    c.audit_seq
                );
            }
            if run.erased > 0 {
                println!(
                    "erased {} finished waybills of pending deletion requests",
                    run.erased
                );
            }
            let shredded = run.shredded;
            for b in &shredded {
                println!(
                    "shredded {} {} ({} waybills, {} index entries; audit entry {})",
                    b.day, b.group, b.waybills, b.index_entries, b.audit_seq
                );
            }
            let days: std::collections::HashSet<i64> = shredded.iter().map(|b| b.bucket).collect();
            eprintln!(
                "{} field groups shredded over {} days of personal data",
                shredded.len(),
                days.len()
            );
            // Why the rest stays: the next group to fall due, and what holds it.
            if let Some(next) = plan
                .iter()
                .filter(|p| !p.due)
                .min_by_key(|p| p.due_at.unwrap_or(i64::MAX))
            {
                eprintln!(
                    "{} field groups kept; the next falls due {} ({} {}, held by {})",
                    plan.iter().filter(|p| !p.due).count(),
                    next.due_at.map(wbg_core::when::display).unwrap_or_default(),
                    next.day,
                    next.group,
                    next.held_by.join(" and ")
                );
            }
            Ok(ok)
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            if std::env::var_os("WBGUARD_MASTER_KEY").is_some() {
                bail!(
                    "the master key comes from $WBGUARD_MASTER_KEY, which this command cannot change: \
                     rotate with the key in a key directory (--keys DIR)"
                );
            }
            let cfg = Config::load(&cli.common)?;
            let _lock = cfg.lock_data_dir("keys rotate")?;
            // On PostgreSQL the other nodes have data directories of their own: the store's node lock, taken
            // exclusively, says whether any of them serves.
            // Held, it waits for any node whose session PostgreSQL ended a moment ago to find it cannot take
            // its lock back, and stop.
            let _alone = if cfg.postgres() {
                let alone = wbg_store_pg::NodeLock::acquire(&cfg.postgres_url()?, true)?;
                eprintln!(
                    "no node serves; waiting {} s for any node whose session PostgreSQL just ended to stop",
                    wbg_store_pg::NODE_LOCK_SETTLE.as_secs()
                );
                Some(alone.settle())
            } else {
                None
            };
            let (guard, report) = Guard::open_with_store(cfg.open_store(false)?, cfg.guard(false)?)
                .context("cannot open the guard")?;
            let dir = report
                .key_dir
                .context("the master key is not in a key directory")?;
            let next = dir.join(wbg_guard::NEXT_MASTER_KEY_FILE);
            // The store opened under the current key, so a next key left here by a rotation that stopped
            // before its transaction was never used.
            if next.exists() {
                std::fs::remove_file(&next)
                    .with_context(|| format!("cannot remove {}", next.display()))?;
            }
            let new = wbg_vault::MasterKey::create_file(&next)?;
            let n = guard.rotate_master_key(Actor::Local("cli"), &new, &RequestMeta::default())?;
            publish_checkpoint(&cfg, &guard)?;
            wbg_guard::finish_rotation(&dir)?;
            eprintln!(
                "re-wrapped {n} keys under the new master key {} in {}; the old key is gone",
                new.key_id(),
                dir.display()
            );
            Ok(ok)
        }
        Command::Label {
            waybill_no,
            format,
            out,
            token_file,
        } => {
            let format = wbg_guard::LabelFormat::parse(&format)?;
            let token = api_token(token_file.as_deref())?;
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            let printed =
                guard.print_label(&token, &waybill_no, format, &RequestMeta::default())?;
            let bytes = wbg_label::render(&printed.label, format)?;
            std::fs::write(&out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            publish_checkpoint(&cfg, &guard)?;
            eprintln!(
                "label of {waybill_no} written to {} (print #{}, audit entry {})",
                out.display(),
                printed.label.copy,
                printed.audit_seq
            );
            Ok(ok)
        }
        Command::Import { file, batch } => {
            let cfg = Config::load(&cli.common)?;
            let guard = open_guard(&cfg)?;
            let n = import::run(&guard, &file, batch)?;
            publish_checkpoint(&cfg, &guard)?;
            guard.store().maintain()?;
            eprintln!("imported {n} waybills");
            Ok(ok)
        }
    }
}

/// Signs a checkpoint of the log as it is now, publishes it to the `[witness]` (the file at once; a POST is
/// best effort from a command that ends here: a server publishes every second), and returns the note.
fn publish_checkpoint(cfg: &Config, guard: &Guard) -> Result<String> {
    let (size, note) = guard.signed_checkpoint()?;
    if let Some(w) = witness::Witness::start(&cfg.witness)? {
        w.publish(size, &note)?;
    }
    Ok(note)
}

/// `init`: the store, its data directory and its keys, or (on a store that exists) a check that they open.
fn init(cfg: &Config) -> Result<()> {
    // An embedded store exists once its file does; a PostgreSQL one once its audit log holds anything (its schema
    // may have been migrated ahead of the first node).
    let file_existed = cfg.data.join(wbg_store_sqlite::DB_FILE).exists();
    std::fs::create_dir_all(&cfg.data)
        .with_context(|| format!("cannot create {}", cfg.data.display()))?;
    let store = cfg.open_store(true)?;
    let existed = if cfg.postgres() {
        store.audit_size()? > 0
    } else {
        file_existed
    };
    // Keys are never made for a store that has data: keys made now could not open it.
    let (guard, report) = Guard::open_with_store(store, cfg.guard(!existed)?)
        .context("cannot open the guard with these keys")?;
    report_keys(&report);
    publish_checkpoint(cfg, &guard)?;
    if existed {
        println!(
            "{} is initialised already; its keys open it",
            cfg.describe_store()
        );
    } else {
        println!("initialised {}", cfg.describe_store());
    }
    Ok(())
}

/// `audit verify`: exit 0 when intact; exit 1 naming the first bad entry.
/// A bucket's day, `YYYY-MM-DD` (UTC).
fn day_of(bucket: i64) -> String {
    wbg_core::utc_text(bucket * 86_400_000)[..10].to_owned()
}

/// `retention run --dry-run`: one line per day and field group.
fn print_retention_plan(plan: &[wbg_guard::RetentionPlan]) {
    println!(
        "{:<10}  {:<7}  {:>8}  what a run would do",
        "day", "group", "waybills"
    );
    for p in plan {
        let what = if p.due {
            let mut w = "shred now".to_owned();
            if p.carried > 0 {
                w.push_str(&format!(
                    ", first carrying {} waybills to today ({} open, {} under legal hold)",
                    p.carried,
                    p.carried - p.held,
                    p.held
                ));
            }
            if p.lost > 0 {
                w.push_str(&format!(
                    "; {} open longer than undelivered_days go with it",
                    p.lost
                ));
            }
            w
        } else {
            let why: Vec<String> = p
                .held_by
                .iter()
                .map(|h| match h.as_str() {
                    "day" => "the day is still filling".to_owned(),
                    "open" => "parcels of it are still open; they are carried once the day is the \
                               group's days old"
                        .to_owned(),
                    "delivery" => "its last delivery is not old enough".to_owned(),
                    _ => format!(
                        "a minimum: {}",
                        p.rule.as_deref().unwrap_or("a rule's minimum period")
                    ),
                })
                .collect();
            format!(
                "keep until {}: {}",
                p.due_at.map(wbg_core::when::display).unwrap_or_default(),
                why.join("; ")
            )
        };
        println!("{:<10}  {:<7}  {:>8}  {what}", p.day, p.group, p.waybills);
    }
    let due = plan.iter().filter(|p| p.due).count();
    eprintln!(
        "dry run: {due} field groups would be shredded, {} kept; nothing was changed",
        plan.len() - due
    );
}

fn verify_pack(path: &Path, vkey: Option<&Path>) -> Result<std::process::ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let pack = wbg_audit::EvidencePack::parse(&bytes)?;
    let (key_text, from_pack) = match vkey {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
            false,
        ),
        None => (pack.verifier_key.clone(), true),
    };
    let key = NoteVerifier::from_text(&key_text).context("not a verifier key")?;
    let report = match pack.verify(&key) {
        Ok(r) => r,
        Err(e) => {
            println!("FAILED: {e}");
            return Ok(std::process::ExitCode::from(1));
        }
    };
    println!(
        "checkpoint: {} size {} signed by {}{}",
        report.origin,
        report.size,
        key.to_text(),
        if from_pack {
            " (the key the pack carries: give --vkey with the key published elsewhere to prove it is this log's)"
        } else {
            ""
        }
    );
    for seq in &report.verified {
        println!("entry {seq}: verified");
    }
    for (seq, why) in &report.failed {
        println!("entry {seq}: FAILED: {why}");
    }
    if report.holds() {
        println!("{} entries verified", report.verified.len());
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        println!(
            "{} of {} entries do not hold",
            report.failed.len(),
            report.failed.len() + report.verified.len()
        );
        Ok(std::process::ExitCode::from(1))
    }
}

fn audit_verify(
    cfg: &Config,
    vkey: Option<PathBuf>,
    published: Option<&str>,
) -> Result<std::process::ExitCode> {
    let verifier = match vkey {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            NoteVerifier::from_text(&text).context("not a verifier key")?
        }
        // The key derived from the signing key outside the data directory: an attacker who rewrote the data
        // directory cannot have re-signed with it.
        None => open_guard(cfg)?.verifier_key(),
    };
    let published = match published {
        Some(source) => {
            let note = witness::latest(source)?;
            // Checked here, so a note signed by another key is named as such rather than as a broken log.
            if let Err(e) = verifier.open(&note) {
                println!("the published checkpoint does not verify under this log's key: {e}");
                return Ok(std::process::ExitCode::from(1));
            }
            Some(note)
        }
        None => None,
    };
    let store = cfg.open_store(false)?;
    let published: Vec<String> = published.into_iter().collect();
    match wbg_guard::verify_store_with(store.as_ref(), &verifier, &published) {
        Ok(r) => {
            println!(
                "audit log intact: {} entries, {} signed checkpoints (newest covers {}), root {}",
                r.entries, r.checkpoints, r.signed_size, r.root
            );
            for note in &published {
                let size = verifier
                    .open(note)
                    .ok()
                    .and_then(|t| wbg_audit::Checkpoint::parse(t).ok())
                    .map_or(0, |c| c.size);
                println!("consistent with the published checkpoint of size {size}");
            }
            if r.signed_size < r.entries {
                println!(
                    "note: the last {} entries are not yet covered by a signed checkpoint",
                    r.entries - r.signed_size
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(f) => {
            println!("audit log FAILED verification: {f}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

fn serve(cfg: Config) -> Result<()> {
    // One server per data directory: two would each run a risk engine and split an attacker's reads between them.
    let _lock = cfg.lock_data_dir("serve")?;
    // Every node of a PostgreSQL store holds its node lock shared while it serves (a key rotation takes it alone),
    // and takes it back should PostgreSQL end its session. Dropped after the runtime below has finished.
    let _node = if cfg.postgres() {
        let lock = wbg_store_pg::NodeLock::acquire(&cfg.postgres_url()?, false)?;
        Some(lock.watch(|e| {
            // An operation took the store alone while the lock was down: this node's master key may no longer be
            // the store's, and what it wrapped now could not be read after that operation. Stop at once.
            tracing::error!(error = %e, "the node lock was lost to an operation that needs the store alone; stopping");
            eprintln!("wbguard: stopping: the node lock was lost ({e})");
            std::process::exit(75);
        })?)
    } else {
        None
    };
    let mut guard = open_guard(&cfg)?;
    if let Some(hook) = webhook::Webhook::<wbg_core::Alert>::start(&cfg.webhook)? {
        guard = guard.with_alert_sink(Arc::new(hook));
    }
    if let Some(hook) = webhook::Webhook::<wbg_guard::BindingChange>::start(&cfg.telephony_webhook)?
    {
        if !guard.privacy_numbers_enabled() {
            anyhow::bail!("[telephony_webhook] is set but [privacy_numbers] is not enabled");
        }
        guard = guard.with_number_gateway(Arc::new(hook));
    }
    let guard = Arc::new(guard);
    let witness = witness::Witness::start(&cfg.witness)?.map(Arc::new);
    let metrics = telemetry::install().context("cannot install the metrics recorder")?;
    jwks::start(&guard, cfg.credentials.oidc.as_ref())?;
    let trusted_proxies = cfg.server.trusted_proxies()?;
    let connection_proxies = trusted_proxies.clone();
    let limits = cfg.server.limits()?;
    let tls = cfg.tls.clone();
    let console = cfg.console.clone();
    let tracking_enabled = cfg.tracking.enabled;
    console.check().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        // Loaded before the address is announced: a bad certificate stops the start, not the first client.
        let rustls = match &tls {
            Some(t) => Some(t.load().await?),
            None => None,
        };
        let scheme = if rustls.is_some() { "https" } else { "http" };
        println!("listening on {scheme}://{addr}");
        tracing::info!(%addr, data = %cfg.data.display(), "wbguard serving");
        // Sign a checkpoint every second when the log has grown, so tampering is bounded in time.
        let retention = Arc::new(cfg.retention.clone());
        let ticker = {
            let guard = guard.clone();
            let metrics = metrics.clone();
            let witness = witness.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
                let mut ticks = 0u64;
                let gauges = Arc::new(std::sync::Mutex::new(telemetry::Gauges::default()));
                loop {
                    every.tick().await;
                    // Retention once an hour (and at start): its queries read every waybill's dates.
                    let shred = retention.enabled && ticks.is_multiple_of(3600);
                    ticks += 1;
                    let g = guard.clone();
                    let witness = witness.clone();
                    let gauges = gauges.clone();
                    let retention = retention.clone();
                    let upkeep = tokio::task::spawn_blocking(move || {
                        // A policy version approved on any node is in force here within a tick.
                        g.refresh_policy()?;
                        let (size, note) = g.signed_checkpoint()?;
                        if let Ok(mut gauges) = gauges.lock() {
                            gauges.refresh(&g, size, ticks % 15 == 1);
                        }
                        if let Some(w) = &witness {
                            if let Err(e) = w.publish(size, &note) {
                                tracing::error!(error = %e, "cannot publish the checkpoint to the witness");
                            }
                        }
                        // What other nodes (or the CLI) changed in the shared store: keys shredded, canaries planted.
                        g.refresh_shredded()?;
                        g.reload_canaries()?;
                        // Legal holds placed or released on another node: in force here within five ticks.
                        // And public-tracking blocks and locks decided there.
                        if ticks % 5 == 1 {
                            g.reload_holds()?;
                            g.reload_tracking()?;
                            // And risk thresholds changed there.
                            g.refresh_thresholds()?;
                        }
                        // Waybills that found the privacy-number pool exhausted get a number once one rested.
                        g.bind_waiting_numbers(1_000)?;
                        // Activity recorded every minute; dormant accounts suspended hourly (and at start).
                        if ticks % 60 == 1 {
                            g.flush_activity()?;
                        }
                        if ticks % 3600 == 1 {
                            let meta = wbg_guard::RequestMeta::default();
                            for id in g.suspend_dormant(g.lifecycle().dormant_days, &meta)? {
                                tracing::warn!(account = %id, "suspended as dormant");
                            }
                            for id in g.suspend_unattested(&meta)? {
                                tracing::warn!(account = %id, "suspended: not recertified this quarter");
                            }
                        }
                        if shred {
                            let meta = wbg_guard::RequestMeta::default();
                            let run = g.run_retention(Actor::Local("retention"), &retention, &meta)?;
                            for c in run.carried {
                                tracing::info!(from = c.from, to = c.to, waybills = c.waybills, failed = c.failed, audit_seq = c.audit_seq, "retention carried a day's open parcels to today before shredding it");
                            }
                            for b in run.shredded {
                                tracing::info!(day = %b.day, group = %b.group, waybills = b.waybills, audit_seq = b.audit_seq, "retention shredded a field group of a day of personal data");
                            }
                            g.retention_gauges(&retention)?;
                        }
                        // The people held: a full read of the phone tokens, so every six hours (and at start).
                        if ticks % 21_600 == 1 {
                            g.count_individuals()?;
                        }
                        g.store().maintain()?;
                        // Keep the forensics access index close behind the log, so an attribution has little to
                        // catch up on; a bounded share a tick, so a long first indexing never delays signing.
                        g.index_accesses(Some(200_000), &mut |_, _| {})?;
                        Ok::<_, wbg_guard::GuardError>(())
                    });
                    if let Ok(Err(e)) = upkeep.await {
                        tracing::error!(error = %e, "upkeep failed (checkpoint signing, retention, privacy numbers, store maintenance or access indexing)");
                    }
                    metrics.run_upkeep();
                }
            })
        };
        let login = match cfg.credentials.oidc.as_ref() {
            Some(o) => o.login()?.map(|l| (l, o.jwks_ca_file.clone())),
            None => None,
        };
        let options = server::RouterOptions {
            trusted_proxies,
            console: console.clone(),
            tracking: tracking_enabled,
            tls: rustls.is_some(),
            login,
            body_wait: limits.client_timeout,
            idle: limits.idle_timeout,
        };
        let app = server::router(guard.clone(), metrics, options)
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        server::listen::serve(
            listener.into_std()?,
            app,
            rustls,
            limits,
            connection_proxies,
            shutdown_signal()?,
        )
            .await?;
        ticker.abort();
        let (size, note) = guard.signed_checkpoint()?;
        if let Some(w) = &witness {
            w.publish(size, &note)?;
        }
        tracing::info!("stopped; final checkpoint signed");
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C. SIGTERM is watched from this call on (registered at once, not when the future
/// is first polled), so a supervisor's early stop is never the signal's default action, which ends the process
/// without its last checkpoint or snapshot. Called within a runtime.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    Ok(async move {
        #[cfg(unix)]
        let term = term.recv();
        #[cfg(not(unix))]
        let term = std::future::pending::<Option<()>>();
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
    })
}

/// An account's API token, for commands that act as that account: from `file`, else `$WBGUARD_TOKEN`.
fn api_token(file: Option<&std::path::Path>) -> Result<String> {
    let token = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?,
        None => std::env::var("WBGUARD_TOKEN")
            .context("give the account's API token with --token-file FILE or $WBGUARD_TOKEN")?,
    };
    Ok(token.trim().to_owned())
}
