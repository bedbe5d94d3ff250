//! The policy's share of a guarded read: a courier's full-view decision on parcels out with them, as the guard
//! asks it on every read. Run: `cargo bench -p wbg-policy --bench decide`.
//!
//! `cached` is the read path's case once a parcel is read again in a later second: both keys are built, the
//! exact one (which holds the time) misses and the time-free one answers. `uncached` asks Cedar every time, for
//! scale.
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use wbg_core::{
    Account, AccountId, AccountStatus, MerchantId, OutletId, Purpose, Role, WaybillMeta, WaybillNo,
    WaybillStatus,
};
use wbg_policy::{PolicyEngine, ReadContext, TicketFacts};

const NOW_MS: i64 = 1_800_000_000_000;
const PARCELS: usize = 2_000;

fn courier(i: usize) -> Account {
    Account {
        id: AccountId::parse(&format!("courier-{i}")).expect("an account id"),
        role: Role::Courier,
        outlet: Some(OutletId::parse(&format!("O{}", i % 67)).expect("an outlet id")),
        merchant: None,
        status: AccountStatus::Active,
        status_reason: None,
        created_at: 0,
        status_since: 0,
    }
}

fn parcel(i: usize, courier: &Account) -> WaybillMeta {
    WaybillMeta {
        waybill_no: WaybillNo::parse(&format!("WB{i:08}")).expect("a waybill number"),
        merchant: MerchantId::parse(&format!("M{}", i % 50)).expect("a merchant id"),
        origin_outlet: OutletId::parse(&format!("O{}", (i + 7) % 67)).expect("an outlet id"),
        destination_outlet: courier.outlet.clone().expect("the courier's outlet"),
        courier: Some(courier.id.clone()),
        status: WaybillStatus::OutForDelivery,
        created_at: 0,
        updated_at: 0,
        signed_at: None,
        bucket: 0,
    }
}

fn decide(c: &mut Criterion) {
    let engine = PolicyEngine::builtin().expect("the built-in policy");
    let couriers: Vec<Account> = (0..PARCELS / 10).map(courier).collect();
    let parcels: Vec<(usize, WaybillMeta)> = (0..PARCELS)
        .map(|i| (i % couriers.len(), parcel(i, &couriers[i % couriers.len()])))
        .collect();
    let ctx = |now_ms: i64| ReadContext {
        purpose: Purpose::Delivery,
        now_secs: now_ms / 1000,
        has_ticket: false,
        in_incident: false,
        in_hold: false,
        ticket: TicketFacts::default(),
        exception_outlet: None,
    };
    // The clock moves a millisecond a decision and a parcel comes round every 2,000, so its exact key is always
    // stale by then.
    let mut i = 0usize;
    let mut next = || {
        i += 1;
        let (who, w) = &parcels[(i * 7919) % PARCELS];
        (&couriers[*who], w, ctx(NOW_MS + i as i64))
    };
    let mut g = c.benchmark_group("decide_view");
    g.bench_function("cached", |b| {
        b.iter(|| {
            let (a, w, ctx) = next();
            black_box(engine.decide_view(a, w, &ctx).expect("a decision"))
        })
    });
    g.bench_function("uncached", |b| {
        b.iter(|| {
            let (a, w, ctx) = next();
            black_box(engine.decide_view_uncached(a, w, &ctx).expect("a decision"))
        })
    });
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
