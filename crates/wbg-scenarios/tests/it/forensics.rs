//! Leak attribution on the simulator's own leaks: every T1–T4 attacker's take, padded with 30 % unrelated
//! records, its phones reformatted or partly masked, names spaced out and waybill numbers dropped, comes back
//! with the attacking account at rank 1; two attackers' takes merged come back as the top pair.
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::Path;
use wbg_forensics::Limits;
use wbg_guard::{Actor, Attribution, RequestMeta};
use wbg_scenarios::{builtin, scenarios, simulate, write_leaks, SimSpec, World};

/// One leak row: name, phone, province, city, district, detail.
type Row = [String; 6];

fn read_rows(path: &Path) -> Vec<Row> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            std::array::from_fn(|i| rec.get(i + 1).unwrap_or("").to_owned())
        })
        .collect()
}

/// Reformats a row as leaks do: phones with `+86`, spaces or dashes, or partly masked; names spaced out.
fn disguise(row: &mut Row, rng: &mut StdRng) {
    let phone = row[1].clone();
    if phone.len() == 11 && !phone.contains('*') {
        row[1] = match rng.gen_range(0..4) {
            0 => format!("+86 {} {} {}", &phone[..3], &phone[3..7], &phone[7..]),
            1 => format!("{}-{}-{}", &phone[..3], &phone[3..7], &phone[7..]),
            2 => format!("{}****{}", &phone[..3], &phone[7..]),
            _ => phone,
        };
    }
    if rng.gen_bool(0.3) {
        let spaced: Vec<String> = row[0].chars().map(String::from).collect();
        row[0] = format!(" {} ", spaced.join("\u{3000}"));
    }
}

/// A leak: `own` rows disguised, padded to 30 % noise from `others` (real recipients someone else read) and
/// made-up people, shuffled, without waybill numbers.
fn leak_csv(own: &[Row], others: &[Row], seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows: Vec<Row> = own.to_vec();
    let noise = (own.len() * 3).div_ceil(7);
    let fake = wbg_sim::Carrier::generate(wbg_sim::CarrierSpec {
        seed: seed ^ 0xDEAD_BEEF,
        ..wbg_sim::CarrierSpec::default()
    });
    let made_up = fake.waybills(1, noise);
    for (k, w) in made_up.iter().enumerate() {
        if k % 2 == 0 && !others.is_empty() {
            rows.push(others[rng.gen_range(0..others.len())].clone());
        } else {
            let r = &w.recipient;
            let a = &r.address;
            rows.push([
                r.name.clone(),
                r.phone.clone(),
                a.province.clone(),
                a.city.clone(),
                a.district.clone(),
                a.detail.clone(),
            ]);
        }
    }
    rows.shuffle(&mut rng);
    let mut out = String::from("收件人,手机号,省,市,区,详细地址,备注\n");
    for mut r in rows {
        disguise(&mut r, &mut rng);
        let quoted: Vec<String> = r.iter().map(|v| format!("\"{v}\"")).collect();
        out.push_str(&quoted.join(","));
        out.push_str(",sold 2026\n");
    }
    out
}

fn attribute(w: &World, csv: &str) -> Attribution {
    w.guard()
        .attribute(
            Actor::Local("investigator"),
            csv.as_bytes(),
            &Limits::default(),
            &RequestMeta::default(),
        )
        .unwrap()
}

struct Truth {
    attack: String,
    account: String,
    full: Vec<Row>,
    served: Vec<Row>,
}

