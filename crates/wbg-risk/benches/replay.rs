//! Engine replay throughput: events per second through every detector on one core.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use wbg_core::{
    Account, AccountId, AccountStatus, MerchantId, OutletId, Purpose, Role, View, WaybillMeta,
    WaybillNo, WaybillStatus,
};
use wbg_risk::{AccessEvent, Engine, RiskConfig, RiskHook};

/// A day of mixed work: couriers on their deliveries, staff on exceptions, agents on tickets, print stations.
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
            let a = &accounts[(rnd() % accounts.len() as u64) as usize];
            let no = rnd() % 10_000_000;
            let dest = outlets[(rnd() % 200) as usize].clone();
            let status = if rnd() % 10 == 0 {
                WaybillStatus::Signed
            } else {
                WaybillStatus::OutForDelivery
            };
            let w = WaybillMeta {
                waybill_no: WaybillNo::parse(&format!("YT{no:013}")).unwrap(),
                merchant: MerchantId::parse("M001").unwrap(),
                origin_outlet: outlets[0].clone(),
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
                waybill: (rnd() % 50 != 0).then_some(w),
                purpose: Purpose::Delivery,
                policy_view: [Some(View::Full), Some(View::Masked), None][(rnd() % 3) as usize],
                ticket: None,
                // A simulated day: 1.7 s of clock between events at a million events.
                at: 1_700_000_000_000 + i as i64 * 86,
                device: Some(format!("dev-{}", a.id)),
                ip: Some("10.1.2.3".into()),
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
    let mut g = c.benchmark_group("risk");
    let chunk = &evs[..100_000];
    g.throughput(Throughput::Elements(chunk.len() as u64))
        .sample_size(10);
    g.bench_function("replay_100000", |b| {
        let engine = Engine::new(RiskConfig::default());
        b.iter(|| {
            for ev in chunk {
                black_box(engine.assess(&ev.as_access()));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
