//! Audit search and the account page over a large log — issue 20 asks that an account's history over 10 M audit
//! entries comes back in under 200 ms. `cargo bench -p wbg-guard --bench audit_search` (`SEARCH_ENTRIES` to
//! change the log's size, default 10,000,000; `SEARCH_DIR` to keep the store and reuse it on the next run).
//!
//! The log is a carrier's month: 20,000 accounts (couriers, staff, agents, integrations) acting on 2,000,000
//! waybills — views (3 % refused), scan events, labels, ingests — with times spread over 30 days, appended in
//! batches and indexed by the store's own upkeep. Each query is asked 200 times with a different account or
//! waybill, through the guard as an auditor asks it (permission check, search, entries decoded), and the table
//! gives p50 / p99 / max. The last rows ask with 30,000 entries appended since upkeep last ran (about a second
//! of a busy node), which a search reads past the index.
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use wbg_audit::AuditEntry;
use wbg_guard::{Actor, Guard, GuardConfig, KeyConfig, RequestMeta};
use wbg_store::{AuditCursor, AuditQuery};
use wbg_vault::MasterKey;

const ACCOUNTS: u64 = 20_000;
const WAYBILLS: u64 = 2_000_000;
const MONTH_MS: i64 = 30 * 86_400_000;

fn entry(rng: &mut rand::rngs::StdRng, start: i64, i: u64, n: u64) -> AuditEntry {
    let account = rng.gen_range(0..ACCOUNTS);
    let (id, action) = match account % 20 {
        0 => (
            format!("I{account:05}"),
            ["ingest", "event"][rng.gen_range(0..2)],
        ),
        1 | 2 => (format!("S{account:05}"), "view"),
        3 | 4 => (format!("K{account:05}"), "view"),
        _ => (
            format!("C{account:05}"),
            ["view", "view", "event", "label"][rng.gen_range(0..4)],
        ),
    };
    let mut e = AuditEntry::new(start + (i as i64) * MONTH_MS / n as i64, id, action);
    e.waybill = Some(format!("YT{:010}", rng.gen_range(0..WAYBILLS)));
    if action == "view" {
        e.purpose = Some("delivery".into());
        if rng.gen_bool(0.03) {
            e.decision = "deny".into();
            e.detail = Some("out of scope".into());
        } else {
            e.view = Some("full".into());
            e.fields = vec!["recipient.name".into(), "recipient.phone".into()];
        }
    }
    e
}

fn stats(name: &str, mut t: Vec<Duration>, rows: usize) {
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {rows} |",
        ms(t[t.len() / 2]),
        ms(t[t.len() * 99 / 100]),
        ms(t[t.len() - 1])
    );
}