/// Runs the built-in attacks in a small carrier's week; with `disarmed`, the risk engine only watches (no
/// threshold is reachable), as if prevention had failed and the attackers took all the policy let them.
fn run(seed: u64, dir: &Path, disarmed: bool) -> (World, Vec<Truth>) {
    let spec = SimSpec::small(seed);
    let mut risk = wbg_guard::RiskConfig::default();
    if disarmed {
        let never = wbg_risk::Thresholds {
            alert: f64::MAX,
            mask: f64::MAX,
            suspend: f64::MAX,
        };
        (risk.score.burst, risk.score.drift) = (never, never);
        risk.rate_limit = wbg_guard::RateLimitConfig {
            reads_per_minute: u32::MAX,
            burst: u32::MAX,
        };
    }
    // Prevention failing all the way: besides the disarmed engine, the carrier runs without its work
    // registries — full views for any claimed ticket or exception, as before they existed.
    let policies = disarmed.then(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");
        let text = std::fs::read_to_string(format!("{root}/wbguard.cedar")).unwrap();
        let claimed = text
            .replace(
                "context.ticket_open_for_waybill && !context.ticket_assigned_elsewhere &&\n  context.ticket_reads < 10",
                "context.has_ticket",
            )
            .replace(
                "resource.status == \"exception\" &&\n  context has exception_outlet && context.exception_outlet == principal.outlet",
                "(resource.origin_outlet == principal.outlet || resource.destination_outlet == principal.outlet)",
            );
        assert_ne!(claimed, text, "the registry rules were found");
        let dir = dir.join("policies");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("wbguard.cedar"), claimed).unwrap();
        std::fs::copy(format!("{root}/wbguard.cedarschema"), dir.join("wbguard.cedarschema")).unwrap();
        dir
    });
    let cfg = wbg_guard::GuardConfig {
        keys: wbg_guard::KeyConfig::Given {
            master: wbg_vault::MasterKey::generate(),
            signer: None,
        },
        risk,
        policies,
        ..wbg_guard::GuardConfig::embedded(dir.join("data"))
    };
    let (mut w, _) = World::open(cfg, &spec).unwrap();
    let (_, outcomes) = simulate(&mut w, &spec, &builtin(), &scenarios("all").unwrap()).unwrap();
    for o in &outcomes {
        println!(
            "{:24} {:8} reads {:5} masked {:5} refused {:5} exposed {:4}",
            o.name, o.account, o.reads, o.masked, o.refused, o.records_exposed
        );
    }
    let leaks = dir.join("leaks");
    write_leaks(&w, &outcomes, &leaks).unwrap();
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(leaks.join("ground_truth.json")).unwrap()).unwrap();
    let truths = truth
        .as_array()
        .unwrap()
        .iter()
        .map(|t| Truth {
            attack: t["attack"].as_str().unwrap().to_owned(),
            account: t["accounts"][0].as_str().unwrap().to_owned(),
            full: read_rows(&leaks.join(t["file"].as_str().unwrap())),
            served: read_rows(&leaks.join(t["served_file"].as_str().unwrap())),
        })
        .collect();
    (w, truths)
}

/// Attributes every attacker's take of at least `min` records; returns how many were tried.
fn every_take_names_its_taker(w: &World, truths: &[Truth], min: usize) -> usize {
    let mut tried = 0;
    for (k, t) in truths.iter().enumerate() {
        let others: Vec<Row> = truths
            .iter()
            .filter(|o| o.account != t.account)
            .flat_map(|o| o.served.iter().cloned())
            .collect();
        // What the attacker has to sell: everything it was served, masked records included.
        let own = &t.served;
        if own.len() < min {
            // Too little to single anyone out: a record or two were also shown to whoever handled them.
            println!("{:24} {:8} took {} records", t.attack, t.account, own.len());
            continue;
        }
        let report = attribute(w, &leak_csv(own, &others, k as u64));
        // The taker is ranked first; a principal shown exactly the same records (a merchant whose own print
        // station was the taker) may share that rank, since nothing in the access record tells them apart.
        let top = report
            .suspects
            .iter()
            .find(|s| s.principal == t.account)
            .unwrap_or(&report.suspects[0]);
        println!(
            "{:24} {:8} rows {:4} matched {:4} top {:8} ({:?}) coverage {:.2} posterior {:.3} second {:?}",
            t.attack,
            t.account,
            report.rows,
            report.matched,
            top.principal,
            top.role,
            top.coverage,
            top.posterior,
            report.suspects.get(1).map(|s| (&s.principal, s.coverage, s.posterior))
        );
        assert_eq!(top.principal, t.account, "{}: {report:#?}", t.attack);
        assert_eq!(top.rank, 1, "{}: {report:#?}", t.attack);
        let sharing = report.suspects.iter().filter(|s| s.rank == 1).count();
        assert!(sharing <= 2, "{}: {sharing} share the first rank", t.attack);
        assert!(!top.evidence.is_empty());
        assert!(top.evidence.iter().all(|e| !e.proof.is_empty()));
        tried += 1;
    }
    tried
}

