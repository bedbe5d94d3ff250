//! The access-event stream through a real NATS JetStream server (`NATS_URL`, set by `.ci/run`; without it the
//! test says so and passes): every published event reaches its partition's worker exactly once across a worker
//! stopped mid-partition and restarted, and the restarted worker's engine, rebuilt by replay, stands where a
//! worker that never stopped stands. Events published in a burst travel several to a message; a worker stops and
//! acknowledges at message boundaries. A message that is no access event is skipped, and a server that is not there
//! is waited out until the worker is stopped.
use std::sync::atomic::AtomicBool;
use wbg_bus::{NatsConfig, NatsSink, Worker};
use wbg_core::{Account, AccountId, AccountStatus, OutletId, Purpose, Role};
use wbg_risk::{AccessEvent, Engine, EventSink, RiskAction, RiskConfig};

/// Whether `NATS_URL` names a server to test against (saying so when it does not).
fn nats_is_set() -> bool {
    let set = std::env::var("NATS_URL").is_ok();
    if !set {
        eprintln!(
            "NATS_URL is not set: the JetStream transport is not tested here (.ci/run sets it)"
        );
    }
    set
}

fn event(account: &str, i: u64, at: i64) -> AccessEvent {
    AccessEvent {
        account: Account {
            id: AccountId::parse(account).unwrap(),
            role: Role::OutletStaff,
            outlet: Some(OutletId::parse("O001").unwrap()),
            merchant: None,
            status: AccountStatus::Active,
            status_reason: None,
            created_at: 0,
            status_since: 0,
        },
        waybill_no: format!("YT2026120{i:08}"),
        waybill: None,
        purpose: Purpose::ExceptionHandling,
        policy_view: None,
        ticket: None,
        at,
        device: Some("dev-1".into()),
        ip: None,
    }
}

#[test]
fn a_restarted_worker_loses_nothing_and_rebuilds_its_state() {
    if !nats_is_set() {
        return;
    }
    // Replay alone rebuilds the state here; the next test restarts from snapshots.
    let cfg = NatsConfig {
        prefix: format!("wbgtest{:08x}", rand::random::<u32>()),
        partitions: 4,
        snapshots: false,
        ..NatsConfig::default()
    };
    let sink = NatsSink::start(&cfg).unwrap();
    // A scraper guessing numbers among nineteen quiet accounts.
    let t0 = 1_800_000_000_000i64;
    let mut sent = Vec::new();
    for i in 0..3_000u64 {
        let account = if i % 3 == 0 {
            "S0999".to_owned()
        } else {
            format!("S{:04}", i % 19)
        };
        sent.push(event(&account, i, t0 + i as i64 * 200));
    }
    let started = std::time::Instant::now();
    publish_all(&sink, &sent);
    let publish_secs = started.elapsed().as_secs_f64();
    assert_eq!(sink.dropped(), 0);

    let p = cfg.partition_of("S0999");
    let mine: Vec<&AccessEvent> = sent
        .iter()
        .filter(|e| cfg.partition_of(e.account.id.as_str()) == p)
        .collect();
    let half = (mine.len() / 2) as u64;
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let mut suspended = 0;
    let first = Worker::new(&cfg, p, Engine::new(RiskConfig::default())).unwrap();
    let r1 = first
        .run(&stop, Some(half), &mut |ev, v| {
            seen.push(ev.waybill_no.clone());
            suspended += usize::from(v.action == RiskAction::Suspend);
        })
        .unwrap();
    assert_eq!(r1.replayed, 0);
    assert!(r1.processed >= half, "{r1:?}");
    drop(first);

    // The restart replays what was acknowledged, then takes the rest: each event once.
    let second = Worker::new(&cfg, p, Engine::new(RiskConfig::default())).unwrap();
    let consumed = std::time::Instant::now();
    let rest = mine.len() as u64 - r1.processed;
    let r2 = second
        .run(&stop, Some(rest), &mut |ev, v| {
            seen.push(ev.waybill_no.clone());
            suspended += usize::from(v.action == RiskAction::Suspend);
        })
        .unwrap();
    let consume_secs = consumed.elapsed().as_secs_f64();
    assert_eq!(
        r2.replayed, r1.processed,
        "the acknowledged part rebuilt the engine"
    );
    assert_eq!(r2.processed, rest);
    let expected: Vec<String> = mine.iter().map(|e| e.waybill_no.clone()).collect();
    assert_eq!(
        seen, expected,
        "every event of the partition once, in order"
    );
    let level = second.engine().standing("S0999").map(|s| s.level);
    assert!(suspended > 0, "the scraper is suspended: {level:?}");

    // Its engine stands where one that saw the partition straight through stands.
    let straight = Engine::new(RiskConfig::default());
    for e in &mine {
        straight.observe(e);
    }
    let (a, b) = (
        second.engine().standing("S0999").unwrap(),
        straight.standing("S0999").unwrap(),
    );
    assert_eq!(a.level, b.level);
    assert!((a.burst_score - b.burst_score).abs() < 1e-9);

    // The status counts the messages the stream holds per partition: the burst went out several events to a
    // message, and only the worked partition is drained.
    let status = wbg_bus::status(&cfg).unwrap();
    assert_eq!(status.len(), 4);
    let messages = status.iter().map(|s| s.messages).sum::<u64>();
    assert!(messages < sent.len() as u64, "{status:?}");
    for s in &status {
        let held = sent
            .iter()
            .filter(|e| cfg.partition_of(e.account.id.as_str()) == s.partition)
            .count() as u64;
        let fewest = held.div_ceil(wbg_bus::EVENTS_PER_MESSAGE as u64);
        assert!((fewest..=held).contains(&s.messages), "{s:?}");
        assert_eq!(s.drained(), s.partition == p, "{s:?}");
    }
    eprintln!(
        "JetStream: {} events published with acks in {publish_secs:.2}s ({:.0}/s, {messages} messages); {} \
         consumed and acked by a worker in {consume_secs:.2}s ({:.0}/s, replay of {} included)",
        sent.len(),
        sent.len() as f64 / publish_secs,
        rest,
        rest as f64 / consume_secs,
        r1.processed
    );
    wbg_bus::delete_stream(&cfg).unwrap();
}

