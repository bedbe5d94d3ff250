//! Scale-out on one machine, every part a real process: two `wbguard serve` nodes on one PostgreSQL schema,
//! two `wbguard risk-worker`s on one NATS JetStream stream of two partitions (snapshots every 2 s), and
//! `wbguard drive` sending a live synthetic carrier with a T1 ring (a rented staff account worked by a tool on a
//! second device) to both nodes in turn. The worker owning the ring's partition is SIGKILLed as the ring
//! starts, and restarted. Afterwards: every event the nodes published is in the stream and was acknowledged by
//! a worker (counted against the nodes' metrics and the driver's reads), the ring was contained with at most 50
//! full records and refused by both nodes, the workers' alerts reached their webhook, a canary planted through
//! one node trips on the other, no honest account was suspended, and the audit log in PostgreSQL verifies.
//! Runs when `DATABASE_URL` and `NATS_URL` are set (`.ci/run` sets both).
use crate::common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The ring's account: `drive` rents the first staff member of the first outlet.
const RING: &str = "S00101";

/// The workers' config: the nodes' plus a webhook, so every alert that reaches it is a worker's.
fn worker_config(dirs: &Dirs) -> std::path::PathBuf {
    dirs.root.path().join("worker.toml")
}

fn worker(dirs: &Dirs, partition: u32, n: usize) -> RiskWorker {
    RiskWorker::start(
        dirs,
        &worker_config(dirs),
        partition,
        &format!("worker{partition}-{n}"),
        &[],
    )
}