#[test]
fn contained_attackers_takes_name_them_first_and_a_canary_names_its_reader_outright() {
    let dir = tempfile::tempdir().unwrap();
    let (w, truths) = run(11, dir.path(), false);
    let tried = every_take_names_its_taker(&w, &truths, 5);
    assert!(
        tried >= 8,
        "only {tried} attackers took five records or more"
    );

    // Canaries planted on a courier's round (one no attack used); the courier reads one, as a bulk reader
    // would.
    let g = w.guard();
    let meta = RequestMeta::default();
    let courier = "C00101".to_owned();
    assert!(truths.iter().all(|t| t.account != courier));
    let fake = wbg_sim::Carrier::generate(wbg_sim::CarrierSpec {
        seed: 77,
        ..wbg_sim::CarrierSpec::default()
    });
    let planted = fake.waybills(9_100_000_000_000, 3);
    let nos = g
        .plant_canaries(Actor::Local("auditor"), &courier, planted.clone(), &meta)
        .unwrap();
    assert_eq!(nos.len(), 3);
    let token = g
        .issue_token(Actor::Local("test"), &courier, false, &meta)
        .unwrap();
    let read = g.read(
        &token,
        &wbg_guard::ReadRequest {
            waybill_no: &nos[1],
            purpose: "delivery",
            ticket: None,
        },
        &meta,
    );
    // It is in the courier's view like a real delivery, and the read alerted at once.
    assert!(read.is_ok(), "{read:?}");
    let alerts = g
        .store()
        .alerts(&wbg_store::AlertFilter {
            account: Some(courier.clone()),
            kind: Some("canary_read".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].severity, "critical");

    // A leak that is mostly someone else's take, with that one canary in it, names the courier for certain.
    let other = truths
        .iter()
        .filter(|t| t.account != courier)
        .max_by_key(|t| t.served.len())
        .unwrap();
    let r = &planted[1].recipient;
    let canary_row: Row = [
        r.name.clone(),
        r.phone.clone(),
        r.address.province.clone(),
        r.address.city.clone(),
        r.address.district.clone(),
        r.address.detail.clone(),
    ];
    let mut rows = other.served.clone();
    rows.push(canary_row);
    let report = attribute(&w, &leak_csv(&rows, &[], 5));
    let first = &report.suspects[0];
    assert_eq!(first.principal, courier, "{report:#?}");
    assert!(first.certain && first.rank == 1);
    assert_eq!(report.suspects.iter().filter(|s| s.certain).count(), 1);
    assert!(first.alerts.unwrap_or(0) >= 1);
}

#[test]
fn when_prevention_fails_every_take_still_names_its_taker_and_two_merged_name_the_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (w, truths) = run(12, dir.path(), true);
    let tried = every_take_names_its_taker(&w, &truths, 5);
    assert!(
        tried >= 10,
        "only {tried} attackers took five records or more"
    );

    // Two attackers' full takes merged into one list: the pair comes out on top. (An attacker who took most
    // of this small carrier explains any list alone, so the pair is taken among the takes under a quarter of
    // it.)
    let universe = w.guard().store().waybill_count().unwrap() as usize;
    let mut by_size: Vec<&Truth> = truths
        .iter()
        .filter(|t| t.full.len() >= 20 && t.full.len() < universe / 4)
        .collect();
    by_size.sort_by_key(|t| std::cmp::Reverse(t.full.len()));
    let (a, b) = (
        by_size[0],
        by_size
            .iter()
            .find(|t| t.account != by_size[0].account)
            .unwrap(),
    );
    // The colluders' list, each person once.
    let mut seen = std::collections::HashSet::new();
    let merged: Vec<Row> = a
        .full
        .iter()
        .chain(b.full.iter())
        .filter(|r| seen.insert(r[1].clone()))
        .cloned()
        .collect();
    let report = attribute(&w, &leak_csv(&merged, &[], 99));
    let pair = report.top_pair.as_ref().expect("a pair is tried");
    let mut got = pair.principals.to_vec();
    got.sort();
    let mut want = vec![a.account.clone(), b.account.clone()];
    want.sort();
    assert_eq!(got, want, "{pair:?}");
    assert!(pair.explains_better, "{pair:?}");
}
