//! `wbguard drive`: the synthetic carrier of the simulator (`wbg-sim`) live against running guard nodes over
//! HTTP, in real time: couriers reading their own deliveries, staff looking up their outlet's parcels, and a T1
//! ring working a rented staff account through a scraping tool on a second device. Every request goes to the
//! next node in turn, so several nodes share one carrier; the report says what each node answered, what the
//! ring obtained in full and how fast it was contained. `--bench` measures guarded reads/s across the nodes
//! instead. The week-long `simulate` runs in-process on a simulated clock; this runs on the servers' own clock.
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wbg_core::{NewWaybill, Role};
use wbg_sim::{Carrier, CarrierSpec};

/// The environment variable holding an administrator's token (never a flag: flags show in `ps`).
pub const ADMIN_TOKEN_ENV: &str = "WBGUARD_ADMIN_TOKEN";
/// The environment variable holding a second administrator's token: it approves the enrolments of the accounts
/// that see personal data (no admin alone obtains a working credential for one).
pub const APPROVER_TOKEN_ENV: &str = "WBGUARD_APPROVER_TOKEN";

/// What `drive` was asked.
#[derive(clap::Args)]
pub struct Args {
    /// The guard nodes' base URLs, comma-separated; requests go to each in turn.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Seconds of live traffic after set-up.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Outlets of the synthetic carrier (3 couriers and 2 staff each).
    #[arg(long, default_value_t = 4)]
    pub outlets: usize,
    /// Parcels out for delivery per outlet.
    #[arg(long, default_value_t = 40)]
    pub parcels: usize,
    /// Seed of the carrier and of everyone's timing.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seconds into the live traffic at which the T1 ring starts working its rented account.
    #[arg(long, default_value_t = 10)]
    pub attack_after: u64,
    /// Milliseconds between the ring's requests (its tool's pace).
    #[arg(long, default_value_t = 200)]
    pub attack_pace_ms: u64,
    /// No ring: the carrier's own work only.
    #[arg(long)]
    pub no_attack: bool,
    /// Measure instead: `--concurrency` couriers read their own deliveries as fast as the nodes answer.
    #[arg(long)]
    pub bench: bool,
    /// Requests in flight at once under `--bench`.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Set up the carrier, write what a load generator needs into this file and stop: one line a delivery,
    /// `courier-token waybill-no courier-id destination-outlet origin-outlet`, then a line `integration TOKEN`
    /// (used by `scripts/bench`).
    #[arg(long)]
    pub targets: Option<std::path::PathBuf>,
}

/// What one node was sent and how it answered.
#[derive(Debug, Default, Serialize)]
pub struct NodeTally {
    /// The node's base URL.
    pub url: String,
    /// Requests sent to it (set-up included).
    pub requests: u64,
    /// Guarded reads sent to it.
    pub reads: u64,
    /// Answers with a 5xx status or no answer at all.
    pub failures: u64,
}

/// What the T1 ring did and got.
#[derive(Debug, Default, Serialize)]
pub struct RingReport {
    /// The rented account.
    pub account: String,
    /// Reads it sent.
    pub reads: u64,
    /// Distinct records it was served in full: its haul.
    pub records_exposed: u64,
    /// Reads served masked although it asked for the full record.
    pub masked: u64,
    /// Reads refused (out of scope, rate ceiling, suspension).
    pub refused: u64,
    /// `masked`, `rate_limited` or `suspended`: the first containment it met.
    pub containment: Option<String>,
    /// Seconds from its first read to that containment.
    pub seconds_to_containment: Option<f64>,
    /// Seconds from its first read to its suspension.
    pub seconds_to_suspension: Option<f64>,
    /// Reads any node served after one node had answered "suspended": a node that had not heard.
    pub served_after_suspension: u64,
    /// Nodes that answered it "suspended" (every node, once the suspension reached them).
    pub nodes_refusing_as_suspended: usize,
}

/// The report of a drive.
#[derive(Debug, Default, Serialize)]
pub struct DriveReport {
    /// Per node.
    pub nodes: Vec<NodeTally>,
    /// Accounts created.
    pub accounts: usize,
    /// Waybills ingested and sent out for delivery.
    pub waybills: usize,
    /// Seconds the set-up took.
    pub setup_seconds: f64,
    /// Seconds of live traffic.
    pub live_seconds: f64,
    /// Guarded reads during the live traffic.
    pub reads: u64,
    /// Of those, per answer (`full`, `masked`, or an error code such as `forbidden`).
    pub answers: BTreeMap<String, u64>,
    /// Guarded reads a second.
    pub reads_per_second: f64,
    /// Read latency, median, milliseconds.
    pub latency_p50_ms: f64,
    /// Read latency, 99th percentile, milliseconds.
    pub latency_p99_ms: f64,
    /// Benign accounts that worked.
    pub benign_accounts: usize,
    /// Benign accounts found suspended at the end.
    pub benign_suspended: Vec<String>,
    /// The ring, unless `--no-attack` or `--bench`.
    pub ring: Option<RingReport>,
}

