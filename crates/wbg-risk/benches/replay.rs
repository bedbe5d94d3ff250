//! Engine replay throughput: events per second through every detector on one core.
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use wbg_core::{
    Account, AccountId, AccountStatus, MerchantId, OutletId, Purpose, Role, View, WaybillMeta,
    WaybillNo, WaybillStatus,
};
use wbg_risk::{AccessEvent, Engine, RiskConfig, RiskHook};

/// A day of mixed work: couriers on their deliveries, staff on exceptions, agents on tickets, print stations;
/// mostly granted reads, with the occasional refusal, unknown number, delivered parcel and network change.
fn events(n: usize) -> Vec<AccessEvent> {
    let outlets: Vec<OutletId> = (0..200)
        .map(|i| OutletId::parse(&format!("O{i:03}")).unwrap())
        .collect();
    let roles = [
        Role::Courier,
        Role::Courier,
        Role::Courier,
        Role::OutletStaff,
        Role::CustomerService,
        Role::PrintStation,
    ];
    let accounts: Vec<Account> = (0..6_000)
        .map(|i| Account {
            id: AccountId::parse(&format!("A{i:05}")).unwrap(),
            role: roles[i % roles.len()],
            outlet: Some(outlets[i % outlets.len()].clone()),
            merchant: None,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: 0,
            status_since: 0,
        })
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let k = (rnd() % accounts.len() as u64) as usize;
            let a = &accounts[k];
            let no = rnd() % 10_000_000;
            let own = a.outlet.clone().unwrap();
            let elsewhere = outlets[(rnd() % 200) as usize].clone();
            let roll = rnd() % 100;
            // What each role's ordinary work looks like.
            let (origin, dest, status, purpose, view, ticket) = match a.role {
                Role::Courier => (
                    elsewhere,
                    own,
                    WaybillStatus::OutForDelivery,
                    Purpose::Delivery,
                    if roll < 90 { View::Full } else { View::Masked },
                    None,
                ),
                Role::OutletStaff => (
                    elsewhere,
                    own,
                    WaybillStatus::AtOutlet,
                    Purpose::ExceptionHandling,
                    if roll < 3 { View::Full } else { View::Masked },
                    None,
                ),
                Role::CustomerService => (
                    own,
                    elsewhere,
                    WaybillStatus::InTransit,
                    Purpose::CustomerService,
                    if roll < 20 { View::Full } else { View::Masked },
                    Some(format!("T{}", rnd() % 100_000)),
                ),
                _ => (
                    own,
                    elsewhere,
                    WaybillStatus::Created,
                    Purpose::Label,
                    View::Masked,
                    None,
                ),
            };
            let status = if rnd() % 100 == 0 && a.role == Role::Courier {
                WaybillStatus::Signed
            } else {
                status
            };
            let w = WaybillMeta {
                waybill_no: WaybillNo::parse(&format!("YT{no:013}")).unwrap(),
                merchant: MerchantId::parse("M001").unwrap(),
                origin_outlet: origin,
                destination_outlet: dest,
                courier: Some(a.id.clone()),
                status,
                created_at: 0,
                updated_at: 0,
                signed_at: None,
                bucket: 0,
            };
            AccessEvent {
                account: a.clone(),
                waybill_no: w.waybill_no.to_string(),
                // One in a hundred asks for a number that does not exist; one in two hundred is refused.
                waybill: (rnd() % 100 != 0).then_some(w),
                purpose,
                policy_view: (rnd() % 200 != 0).then_some(view),
                ticket,
                // A simulated day: 1.7 s of clock between events at a million events.
                at: 1_700_000_000_000 + i as i64 * 86,
                device: Some(format!("dev-{}", a.id)),
                ip: Some(format!("10.{}.{}.7", k % 250, u8::from(rnd() % 200 == 0))),
            }
        })
        .collect()
}

fn replay(c: &mut Criterion) {
    let evs = events(1_000_000);
    // A plain figure first, as the issue asks for events per second.
    let engine = Engine::new(RiskConfig::default());
    let t = Instant::now();
    for ev in &evs {
        black_box(engine.assess(&ev.as_access()));
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "risk engine replay: {:.0} events/s on one thread ({} events, 6,000 accounts, every detector on)",
        evs.len() as f64 / secs,
        evs.len()
    );
    let mut levels = std::collections::BTreeMap::new();
    let mut detectors = std::collections::BTreeMap::new();
    for i in 0..6_000 {
        if let Some(s) = engine.standing(&format!("A{i:05}")) {
            *levels.entry(format!("{:?}", s.level)).or_insert(0) += 1;
            for sig in s.signals {
                *detectors.entry(sig.detector).or_insert(0) += 1;
            }
        }
    }
    println!(
        "  accounts by level after the day: {levels:?}; recent signals by detector: {detectors:?}"
    );

    // Criterion: each iteration replays 100,000 events as a new day for the same engine.
    let mut g = c.benchmark_group("risk");
    let chunk = &evs[..100_000];
    g.throughput(Throughput::Elements(chunk.len() as u64))
        .sample_size(10);
    let engine = Engine::new(RiskConfig::default());
    let mut day = 0;
    g.bench_function("replay_100000", |b| {
        b.iter_batched_ref(
            || {
                day += 1;
                let mut evs = chunk.to_vec();
                evs.iter_mut().for_each(|e| e.at += day * 86_400_000);
                evs
            },
            |evs| {
                for ev in evs.iter() {
                    black_box(engine.assess(&ev.as_access()));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
