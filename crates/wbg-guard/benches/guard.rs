//! Figures for the guarded path on the embedded store:
//! - `guarded_read/*`: one read through authenticate → policy → risk (rate limiter inline) → audit append →
//!   decrypt; p50/p99/p99.9 are printed from 20,000 timed reads before criterion's own run;
//! - `ingest/*`: batch ingest of 10,000 waybills (validate, policy, seal, store with its audit entry), and its
//!   two halves — sealing alone and the store insert alone — to show where the time goes.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wbg_core::now_millis;
use wbg_guard::{
    Actor, Engine, Guard, GuardConfig, KeyConfig, RateLimitConfig, ReadRequest, RequestMeta,
    RiskConfig,
};
use wbg_risk::Thresholds;
use wbg_sim::{Carrier, CarrierSpec};
use wbg_store::prelude::*;
use wbg_vault::{bucket_of, MasterKey};

const BATCH: usize = 10_000;

struct Fixture {
    _dir: tempfile::TempDir,
    guard: Guard,
    carrier: Carrier,
    integration: String,
    cs: String,
    staff: String,
    staff_outlet_waybills: Vec<String>,
    all: Vec<String>,
    next: u64,
}

fn fixture(waybills: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cfg = GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.path().join("data"))
    };
    let (guard, _) = Guard::open(cfg).unwrap();
    // The risk engine stays inline with every detector running, but with thresholds and a rate limit no bench run
    // reaches: the figure includes its work, not its verdicts.
    let never = Thresholds {
        alert: f64::MAX,
        mask: f64::MAX,
        suspend: f64::MAX,
    };
    let mut risk = RiskConfig::default();
    (risk.score.burst, risk.score.drift) = (never, never);
    risk.rate_limit = RateLimitConfig {
        reads_per_minute: u32::MAX,
        burst: u32::MAX,
    };
    let guard = guard.with_risk(Arc::new(Engine::new(risk)));
    let carrier = Carrier::generate(CarrierSpec::default());
    let meta = RequestMeta::default();
    let local = Actor::Local("bench");
    let (_, integration) = guard
        .create_account(local, "I-bench", "integration", None, None, &meta)
        .unwrap();
    let (_, cs) = guard
        .create_account(local, "K-bench", "customer_service", None, None, &meta)
        .unwrap();
    let outlet = carrier.outlets[0].id.to_string();
    let (_, staff) = guard
        .create_account(local, "S-bench", "outlet_staff", Some(&outlet), None, &meta)
        .unwrap();
    let mut all = Vec::new();
    let mut staff_outlet_waybills = Vec::new();
    let mut first = 1u64;
    while all.len() < waybills {
        let batch = carrier.waybills(first, BATCH);
        first += BATCH as u64;
        for w in &batch {
            all.push(w.waybill_no.to_string());
            if w.destination_outlet.as_str() == outlet || w.origin_outlet.as_str() == outlet {
                staff_outlet_waybills.push(w.waybill_no.to_string());
            }
        }
        guard
            .ingest(Actor::Token(&integration), batch, &meta)
            .unwrap();
    }
    // As a server's upkeep would have done by the time reads start: the fixture's index segments merged and its
    // write-ahead log checkpointed.
    guard.store().maintain().unwrap();
    Fixture {
        _dir: dir,
        guard,
        carrier,
        integration,
        cs,
        staff,
        staff_outlet_waybills,
        all,
        next: first,
    }
}

fn percentiles(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{label}: n={} p50={:.1}µs p99={:.1}µs p99.9={:.1}µs max={:.1}µs",
        samples.len(),
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(0.999).as_secs_f64() * 1e6,
        samples[samples.len() - 1].as_secs_f64() * 1e6
    );
}

/// Runs `work` while a thread does what the server's ticker does every second (blind-index merges, WAL
/// checkpoints), so the figures include their cost and their competition for the two cores.
fn with_upkeep<T>(guard: &Guard, work: impl FnOnce() -> T) -> T {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                guard.store().maintain().unwrap();
                for _ in 0..20 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        let out = work();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    })
}

fn guarded_read(c: &mut Criterion) {
    let f = fixture(50_000);
    with_upkeep(&f.guard, || guarded_read_cases(c, &f));
}

