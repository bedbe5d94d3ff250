//! The replay of a policy proposal over past reads — issue 18's acceptance asks for 1 M audited reads in under
//! 10 s. `cargo bench -p wbg-guard --bench replay` (`REPLAY_READS` to change the count, default 1,000,000;
//! `REPLAY_WAYBILLS` the waybills read, default 20,000: with more, fewer reads repeat an earlier read's inputs
//! and the replay's memo helps less).
//!
//! A synthetic carrier's couriers, staff and agents (500 accounts) read 20,000 waybills — a fifth of them out
//! for delivery, some signed, some in exception, with their scan events — for purposes their roles have, a tenth
//! of the agents' reads naming a ticket; the entries go straight into the audit log. Two proposals are replayed:
//! the built-in policy without `cs-masked` (one role's rules change, so the others' reads are counted without
//! being decided), and the built-in policy plus a rule that applies to every role (every read decided twice).
use std::time::Instant;
use wbg_audit::AuditEntry;
use wbg_core::{now_millis, EventType, OutletId, Role};
use wbg_guard::{Actor, Guard, GuardConfig, KeyConfig, RequestMeta, ScanEvent};
use wbg_sim::{Carrier, CarrierSpec};
use wbg_vault::MasterKey;

fn main() {
    let n: usize = std::env::var("REPLAY_READS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (guard, _) = Guard::open(GuardConfig {
        keys: KeyConfig::Given {
            master: MasterKey::generate(),
            signer: None,
        },
        ..GuardConfig::embedded(dir.path().join("data"))
    })
    .unwrap();
    let guard = guard.with_risk(std::sync::Arc::new(wbg_guard::NoRisk));
    let (meta, local) = (RequestMeta::default(), Actor::Local("bench"));
    let carrier = Carrier::generate(CarrierSpec::default());
    let (_, integration) = guard
        .create_account(local, "I-bench", "integration", None, None, &meta)
        .unwrap();
    let mut readers = Vec::new();
    for a in &carrier.accounts {
        let purpose = match a.role {
            Role::Courier => "delivery",
            Role::OutletStaff => "exception_handling",
            Role::CustomerService => "customer_service",
            _ => continue,
        };
        guard
            .create_account(
                local,
                &a.id,
                a.role.as_str(),
                a.outlet.as_deref(),
                None,
                &meta,
            )
            .unwrap();
        readers.push((a.id.clone(), a.role, a.outlet.clone(), purpose));
    }
    let waybill_count: usize = std::env::var("REPLAY_WAYBILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let waybills = carrier.waybills(1, waybill_count);
    for chunk in waybills.chunks(10_000) {
        guard
            .ingest(Actor::Token(&integration), chunk.to_vec(), &meta)
            .unwrap();
    }
    // A fifth go out for delivery with a courier of their outlet; of those, half are signed and a tenth end in
    // exception.
    let couriers: Vec<&(String, Role, Option<String>, &str)> =
        readers.iter().filter(|r| r.1 == Role::Courier).collect();
    let scan = |no: &str, kind: EventType, outlet: &OutletId, courier: Option<&str>| {
        let ev = ScanEvent {
            waybill_no: no.to_owned(),
            kind,
            outlet: outlet.clone(),
            courier: courier.map(|c| wbg_core::AccountId::parse(c).unwrap()),
            at: None,
        };
        guard
            .record_events(Actor::Token(&integration), vec![ev], &meta)
            .unwrap();
    };
    for (i, w) in waybills.iter().enumerate().filter(|(i, _)| i % 5 == 0) {
        let no = w.waybill_no.as_str();
        let courier = couriers
            .iter()
            .find(|c| c.2.as_deref() == Some(w.destination_outlet.as_str()))
            .map(|c| c.0.as_str());
        scan(no, EventType::PickedUp, &w.origin_outlet, None);
        scan(no, EventType::AtOutlet, &w.destination_outlet, None);
        scan(
            no,
            EventType::OutForDelivery,
            &w.destination_outlet,
            courier,
        );
        if i % 10 == 0 {
            scan(no, EventType::Signed, &w.destination_outlet, None);
        } else if i % 50 == 5 {
            scan(no, EventType::Exception, &w.destination_outlet, None);
        }
    }
    let started = Instant::now();
    let now = now_millis();
    let span = 7 * 86_400_000i64;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let (id, role, _, purpose) = &readers[i % readers.len()];
        let w = &waybills[(i.wrapping_mul(7919)) % waybills.len()];
        let mut e = AuditEntry::new(
            now - span + (i as i64) * span / n as i64,
            id.as_str(),
            "view",
        );
        e.waybill = Some(w.waybill_no.to_string());
        e.purpose = Some((*purpose).to_owned());
        e.view = Some("masked".into());
        if *role == Role::CustomerService && i % 10 == 0 {
            e.detail = Some(format!("ticket=T{}", i % 100));
        }
        batch.push(e);
        if batch.len() == 10_000 {
            guard
                .store()
                .append_audit_batch(std::mem::take(&mut batch))
                .unwrap();
        }
    }
    if !batch.is_empty() {
        guard.store().append_audit_batch(batch).unwrap();
    }
    eprintln!(
        "{n} read entries appended in {:.1} s; replaying",
        started.elapsed().as_secs_f64()
    );
    let builtin = wbg_policy::PolicyEngine::builtin().unwrap();
    let text = builtin.policy_text();
    let start = text.find("@id(\"cs-masked\")").unwrap();
    let end = start + text[start..].find(";\n").unwrap() + 2;
    let mut stricter = text.to_owned();
    stricter.replace_range(start..end, "");
    // A rule that applies to every role and action (and never holds): no read can be skipped.
    let everyone = format!(
        "{text}\n@id(\"bench-everyone\")\nforbid (principal, action, resource) when {{ 1 == 2 }};\n"
    );
    for (what, proposal) in [
        ("one role's rules changed", stricter),
        ("every role's rules changed", everyone),
    ] {
        let v = guard.propose_policy(local, &proposal, &meta).unwrap();
        let started = Instant::now();
        let report = guard.replay_policy(local, v.version, 30, &meta).unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "replay, {what}: {} reads in {secs:.2} s ({:.0} reads/s); {} would change, {} skipped",
            report.replayed,
            report.replayed as f64 / secs,
            report.changed,
            report.skipped
        );
    }
}
