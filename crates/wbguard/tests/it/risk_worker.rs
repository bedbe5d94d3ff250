//! The `wbguard risk-worker` process, as a supervisor runs it: with `--metrics-listen` it serves its own
//! Prometheus metrics (what it consumed, and the alerts it raises, which are counted in no node), and SIGTERM
//! stops it cleanly, leaving a snapshot of its engine where its partition is acknowledged, so that the next
//! start replays nothing. Runs when `DATABASE_URL` and `NATS_URL` are set (`.ci/run` sets both).
use crate::common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use wbg_bus::NatsSink;
use wbg_core::{Account, AccountId, AccountStatus, OutletId, Purpose, Role};
use wbg_risk::{AccessEvent, EventSink};

const EVENTS: u64 = 40;

/// Asks `f` every `every` until it gives a value; once `limit` has passed, fails with what `f` last said.
fn poll<T>(limit: Duration, every: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) => assert!(started.elapsed() < limit, "{why}"),
        }
        std::thread::sleep(every);
    }
}

/// Waits for the line that says the worker watches its signals and consumes; returns the metrics URL.
fn wait_started(w: &mut RiskWorker) -> String {
    poll(Duration::from_secs(30), Duration::from_millis(50), || {
        let log = w.log();
        let url = log
            .lines()
            .find_map(|l| l.strip_prefix("metrics on "))
            .map(str::to_owned);
        if let (Some(url), true) = (url, log.contains("risk worker for partition 0")) {
            return Ok(url);
        }
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "the worker ended:\n{log}"
        );
        Err(format!("not started:\n{log}"))
    })
}

/// SIGTERM, then the exit status within 20 s.
fn terminate(w: &mut RiskWorker) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &w.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    poll(Duration::from_secs(20), Duration::from_millis(50), || {
        w.child
            .try_wait()
            .unwrap()
            .ok_or_else(|| format!("SIGTERM did not stop the worker:\n{}", w.log()))
    })
}

/// A sample's value in Prometheus text (the first series of that name).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

fn event(i: u64, at: i64) -> AccessEvent {
    AccessEvent {
        account: Account {
            id: AccountId::parse(&format!("S000{}", i % 4)).unwrap(),
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
fn a_worker_serves_its_metrics_and_stops_cleanly_on_sigterm() {
    let dirs = Dirs::new("");
    // Only the snapshot a clean stop leaves is taken in this test's time.
    let Some((_schema, bus)) = pg_and_nats(&dirs, "worker", 1, 3_600) else {
        return;
    };
    dirs.migrate();

    let args = ["--metrics-listen", "127.0.0.1:0"];
    let mut worker = RiskWorker::start(&dirs, &dirs.config, 0, "worker-0", &args);
    let url = wait_started(&mut worker);
    let client = reqwest::blocking::Client::new();
    let metrics = || client.get(&url).send().unwrap().text().unwrap();
    // Described and present before the first event: a rate exists from the start.
    let text = metrics();
    for name in [
        "wbguard_risk_worker_events_total",
        "wbguard_risk_worker_skipped_total",
        "wbguard_risk_worker_bus_failures_total",
        "wbguard_alerts_total",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
    }
    assert_eq!(sample(&text, "wbguard_risk_worker_events_total"), Some(0.0));

    // Quiet reads by four accounts, two seconds apart: the engine raises nothing.
    let sink = NatsSink::start(&bus).unwrap();
    let t0 = 1_800_000_000_000i64;
    for i in 0..EVENTS {
        sink.publish(event(i, t0 + i as i64 * 2_000));
    }
    let text = poll(Duration::from_secs(30), Duration::from_millis(100), || {
        let text = metrics();
        if sample(&text, "wbguard_risk_worker_events_total") == Some(EVENTS as f64) {
            return Ok(text);
        }
        Err(format!(
            "the worker's metrics never showed the {EVENTS} events:\n{text}\n{}",
            worker.log()
        ))
    });
    let acked = sample(&text, "wbguard_risk_worker_acked_sequence").expect("the acked sequence");
    assert!(acked >= 1.0, "{text}");
    assert_eq!(
        sample(&text, "wbguard_risk_worker_bus_failures_total"),
        Some(0.0)
    );
    assert!(
        !text.contains("S000"),
        "no account (let alone personal data) in the metrics:\n{text}"
    );

    // A supervisor's stop: exit 0, with the engine's state saved where the partition is acknowledged.
    let status = terminate(&mut worker);
    let log = worker.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        log.contains(&format!(
            "stopped: replayed 0, processed {EVENTS}, skipped 0; last snapshot at stream sequence {acked}"
        )),
        "{log}"
    );

    // So the next start begins from that snapshot and replays nothing.
    let mut again = RiskWorker::start(&dirs, &dirs.config, 0, "worker-1", &args);
    wait_started(&mut again);
    let status = terminate(&mut again);
    let log = again.log();
    assert!(status.success(), "{status}:\n{log}");
    assert!(
        log.contains("stopped: replayed 0, processed 0, skipped 0"),
        "{log}"
    );
    drop(sink);
    wbg_bus::delete_stream(&bus).unwrap();
}