#[test]
fn a_worker_restarts_from_its_snapshot_and_replays_only_the_gap() {
    if !nats_is_set() {
        return;
    }
    let cfg = NatsConfig {
        prefix: format!("wbgsnap{:08x}", rand::random::<u32>()),
        partitions: 1,
        snapshot_seconds: 3_600,
        ..NatsConfig::default()
    };
    let sink = NatsSink::start(&cfg).unwrap();
    let t0 = 1_800_000_000_000i64;
    let sent: Vec<AccessEvent> = (0..2_000u64)
        .map(|i| {
            let account = if i % 2 == 0 {
                "S0999".to_owned()
            } else {
                format!("S{:04}", i % 7)
            };
            event(&account, i, t0 + i as i64 * 300)
        })
        .collect();
    publish_all(&sink, &sent);
    let stop = AtomicBool::new(false);
    let engine = || Engine::new(RiskConfig::default());
    let mut seen = 0;
    let mut count = |_: &AccessEvent, _: &wbg_risk::RiskVerdict| seen += 1;

    // The first worker stops cleanly after some 600 events (at the end of a message) and leaves a snapshot
    // where its acknowledgements end.
    let r1 = Worker::new(&cfg, 0, engine())
        .unwrap()
        .run(&stop, Some(600), &mut count)
        .unwrap();
    let floor = wbg_bus::status(&cfg).unwrap()[0].ack_floor;
    assert_eq!((r1.restored, r1.replayed), (None, 0));
    assert!(r1.processed >= 600, "{r1:?}");
    assert_eq!(r1.snapshot, Some(floor));
    // The second takes some 500 more without snapshots of its own (as if it had died before writing one).
    let no_snapshots = NatsConfig {
        snapshots: false,
        ..cfg.clone()
    };
    let r2 = Worker::new(&no_snapshots, 0, engine())
        .unwrap()
        .run(&stop, Some(500), &mut count)
        .unwrap();
    assert_eq!(
        (r2.restored, r2.replayed, r2.snapshot),
        (None, r1.processed, None)
    );
    assert!(r2.processed >= 500, "{r2:?}");
    // The third starts from the first one's snapshot and replays only what the second took before taking the
    // rest.
    let left = 2_000 - r1.processed - r2.processed;
    let third = Worker::new(&cfg, 0, engine()).unwrap();
    let r3 = third.run(&stop, Some(left), &mut count).unwrap();
    assert_eq!(
        (r3.restored, r3.replayed, r3.processed),
        (Some(floor), r2.processed, left)
    );
    let status = wbg_bus::status(&cfg).unwrap()[0];
    assert_eq!(r3.snapshot, Some(status.messages));
    assert_eq!(seen, 2_000, "each event handled once");

    let straight = engine();
    for e in &sent {
        straight.observe(e);
    }
    for id in ["S0999", "S0003"] {
        let (a, b) = (
            third.engine().standing(id).unwrap(),
            straight.standing(id).unwrap(),
        );
        assert_eq!(a.level, b.level, "{id}");
        assert!((a.burst_score - b.burst_score).abs() < 1e-9, "{id}");
        assert!((a.drift_score - b.drift_score).abs() < 1e-9, "{id}");
    }
    assert!(wbg_bus::status(&cfg).unwrap()[0].drained());

    // A snapshot that cannot be read does not stop a worker: it replays the partition instead.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&cfg.url).await.unwrap());
        let bucket = format!("{}_RISK_STATE", cfg.prefix.to_ascii_uppercase());
        let store = js.get_object_store(&bucket).await.unwrap();
        store
            .put("partition-0", &mut &b"not a snapshot"[..])
            .await
            .unwrap();
    });
    let r4 = Worker::new(&cfg, 0, engine())
        .unwrap()
        .run(&stop, Some(0), &mut |_, _| {})
        .unwrap();
    assert_eq!((r4.restored, r4.replayed), (None, 2_000));
    wbg_bus::delete_stream(&cfg).unwrap();
}

