//! `wbguard bus`: where each partition of the NATS access-event stream stands (`status`), and how many events a
//! second go through it (`bench`: published with acknowledgements by a guard node's sink, consumed and
//! acknowledged by risk workers) on a stream of its own that it deletes afterwards.
use anyhow::{bail, Result};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use wbg_bus::{NatsConfig, NatsSink, Worker};
use wbg_core::{
    Account, AccountId, AccountStatus, MerchantId, OutletId, Purpose, Role, WaybillMeta, WaybillNo,
    WaybillStatus,
};
use wbg_risk::{AccessEvent, Engine, EventSink, RiskConfig};

/// The partitions as a table.
pub fn status(cfg: &NatsConfig) -> Result<String> {
    use std::fmt::Write;
    let mut out = format!(
        "{:>9} {:>10} {:>9} {:>10} {:>14} {:>11}  worker\n",
        "partition", "messages", "pending", "unacked", "redelivered", "ack floor"
    );
    for p in wbg_bus::status(cfg)? {
        let _ = writeln!(
            out,
            "{:>9} {:>10} {:>9} {:>10} {:>14} {:>11}  {}",
            p.partition,
            p.messages,
            p.pending,
            p.unacknowledged,
            p.redelivered,
            p.ack_floor,
            match (p.consumer, p.drained()) {
                (false, _) => "none yet",
                (true, true) => "caught up",
                (true, false) => "behind",
            }
        );
    }
    Ok(out)
}

/// A plausible access: a courier of one of 64 outlets reading a delivery of its outlet.
fn event(i: u64, at: i64) -> Result<AccessEvent> {
    let outlet = OutletId::parse(&format!("O{:03}", i % 64 + 1))?;
    let account = AccountId::parse(&format!("C{:03}{:02}", i % 64 + 1, i / 64 % 20 + 1))?;
    let no = WaybillNo::parse(&wbg_sim::waybill_no(i + 1))?;
    Ok(AccessEvent {
        account: Account {
            id: account.clone(),
            role: Role::Courier,
            outlet: Some(outlet.clone()),
            merchant: None,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: 0,
            status_since: 0,
        },
        waybill_no: no.as_str().to_owned(),
        waybill: Some(WaybillMeta {
            waybill_no: no,
            merchant: MerchantId::parse("M001")?,
            origin_outlet: OutletId::parse("O001")?,
            destination_outlet: outlet,
            courier: Some(account),
            status: WaybillStatus::OutForDelivery,
            created_at: at - 3_600_000,
            updated_at: at - 600_000,
            signed_at: None,
            bucket: at / 86_400_000,
        }),
        purpose: Purpose::Delivery,
        policy_view: None,
        ticket: None,
        at,
        device: Some(format!("dev-{}", i % 1280)),
        ip: Some("10.0.0.1".into()),
    })
}

/// Publishes `events` through a sink, then consumes every partition with one worker after another; prints
/// both rates. Works on `<prefix>bench<random>`, deleted at the end.
pub fn bench(cfg: &NatsConfig, events: u64) -> Result<String> {
    if !(1..=10_000_000).contains(&events) {
        bail!("--events must be within 1..=10000000");
    }
    let cfg = NatsConfig {
        prefix: format!("{}bench{:08x}", cfg.prefix, rand::random::<u32>()),
        queue: cfg.queue.max(events as usize),
        ..cfg.clone()
    };
    let result = run_bench(&cfg, events);
    let cleanup = wbg_bus::delete_stream(&cfg);
    let out = result?;
    cleanup?;
    Ok(out)
}

fn run_bench(cfg: &NatsConfig, events: u64) -> Result<String> {
    let t0 = 1_800_000_000_000i64;
    let batch: Vec<AccessEvent> = (0..events)
        .map(|i| event(i, t0 + i as i64))
        .collect::<Result<_>>()?;
    let mut per_partition = vec![0u64; cfg.partitions.max(1) as usize];
    for ev in &batch {
        per_partition[cfg.partition_of(ev.account.id.as_str()) as usize] += 1;
    }
    let sink = NatsSink::start(cfg)?;
    let started = Instant::now();
    for ev in batch {
        sink.publish(ev);
    }
    while sink.published() + sink.dropped() < events {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("published {} of {events} in 10 minutes", sink.published());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let publish = started.elapsed().as_secs_f64();
    let published = sink.published();
    drop(sink);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut consumed = 0;
    let mut messages = 0;
    for p in wbg_bus::status(cfg)? {
        messages += p.messages;
        let events = per_partition[p.partition as usize];
        if p.messages == 0 || events == 0 {
            continue;
        }
        let worker = Worker::new(cfg, p.partition, Engine::new(RiskConfig::default()))?;
        consumed += worker.run(&stop, Some(events), &mut |_, _| {})?.processed;
    }
    let consume = started.elapsed().as_secs_f64();
    Ok(format!(
        "{published} access events published with JetStream acknowledgements in {publish:.2} s: {:.0} events/s \
         ({messages} messages)\n\
         {consumed} consumed through the risk engine and acknowledged, {} partitions worked one after another by \
         one worker each, in {consume:.2} s: {:.0} events/s per worker\n",
        published as f64 / publish.max(1e-9),
        cfg.partitions,
        consumed as f64 / consume.max(1e-9)
    ))
}