fn main() {
    let n: u64 = std::env::var("SEARCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let (dir, _tmp) = match std::env::var("SEARCH_DIR") {
        Ok(d) => (std::path::PathBuf::from(d), None),
        Err(_) => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_owned(), Some(t))
        }
    };
    let key_file = dir.join("bench-master.key");
    // A bench key, kept beside the bench's store only so that SEARCH_DIR can be reused.
    let raw: [u8; 32] = match std::fs::read(&key_file) {
        Ok(b) => b.try_into().unwrap(),
        Err(_) => {
            std::fs::create_dir_all(&dir).unwrap();
            let k: [u8; 32] = rand::random();
            std::fs::write(&key_file, k).unwrap();
            k
        }
    };
    let master = MasterKey::from_bytes(raw);
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master,
            signer: None,
        },
        ..GuardConfig::embedded(dir.join("data"))
    })
    .unwrap();
    let (meta, local) = (RequestMeta::default(), Actor::Local("bench"));
    let store = guard.store().clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20);
    let start = wbg_core::now_millis() - MONTH_MS;
    let have = store.audit_size().unwrap();
    if have < n {
        let t = Instant::now();
        let mut i = have;
        while i < n {
            let k = (n - i).min(20_000);
            let batch = (i..i + k).map(|j| entry(&mut rng, start, j, n)).collect();
            store.append_audit_batch(batch).unwrap();
            i += k;
            if i % 1_000_000 < k {
                eprintln!("appended {i} entries ({:.0} s)", t.elapsed().as_secs_f64());
                store.maintain().unwrap();
            }
        }
        eprintln!("appended {n} entries in {:.0} s", t.elapsed().as_secs_f64());
    }
    // SEARCH_REINDEX=N: take the newest N entries out of the index first, to time how fast upkeep indexes a large
    // log (each entry goes into five B-trees, most of them at random places).
    if let Some(k) = std::env::var("SEARCH_REINDEX")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let db =
            rusqlite::Connection::open(dir.join("data").join(wbg_store_sqlite::SEARCH_DB_FILE))
                .unwrap();
        db.busy_timeout(Duration::from_secs(30)).unwrap();
        db.execute(
            "DELETE FROM audit_index WHERE seq >= ?1",
            [n.saturating_sub(k) as i64],
        )
        .unwrap();
        drop(db);
        let t = Instant::now();
        for _ in 0..k / 50_000 + 1 {
            store.maintain().unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "indexed the newest {k} of {n} entries in {s:.1} s: {:.0} entries/s",
            k as f64 / s
        );
    }
    // Upkeep indexes at most 50,000 entries a call.
    let t = Instant::now();
    for _ in 0..n / 50_000 + 2 {
        store.maintain().unwrap();
    }
    eprintln!("indexed in {:.0} s", t.elapsed().as_secs_f64());

    println!("\n{n} audit entries, 200 queries each, through the guard as an auditor\n");
    println!("| query | p50 ms | p99 ms | max ms | rows (last) |");
    println!("| --- | --- | --- | --- | --- |");
    let courier = |rng: &mut rand::rngs::StdRng| loop {
        let a = rng.gen_range(0..ACCOUNTS);
        if a % 20 >= 5 {
            return format!("C{a:05}");
        }
    };
    let run = |name: &str, make: &mut dyn FnMut() -> AuditQuery| {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..200 {
            let q = make();
            let t = Instant::now();
            let page = guard.search_audit(local, &q, &meta).unwrap();
            times.push(t.elapsed());
            rows = page.entries.len();
        }
        stats(name, times, rows);
    };
    let mut r = rand::rngs::StdRng::seed_from_u64(1);
    run("an account's history, first page of 50", &mut || {
        AuditQuery {
            account: Some(courier(&mut r)),
            limit: 50,
            ..AuditQuery::default()
        }
    });
    let mut r = rand::rngs::StdRng::seed_from_u64(2);
    run(
        "an account's history, a page deep in it (cursor)",
        &mut || {
            let account = courier(&mut r);
            let first = store
                .search_audit(&AuditQuery {
                    account: Some(account.clone()),
                    limit: 500,
                    ..AuditQuery::default()
                })
                .unwrap();
            let before = first.next.or(Some(AuditCursor {
                time: i64::MAX,
                seq: u64::MAX,
            }));
            AuditQuery {
                account: Some(account),
                before,
                limit: 50,
                ..AuditQuery::default()
            }
        },
    );
    let mut r = rand::rngs::StdRng::seed_from_u64(3);
    run("an account's week, 500 a page", &mut || {
        let from = start + r.gen_range(0..3 * MONTH_MS / 4);
        AuditQuery {
            account: Some(courier(&mut r)),
            from: Some(from),
            to: Some(from + 7 * 86_400_000),
            limit: 500,
            ..AuditQuery::default()
        }
    });
    let mut r = rand::rngs::StdRng::seed_from_u64(4);
    run("a waybill's every access", &mut || AuditQuery {
        waybill: Some(format!("YT{:010}", r.gen_range(0..WAYBILLS))),
        limit: 50,
        ..AuditQuery::default()
    });
    let mut r = rand::rngs::StdRng::seed_from_u64(5);
    run("an account's refused reads", &mut || AuditQuery {
        account: Some(courier(&mut r)),
        decision: Some("deny".into()),
        limit: 50,
        ..AuditQuery::default()
    });
    let mut r = rand::rngs::StdRng::seed_from_u64(6);
    run("every refusal in an hour", &mut || {
        let from = start + r.gen_range(0..MONTH_MS);
        AuditQuery {
            decision: Some("deny".into()),
            from: Some(from),
            to: Some(from + 3_600_000),
            limit: 50,
            ..AuditQuery::default()
        }
    });
    let mut r = rand::rngs::StdRng::seed_from_u64(7);
    let mut times = Vec::new();
    for _ in 0..200 {
        let id = courier(&mut r);
        let t = Instant::now();
        let d = guard.account_detail(local, &id, &meta);
        times.push(t.elapsed());
        // The bench's accounts exist only in the log: the page's lookups still run, and say 404.
        assert!(matches!(d, Err(wbg_guard::GuardError::NotFound(_))));
    }
    stats("account detail (GET /v1/accounts/{id})", times, 1);

    // About a second of a busy node appended since upkeep last ran: a search reads it past the index.
    let now = wbg_core::now_millis();
    let tail: Vec<AuditEntry> = (0..30_000)
        .map(|j| entry(&mut rng, now, j, 30_000_000))
        .collect();
    store.append_audit_batch(tail).unwrap();
    let mut r = rand::rngs::StdRng::seed_from_u64(8);
    run(
        "an account's history, 30,000 entries not yet indexed",
        &mut || AuditQuery {
            account: Some(courier(&mut r)),
            limit: 50,
            ..AuditQuery::default()
        },
    );
    store.maintain().unwrap();
}