fn guarded_read_cases(c: &mut Criterion, f: &Fixture) {
    let meta = RequestMeta::default();
    struct Case<'a> {
        label: &'a str,
        name: &'a str,
        token: &'a str,
        purpose: &'a str,
        ticket: Option<&'a str>,
        pool: &'a [String],
    }
    let cases = [
        Case {
            label: "full (customer service with ticket, 9 fields decrypted)",
            name: "full",
            token: &f.cs,
            purpose: "customer_service",
            ticket: Some("T-1"),
            pool: &f.all,
        },
        Case {
            label: "masked (outlet staff, 6 fields decrypted and masked)",
            name: "masked",
            token: &f.staff,
            purpose: "delivery",
            ticket: None,
            pool: &f.staff_outlet_waybills,
        },
    ];
    for Case {
        label,
        name,
        token,
        purpose,
        ticket,
        pool,
    } in cases
    {
        let read = |i: usize| {
            let req = ReadRequest {
                waybill_no: &pool[i % pool.len()],
                purpose,
                ticket,
            };
            black_box(f.guard.read(token, &req, &meta).unwrap());
        };
        for i in 0..2_000 {
            read(i);
        }
        let samples = (0..20_000)
            .map(|i| {
                let t = Instant::now();
                read(i * 7919);
                t.elapsed()
            })
            .collect();
        percentiles(&format!("guarded read, {label}"), samples);
        let mut i = 0usize;
        c.bench_function(&format!("guarded_read/{name}"), |b| {
            b.iter(|| {
                i += 7919;
                read(i)
            })
        });
    }
}

fn ingest(c: &mut Criterion) {
    let f = fixture(BATCH);
    let meta = RequestMeta::default();
    let mut next = f.next;
    with_upkeep(&f.guard, || {
        let mut g = c.benchmark_group("ingest");
        g.throughput(Throughput::Elements(BATCH as u64))
            .sample_size(10)
            .measurement_time(Duration::from_secs(20));
        g.bench_function("batch_10000", |b| {
            b.iter_batched(
                || {
                    let batch = f.carrier.waybills(next, BATCH);
                    next += BATCH as u64;
                    batch
                },
                |batch| {
                    f.guard
                        .ingest(Actor::Token(&f.integration), batch, &meta)
                        .unwrap();
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    });
    // Sustained: 40 batches with the server's upkeep running beside them. The batches are generated first: the
    // figure is the guard's, not the synthetic carrier's.
    let batches: Vec<_> = (0..40u64)
        .map(|i| f.carrier.waybills(next + i * BATCH as u64, BATCH))
        .collect();
    let (n, secs, slowest) = with_upkeep(&f.guard, || {
        let t = Instant::now();
        let mut n = 0;
        let mut slowest = Duration::ZERO;
        for batch in batches {
            let b = Instant::now();
            f.guard
                .ingest(Actor::Token(&f.integration), batch, &meta)
                .unwrap();
            slowest = slowest.max(b.elapsed());
            n += BATCH;
        }
        (n, t.elapsed().as_secs_f64(), slowest)
    });
    println!(
        "ingest, sustained: {:.0} waybills/s over {n} (batches of {BATCH}, one transaction each, upkeep \
         running beside it); slowest batch {:.0} ms",
        n as f64 / secs,
        slowest.as_secs_f64() * 1e3
    );
}

/// The two halves of ingest on their own: sealing (validation, encryption, blind indexes) and the store insert.
fn ingest_halves(c: &mut Criterion) {
    use wbg_store::{SealedWaybill, Store};
    use wbg_store_sqlite::SqliteStore;
    let carrier = Carrier::generate(CarrierSpec::default());
    let vault = wbg_vault::Vault::open(
        MasterKey::generate(),
        Arc::new(wbg_vault::MemoryKeyStore::default()),
    )
    .unwrap();
    let bucket = bucket_of(now_millis());
    let seal = |first: u64| -> Vec<SealedWaybill> {
        carrier
            .waybills(first, BATCH)
            .into_iter()
            .map(|w| {
                let w = w.validated().unwrap();
                let (fields, blind) = vault.seal(&w, bucket).unwrap();
                wbg_guard::sealed_waybill(wbg_policy::prospective(&w, 0), fields, blind)
            })
            .collect()
    };
    let mut g = c.benchmark_group("ingest_halves");
    g.throughput(Throughput::Elements(BATCH as u64))
        .sample_size(10);
    let mut next = 1u64;
    g.bench_function("validate_and_seal_10000", |b| {
        b.iter_batched(
            || (),
            |_| {
                next += BATCH as u64;
                black_box(seal(next))
            },
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let entry = || wbg_audit::AuditEntry::new(0, "bench", "ingest");
    g.bench_function("store_insert_10000", |b| {
        b.iter_batched(
            || {
                next += BATCH as u64;
                seal(next)
            },
            |batch| {
                store.insert_waybills(&batch, entry()).unwrap();
                store.maintain().unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, guarded_read, ingest, ingest_halves);
criterion_main!(benches);