/// Publishes `events` through a guard node's sink and waits until the stream has acknowledged all of them.
fn publish_all(sink: &NatsSink, events: &[AccessEvent]) {
    let before = sink.published();
    for ev in events {
        sink.publish(ev.clone());
    }
    let started = std::time::Instant::now();
    while sink.published() < before + events.len() as u64 {
        assert!(
            started.elapsed().as_secs() < 30,
            "published {} of {}",
            sink.published() - before,
            events.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_message_that_is_no_access_event_is_skipped_and_the_partition_goes_on() {
    if !nats_is_set() {
        return;
    }
    let cfg = NatsConfig {
        prefix: format!("wbgjunk{:08x}", rand::random::<u32>()),
        partitions: 1,
        snapshots: false,
        ..NatsConfig::default()
    };
    let sink = NatsSink::start(&cfg).unwrap();
    let t0 = 1_800_000_000_000i64;
    let before: Vec<AccessEvent> = (0..3).map(|i| event("S0101", i, t0 + i as i64)).collect();
    let after: Vec<AccessEvent> = (3..6).map(|i| event("S0101", i, t0 + i as i64)).collect();
    publish_all(&sink, &before);
    // Something else with rights on the subject puts bytes there that are no access event: a worker that
    // stopped on them would leave the partition unwatched for good (a restart meets them again).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(&cfg.url).await.unwrap());
        js.publish(cfg.subject(0), "not an access event".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    publish_all(&sink, &after);

    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let worker = Worker::new(&cfg, 0, Engine::new(RiskConfig::default())).unwrap();
    let report = worker
        .run(&stop, Some(6), &mut |ev, _| {
            seen.push(ev.waybill_no.clone())
        })
        .unwrap();
    let expected: Vec<String> = before
        .iter()
        .chain(&after)
        .map(|e| e.waybill_no.clone())
        .collect();
    assert_eq!(seen, expected, "every event around it, once, in order");
    assert_eq!((report.processed, report.skipped), (6, 1), "{report:?}");
    let status = wbg_bus::status(&cfg).unwrap();
    assert!(status[0].drained(), "{status:?}");
    drop(worker);

    // A restart replays past it too.
    let again = Worker::new(&cfg, 0, Engine::new(RiskConfig::default())).unwrap();
    let report = again.run(&stop, Some(0), &mut |_, _| {}).unwrap();
    assert_eq!(report.replayed, 6, "{report:?}");
    wbg_bus::delete_stream(&cfg).unwrap();
}

#[test]
fn a_worker_waits_out_a_bus_it_cannot_reach_until_it_is_stopped() {
    // Nothing listens on port 1: every start fails at once. The worker keeps trying (a partition left unwatched
    // is what a risk worker must never do on its own) and gives up only when told to stop.
    let cfg = NatsConfig {
        url: "nats://127.0.0.1:1".into(),
        prefix: format!("wbgdown{:08x}", rand::random::<u32>()),
        partitions: 1,
        ..NatsConfig::default()
    };
    let worker = Worker::new(&cfg, 0, Engine::new(RiskConfig::default())).unwrap();
    let stop = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(1_500));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        worker.run(&stop, None, &mut |_, _| {})
    });
    assert!(result.is_err(), "{result:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1_500),
        "it returned after {:?}, before it was stopped",
        started.elapsed()
    );
}

#[test]
fn a_sink_dropped_inside_a_runtime_sends_what_waits_and_does_not_panic() {
    if !nats_is_set() {
        return;
    }
    let cfg = NatsConfig {
        prefix: format!("wbgdrop{:08x}", rand::random::<u32>()),
        partitions: 1,
        snapshots: false,
        ..NatsConfig::default()
    };
    let sink = NatsSink::start(&cfg).unwrap();
    let t0 = 1_800_000_000_000i64;
    // Fewer than a message's worth: they wait out the linger in the queue when the sink goes.
    let sent: Vec<AccessEvent> = (0..40).map(|i| event("S0103", i, t0 + i as i64)).collect();
    for ev in &sent {
        sink.publish(ev.clone());
    }
    // A server's last holder of the guard drops it inside the server's runtime after a graceful stop.
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move { drop(sink) });

    // Every queued event reached the stream: a worker takes all of them (stopped after 30 s if not).
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watchdog = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(30));
        watchdog.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let mut seen = Vec::new();
    let r = Worker::new(&cfg, 0, Engine::new(RiskConfig::default()))
        .unwrap()
        .run(&stop, Some(sent.len() as u64), &mut |ev, _| {
            seen.push(ev.waybill_no.clone())
        })
        .unwrap();
    assert_eq!(r.processed, sent.len() as u64, "{r:?}");
    let expected: Vec<String> = sent.iter().map(|e| e.waybill_no.clone()).collect();
    assert_eq!(seen, expected);
    wbg_bus::delete_stream(&cfg).unwrap();
}