/// A counter's value in a node's Prometheus text (0 when it was never incremented).
fn counter(node: &Server, name: &str) -> u64 {
    let text = node.get("/metrics", None).text().unwrap();
    text.lines()
        .filter(|l| l.split_whitespace().next() == Some(name))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn two_nodes_and_two_workers_contain_t1_through_a_worker_crash() {
    let dirs = Dirs::new("");
    let Some((_schema, bus)) = pg_and_nats(&dirs, "cluster", 2, 2) else {
        return;
    };
    let config = std::fs::read_to_string(&dirs.config).unwrap();
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let worker_webhook = format!("http://{}/alerts", hook.local_addr().unwrap());
    let hooked = collect_posts(hook);
    std::fs::write(
        worker_config(&dirs),
        format!("{config}[webhook]\nurl = \"{worker_webhook}\"\n"),
    )
    .unwrap();
    dirs.migrate();
    let admin = dirs.create_account("root", "admin", None);
    let nodes = [
        Server::start_node(&dirs, 0, "info"),
        Server::start_node(&dirs, 1, "info"),
    ];
    let mut workers = [worker(&dirs, 0, 0), worker(&dirs, 1, 0)];
    let ring_partition = bus.partition_of(RING) as usize;

    let mut drive = Command::new(BIN)
        .args(["drive", "--json", "--seed", "3", "--seconds", "40"])
        .args(["--attack-after", "8", "--attack-pace-ms", "150"])
        .args(["--nodes", &format!("{},{}", nodes[0].base, nodes[1].base)])
        .env("WBGUARD_ADMIN_TOKEN", &admin)
        .env(
            "WBGUARD_APPROVER_TOKEN",
            dirs.approver.lock().unwrap().clone().unwrap(),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = drive.stderr.take().unwrap();
    let forward = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Kill the ring's worker a second into the attack (SIGKILL: nothing is flushed or acknowledged on the way
    // out), and start a new one two seconds later.
    let started = Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(180).saturating_sub(started.elapsed()))
            .expect("the ring never started");
        if line.contains("T1 ring starts") {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let killed = &mut workers[ring_partition].child;
    killed.kill().unwrap();
    let status = killed.wait().unwrap();
    assert!(!status.success(), "the worker died of the signal");
    let killed_log = workers[ring_partition].log.clone();
    std::thread::sleep(Duration::from_secs(2));
    workers[ring_partition] = worker(&dirs, ring_partition as u32, 1);

    let out = drive.wait_with_output().unwrap();
    let drive_log = forward.join().unwrap();
    assert!(out.status.success(), "{drive_log}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());

    // Both nodes served the carrier.
    for n in report["nodes"].as_array().unwrap() {
        assert!(n["reads"].as_u64().unwrap() > 20, "{n}");
        assert_eq!(n["failures"], 0, "{n}");
    }
    // The ring was contained within 50 records, and once suspended no node served it again.
    let ring = &report["ring"];
    assert_eq!(ring["account"], RING);
    assert!(ring["records_exposed"].as_u64().unwrap() <= 50, "{ring}");
    assert!(!ring["containment"].is_null(), "{ring}");
    assert!(!ring["seconds_to_suspension"].is_null(), "{ring}");
    assert_eq!(ring["served_after_suspension"], 0, "{ring}");
    assert_eq!(ring["nodes_refusing_as_suspended"], 2, "{ring}");
    assert_eq!(
        report["benign_suspended"].as_array().unwrap().len(),
        0,
        "{report}"
    );
    let accounts: Value = nodes[1].get("/v1/accounts", Some(&admin)).json().unwrap();
    let ring_account = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == RING)
        .unwrap();
    assert_eq!(ring_account["status"], "suspended");
    assert!(
        ring_account["status_reason"]
            .as_str()
            .unwrap()
            .contains("risk"),
        "{ring_account}"
    );

    // The workers' alerts reach the webhook as the nodes' do: among them, the ring's.
    let waited = Instant::now();
    while !hooked
        .lock()
        .unwrap()
        .iter()
        .any(|b| b.contains(&format!("\"account\":\"{RING}\"")))
    {
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "{:?}",
            hooked.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // No event lost: what the nodes had acknowledged by the stream is what it holds, and the workers (the
    // restarted one too) have acknowledged all of it.
    let waited = Instant::now();
    let partitions = loop {
        let s = wbg_bus::status(&bus).unwrap();
        if s.iter().all(|p| p.drained()) {
            break s;
        }
        // A worker that ended (it must not, whatever the bus did) or a partition not drained in a minute: what
        // each worker said is what tells a dead one from a stuck or a slow one.
        let ended = workers
            .iter_mut()
            .any(|w| !matches!(w.child.try_wait(), Ok(None)));
        if ended || waited.elapsed() > Duration::from_secs(60) {
            let logs: Vec<String> = [&killed_log, &workers[0].log, &workers[1].log]
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p).unwrap_or_default();
                    format!("--- {}\n{text}", p.display())
                })
                .collect();
            panic!("a worker ended: {ended}; {s:?}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("{partitions:?}");
    let held: u64 = partitions.iter().map(|p| p.messages).sum();
    let published: u64 = nodes
        .iter()
        .map(|n| counter(n, "wbguard_bus_messages_published_total"))
        .sum();
    let events: u64 = nodes
        .iter()
        .map(|n| counter(n, "wbguard_bus_events_published_total"))
        .sum();
    let lost: u64 = nodes
        .iter()
        .map(|n| {
            counter(n, "wbguard_bus_events_dropped_total")
                + counter(n, "wbguard_bus_publish_failures_total")
        })
        .sum();
    assert_eq!(lost, 0);
    assert_eq!(held, published, "{partitions:?}");
    assert!(held <= events, "{held} messages carry {events} events");
    // Every read is assessed (one event) except those of an account already suspended, which the guard refuses
    // before the engine.
    let reads = report["reads"].as_u64().unwrap();
    let suspended_answers = report["answers"]["account_suspended"].as_u64().unwrap_or(0);
    assert!(
        events <= reads && reads <= events + suspended_answers,
        "{events} events for {reads} reads ({suspended_answers} refused as suspended)"
    );
    assert!(partitions.iter().all(|p| p.messages > 0), "{partitions:?}");
    // The restarted worker rebuilt its state from its predecessor's latest snapshot (taken every 2 s) and the
    // events acknowledged after it.
    let restarted = std::fs::read_to_string(&workers[ring_partition].log).unwrap();
    let restored: u64 = restarted
        .lines()
        .find(|l| l.contains("rebuilt its state"))
        .and_then(|l| l.split("restored=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{restarted}"));
    assert!(
        restored > 0,
        "it started from its predecessor's snapshot: {restarted}"
    );
    assert!(!std::fs::read_to_string(&killed_log)
        .unwrap()
        .contains("panicked"));

    // A canary planted through one node trips when it is read through the other (each node reloads them from
    // the shared store every second).
    let auditor = nodes[0].account(&admin, "A0990", "auditor", None, None);
    let staff = nodes[0].account(&admin, "S09901", "outlet_staff", Some("O001"), None);
    let r = nodes[0].post(
        "/v1/forensics/canaries",
        Some(&auditor),
        &serde_json::json!({"account": "S09901", "count": 1}),
    );
    assert_eq!(r.status(), 201);
    let canary = r.json::<Value>().unwrap()["waybills"][0]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_millis(2_500));
    let r = nodes[1].get(
        &format!("/v1/waybills/{canary}?purpose=delivery"),
        Some(&staff),
    );
    assert_eq!(r.status(), 200);
    let alerts: Value = nodes[1]
        .get("/v1/alerts?account=S09901&kind=canary_read", Some(&auditor))
        .json()
        .unwrap();
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts}");

    // A threshold change applied through one node reaches the other node and both workers' own engines.
    let now: Value = nodes[0]
        .get("/v1/risk/thresholds", Some(&auditor))
        .json()
        .unwrap();
    let b = &now["score"]["burst"];
    let proposal = serde_json::json!({
        "burst": {"alert": b["alert"].as_f64().unwrap() + 1.0, "mask": b["mask"].as_f64().unwrap() + 1.0,
                  "suspend": b["suspend"].as_f64().unwrap() + 1.0},
        "reason": "workload_changed", "accept_confirmed": true});
    let r = nodes[0].post("/v1/risk/thresholds", Some(&auditor), &proposal);
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let other: Value = nodes[1]
            .get("/v1/risk/thresholds", Some(&auditor))
            .json()
            .unwrap();
        let logs: Vec<String> = workers
            .iter()
            .map(|w| std::fs::read_to_string(&w.log).unwrap_or_default())
            .collect();
        let adopted = logs
            .iter()
            .all(|l| l.contains("risk thresholds changed over the API are in force"));
        if other["source"] == "change" && adopted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change did not reach node 2 ({other}) or every worker"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    drop(workers);
    drop(nodes);
    dirs.assert_audit_intact();
    wbg_bus::delete_stream(&bus).unwrap();
}
