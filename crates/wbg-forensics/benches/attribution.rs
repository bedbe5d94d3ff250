//! Attribution against a large access index: a 1,000-record leak (70 % one attacker's take, 30 % other
//! customers) ranked against the index of `WBG_BENCH_ENTRIES` audit entries (default 100,000,000).
//!
//! The index is generated the way a carrier's log fills it: each waybill read about ten times in its life by
//! the couriers, staff and print station of its outlets and now and then by a customer-service agent (repeat
//! reads of one waybill by one principal fold into one row, as the real index folds them), plus one attacker
//! who read 1,000 waybills across the network in full. It is built once into `WBG_BENCH_DIR` (default
//! `target/attribution-bench`) and reused; building 100 M entries takes several minutes and ~5 GB.
//!
//! Run: `cargo bench -p wbg-forensics --bench attribution` (or with `WBG_BENCH_ENTRIES=1000000` for a quick
//! look). Prints build time, index size and the ranking time, cold and warm.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::Instant;
use wbg_forensics::{rank, AccessIndex, Marks, Matching, Posting, Principal, RecordMatch, Shown};

const OUTLETS: u32 = 2_000;
const COURIERS_PER_OUTLET: u32 = 10;
const STAFF_PER_OUTLET: u32 = 2;
const AGENTS: u32 = 600;
const READS_PER_WAYBILL: u64 = 10;
const TAKE: usize = 1_000;

fn waybill(n: u64) -> String {
    format!("YT{n:013}")
}

/// Principal ids: couriers, then staff, then print stations (one per outlet), then agents, then the attacker.
fn courier(outlet: u32, k: u32) -> u32 {
    outlet * COURIERS_PER_OUTLET + k
}
fn staff(outlet: u32, k: u32) -> u32 {
    OUTLETS * COURIERS_PER_OUTLET + outlet * STAFF_PER_OUTLET + k
}
fn station(outlet: u32) -> u32 {
    OUTLETS * (COURIERS_PER_OUTLET + STAFF_PER_OUTLET) + outlet
}
fn agent(k: u32) -> u32 {
    OUTLETS * (COURIERS_PER_OUTLET + STAFF_PER_OUTLET + 1) + k
}
const ATTACKER: u32 = OUTLETS * (COURIERS_PER_OUTLET + STAFF_PER_OUTLET + 1) + AGENTS;

fn names() -> Vec<Principal> {
    let mut v = Vec::new();
    for o in 0..OUTLETS {
        for k in 0..COURIERS_PER_OUTLET {
            v.push((courier(o, k), format!("C{o:04}{k:02}")));
        }
    }
    for o in 0..OUTLETS {
        for k in 0..STAFF_PER_OUTLET {
            v.push((staff(o, k), format!("S{o:04}{k:02}")));
        }
    }
    for o in 0..OUTLETS {
        v.push((station(o), format!("P{o:04}")));
    }
    for k in 0..AGENTS {
        v.push((agent(k), format!("K{k:04}")));
    }
    v.push((ATTACKER, "X-ATTACKER".to_owned()));
    v.sort();
    v.into_iter()
        .map(|(_, name)| Principal {
            name,
            full: 0,
            seen: 0,
        })
        .collect()
}

/// The rows of waybill `n`: who read it, how much, with audit seqs from `seq`.
fn rows_of(n: u64, rng: &mut StdRng, seq: &mut u64, taken: bool) -> BTreeMap<u32, Posting> {
    let origin = rng.gen_range(0..OUTLETS);
    let dest = rng.gen_range(0..OUTLETS);
    let day = (n / 100_000) as i64 * 86_400_000 + 1_700_000_000_000;
    let mut rows: BTreeMap<u32, Posting> = BTreeMap::new();
    let mut add = |who: u32, shown: Shown, seq: &mut u64, rng: &mut StdRng| {
        let at = day + rng.gen_range(0..3 * 86_400_000);
        let s = *seq;
        *seq += 1;
        let e = rows.entry(who).or_insert(Posting {
            principal: who,
            shown,
            first_seq: s,
            first_at: at,
            last_at: at,
            full_seq: (shown == Shown::Full).then_some(s),
        });
        e.shown = e.shown.max(shown);
        e.last_at = e.last_at.max(at);
        if shown == Shown::Full && e.full_seq.is_none() {
            e.full_seq = Some(s);
        }
    };
    let mut reads = 0;
    // The label, the scans at both outlets, the delivering courier (twice), a staff look.
    add(station(origin), Shown::Masked, seq, rng);
    add(
        staff(origin, rng.gen_range(0..STAFF_PER_OUTLET)),
        Shown::Masked,
        seq,
        rng,
    );
    add(
        staff(dest, rng.gen_range(0..STAFF_PER_OUTLET)),
        Shown::Masked,
        seq,
        rng,
    );
    let c = courier(dest, rng.gen_range(0..COURIERS_PER_OUTLET));
    add(c, Shown::Masked, seq, rng);
    add(c, Shown::Full, seq, rng);
    add(c, Shown::Full, seq, rng);
    reads += 6;
    while reads < READS_PER_WAYBILL {
        match rng.gen_range(0..10) {
            0 => add(agent(rng.gen_range(0..AGENTS)), Shown::Full, seq, rng),
            1..=3 => add(
                courier(dest, rng.gen_range(0..COURIERS_PER_OUTLET)),
                Shown::Masked,
                seq,
                rng,
            ),
            _ => add(
                staff(dest, rng.gen_range(0..STAFF_PER_OUTLET)),
                Shown::Masked,
                seq,
                rng,
            ),
        }
        reads += 1;
    }
    if taken {
        add(ATTACKER, Shown::Full, seq, rng);
    }
    rows
}

