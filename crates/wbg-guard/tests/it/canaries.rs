//! Canaries nobody can tell apart (issue 21, item 3): 10,000 canaries drawn from a carrier's 100,000 waybills,
//! under numbers its allocator issued among theirs, against those 100,000 — field by field, every field a view
//! shows (or a part of it a masked view shows), a two-sample chi-square test finds no difference (p > 0.01). The
//! same test tells the old generator's canaries (placeholder merchant and outlets, a reserved number range) from
//! the parcels at once, so it is one that can fail.
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::{HashMap, HashSet};
use wbg_core::{NewWaybill, WaybillNo};
use wbg_guard::{Actor, DrawScope, Guard, GuardConfig, KeyConfig, RequestMeta};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::MasterKey;

const REAL: usize = 100_000;
const CANARIES: usize = 10_000;

/// Every visible field of a waybill, or the part of it a masked view shows, as a category.
fn features(w: &NewWaybill) -> Vec<(&'static str, String)> {
    let shape = |d: &str| -> String {
        d.chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect()
    };
    let street = |d: &str| -> String { d.chars().take_while(|c| !c.is_ascii_digit()).collect() };
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let no = w.waybill_no.as_str();
    let serial = wbg_sim::serial_of(no).unwrap_or(u64::MAX);
    let (r, s) = (&w.recipient, &w.sender);
    vec![
        ("number length", no.len().to_string()),
        ("number prefix", no[..no.len().min(9)].to_owned()),
        ("number block", (serial / 10_000).to_string()),
        ("merchant", w.merchant.to_string()),
        ("origin outlet", w.origin_outlet.to_string()),
        ("destination outlet", w.destination_outlet.to_string()),
        (
            "route",
            format!("{}>{}", w.origin_outlet, w.destination_outlet),
        ),
        ("recipient province", r.address.province.clone()),
        ("recipient city", r.address.city.clone()),
        ("recipient district", r.address.district.clone()),
        ("recipient street", street(&r.address.detail)),
        ("recipient street shape", shape(&r.address.detail)),
        ("recipient surname", first(&r.name)),
        ("recipient name length", r.name.chars().count().to_string()),
        ("recipient phone first 3", r.phone[..3].to_owned()),
        (
            "recipient phone last 2",
            r.phone[r.phone.len() - 2..].to_owned(),
        ),
        ("sender district", s.address.district.clone()),
        ("sender street", street(&s.address.detail)),
        ("sender street shape", shape(&s.address.detail)),
        ("sender surname", first(&s.name)),
        ("sender phone first 3", s.phone[..3].to_owned()),
        ("items", w.items.clone()),
    ]
}

/// The chi-square two-sample test of one field: categories seen fewer than 5 times in all pooled into one.
fn p_value(a: &[String], b: &[String]) -> f64 {
    let mut counts: HashMap<&str, (f64, f64)> = HashMap::new();
    for x in a {
        counts.entry(x).or_default().0 += 1.0;
    }
    for x in b {
        counts.entry(x).or_default().1 += 1.0;
    }
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let mut rare = (0.0, 0.0);
    for (_, (x, y)) in counts {
        if x + y < 5.0 {
            rare = (rare.0 + x, rare.1 + y);
        } else {
            cells.push((x, y));
        }
    }
    if rare.0 + rare.1 > 0.0 {
        cells.push(rare);
    }
    if cells.len() < 2 {
        return 1.0;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let n = na + nb;
    let stat: f64 = cells
        .iter()
        .map(|(x, y)| {
            let total = x + y;
            let (ea, eb) = (total * na / n, total * nb / n);
            (x - ea).powi(2) / ea + (y - eb).powi(2) / eb
        })
        .sum();
    let df = (cells.len() - 1) as f64;
    ChiSquared::new(df).unwrap().sf(stat)
}

/// Each field's p-value, canaries against parcels.
fn compare(canaries: &[NewWaybill], real: &[NewWaybill]) -> Vec<(&'static str, f64)> {
    let fa: Vec<_> = canaries.iter().map(features).collect();
    let fb: Vec<_> = real.iter().map(features).collect();
    (0..fa[0].len())
        .map(|i| {
            let col = |f: &[Vec<(&'static str, String)>]| -> Vec<String> {
                f.iter().map(|r| r[i].1.clone()).collect()
            };
            (fa[0][i].0, p_value(&col(&fa), &col(&fb)))
        })
        .collect()
}

#[test]
fn ten_thousand_canaries_cannot_be_told_from_a_hundred_thousand_parcels() {
    let root = tempfile::tempdir().unwrap();
    let (g, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::from_bytes([5u8; 32]),
            signer: None,
        },
        ..GuardConfig::embedded(root.path().join("data"))
    })
    .unwrap();
    let meta = RequestMeta::default();
    let carrier = Carrier::generate(CarrierSpec::default());
    // The allocator issues serials 1..=110,000; 10,000 of them, anywhere among the rest, go to canaries.
    let mut serials: Vec<u64> = (1..=(REAL + CANARIES) as u64).collect();
    serials.shuffle(&mut StdRng::seed_from_u64(21));
    let for_canaries: HashSet<u64> = serials[..CANARIES].iter().copied().collect();
    let mut real = Vec::with_capacity(REAL);
    for first in (1..=(REAL + CANARIES) as u64).step_by(5_000) {
        let batch: Vec<NewWaybill> = carrier
            .waybills(first, 5_000)
            .into_iter()
            .filter(|w| !for_canaries.contains(&wbg_sim::serial_of(w.waybill_no.as_str()).unwrap()))
            .collect();
        g.ingest(Actor::Local("integration"), batch.clone(), &meta)
            .unwrap();
        real.extend(batch);
    }
    assert_eq!(real.len(), REAL);

    let profile = g.canary_profile(Actor::Local("auditor"), &meta).unwrap();
    assert_eq!(profile.len(), REAL);
    let mut numbers: Vec<WaybillNo> = for_canaries
        .iter()
        .map(|s| WaybillNo::parse(&wbg_sim::waybill_no(*s)).unwrap())
        .collect();
    numbers.sort();
    let canaries = profile
        .draw(
            &mut StdRng::seed_from_u64(3),
            &numbers,
            &DrawScope::default(),
        )
        .unwrap();
    assert_eq!(canaries.len(), CANARIES);
    assert!(canaries.iter().all(|w| w.clone().validated().is_ok()));
    let real_people: HashSet<&str> = real.iter().map(|w| w.recipient.phone.as_str()).collect();
    let copied = canaries
        .iter()
        .filter(|w| real_people.contains(w.recipient.phone.as_str()))
        .count();
    assert!(
        copied < 10,
        "no canary carries a customer's phone ({copied})"
    );

    let report = compare(&canaries, &real);
    for (field, p) in &report {
        eprintln!("{field:<24} p = {p:.4}");
    }
    for (field, p) in &report {
        assert!(*p > 0.01, "{field}: canaries differ from parcels (p = {p})");
    }

    // The old generator's canaries: told apart at once, by several fields.
    let old = wbg_sim::one_off_waybills(9, CANARIES);
    let told: Vec<&str> = compare(&old, &real)
        .into_iter()
        .filter(|(_, p)| *p < 1e-6)
        .map(|(f, _)| f)
        .collect();
    for field in ["number prefix", "merchant", "origin outlet", "route"] {
        assert!(told.contains(&field), "{field} not told: {told:?}");
    }
}
