//! Where the time of sealing one waybill goes: the whole `seal`, and its parts — field encryption, the
//! blind-index tokens (normalisation + HMAC) and validation before it.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::{normalize_address, normalize_name, MasterKey, MemoryKeyStore, Vault};

const N: usize = 1_000;

fn seal(c: &mut Criterion) {
    let carrier = Carrier::generate(CarrierSpec::default());
    let raw = carrier.waybills(1, N);
    let valid: Vec<_> = raw
        .iter()
        .cloned()
        .map(|w| w.validated().expect("simulated waybills are valid"))
        .collect();
    let vault = Vault::open(MasterKey::generate(), Arc::new(MemoryKeyStore::default()))
        .expect("a fresh vault opens");
    let mut g = c.benchmark_group("seal");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("validate_1000", |b| {
        b.iter_batched(
            || raw.clone(),
            |batch| {
                for w in batch {
                    black_box(w.validated().expect("valid"));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("seal_1000", |b| {
        b.iter(|| {
            for w in &valid {
                black_box(vault.seal(w, 20_000).expect("seals"));
            }
        })
    });
    g.bench_function("blind_tokens_1000", |b| {
        b.iter(|| {
            for w in &valid {
                black_box(vault.blind().party(&w.recipient));
                black_box(vault.blind().party(&w.sender));
            }
        })
    });
    g.bench_function("normalise_1000", |b| {
        b.iter(|| {
            for w in &valid {
                for p in [&w.recipient, &w.sender] {
                    let a = &p.address;
                    black_box(normalize_name(&p.name));
                    black_box(normalize_address(&[
                        &a.province,
                        &a.city,
                        &a.district,
                        &a.detail,
                    ]));
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, seal);
criterion_main!(benches);