fn main() {
    let entries: u64 = std::env::var("WBG_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000_000);
    let dir = std::env::var("WBG_BENCH_DIR").map_or_else(
        |_| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/attribution-bench")
        },
        std::path::PathBuf::from,
    );
    let waybills = entries / READS_PER_WAYBILL;
    let dir = dir.join(format!("{entries}"));
    std::fs::create_dir_all(&dir).expect("bench directory");
    // The attacker's take: every (waybills / TAKE)-th waybill, so it spans the whole log.
    let stride = (waybills / TAKE as u64).max(1);
    let taken = |n: u64| n % stride == 7 % stride && n / stride < TAKE as u64;

    let mut index = AccessIndex::open_in(&dir).expect("index");
    if index.indexed_through().expect("index") < entries {
        drop(index);
        for f in ["forensics.db", "forensics.db-wal", "forensics.db-shm"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        index = AccessIndex::open_in(&dir).expect("index");
        let started = Instant::now();
        let mut principals = names();
        let mut rng = StdRng::seed_from_u64(42);
        let mut seq = 0u64;
        let mut next = 0u64;
        let mut pending: std::collections::VecDeque<(String, u32, Posting)> = Default::default();
        let mut gen = std::iter::from_fn(|| loop {
            if let Some(r) = pending.pop_front() {
                return Some(r);
            }
            if next >= waybills {
                return None;
            }
            let n = next;
            next += 1;
            if n > 0 && n.is_multiple_of(1_000_000) {
                eprintln!(
                    "  {n} waybills, {seq} entries, {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
            for (who, p) in rows_of(n, &mut rng, &mut seq, taken(n)) {
                let pr = &mut principals[who as usize];
                pr.seen += 1;
                if p.shown == Shown::Full {
                    pr.full += 1;
                }
                pending.push_back((waybill(n), who, p));
            }
        });
        // The totals are only known once every row is out; bulk_load takes them after the rows.
        let rows = index.bulk_load(&mut gen).expect("bulk load");
        index
            .set_principals(&principals, entries)
            .expect("principals");
        eprintln!(
            "built {rows} rows for {seq} audit entries over {waybills} waybills in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let size: u64 = ["forensics.db", "forensics.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "index: {} principals, {:.2} GB on disk",
        index.principal_count(),
        size as f64 / 1e9
    );

    // A 1,000-record leak: 700 of the attacker's records, 300 other customers.
    let mut rng = StdRng::seed_from_u64(7);
    let mut matched = Vec::new();
    let take: Vec<u64> = (0..TAKE as u64)
        .map(|i| i * stride + 7 % stride)
        .filter(|n| *n < waybills)
        .collect();
    for (row, n) in take.iter().take(700).enumerate() {
        matched.push(record(row, *n));
    }
    for row in 700..1000 {
        matched.push(record(row, rng.gen_range(0..waybills)));
    }
    let matching = Matching {
        matched,
        unmatched: 0,
        too_common: 0,
    };
    let mut times = Vec::new();
    for run in 0..5 {
        let started = Instant::now();
        let ranking = rank(
            &matching,
            &index,
            waybills,
            &Marks {
                canaries: &Default::default(),
                order: &|_, _| None,
            },
        )
        .expect("rank");
        let took = started.elapsed();
        times.push(took.as_secs_f64() * 1e3);
        let top = &ranking.suspects[0];
        assert_eq!(top.principal, "X-ATTACKER", "{:?}", &ranking.suspects[..3]);
        if run == 0 {
            eprintln!(
                "top suspect {} covers {:.0}% of the leak; {} principals considered",
                top.principal,
                top.coverage * 100.0,
                ranking.principals_considered
            );
        }
    }
    let mut warm = times[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    println!(
        "attribution of a 1,000-record leak against {entries} audit entries: first run {:.1} ms, warm median {:.1} ms",
        times[0],
        warm[warm.len() / 2]
    );
}

fn record(row: usize, n: u64) -> RecordMatch {
    RecordMatch {
        row: row + 1,
        waybills: vec![waybill(n)],
        confidence: 0.95,
        agreed: vec![wbg_forensics::Clue::Phone, wbg_forensics::Clue::Name],
        disagreed: vec![],
        needs_full: true,
        ambiguous: false,
    }
}