/// The nodes and the tallies of what was sent to them.
struct Nodes {
    urls: Vec<String>,
    client: Client,
    next: AtomicUsize,
    requests: Vec<AtomicU64>,
    reads: Vec<AtomicU64>,
    failures: Vec<AtomicU64>,
}

/// A node's answer: status and JSON body (`Null` when there was none).
struct Answer {
    node: usize,
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Nodes {
    fn new(urls: &[String], connections: usize) -> Result<Nodes> {
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(connections.max(4))
            .build()?;
        let zeros = || urls.iter().map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        Ok(Nodes {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            client,
            next: AtomicUsize::new(0),
            requests: zeros(),
            reads: zeros(),
            failures: zeros(),
        })
    }

    /// Sends to the next node in turn.
    fn send(&self, post: Option<&Value>, path: &str, token: &str, device: &str) -> Answer {
        let node = self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len();
        self.requests[node].fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.urls[node]);
        let rb = match post {
            Some(body) => self.client.post(url).json(body),
            None => self.client.get(url),
        };
        match rb.bearer_auth(token).header("x-device-id", device).send() {
            Ok(r) => {
                let status = r.status().as_u16();
                if status >= 500 {
                    self.failures[node].fetch_add(1, Ordering::Relaxed);
                }
                let body = r.json::<Value>().unwrap_or(Value::Null);
                Answer { node, status, body }
            }
            Err(_) => {
                self.failures[node].fetch_add(1, Ordering::Relaxed);
                Answer {
                    node,
                    status: 0,
                    body: Value::Null,
                }
            }
        }
    }

    /// A guarded read; the answer and how long it took.
    fn read(&self, no: &str, purpose: &str, token: &str, device: &str) -> (Answer, Duration) {
        let t = Instant::now();
        let a = self.send(
            None,
            &format!("/v1/waybills/{no}?purpose={purpose}"),
            token,
            device,
        );
        self.reads[a.node].fetch_add(1, Ordering::Relaxed);
        (a, t.elapsed())
    }

