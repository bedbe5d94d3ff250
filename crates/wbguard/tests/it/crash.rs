//! An acknowledged write survives `kill -9`: the server is SIGKILLed in the middle of batch ingest, restarted,
//! and every acknowledged waybill is there, and the audit log verifies.
use crate::common;

use common::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn sigkill_during_batch_ingest_loses_no_acknowledged_waybill() {
    let dirs = Dirs::new("[risk.rate_limit]\nreads_per_minute = 100000000\nburst = 100000000");
    let admin = dirs.create_account("root", "admin", None);
    let mut s = Server::start(&dirs, "warn");
    let integ = s.account(&admin, "I1", "integration", None, None);
    let auditor = s.account(&admin, "A1", "auditor", None, None);
    let base = s.base.clone();

    let acked: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            for batch in 0..10_000u32 {
                let nos: Vec<String> = (0..100).map(|i| format!("K{batch:05}{i:03}")).collect();
                let body = json!({"waybills": nos.iter().map(|n| waybill(n, "M1", "O1", "O2", "张三", "13800001111", "一路1号")).collect::<Vec<_>>()});
                match client
                    .post(format!("{base}/v1/waybills"))
                    .bearer_auth(&integ)
                    .json(&body)
                    .send()
                {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().extend(nos),
                    _ => return batch,
                }
            }
            10_000
        })
    };
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 3_000 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill(); // SIGKILL, mid-stream
    let stopped_at = writer.join().unwrap();
    assert!(stopped_at < 10_000, "the writer saw the server die");
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 3_000,
        "only {} acknowledged before the kill",
        acked.len()
    );

    let s = Server::start(&dirs, "warn");
    for no in &acked {
        let r = s.get(
            &format!("/v1/waybills/{no}?purpose=breach_notification"),
            Some(&auditor),
        );
        assert_eq!(r.status(), 200, "acknowledged waybill {no} is gone");
        assert_eq!(r.json::<Value>().unwrap()["view"], "routing");
    }
    drop(s);
    let out = dirs.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit log intact"));
}