    fn tallies(&self) -> Vec<NodeTally> {
        self.urls
            .iter()
            .enumerate()
            .map(|(i, url)| NodeTally {
                url: url.clone(),
                requests: self.requests[i].load(Ordering::Relaxed),
                reads: self.reads[i].load(Ordering::Relaxed),
                failures: self.failures[i].load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// One account the drive works.
struct Worker {
    id: String,
    role: Role,
    outlet: String,
    token: String,
}

/// The carrier set up on the nodes.
struct Setup {
    workers: Vec<Worker>,
    /// Per courier (index into `workers`): its deliveries.
    deliveries: Vec<Vec<String>>,
    /// Per outlet: the parcels going to or from it.
    by_outlet: BTreeMap<String, Vec<String>>,
    waybills: usize,
    /// The integration's token (ingest and scans).
    integration: String,
    /// Each parcel's origin outlet.
    origins: BTreeMap<String, String>,
}

/// Tallies of the live traffic's reads.
#[derive(Default)]
struct Reads {
    answers: BTreeMap<String, u64>,
    latencies: Vec<Duration>,
}

impl Reads {
    fn add(&mut self, a: &Answer, took: Duration) {
        let key = match (a.status, a.body["view"].as_str()) {
            (200, Some(v)) => v.to_owned(),
            (0, _) => "no_answer".to_owned(),
            _ if !a.code().is_empty() => a.code().to_owned(),
            (s, _) => format!("http_{s}"),
        };
        *self.answers.entry(key).or_default() += 1;
        self.latencies.push(took);
    }

    fn merge(&mut self, other: Reads) {
        for (key, n) in other.answers {
            *self.answers.entry(key).or_default() += n;
        }
        self.latencies.extend(other.latencies);
    }
}

/// Runs the drive; the admin token comes from [`ADMIN_TOKEN_ENV`].
pub fn run(args: &Args) -> Result<DriveReport> {
    if args.nodes.is_empty() {
        bail!("--nodes needs at least one URL");
    }
    if !(1..=200).contains(&args.outlets) {
        bail!("--outlets must be within 1..=200");
    }
    if !(1..=5_000).contains(&args.parcels) {
        bail!("--parcels must be within 1..=5000");
    }
    if !(1..=3_600).contains(&args.seconds) {
        bail!("--seconds must be within 1..=3600");
    }
    if !(1..=512).contains(&args.concurrency) {
        bail!("--concurrency must be within 1..=512");
    }
    let admin = std::env::var(ADMIN_TOKEN_ENV)
        .with_context(|| format!("set {ADMIN_TOKEN_ENV} to an administrator's token"))?;
    let approver = std::env::var(APPROVER_TOKEN_ENV).with_context(|| {
        format!(
            "set {APPROVER_TOKEN_ENV} to a second administrator's token (it approves enrolments)"
        )
    })?;
    let nodes = Nodes::new(&args.nodes, args.concurrency)?;
    let carrier = Carrier::generate(CarrierSpec {
        outlets: args.outlets,
        couriers_per_outlet: 3,
        staff_per_outlet: 2,
        merchants: args.outlets.max(2),
        cs_agents: 1,
        customers: (args.outlets * args.parcels * 2).max(100),
        seed: args.seed,
    });
    let started = Instant::now();
    let setup = set_up(&nodes, &carrier, [&admin, &approver], args)?;
    let mut report = DriveReport {
        accounts: setup.workers.len() + 1,
        waybills: setup.waybills,
        setup_seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    };
    if let Some(path) = &args.targets {
        eprintln!(
            "set up {} accounts and {} waybills in {:.1} s; targets written to {}",
            report.accounts,
            report.waybills,
            report.setup_seconds,
            path.display()
        );
        write_targets(path, &setup)?;
        report.benign_accounts = setup.workers.len();
        report.nodes = nodes.tallies();
        return Ok(report);
    }
    eprintln!(
        "set up {} accounts and {} waybills in {:.1} s; {} s of live traffic follow",
        report.accounts, report.waybills, report.setup_seconds, args.seconds
    );
    let live = Instant::now();
    let (reads, ring) = if args.bench {
        (bench(&nodes, &setup, args), None)
    } else {
        live_day(&nodes, &setup, args)
    };
    report.live_seconds = live.elapsed().as_secs_f64();
    report.reads = reads.latencies.len() as u64;
    report.reads_per_second = report.reads as f64 / report.live_seconds.max(1e-9);
    let mut lat = reads.latencies;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    report.latency_p50_ms = pct(0.50);
    report.latency_p99_ms = pct(0.99);
    report.answers = reads.answers;
    let ring_account = ring.as_ref().map(|r| r.account.clone());
    report.benign_accounts = setup
        .workers
        .iter()
        .filter(|w| Some(&w.id) != ring_account.as_ref())
        .count();
    report.benign_suspended = suspended(&nodes, &admin)?
        .into_iter()
        .filter(|id| Some(id) != ring_account.as_ref() && setup.workers.iter().any(|w| &w.id == id))
        .collect();
    report.ring = ring;
    report.nodes = nodes.tallies();
    Ok(report)
}

fn expect(a: &Answer, ok: u16, what: &str) -> Result<()> {
    if a.status != ok {
        bail!(
            "{what}: node {} answered {} {}",
            a.node,
            a.status,
            a.body["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// Creates the accounts, ingests the parcels and sends each out for delivery with a courier of its outlet.
fn set_up(nodes: &Nodes, carrier: &Carrier, admins: [&str; 2], args: &Args) -> Result<Setup> {
    let [admin, approver] = admins;
    let mut workers = Vec::new();
    let mut integration = None;
    for a in &carrier.accounts {
        if !matches!(
            a.role,
            Role::Courier | Role::OutletStaff | Role::Integration
        ) {
            continue;
        }
        let r = nodes.send(
            Some(&json!({"id": a.id, "role": a.role.as_str(), "outlet": a.outlet})),
            "/v1/accounts",
            admin,
            "drive-setup",
        );
        if r.status == 409 {
            bail!(
                "account {} exists already: drive sets up its carrier on a fresh store",
                a.id
            );
        }
        let token = if r.status == 202 {
            enrol(nodes, &r.body, approver)?
        } else {
            expect(&r, 201, "creating an account")?;
            r.body["token"]
                .as_str()
                .context("an account was created without a token")?
                .to_owned()
        };
        match a.role {
            Role::Integration => integration = Some(token),
            role => workers.push(Worker {
                id: a.id.clone(),
                role,
                outlet: a.outlet.clone().unwrap_or_default(),
                token,
            }),
        }
    }
    let integration = integration.context("the carrier has no integration account")?;
    let n = args.outlets * args.parcels;
    let waybills: Vec<NewWaybill> = carrier.waybills(1, n);
    for chunk in waybills.chunks(500) {
        let r = nodes.send(
            Some(&json!({ "waybills": chunk })),
            "/v1/waybills",
            &integration,
            "drive-setup",
        );
        expect(&r, 201, "ingesting waybills")?;
    }
    // Each parcel goes out with the next courier of its destination outlet.
    let couriers: Vec<usize> = (0..workers.len())
        .filter(|i| workers[*i].role == Role::Courier)
        .collect();
    let mut deliveries = vec![Vec::new(); workers.len()];
    let mut by_outlet: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut turn: BTreeMap<String, usize> = BTreeMap::new();
    let mut plan = Vec::new();
    for w in &waybills {
        let (no, origin, dest) = (
            w.waybill_no.as_str().to_owned(),
            w.origin_outlet.as_str().to_owned(),
            w.destination_outlet.as_str().to_owned(),
        );
        let mine: Vec<usize> = couriers
            .iter()
            .copied()
            .filter(|i| workers[*i].outlet == dest)
            .collect();
        let k = turn.entry(dest.clone()).or_default();
        let courier = mine.get(*k % mine.len().max(1)).copied();
        *k += 1;
        by_outlet
            .entry(origin.clone())
            .or_default()
            .push(no.clone());
        if origin != dest {
            by_outlet.entry(dest.clone()).or_default().push(no.clone());
        }
        if let Some(c) = courier {
            deliveries[c].push(no.clone());
        }
        plan.push((no, origin, dest, courier.map(|c| workers[c].id.clone())));
    }
    // The scans, from a few scanners at once.
    let failed = Mutex::new(None);
    std::thread::scope(|s| {
        for part in plan.chunks(plan.len().div_ceil(8).max(1)) {
            let (failed, integration) = (&failed, &integration);
            s.spawn(move || {
                for (no, origin, dest, courier) in part {
                    for (kind, outlet, c) in [
                        ("picked_up", origin, None),
                        ("at_outlet", dest, None),
                        ("out_for_delivery", dest, courier.as_ref()),
                    ] {
                        let r = nodes.send(
                            Some(&json!({"type": kind, "outlet": outlet, "courier": c})),
                            &format!("/v1/waybills/{no}/events"),
                            integration,
                            "drive-scanner",
                        );
                        if let Err(e) = expect(&r, 200, "recording a scan") {
                            let mut f = failed.lock().unwrap_or_else(|p| p.into_inner());
                            f.get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(Setup {
        workers,
        deliveries,
        by_outlet,
        waybills: n,
        integration,
        origins: plan
            .iter()
            .map(|(no, origin, ..)| (no.clone(), origin.clone()))
            .collect(),
    })
}

/// Writes the set-up's deliveries for a load generator (see [`Args::targets`]).
fn write_targets(path: &std::path::Path, setup: &Setup) -> Result<()> {
    use std::fmt::Write;
    let mut out = String::new();
    for (i, w) in setup.workers.iter().enumerate() {
        for no in &setup.deliveries[i] {
            let origin = setup.origins.get(no).map_or("-", String::as_str);
            let _ = writeln!(out, "{} {no} {} {} {origin}", w.token, w.id, w.outlet);
        }
    }
    let _ = writeln!(out, "integration {}", setup.integration);
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

/// Has the second admin approve the enrolment a creation answered with, and redeems its code as the owner.
fn enrol(nodes: &Nodes, created: &Value, approver: &str) -> Result<String> {
    let id = created["enrolment"]["id"]
        .as_str()
        .context("an account was created without an enrolment")?;
    let r = nodes.send(
        Some(&json!({})),
        &format!("/v1/enrolments/{id}/approve"),
        approver,
        "drive-setup",
    );
    expect(&r, 200, "approving an enrolment")?;
    let code = r.body["code"]
        .as_str()
        .context("an approval came without a code")?;
    let r = nodes.send(
        Some(&json!({"enrolment": id, "code": code})),
        "/v1/enrol",
        approver,
        "drive-setup",
    );
    expect(&r, 201, "redeeming an enrolment")?;
    Ok(r.body["token"]
        .as_str()
        .context("a redeemed enrolment gave no token")?
        .to_owned())
}

/// Accounts the nodes report suspended.
fn suspended(nodes: &Nodes, admin: &str) -> Result<Vec<String>> {
    let r = nodes.send(None, "/v1/accounts", admin, "drive-setup");
    expect(&r, 200, "listing accounts")?;
    Ok(r.body
        .as_array()
        .context("the account list is not a list")?
        .iter()
        .filter(|a| a["status"] == "suspended")
        .filter_map(|a| a["id"].as_str().map(String::from))
        .collect())
}

/// Sleeps up to `d`, waking early when `stop` is set.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

/// The carrier's live traffic with the ring inside it.
fn live_day(nodes: &Nodes, setup: &Setup, args: &Args) -> (Reads, Option<RingReport>) {
    let reads = Mutex::new(Reads::default());
    let stop = AtomicBool::new(false);
    // The rented account: the first staff member of the first outlet. Its owner keeps working meanwhile.
    let ring_at = (!args.no_attack)
        .then(|| {
            setup
                .workers
                .iter()
                .position(|w| w.role == Role::OutletStaff)
        })
        .flatten();
    let mut ring = None;
    std::thread::scope(|s| {
        for (i, w) in setup.workers.iter().enumerate() {
            let (reads, stop) = (&reads, &stop);
            s.spawn(move || benign(nodes, setup, i, w, args.seed, reads, stop));
        }
        let ring_thread = ring_at.map(|i| {
            let (reads, stop) = (&reads, &stop);
            s.spawn(move || t1_ring(nodes, setup, &setup.workers[i], args, reads, stop))
        });
        std::thread::sleep(Duration::from_secs(args.seconds));
        stop.store(true, Ordering::Relaxed);
        ring = ring_thread.and_then(|t| t.join().ok());
    });
    (reads.into_inner().unwrap_or_else(|p| p.into_inner()), ring)
}

/// One honest account at a human pace: a courier checks its next delivery, staff look up a parcel of their
/// outlet (masked) and now and then handle an exception (in full).
fn benign(
    nodes: &Nodes,
    setup: &Setup,
    i: usize,
    w: &Worker,
    seed: u64,
    reads: &Mutex<Reads>,
    stop: &AtomicBool,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9));
    let device = format!("dev-{}", w.id);
    let outlet = setup.by_outlet.get(&w.outlet).cloned().unwrap_or_default();
    // Everyone starts at a different moment.
    nap(Duration::from_millis(rng.gen_range(0..4_000)), stop);
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (no, purpose) = match w.role {
            Role::Courier => match setup.deliveries[i].get(k % setup.deliveries[i].len().max(1)) {
                Some(no) => (no.clone(), "delivery"),
                None => return,
            },
            _ => match outlet.get(rng.gen_range(0..outlet.len().max(1))) {
                Some(no) if rng.gen_bool(0.1) => (no.clone(), "exception_handling"),
                Some(no) => (no.clone(), "delivery"),
                None => return,
            },
        };
        k += 1;
        let (a, took) = nodes.read(&no, purpose, &w.token, &device);
        reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&a, took);
        nap(Duration::from_millis(rng.gen_range(4_000..12_000)), stop);
    }
}

/// The T1 ring: a tool on a second device works the rented staff account, alternating the outlet's own
/// parcels as "exceptions" (served in full while nothing stops it) with other outlets' parcels (out of its
/// scope), at machine pace; it gives up a few reads after it is told the account is suspended.
fn t1_ring(
    nodes: &Nodes,
    setup: &Setup,
    w: &Worker,
    args: &Args,
    reads: &Mutex<Reads>,
    stop: &AtomicBool,
) -> RingReport {
    let mut r = RingReport {
        account: w.id.clone(),
        ..Default::default()
    };
    nap(Duration::from_secs(args.attack_after), stop);
    let own = setup.by_outlet.get(&w.outlet).cloned().unwrap_or_default();
    let others: Vec<String> = setup
        .by_outlet
        .iter()
        .filter(|(o, _)| **o != w.outlet)
        .flat_map(|(_, v)| v.iter().cloned())
        .filter(|no| !own.contains(no))
        .collect();
    eprintln!("the T1 ring starts on {}", w.id);
    let mut full = HashSet::new();
    let (mut first, mut suspended, mut refusing) = (None, false, HashSet::new());
    let mut after = 0;
    let device = "ring-tool-7f3a";
    for k in 0usize.. {
        if stop.load(Ordering::Relaxed) || after >= 2 * args.nodes.len() {
            break;
        }
        let pool = if k % 2 == 0 { &own } else { &others };
        let Some(no) = pool.get((k / 2) % pool.len().max(1)) else {
            break;
        };
        let (a, took) = nodes.read(no, "exception_handling", &w.token, device);
        let now = Instant::now();
        let t0 = *first.get_or_insert(now);
        r.reads += 1;
        reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(&a, took);
        let view = a.body["view"].as_str();
        if a.status == 200 && suspended {
            r.served_after_suspension += 1;
        }
        if a.status != 200 {
            r.refused += 1;
        }
        let contained = match (a.status, view, a.code()) {
            (200, Some("full"), _) => {
                full.insert(no.clone());
                None
            }
            (200, _, _) => {
                r.masked += 1;
                Some("masked")
            }
            (_, _, "account_suspended") => {
                refusing.insert(a.node);
                suspended = true;
                after += 1;
                Some("suspended")
            }
            (_, _, "rate_limited") => Some("rate_limited"),
            _ => None,
        };
        if let Some(c) = contained {
            if r.containment.is_none() {
                r.containment = Some(c.to_owned());
                r.seconds_to_containment = Some((now - t0).as_secs_f64());
            }
            if c == "suspended" && r.seconds_to_suspension.is_none() {
                r.seconds_to_suspension = Some((now - t0).as_secs_f64());
            }
        }
        nap(Duration::from_millis(args.attack_pace_ms), stop);
    }
    r.records_exposed = full.len() as u64;
    r.nodes_refusing_as_suspended = refusing.len();
    r
}

/// `--concurrency` couriers reading their own deliveries back to back, each read to the next node.
fn bench(nodes: &Nodes, setup: &Setup, args: &Args) -> Reads {
    let couriers: Vec<usize> = (0..setup.workers.len())
        .filter(|i| setup.workers[*i].role == Role::Courier && !setup.deliveries[*i].is_empty())
        .collect();
    let reads = Mutex::new(Reads::default());
    let until = Instant::now() + Duration::from_secs(args.seconds);
    std::thread::scope(|s| {
        for t in 0..args.concurrency {
            let Some(&i) = couriers.get(t % couriers.len().max(1)) else {
                break;
            };
            let reads = &reads;
            s.spawn(move || {
                let (w, mine) = (&setup.workers[i], &setup.deliveries[i]);
                let device = format!("dev-{}", w.id);
                let mut local = Reads::default();
                let mut k = t;
                while Instant::now() < until {
                    let (a, took) =
                        nodes.read(&mine[k % mine.len()], "delivery", &w.token, &device);
                    local.add(&a, took);
                    k += 1;
                }
                reads.lock().unwrap_or_else(|p| p.into_inner()).merge(local);
            });
        }
    });
    reads.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// The report as a few readable lines.
pub fn render(r: &DriveReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "set-up: {} accounts, {} waybills out for delivery in {:.1} s",
        r.accounts, r.waybills, r.setup_seconds
    );
    for n in &r.nodes {
        let _ = writeln!(
            out,
            "node {}: {} requests, {} guarded reads, {} failures",
            n.url, n.requests, n.reads, n.failures
        );
    }
    let answers: Vec<String> = r.answers.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(
        out,
        "{} guarded reads in {:.1} s: {:.0} reads/s, p50 {:.2} ms, p99 {:.2} ms ({})",
        r.reads,
        r.live_seconds,
        r.reads_per_second,
        r.latency_p50_ms,
        r.latency_p99_ms,
        answers.join(", ")
    );
    let _ = writeln!(
        out,
        "benign: {} accounts, {} suspended",
        r.benign_accounts,
        r.benign_suspended.len()
    );
    if let Some(g) = &r.ring {
        let secs = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.1} s"));
        let _ = writeln!(
            out,
            "T1 ring on {}: {} reads, {} records in full, {} masked, {} refused; contained ({}) after {}, \
             suspended after {}; {} of {} nodes refusing it, {} reads served after its suspension",
            g.account,
            g.reads,
            g.records_exposed,
            g.masked,
            g.refused,
            g.containment.as_deref().unwrap_or("never"),
            secs(g.seconds_to_containment),
            secs(g.seconds_to_suspension),
            g.nodes_refusing_as_suspended,
            r.nodes.len(),
            g.served_after_suspension
        );
    }
    out
}
